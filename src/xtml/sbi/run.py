"""``xtml sbi train``: simulate (or read) a scenario's training and test sets, train a neural posterior,
check its calibration on the held-out simulations, and write a run folder.

The run folder::

    RUN/
      record.json         the run record (:mod:`xtml.runs`): configuration, seeds, versions, file hashes,
                        metrics, and the check ``calibration`` (a failed one marks the run failed-check)
    config.toml         the resolved configuration (TOML); config.json: the same as JSON
    scenario.toml       the scenario file as given
      train.zarr/         training simulations (unless [sbi] train_data names a dataset)
      test.zarr/          held-out simulations (dataset seed + TEST_SEED_OFFSET): the calibration checks
      calibration.zarr/   other held-out simulations (seed + CALIBRATION_SEED_OFFSET) on which the trained
                          posterior is recalibrated (NeuralPosterior.recalibrate) before it is saved and
                          checked on the test set ([sbi] n_calibration = 0: no recalibration)
      posterior/          weights.safetensors + posterior.json (NeuralPosterior.save) + inputs.json
      manifest.json       sha256 of every file of posterior/ (checked on load: a changed byte is refused)
      calibration.json    SBC, expected coverage (50/68/95 %), TARP, accuracy per parameter and rate bin,
                          and the verdict: "passed", "conservative" (usable: the credible regions
                          cover at least their level, wider than needed by the stated amount) or
                          "failed" (overconfident or biased) with the reasons
      test_posteriors.npz truths, rates and posterior quantiles of every test observation, SBC ranks,
                          expected coverage at credibility levels 0.05-0.95 (for the report)
      summary.txt         the same in words
      sbi.json            versions, timings, dataset paths and sizes
      scope.json          the scope gate (:mod:`xtml.critique.run_scope`), with its hash in manifest.json

A posterior that fails its calibration checks is written (so it can be inspected) but marked failed:
:func:`load_run_posterior` refuses a failed posterior unless the caller explicitly accepts an uncalibrated
one, and loads a conservative one (its users are told how much wider than needed its regions are).
Simulation is resumable (the Zarr stores commit chunk by chunk): an interrupted ``xtml sbi train`` run
again with the same arguments continues where it stopped.
"""

from __future__ import annotations

import json
import math
import platform
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from xtml.psd import JointPrior
from xtml.runs.hashing import file_sha256
from xtml.sbi.inputs import InputSpec, dataset_inputs
from xtml.sbi.scenario import CALIBRATION_SEED_OFFSET, TEST_SEED_OFFSET, SBIConfig

__all__ = [
    "QUANTILES",
    "RATE_BINS",
    "SBI_FILE",
    "RunPosterior",
    "UncalibratedPosteriorError",
    "accuracy_table",
    "load_run_posterior",
    "scenario_arrays",
    "scenario_prior",
    "train_sbi_run",
]

QUANTILES = (0.025, 0.16, 0.25, 0.5, 0.75, 0.84, 0.975)
RATE_BINS = 3  # count-rate bins (equal numbers of test observations) of the accuracy table
POSTERIOR_FILES = ("weights.safetensors", "posterior.json", "inputs.json")
SBI_FILE = "sbi.json"  # the run's own summary (datasets, sizes, timings); record.json is the run record


class UncalibratedPosteriorError(RuntimeError):
    """The run's posterior failed its calibration checks (see ``calibration.json``)."""


def scenario_prior(config: SBIConfig) -> JointPrior:
    """Joint prior of the inferred parameters: the incident-rate prior and the class's PSD prior."""
    sim = config.simulation
    spec = sim.classes[sim.class_names.index(config.sbi.class_name)]
    priors = {"rate": sim.rate, **spec.prior.priors}
    return JointPrior({name: priors[name] for name in config.sbi.parameters})


def _rows_of_class(ds: Any, class_name: str) -> NDArray[np.int64]:
    labels = np.asarray(ds.array("labels"))
    return np.flatnonzero(labels == ds.class_names.index(class_name))


def _theta(ds: Any, names: tuple[str, ...], rows: NDArray[np.int64]) -> NDArray[np.float64]:
    params = np.asarray(ds.array("params"))[rows]
    cols = [ds.param_names.index(n) for n in names]
    return params[:, cols]


def scenario_arrays(
    config: SBIConfig, ds: Any, spec: InputSpec, n: int | None = None
) -> tuple[NDArray[np.float64], NDArray[np.float32]]:
    """The parameters and network inputs of the scenario's class in a simulated dataset.

    Parameters
    ----------
    config : SBIConfig
        The scenario: its ``sbi.class_name`` selects the rows, ``sbi.parameters`` the columns.
    ds : Dataset
        A dataset of :func:`xtml.data.open_dataset` (train, calibration or test simulations).
    spec : InputSpec
        The network inputs (:meth:`InputSpec.from_dataset`).
    n : int, optional
        Only the first ``n`` rows of the class (all by default).

    Returns
    -------
    theta : ndarray, shape (n_rows, n_params)
        In the order of ``config.sbi.parameters``.
    x : ndarray, shape (n_rows, spec.n_features)
    """
    rows = _rows_of_class(ds, config.sbi.class_name)[:n]
    return _theta(ds, config.sbi.parameters, rows), dataset_inputs(ds, spec, rows)


def _dataset(
    config: SBIConfig, which: str, out: Path, log: Callable[[str], None] | None, client: Any = None
) -> Any:
    from xtml.data import open_dataset
    from xtml.parallel.simulate import simulate_dataset_dask

    given = getattr(config.sbi, f"{which}_data")
    if given is not None:
        ds = open_dataset(given)
        have = {k: v for k, v in ds.config.to_dict().items() if k != "dataset"}
        want = {k: v for k, v in config.simulation.to_dict().items() if k != "dataset"}
        if have != want:
            raise ValueError(
                f"[sbi] {which}_data {given}: the dataset was simulated with another configuration than the "
                "scenario's simulation tables (compare its config with the scenario file)"
            )
        return ds
    n = {"train": config.sbi.n_train, "test": config.sbi.n_test, "calibration": config.sbi.n_calibration}[
        which
    ]
    offset = {"train": 0, "test": TEST_SEED_OFFSET, "calibration": CALIBRATION_SEED_OFFSET}[which]
    seed = config.simulation.dataset.seed + offset
    path = out / f"{which}.zarr"
    if log:
        where = "" if client is None else f" on {len(client.scheduler_info()['workers'])} Dask workers"
        log(f"simulating {n} {which} observations into {path}{where} (resumable)")
    # the same bytes with or without a client (one task per chunk: xtml.parallel)
    simulate_dataset_dask(config.simulation, n, path, client=client, seed=seed, progress=log is not None)
    return open_dataset(path)


def _summaries(samples: NDArray[np.float64]) -> dict[str, NDArray[np.float64]]:
    q = np.quantile(samples, QUANTILES, axis=1)  # (n_q, n_obs, p)
    return {
        "mean": samples.mean(axis=1),
        "std": samples.std(axis=1, ddof=1),
        "quantiles": np.moveaxis(q, 0, 1),
    }


def accuracy_table(
    names: tuple[str, ...],
    truths: NDArray[np.float64],
    rates: NDArray[np.float64],
    samples: NDArray[np.float64],
    n_bins: int = RATE_BINS,
) -> list[Any]:
    """Bias, fractional bias, RMSE of the posterior mean, 68/95 % coverage and width per parameter, for
    all rates and in ``n_bins`` count-rate bins of equal numbers of observations: the rows of
    :func:`xtml.sbi.classical.comparison_table` for the method "sbi"."""
    from xtml.sbi.classical import Estimates, comparison_table

    edges = np.quantile(rates, np.linspace(0, 1, n_bins + 1))
    estimates = Estimates.from_samples("sbi", names, samples)
    return comparison_table(truths, rates, [estimates], names, rate_bins=edges)


def train_sbi_run(
    config: SBIConfig,
    out: str | Path,
    *,
    overwrite: bool = False,
    log: Callable[[str], None] | None = print,
    n_threads: int | None = None,
    command: Sequence[str] | None = None,
    scope: bool = True,
    client: Any = None,
) -> Path:
    """Train and validate the scenario's neural posterior into the run folder ``out``; see the module doc.

    The run is recorded (:mod:`xtml.runs`); ``command`` is the command recorded as having started it.
    A folder holding a finished run is refused unless ``overwrite`` (which empties it); an interrupted
    run with the same configuration is resumed (its simulations are completed and reused).  ``scope``
    fits the scope gate into the run.  ``client`` (a ``distributed.Client``:
    :func:`xtml.parallel.dask_client`) simulates the datasets on a Dask cluster, one task per chunk (the
    same bytes as without it); the training runs here.  Returns the run folder.
    """
    from xtml.data.simrun import api_command
    from xtml.runs import run_folder

    resolved = config.to_dict()
    seeds = {
        "train_data": config.simulation.dataset.seed,
        "test_data": config.simulation.dataset.seed + TEST_SEED_OFFSET,
        "calibration_data": config.simulation.dataset.seed + CALIBRATION_SEED_OFFSET,
        "validation": config.validation.seed,
        "npe": dict(config.npe).get("seed", 0),
    }
    inputs = {
        f"{which}_data": getattr(config.sbi, f"{which}_data")
        for which in ("train", "test", "calibration")
        if getattr(config.sbi, f"{which}_data") is not None
    }
    cmd = command or api_command("sbi.train_sbi_run", out=out)
    with run_folder(
        out, "sbi", command=cmd, config=resolved, seeds=seeds, inputs=inputs, overwrite=overwrite
    ) as writer:
        return _train_sbi(config, writer, log, n_threads, scope, client)


def _train_sbi(
    config: SBIConfig,
    writer: Any,
    log: Callable[[str], None] | None,
    n_threads: int | None,
    scope: bool,
    client: Any = None,
) -> Path:
    from xtml.runs.folder import relative_path
    from xtml.sbi.classical import to_markdown
    from xtml.sbi.diagnostics import check_calibration, sbc_ranks, tarp
    from xtml.sbi.npe import train_npe
    from xtml.sbi.transforms import BoxTransform

    out = writer.path
    resolved = config.to_dict()
    for name in ("posterior", "calibration.json", "test_posteriors.npz", "manifest.json", "scope.json"):
        if (out / name).is_dir():  # an interrupted run: its simulations are kept, the rest is redone
            shutil.rmtree(out / name)
        elif (out / name).exists():
            (out / name).unlink()
    if config.source is not None:
        shutil.copyfile(config.source, out / "scenario.toml")
    (out / "config.json").write_text(json.dumps(resolved, indent=1))
    t0 = time.perf_counter()
    train_ds = _dataset(config, "train", out, log, client)
    test_ds = _dataset(config, "test", out, log, client)
    cal_ds = _dataset(config, "calibration", out, log, client) if config.sbi.n_calibration else None
    t_sim = time.perf_counter() - t0
    names = config.sbi.parameters
    spec = InputSpec.from_dataset(train_ds, config.sbi.channels, config.sbi.scalars)
    rows_test = _rows_of_class(test_ds, config.sbi.class_name)
    theta, x = scenario_arrays(config, train_ds, spec)
    theta_test, x_test = scenario_arrays(config, test_ds, spec)
    rates_test = np.asarray(test_ds.array("params"))[rows_test, test_ds.param_names.index("rate")]
    box = BoxTransform.from_prior(scenario_prior(config), names)
    npe_dict = dict(config.npe)
    for key, value in (("n_channels", len(spec.channels)), ("n_scalars", len(spec.scalars))):
        if npe_dict.get(key, value) != value:
            raise ValueError(f"[npe] {key} = {npe_dict[key]} contradicts the inputs ({value}); leave it out")
        npe_dict[key] = value
    from xtml.sbi.density import NPEConfig

    npe_config = NPEConfig.from_dict(npe_dict)
    if log:
        log(
            f"training {npe_config.flow.upper()} x {npe_config.n_ensemble} "
            f"({npe_config.embedding} embedding) "
            f"on {theta.shape[0]} simulations of {spec.n_features} inputs for {list(names)}"
        )
    t1 = time.perf_counter()
    posterior = train_npe(theta, x, box, npe_config, progress=log is not None, n_threads=n_threads)
    t_train = time.perf_counter() - t1
    recal_text = ""
    if cal_ds is not None:
        theta_cal, x_cal = scenario_arrays(config, cal_ds, spec)
        posterior = posterior.recalibrate(theta_cal, x_cal)
        chol = np.asarray(posterior.recalibration["chol"])  # (K, d, d): the new base's spread per axis
        spread = np.sqrt(np.einsum("kij,kij->ki", chol, chol))
        recal_text = (
            f"recalibrated on {len(theta_cal)} held-out simulations (not the test set): base spread "
            f"x{spread.min():.3f} to x{spread.max():.3f} across members and coordinates"
        )
    post_dir = posterior.save(out / "posterior")
    (post_dir / "inputs.json").write_text(json.dumps(spec.to_dict()))

    v = config.validation
    rng = np.random.default_rng(v.seed)
    if log:
        log(f"validating on {theta_test.shape[0]} held-out simulations ({v.n_samples} draws each)")
    t2 = time.perf_counter()
    samples = posterior.sample(x_test, v.n_samples, rng=rng)
    t_sample = time.perf_counter() - t2
    lp_samples = posterior.log_prob_draws(samples, x_test)
    lp_truth = posterior.log_prob(theta_test, x_test)
    report = check_calibration(
        samples,
        theta_test,
        rng=rng,
        names=names,
        log_prob_samples=lp_samples,
        log_prob_truth=lp_truth,
        coverage_tolerance=v.coverage_tolerance,
        sbc_alpha=v.sbc_alpha,
    )
    tarp_result = tarp(samples, theta_test, rng=rng)
    summary = _summaries(samples)
    table = accuracy_table(names, theta_test, rates_test, samples)
    levels = np.array([0.5, 0.68, 0.95])
    marginal, joint = report.coverage.coverage_at(levels)
    curve_levels = np.round(np.linspace(0.05, 0.95, 19), 2)
    curve, curve_joint = report.coverage.coverage_at(curve_levels)
    ranks = sbc_ranks(samples, theta_test, rng=rng)
    calibration = {
        "status": report.verdict,  # "passed", "conservative" (usable, wider than needed) or "failed"
        "wider_by": report.wider_by,
        "reasons": list(report.reasons),
        "notes": list(report.notes),
        "thresholds": report.thresholds,
        "n_test": int(theta_test.shape[0]),
        "n_samples": v.n_samples,
        "levels": levels.tolist(),
        "coverage": {n: marginal[:, k].tolist() for k, n in enumerate(names)},
        "coverage_joint_hpd": None if joint is None else joint.tolist(),
        "sbc_ks_pvalue": dict(zip(names, report.sbc.ks_pvalue.tolist(), strict=True)),
        "tarp": _tarp_dict(tarp_result),
        "recalibration": posterior.recalibration,
        "accuracy": [row.to_dict() for row in table],
        "seconds": {
            "simulate": t_sim,
            "train": t_train,
            "sample_test": t_sample,
            "sample_per_observation": t_sample / max(1, theta_test.shape[0]),
        },
    }
    (out / "calibration.json").write_text(json.dumps(calibration, indent=1))
    np.savez_compressed(
        out / "test_posteriors.npz",
        names=np.array(names),
        truths=theta_test,
        rates=rates_test,
        mean=summary["mean"],
        std=summary["std"],
        quantiles=summary["quantiles"],
        quantile_levels=np.array(QUANTILES),
        sbc_ranks=ranks,
        n_samples=np.array(v.n_samples),
        coverage_levels=curve_levels,
        coverage=curve,
        coverage_joint=np.full(curve_levels.shape, np.nan) if curve_joint is None else curve_joint,
    )
    manifest = {name: file_sha256(post_dir / name) for name in POSTERIOR_FILES}
    manifest_all = {"posterior": manifest, "calibration.json": file_sha256(out / "calibration.json")}
    (out / "manifest.json").write_text(json.dumps(manifest_all, indent=1))
    text = [
        # names, not paths: the summary travels in bundles, without this machine's folders
        f"SBI run {out.resolve().name}: {Path(config.source).name if config.source else 'configuration'}",
        f"parameters: {', '.join(names)}; inputs: channels {list(spec.channels)} on {spec.n_freq} bins, "
        f"scalars {list(spec.scalars)}",
        f"training: {theta.shape[0]} simulations, {t_train:.0f} s; "
        + ", ".join(
            f"member {k}: {h['n_epochs']} epochs (best {h['best_epoch']})"
            for k, h in enumerate(posterior.history)
        ),
        *([recal_text] if recal_text else []),
        str(report),
        "",
        to_markdown(table),
    ]
    (out / "summary.txt").write_text("\n".join(text) + "\n")
    from xtml.learn.train import versions

    record = {
        "kind": "sbi",
        "versions": versions(),
        "platform": platform.platform(),
        # relative to the run folder: no absolute path of this machine travels with the run
        "datasets": {
            "train": relative_path(train_ds.path, out),
            "test": relative_path(test_ds.path, out),
            **({"calibration": relative_path(cal_ds.path, out)} if cal_ds is not None else {}),
        },
        "n_train": int(theta.shape[0]),
        "n_test": int(theta_test.shape[0]),
        "n_calibration": 0 if posterior.recalibration is None else posterior.recalibration["n"],
        "seconds": calibration["seconds"],
        "calibration": calibration["status"],
    }
    (out / SBI_FILE).write_text(json.dumps(record, indent=1))
    writer.add_metrics(
        {
            "n_train": record["n_train"],
            "n_test": record["n_test"],
            "calibration": {
                k: calibration[k] for k in ("status", "coverage", "coverage_joint_hpd", "sbc_ks_pvalue")
            },
            "accuracy": calibration["accuracy"],
            "seconds": calibration["seconds"],
        }
    )
    if scope:
        from xtml.critique.run_scope import fit_run_scope

        summary = fit_run_scope(out)
        writer.add_metrics({"scope": summary})
        if log:
            log(
                f"scope gate: {summary['n_components']} principal components; flags "
                f"{100 * summary['flag_rate']:.1f}% of the {summary['n_held_out']} held-out test observations"
            )
    detail = "; ".join(report.reasons) or "passed"
    if report.verdict == "conservative":
        detail = f"conservative (usable: {report.conservative_text()}): {detail}"
    writer.add_check("calibration", report.usable, detail)
    if log:
        log("\n".join(text[3:]))
        log(f"wrote {out}")
    return out


def _tarp_dict(result: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("ks_pvalue", "max_distance", "atc"):
        value = getattr(result, key, None)
        if value is not None and np.ndim(value) == 0 and math.isfinite(float(value)):
            out[key] = float(value)
    return out


@dataclass(frozen=True)
class RunPosterior:
    """A run's posterior with its inputs and calibration verdict (:func:`load_run_posterior`)."""

    posterior: Any
    inputs: InputSpec
    calibration: dict[str, Any]
    config: dict[str, Any]

    @property
    def passed(self) -> bool:
        """Whether the posterior passed its calibration checks."""
        return self.calibration.get("status") == "passed"

    @property
    def usable(self) -> bool:
        """Calibrated, or conservative: its regions cover at least their level (wider than needed)."""
        return self.calibration.get("status") in ("passed", "conservative")

    def conservative_text(self) -> str:
        """How much wider than needed a conservative posterior's regions are ("" when it is not)."""
        if self.calibration.get("status") != "conservative":
            return ""
        wide = [
            f"{'the joint region' if name == 'joint HPD' else name} by ~{100 * w:.0f} %"
            for name, w in self.calibration.get("wider_by", {}).items()
            if w > 0.005
        ]
        return (
            "CONSERVATIVE POSTERIOR: its credible regions cover at least their level, wider than needed"
            + (" (" + ", ".join(wide) + ")" if wide else "")
        )


def load_run_posterior(run: str | Path, *, allow_uncalibrated: bool = False) -> RunPosterior:
    """Load a run's posterior after checking every file against ``manifest.json``.

    Raises ``ValueError`` for a missing or modified file and :class:`UncalibratedPosteriorError` if the
    posterior failed calibration (unless ``allow_uncalibrated``).
    """
    from xtml.runs import check_files
    from xtml.sbi.posterior import NeuralPosterior

    run = Path(run)
    check_files(run, ["posterior/", "calibration.json", "manifest.json", "config.json"])
    manifest_path = run / "manifest.json"
    if not manifest_path.is_file():
        raise ValueError(
            f"{run} is not a finished xtml SBI run (no manifest.json): train it with `xtml sbi train`"
        )
    recorded = json.loads(manifest_path.read_text())
    manifest = {f"posterior/{k}": v for k, v in recorded["posterior"].items()}
    manifest["calibration.json"] = recorded.get("calibration.json")
    for name in [f"posterior/{n}" for n in POSTERIOR_FILES] + ["calibration.json"]:
        path = run / name
        if not path.is_file():
            raise ValueError(f"{path} is missing")
        digest = file_sha256(path)
        if digest != manifest.get(name):
            raise ValueError(
                f"{path} does not match its hash in {manifest_path} (sha256 {digest[:12]}..., recorded "
                f"{str(manifest.get(name))[:12]}...): the file was modified; refusing to load it"
            )
    calibration = json.loads((run / "calibration.json").read_text())
    if calibration.get("status") not in ("passed", "conservative") and not allow_uncalibrated:
        reasons = "; ".join(calibration.get("reasons", [])) or "no calibration result"
        raise UncalibratedPosteriorError(
            f"the posterior of {run} FAILED its calibration checks ({reasons}): it is overconfident or "
            "biased, and its answers are not trustworthy. Pass --allow-uncalibrated to use it anyway (the "
            "output is marked)."
        )
    return RunPosterior(
        posterior=NeuralPosterior.load(run / "posterior"),
        inputs=InputSpec.from_dict(json.loads((run / "posterior" / "inputs.json").read_text())),
        calibration=calibration,
        config=json.loads((run / "config.json").read_text()),
    )
