"""Diagnostic plots: the science read back from the drawn artists, and errors on bad input."""

from collections.abc import Iterator

import numpy as np
import pytest

pytest.importorskip("matplotlib")
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.collections import PathCollection
from matplotlib.patches import StepPatch
from scipy import stats

from xtml.critique.diag_plots import (
    plot_coverage,
    plot_embedding,
    plot_outliers,
    plot_posterior_corner,
    plot_residuals,
    plot_sbc_ranks,
)


@pytest.fixture(autouse=True)
def _close_figures() -> Iterator[None]:
    yield
    plt.close("all")


def _offsets(ax: plt.Axes) -> list[np.ndarray]:
    return [np.asarray(c.get_offsets()) for c in ax.collections if isinstance(c, PathCollection)]


def _two_clusters(rng: np.random.Generator, n: int = 200, d: int = 10) -> tuple[np.ndarray, np.ndarray]:
    a = rng.normal(0.0, 1.0, (n // 2, d))
    b = rng.normal(4.0, 1.0, (n - n // 2, d))
    labels = np.array(["simulated"] * (n // 2) + ["real"] * (n - n // 2))
    x, lab = np.vstack([a, b]), labels
    perm = rng.permutation(n)
    return x[perm], lab[perm]


# ----------------------------------------------------------------------------- embedding


def test_pca_embedding_separates_two_clusters(rng):
    x, lab = _two_clusters(rng, 400)
    ax = plot_embedding(x, color=lab, color_name="domain")
    pts = _offsets(ax)
    assert len(pts) == 2
    assert sum(len(p) for p in pts) == 400
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(dict.fromkeys(lab))
    assert ax.get_legend().get_title().get_text() == "domain"
    c0, c1 = (p.mean(axis=0) for p in pts)
    spread = max(float(np.sqrt(np.sum(p.var(axis=0)))) for p in pts)
    assert np.linalg.norm(c0 - c1) > 5 * spread
    # separated along the first principal component, which carries most of the variance
    assert abs(c0[0] - c1[0]) > 5 * abs(c0[1] - c1[1])
    assert "PC1" in ax.get_xlabel()


def test_tsne_embedding_keeps_neighbours(rng):
    x, lab = _two_clusters(rng, 200)
    ax = plot_embedding(x, color=lab == "real", method="tsne", random_state=1)
    pts = _offsets(ax)
    assert sum(len(p) for p in pts) == 200
    xy = np.vstack(pts)
    group = np.repeat(np.arange(len(pts)), [len(p) for p in pts])
    dist = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    np.fill_diagonal(dist, np.inf)
    assert np.mean(group[dist.argmin(axis=1)] == group) > 0.95


def test_embedding_continuous_colour_and_deterministic_subsample(rng):
    x = rng.normal(size=(500, 4))
    value = x[:, 0] + 0.1 * rng.normal(size=500)
    ax1 = plot_embedding(x, color=value, color_name="rate", max_points=120, random_state=3)
    ax2 = plot_embedding(x, color=value, max_points=120, random_state=3)
    (p1,), (p2,) = _offsets(ax1), _offsets(ax2)
    assert p1.shape == (120, 2)
    np.testing.assert_array_equal(p1, p2)
    assert len(ax1.figure.axes) == 2  # the colour bar
    assert ax1.figure.axes[1].get_ylabel() == "rate"
    assert ax1.get_legend() is None
    # more than 12 distinct integers is a continuous colour, not a legend
    ax3 = plot_embedding(x, color=np.arange(500))
    assert len(_offsets(ax3)) == 1


def test_embedding_errors(rng):
    x = rng.normal(size=(50, 3))
    with pytest.raises(ValueError, match=r"method must be one of \('pca', 'tsne'\), got 'umap'"):
        plot_embedding(x, method="umap")
    with pytest.raises(ValueError, match=r"color must have shape \(50,\)"):
        plot_embedding(x, color=np.zeros(49))
    with pytest.raises(ValueError, match="13 distinct non-numeric"):
        plot_embedding(x, color=np.array([f"c{i % 13}" for i in range(50)]))
    with pytest.raises(ValueError, match="at least 3 rows and 2 columns"):
        plot_embedding(x[:, :1])
    with pytest.raises(ValueError, match="non-finite"):
        plot_embedding(np.where(x > 2, np.nan, x))
    with pytest.raises(ValueError, match="n_threads must be a positive integer or None, got 0"):
        plot_embedding(x, n_threads=0)


# ----------------------------------------------------------------------------- spectra


def _spectra(rng: np.random.Generator, n: int, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    freq = np.geomspace(0.1, 100.0, 120)
    model = np.broadcast_to(2.0 + 50.0 / (1.0 + (freq / 2.0) ** 2), (n, freq.size)).copy()
    power = model * rng.chisquare(2 * m, (n, freq.size)) / (2 * m)
    return freq, power, model


def test_outliers_put_the_spike_first(rng):
    freq, power, model = _spectra(rng, 12, m=8)
    power[7, 60] *= 30.0
    power[3, 90] *= 6.0
    scores = np.max(power / model, axis=1)
    names = [f"obs{i}" for i in range(12)]
    fig = plot_outliers(freq, power, 8, scores, model=model, k=3, names=names)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 3
    assert titles[0].startswith("obs7: score")
    assert titles[1].startswith("obs3: score")
    assert len(fig.axes) == 6  # a residual axis below each panel
    main, resid = fig.axes[0], fig.axes[1]
    assert main.get_xscale() == "log"
    assert main.get_yscale() == "log"
    r = resid.get_lines()[0].get_ydata()
    assert np.argmax(r) == 60
    expected = (power[7] - model[7]) / (power[7] / np.sqrt(8))
    np.testing.assert_allclose(r, expected)
    assert r[60] > 2.5  # (P - M) / (P / sqrt(m)) tends to sqrt(m) for a strong spike


def test_outliers_without_model_and_errors(rng):
    freq, power, _ = _spectra(rng, 5, m=1)
    scores = np.array([0.1, np.nan, 3.0, 2.0, 0.5])
    fig = plot_outliers(freq, power, np.ones(120), scores, k=10)  # m per frequency, as in PowerSpectrum
    assert [ax.get_title().split(":")[0] for ax in fig.axes] == ["row 2", "row 3", "row 4", "row 0", "row 1"]
    with pytest.raises(ValueError, match=r"scores must have shape \(5,\)"):
        plot_outliers(freq, power, 1, scores[:4])
    with pytest.raises(ValueError, match=r"model must have the shape of power \(5, 120\)"):
        plot_outliers(freq, power, 1, scores, model=power[:, :-1])
    with pytest.raises(ValueError, match="119 frequency bins"):
        plot_outliers(freq, power[:, :-1], 1, scores)
    with pytest.raises(ValueError, match=r"m must be a scalar, shape \(120,\) per frequency"):
        plot_outliers(freq, power, np.ones(5), scores)


def test_residuals_of_the_true_model_have_unit_scatter(rng):
    freq, power, model = _spectra(rng, 30, m=4)
    ax = plot_residuals(freq, power, model, 4)
    r = np.concatenate([p[:, 1] for p in _offsets(ax)])
    assert r.size == power.size
    assert abs(r.mean()) < 0.05
    assert abs(r.std() - 1.0) < 0.05
    levels = sorted({ln.get_ydata()[0] for ln in ax.get_lines()})
    assert levels == [-3.0, -1.0, 0.0, 1.0, 3.0]
    assert ax.get_xscale() == "log"
    # a model 20% too low: residuals shifted by +0.2 sqrt(m) / 0.8 in units of the wrong model
    ax = plot_residuals(freq, power[0], 0.8 * model[0], 4)
    (one,) = _offsets(ax)
    assert one.shape == (freq.size, 2)
    np.testing.assert_allclose(one[:, 0], freq)
    assert abs(one[:, 1].mean() - 0.5) < 0.3


def test_residuals_errors(rng):
    freq, power, model = _spectra(rng, 3, m=2)
    with pytest.raises(
        ValueError, match=r"model of shape \(3, 119\) does not match power of shape \(3, 120\)"
    ):
        plot_residuals(freq, power, model[:, :-1], 2)
    with pytest.raises(ValueError, match="model must be positive"):
        plot_residuals(freq, power, -model, 2)
    with pytest.raises(ValueError, match="freq must be positive"):
        plot_residuals(freq - 1.0, power, model, 2)


# ----------------------------------------------------------------------------- calibration


def _band(ax: plt.Axes) -> np.ndarray:
    (band,) = [c for c in ax.collections if c.get_label() == "95% binomial band"]
    return band.get_paths()[0].vertices


def test_coverage_band_is_binomial(rng):
    levels = np.linspace(0.05, 0.95, 19)
    n_test = 1000
    calibrated = rng.binomial(n_test, levels[:, None], (19, 2)) / n_test
    ax = plot_coverage(levels, calibrated, n_test=n_test, names=["log_rate", "q"])
    v = _band(ax)
    at_half = v[np.isclose(v[:, 0], 0.5), 1]
    lo, hi = at_half.min(), at_half.max()
    half_width = 1.96 * np.sqrt(0.25 / n_test)  # 3.1 percentage points
    assert abs((hi - 0.5) - half_width) < 0.002
    assert abs((0.5 - lo) - half_width) < 0.002
    # the band contains the diagonal at every nominal level
    for x in levels:
        ys = v[np.isclose(v[:, 0], x), 1]
        assert ys.min() <= x <= ys.max()
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    np.testing.assert_array_equal(lines["q"].get_ydata(), calibrated[:, 1])
    np.testing.assert_array_equal(lines["log_rate"].get_xdata(), levels)


def test_coverage_mapping_and_errors():
    levels = np.array([0.5, 0.9])
    ax = plot_coverage(levels, {"a": [0.4, 0.8], "b": [0.5, 0.9]}, n_test=50)
    assert {"a", "b"} <= {ln.get_label() for ln in ax.get_lines()}
    with pytest.raises(ValueError, match=r"coverage of 'a' has shape \(3,\), levels has shape \(2,\)"):
        plot_coverage(levels, {"a": [0.4, 0.8, 0.9]}, n_test=50)
    with pytest.raises(ValueError, match="n_test must be a positive integer, got 0"):
        plot_coverage(levels, {"a": [0.4, 0.8]}, n_test=0)
    with pytest.raises(ValueError, match="levels must lie in"):
        plot_coverage([0.5, 1.5], {"a": [0.4, 0.8]}, n_test=50)
    with pytest.raises(ValueError, match="names has 1 entries but coverage has 2 columns"):
        plot_coverage(levels, np.zeros((2, 2)), n_test=50, names=["a"])


def _steps(ax: plt.Axes) -> dict[str, StepPatch]:
    return {p.get_label(): p for p in ax.patches if isinstance(p, StepPatch)}


def test_sbc_band_contains_expected_count(rng):
    n_obs, L, n_bins = 1000, 99, 20
    ranks = rng.integers(0, L + 1, (n_obs, 2))
    fig = plot_sbc_ranks(ranks, L, names=["a", "b"], n_bins=n_bins)
    assert [ax.get_title() for ax in fig.axes] == ["a", "b"]
    for j, ax in enumerate(fig.axes):
        steps = _steps(ax)
        counts, edges, _ = steps["ranks"].get_data()
        hi, _, lo = steps["99% band"].get_data()
        expected, _, _ = steps["expected"].get_data()
        assert counts.sum() == n_obs
        np.testing.assert_array_equal(counts, np.bincount(ranks[:, j] * n_bins // (L + 1), minlength=n_bins))
        np.testing.assert_allclose(edges, np.linspace(0, L + 1, n_bins + 1))
        np.testing.assert_allclose(expected, n_obs / n_bins)
        assert np.all(lo < n_obs / n_bins)
        assert np.all(n_obs / n_bins < hi)
        np.testing.assert_array_equal(hi, stats.binom.ppf(0.995, n_obs, 1 / n_bins))
        assert np.mean((counts >= lo) & (counts <= hi)) >= 0.9


def test_sbc_overconfident_ranks_leave_the_band(rng):
    # an over-confident posterior puts the truth in the tails of the draws: a U-shaped histogram
    n_obs, L = 500, 100
    u = stats.norm.cdf(rng.normal(0.0, 2.5, n_obs))
    ranks = np.round(u * L).astype(int)[:, None]
    fig = plot_sbc_ranks(ranks, L, names=["q"], n_bins=20)
    steps = _steps(fig.axes[0])
    counts, _, _ = steps["ranks"].get_data()
    hi, _, _ = steps["99% band"].get_data()
    expected, _, _ = steps["expected"].get_data()
    assert counts[0] > hi[0]
    assert counts[-1] > hi[-1]
    assert expected.sum() == pytest.approx(n_obs)  # 20 bins do not divide 101 ranks: unequal bins


def test_sbc_errors(rng):
    ranks = rng.integers(0, 11, (30, 2))
    with pytest.raises(ValueError, match=r"ranks must lie in 0..n_samples = 0..9"):
        plot_sbc_ranks(ranks, 9, names=["a", "b"])
    with pytest.raises(ValueError, match="names has 1 entries but ranks has 2 columns"):
        plot_sbc_ranks(ranks, 10, names=["a"])
    with pytest.raises(ValueError, match="ranks must be integers"):
        plot_sbc_ranks(ranks + 0.5, 20, names=["a", "b"])
    with pytest.raises(ValueError, match=r"ranks must have shape \(n_obs, n_params\)"):
        plot_sbc_ranks(ranks[:, 0], 10, names=["a"])


# ----------------------------------------------------------------------------- corner


def test_corner_marks_truths_and_peaks_at_the_mean(rng):
    mean = np.array([1.0, -2.0, 5.0])
    samples = rng.normal(mean, [0.1, 0.5, 1.0], (4000, 3))
    fig = plot_posterior_corner(samples, ["a", "b", "c"], truths=mean)
    axes = np.array(fig.axes).reshape(3, 3)
    for i in range(3):
        diag = axes[i, i]
        (hist,) = diag.patches
        xy = hist.get_xy()  # step outline: (x0, 0), (x0, h0), (x1, h0), (x1, h1), ...
        bin_width = xy[2, 0] - xy[0, 0]
        peak_x = xy[np.argmax(xy[:, 1]), 0] + bin_width / 2
        assert abs(peak_x - mean[i]) < 0.3 * [0.1, 0.5, 1.0][i] + bin_width
        assert diag.get_lines()[0].get_xdata()[0] == mean[i]
        for j in range(3):
            assert axes[i, j].axison == (j <= i)
    marker = axes[2, 0].get_lines()[0]
    assert (marker.get_xdata()[0], marker.get_ydata()[0]) == (1.0, 5.0)
    assert axes[2, 0].get_xlabel() == "a"
    assert axes[2, 0].get_ylabel() == "c"


def test_corner_errors(rng):
    samples = rng.normal(size=(100, 2))
    with pytest.raises(ValueError, match="names has 3 entries but samples has 2 columns"):
        plot_posterior_corner(samples, ["a", "b", "c"])
    with pytest.raises(ValueError, match=r"truths must have shape \(2,\)"):
        plot_posterior_corner(samples, ["a", "b"], truths=[0.0])
    fig = plt.figure()
    assert plot_posterior_corner(samples, ["a", "b"], fig=fig) is fig


# ----------------------------------------------------------------------------- fits


def _spectrum(rng: np.random.Generator, n_freq: int = 40, m: int = 8):
    from xtml.timing import PowerSpectrum

    freq = np.geomspace(0.1, 50.0, n_freq)
    model = 2.0 + 5.0 / (1 + (freq / 2.0) ** 2)
    power = model * rng.chisquare(2 * m, n_freq) / (2 * m)
    ps = PowerSpectrum(
        freq=freq,
        power=power[None],
        m=np.full(n_freq, m),
        df=np.gradient(freq),
        norm="leahy",
        mean_rate=np.array([100.0]),
        segment_length=10.0,
        dt=0.01,
        n_segments=m,
    )
    return ps, model


def test_fit_plot_tells_data_and_models_apart_and_shows_residuals(rng):
    from xtml.critique.plots import plot_fit

    ps, model = _spectrum(rng)
    ax = plot_fit(ps, {"right model": model, "flat model": np.full_like(model, 2.0)})
    fig = ax.figure
    assert len(fig.axes) == 2  # the spectrum, and the residual panel below it
    data = ax.containers[0]  # the data: points with error bars, in black
    assert matplotlib.colors.same_color(data.lines[0].get_color(), "k")
    lines = {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}
    colours = {label: line.get_color() for label, line in lines.items()}
    assert set(colours) == {"right model", "flat model"}
    assert not any(matplotlib.colors.same_color(c, "k") for c in colours.values())
    assert not matplotlib.colors.same_color(colours["right model"], colours["flat model"])
    assert lines["right model"].get_linestyle() != lines["flat model"].get_linestyle()
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {"data", "right model", "flat model"}
    residual = fig.axes[1]
    points = next(line for line in residual.get_lines() if line.get_label() == "right model")
    expected = (ps.power[0] - model) * np.sqrt(ps.m) / model
    np.testing.assert_allclose(points.get_ydata(), expected)
    assert abs(np.mean(expected)) < 0.5  # the right model: residuals scatter around zero
    assert residual.get_ylabel().startswith("(data - model)")


def test_plot_spectra_with_a_model_draws_the_residual_panel(rng):
    """What `xtml fit --plot` saves: data and best fit in different colours, residuals below."""
    from dataclasses import replace

    from xtml.critique.plots import plot_spectra

    ps, model = _spectrum(rng)
    ax = plot_spectra(ps, [0], expected=replace(ps, power=model[None]))
    assert len(ax.figure.axes) == 2
    colours = [line.get_color() for line in ax.get_lines() if not line.get_label().startswith("_")]
    assert colours
    assert not matplotlib.colors.same_color(colours[0], "k")
