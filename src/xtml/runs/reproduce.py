"""``xtml reproduce RUN``: run a recorded run again from its record and say how well it agrees.

The new run is made from the record alone: its kind, its resolved configuration and its inputs (whose
content hashes must still match the record: a changed dataset is refused, since the result could not
be compared).  Then the two records are compared:

* **data**: every dataset the run produced (``data.zarr/``, ``train.zarr/``, ``test.zarr/``) must have
  the same content hash (:func:`~xtml.runs.dataset_hash`): simulation is deterministic by design;
* **files**: the other products (models, posteriors, splits) are compared by hash; files that hold
  times, run ids or dates (``config.toml``, ``train.json``, ``sbi.json``, ``summary.txt``,
  ``calibration.json``, ``metrics.json``, ``manifest.json``, ``scope.json``, the cards,
  ``importances.json``, ``scenario.toml``: the file given, compared as configuration; plots) are left
  out: their figures are compared as metrics;
* **metrics**: every figure of the records, timings left out, is *identical* (bit for bit), *within
  tolerance* (``|a - b| <= rtol * max(|a|, |b|) + atol``) or *different*.

The verdict is ``"bit-for-bit"`` (data and every metric identical), ``"within tolerance"`` (data
identical, metrics within the stated tolerance: expected across platforms, BLAS builds or thread counts
for fits and network training) or ``"not reproduced"``.  A training run that was evaluated is
reproduced with its evaluation.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xtml.runs.folder import RunCompleteError, require_finished
from xtml.runs.hashing import RECORD_NAME, dataset_hash
from xtml.runs.record import RunRecord, flatten, load_record

__all__ = ["REPRODUCTION_FILE", "Reproduction", "compare_records", "reproduce_run"]

REPRODUCTION_FILE = "reproduction.json"
_VOLATILE_KEY = re.compile(r"(^|\.)seconds(\.|$)|time")
_VOLATILE_FILES = re.compile(
    r"(^|/)(config\.toml|train\.json|sbi\.json|summary\.txt|calibration\.json|importances\.json|"
    r"model_card\.md|DATASET_CARD\.md|report\.html|manifest\.json|scope\.json|metrics\.json|scenario\.toml|[^/]+\.png)$"
)


@dataclass(frozen=True)
class Reproduction:
    """The comparison of a run with its reproduction.

    Attributes
    ----------
    original, reproduced : str
        The two run folders.
    verdict : str
        ``"bit-for-bit"``, ``"within tolerance"`` or ``"not reproduced"``.
    rtol, atol : float
        The tolerance of "within tolerance".
    data : dict
        Dataset -> ``(original hash, reproduced hash)``.
    files : dict
        ``"identical"`` and ``"different"``: the compared product files.
    metrics : list of tuple
        ``(key, original, reproduced, outcome)`` with outcome ``identical``, ``within tolerance``,
        ``different`` or ``missing``.
    notes : list of str
        Platform or version differences between the two runs.
    """

    original: str
    reproduced: str
    verdict: str
    rtol: float
    atol: float
    data: dict[str, tuple[str, str]]
    files: dict[str, list[str]]
    metrics: list[tuple[str, Any, Any, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def reproduced_ok(self) -> bool:
        """Whether the run was reproduced (bit for bit or within tolerance)."""
        return self.verdict != "not reproduced"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (written to ``reproduction.json`` in the reproduced run)."""
        return {
            "original": self.original,
            "reproduced": self.reproduced,
            "verdict": self.verdict,
            "rtol": self.rtol,
            "atol": self.atol,
            "data": {k: list(v) for k, v in self.data.items()},
            "files": self.files,
            "metrics": [list(m) for m in self.metrics],
            "notes": self.notes,
        }

    def to_text(self) -> str:
        """A readable account: data, files, metrics that are not identical, verdict."""
        lines = [f"reproduction of {self.original} in {self.reproduced}"]
        for name, (a, b) in self.data.items():
            lines.append(
                f"  data {name}: {'identical' if a == b else 'DIFFERENT'} (sha256 {a[:16]} / {b[:16]})"
            )
        same, diff = self.files["identical"], self.files["different"]
        lines.append(
            f"  files: {len(same)} identical, {len(diff)} different"
            + (f": {', '.join(diff)}" if diff else "")
        )
        counts: dict[str, int] = {}
        for _k, _a, _b, outcome in self.metrics:
            counts[outcome] = counts.get(outcome, 0) + 1
        lines.append(
            "  metrics: " + ", ".join(f"{n} {o}" for o, n in counts.items()) if counts else "  metrics: none"
        )
        for key, a, b, outcome in self.metrics:
            if outcome != "identical":
                lines.append(f"    {outcome:<16} {key}: {_short(a)} -> {_short(b)}")
        lines += [f"  note: {n}" for n in self.notes]
        tol = f" (rtol {self.rtol:g}, atol {self.atol:g})" if self.verdict == "within tolerance" else ""
        lines.append(f"verdict: {self.verdict.upper()}{tol}")
        return "\n".join(lines)


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."


def _close(a: Any, b: Any, rtol: float, atol: float) -> str:
    if a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)):
        return "identical"
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        outcomes = {_close(x, y, rtol, atol) for x, y in zip(a, b, strict=True)}
        return "different" if "different" in outcomes else "within tolerance"
    plain_numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (a, b))
    if plain_numbers and math.isfinite(a) and math.isfinite(b):
        return "within tolerance" if abs(a - b) <= rtol * max(abs(a), abs(b)) + atol else "different"
    return "different"


def compare_records(
    original: RunRecord, reproduced: RunRecord, *, rtol: float = 1e-6, atol: float = 1e-12
) -> Reproduction:
    """Compare two records of the same run (module docstring)."""
    data, same, diff = {}, [], []
    for key in sorted(set(original.files) | set(reproduced.files)):
        if _VOLATILE_FILES.search(key) or key.endswith("/DATASET_CARD.md"):
            continue
        a, b = original.files.get(key, "missing"), reproduced.files.get(key, "missing")
        if key.endswith("/"):
            data[key.rstrip("/")] = (a, b)
        else:
            (same if a == b else diff).append(key)
    metrics = []
    flat_a, flat_b = flatten(original.metrics), flatten(reproduced.metrics)
    for key in sorted(set(flat_a) | set(flat_b)):
        if _VOLATILE_KEY.search(key):
            continue
        if key not in flat_a or key not in flat_b:
            metrics.append((key, flat_a.get(key), flat_b.get(key), "missing"))
            continue
        metrics.append((key, flat_a[key], flat_b[key], _close(flat_a[key], flat_b[key], rtol, atol)))
    outcomes = {m[3] for m in metrics}
    data_ok = all(a == b for a, b in data.values())
    if not data_ok or outcomes & {"different", "missing"}:
        verdict = "not reproduced"
    elif outcomes <= {"identical"}:
        verdict = "bit-for-bit"
    else:
        verdict = "within tolerance"
    notes = []
    if original.platform != reproduced.platform:
        notes.append(f"platform differs: {original.platform} -> {reproduced.platform}")
    changed = {
        k: (v, reproduced.versions.get(k))
        for k, v in original.versions.items()
        if reproduced.versions.get(k) != v
    }
    if changed:
        notes.append("versions differ: " + ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changed.items()))
    if original.git_revision != reproduced.git_revision:
        notes.append(f"xtml git revision differs: {original.git_revision} -> {reproduced.git_revision}")
    return Reproduction(
        original=str(original.path),
        reproduced=str(reproduced.path),
        verdict=verdict,
        rtol=rtol,
        atol=atol,
        data=data,
        files={"identical": same, "different": diff},
        metrics=metrics,
        notes=notes,
    )


def _checked_input(record: RunRecord, name: str) -> Path:
    info = record.inputs.get(name)
    if info is None:
        raise ValueError(f"the {record.kind} run {record.run_id} records no input {name!r}")
    path = record.input_path(name)
    if not path.exists():
        raise ValueError(
            f"input {name!r} of the run, {str(path)!r}, no longer exists: reproduce the run that made it "
            "first (xtml reproduce) at the same path"
        )
    digest = dataset_hash(path)
    if digest != info["sha256"]:
        raise ValueError(
            f"input {name!r} of the run, {str(path)!r}, has changed since the run (sha256 {digest[:12]}..., "
            f"recorded {info['sha256'][:12]}...): the run cannot be reproduced on other data"
        )
    return path


def _rerun(
    record: RunRecord, run: Path, out: Path, command: list[str], log: Callable[[str], None] | None
) -> None:
    """Run ``record``'s run again into ``out``; a reproduction already there, finished, is kept (the same
    command compares again without redoing it)."""
    kind, config = record.kind, record.config
    if kind == "simulate":
        from xtml.data.config import SimulationConfig
        from xtml.data.simrun import simulate_run

        with suppress(RunCompleteError):
            simulate_run(
                SimulationConfig.from_dict(config["simulation"]),
                config["n"],
                out,
                seed=config["seed"],
                chunk_size=config["chunk_size"],
                progress=log is not None,
                command=command,
            )
    elif kind == "train":
        from xtml.learn.config import TrainConfig
        from xtml.learn.evaluate import EVALUATION_DIR, evaluate_run
        from xtml.learn.train import train_run

        data = _checked_input(record, "data")
        with suppress(RunCompleteError):
            train_run(TrainConfig.from_dict(config), data, out, log=log, command=command)
        if (run / EVALUATION_DIR / RECORD_NAME).is_file():
            require_finished(run / EVALUATION_DIR, "its evaluation")
            if not (out / EVALUATION_DIR / RECORD_NAME).is_file():
                evaluate_run(out, plots=False, command=[*command, "(evaluation)"])
    elif kind == "sbi":
        from xtml.sbi.run import train_sbi_run
        from xtml.sbi.scenario import SBIConfig

        for name in record.inputs:
            _checked_input(record, name)
        with suppress(RunCompleteError):
            train_sbi_run(SBIConfig.from_dict(config), out, log=log, command=command)
    else:
        raise ValueError(f"runs of kind {kind!r} cannot be reproduced (simulate, train and sbi runs can)")


def reproduce_run(
    run_dir: str | Path,
    out: str | Path | None = None,
    *,
    rtol: float = 1e-6,
    atol: float = 1e-12,
    overwrite: bool = False,
    log: Callable[[str], None] | None = print,
) -> Reproduction:
    """Re-execute the finished run ``run_dir`` from its record into ``out`` and compare (module docstring).

    ``out`` defaults to ``RUN_DIR.reproduced`` beside the run.  An evaluation run (``RUN/evaluation``)
    is reproduced through its training run.  The comparison is also written to ``out/reproduction.json``.

    Raises ``ValueError`` for a run that did not finish, an input that changed or vanished, or a kind
    that cannot be re-executed.
    """
    for name, value in (("rtol", rtol), ("atol", atol)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    run = Path(run_dir)
    record = require_finished(run, "it")
    if record.kind == "evaluate":
        run = run.parent
        record = require_finished(run, "it")
    target = Path(out) if out is not None else run.with_name(run.name + ".reproduced")
    if target.resolve() == run.resolve():
        raise ValueError("the reproduction must go into another folder than the run itself")
    if overwrite and target.exists():
        import shutil

        shutil.rmtree(target)
    command = ["xtml", "reproduce", str(run), "--out", str(target)]
    _rerun(record, run, target, command, log)
    result = compare_records(record, load_record(target), rtol=rtol, atol=atol)
    from xtml.learn.evaluate import EVALUATION_DIR

    if (run / EVALUATION_DIR / RECORD_NAME).is_file() and (target / EVALUATION_DIR / RECORD_NAME).is_file():
        ev = compare_records(
            load_record(run / EVALUATION_DIR), load_record(target / EVALUATION_DIR), rtol=rtol, atol=atol
        )
        order = ("bit-for-bit", "within tolerance", "not reproduced")
        result = Reproduction(
            original=result.original,
            reproduced=result.reproduced,
            verdict=max(result.verdict, ev.verdict, key=order.index),
            rtol=rtol,
            atol=atol,
            data=result.data,
            files={
                "identical": result.files["identical"] + [f"evaluation/{f}" for f in ev.files["identical"]],
                "different": result.files["different"] + [f"evaluation/{f}" for f in ev.files["different"]],
            },
            metrics=result.metrics + [(f"evaluation.{k}", a, b, o) for k, a, b, o in ev.metrics],
            notes=result.notes,
        )
    (target / REPRODUCTION_FILE).write_text(json.dumps(result.to_dict(), indent=1))
    return result
