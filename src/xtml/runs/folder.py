"""Writing a run folder: :func:`run_folder` starts a run, :class:`RunWriter` records its results, and
:func:`verify_files` checks a finished run against its record.
"""

from __future__ import annotations

import os
import platform
import re
import secrets
import shutil
import socket
import traceback
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from xtml.runs._lock import LOCK_NAME, RunLockedError, acquire
from xtml.runs._toml import to_toml
from xtml.runs.hashing import RECORD_NAME, dataset_hash, entry_hash, file_manifest
from xtml.runs.record import FINISHED, RunCheck, RunRecord, flatten, plain, read_record, write_record

__all__ = [
    "CONFIG_NAME",
    "MODEL_FOLDERS",
    "RunCompleteError",
    "RunExistsError",
    "RunWriter",
    "TamperedRunError",
    "check_files",
    "require_finished",
    "run_folder",
    "verify_files",
]

CONFIG_NAME = "config.toml"
#: top-level folders of a run holding model files: a file there that the record does not list is reported
MODEL_FOLDERS: tuple[str, ...] = ("models", "posterior")
_KIND = re.compile(r"[a-z][a-z0-9_-]*")
_MISSING = object()


class RunExistsError(ValueError):
    """``path`` already holds a finished run (``record``, or ``None`` for a record this xtml cannot read).

    ``differences`` lists what differs from the run that was asked for (``"seed: 3 -> 4"``), empty when
    nothing does (then the error is a :class:`RunCompleteError`) or when the record cannot be read.
    """

    def __init__(
        self, path: Path, record: RunRecord | None, differences: Sequence[str] = (), *, why: str = ""
    ) -> None:
        self.path = path
        self.record = record
        self.differences = tuple(differences)
        what = (
            f"a finished {record.kind} run ({record.run_id}, {record.status}, {record.created})"
            if record is not None
            else f"a run ({RECORD_NAME} of an older or unknown format)"
        )
        if self.differences:
            what += f" made with another configuration or other data ({'; '.join(self.differences[:8])})"
        super().__init__(
            f"run folder {str(path)!r} already holds {what}{why}; write into another folder or overwrite it "
            "(--overwrite)"
        )


class RunCompleteError(RunExistsError):
    """``path`` already holds the very run that was asked for, finished, with every file as recorded.

    Raised by :func:`run_folder` (without ``overwrite``) when the folder's run has the same kind, resolved
    configuration and input hashes: running the same command again has nothing to do.  The command line
    reports it as "already complete" and exits as the finished run did.
    """

    def __init__(self, path: Path, record: RunRecord) -> None:
        self.path = path
        self.record = record
        self.differences = ()
        ValueError.__init__(
            self,
            f"run folder {str(path)!r} already holds a finished {record.kind} run ({record.run_id}, "
            f"{record.status}, {record.created}) with the same configuration and inputs, every file as "
            "recorded: nothing to do; overwrite it (--overwrite) to run it again",
        )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _new_run_id() -> str:
    # not a scientific random number: only needs to differ between runs, so no rng argument
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


class RunWriter:
    """The handle :func:`run_folder` gives to the code of a run.

    Every change is written to ``record.json`` at once, so a run that dies keeps what it had recorded.
    """

    def __init__(self, path: Path, record: RunRecord) -> None:
        self._path = path
        self._record = record
        self._open = True

    @property
    def path(self) -> Path:
        """The run folder: write the run's products here."""
        return self._path

    @property
    def record(self) -> RunRecord:
        """The record as it stands (after the run: as finally written)."""
        return self._record

    def _update(self, **changes: Any) -> None:
        if not self._open:
            raise RuntimeError(f"the run in {self._path} has ended; its record can no longer change")
        self._record = replace(self._record, **changes)
        write_record(self._path, self._record)

    def add_metrics(self, metrics: Mapping[str, Any]) -> None:
        """Add result figures (JSON values; numpy scalars and arrays are converted).

        Top-level keys replace earlier ones of the same name.
        """
        if not isinstance(metrics, Mapping):
            raise TypeError(f"metrics must be a mapping, got {type(metrics).__name__}")
        self._update(metrics={**self._record.metrics, **plain(metrics, "metrics")})

    def add_check(self, name: str, passed: bool, detail: str = "") -> None:
        """Record a pass/fail check; the run ends as ``"failed-check"`` if any check did not pass.

        Raises ``ValueError`` for a name already used by this run.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"a check needs a name, got {name!r}")
        if any(c.name == name for c in self._record.checks):
            raise ValueError(f"check {name!r} was already recorded for this run")
        if type(passed).__name__ == "bool_":  # numpy bool
            passed = bool(passed)
        if not isinstance(passed, bool):
            raise TypeError(f"check {name!r}: passed must be True or False, got {passed!r}")
        self._update(checks=(*self._record.checks, RunCheck(name, passed, str(detail))))

    def _finish(self) -> None:
        status = "failed-check" if self._record.failed_checks else "complete"
        self._update(status=status, finished=_now(), files=file_manifest(self._path))
        self._open = False

    def _abort(self, exc: BaseException) -> None:
        error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        self._update(status="incomplete", finished=_now(), error=error)
        self._open = False


def relative_path(path: str | os.PathLike[str], folder: Path) -> str:
    """``path`` relative to the run folder ``folder`` (both resolved), as records store their inputs: no
    absolute path of the machine that made the run (records and bundles travel).  On another drive
    (Windows), where no relative path exists, the absolute path."""
    try:
        return os.path.relpath(Path(path).resolve(), Path(folder).resolve())
    except ValueError:
        return str(Path(path).resolve())


def _remove_partial(folder: Path, new: bool) -> None:
    """Remove what a run that failed to start wrote: the whole folder if it created it, else its files."""
    if new:
        shutil.rmtree(folder, ignore_errors=True)
        return
    for name in (CONFIG_NAME, RECORD_NAME, RECORD_NAME + ".tmp"):
        with suppress(OSError):
            (folder / name).unlink()


def _clear(folder: Path) -> None:
    for entry in folder.iterdir():
        if entry.name == LOCK_NAME:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _differences(previous: RunRecord, kind: str, config: dict[str, Any], inputs: dict[str, Any]) -> list[str]:
    """What differs between a recorded run and the run asked for: kind, configuration keys, input data."""
    old, new = flatten(previous.config), flatten(config)
    diffs = [
        f"{k}: {old.get(k, '-')!r} -> {new.get(k, '-')!r}"
        for k in sorted(old.keys() | new.keys())
        if old.get(k, _MISSING) != new.get(k, _MISSING)
    ]
    if previous.kind != kind:  # another kind of run: its configuration keys are beside the point
        return [f"kind: {previous.kind} -> {kind}"]
    was = {name: info.get("sha256") for name, info in previous.inputs.items()}
    now = {name: info["sha256"] for name, info in inputs.items()}
    for name in sorted(was.keys() | now.keys()):
        if was.get(name) != now.get(name):
            old_hash, new_hash = str(was.get(name, "-"))[:12], str(now.get(name, "-"))[:12]
            diffs.append(f"input {name}: other data (sha256 {old_hash} -> {new_hash})")
    return diffs


def _prepare(
    folder: Path, overwrite: bool, kind: str, config: dict[str, Any], inputs: dict[str, Any]
) -> None:
    """With the lock held: refuse a finished run (unless ``overwrite``), clear or resume the folder."""
    if not any(e.name != LOCK_NAME for e in folder.iterdir()):
        return
    if not (folder / RECORD_NAME).is_file():
        raise ValueError(
            f"{str(folder)!r} is not empty and holds no run record ({RECORD_NAME}); refusing to write a "
            "run into it (nor to delete what it holds): choose a new or empty folder"
        )
    try:
        previous: RunRecord | None = read_record(folder)
    except ValueError:  # a record of an older or unknown format: treat it as a finished run
        previous = None
    if overwrite:
        _clear(folder)
        return
    if previous is None:
        raise RunExistsError(folder, None)
    diffs = _differences(previous, kind, config, inputs)
    if previous.status in FINISHED:
        if diffs:
            raise RunExistsError(folder, previous, diffs)
        changed = verify_files(folder)
        if changed:
            raise RunExistsError(
                folder,
                previous,
                why=f", but {len(changed)} of its files differ from its record ({', '.join(changed[:5])})",
            )
        raise RunCompleteError(folder, previous)
    if diffs:
        raise ValueError(
            f"run folder {str(folder)!r} holds an unfinished {previous.kind} run ({previous.run_id}) made "
            f"with another configuration, so it cannot be resumed ({'; '.join(diffs[:8])}); write into "
            "another folder or overwrite it (--overwrite)"
        )
    # otherwise an unfinished run (we hold the lock, so a "running" one is dead): resume, keeping its
    # files (resumable products such as Zarr simulations continue where they stopped)


@contextmanager
def run_folder(
    path: str | Path,
    kind: str,
    *,
    command: Sequence[str],
    config: Mapping[str, Any],
    seeds: Mapping[str, Any],
    inputs: Mapping[str, str | Path] | None = None,
    overwrite: bool = False,
) -> Iterator[RunWriter]:
    """Run the body of a ``with`` block as a recorded run writing into the folder ``path``.

    On entry: the inputs are hashed (:func:`~xtml.runs.dataset_hash`), the folder created if needed
    and locked (``.xtml-run.lock``, created with ``O_EXCL``: of two runs started at once into one folder,
    the second raises :class:`~xtml.runs.RunLockedError` and writes nothing), ``config.toml`` written
    and ``record.json`` written with status ``"running"``.  A folder holding a finished run is refused
    (:class:`RunExistsError`, naming what differs) unless ``overwrite``, which empties it first; if it is
    this very run (same kind, configuration and input hashes, every file as recorded) the error is a
    :class:`RunCompleteError`: nothing to do.  A folder holding an unfinished run of the same
    configuration and inputs is resumed with its files kept; a non-empty folder without a record is
    refused.  If the folder cannot be started (a full or read-only disk), nothing of the run is left in it.

    On normal exit every file is hashed into ``files`` and the status becomes ``"complete"``, or
    ``"failed-check"`` if a check failed.  On an exception, ``KeyboardInterrupt`` included, the status
    becomes ``"incomplete"`` with the error text, and the exception propagates.  Either way the lock is
    released.  ``record.json`` is only ever replaced whole (:func:`os.replace`).

    Parameters
    ----------
    path : path
        The run folder.
    kind : str
        ``"simulate"``, ``"train"``, ``"evaluate"``, ``"sbi"``, ... (lower case, digits, ``-``, ``_``).
    command : sequence of str
        The argv that started the run.
    config : mapping
        The resolved configuration (JSON values; ``None`` values are left out of ``config.toml``).
    seeds : mapping
        Every seed the run uses, by name (may be empty, never implicit).
    inputs : mapping of name to path, optional
        Datasets, files or run folders the run reads; recorded with their content hash and their path
        relative to the run folder (:meth:`RunRecord.input_path`).
    overwrite : bool
        Replace a finished run in ``path``.

    Yields
    ------
    RunWriter
    """
    folder = Path(path)
    if not isinstance(kind, str) or not _KIND.fullmatch(kind):
        raise ValueError(f"kind must be a lower-case word such as 'train' or 'sbi', got {kind!r}")
    if isinstance(command, str) or not all(isinstance(a, str) for a in command):
        raise TypeError(f"command must be the list of arguments (argv), got {command!r}")
    config_plain = plain(config, "config")
    seeds_plain = plain(seeds, "seeds")
    run_id, created = _new_run_id(), _now()
    toml = (
        f"# resolved configuration of {kind} run {run_id} ({created}), written by xtml.runs;\n"
        "# keys whose value is None are left out (TOML has no null): record.json holds them all\n\n"
        + to_toml(config_plain)
    )
    input_records = {}
    for name, p in (inputs or {}).items():
        if not Path(p).exists():
            raise ValueError(f"input {name!r}: {str(p)!r} does not exist")
        input_records[name] = {"path": relative_path(p, folder), "sha256": dataset_hash(p)}
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"run folder {str(folder)!r} exists and is not a folder")
    from xtml import __version__
    from xtml.data.provenance import git_revision, package_versions

    record = RunRecord(
        kind=kind,
        run_id=run_id,
        status="running",
        created=created,
        finished=None,
        command=tuple(command),
        config=config_plain,
        seeds=seeds_plain,
        versions={"python": platform.python_version(), **package_versions()},
        platform=platform.platform(),
        git_revision=git_revision(),
        inputs=input_records,
        metrics={},
        xtml_version=__version__,
    )
    new = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    info = {"run_id": run_id, "kind": kind, "pid": os.getpid(), "host": socket.gethostname()}
    try:
        lock = acquire(folder, {**info, "started": created})
    except RunLockedError:
        raise  # another process made the folder and holds it
    except BaseException:
        if new:  # e.g. a full disk while writing the lock: leave no empty folder behind
            shutil.rmtree(folder, ignore_errors=True)
        raise
    prepared = False
    try:
        _prepare(folder, overwrite, kind, config_plain, input_records)
        prepared = True
        (folder / CONFIG_NAME).write_text(toml)
        write_record(folder, record)
    except BaseException:
        if new or (prepared and not (folder / RECORD_NAME).is_file()):
            # nothing of a run was recorded (a full or read-only disk): leave no half-made folder behind;
            # a folder holding another run's files is never touched here (_prepare refused or cleared it)
            _remove_partial(folder, new)
        lock.release()
        raise
    writer = RunWriter(folder, record)
    try:
        yield writer
        writer._finish()
    except BaseException as exc:
        try:
            writer._abort(exc)
        except Exception as err:  # e.g. a full disk: the run's own error matters more
            exc.add_note(f"xtml.runs could not record this failure in {folder / RECORD_NAME}: {err}")
        raise
    finally:
        writer._open = False
        lock.release()


def _bundled_files(folder: Path) -> set[str] | None:
    """For a run unpacked from a bundle (``xtml import``): the files the bundle held; else None."""
    import json

    path = folder / "BUNDLE.json"
    if not path.is_file():
        return None
    try:
        return set(json.loads(path.read_text()).get("files", {}))
    except (ValueError, AttributeError):
        return set()


def verify_files(run_dir: str | Path) -> list[str]:
    """Files of a finished run that no longer match its record.

    Returns the sorted relative paths of the files whose SHA-256 differs from the record or that are
    missing (a Zarr store is one entry, ``name.zarr/``), and of files under the model folders
    (:data:`MODEL_FOLDERS`) that the record does not list: something placed next to model weights is
    suspect.  Other extra files (products added later, such as an evaluation) are ignored, and so are
    the files an exported bundle left out, in a run unpacked by ``xtml import``.  An empty list means the
    run is as it was written.

    Raises ``ValueError`` for a folder without a run record or a run that did not finish (it has no
    file list).
    """
    folder = Path(run_dir)
    record = read_record(folder)
    if record.status not in FINISHED:
        raise ValueError(
            f"the run in {str(folder)!r} did not finish (status {record.status}), so its files were never "
            "recorded; there is nothing to verify against"
        )
    bad = []
    packed = _bundled_files(folder)
    for key, digest in record.files.items():
        if packed is not None and key not in packed:
            continue  # an imported bundle: export left this product out (datasets, test predictions)
        try:
            if entry_hash(folder, key) != digest:
                bad.append(key)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            bad.append(key)
    for top in MODEL_FOLDERS:
        if (folder / top).is_dir():
            extra = file_manifest(folder / top)
            bad += [f"{top}/{rel}" for rel in extra if f"{top}/{rel}" not in record.files]
    return sorted(set(bad))


class TamperedRunError(ValueError):
    """A file of a run that differs from the hash its record holds, is missing, or is not listed."""


def require_finished(run_dir: str | Path, what: str = "its products") -> RunRecord:
    """The record of a finished run (``complete`` or ``failed-check``).

    Raises ``ValueError`` for a folder without a run record and for a run that did not finish (an
    interrupted or crashed run, or one still running): its files may be half-written, so nothing of it
    is loaded.
    """
    from xtml.runs.record import load_record

    folder = Path(run_dir)
    record = load_record(folder)
    if record.status not in FINISHED:
        reason = f": {record.error}" if record.error else ""
        raise ValueError(
            f"the {record.kind} run in {str(folder)!r} did not finish (status {record.status}{reason}); "
            f"{what} must not be used. Run it again (the same command resumes it)"
        )
    return record


def check_files(run_dir: str | Path, prefixes: Sequence[str]) -> RunRecord:
    """Check the files of a finished run under ``prefixes`` against its record before loading them.

    A prefix is a file (``"scope.json"``) or a folder ending in ``/`` (``"models/logistic/"``).  Every
    recorded file under a prefix must exist with its recorded SHA-256, and a folder prefix must hold no
    file the record does not list (nothing can be slipped in next to model weights).  Returns the record.

    Raises
    ------
    ValueError
        If the run did not finish (:func:`require_finished`).
    TamperedRunError
        Naming the first file that is modified, missing or unlisted.
    """
    folder = Path(run_dir)
    record = require_finished(folder)
    for prefix in prefixes:
        keys = [k for k in record.files if k == prefix or (prefix.endswith("/") and k.startswith(prefix))]
        if not keys and not prefix.endswith("/"):
            if (folder / prefix).exists():
                raise TamperedRunError(
                    f"{folder / prefix} is not listed in the record of {str(folder)!r}: it was added after "
                    "the run finished; refusing to load it"
                )
            continue
        for key in keys:
            try:
                digest = entry_hash(folder, key)
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                raise TamperedRunError(
                    f"{folder / key} is missing: the run's record lists it "
                    f"(sha256 {record.files[key][:12]}...)"
                ) from None
            if digest != record.files[key]:
                raise TamperedRunError(
                    f"{folder / key} does not match the hash in {folder / RECORD_NAME} "
                    f"(sha256 {digest[:12]}..., recorded {record.files[key][:12]}...): it was modified; "
                    "refusing to load it"
                )
        if prefix.endswith("/") and (folder / prefix).is_dir():
            extra = [f"{prefix}{rel}" for rel in file_manifest(folder / prefix)]
            unlisted = [k for k in extra if k not in record.files]
            if unlisted:
                raise TamperedRunError(
                    f"{folder / unlisted[0]} is not listed in the record of {str(folder)!r}: a file was "
                    "added next to the model files after the run finished; refusing to load the run"
                )
    return record
