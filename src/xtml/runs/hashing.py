"""Content hashes of datasets, files and run folders.

:func:`dataset_hash` answers "is this the same data?" and must not depend on anything but the data:

* a **file** hashes to the SHA-256 of its bytes;
* a **Zarr store** (a folder with ``zarr.json``, ``.zgroup`` or ``.zarray``) hashes to the SHA-256 over
  the sorted list of ``relative/path NUL sha256(bytes)`` lines of its files.  Sorting by path makes the
  hash independent of the order in which chunks were written (any order, by any worker, resumed or not:
  see :mod:`xtml.data.store`).  Only the store's own files count: metadata files (``zarr.json``,
  ``.zarray``, ``.zgroup``, ``.zattrs``, ``.zmetadata``) anywhere and every file inside an array folder
  (the chunks); anything else in the folder (a ``record.json``, ``.DS_Store``) is not data.
  Metadata files are hashed as canonical JSON (sorted keys, compact) after removing the volatile
  metadata listed in :data:`VOLATILE_METADATA`: the ``provenance`` block that
  :func:`xtml.data.store.simulate_dataset` writes into the ``xtml`` attributes (``created_utc``, the
  package ``versions``, ``python``, ``platform``, ``machine`` and ``git_revision``).  They say when,
  where and with what a dataset was made, not what it holds: the same data re-simulated tomorrow or on
  another machine hashes the same, while any change of a value, of the configuration, seed, ``n`` or
  chunk size in the metadata, or of a stored byte, changes the hash.  (The bytes are the compressed
  chunks: identical data compressed by a different codec version would hash differently; compare
  the arrays themselves before calling such a dataset different.)
* a **run folder** (with a ``record.json`` that lists its files) hashes over the files its record
  lists, recomputed from disk: products added later by other commands do not change it, a modified
  listed file does;
* any other **folder** hashes like a run's file list (:func:`file_manifest`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from xtml.runs._lock import LOCK_NAME

__all__ = ["VOLATILE_METADATA", "dataset_hash", "file_manifest", "file_sha256", "is_zarr_store"]

RECORD_NAME = "record.json"
#: files that are never content: the run lock, a record being written, desktop litter
SKIP_NAMES = frozenset({LOCK_NAME, RECORD_NAME + ".tmp", ".DS_Store", "Thumbs.db", "desktop.ini"})
_ZARR_METADATA = frozenset({"zarr.json", ".zarray", ".zgroup", ".zattrs", ".zmetadata"})
#: keys removed from the ``xtml`` attributes of Zarr metadata before hashing (see the module docstring)
VOLATILE_METADATA: tuple[str, ...] = ("provenance",)


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def combine(entries: Mapping[str, str]) -> str:
    """SHA-256 over the sorted ``path NUL digest`` lines of ``entries`` (relative path -> sha256)."""
    h = hashlib.sha256()
    for rel in sorted(entries):
        h.update(f"{rel}\0{entries[rel]}\n".encode())
    return h.hexdigest()


def is_zarr_store(path: Path) -> bool:
    """Whether ``path`` is the root (or a group) of a Zarr store (v2 or v3)."""
    return path.is_dir() and any((path / name).is_file() for name in ("zarr.json", ".zgroup", ".zarray"))


def _without_volatile(meta: Any) -> Any:
    if isinstance(meta, dict):
        out = {}
        for k, v in meta.items():
            if k == "xtml" and isinstance(v, dict):
                v = {kk: vv for kk, vv in v.items() if kk not in VOLATILE_METADATA}
            out[k] = _without_volatile(v)
        return out
    if isinstance(meta, list):
        return [_without_volatile(v) for v in meta]
    return meta


def _metadata_digest(path: Path) -> tuple[str, Any]:
    raw = path.read_bytes()
    try:
        meta = json.loads(raw)
    except ValueError:  # not JSON: hash as bytes
        return hashlib.sha256(raw).hexdigest(), None
    canonical = json.dumps(_without_volatile(meta), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest(), meta


def _entries(folder: Path) -> Iterator[os.DirEntry[str]]:
    with os.scandir(folder) as it:
        yield from sorted(it, key=lambda e: e.name)


def zarr_entries(store: Path) -> tuple[dict[str, str], list[str]]:
    """The content digests of a Zarr store (relative path -> sha256) and its other files (paths)."""
    content: dict[str, str] = {}
    others: list[str] = []

    def visit(folder: Path, rel: str, in_array: bool) -> None:
        if (folder / ".zarray").is_file():
            in_array = True
        if (folder / "zarr.json").is_file():
            digest, meta = _metadata_digest(folder / "zarr.json")
            content[rel + "zarr.json"] = digest
            in_array = in_array or (isinstance(meta, dict) and meta.get("node_type") == "array")
        for entry in _entries(folder):
            if entry.is_dir(follow_symlinks=False):
                visit(Path(entry.path), f"{rel}{entry.name}/", in_array)
            elif entry.name == "zarr.json" or not entry.is_file() or entry.name in SKIP_NAMES:
                continue
            elif entry.name in _ZARR_METADATA:
                content[rel + entry.name] = _metadata_digest(Path(entry.path))[0]
            elif in_array and not entry.name.startswith("."):
                content[rel + entry.name] = file_sha256(entry.path)
            else:
                others.append(rel + entry.name)

    visit(store, "", False)
    return content, others


def file_manifest(root: str | Path) -> dict[str, str]:
    """Every file of a run folder with its SHA-256: the ``files`` of a run record.

    Paths are relative, with ``/``.  A Zarr store inside the folder is one entry, its path with a
    trailing ``/`` and its :func:`dataset_hash` (thousands of chunk files would drown the record),
    plus any non-Zarr files inside it.  Left out: the folder's own ``record.json``, the run lock, a
    record being written, desktop litter, and sub-folders holding a run record of their own (a run
    nested inside this one, such as an evaluation, is recorded by its own record).
    """
    root = Path(root)
    out: dict[str, str] = {}

    def visit(folder: Path, rel: str) -> None:
        for entry in _entries(folder):
            path = Path(entry.path)
            if entry.is_dir(follow_symlinks=False):
                if holds_run_record(path):
                    continue
                if is_zarr_store(path):
                    content, others = zarr_entries(path)
                    out[f"{rel}{entry.name}/"] = combine(content)
                    for other in others:
                        out[f"{rel}{entry.name}/{other}"] = file_sha256(path / other)
                else:
                    visit(path, f"{rel}{entry.name}/")
            elif (
                entry.is_file()
                and entry.name not in SKIP_NAMES
                and not (rel == "" and entry.name == RECORD_NAME)
            ):
                out[rel + entry.name] = file_sha256(path)

    visit(root, "")
    return out


def entry_hash(root: Path, key: str) -> str:
    """The digest of one :func:`file_manifest` entry as it is on disk now (``FileNotFoundError`` if gone)."""
    path = root / key
    if key.endswith("/"):
        if not is_zarr_store(path):
            raise FileNotFoundError(path)
        return combine(zarr_entries(path)[0])
    return file_sha256(path)


def _raw_record(folder: Path) -> dict[str, Any] | None:
    try:
        record = json.loads((folder / RECORD_NAME).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "run_id" in record and "format_version" in record else None


def holds_run_record(folder: Path) -> bool:
    """Whether ``folder`` holds the ``record.json`` of a run (not merely a file of that name)."""
    return _raw_record(folder) is not None


def _listed_files(folder: Path) -> dict[str, str] | None:
    record = _raw_record(folder)
    files = record.get("files") if record is not None else None
    return files if isinstance(files, dict) and files else None


def dataset_hash(path: str | Path) -> str:
    """Content hash (SHA-256, hex) of a file, a Zarr store, a run folder or a folder.

    See the module docstring for what each hashes; in short, the hash of a Zarr store depends only on
    its data and its non-volatile metadata (not on the chunk write order, nor on the provenance block
    with its creation time), so a dataset re-simulated from the same configuration and seed hashes the
    same.

    Raises
    ------
    ValueError
        If ``path`` does not exist, or is a run folder missing a file its record lists.
    """
    p = Path(path)
    if p.is_file():
        return file_sha256(p)
    if not p.is_dir():
        raise ValueError(f"cannot hash {str(p)!r}: no such file or folder")
    if is_zarr_store(p):
        return combine(zarr_entries(p)[0])
    listed = _listed_files(p)
    if listed is not None:
        try:
            return combine({key: entry_hash(p, key) for key in listed})
        except FileNotFoundError as err:
            raise ValueError(
                f"run folder {str(p)!r} lacks {err.filename or err}, which its record lists"
            ) from None
    return combine(file_manifest(p))
