"""``xtml train``: split, tune, cross-validate, fit and calibrate every model, without touching the test set.

The protocol, in the field's order:

1. the task's targets and the standard input matrix from a simulated dataset (:mod:`xtml.learn.tasks`);
2. a split grouped by simulated observation and stratified by label
   (:func:`~xtml.learn.protocol.split_dataset`); only the train and validation indices are written to
   the run folder, the test set is what is left and stays locked until ``xtml evaluate``;
3. per model, simple first: an optional hyperparameter search with grouped CV inside the training rows,
   k-fold cross-validation reported as mean +- std (a table: :func:`cv_table`), the final fit on the
   training rows, calibration (or, for regression, the uncertainty scale) on the validation rows, and a
   learning curve (:mod:`xtml.learn.learning_curve`: the headline metric on the validation rows against
   training-set size, :func:`curve_table`);
4. the run folder, a recorded run (:mod:`xtml.runs`: ``record.json`` with the configuration, seeds,
   versions, the dataset's content hash, metrics and the hash of every file; ``config.toml``):
   ``config.json`` (the resolved training configuration), ``train.json`` (dataset, split sizes,
   per-model CV, learning curve and validation figures, train and predict times), ``split.npz`` (train
   and validation rows; integers only), ``models/NAME/`` (safe model files, :mod:`xtml.learn.persist`, plus
   ``extra.json`` with the calibration or uncertainty scale) and ``scope.json`` (the scope gate,
   :mod:`xtml.critique.run_scope`).
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.base import clone
from threadpoolctl import threadpool_limits

from xtml.data import open_dataset
from xtml.learn.calibration import fit_calibrator
from xtml.learn.config import ModelSpec, TrainConfig
from xtml.learn.learning_curve import learning_curve
from xtml.learn.metrics import binary_metrics, multiclass_metrics, regression_metrics
from xtml.learn.models import build_pipeline, predict_with_std, tree_spread
from xtml.learn.persist import save_model
from xtml.learn.protocol import cross_validate_model, tune
from xtml.learn.split import split_dataset
from xtml.learn.tasks import TaskData, load_task

__all__ = [
    "TRAIN_FILE",
    "curve_table",
    "cv_table",
    "json_ready",
    "load_train_record",
    "text_table",
    "train_run",
    "train_tables_text",
    "versions",
]

_OPENMP_MIN_ROWS = 20_000
_ONE_SIGMA = 0.6827  # probability inside +-1 sigma of a Gaussian


def versions() -> dict[str, str]:
    """Versions of the packages a run depends on, and the platform."""
    import importlib.metadata as md

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("xtml", "numpy", "scipy", "scikit-learn", "skops", "torch", "stingray", "zarr"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def json_ready(value: Any) -> Any:
    """Nested dicts/lists with numpy arrays and scalars as plain JSON values."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def validation_metrics(
    td: TaskData, y: NDArray, proba: NDArray | None, pred: NDArray | None, std: NDArray | None
) -> dict[str, Any]:
    """The task's metrics on held-out rows (probabilities for classification, predictions for regression)."""
    if td.is_classification and proba is not None:
        if len(td.names) == 2:
            return binary_metrics(y, proba[:, 1], threshold=0.5)
        return multiclass_metrics(y, proba, labels=list(range(len(td.names))))
    assert pred is not None
    return regression_metrics(y, pred if y.ndim > 1 else pred[:, 0], std if y.ndim > 1 else std[:, 0])


def _train_one(
    spec: ModelSpec,
    td: TaskData,
    train: NDArray[np.int64],
    val: NDArray[np.int64],
    config: TrainConfig,
    out: Path,
) -> dict[str, Any]:
    classification = td.is_classification
    n_outputs = 1 if classification else td.y.shape[1]
    pipe = build_pipeline(spec, td.grid, classification=classification, n_outputs=n_outputs, seed=config.seed)
    y = td.y if classification or n_outputs > 1 else td.y[:, 0]
    x_tr, y_tr, g_tr = td.X[train], y[train], td.groups[train]
    info: dict[str, Any] = {"kind": spec.kind, "input": spec.input, "params": dict(spec.params)}
    info["validation_rows"] = f"the {len(val):,} validation spectra"
    if spec.search:
        t0 = time.perf_counter()
        found = tune(
            pipe,
            {f"model__{k}": v for k, v in spec.search.items()},
            x_tr,
            y_tr,
            g_tr,
            n_splits=config.n_splits,
            rng=config.seed,
        )
        pipe = clone(pipe).set_params(**found.best_params)
        info["search"] = {
            "best_params": found.best_params,
            "best_score": found.best_score,
            "scoring": found.scoring,
            "time_s": time.perf_counter() - t0,
        }
    if spec.cv:
        cv = cross_validate_model(pipe, x_tr, y_tr, g_tr, n_splits=config.n_splits, rng=config.seed)
        info["cv"] = {
            "summary": cv.summary(),
            "mean": cv.mean,
            "std": cv.std,
            "folds": {k: v.tolist() for k, v in cv.scores.items()},
            "n_splits": config.n_splits,
            "rows": f"the {len(train):,} training spectra, {config.n_splits} folds grouped by observation",
        }
    t0 = time.perf_counter()
    model = clone(pipe).fit(x_tr, y_tr)
    info["fit_time_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    extra: dict[str, Any] = {}
    if classification:
        raw = model.predict_proba(td.X[val])
        info["predict_time_per_spectrum_s"] = (time.perf_counter() - t0) / max(len(val), 1)
        method = "isotonic" if len(td.names) == 2 else "temperature"
        calibrator = fit_calibrator(raw, td.y[val], method)
        extra["calibration"] = calibrator.to_dict()
        info["validation_uncalibrated"] = validation_metrics(td, td.y[val], raw, None, None)
        full = raw[:, 1] if len(td.names) == 2 else raw
    else:
        mean, _ = predict_with_std(model, td.X[val])
        info["predict_time_per_spectrum_s"] = (time.perf_counter() - t0) / max(len(val), 1)
        # 1-sigma scales fitted on the validation rows so that 68.3 % of |residuals| fall inside (robust
        # to the heavy tails of regression residuals, where an RMS would give intervals far too wide)
        resid = np.abs(mean - td.y[val].reshape(len(val), -1))
        spread = tree_spread(model, td.X[val])
        extra["residual_std"] = np.quantile(resid, _ONE_SIGMA, axis=0).tolist()
        extra["spread_scale"] = [1.0] * n_outputs
        if np.all(spread > 0):  # a forest: the trees' spread, rescaled
            extra["residual_std"] = [0.0] * n_outputs
            extra["spread_scale"] = np.quantile(resid / spread, _ONE_SIGMA, axis=0).tolist()
        if type(model.steps[-1][1]).__name__ == "CNNRegressor":
            extra["residual_std"] = [0.0] * n_outputs  # the network predicts its own uncertainty
        pred, std = predict_with_std(
            model, td.X[val], np.asarray(extra["residual_std"]), np.asarray(extra["spread_scale"])
        )
        info["validation"] = validation_metrics(td, td.y[val], None, pred, std)
        full = mean.reshape(td.y[val].shape) if n_outputs > 1 else mean[:, 0]
    if spec.learning_curve:
        t0 = time.perf_counter()
        task = "detect" if classification and len(td.names) == 2 else config.task.kind
        curve = learning_curve(
            pipe,
            x_tr,
            y_tr,
            g_tr,
            td.X[val],
            y[val],
            task="state" if classification and task != "detect" else task,
            fractions=config.curve_fractions,
            full_scores=full,
            fpr_target=config.evaluation.fpr,
            n_boot=min(config.evaluation.n_boot, 500),
            level=config.evaluation.level,
            groups_val=td.groups[val],
            rows=f"the {len(val):,} validation spectra",
            rng=config.seed,
        )
        info["learning_curve"] = curve.to_dict() | {"time_s": time.perf_counter() - t0}
    files = save_model(model, out / "models" / spec.name)
    (out / "models" / spec.name / "extra.json").write_text(json.dumps(json_ready(extra), indent=1))
    info["files"] = files
    return info


TRAIN_FILE = "train.json"


def load_train_record(run_dir: str | Path) -> dict[str, Any]:
    """The ``train.json`` of a training run (dataset, split sizes, per-model figures).

    ``["dataset"]["path"]`` is returned usable from the current directory: ``train.json`` stores it
    relative to the run folder (no absolute path of the machine that trained it travels with the run).

    Raises ``ValueError`` naming the folder if it is not a finished training run.
    """
    run = Path(run_dir)
    path = run / TRAIN_FILE
    if not path.is_file():
        raise ValueError(
            f"{str(run)!r} is not a finished training run (no {TRAIN_FILE}); run `xtml train` first"
        )
    record = json.loads(path.read_text())
    dataset = record.get("dataset")
    if isinstance(dataset, dict) and isinstance(dataset.get("path"), str):
        # stored relative to the run folder (older runs: absolute, which the join leaves as it is)
        dataset["path"] = os.path.normpath(run / dataset["path"])
    return record


def _model_metrics(info: dict[str, Any]) -> dict[str, Any]:
    """The figures of one model that a run record keeps (validation metrics and the CV summary)."""
    out = {k: info[k] for k in ("validation", "validation_uncalibrated", "fit_time_s") if k in info}
    if "search" in info:
        out["search"] = {k: v for k, v in info["search"].items() if k != "time_s"}
    cv = info.get("cv")
    if cv:
        out["cv"] = {k: v for k, v in cv.items() if k not in ("summary", "rows")}
    curve = info.get("learning_curve")
    if curve:
        out["learning_curve"] = {
            k: curve[k] for k in ("metric", "sizes", "estimate", "judged_on", "still_improving")
        }
    return out


#: Readable names of scikit-learn's CV scores; ``neg_*`` scores are shown with the sign turned back.
_SCORE_NAMES = {
    "roc_auc": "ROC-AUC",
    "neg_log_loss": "log loss",
    "neg_root_mean_squared_error": "RMSE",
    "accuracy": "accuracy",
}


def cv_table(models: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the cross-validation table of a training record's ``models``.

    One row per model and CV score: the score's name, its mean and standard deviation over the folds
    (ddof = 1; a spread, not a confidence interval), every fold's score and the tuned hyper-parameters.
    ``neg_*`` scores of scikit-learn are shown as the positive error (``neg_log_loss`` as the log loss).
    Models that were not cross-validated show "not cross-validated".
    """
    header = ["model", "CV score", "mean", "std", "folds", "tuned hyper-parameters"]
    rows = []
    for name, info in models.items():
        cv = info.get("cv")
        tuned = info.get("search", {}).get("best_params", {})
        params = ", ".join(f"{k.removeprefix('model__')}={v}" for k, v in tuned.items()) or "-"
        if not cv:
            rows.append([name, "not cross-validated", "-", "-", "-", params])
            continue
        for score, mean in cv["mean"].items():
            sign = -1.0 if score.startswith("neg_") else 1.0
            folds = cv.get("folds", {}).get(score, [])
            rows.append(
                [
                    name,
                    _SCORE_NAMES.get(score, score),
                    f"{sign * mean:.3f}",
                    f"{cv['std'][score]:.3f}",
                    ", ".join(f"{sign * f:.3f}" for f in folds) or "-",
                    params,
                ]
            )
    return header, rows


def curve_table(models: dict[str, Any]) -> tuple[str, list[str], list[list[str]]]:
    """Title, header and rows of the learning curves of a training record's ``models`` (those with one).

    One row per model: the metric its verdict reads (the headline metric, or the ROC-AUC where the
    validation rows do not resolve the TPR at the fixed FPR) at each training-set size with its interval,
    then the verdict of :class:`~xtml.learn.learning_curve.LearningCurve`.  Models share the sizes and
    the validation rows; the title names them.
    """
    from xtml.learn.learning_curve import LearningCurve

    curves = {
        n: LearningCurve.from_dict(m["learning_curve"]) for n, m in models.items() if m.get("learning_curve")
    }
    if not curves:
        return "", [], []
    first = next(iter(curves.values()))
    label = first.judged()[0]
    title = f"learning curves: {label} on {first.rows} ({100 * first.level:g}% intervals)"
    if first.judged_on != first.metric:
        title += f"; the {first.label} is not resolved by them ({first.n_negative:,} QPO-free)"
    header = ["model", *(f"{s:,} training spectra" for s in first.sizes), "last doubling"]
    rows = []
    for name, c in curves.items():
        _, est, low, high = c.judged()
        cells = [f"{e:.3f} [{lo:.3f}, {hi:.3f}]" for e, lo, hi in zip(est, low, high, strict=True)]
        rows.append([name, *cells, c.verdict.split(":")[0]])
    return title, header, rows


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A fixed-width plain-text table (for the terminal and summary files), one string per line."""
    width = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return [
        "  ".join(str(c).ljust(w) for c, w in zip(r, width, strict=True)).rstrip() for r in [header, *rows]
    ]


def train_tables_text(models: dict[str, Any]) -> list[str]:
    """What ``xtml train`` prints after the fits: the CV table and the learning curves with verdicts."""
    lines = []
    cv = next((m["cv"] for m in models.values() if m.get("cv")), None)
    where = f" on {cv['rows']}" if cv else ""
    lines.append(f"cross-validation{where} (mean and std over the folds):")
    lines += ["  " + line for line in text_table(*cv_table(models))]
    title, header, rows = curve_table(models)
    if rows:
        lines.append(title + ":")
        lines += ["  " + line for line in text_table(header, rows)]
        lines += [
            f"  {n}: {m['learning_curve']['verdict']}" for n, m in models.items() if m.get("learning_curve")
        ]
    return lines


def train_run(
    config: TrainConfig,
    data: str | Path,
    out: str | Path,
    *,
    overwrite: bool = False,
    log: Callable[[str], None] | None = print,
    command: Sequence[str] | None = None,
    scope: bool = True,
) -> Path:
    """Run the training protocol (module docstring) on dataset ``data``; write the run folder ``out``.

    ``data`` is a store or an ``xtml simulate`` run folder.  ``command`` is recorded as the command
    that started the run (default: this function's call).  ``scope`` fits the scope gate into the run.

    Raises ``ValueError`` if ``out`` already holds a run (unless ``overwrite``; a
    :class:`~xtml.runs.RunCompleteError` if it is this very run, finished) or the task does not fit the
    dataset.
    """
    from xtml.data.simrun import api_command
    from xtml.runs import run_folder
    from xtml.runs.folder import relative_path

    say = log or (lambda _msg: None)
    ds = open_dataset(data)
    td = load_task(ds, config.task)
    cmd = command or api_command("learn.train_run", data=data, out=out)
    seeds = {"split_and_models": config.seed, "dataset": ds.meta["seed"]}
    with run_folder(
        out,
        "train",
        command=cmd,
        config=config.to_dict(),
        seeds=seeds,
        inputs={"data": ds.path},
        overwrite=overwrite,
    ) as writer:
        run = writer.path
        _clear_partial(run)
        stratify = td.y if td.is_classification else None
        split = split_dataset(stratify, td.groups, fractions=config.fractions, rng=config.seed)
        train, val = split.train, split.validation
        np.savez(run / "split.npz", train=td.rows[train], validation=td.rows[val])
        (run / "config.json").write_text(json.dumps(config.to_dict(), indent=1))
        say(
            f"task {config.task.kind}: {len(td.y)} spectra, {np.unique(td.groups).size} observations; "
            f"train {len(train)}, validation {len(val)}, test {split.locked_test.size} (locked)"
        )
        record: dict[str, Any] = {
            "kind": "train",
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "dataset": {"path": relative_path(ds.path, run), "n": ds.n, "seed": ds.meta["seed"]},
            "task": {"names": list(td.names), "n_rows": len(td.y)},
            "split": {"train": len(train), "validation": len(val), "test": split.locked_test.size},
            "versions": versions(),
            "models": {},
        }
        from tqdm.auto import tqdm

        # Small fits: OpenMP threads (histogram gradient boosting) cost more than they give on a busy 2-core
        # machine (measured: 558 spectra, 0.24 s with 1 thread, 0.7-34 s with 2 under load).
        limit = 1 if len(train) < _OPENMP_MIN_ROWS else None
        bar = tqdm(config.models, desc="train", unit="model", disable=None if log is not None else True)
        for spec in bar:  # a bar on a terminal only (disable=None), never in a log file
            say(f"  {spec.name} ({spec.kind} on {spec.input})")
            with threadpool_limits(limits=limit, user_api="openmp"):
                record["models"][spec.name] = _train_one(spec, td, train, val, config, run)
        (run / TRAIN_FILE).write_text(json.dumps(json_ready(record), indent=1))
        writer.add_metrics(
            {
                "split": record["split"],
                "models": {name: _model_metrics(json_ready(info)) for name, info in record["models"].items()},
            }
        )
        if scope:
            from xtml.critique.run_scope import fit_run_scope

            summary = fit_run_scope(run)
            writer.add_metrics({"scope": summary})
            say(
                f"scope gate: flags {100 * summary['flag_rate']:.1f}% of the {summary['n_held_out']} "
                "validation spectra"
            )
    return run


def _clear_partial(run: Path) -> None:
    """Remove what an interrupted training run left (training is redone whole; nothing of it is reused)."""
    import shutil

    for name in ("models", "split.npz", "config.json", TRAIN_FILE, "scope.json"):
        path = run / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
