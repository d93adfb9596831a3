"""The run record: what a run was (kind, command, configuration, seeds, versions, input hashes), how it
ended (status, error, checks) and what it produced (metrics, the SHA-256 of every file).

It is stored as ``record.json`` in the run folder, written through ``record.json.tmp`` and
:func:`os.replace`, so a reader sees either the previous complete version or the new one, never half.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, get_args

from xtml._files import require_folder
from xtml.runs._lock import holder_alive
from xtml.runs.hashing import RECORD_NAME

__all__ = ["RUN_FORMAT_VERSION", "STATUSES", "RunCheck", "RunRecord", "RunStatus", "flatten", "load_record"]

RUN_FORMAT_VERSION = 1
RunStatus = Literal["running", "complete", "failed-check", "incomplete"]
STATUSES: tuple[str, ...] = get_args(RunStatus)
#: statuses of a run that ended normally: its folder is refused unless overwritten
FINISHED: tuple[str, ...] = ("complete", "failed-check")


@dataclass(frozen=True)
class RunCheck:
    """A pass/fail check of a run's result: a calibration test, "beats the reference", ...

    Attributes
    ----------
    name : str
    passed : bool
    detail : str
        The numbers behind the verdict, in words.
    """

    name: str
    passed: bool
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """``{"name", "passed", "detail"}``."""
        return {"name": self.name, "passed": self.passed, "detail": self.detail}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunCheck:
        """Inverse of :meth:`to_dict`."""
        if not isinstance(data, Mapping) or not isinstance(data.get("passed"), bool):
            raise ValueError(f"a check is {{'name', 'passed' (true/false), 'detail'}}, got {data!r}")
        return cls(name=str(data.get("name", "")), passed=data["passed"], detail=str(data.get("detail", "")))


@dataclass(frozen=True)
class RunRecord:
    """Everything needed to understand, trust and repeat one run.

    Attributes
    ----------
    kind : str
        What made it: ``"simulate"``, ``"train"``, ``"evaluate"``, ``"sbi"``, ...
    run_id : str
        ``YYYYMMDDTHHMMSSZ-xxxxxx``: UTC start time and 6 random hex digits.
    status : {"running", "complete", "failed-check", "incomplete"}
        ``"failed-check"``: finished, but a check failed; ``"incomplete"``: stopped by an error or an
        interrupt (see ``error``), or its process vanished (:func:`load_record`).
    created, finished : str
        UTC times, ISO 8601; ``finished`` is ``None`` while running.
    command : tuple of str
        The argv of the command.
    config : dict
        The resolved configuration (every default filled in); also the run's ``config.toml``.
    seeds : dict
        Every seed the run used, by name.
    versions : dict
        Versions of Python and of the packages that shape results.
    platform, git_revision : str
        :func:`platform.platform`; the xtml git commit (``+dirty`` if modified) or ``"unknown"``.
    inputs : dict
        ``name -> {"path", "sha256"}``: every dataset or run the run read, with its
        :func:`~xtml.runs.dataset_hash` taken when the run started; ``path`` is relative to the run
        folder (:meth:`input_path` resolves it), so that no record holds an absolute path of the
        machine that made it.
    metrics : dict
        Result figures (JSON values).
    checks : tuple of RunCheck
    files : dict
        ``relative path -> sha256`` of every file the run produced (:func:`~xtml.runs.file_manifest`),
        computed when it finished; empty for a run that did not finish.
    error : str or None
        Why an incomplete run stopped.
    format_version : int
        Version of this record's layout.
    xtml_version : str
    path : Path or None
        The run folder this record was loaded from; not stored, not compared.
    """

    kind: str
    run_id: str
    status: RunStatus
    created: str
    finished: str | None
    command: tuple[str, ...]
    config: dict[str, Any]
    seeds: dict[str, Any]
    versions: dict[str, str]
    platform: str
    git_revision: str
    inputs: dict[str, dict[str, str]]
    metrics: dict[str, Any]
    checks: tuple[RunCheck, ...] = ()
    files: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    format_version: int = RUN_FORMAT_VERSION
    xtml_version: str = ""
    path: Path | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {self.status!r}")

    def input_path(self, name: str) -> Path:
        """Where the input ``name`` is: its recorded path, relative to the run folder (records written
        since xtml stores no absolute path), resolved against the folder the record was loaded from.

        An absolute path (records of older xtml versions) is returned as stored.  Raises ``ValueError``
        for an input the run does not record.
        """
        info = self.inputs.get(name)
        if not isinstance(info, Mapping) or "path" not in info:
            raise ValueError(f"the {self.kind} run {self.run_id} records no input {name!r}")
        stored = Path(str(info["path"]))
        if stored.is_absolute() or self.path is None:
            return stored
        return Path(os.path.normpath(self.path / stored))

    @property
    def failed_checks(self) -> tuple[RunCheck, ...]:
        """The checks that did not pass."""
        return tuple(c for c in self.checks if not c.passed)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values, in field order (``path`` is left out)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "path":
                continue
            value = getattr(self, f.name)
            if f.name == "command":
                value = list(value)
            elif f.name == "checks":
                value = [c.to_dict() for c in value]
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, path: Path | None = None) -> RunRecord:
        """Inverse of :meth:`to_dict`.  Unknown keys are ignored; missing ones and a newer
        ``format_version`` raise ``ValueError``."""
        version = data.get("format_version")
        if isinstance(version, bool) or not isinstance(version, int):
            raise ValueError(
                "not a run record (no format_version): written before xtml kept run records, or by "
                "something else"
            )
        if version > RUN_FORMAT_VERSION:
            from xtml import __version__

            raise ValueError(
                f"run record format {version}, written by xtml {data.get('xtml_version', '?')}, is newer "
                f"than this xtml {__version__} reads (format {RUN_FORMAT_VERSION}); upgrade xtml"
            )
        names = [f.name for f in fields(cls) if f.name != "path"]
        required = [f.name for f in fields(cls) if f.name not in ("path", "checks", "files", "error")]
        missing = [k for k in required if k not in data]
        if missing:
            raise ValueError(f"run record lacks {', '.join(missing)}")
        values = {k: data[k] for k in names if k in data}
        command = values["command"]
        if isinstance(command, str) or not isinstance(command, list | tuple):
            raise ValueError(f"run record: command must be a list of arguments, got {command!r}")
        values["command"] = tuple(str(a) for a in command)
        values["checks"] = tuple(RunCheck.from_dict(c) for c in values.get("checks", ()))
        return cls(**values, path=path)

    def to_json(self) -> str:
        """The record as ``record.json`` holds it."""
        return json.dumps(self.to_dict(), indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str, *, path: Path | None = None) -> RunRecord:
        """Inverse of :meth:`to_json`."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"not a run record: not JSON ({err})") from None
        if not isinstance(data, dict):
            raise ValueError("a run record is a JSON object")
        return cls.from_dict(data, path=path)


def plain(value: Any, where: str) -> Any:
    """``value`` with numpy scalars and arrays, tuples and paths turned into JSON values.

    Raises ``TypeError`` naming the dotted key of anything else (an object, a non-string key).
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: keys must be strings, got {k!r}")
            out[k] = plain(v, f"{where}.{k}")
        return out
    if isinstance(value, list | tuple):
        return [plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    tolist = getattr(value, "tolist", None)  # numpy scalars and arrays
    if callable(tolist) and type(value).__module__ == "numpy":
        return plain(tolist(), where)
    raise TypeError(f"{where}: {type(value).__name__} {value!r} is not a JSON value")


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level with dotted keys; lists and other values are leaves.

    >>> flatten({"model": {"lr": 0.1, "layers": [8, 8]}, "seed": 3})
    {'model.lr': 0.1, 'model.layers': [8, 8], 'seed': 3}
    """
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def write_record(folder: Path, record: RunRecord) -> None:
    """Write ``record.json`` atomically: into ``record.json.tmp``, flushed to disk, then renamed."""
    tmp = folder / (RECORD_NAME + ".tmp")
    with open(tmp, "w") as f:
        f.write(record.to_json())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, folder / RECORD_NAME)


def read_record(folder: Path) -> RunRecord:
    """``record.json`` of ``folder`` as stored (``ValueError`` if absent or not a run record)."""
    require_folder(folder, "run folder")
    path = folder / RECORD_NAME
    if path.is_dir():
        raise ValueError(f"{str(folder)!r} is not an xtml run folder: its {RECORD_NAME} is a directory")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ValueError(f"{str(folder)!r} is not an xtml run folder: it has no {RECORD_NAME}") from None
    except OSError as err:
        raise ValueError(f"{path}: cannot be read ({err.strerror or err})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(
            f"{path}: not a run record (not UTF-8 text: a damaged or foreign file); a run record is the JSON "
            "that xtml writes"
        ) from None
    try:
        return RunRecord.from_json(text, path=folder)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path}: {err}") from None


def load_record(run_dir: str | Path) -> RunRecord:
    """The record of the run in ``run_dir``.

    A record that still says ``"running"`` although no process holds the run's lock any more (the
    lock file is gone, or names a process of this host that has ended: killed, out of memory, power
    cut) is returned as ``"incomplete"`` with that explanation as its ``error``; the file is left as is.

    Raises ``ValueError`` if ``run_dir`` holds no run record or one this xtml cannot read.
    """
    folder = Path(run_dir)
    record = read_record(folder)
    if record.status == "running" and not holder_alive(folder):
        record = replace(
            record,
            status="incomplete",
            error="the run stopped without finishing: its process ended without recording why "
            "(killed, out of memory, machine stopped?)",
        )
    return record
