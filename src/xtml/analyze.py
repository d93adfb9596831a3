"""``xtml analyze``: real observations in, answers with scope flags out.

Each file (a FITS event file of any OGIP mission, a FITS or ASCII binned light curve) is read, put on exactly
the grid of each trained run given (the bin time, segment length, number of segments and rebinning of the
run's training data, from the run's ``scope.json``), and answered by the run:

* a learning run (``xtml train`` + ``xtml evaluate``): the calibrated probability of the best model of the
  run's comparison (the class with the highest probability for multi-class tasks, the prediction for
  regression);
* an SBI run (``xtml sbi train``): the posterior summary (median and 68 % interval of each parameter).

Every answer carries the run's scope flag (:mod:`xtml.critique.run_scope`: the training domain, the density
gate on the spectrum, the time-domain gap check) and the reasons when it is out of scope. A file that cannot
be analysed (unreadable, no events, too short for the run's segments...) gets an error row naming the file
and the problem; the other files are still analysed (when none exists, that is said before any run is
loaded). Files of several missions go in one call; the table groups them by mission and names the model
that answered for each run and why that one. The runs are loaded once per call. Files are
processed concurrently by ``workers`` threads (reading and FFTs release the GIL), or, given a Dask ``client``
(:mod:`xtml.parallel`), one task per file on its cluster, the loaded runs sent once to each worker.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from xtml.timing.observation import read_observation

__all__ = [
    "AnalysisRow",
    "LoadedRun",
    "SpectraScores",
    "analyze_files",
    "load_run",
    "rows_table",
    "run_grid",
    "score_spectra",
    "stingray_observation",
]


@dataclass(frozen=True)
class AnalysisRow:
    """The answer of one run for one file (``error`` set when the file could not be analysed)."""

    path: str
    run: str
    mission: str = ""
    target: str = ""
    exposure: float = math.nan  # all the good time of the file, s
    exposure_analysed: float = math.nan  # the segments the run analysed, s (``rate`` is theirs)
    rate: float = math.nan  # ct/s in the analysed segments, as the run's spectrum has it
    prediction: str = ""
    model: str = ""  # the model that answered, and why that one
    probability: float | None = None
    posterior: tuple[dict[str, Any], ...] = ()
    in_scope: bool | None = None
    scope_p: float | None = None
    reasons: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    error: str | None = None
    features: tuple[float, ...] = ()  # what the run's model and scope gate saw (not in to_dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (NaN becomes None)."""
        out: dict[str, Any] = {}
        for k, v in self.__dict__.items():
            if k == "features":
                continue
            if isinstance(v, float) and not math.isfinite(v):
                v = None
            out[k] = list(v) if isinstance(v, tuple) else v
        return out


@dataclass
class LoadedRun:
    """A run ready to answer: its kind, the grid of its training data, its model(s) and scope gate."""

    path: Path
    kind: str
    observation: Any
    gate: Any = None
    model: Any = None
    model_name: str = ""
    model_why: str = ""
    calibrator: Any = None
    class_names: tuple[str, ...] = ()
    task: str = ""
    posterior: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


def load_run(run_dir: str | Path, *, allow_uncalibrated: bool = False) -> LoadedRun:
    """Load a run's model, training grid and scope gate (every file checked against its hash).

    ``run_dir`` is a run folder or a bundle (``xtml export``, ``*.xtml.zip``), which is checked and
    unpacked into a temporary folder first (:func:`xtml.runs.bundle.open_bundle`).  A run that did not
    finish, or whose model files differ from its record, is refused.
    """
    from xtml.critique.run_scope import SCOPE_FILE, load_run_scope, run_kind
    from xtml.data.config import SimulationConfig
    from xtml.runs import check_files

    run = Path(run_dir)
    if not run.exists():
        raise ValueError(
            f"run {str(run)!r} does not exist: give a trained run folder or its bundle (*.xtml.zip)"
        )
    if run.is_file():
        from xtml.runs.bundle import open_bundle

        run = open_bundle(run)
    kind = run_kind(run)
    check_files(run, [SCOPE_FILE, "config.json"])
    loaded = load_run_scope(run)
    if loaded is None:
        raise ValueError(
            f"{run} has no {SCOPE_FILE} (trained before xtml had a scope gate): refit it with "
            f"`python -c \"from xtml.critique.run_scope import fit_run_scope; fit_run_scope('{run}')\"`"
        )
    doc = json.loads((run / SCOPE_FILE).read_text())
    if "simulation" not in doc:
        raise ValueError(f"{run / SCOPE_FILE} does not record the training grid; refit the scope gate")
    observation = SimulationConfig.from_dict(doc["simulation"]).observation
    out = LoadedRun(path=run, kind=kind, observation=observation, gate=loaded[0])
    if kind == "sbi":
        from xtml.sbi.run import UncalibratedPosteriorError, load_run_posterior

        try:
            out.posterior = load_run_posterior(run, allow_uncalibrated=allow_uncalibrated)
        except UncalibratedPosteriorError as err:
            raise ValueError(str(err)) from None
        return out
    from xtml.learn.calibration import ScoreCalibrator
    from xtml.learn.evaluate import evaluation_dir
    from xtml.learn.persist import load_model

    check_files(run, ["models/", "train.json"])
    check_files(evaluation_dir(run), ["metrics.json"])
    metrics = json.loads((evaluation_dir(run) / "metrics.json").read_text())
    if "headline" in metrics:  # the evaluation's best model (xtml.learn.headline)
        out.model_name = metrics["headline"]["best_model"]
        out.model_why = "the evaluation's best model (its headline)"
    else:  # evaluated before the headline record, or not a detection task
        rows = metrics.get("comparison", {}).get("rows", [])
        ml = [r for r in rows if r["scorer"] in metrics["models"]]
        out.model_name = (
            max(ml, key=lambda r: r["tpr_at_fpr"])["scorer"] if ml else next(iter(metrics["models"]))
        )
        out.model_why = (
            "the highest TPR at the target FPR on the test set"
            if ml
            else "the run's first model (no comparison)"
        )
    out.model = load_model(run / "models" / out.model_name)
    extra = json.loads((run / "models" / out.model_name / "extra.json").read_text())
    out.extra = extra
    out.task = metrics["task"]
    out.class_names = tuple(metrics["names"])
    if "calibration" in extra:
        out.calibrator = ScoreCalibrator.from_dict(extra["calibration"])
    return out


def run_grid(run: LoadedRun) -> Any:
    """A one-row PowerSpectrum on the run's grid (its frequencies, ``m``, widths; powers 1): what
    :func:`score_spectra` puts arrays on, and what a user's spectra must match."""
    from xtml.timing import PowerSpectrum

    o = run.observation
    n_freq = (o.segment_bins - 1) // 2
    length = o.segment_length
    template = PowerSpectrum(
        freq=np.arange(1, n_freq + 1) / length,
        power=np.ones((1, n_freq)),
        m=np.full(n_freq, o.n_segments),
        df=np.full(n_freq, 1 / length),
        norm=o.norm,
        mean_rate=[1.0],
        segment_length=length,
        dt=o.dt,
        n_segments=o.n_segments,
    )
    return o.rebin(template)


@dataclass(frozen=True)
class SpectraScores:
    """What a run answers for a batch of spectra held in memory (:func:`score_spectra`), row by row.

    ``values``: for a learning run, per model of the run, the (calibrated) class probabilities
    ``(n, n_classes)`` or the predictions ``(n, n_outputs)``, columns named by ``names``; for an SBI run,
    the posterior ``"median"``, ``"lo68"``, ``"hi68"``, ``"lo95"``, ``"hi95"`` of each parameter ``(n,
    n_params)``. ``best`` is the model the run answers with in ``xtml analyze``. ``in_scope``, ``scope_p``
    and ``reasons`` are the scope gate's, per row.
    """

    kind: str
    names: tuple[str, ...]
    values: dict[str, NDArray[np.float64]]
    best: str
    in_scope: NDArray[np.bool_]
    scope_p: NDArray[np.float64]
    reasons: tuple[tuple[str, ...], ...]


def score_spectra(
    run: LoadedRun | str | Path,
    spectra: Any,
    *,
    mean_rate: Any = None,
    n_samples: int = 2000,
    seed: int = 0,
) -> SpectraScores:
    """Score spectra a user holds in memory with every model of a run, the scope gate applied.

    Parameters
    ----------
    run : LoadedRun or path
        A run (:func:`load_run`; a path is loaded, uncalibrated posteriors refused).
    spectra : PowerSpectrum or array_like of shape (n, n_freq)
        Averaged spectra on the run's grid (:func:`run_grid`: same frequencies and ``m``; a
        PowerSpectrum in another normalisation is converted), or their powers in the run's normalisation.
    mean_rate : array_like of shape (n,), optional
        Detected mean count rates, ct/s: required with an array (it is an input of every model).
    n_samples : int
        Posterior draws per row (SBI runs).
    seed : int
        Seed of the posterior draws.

    Raises
    ------
    ValueError
        Spectra on another grid (naming the difference), or an array without its rates.
    """
    from xtml.critique.run_scope import learn_features, score_inputs
    from xtml.timing import PowerSpectrum

    loaded = run if isinstance(run, LoadedRun) else load_run(run)
    grid = run_grid(loaded)
    if isinstance(spectra, PowerSpectrum):
        ps = spectra.to_norm(grid.norm)
        if ps.n_freq != grid.n_freq or not np.allclose(ps.freq, grid.freq, rtol=1e-9):
            raise ValueError(
                f"the spectra have {ps.n_freq} frequencies ({ps.freq[0]:.4g}-{ps.freq[-1]:.4g} Hz); the run "
                f"was trained on {grid.n_freq} ({grid.freq[0]:.4g}-{grid.freq[-1]:.4g} Hz): make them with "
                "its bin time, segment length and rebinning (run_grid)"
            )
        if not np.array_equal(ps.m, grid.m):
            raise ValueError(
                f"the spectra average {int(ps.m[0])} powers in their first bin where the run's average "
                f"{int(grid.m[0])}: make them from {loaded.observation.n_segments} segments"
            )
    else:
        power = np.atleast_2d(np.asarray(spectra, dtype=np.float64))
        if power.shape[1] != grid.n_freq:
            raise ValueError(
                f"spectra must have the run's {grid.n_freq} frequencies per row; got shape {power.shape}"
            )
        if mean_rate is None:
            raise ValueError("give mean_rate (ct/s per row) with an array of powers: every model uses it")
        rate = np.broadcast_to(np.asarray(mean_rate, dtype=np.float64), (power.shape[0],))
        ps = PowerSpectrum(
            freq=grid.freq,
            power=power,
            m=grid.m,
            df=grid.df,
            norm=grid.norm,
            mean_rate=rate,
            segment_length=grid.segment_length,
            dt=grid.dt,
            n_segments=grid.n_segments,
        )
    values: dict[str, NDArray[np.float64]] = {}
    if loaded.kind == "sbi":
        from xtml.sbi.inputs import spectrum_inputs

        rp = loaded.posterior
        x = np.vstack(
            [spectrum_inputs({"power": ps.select([i])}, rp.inputs, what=f"row {i}") for i in range(ps.n)]
        )
        draws = rp.posterior.sample(x, n_samples, rng=seed)  # (n, n_samples, n_params)
        q = np.quantile(draws, [0.5, 0.16, 0.84, 0.025, 0.975], axis=1)
        values = dict(zip(("median", "lo68", "hi68", "lo95", "hi95"), q, strict=True))
        names, best, features = tuple(rp.posterior.names), "posterior", x
    else:
        from xtml.learn.calibration import ScoreCalibrator
        from xtml.learn.inputs import spectra_to_X
        from xtml.learn.persist import load_model

        X, _ = spectra_to_X(ps)
        for folder in sorted(p for p in (loaded.path / "models").iterdir() if p.is_dir()):
            model = loaded.model if folder.name == loaded.model_name else load_model(folder)
            if loaded.task in ("detect", "state"):
                out = model.predict_proba(X)
                extra = json.loads((folder / "extra.json").read_text())
                if "calibration" in extra:
                    out = ScoreCalibrator.from_dict(extra["calibration"]).transform(out)
            else:
                out = np.atleast_2d(model.predict(X)).reshape(X.shape[0], -1)
            values[folder.name] = np.asarray(out, dtype=np.float64)
        names, best, features = loaded.class_names, loaded.model_name, learn_features(X)
    result = score_inputs(
        loaded.gate,
        features,
        mean_rate=ps.mean_rate,
        freq=ps.freq,
        m=ps.m,
        segment_length=ps.segment_length,
        norm=ps.norm,
    )
    return SpectraScores(
        kind=loaded.kind,
        names=tuple(names),
        values=values,
        best=best,
        in_scope=np.asarray(result.in_scope, dtype=bool),
        scope_p=np.asarray(result.p_value, dtype=np.float64),
        reasons=tuple(tuple(r) for r in result.reasons),
    )


def stingray_observation(name: str) -> Path:
    """A real observation shipped with Stingray's tests (e.g. ``"xmm_test.fits"``, ``"xte_test.evt.gz"``)."""
    import stingray

    path = Path(stingray.__file__).parent / "tests" / "data" / name
    if not path.is_file():
        raise ValueError(f"Stingray ships no test file {name!r} (looked in {path.parent})")
    return path


def _spectrum(source: Any, run: LoadedRun) -> tuple[Any, list[str]]:
    from xtml.reference.fitcli import rate_text
    from xtml.timing import EventData, observation_spectrum

    o = run.observation
    ps, info = observation_spectrum(
        source, dt=o.dt, segment_size=o.segment_length, n_segments=o.n_segments, norm=o.norm
    )
    if isinstance(source, EventData):
        info["file_rate_cps"] = source.times.size / float(source.exposure)
    notes = [f"{k}: {v}" for k, v in info.items()]
    notes.append(f"rate: {rate_text(info)}")
    return o.rebin(ps), notes


def _scope(
    run: LoadedRun, features: NDArray[np.float64], ps: Any, counts: NDArray[Any] | None
) -> tuple[bool, float, list[str]]:
    from xtml.critique.run_scope import score_inputs
    from xtml.critique.scope import gap_reasons

    result = score_inputs(
        run.gate,
        features,
        mean_rate=np.atleast_1d(ps.mean_rate),
        freq=ps.freq,
        m=ps.m,
        segment_length=ps.segment_length,
        norm=ps.norm,
    )
    reasons = list(result.reasons[0])
    if counts is not None:
        reasons += gap_reasons(counts, run.observation.dt)[0]
    return not reasons, float(result.p_value[0]), reasons


def _answer_learn(run: LoadedRun, ps: Any) -> dict[str, Any]:
    from xtml.critique.run_scope import learn_features
    from xtml.learn.inputs import spectra_to_X

    X, _ = spectra_to_X(ps)
    out: dict[str, Any] = {"features": learn_features(X)}
    if run.task in ("detect", "state"):
        proba = run.model.predict_proba(X)
        if run.calibrator is not None:
            proba = run.calibrator.transform(proba)
        k = int(np.argmax(proba[0]))
        if run.task == "detect" and len(run.class_names) == 2:
            p = float(proba[0, 1])
            out["probability"] = p
            out["prediction"] = f"{run.class_names[1]} p = {p:.3f} ({run.model_name})"
        else:
            out["probability"] = float(proba[0, k])
            out["prediction"] = f"{run.class_names[k]} p = {proba[0, k]:.3f} ({run.model_name})"
    else:
        pred = np.atleast_2d(run.model.predict(X))[0]
        out["prediction"] = ", ".join(f"{n} = {v:.4g}" for n, v in zip(run.class_names, pred, strict=False))
    return out


def _answer_sbi(run: LoadedRun, ps: Any, what: str, n_samples: int, seed: int) -> dict[str, Any]:
    from xtml.sbi.infer import Inference
    from xtml.sbi.inputs import spectrum_inputs

    rp = run.posterior
    x = spectrum_inputs({"power": ps}, rp.inputs, what=what)
    samples = rp.posterior.sample(x, n_samples, rng=seed)[0]
    inf = Inference(names=rp.posterior.names, samples=samples, source=what, calibrated=rp.usable, inputs=x)
    summary = inf.summary()
    text = "; ".join(
        f"{r['parameter']} {r['median']:.3g} [{r['lo68']:.3g}, {r['hi68']:.3g}]" for r in summary
    )
    if not rp.usable:
        text += " [UNCALIBRATED posterior]"
    elif not rp.passed:
        text += " [conservative posterior: 68% intervals wider than needed]"
    return {"features": x, "posterior": tuple(summary), "prediction": text}


def _analyze_one(
    path: Path,
    runs: Sequence[LoadedRun],
    *,
    energy_range: tuple[float, float] | None,
    n_samples: int,
    seed: int,
    plot_dir: Path | None,
    exclude_gaps: bool = False,
    pi_range: tuple[float, float] | None = None,
) -> list[AnalysisRow]:
    from xtml.timing.gaps import gti_without_gaps

    try:
        source = read_observation(path, energy_range=energy_range, pi_range=pi_range)
    except Exception as err:
        return [AnalysisRow(path=str(path), run=str(r.path), error=_message(path, err)) for r in runs]
    gap_notes: list[str] = []
    if exclude_gaps:
        source, gap_notes = gti_without_gaps(source)
    mission = str(getattr(source, "mission", "") or "unknown")
    base = {
        "path": str(path),
        "mission": mission,
        "target": str(getattr(source, "target", "") or ""),
        "exposure": float(getattr(source, "exposure", math.nan) or math.nan),
    }
    rows = []
    for run in runs:
        try:
            ps, notes = _spectrum(source, run)
            notes = gap_notes + notes
            if run.kind == "sbi":
                answer = _answer_sbi(run, ps, str(path), n_samples, seed)
            else:
                answer = _answer_learn(run, ps)
            counts = _binned_counts(source, run, ps)
            features = answer.pop("features")
            ok, p, reasons = _scope(run, features, ps, counts)
            if plot_dir is not None:
                notes.append(f"plot: {_plot(plot_dir, path, run, ps, answer, ok)}")
            rows.append(
                AnalysisRow(
                    features=tuple(np.asarray(features, dtype=float).ravel().tolist()),
                    run=str(run.path),
                    model=_model_text(run),
                    rate=float(np.atleast_1d(ps.mean_rate)[0]),
                    exposure_analysed=float(ps.n_segments * ps.segment_length),
                    in_scope=ok,
                    scope_p=p,
                    reasons=tuple(reasons),
                    notes=tuple(notes),
                    **answer,
                    **base,
                )
            )
        except Exception as err:
            rows.append(AnalysisRow(run=str(run.path), error=_message(path, err), **base))
    return rows


def _model_text(run: LoadedRun) -> str:
    """Which model of the run answered, and why that one."""
    if run.kind == "sbi":
        rp = run.posterior
        state = "calibrated" if rp.passed else ("conservative" if rp.usable else "UNCALIBRATED")
        return f"the run's neural posterior ({state} on its held-out simulations)"
    return f"{run.model_name}: {run.model_why}"


def _plot(
    plot_dir: Path, path: Path, run: LoadedRun, ps: Any, answer: dict[str, Any], in_scope: bool
) -> Path:
    """The analysed spectrum (and, for SBI, nothing more: the corner plot is `xtml sbi infer --plot`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from xtml.critique.plots import plot_spectra

    plot_dir.mkdir(parents=True, exist_ok=True)
    stem = path.name.split(".")[0]
    out = plot_dir / f"{stem}_{run.path.name}.png"
    ax = plot_spectra(ps, [0], labels=[path.name])
    flag = "in scope" if in_scope else "OUT OF SCOPE"
    ax.set_title(
        f"{path.name}: {answer.get('prediction', '')[:70]}\n[{flag} for run {run.path.name}]", fontsize=8
    )
    ax.figure.savefig(out, dpi=100, bbox_inches="tight")
    plt.close(ax.figure)
    return out


def _binned_counts(source: Any, run: LoadedRun, ps: Any) -> NDArray[Any] | None:
    """Counts in bins of the run's dt inside each analysed segment, segments side by side (for the gap
    check; the segments are the first whole ones in the GTIs, as ``observation_spectrum`` takes them).
    None for a binned light curve (its own bins are what they are)."""
    times = getattr(source, "times", None)
    if times is None:
        return None
    o = run.observation
    n_want = max(1, int(getattr(ps, "n_segments", 1) or 1))
    starts: list[float] = []
    for a, b in np.asarray(source.gti, dtype=np.float64).reshape(-1, 2):
        k = int(np.floor((b - a) / o.segment_length + 1e-9))
        starts += [a + j * o.segment_length for j in range(k)]
    pieces = []
    for s0 in starts[:n_want]:
        edges = s0 + np.arange(o.segment_bins + 1) * o.dt
        pieces.append(np.histogram(times, bins=edges)[0])
    return np.concatenate(pieces)[None, :] if pieces else None


def _message(path: Path, err: Exception) -> str:
    text = str(err) or type(err).__name__
    return text if str(path) in text else f"{path}: {text}"


def analyze_files(
    paths: Sequence[str | Path],
    runs: Sequence[str | Path],
    *,
    workers: int = 1,
    energy_range: tuple[float, float] | None = None,
    n_samples: int = 2000,
    seed: int = 0,
    allow_uncalibrated: bool = False,
    plot_dir: str | Path | None = None,
    client: Any = None,
    exclude_gaps: bool = False,
    pi_range: tuple[float, float] | None = None,
) -> list[AnalysisRow]:
    """Analyse every file with every run (module doc); one row per (file, run), in the order given.

    ``energy_range`` (keV) and ``pi_range`` (PI channels) select the events of event files (a light curve
    given either is an error row). ``exclude_gaps``: cut data gaps inside the GTIs of event files out of
    them first (:func:`xtml.timing.gaps.gti_without_gaps`, said in the notes) instead of letting the scope
    gate flag them.

    ``plot_dir``: write each analysed spectrum there as ``<file>_<run>.png``.  ``client``: a Dask client
    (:func:`xtml.parallel.dask_client`) to analyse the files on, one task per file (``workers`` is then
    ignored; the files and ``plot_dir`` must be where every worker sees them); the rows are the same.
    """
    if not paths:
        raise ValueError("give at least one event or light-curve file")
    if not runs:
        raise ValueError("give at least one trained run (--run RUN_DIR)")
    if workers < 1:
        raise ValueError(f"workers must be >= 1; got {workers}")
    if isinstance(n_samples, bool) or not isinstance(n_samples, int | np.integer) or n_samples < 2:
        raise ValueError(f"n_samples (SBI posterior draws) must be an integer >= 2, got {n_samples!r}")
    if energy_range is not None:
        lo, hi = (float(v) for v in energy_range)
        if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo < hi):
            raise ValueError(f"energy_range must be (low, high) keV with 0 <= low < high, got {energy_range}")
    files = [Path(p) for p in paths]
    missing = [str(p) for p in files if not p.exists()]
    if len(missing) == len(files):  # said before the runs and their libraries are loaded
        raise ValueError(
            f"{', '.join(missing)}: does not exist"
            if len(missing) == 1
            else f"these files do not exist: {', '.join(missing)}"
        )
    loaded = [load_run(r, allow_uncalibrated=allow_uncalibrated) for r in runs]
    kwargs = {
        "energy_range": energy_range,
        "n_samples": n_samples,
        "seed": seed,
        "plot_dir": None if plot_dir is None else Path(plot_dir),
        "exclude_gaps": exclude_gaps,
        "pi_range": pi_range,
    }

    def one(path: Path) -> list[AnalysisRow]:
        return _analyze_one(path, loaded, **kwargs)  # type: ignore[arg-type]

    if client is not None and len(files) > 1:
        from xtml.parallel import map_tasks

        (runs_future,) = client.scatter([loaded], broadcast=True)  # the models, once per worker
        results = map_tasks(
            _analyze_one,
            files,
            client=client,
            args=(runs_future,),
            kwargs=kwargs,
            desc="analyze",
            unit="file",
            progress=False,
            retries=0,  # a file that fails gets an error row; a dead worker's files are rerun anyway
        )
    elif workers == 1 or len(files) <= 2:
        results = [one(p) for p in files]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(one, files))
    rows = [row for rows in results for row in rows]
    if plot_dir is not None:
        for run in loaded:
            _domain_plot(Path(plot_dir), run, [r for r in rows if r.run == str(run.path) and r.error is None])
    return rows


def _domain_plot(plot_dir: Path, run: LoadedRun, rows: Sequence[AnalysisRow]) -> Path | None:
    """PCA of the run's training sample and the analysed files, coloured by domain (simulated vs real)."""
    from xtml.critique.run_scope import training_sample

    sample = training_sample(run.path)
    if sample is None or not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from xtml.critique.diag_plots import plot_embedding

    real = np.array([r.features for r in rows], dtype=float)
    if real.shape[1] != sample.shape[1]:
        return None
    x = np.vstack([sample, real])
    domain = np.array(["simulated (training)"] * sample.shape[0] + ["real (analysed)"] * real.shape[0])
    ax = plot_embedding(x, color=domain, color_name="domain", method="pca")
    ax.set_title(f"run {run.path.name}: training sample and {real.shape[0]} analysed file(s)", fontsize=9)
    plot_dir.mkdir(parents=True, exist_ok=True)
    out = plot_dir / f"domain_{run.path.name}.png"
    ax.figure.savefig(out, dpi=100, bbox_inches="tight")
    plt.close(ax.figure)
    return out


def rows_table(rows: Sequence[AnalysisRow]) -> str:
    """The rows as an aligned text table, grouped by mission (a heading per mission, in the order first
    seen; files in the order given within it), out-of-scope answers and errors marked loudly, and the
    model that answered for each run.

    The rate is the one of the analysed segments (the spectrum the run answered), next to the seconds
    analysed and the file's good time; the note ``rate`` of a row also gives the file's rate over all of it.
    """
    columns = f"{'analysed/good s':>15} {'ct/s':>9}  {'scope':<12} answer"
    lines = [f"{'file':<28} {'mission':<9} {'target':<14} {columns}"]
    missions = list(dict.fromkeys((r.mission or "unknown").upper() for r in rows))
    for mission in missions:
        group = [r for r in rows if (r.mission or "unknown").upper() == mission]
        if len(missions) > 1:
            lines.append(f"-- {mission} ({len(group)} row(s))")
        for r in group:
            lines += _row_lines(r)
    models = {r.run: r.model for r in rows if r.model}
    lines += [f"model of {run}: {model}" for run, model in models.items()]
    return "\n".join(lines)


def _row_lines(r: AnalysisRow) -> list[str]:
    name = Path(r.path).name[:28]
    if r.error:
        return [
            f"{name:<28} {r.mission[:9]:<9} {r.target[:14]:<14} {'':>15} {'':>9}  {'ERROR':<12} {r.error}"
        ]
    scope = "in scope" if r.in_scope else "OUT OF SCOPE"
    exposure = f"{r.exposure_analysed:.0f}/{r.exposure:.0f}"
    lines = [
        f"{name:<28} {r.mission[:9]:<9} {r.target[:14]:<14} {exposure:>15} {r.rate:>9.4g}  "
        f"{scope:<12} {r.prediction}"
    ]
    if not r.in_scope:
        lines += [f"{'':>28}   !!! {why}" for why in r.reasons]
    return lines
