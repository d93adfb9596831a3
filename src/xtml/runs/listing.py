"""Reading run folders: list them, show one, compare several."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from xtml.runs.hashing import RECORD_NAME, is_zarr_store
from xtml.runs.record import RunRecord, flatten, load_record

__all__ = ["compare_runs", "list_runs", "show_run"]

_MISSING = object()
_MAX_FILES = 25
_MAX_METRICS = 40
_WIDTH = 40


def list_runs(root: str | Path) -> list[RunRecord]:
    """Every run under ``root`` (``root`` itself included, recursively), oldest first.

    Unfinished runs are included with their status: ``"incomplete"`` (stopped by an error, an
    interrupt or a vanished process, see :func:`~xtml.runs.load_record`), ``"running"`` (in progress)
    and ``"failed-check"``.  Each record's ``path`` is its folder.  Folders whose ``record.json`` is not
    a run record (written before xtml kept run records) are skipped, and neither hidden folders nor Zarr
    stores are searched.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{str(root)!r} is not a folder")
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if RECORD_NAME in filenames:
            with contextlib.suppress(ValueError):
                found.append(load_record(here))
        if here != root and is_zarr_store(here):
            dirnames[:] = []
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__pycache__")
    return sorted(found, key=lambda r: (r.created, str(r.path)))


def _fmt(value: Any, width: int = _WIDTH) -> str:
    if value is _MISSING:
        return "-"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text if len(text) <= width else text[: width - 3] + "..."


def _duration(start: str, end: str | None) -> str:
    if end is None:
        return ""
    try:
        seconds = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    except ValueError:
        return ""
    if seconds < 120:
        return f" ({seconds:.0f} s)"
    if seconds < 7200:
        return f" ({seconds / 60:.1f} min)"
    return f" ({seconds / 3600:.1f} h)"


def _status_line(r: RunRecord) -> str:
    if r.status == "complete":
        return "complete"
    if r.status == "failed-check":
        return "FAILED CHECK: " + ", ".join(c.name for c in r.failed_checks)
    if r.status == "incomplete":
        return f"INCOMPLETE: {r.error or 'no reason recorded'}"
    return "running"


def show_run(run_dir: str | Path) -> str:
    """A readable summary of one run: what, status, when, command, versions, seeds, inputs with their
    hashes, metrics, checks and files."""
    r = load_record(run_dir)
    lines = [f"{r.kind} run {r.run_id} in {run_dir}", f"status   {_status_line(r)}"]
    lines.append(f"when     {r.created} -> {r.finished or '...'}{_duration(r.created, r.finished)}")
    lines.append(f"command  {shlex.join(r.command)}")
    installed = {k: v for k, v in r.versions.items() if v != "not installed" and k != "xtml"}
    lines.append(f"xtml     {r.xtml_version} (git {r.git_revision}); {r.platform}")
    lines.append("versions " + ", ".join(f"{k} {v}" for k, v in installed.items()))
    lines.append("seeds    " + (", ".join(f"{k}={_fmt(v)}" for k, v in r.seeds.items()) or "none"))
    lines.append("inputs" + ("" if r.inputs else "   none"))
    for name, info in r.inputs.items():
        where = r.input_path(name) if isinstance(info, dict) and "path" in info else "?"
        lines.append(f"  {name}  {where}  sha256 {str(info.get('sha256', '?'))[:16]}")
    metrics = flatten(r.metrics)
    lines.append("metrics" + ("" if metrics else "  none"))
    width = max((len(k) for k in metrics), default=0)
    for k, v in list(metrics.items())[:_MAX_METRICS]:
        lines.append(f"  {k:<{width}}  {_fmt(v, 60)}")
    if len(metrics) > _MAX_METRICS:
        lines.append(f"  ... and {len(metrics) - _MAX_METRICS} more in record.json")
    lines.append("checks" + ("" if r.checks else "   none"))
    for c in r.checks:
        lines.append(f"  [{'pass' if c.passed else 'FAIL'}] {c.name}" + (f": {c.detail}" if c.detail else ""))
    lines.append(
        f"files    {len(r.files)}" + ("" if r.files or r.status != "incomplete" else " (not recorded)")
    )
    for k, v in list(r.files.items())[:_MAX_FILES]:
        lines.append(f"  {v[:12]}  {k}")
    if len(r.files) > _MAX_FILES:
        lines.append(f"  ... and {len(r.files) - _MAX_FILES} more in record.json")
    return "\n".join(lines)


def _differing(values: list[dict[str, Any]]) -> list[str]:
    keys = sorted(set().union(*values))
    return [k for k in keys if len({json.dumps(v.get(k, "\0missing"), sort_keys=True) for v in values}) > 1]


def compare_runs(run_dirs: Sequence[str | Path]) -> str:
    """A side-by-side table of runs: the configuration keys (flattened, dotted) whose values differ, the
    seeds and inputs that differ, and every metric.

    Raises ``ValueError`` for fewer than two runs.
    """
    if len(run_dirs) < 2:
        raise ValueError(f"compare_runs needs at least two run folders, got {len(run_dirs)}")
    records = [load_record(d) for d in run_dirs]
    labels = [Path(d).name or str(d) for d in run_dirs]
    if len(set(labels)) < len(labels):
        labels = [str(d) for d in run_dirs]
    rows: list[tuple[str, list[str]] | str] = [
        ("", labels),
        ("kind", [r.kind for r in records]),
        ("status", [r.status for r in records]),
        ("run", [r.run_id for r in records]),
    ]

    def section(title: str, values: list[dict[str, Any]], every: bool = False) -> None:
        keys = list(dict.fromkeys(k for v in values for k in v)) if every else _differing(values)
        if not every:
            title += f": {len(keys)} differ" if keys else ": identical"
        rows.append(title)
        rows.extend((f"  {k}", [_fmt(v.get(k, _MISSING)) for v in values]) for k in keys)

    section("config", [flatten(r.config) for r in records])
    section("seeds", [flatten(r.seeds) for r in records])
    section("inputs", [{k: v.get("sha256", "")[:16] for k, v in r.inputs.items()} for r in records])
    section("metrics", [flatten(r.metrics) for r in records], every=True)
    cells = [row for row in rows if not isinstance(row, str)]
    first = max(len(name) for name, _ in cells)
    widths = [max(len(values[i]) for _, values in cells) for i in range(len(records))]
    out = []
    for row in rows:
        if isinstance(row, str):
            out.append(row)
        else:
            name, values = row
            out.append(
                f"{name:<{first}}  " + "  ".join(f"{v:<{w}}" for v, w in zip(values, widths, strict=True))
            )
    return "\n".join(line.rstrip() for line in out)
