"""Science metrics: exact TPR at fixed FPR with ties, AUC limits, bootstrap and interval coverage."""

import numpy as np
import pytest
from scipy.stats import mannwhitneyu, norm
from sklearn.metrics import log_loss, roc_auc_score

from xtml.learn import comparison as metrics  # the vectorised kernel (_Ranked, _weighted_binary) lives here
from xtml.learn.bootstrap import BootstrapCI, bootstrap_ci
from xtml.learn.comparison import compare_scores, min_negatives, tpr_resolution
from xtml.learn.metrics import binary_metrics, multiclass_metrics, regression_metrics


def mean_last(x):
    return x.mean(axis=-1)


# ----------------------------------------------------------------------------- TPR at fixed FPR


def tied_example():
    """100 negatives (98 below 1, one at 5 and one at 3) and 10 positives, two of them tied at 5."""
    neg = np.r_[np.arange(98) / 100, 5.0, 3.0]
    pos = np.array([6.0, 5.0, 5.0, 4.0, 3.0, 2.0, 1.5, 1.2, 0.5, 0.2])
    y = np.r_[np.zeros(neg.size, int), np.ones(pos.size, int)]
    return y, np.r_[neg, pos]


@pytest.mark.parametrize(
    ("fpr_target", "tpr", "threshold", "fpr"),
    [
        # 1 false alarm allowed: t = 5 brings 2 positives and 1 negative (FPR 1 %), t = 4 one more
        # positive; t = 3 adds the second negative (2 %).  TPR = 4/10 at t = 4.
        (0.01, 0.4, 4.0, 0.01),
        # no false alarm allowed: the tie at 5 holds a negative, so its two positives cannot be
        # taken; only the positive at 6 is found.
        (0.005, 0.1, 6.0, 0.0),
        (0.0, 0.1, 6.0, 0.0),
        # 2 false alarms: down to t = 1.2 (8 positives); t = 0.97 is a third negative.
        (0.02, 0.8, 1.2, 0.02),
    ],
)
def test_tpr_at_fpr_by_hand_with_ties(fpr_target, tpr, threshold, fpr):
    y, s = tied_example()
    m = binary_metrics(y, s, fpr_target=fpr_target, threshold=None)
    assert m["tpr_at_fpr"] == tpr
    assert m["tpr_at_fpr_threshold"] == threshold
    assert m["fpr_at_threshold"] == fpr
    # threshold=None evaluates precision / recall at that operating point
    tp = round(tpr * 10)
    fp = round(fpr * 100)
    assert m["recall"] == tpr
    assert m["precision"] == pytest.approx(tp / (tp + fp))
    assert m["confusion_matrix"].tolist() == [[100 - fp, fp], [10 - tp, tp]]


def test_no_threshold_meets_a_zero_target():
    y = np.array([0, 1, 0, 1])
    m = binary_metrics(y, [5.0, 1.0, 0.0, 2.0], fpr_target=0.0, threshold=None)
    assert m["tpr_at_fpr"] == 0.0
    assert m["tpr_at_fpr_threshold"] == np.inf
    assert m["precision"] == m["recall"] == m["f1"] == 0.0


def test_fixed_threshold_counts():
    y, s = tied_example()
    m = binary_metrics(y, s, threshold=3.0)
    # s >= 3: positives 6, 5, 5, 4, 3 and negatives 5, 3
    assert m["confusion_matrix"].tolist() == [[98, 2], [5, 5]]
    assert m["precision"] == pytest.approx(5 / 7)
    assert m["recall"] == 0.5
    assert m["f1"] == pytest.approx(2 * 5 / (2 * 5 + 2 + 5))


# ----------------------------------------------------------------------------- AUC


def test_auc_limits_and_mann_whitney(rng):
    y = np.r_[np.zeros(50, int), np.ones(30, int)]
    separated = np.r_[rng.normal(size=50), 10 + rng.normal(size=30)]
    assert binary_metrics(y, separated)["roc_auc"] == 1.0
    assert binary_metrics(y, -separated)["roc_auc"] == 0.0
    assert binary_metrics(y, separated, fpr_target=0.0)["tpr_at_fpr"] == 1.0
    # with ties, AUC = U / (n0 n1) with ties counted one half
    s = rng.integers(0, 5, y.size).astype(float)
    u = mannwhitneyu(s[y == 1], s[y == 0]).statistic
    assert binary_metrics(y, s)["roc_auc"] == pytest.approx(u / (30 * 50), abs=1e-12)


def test_auc_of_random_scores_is_one_half(rng):
    n0 = n1 = 2000
    y = np.r_[np.zeros(n0, int), np.ones(n1, int)]
    auc = binary_metrics(y, rng.normal(size=n0 + n1))["roc_auc"]
    sd = np.sqrt((n0 + n1 + 1) / (12 * n0 * n1))  # null distribution of the Mann-Whitney AUC
    assert abs(auc - 0.5) < 4 * sd


def test_brier_only_for_probabilities(rng):
    y = rng.integers(0, 2, 200)
    stat = 3 * y + rng.normal(size=200)  # a test statistic, unbounded
    assert binary_metrics(y, stat)["brier"] is None
    p = 1 / (1 + np.exp(-stat))
    assert binary_metrics(y, p)["brier"] == pytest.approx(np.mean((p - y) ** 2))
    with pytest.raises(ValueError, match="probability=True"):
        binary_metrics(y, stat, probability=True)


@pytest.mark.parametrize(
    ("y", "s", "message"),
    [
        ([0, 0, 0], [0.1, 0.2, 0.3], "both classes"),
        ([0, 2, 1], [0.1, 0.2, 0.3], "0 \\(no QPO\\)"),
        ([0, 1], [0.1, np.nan], "finite"),
        ([0, 1, 1], [0.1, 0.2], "same length"),
    ],
)
def test_binary_input_errors(y, s, message):
    with pytest.raises(ValueError, match=message):
        binary_metrics(y, s)


@pytest.mark.parametrize("threshold", [None, 0.6])
def test_weighted_kernel_equals_sklearn_on_repeated_rows(rng, threshold):
    """The vectorised bootstrap kernel equals binary_metrics on the resampled (repeated) rows."""
    n = 300
    y = rng.integers(0, 2, n)
    s = np.round(1 / (1 + np.exp(-(2 * y - 1 + rng.normal(size=n)))), 1)  # many ties
    w = rng.integers(0, 3, size=(6, n)).astype(float)
    stats = metrics._weighted_binary(
        metrics._Ranked.of(y.astype(np.int8), s), w, threshold=threshold, fpr_target=0.05, probability=True
    )
    for j in range(w.shape[0]):
        rows = np.repeat(np.arange(n), w[j].astype(int))
        ref = binary_metrics(y[rows], s[rows], threshold=threshold, fpr_target=0.05)
        for name, values in stats.items():
            assert values[j] == pytest.approx(ref[name], abs=1e-12), name


# ----------------------------------------------------------------------------- multiclass


def test_multiclass_by_hand():
    y = np.array(["bh", "ns", "ns", "wd", "wd", "bh"])
    labels = ["bh", "ns", "wd"]
    p = np.array(
        [
            [0.7, 0.2, 0.1],
            [0.1, 0.8, 0.1],
            [0.5, 0.4, 0.1],  # an ns called bh
            [0.1, 0.1, 0.8],
            [0.2, 0.2, 0.6],
            [0.6, 0.3, 0.1],
        ]
    )
    m = multiclass_metrics(y, p, labels)
    assert m["accuracy"] == pytest.approx(5 / 6)
    assert m["confusion_matrix"].tolist() == [[2, 0, 0], [1, 1, 0], [0, 0, 2]]
    assert m["precision"] == pytest.approx({"bh": 2 / 3, "ns": 1.0, "wd": 1.0})
    assert m["recall"] == pytest.approx({"bh": 1.0, "ns": 0.5, "wd": 1.0})
    true_p = p[np.arange(6), [labels.index(v) for v in y]]
    assert m["log_loss"] == pytest.approx(-np.mean(np.log(true_p)))
    assert m["log_loss"] == pytest.approx(log_loss(y, p, labels=labels))
    assert m["roc_auc_ovr_macro"] == pytest.approx(roc_auc_score(y, p, multi_class="ovr", labels=labels))
    assert m["roc_auc_ovr"]["wd"] == 1.0
    with pytest.raises(ValueError, match="sum"):
        multiclass_metrics(y, p * 1.1, labels)
    with pytest.raises(ValueError, match="absent"):
        multiclass_metrics(y[1:5], p[1:5], labels)  # no "bh"


# ----------------------------------------------------------------------------- regression


def test_regression_coverage_of_correct_gaussian_errors(rng):
    n = 20000
    mu = rng.normal(size=(n, 2)) * [1.0, 5.0]
    sigma = rng.uniform(0.5, 2.0, size=(n, 2))
    truth = mu + sigma * rng.normal(size=(n, 2))
    m = regression_metrics(truth, mu, sigma)
    binom = lambda p: 4 * np.sqrt(p * (1 - p) / n)  # noqa: E731
    p68 = norm.cdf(1) - norm.cdf(-1)
    np.testing.assert_allclose(m["coverage_68"], p68, atol=binom(p68))
    np.testing.assert_allclose(m["coverage_95"], 0.95, atol=binom(0.95))
    np.testing.assert_allclose(m["mean_z"], 0.0, atol=4 / np.sqrt(n))
    np.testing.assert_allclose(m["std_z"], 1.0, atol=0.02)
    np.testing.assert_allclose(m["nll"], -norm.logpdf(truth, mu, sigma).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(m["rmse"], np.sqrt(np.mean((truth - mu) ** 2, axis=0)), rtol=1e-12)
    np.testing.assert_allclose(m["bias"], np.mean(mu - truth, axis=0), rtol=1e-12)
    # errors claimed twice too small: the 68 % interval covers only P(|Z| < 1/2)
    bad = regression_metrics(truth, mu, sigma / 2)
    np.testing.assert_allclose(bad["coverage_68"], norm.cdf(0.5) - norm.cdf(-0.5), atol=binom(0.38))


def test_regression_one_output_gives_floats():
    m = regression_metrics([1.0, 2.0, 3.0, 4.0], [1.5, 2.0, 2.5, 4.0])
    assert m["rmse"] == pytest.approx(np.sqrt(0.5 / 4))
    assert m["mae"] == pytest.approx(0.25)
    assert m["bias"] == 0.0
    assert m["r2"] == pytest.approx(1 - 0.5 / 5)
    assert "coverage_68" not in m
    with pytest.raises(ValueError, match="y_std"):
        regression_metrics([1.0, 2.0], [1.0, 2.0], [1.0, 0.0])


# ----------------------------------------------------------------------------- bootstrap


def test_bootstrap_ci_covers_the_mean_about_95_percent(rng):
    n, trials = 100, 300
    hits = 0
    for seed in range(trials):
        x = np.random.default_rng(seed).normal(loc=3.0, size=n)
        _, low, high = bootstrap_ci(mean_last, x, n_boot=400, rng=rng, vectorized=True)
        hits += low <= 3.0 <= high
    # percentile intervals of a mean of n = 100 cover ~94 %; binomial sd over 300 trials ~1.3 %
    assert 0.90 <= hits / trials <= 0.98


def clustered(seed, n_groups=40, size=25):
    g = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_groups), size)
    x = g.normal(size=n_groups)[groups] + g.normal(size=groups.size)
    return x, groups


def test_grouped_bootstrap_is_honest_for_clustered_data(rng):
    """Rows of one observation share an offset: only the grouped bootstrap covers the true mean 0."""
    row_hits = group_hits = 0
    trials = 100
    for seed in range(trials):
        x, groups = clustered(seed)
        by_row = bootstrap_ci(mean_last, x, n_boot=300, rng=rng, vectorized=True)
        by_group = bootstrap_ci(mean_last, x, n_boot=300, groups=groups, rng=rng, vectorized=True)
        assert by_group.high - by_group.low > 2 * (by_row.high - by_row.low)  # design effect ~ sqrt(13)
        row_hits += by_row.low <= 0 <= by_row.high
        group_hits += by_group.low <= 0 <= by_group.high
    assert group_hits / trials > 0.85
    assert row_hits / trials < 0.6  # expected ~0.42


def test_grouped_bootstrap_loop_with_unequal_groups(rng):
    x, groups = clustered(0)
    keep = ~((groups % 2 == 0) & (np.arange(groups.size) % 25 >= 10))  # even groups keep 10 rows
    x, groups = x[keep], groups[keep]
    by_row = bootstrap_ci(np.mean, x, n_boot=300, rng=rng)
    by_group = bootstrap_ci(np.mean, x, n_boot=300, groups=groups, rng=rng)
    assert by_group.high - by_group.low > 2 * (by_row.high - by_row.low)
    assert by_group.estimate == pytest.approx(x.mean())
    with pytest.raises(ValueError, match="equal size"):
        bootstrap_ci(mean_last, x, groups=groups, rng=rng, vectorized=True)


def test_bootstrap_skips_one_class_resamples():
    y = np.r_[np.ones(3, int), np.zeros(37, int)]
    s = np.linspace(0, 1, 40)[::-1] + 0.0
    expected = 400 * (37 / 40) ** 40  # resamples without a positive: ~18
    ci = bootstrap_ci(roc_auc_score, y, s, n_boot=400, rng=5, class_labels=0)
    assert isinstance(ci, BootstrapCI)
    assert abs(ci.n_skipped - expected) < 4 * np.sqrt(expected)
    assert np.isfinite([ci.low, ci.high]).all()
    assert ci.estimate == 1.0
    # without class_labels, scikit-learn's UndefinedMetricWarning marks the same resamples
    again = bootstrap_ci(roc_auc_score, y, s, n_boot=400, rng=5)
    assert again.n_skipped == ci.n_skipped
    assert (again.low, again.high) == (ci.low, ci.high)


def test_bootstrap_refuses_mostly_undefined_metric(rng):
    x = np.arange(10.0)
    only_full = lambda a: a.mean() if np.unique(a).size == 10 else np.nan  # noqa: E731
    with pytest.raises(ValueError, match="too few valid resamples"):
        bootstrap_ci(only_full, x, n_boot=100, rng=rng)
    with pytest.raises(ValueError, match="not finite on the full data"):
        bootstrap_ci(lambda a: np.nan, x, n_boot=100, rng=rng)


# ----------------------------------------------------------------------------- compare_scores


@pytest.fixture
def detection(rng):
    n_neg, n_pos = 3000, 1000
    y = np.r_[np.zeros(n_neg, int), np.ones(n_pos, int)]
    noise = rng.normal(size=(3, y.size))
    scores = {
        "lrt": y + noise[0],  # the classical reference: d' = 1
        "cnn": 2.5 * y + noise[1],  # a much better detector
        "lrt_prob": 1 / (1 + np.exp(-(y + noise[0]))),  # same ranking as lrt, as a probability
        "lrt_jitter": y + noise[0] + 0.2 * noise[2],  # nearly the same as lrt
    }
    return y, scores


def test_compare_scores_verdicts(detection):
    y, scores = detection
    table = compare_scores(y, scores, reference="lrt", n_boot=400, rng=3)
    assert table.scorers == ("lrt", "cnn", "lrt_prob", "lrt_jitter")
    for name, s in scores.items():  # point values are those of binary_metrics
        point = binary_metrics(y, s, threshold=None)
        for m in ("roc_auc", "tpr_at_fpr", "precision"):
            e = table.get(name, m)
            assert e.estimate == point[m]
            assert e.low <= e.estimate <= e.high
    # binormal AUC = Phi(d' / sqrt 2)
    auc = table.get("lrt", "roc_auc")
    assert auc.low < norm.cdf(1 / np.sqrt(2)) < auc.high
    assert table.get("lrt", "brier").estimate is None
    assert table.get("lrt_prob", "brier").estimate is not None
    diff = {(d.scorer, d.metric): d for d in table.differences}
    better = diff["cnn", "tpr_at_fpr"]
    assert better.significant
    assert better.low > 0
    assert better.verdict.startswith("cnn is better than the reference lrt at TPR@1%FPR by ")
    assert " pp (95% CI " in better.verdict
    assert better.resolved
    same = diff["lrt_prob", "tpr_at_fpr"]
    assert same.difference == same.low == same.high == 0.0
    assert not same.significant
    assert not same.resolved
    assert same.verdict.startswith("not resolved by this test set: lrt_prob against the reference lrt")
    assert same.verdict.endswith("the interval includes zero")
    assert better.verdict in table.verdict
    assert "TPR@1%FPR" in table.to_text()
    # the rows behind every figure, and each scorer's operating point
    assert (table.n_positive, table.n_negative) == (1000, 3000)
    assert table.tpr_resolved
    assert table.to_text().startswith("4,000 rows (1,000 with a QPO, 3,000 without)")
    row = next(r for r in table.rows() if r["scorer"] == "cnn")
    point = binary_metrics(y, scores["cnn"], threshold=None)
    assert row["threshold"] == point["tpr_at_fpr_threshold"]
    assert row["fpr_at_threshold"] == point["fpr_at_threshold"] <= 0.01
    assert (row["n_positive"], row["n_negative"]) == (1000, 3000)
    assert "n/a" in table.to_text()  # the Brier score of a test statistic


@pytest.mark.parametrize(("fpr", "need"), [(0.01, 1000), (0.05, 200), (0.1, 100), (0.001, 10000)])
def test_min_negatives_is_ten_expected_false_alarms(fpr, need):
    assert min_negatives(fpr) == need
    assert tpr_resolution(need, fpr)[0]
    assert not tpr_resolution(need - 1, fpr)[0]
    assert min_negatives(0.0) is None
    assert not tpr_resolution(10**9, 0.0)[0]


def test_min_negatives_follows_from_the_spread_of_the_operating_point(rng):
    """The binomial argument of min_negatives: at 10 expected false alarms the realised false-alarm rate
    of the empirical threshold scatters by about 30 %; at 60 negatives for 1 % by about 100 %."""

    def realised_fpr(n_neg, fpr, reps=2000):
        neg = rng.uniform(size=(reps, n_neg))  # scores of QPO-free rows; true FPR of t is 1 - t
        k = int(np.floor(fpr * n_neg))
        thr = -np.sort(-neg, axis=1)[:, k]  # the (k+1)-th highest: at most k of them above it
        return 1.0 - thr

    resolved = realised_fpr(min_negatives(0.01), 0.01)
    assert 0.2 < resolved.std() / resolved.mean() < 0.4
    coarse = realised_fpr(60, 0.01)
    assert coarse.std() / coarse.mean() > 0.8


def test_a_tpr_difference_on_too_few_negatives_names_no_winner(rng):
    """A large, significant difference on 60 negatives is still "not resolved" at 1 % FPR."""
    y = np.r_[np.zeros(60, int), np.ones(60, int)]
    noise = rng.normal(size=(2, y.size))
    table = compare_scores(
        y, {"lrt": 0.3 * y + noise[0], "cnn": 4 * y + noise[1]}, reference="lrt", n_boot=300, rng=5
    )
    assert not table.tpr_resolved
    diff = {d.metric: d for d in table.differences}
    tpr = diff["tpr_at_fpr"]
    assert tpr.significant  # the interval alone would have named a winner
    assert not tpr.resolved
    assert tpr.verdict.startswith("not resolved by this test set: cnn against the reference lrt")
    assert "60 QPO-free spectra; a TPR at 1% FPR needs at least 1,000" in tpr.verdict
    assert " is better than " not in table.verdict.split("\n")[0]
    auc = diff["roc_auc"]  # the AUC needs no fixed false-alarm budget: it is resolved
    assert auc.resolved
    assert auc.verdict.startswith("cnn is better than the reference lrt at ROC-AUC")


def test_paired_difference_is_narrower_than_the_intervals(detection):
    """Scorers evaluated on the same resamples: the shared test-set noise cancels in the difference."""
    y, scores = detection
    table = compare_scores(y, scores, reference="lrt", n_boot=400, rng=4)
    d = next(x for x in table.differences if x.scorer == "lrt_jitter" and x.metric == "roc_auc")
    own = table.get("lrt", "roc_auc")
    assert d.high - d.low < 0.5 * (own.high - own.low)


def test_compare_scores_grouped_and_rows(detection, rng):
    y, scores = detection
    groups = np.arange(y.size) // 4  # 4 rows per observation (each of one class here)
    table = compare_scores(y, {"lrt": scores["lrt"]}, groups=groups, n_boot=200, rng=rng)
    assert table.reference == "lrt"
    assert table.differences == ()
    row = table.rows()[0]
    assert row["scorer"] == "lrt"
    assert row["roc_auc_low"] < row["roc_auc"] < row["roc_auc_high"]
    with pytest.raises(ValueError, match="reference"):
        compare_scores(y, scores, reference="bdt", n_boot=10, rng=rng)
