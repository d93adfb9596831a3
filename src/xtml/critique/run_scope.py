"""The scope gate of a run: fitted after training, saved beside the model, applied to every prediction.

:func:`fit_run_scope` fits a :class:`~xtml.critique.scope.ScopeGate` on the training inputs of a run
folder (an ``xtml sbi train`` run or an ``xtml train`` run) and writes ``scope.json`` with:

* the gate and its :class:`~xtml.critique.scope.TrainingDomain` (frequency grid, segment length, rate
  range, detector, parameter ranges);
* the simulation configuration of the training data (the grid a new observation must be put on:
  bin time, segment length and number, rebinning), so that a run folder alone can analyse new data;
* a sample of 300 training inputs (to draw new data next to the training data, e.g. in an embedding);
* the measured rate of flagging held-out in-distribution inputs (the run's test set for SBI runs, its
  validation split for learning runs, which the gate never saw);
* its SHA-256 in the run's ``manifest.json`` (SBI runs), checked by :func:`load_run_scope`.

The features are the ones the model sees: the posterior's inputs (log-power channels and the log mean rate)
for SBI runs, ``log`` of the Leahy powers and the log10 mean rate for learning runs
(:func:`~xtml.critique.scope.log_spectral_features`). The gate lives here, above the training rooms, so
that :mod:`xtml.sbi` and :mod:`xtml.learn` do not depend on it; the CLI fits it after every training run
and applies it to every prediction.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from xtml.critique.scope import ScopeGate, ScopeResult, TrainingDomain, log_spectral_features
from xtml.runs.hashing import file_sha256

__all__ = [
    "SCOPE_FILE",
    "fit_run_scope",
    "learn_features",
    "load_run_scope",
    "run_kind",
    "scope_of_inference",
    "score_inputs",
    "training_sample",
]

SCOPE_FILE = "scope.json"
MAX_FIT_ROWS = 20_000  # training inputs used to fit the gate (a random subset beyond this)
SAMPLE_ROWS = 300  # training inputs kept in scope.json, to show new data next to them (embeddings)


def run_kind(run: Path) -> str:
    """``"sbi"`` or ``"learn"``; ``ValueError`` for a folder that is neither."""
    if (run / "posterior").is_dir() and (run / "manifest.json").is_file():
        return "sbi"
    if (run / "train.json").is_file():
        return "learn"
    raise ValueError(
        f"{run} is neither a finished `xtml sbi train` run (posterior/ and manifest.json) nor an "
        "`xtml train` run (train.json)"
    )


def _subset(n: int, k: int, seed: int = 0) -> NDArray[np.int64]:
    if n <= k:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


def _detector(ds: Any) -> dict[str, Any]:
    full = ds.config.to_dict()
    return {k: full[k] for k in ("detector",) if k in full}


def _parameter_ranges(ds: Any, rows: NDArray[np.int64]) -> dict[str, tuple[float, float]]:
    params = np.asarray(ds.array("params"))[rows]
    out = {}
    for k, name in enumerate(ds.param_names):
        col = params[:, k]
        col = col[np.isfinite(col)]
        if col.size:
            out[name] = (float(col.min()), float(col.max()))
    return out


def _domain(ds: Any, rows: NDArray[np.int64]) -> TrainingDomain:
    rate = np.asarray(ds.array("mean_rate"))[rows]
    return TrainingDomain(
        freq=np.asarray(ds.array("freq")),
        m=np.asarray(ds.array("m")),
        segment_length=float(ds.meta["segment_length"]),
        norm=str(ds.meta["norm"]),
        rate_range=(float(rate.min()), float(rate.max())),
        parameters=_parameter_ranges(ds, rows),
        detector=_detector(ds),
    )


def learn_features(X: NDArray[np.float64]) -> NDArray[np.float64]:
    """Gate features of a learning input matrix (Leahy powers, then the mean rate)."""
    return log_spectral_features(X[:, :-1], X[:, -1])


def _fit_sbi(
    run: Path, alpha: float
) -> tuple[ScopeGate, dict[str, Any], NDArray[np.float64], dict[str, Any]]:
    from xtml.data import open_dataset
    from xtml.sbi.inputs import InputSpec, dataset_inputs

    spec = InputSpec.from_dict(json.loads((run / "posterior" / "inputs.json").read_text()))
    config = json.loads((run / "config.json").read_text())
    class_name = config["sbi"]["class"]
    sets = {}
    for which in ("train", "test"):
        ds = open_dataset(run / f"{which}.zarr")
        labels = np.asarray(ds.array("labels"))
        rows = np.flatnonzero(labels == ds.class_names.index(class_name))
        sets[which] = (ds, rows)
    ds, rows = sets["train"]
    rows = rows[_subset(rows.size, MAX_FIT_ROWS)]
    features = dataset_inputs(ds, spec, rows)
    gate = ScopeGate(alpha=alpha).fit(features, _domain(ds, rows))
    test_ds, test_rows = sets["test"]
    held = gate.score(dataset_inputs(test_ds, spec, test_rows))
    return (
        gate,
        ds.config.to_dict(),
        features[_subset(features.shape[0], SAMPLE_ROWS)],
        {
            "held_out": "test set",
            "n_held_out": int(test_rows.size),
            "flag_rate": held.n_out / test_rows.size,
        },
    )


def _fit_learn(
    run: Path, alpha: float
) -> tuple[ScopeGate, dict[str, Any], NDArray[np.float64], dict[str, Any]]:
    from xtml.data import open_dataset
    from xtml.learn.config import TrainConfig
    from xtml.learn.tasks import load_task
    from xtml.learn.train import load_train_record

    record = load_train_record(run)
    config = TrainConfig.from_dict(json.loads((run / "config.json").read_text()))
    ds = open_dataset(record["dataset"]["path"])
    td = load_task(ds, config.task)
    with np.load(run / "split.npz", allow_pickle=False) as split:
        train_rows, val_rows = split["train"], split["validation"]
    pos = {int(r): i for i, r in enumerate(td.rows)}
    train_idx = np.array([pos[int(r)] for r in train_rows], dtype=np.int64)
    val_idx = np.array([pos[int(r)] for r in val_rows], dtype=np.int64)
    fit_idx = train_idx[_subset(train_idx.size, MAX_FIT_ROWS)]
    features = learn_features(td.X[fit_idx])
    gate = ScopeGate(alpha=alpha).fit(features, _domain(ds, td.rows[fit_idx]))
    held = gate.score(learn_features(td.X[val_idx]))
    return (
        gate,
        ds.config.to_dict(),
        features[_subset(features.shape[0], SAMPLE_ROWS)],
        {
            "held_out": "validation split",
            "n_held_out": int(val_idx.size),
            "flag_rate": held.n_out / max(1, val_idx.size),
        },
    )


def fit_run_scope(run_dir: str | Path, *, alpha: float = 0.01) -> dict[str, Any]:
    """Fit the scope gate of a run and write ``scope.json`` (module doc); returns its summary."""
    run = Path(run_dir)
    kind = run_kind(run)
    gate, simulation, sample, held = _fit_sbi(run, alpha) if kind == "sbi" else _fit_learn(run, alpha)
    doc = {
        "kind": kind,
        "held_out": held,
        "gate": gate.to_dict(),
        "simulation": simulation,
        "sample": np.round(sample, 4).tolist(),
    }
    path = run / SCOPE_FILE
    path.write_text(json.dumps(doc))
    manifest = run / "manifest.json"
    if manifest.is_file():
        recorded = json.loads(manifest.read_text())
        recorded[SCOPE_FILE] = file_sha256(path)
        manifest.write_text(json.dumps(recorded, indent=1))
    return {"kind": kind, "n_components": int(gate.components_.shape[0]), **held}


def training_sample(run_dir: str | Path) -> NDArray[np.float64] | None:
    """The sample of training inputs kept in the run's ``scope.json`` (None if the gate has none)."""
    if load_run_scope(run_dir) is None:
        return None
    doc = json.loads((Path(run_dir) / SCOPE_FILE).read_text())
    return None if "sample" not in doc else np.asarray(doc["sample"], dtype=np.float64)


def load_run_scope(run_dir: str | Path) -> tuple[ScopeGate, dict[str, Any]] | None:
    """The run's gate and its held-out summary; None if the run has none (trained before the gate).

    A ``scope.json`` that does not match its hash in ``manifest.json`` is refused.
    """
    run = Path(run_dir)
    path = run / SCOPE_FILE
    if not path.is_file():
        return None
    manifest = run / "manifest.json"
    if manifest.is_file():
        recorded = json.loads(manifest.read_text()).get(SCOPE_FILE)
        if recorded is None or recorded != file_sha256(path):
            raise ValueError(
                f"{path} does not match its hash in {manifest}: the file was modified; refusing to load it"
            )
    doc = json.loads(path.read_text())
    return ScopeGate.from_dict(doc["gate"]), doc.get("held_out", {})


def score_inputs(
    gate: ScopeGate,
    features: NDArray[np.float64],
    *,
    mean_rate: NDArray[np.float64] | None = None,
    freq: NDArray[np.float64] | None = None,
    m: NDArray[np.float64] | None = None,
    segment_length: float | None = None,
    norm: str | None = None,
) -> ScopeResult:
    """Gate and domain check of inputs of shape (n, n_features) with their grid and mean rates."""
    features = np.atleast_2d(features)
    reasons = None
    if gate.domain_ is not None:
        rates = [None] * features.shape[0] if mean_rate is None else np.atleast_1d(mean_rate).tolist()
        reasons = [
            gate.domain_.check(freq=freq, m=m, segment_length=segment_length, norm=norm, mean_rate=r)
            for r in rates
        ]
    if features.shape[1] != gate.mean_.size:
        n = features.shape[0]
        why = f"{features.shape[1]} input features where the model was trained on {gate.mean_.size}"
        return ScopeResult(
            score=np.full(n, np.inf),
            p_value=np.zeros(n),
            t2=np.full(n, np.nan),
            q=np.full(n, np.nan),
            r=np.full(n, np.nan),
            in_scope=np.zeros(n, dtype=bool),
            reasons=tuple((*tuple(reasons[i] if reasons else []), why) for i in range(n)),
        )
    return gate.score(features, domain_reasons=reasons)


def scope_of_inference(run_dir: str | Path, result: Any) -> ScopeResult | None:
    """Scope of an :class:`~xtml.sbi.infer.Inference` of the run (None if the run has no gate)."""
    loaded = load_run_scope(run_dir)
    if loaded is None:
        return None
    rate = None if not np.isfinite(result.mean_rate) else np.array([result.mean_rate])
    return score_inputs(loaded[0], result.inputs, mean_rate=rate)
