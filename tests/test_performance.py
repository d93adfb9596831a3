"""Performance maps: science checks against analytic answers, shift tests, tables, plots and errors."""

import json
import math

import numpy as np
import pytest
from matplotlib.figure import Figure
from scipy.stats import norm
from sklearn.linear_model import LinearRegression, LogisticRegression

from xtml.critique.performance import (
    ONE_SIGMA,
    PerformanceMap,
    bin_edges,
    detection_map,
    plot_performance_map,
    posterior_map,
    regression_map,
    shift_test,
)

#: Level of the intervals in checks against exact values (~3.9 sigma): with ~60 bin checks per run, a
#: correct implementation fails by chance well under 1 % of the time (a fixed seed makes it reproducible).
CHECK = 0.9999
LEVELS = [0.025, 0.16, 0.25, 0.5, 0.75, 0.84, 0.975]


def _within(pm: PerformanceMap, metric: str, expected) -> None:
    expected = np.broadcast_to(np.asarray(expected, dtype=float), pm.metrics[metric].shape)
    lo, hi = pm.lower[metric], pm.upper[metric]
    assert np.all((lo <= expected) & (expected <= hi)), (metric, pm.metrics[metric], lo, hi, expected)


# --------------------------------------------------------------------------------------------- detection


def _detector(rng, n_pos=12_000, n_neg=20_000, gain=10.0):
    """Score = gain * rms + N(0, 1) for QPOs, N(0, 1) without (rms undefined: NaN)."""
    rms = rng.uniform(0.02, 0.3, n_pos)
    scores = np.concatenate([gain * rms + rng.normal(size=n_pos), rng.normal(size=n_neg)])
    values = np.concatenate([rms, np.full(n_neg, np.nan)])
    y = np.concatenate([np.ones(n_pos, int), np.zeros(n_neg, int)])
    return values, y, scores


def test_detection_rate_rises_with_rms_and_matches_analytic(rng):
    gain = 10.0
    values, y, scores = _detector(rng, gain=gain)
    edges = np.linspace(0.02, 0.3, 7)
    pm = detection_map(values, y, scores, fpr_target=0.01, edges=edges, level=CHECK, variable="qpo.rms")
    t = pm.threshold
    # the default threshold is the 99 % quantile of the QPO-free scores: N(0, 1) -> 2.33
    assert np.mean(scores[y == 0] >= t) <= 0.01
    assert t == pytest.approx(norm.ppf(0.99), abs=0.05)
    # given the threshold, each QPO is detected with probability Phi(gain * rms - t)
    rms = values[y == 1]
    k = np.clip(np.searchsorted(edges, rms, side="right") - 1, 0, 5)
    expected = [norm.cdf(gain * rms[k == j] - t).mean() for j in range(6)]
    _within(pm, "tpr", expected)
    assert np.all(np.diff(pm.metrics["tpr"]) > 0.02)
    assert pm.n["tpr"].tolist() == np.bincount(k, minlength=6).tolist()
    # rms is undefined without a QPO: no FPR per rms bin
    assert np.isnan(pm.metrics["fpr"]).all()
    assert pm.n["fpr"].sum() == 0
    assert np.isnan(pm.lower["fpr"]).all()
    assert (pm.count == pm.n["tpr"]).all()


def test_false_positive_rate_per_bin_is_the_target(rng):
    n_neg, n_pos = 30_000, 5_000
    rate = np.exp(rng.uniform(np.log(10.0), np.log(2_000.0), n_neg + n_pos))
    y = np.concatenate([np.zeros(n_neg, int), np.ones(n_pos, int)])
    scores = np.concatenate([rng.normal(size=n_neg), rng.normal(3.0, 1.0, n_pos)])
    pm = detection_map(rate, y, scores, fpr_target=0.01, level=CHECK, variable="rate [ct/s]")
    # rates over two decades: log-spaced bins
    assert np.allclose(np.diff(np.log(pm.edges)), np.log(pm.edges[-1] / pm.edges[0]) / 6)
    assert pm.nominal == {"fpr": 0.01}
    _within(pm, "fpr", 0.01)
    assert np.all(pm.n["fpr"] > 4_000)
    # the score does not depend on the rate: the TPR is flat, Phi(3 - t)
    _within(pm, "tpr", norm.cdf(3.0 - pm.threshold))
    assert (pm.count == pm.n["tpr"] + pm.n["fpr"]).all()


def test_detection_with_given_threshold_counts_exactly():
    pm = detection_map(
        [1, 2, 3, 4, 1.5, 3.5],
        [1, 1, 1, 1, 0, 0],
        [0.2, 0.6, 0.4, 0.9, 0.7, 0.1],
        threshold=0.5,
        edges=[1, 2.5, 4],
    )
    assert pm.metrics["tpr"].tolist() == [0.5, 0.5]
    assert pm.metrics["fpr"].tolist() == [1.0, 0.0]
    assert pm.nominal == {}
    assert pm.threshold == 0.5
    # Wilson intervals stay inside [0, 1] and are not degenerate at 0 or 1
    assert pm.lower["fpr"][1] == 0.0
    assert 0 < pm.upper["fpr"][1] < 1
    assert 0 < pm.lower["fpr"][0] < 1
    assert pm.upper["fpr"][0] == 1.0


# --------------------------------------------------------------------------------------------- regression


def _regression(rng, n=30_000, frac=0.05):
    truth = rng.uniform(1.0, 10.0, n)
    std = frac * truth
    return truth, std, truth + std * rng.normal(size=n)


def test_regression_map_finds_a_bias_in_one_bin_only(rng):
    truth, std, mean = _regression(rng)
    edges = np.linspace(1.0, 10.0, 7)
    biased = (truth >= edges[3]) & (truth < edges[4])
    mean = np.where(biased, mean + 0.10 * truth, mean)
    pm = regression_map(truth, truth, mean, std, edges=edges, level=CHECK)
    expected = np.zeros(6)
    expected[3] = 0.10
    _within(pm, "rel_bias", expected)
    assert pm.lower["rel_bias"][3] > 0.09
    assert np.all(np.abs(np.delete(pm.metrics["rel_bias"], 3)) < 0.005)
    # absolute bias: 10 % of the mean truth in the bin, ~0 elsewhere
    assert pm.metrics["bias"][3] == pytest.approx(0.1 * truth[biased].mean(), rel=0.02)
    assert np.all(np.abs(np.delete(pm.metrics["bias"], 3)) < 0.02)


def test_regression_coverage_and_rmse_for_gaussian_errors(rng):
    truth, std, mean = _regression(rng)
    edges = np.linspace(1.0, 10.0, 7)
    good = regression_map(truth, truth, mean, std, edges=edges, level=CHECK, variable="qpo.frequency")
    _within(good, "coverage_68", ONE_SIGMA)
    assert good.nominal["coverage_68"] == pytest.approx(0.6827, abs=1e-4)
    # RMSE = sqrt(mean(std^2)) over the bin
    k = np.clip(np.searchsorted(edges, truth, side="right") - 1, 0, 5)
    _within(good, "rmse", [math.sqrt(np.mean(std[k == j] ** 2)) for j in range(6)])
    # errors twice the claimed std: |z| <= 0.5 -> 2 Phi(0.5) - 1 = 0.383
    over = regression_map(truth, truth, mean, std / 2, edges=edges, level=CHECK)
    _within(over, "coverage_68", 2 * norm.cdf(0.5) - 1)
    assert np.all(over.upper["coverage_68"] < 0.45)


def test_regression_map_single_row_and_empty_bins():
    pm = regression_map([1.0, 5.0, 5.5], [1.0, 5.0, 5.5], [1.5, 5.0, 6.0], edges=[0, 2, 4, 6])
    assert pm.count.tolist() == [1, 0, 2]
    assert pm.metrics["bias"][0] == 0.5
    assert pm.lower["bias"][0] == -math.inf
    assert pm.upper["bias"][0] == math.inf
    assert np.isnan([pm.metrics[m][1] for m in pm.metrics]).all()
    assert np.isnan([pm.lower[m][1] for m in pm.metrics]).all()
    # NaN values are in no bin
    pm2 = regression_map([1.0, np.nan, 5.0], [1.0, 2.0, 5.0], [1.0, 9.0, 5.0], edges=[0, 3, 6])
    assert pm2.count.tolist() == [1, 1]
    assert pm2.metrics["rmse"].tolist() == [0.0, 0.0]


# --------------------------------------------------------------------------------------------- posteriors


def _gaussian_posteriors(rng, n=20_000, sigmas=(0.5, 2.0), scale=1.0):
    """theta ~ N(0, 1), x = theta + sigma * N(0, 1): exact posterior N(x / (1 + s^2), s^2 / (1 + s^2))."""
    s = np.asarray(sigmas)
    theta = rng.normal(size=(n, s.size))
    x = theta + s * rng.normal(size=(n, s.size))
    mu, sd = x / (1 + s**2), s / np.sqrt(1 + s**2)
    z = norm.ppf(LEVELS)[None, :, None]
    return x, theta, mu[:, None, :] + scale * sd * z


def test_posterior_map_exact_posterior_is_calibrated_in_every_bin(rng):
    x, theta, q = _gaussian_posteriors(rng)
    # bin by the observed data: an exact posterior is calibrated conditionally on the data
    maps = posterior_map(x[:, 0], theta, q, LEVELS, names=["qpo.rms", "qpo.frequency"], level=CHECK)
    assert list(maps) == ["qpo.rms", "qpo.frequency"]
    for pm in maps.values():
        assert pm.nominal["coverage_68"] == pytest.approx(0.68)
        assert pm.nominal["coverage_95"] == pytest.approx(0.95)
        _within(pm, "coverage_68", 0.68)
        _within(pm, "coverage_95", 0.95)
        _within(pm, "bias", 0.0)
        assert pm.count.sum() == theta.shape[0]


def test_posterior_map_flags_overconfident_posteriors(rng):
    x, theta, q = _gaussian_posteriors(rng, n=6_000, scale=0.5)
    pm = posterior_map(x[:, 0], theta[:, 0], q[:, :, 0], LEVELS, level=CHECK)["theta_0"]
    # half-width intervals: P(|z| <= 0.497) = 0.38, P(|z| <= 0.98) = 0.67
    _within(pm, "coverage_68", 2 * norm.cdf(0.5 * norm.ppf(0.84)) - 1)
    _within(pm, "coverage_95", 2 * norm.cdf(0.5 * norm.ppf(0.975)) - 1)
    assert np.all(pm.upper["coverage_68"] < 0.5)


def test_posterior_map_needs_the_quantile_levels(rng):
    x, theta, q = _gaussian_posteriors(rng, n=50)
    keep = [1, 3, 5]  # 0.16, 0.5, 0.84
    with pytest.raises(
        ValueError, match=r"missing \[0\.025, 0\.975\].*got quantile_levels \[0\.16, 0\.5, 0\.84\]"
    ):
        posterior_map(x[:, 0], theta, q[:, keep], [LEVELS[i] for i in keep])
    with pytest.raises(ValueError, match="quantiles must have shape"):
        posterior_map(x[:, 0], theta, q[:, :, :1], LEVELS)
    with pytest.raises(ValueError, match="non-decreasing"):
        posterior_map(x[:, 0], theta, q[:, ::-1], LEVELS)
    with pytest.raises(ValueError, match="names must be 2"):
        posterior_map(x[:, 0], theta, q, LEVELS, names=["a"])


# --------------------------------------------------------------------------------------------- shift test


def _rotating_rule(rng, n=6_000):
    """Labels sign(u(v) . x) with u rotating by 180 degrees as v goes from 0 to 10."""
    v = rng.uniform(0.0, 10.0, n)
    X = rng.normal(size=(n, 2))
    phi = np.pi * v / 10
    y = (np.cos(phi) * X[:, 0] + np.sin(phi) * X[:, 1] > 0).astype(int)
    return X, y, v


@pytest.mark.parametrize(("metric", "inside", "far"), [("roc_auc", 0.95, 0.2), ("accuracy", 0.88, 0.3)])
def test_shift_test_degrades_outside_training_range(rng, metric, inside, far):
    X, y, v = _rotating_rule(rng)
    estimator = LogisticRegression()
    pm = shift_test(estimator, X, y, v, train_range=(0.0, 2.0), metric=metric, rng=rng, variable="rate")
    assert not hasattr(estimator, "coef_")  # a clone was fitted
    assert pm.train_range == (0.0, 2.0)
    assert 2.0 in pm.edges  # default edges line up with the training range
    assert pm.inside_training.tolist() == [e <= 2.0 for e in pm.edges[1:]]
    # every row not used for fitting is evaluated: 30 % of the in-range rows, all the others
    n_in = int(((v >= 0) & (v <= 2)).sum())
    assert pm.count.sum() == v.size - (n_in - round(0.3 * n_in))
    assert pm.count[pm.inside_training].sum() == round(0.3 * n_in)
    m = pm.metrics[metric]
    assert np.all(m[pm.inside_training] > inside)
    assert m[-1] < far  # the rule has turned by ~160 degrees from what the model learnt
    assert np.all(np.diff(m) < 0)  # steadily worse away from the training range
    assert m[pm.inside_training].min() > m[~pm.inside_training].max()
    assert pm.upper[metric][-1] < pm.lower[metric][0]


def test_shift_test_rmse_grows_outside_training_range(rng):
    n = 4_000
    v = rng.uniform(0.0, 10.0, n)
    x = rng.normal(size=n)
    y = (1 + v) * x + 0.1 * rng.normal(size=n)  # the slope changes with v
    pm = shift_test(LinearRegression(), x[:, None], y, v, train_range=(0, 2), metric="rmse", rng=1)
    rmse = pm.metrics["rmse"]
    assert np.all(rmse[pm.inside_training] < 1.0)
    assert rmse[-1] > 5.0
    assert np.all(np.diff(rmse[~pm.inside_training]) > 0)


def test_shift_test_is_reproducible_and_checks_arguments(rng):
    X, y, v = _rotating_rule(rng, n=600)
    a = shift_test(LogisticRegression(), X, y, v, train_range=(0, 4), rng=5)
    b = shift_test(LogisticRegression(), X, y, v, train_range=(0, 4), rng=5)
    assert np.array_equal(a.metrics["roc_auc"], b.metrics["roc_auc"], equal_nan=True)
    with pytest.raises(ValueError, match="metric must be one of"):
        shift_test(LogisticRegression(), X, y, v, train_range=(0, 4), metric="auc", rng=0)
    with pytest.raises(ValueError, match=r"train_range \(20, 30\) holds 0 rows"):
        shift_test(LogisticRegression(), X, y, v, train_range=(20, 30), rng=0)
    with pytest.raises(ValueError, match="low < high"):
        shift_test(LogisticRegression(), X, y, v, train_range=(4, 0), rng=0)
    with pytest.raises(ValueError, match="X must have shape"):
        shift_test(LogisticRegression(), X[:-1], y, v, train_range=(0, 4), rng=0)


# --------------------------------------------------------------------------------------------- edges, errors


def test_bin_edges_quantiles_and_log(rng):
    x = rng.normal(size=6_000)
    e = bin_edges(x, 6)
    counts = np.histogram(x, e)[0]
    assert counts.tolist() == [1_000] * 6
    assert e[0] == x.min()
    assert e[-1] == x.max()
    r = np.exp(rng.uniform(0, np.log(1_000), 500))
    assert np.allclose(np.diff(np.log(bin_edges(r, 4))), np.log(r.max() / r.min()) / 4)
    assert not np.allclose(np.diff(np.log(bin_edges(r, 4, log=False))), np.log(r.max() / r.min()) / 4)
    # max / min > 20 but uniform: a tiny minimum must not force log bins
    u = rng.uniform(0.0, 10.0, 3_000)
    assert u.max() / u.min() > 20
    assert np.histogram(u, bin_edges(u, 6))[0].tolist() == [500] * 6
    assert bin_edges([1.0, 1.0, 1.0, 2.0], 4).tolist() == [1.0, 1.25, 2.0]  # coinciding quantiles merge
    with pytest.raises(ValueError, match="log=True needs values > 0, got a minimum of -1"):
        bin_edges([-1.0, 2.0], log=True)
    with pytest.raises(ValueError, match="all equal to 3"):
        bin_edges([3.0, 3.0])
    with pytest.raises(ValueError, match="no finite entries"):
        bin_edges([np.nan])
    with pytest.raises(ValueError, match="n_bins must be an integer >= 1, got 0"):
        bin_edges([1.0, 2.0], 0)


def test_clear_errors_on_bad_input():
    with pytest.raises(ValueError, match="values is empty"):
        detection_map([], [], [])
    with pytest.raises(ValueError, match=r"y_true must have the shape of values \(5,\), got \(4,\)"):
        detection_map(np.arange(5.0), [0, 1, 0, 1], np.arange(5.0))
    with pytest.raises(ValueError, match="scores must have the length of values"):
        detection_map(np.arange(4.0), [0, 1, 0, 1], np.arange(5.0))
    with pytest.raises(ValueError, match="finite for rows with a QPO; 1 are not"):
        detection_map([np.nan, 1.0], [1, 0], [0.3, 0.2], threshold=0.5)
    with pytest.raises(ValueError, match="no positive"):
        detection_map([1.0, 2.0], [0, 0], [0.3, 0.2], threshold=0.5)
    with pytest.raises(ValueError, match=r"y_true must hold 0.*got \[0, 2\]"):
        detection_map([1.0, 2.0], [0, 2], [0.3, 0.2])
    with pytest.raises(ValueError, match="mean must have the length of values"):
        regression_map([1.0, 2.0], [1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="std must be finite and > 0"):
        regression_map([1.0, 2.0], [1.0, 2.0], [1.0, 2.0], [0.1, 0.0])
    with pytest.raises(ValueError, match="edges must be at least two finite, strictly increasing"):
        regression_map([1.0, 2.0], [1.0, 2.0], [1.0, 2.0], edges=[2.0, 1.0])
    with pytest.raises(ValueError, match=r"level must be in \(0, 1\), got 68"):
        regression_map([1.0, 2.0], [1.0, 2.0], [1.0, 2.0], level=68)


# --------------------------------------------------------------------------------------------- table, plot


def test_rows_are_json_ready_and_markdown_reads():
    pm = regression_map(
        [1.0, 1.5, 5.0], [1.0, 1.5, 5.0], [1.1, 1.4, 5.0], [0.2, 0.2, 0.1], edges=[0, 2, 4, 6]
    )
    rows = pm.to_rows()
    text = json.dumps(rows, allow_nan=False)
    assert len(rows) == 3
    assert rows[1]["bias"] is None
    assert rows[1]["count"] == 0
    assert rows[2]["bias_upper"] is None  # one row: infinite interval
    assert rows[0]["coverage_68"] == 1.0
    assert rows[0]["coverage_68_n"] == 2
    assert rows[0]["low"] == 0.0
    assert rows[0]["high"] == 2.0
    assert "inside_training" not in text
    md = pm.to_markdown()
    lines = md.splitlines()
    assert lines[0].startswith("| value | n | bias (68% CI) |")
    assert len(lines) == 5
    assert "n/a" in lines[3]
    assert "[4, 6]" in lines[4]


def test_map_validates_its_fields():
    ok = {"variable": "x", "edges": [0, 1, 2], "count": [1, 1]}
    one = {"a": [0.5, 0.5]}
    with pytest.raises(ValueError, match=r"metrics\['a'\] must have shape \(2,\)"):
        PerformanceMap(**ok, metrics={"a": [0.5]}, lower=one, upper=one)
    with pytest.raises(ValueError, match="lower must have the keys of metrics"):
        PerformanceMap(**ok, metrics=one, lower={}, upper=one)
    pm = PerformanceMap(**ok, metrics=one, lower=one, upper=one)
    assert pm.n["a"].tolist() == [1, 1]
    assert pm.n_bins == 2


def test_plot_performance_map_with_reference_and_training_range(rng):
    X, y, v = _rotating_rule(rng, n=1_500)
    ml = shift_test(LogisticRegression(), X, y, v, train_range=(0, 3), rng=rng)
    ref = shift_test(LogisticRegression(C=0.01), X, y, v, train_range=(0, 3), rng=rng)
    ax = Figure().add_subplot()
    out = plot_performance_map(ml, "roc_auc", ax=ax, reference=ref, label="ML", reference_label="classical")
    assert out is ax
    assert ax.get_xlabel() == "value"
    assert ax.get_ylabel() == "roc_auc (68% CI)"
    labels = ax.get_legend_handles_labels()[1]
    assert labels == ["training range", "ML", "classical"]
    assert ax.get_xscale() == "linear"
    # log axis for a variable spanning decades; nominal line for coverage
    truth = np.exp(rng.uniform(0, np.log(1_000), 300))
    pm = regression_map(truth, truth, truth * 1.01, truth * 0.02)
    ax2 = plot_performance_map(pm, "coverage_68")
    assert ax2.get_xscale() == "log"
    assert "nominal 0.682689" in ax2.get_legend_handles_labels()[1]
    with pytest.raises(ValueError, match=r"pmap has no metric 'tpr'; it has \['roc_auc'\]"):
        plot_performance_map(ml, "tpr", ax=ax)
    import matplotlib.pyplot as plt

    plt.close(ax2.figure)
