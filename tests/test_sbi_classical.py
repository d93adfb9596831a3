"""Classical estimates on dataset observations and the comparison table (issue 6)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from xtml.data import open_dataset, simulate_dataset
from xtml.data.config import SimulationConfig, load_config
from xtml.sbi.classical import (
    LEVELS,
    Estimates,
    class_indices,
    comparison_table,
    fad_fit,
    naive_fit,
    naive_mcmc,
    observation_truths,
    to_markdown,
    zhang_fit,
)

CONFIG = "configs/nustar_deadtime.toml"
NAMES = ("rate", "broad.nu_max", "broad.rms", "qpo.nu0", "qpo.q", "qpo.rms")

# ------------------------------------------------------------------------------------------ Estimates


def test_from_samples_gives_the_sample_moments_and_quantiles(rng):
    samples = rng.normal([1.0, 50.0], [0.5, 3.0], size=(3, 1001, 2))
    est = Estimates.from_samples("mc", ["a", "b"], samples, seconds=[1.0, 2.0, 3.0])
    assert np.allclose(est.mean, samples.mean(axis=1))
    assert np.allclose(est.std, samples.std(axis=1, ddof=1))
    for attr, q in (("lo68", 0.16), ("hi68", 0.84), ("lo95", 0.025), ("hi95", 0.975)):
        assert np.allclose(getattr(est, attr), np.quantile(samples, q, axis=1)), attr
    assert est.ok.all()
    assert est.status == ("ok",) * 3
    assert LEVELS == (0.68, 0.95)


def test_from_samples_takes_ragged_draws_and_all_nan_columns(rng):
    rows = [rng.normal(size=(n, 2)) for n in (50, 80)]
    rows[1][:, 0] = np.nan  # a parameter not estimated for this observation: NaN summaries, no warning
    est = Estimates.from_samples("mc", ["a", "b"], rows, ok=[True, False], status=["ok", "not converged"])
    assert np.isnan(est.mean[1, 0])
    assert np.isnan(est.hi95[1, 0])
    assert np.isfinite(est.mean[0]).all()
    assert np.isfinite(est.mean[1, 1])
    assert est.status == ("ok", "not converged")
    rows[0][3, 1] = np.nan
    with pytest.raises(ValueError, match="partly NaN"):
        Estimates.from_samples("mc", ["a", "b"], rows)
    with pytest.raises(ValueError, match="shape"):
        Estimates.from_samples("mc", ["a"], rows)


def test_from_gaussian_uses_normal_quantiles():
    est = Estimates.from_gaussian("fit", ["x", "y"], [[1.0, 10.0]], [[0.5, 2.0]])
    assert np.allclose(est.lo68, [[1.0 - 0.9944579 * 0.5, 10.0 - 0.9944579 * 2.0]])
    assert np.allclose(est.hi95, [[1.0 + 1.9599640 * 0.5, 10.0 + 1.9599640 * 2.0]])
    with pytest.raises(ValueError, match="std"):
        Estimates.from_gaussian("fit", ["x", "y"], [[1.0, 10.0]], [[0.5]])
    with pytest.raises(ValueError, match="unique"):
        Estimates.from_gaussian("fit", ["x", "x"], [[1.0, 10.0]], [[0.5, 2.0]])


# ------------------------------------------------------------------------------------------ the table


def _synthetic(rng, n=4000):
    """Truths, rates and three methods: calibrated, shifted by half a sigma, and 10 % failed garbage."""
    truth = np.column_stack([rng.uniform(1.0, 2.0, n), rng.uniform(10.0, 20.0, n)])
    std = np.column_stack([np.full(n, 0.1), 0.05 * truth[:, 1]])
    rates = rng.uniform(100.0, 2000.0, n)
    calibrated = Estimates.from_gaussian("calibrated", ["a", "b"], truth + std * rng.normal(size=(n, 2)), std)
    shifted = Estimates.from_gaussian(
        "shifted", ["a", "b"], truth + 0.5 * std + std * rng.normal(size=(n, 2)), std
    )
    bad = rng.uniform(size=n) < 0.1
    mean = truth + std * rng.normal(size=(n, 2))
    mean[bad] = truth[bad] + 100.0  # failed observations: far off, with intervals that never cover
    partly = Estimates.from_gaussian(
        "partly_failed",
        ["a", "b"],
        mean,
        np.where(bad[:, None], 1e-6, std),
        ok=~bad,
        status=["optimizer failed" if b else "ok" for b in bad],
    )
    return truth, std, rates, (calibrated, shifted, partly), bad


def test_table_recovers_known_bias_rmse_and_coverage(rng):
    truth, std, rates, methods, bad = _synthetic(rng)
    n = truth.shape[0]
    rows = comparison_table(truth, rates, methods, ["a", "b"], rate_bins=[100.0, 500.0, 2000.0])
    assert len(rows) == 2 * 3 * 3  # parameters x (2 bins + all) x methods
    by = {(r.method, r.parameter, r.bin_label): r for r in rows}
    low = int(np.sum(rates < 500.0))
    assert by["calibrated", "a", "[100, 500)"].n == low
    assert by["calibrated", "a", "[500, 2000)"].n == n - low
    assert by["calibrated", "a", "all"].n == n
    for name, sigma in (("a", 0.1), ("b", 0.05 * truth[:, 1])):
        col = 0 if name == "a" else 1
        cal = by["calibrated", name, "all"]
        shf = by["shifted", name, "all"]
        se = float(np.sqrt(np.mean(np.asarray(sigma) ** 2) / n))
        # coverage of calibrated Gaussian intervals: nominal within 4 binomial standard errors
        for row in (cal, by["calibrated", name, "[100, 500)"]):
            assert abs(row.coverage68 - 0.68) < 4 * np.sqrt(0.68 * 0.32 / row.n)
            assert abs(row.coverage95 - 0.95) < 4 * np.sqrt(0.95 * 0.05 / row.n)
        assert abs(cal.bias) < 4 * se
        assert abs(shf.bias - np.mean(0.5 * std[:, col])) < 4 * se
        assert abs(shf.frac_bias - np.mean(0.5 * std[:, col] / truth[:, col])) < 4 * se / truth[:, col].min()
        assert np.isclose(cal.rmse, np.sqrt(np.mean(std[:, col] ** 2)), rtol=0.05)
        assert np.isclose(shf.rmse, np.sqrt(1.25 * np.mean(std[:, col] ** 2)), rtol=0.05)
        assert shf.coverage68 < cal.coverage68 - 0.05  # a biased method under-covers
        assert np.isclose(cal.width68, np.mean(2 * 0.9944579 * std[:, col]), rtol=1e-6)
    # failures: counted, excluded from coverage, but never from the bias
    part = by["partly_failed", "a", "all"]
    assert part.n_not_ok == int(bad.sum()) > 0
    assert abs(part.coverage68 - 0.68) < 4 * np.sqrt(0.68 * 0.32 / (n - bad.sum()))
    assert abs(part.bias - 100.0 * bad.mean()) < 0.05
    assert by["calibrated", "a", "all"].n_not_ok == 0
    # ... unless asked to quote the point metrics of the ok observations only
    ok_only = comparison_table(truth[:, :1], rates, methods[2:], ["a"], point_from="ok")[0]
    assert ok_only.point_from == "ok"
    assert abs(ok_only.bias) < 4 * 0.1 / np.sqrt(n - bad.sum())
    assert ok_only.coverage68 == part.coverage68
    assert ok_only.n_not_ok == part.n_not_ok


def test_table_marks_parameters_a_method_does_not_estimate(rng):
    truth = rng.uniform(1.0, 2.0, (20, 2))
    mean = truth.copy()
    mean[:, 1] = np.nan
    partial = Estimates.from_gaussian(
        "partial", ["a", "b"], mean, np.full((20, 2), 0.1), seconds=np.full(20, 2.0)
    )
    other = Estimates.from_gaussian("only_a", ["a"], truth[:, :1], np.full((20, 1), 0.1))
    rows = comparison_table(truth, np.full(20, 500.0), [partial, other], ["a", "b"])
    b_rows = [r for r in rows if r.parameter == "b"]
    assert all(np.isnan(r.bias) and np.isnan(r.coverage68) for r in b_rows)
    assert rows[0].seconds == 2.0
    assert np.isnan(rows[1].seconds)  # no times recorded
    text = to_markdown(rows)
    lines = text.splitlines()
    assert len(lines) == 2 + len(rows)
    assert lines[0].startswith("| parameter | rate bin | method |")
    assert "| b | all | partial | 20 | 0 | n/a | n/a | n/a | n/a | n/a | n/a | 2 |" in text
    dumped = json.loads(json.dumps([r.to_dict() for r in rows], allow_nan=False))
    assert dumped[0]["rate_bin"] == "all"
    assert dumped[0]["point_from"] == "all"
    assert dumped[0]["coverage68"] == 1.0
    assert dumped[2]["bias"] is None


def test_table_checks_its_arguments(rng):
    truth = rng.uniform(1.0, 2.0, (5, 1))
    est = Estimates.from_gaussian("m", ["a"], truth, np.ones((5, 1)))
    with pytest.raises(ValueError, match="truths"):
        comparison_table(truth, np.ones(5), [est], ["a", "b"])
    with pytest.raises(ValueError, match="rates"):
        comparison_table(truth, np.ones(4), [est], ["a"])
    with pytest.raises(ValueError, match="4 observations, got 5"):
        comparison_table(truth[:4], np.ones(4), [est], ["a"])
    with pytest.raises(ValueError, match="rate_bins"):
        comparison_table(truth, np.ones(5), [est], ["a"], rate_bins=[2.0, 1.0])
    with pytest.raises(ValueError, match="point_from"):
        comparison_table(truth, np.ones(5), [est], ["a"], point_from="converged")


# ------------------------------------------------------------------------------------------ a real dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Six 32 s NuSTAR-like QPO observations at 400-700 ct/s per module (r_d tau = 0.5-0.64)."""
    raw = load_config(CONFIG).to_dict()
    raw["observation"]["n_segments"] = 2
    raw["rate"] = {"dist": "uniform", "low": 400.0, "high": 700.0}
    del raw["classes"]["noise"]
    config = SimulationConfig.from_dict(raw)
    path = tmp_path_factory.mktemp("classical") / "tiny.zarr"
    return open_dataset(simulate_dataset(config, 6, path, seed=7, chunk_size=6, progress=False))


@pytest.fixture(scope="module")
def fits(dataset):
    idx = np.arange(dataset.n)
    return {f.__name__: f(dataset, idx, rng=1) for f in (naive_fit, zhang_fit, fad_fit)}


def test_zhang_fit_recovers_the_qpo_rms_that_the_naive_fit_gets_wrong(dataset, fits):
    truth = observation_truths(dataset, np.arange(dataset.n), NAMES)
    zhang, naive = fits["zhang_fit"], fits["naive_fit"]
    assert zhang.names == NAMES
    k = NAMES.index("qpo.rms")
    z = (zhang.mean[:, k] - truth[:, k]) / zhang.std[:, k]
    assert zhang.ok.sum() >= dataset.n // 2, zhang.status
    assert np.all(np.abs(z[zhang.ok]) < 4), z
    # ignoring dead time: every naive fit fails or is off by more than 50 % (it fits the dead-time noise)
    off = np.abs(naive.mean[:, k] / truth[:, k] - 1)
    assert np.all(~naive.ok | (off > 0.5)), (naive.status, off)
    assert np.nanmedian(off) > 0.5
    # the rate: dead-time corrected within 10 %; the naive one is the detected rate, far below
    r = NAMES.index("rate")
    assert np.all(np.abs(zhang.mean[:, r] / truth[:, r] - 1) < 0.1)
    assert np.all(naive.mean[:, r] < 0.6 * truth[:, r])


def test_fad_fit_and_naive_fit_report_finite_results_with_statuses(dataset, fits):
    for name, est in fits.items():
        assert est.method == name
        assert est.n == dataset.n
        assert len(est.status) == dataset.n
        assert np.all(est.seconds > 0)
        assert np.isfinite(est.mean).all()
        assert all(s == "ok" for s, o in zip(est.status, est.ok, strict=True) if o)
        assert np.isfinite(est.std[est.ok]).all()
    fad, zhang = fits["fad_fit"], fits["zhang_fit"]
    assert np.allclose(fad.mean[:, 0], zhang.mean[:, 0])  # live-time and Zhang rates agree
    rows = comparison_table(
        observation_truths(dataset, np.arange(dataset.n), NAMES),
        np.asarray(dataset.array("params")[:, 0]),
        list(fits.values()),
        NAMES,
        rate_bins=[400.0, 550.0, 700.0],
    )
    assert len(rows) == len(NAMES) * 3 * 3


def test_naive_mcmc_keeps_unconverged_chains(dataset):
    est = naive_mcmc(dataset, [0], n_steps=100, max_steps=100, min_ess=10**6, rng=3)
    assert est.names == NAMES
    assert not est.ok.any()
    assert est.status[0].startswith("not converged after 100 steps")
    assert np.isfinite(est.mean).all()
    assert np.all(est.lo95 <= est.lo68)
    assert np.all(est.hi68 <= est.hi95)
    # the source parameters stay inside the class prior (up to the 0.1 % background correction)
    assert 0.05 * 0.99 <= est.mean[0, NAMES.index("qpo.rms")] <= 0.25 * 1.01
    assert est.seconds[0] > 0


def test_naive_mcmc_keeps_observations_whose_sampler_fails(dataset, monkeypatch):
    def refuse(*args, **kwargs):
        raise ValueError("no finite posterior")

    monkeypatch.setattr("xtml.sbi.classical.sample_posterior", refuse)
    est = naive_mcmc(dataset, [0, 1], start_from_fit=False)
    assert est.n == 2
    assert est.status == ("failed: no finite posterior",) * 2
    assert not est.ok.any()
    assert np.isnan(est.mean).all()


def test_runners_check_their_arguments(dataset):
    with pytest.raises(ValueError, match="class_name must be one of qpo"):
        zhang_fit(dataset, [0], class_name="noise")
    with pytest.raises(ValueError, match="indices must lie"):
        fad_fit(dataset, [dataset.n])
    with pytest.raises(ValueError, match="non-empty"):
        naive_fit(dataset, [])
    assert np.array_equal(
        class_indices(dataset, "qpo", "test"), dataset.split_indices("test")
    )  # one class: every test row


def test_module_does_not_import_torch():
    code = "import sys, xtml.sbi.classical; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
