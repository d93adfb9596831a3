"""Model bundles: one ``*.xtml.zip`` file that carries a trained run to another machine, safely.

``xtml export RUN --out model.xtml.zip`` packs what it takes to use and judge a model, and nothing that
can run code:

* the run record (``record.json``), its configuration (``config.toml``, ``config.json``) and summary
  (``train.json`` or ``sbi.json``, ``scenario.toml``);
* the model files: ``models/`` (scikit-learn through skops with a type allow-list, networks as
  safetensors, JSON) or ``posterior/`` (safetensors + JSON) with ``manifest.json`` and
  ``calibration.json``;
* the evaluation's record and figures (``evaluation/record.json``, ``metrics.json``, ``summary.txt``);
* ``scope.json``: the training domain, the scope gate and a sample of 300 training inputs;
* ``model_card.md`` (written by ``xtml report`` first if the run has none) and the dataset card;
* ``BUNDLE.json``: the bundle's format, the xtml version and the SHA-256 of every other member.

:func:`check_bundle` refuses, before anything is unpacked, a bundle with: a member whose hash differs
from ``BUNDLE.json`` or from the run record; a member ``BUNDLE.json`` does not list; a path outside the
bundle (absolute, ``..``), a link, or a file type outside :data:`ALLOWED_SUFFIXES`; pickle data in any
member (whatever its name); a newer bundle format; more than :data:`MAX_BYTES` unpacked.  Nothing in a
bundle is ever unpickled: the loaders read JSON, safetensors and skops (allow-listed types only), and
check every file against the run record again.  ``xtml import`` and ``xtml analyze --run
model.xtml.zip`` unpack a checked bundle and use it as a run folder.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import shutil
import stat
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Any

from xtml.runs.folder import check_files, require_finished
from xtml.runs.hashing import RECORD_NAME, file_manifest

__all__ = [
    "ALLOWED_SUFFIXES",
    "BUNDLE_FORMAT_VERSION",
    "BUNDLE_NAME",
    "MAX_BYTES",
    "UnsafeBundleError",
    "check_bundle",
    "export_run",
    "import_bundle",
    "open_bundle",
]

BUNDLE_NAME = "BUNDLE.json"
BUNDLE_FORMAT_VERSION = 1
#: the only kinds of file a bundle may hold: text, JSON, TOML, safetensors and skops (a zip of JSON and
#: numpy arrays, loaded with a type allow-list)
ALLOWED_SUFFIXES = frozenset({".json", ".toml", ".md", ".txt", ".safetensors", ".skops"})
MAX_BYTES = 2 * 1024**3  # unpacked size limit (a zip bomb is refused before it is unpacked)
_FIXED_TIME = (2020, 1, 1, 0, 0, 0)  # member timestamps: the same run exports to the same bytes
_TOP_FILES = (
    RECORD_NAME,
    "config.toml",
    "config.json",
    "train.json",
    "sbi.json",
    "scenario.toml",
    "manifest.json",
    "calibration.json",
    "scope.json",
    "summary.txt",
)
_EVALUATION_FILES = ("record.json", "config.toml", "metrics.json", "summary.txt", "importances.json")
_CARDS = ("model_card.md", "DATASET_CARD.md")


class UnsafeBundleError(ValueError):
    """A bundle that is modified, malformed or holds something that could run code; nothing was unpacked."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _parses_as_pickle(data: bytes) -> bool:
    """Whether ``data`` is a pickle stream (any protocol), found by parsing its opcodes without executing
    anything (:func:`pickletools.genops`)."""
    import io
    import pickletools

    try:
        for opcode, _arg, _pos in pickletools.genops(io.BytesIO(data)):
            if opcode.name == "STOP":
                return True
    except Exception:  # not a valid opcode stream: not a pickle
        return False
    return False


def _npy_holds_objects(data: bytes) -> bool:
    """Whether an ``.npy`` file declares an object dtype (whose payload is a pickle)."""
    import io

    import numpy as np

    f = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(f)
        header = (
            np.lib.format.read_array_header_1_0(f)
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0(f)
        )
    except Exception:
        return True  # not a well-formed array file: treat as unsafe
    return bool(header[2].hasobject)


def _pickle_reason(name: str, data: bytes) -> str | None:
    """Why a member may hold pickle data (which runs code when loaded), or None."""
    if _parses_as_pickle(data):
        return "holds pickle data, which runs code when loaded"
    if name.endswith(".skops"):  # a zip of a JSON schema and numpy arrays: look inside
        import io

        try:
            with zipfile.ZipFile(io.BytesIO(data)) as inner:
                for entry in inner.infolist():
                    content = inner.read(entry)
                    suffix = PurePosixPath(entry.filename).suffix
                    if suffix not in (".json", ".npy"):
                        return f"holds {entry.filename!r}, neither JSON nor a numpy array (not a skops file)"
                    if suffix == ".npy" and _npy_holds_objects(content):
                        return f"holds {entry.filename!r}, a numpy array of Python objects: pickle data"
                    if suffix == ".json" and _parses_as_pickle(content):
                        return f"holds pickle data in {entry.filename!r}, which runs code when loaded"
        except _DAMAGED:
            return "is not a valid skops archive"
    return None


def _members(run: Path) -> dict[str, Path]:
    """The files that go into the bundle of ``run``: bundle name -> file."""
    record = require_finished(run, "it")
    listed = [k for k in record.files if not k.endswith("/")]
    names = [k for k in listed if k in _TOP_FILES or k.startswith(("models/", "posterior/"))]
    names.append(RECORD_NAME)
    ev = run / "evaluation"
    if (ev / RECORD_NAME).is_file():
        require_finished(ev, "its evaluation")
        names += [f"evaluation/{n}" for n in _EVALUATION_FILES if (ev / n).is_file()]
    if (run / "model_card.md").is_file():
        names.append("model_card.md")
    out = {name: run / name for name in sorted(set(names))}
    if "data" in record.inputs:  # the training set's card (xtml simulate writes it)
        card = record.input_path("data") / "DATASET_CARD.md"
        if card.is_file():
            out["DATASET_CARD.md"] = card
    return out


def export_run(run_dir: str | Path, out: str | Path, *, model_card: bool = True) -> Path:
    """Pack the finished run ``run_dir`` into the bundle ``out`` (module docstring); returns ``out``.

    Every packed file is first checked against the run's record (a run modified since it finished is
    not exported).  With ``model_card``, a run without ``model_card.md`` gets one (``xtml report``).

    Raises ``ValueError`` for a run that did not finish or has no model, and
    :class:`~xtml.runs.TamperedRunError` for a modified file.
    """
    run = Path(run_dir)
    out = Path(out)
    _check_output(out)
    record = require_finished(run, "it")
    model_dirs = [d for d in ("models/", "posterior/") if any(k.startswith(d) for k in record.files)]
    if not model_dirs:
        raise ValueError(
            f"{str(run)!r} is a {record.kind} run without a model (models/ or posterior/): only training "
            "and SBI runs can be exported"
        )
    check_files(run, [*model_dirs, *(f for f in _TOP_FILES if f != RECORD_NAME)])
    if (run / "evaluation" / RECORD_NAME).is_file():
        check_files(run / "evaluation", ["metrics.json", "summary.txt"])
    if model_card and not (run / "model_card.md").is_file():
        from xtml.report.run_report import build_report

        build_report(run)
    members = _members(run)
    bad = [m for m in members if PurePosixPath(m).suffix not in ALLOWED_SUFFIXES]
    if bad:
        raise ValueError(f"cannot export {bad}: a bundle holds only {sorted(ALLOWED_SUFFIXES)} files")
    contents = {m: source.read_bytes() for m, source in members.items()}
    digests = {m: _sha256(data) for m, data in contents.items()}
    from xtml import __version__

    manifest = {
        "format_version": BUNDLE_FORMAT_VERSION,
        "xtml_version": __version__,
        "kind": record.kind,
        "run_id": record.run_id,
        "source": run.resolve().name,  # the run folder's name: no absolute path of this machine
        "files": digests,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in [BUNDLE_NAME, *members]:
            data = json.dumps(manifest, indent=1).encode() if name == BUNDLE_NAME else contents[name]
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            zf.writestr(info, data)
    tmp.replace(out)
    return out


def _is_bundle(path: Path) -> bool:
    """Whether ``path`` is a zip file holding a ``BUNDLE.json`` (an earlier export)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return BUNDLE_NAME in zf.namelist()
    except (OSError, zipfile.BadZipFile, ValueError):
        return False


def _check_output(out: Path) -> None:
    """The bundle file to write: a new file or an earlier bundle (replaced); never a folder or other file."""
    if out.is_dir():
        raise ValueError(f"bundle file {str(out)!r} is a directory; give a file name such as model.xtml.zip")
    if out.exists() and not _is_bundle(out):
        raise ValueError(
            f"bundle file {str(out)!r} exists and is not an xtml bundle; refusing to replace it (only an "
            "earlier bundle is replaced): choose another file name"
        )


def _safe_name(name: str) -> str | None:
    """Why a member name is unsafe, or None."""
    path = PurePosixPath(name)
    if name.startswith(("/", "\\")) or ":" in name or "\\" in name:
        return "an absolute or non-POSIX path"
    if any(part in ("..", "") for part in path.parts) or name != str(path):
        return "a path that leaves the bundle"
    return None


def check_bundle(path: str | Path) -> dict[str, Any]:
    """Check a bundle without unpacking it (module docstring); returns its ``BUNDLE.json``.

    Raises :class:`UnsafeBundleError` naming the bundle, the member and the reason.
    """
    path = Path(path)
    where = str(path)
    _require_bundle_file(path)
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile, ValueError, EOFError) as err:
        raise UnsafeBundleError(
            f"{where}: not an xtml bundle, or a damaged one ({type(err).__name__}: {err}); a bundle is the "
            "zip file `xtml export` writes"
        ) from None
    with zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        if BUNDLE_NAME not in names:
            raise UnsafeBundleError(f"{where}: not an xtml bundle (no {BUNDLE_NAME})")
        if len(set(names)) != len(names):
            raise UnsafeBundleError(f"{where}: a member name appears twice")
        total = 0
        for info in infos:
            reason = _safe_name(info.filename)
            mode = info.external_attr >> 16
            if reason is None and info.is_dir():
                reason = "a folder entry"
            if reason is None and stat.S_IFMT(mode) not in (0, stat.S_IFREG):
                reason = "a link or special file"
            if reason is None and PurePosixPath(info.filename).suffix not in ALLOWED_SUFFIXES:
                reason = f"a file type outside {sorted(ALLOWED_SUFFIXES)}"
            if reason is not None:
                raise UnsafeBundleError(f"{where}: member {info.filename!r} is {reason}; refusing the bundle")
            total += info.file_size
        if total > MAX_BYTES:
            raise UnsafeBundleError(f"{where}: unpacks to {total} bytes, more than the limit {MAX_BYTES}")
        try:
            manifest = json.loads(_read_member(zf, BUNDLE_NAME, where))
        except UnsafeBundleError:
            raise
        except ValueError as err:
            raise UnsafeBundleError(f"{where}: {BUNDLE_NAME} is not JSON ({err})") from None
        version = manifest.get("format_version") if isinstance(manifest, dict) else None
        if not isinstance(version, int) or isinstance(version, bool):
            raise UnsafeBundleError(f"{where}: {BUNDLE_NAME} has no format_version")
        if version > BUNDLE_FORMAT_VERSION:
            from xtml import __version__

            raise UnsafeBundleError(
                f"{where} was exported by xtml {manifest.get('xtml_version', '?')} in bundle format "
                f"{version}; "
                f"this xtml {__version__} reads bundle formats up to {BUNDLE_FORMAT_VERSION}: upgrade xtml"
            )
        files = manifest.get("files")
        if not isinstance(files, dict):
            raise UnsafeBundleError(f"{where}: {BUNDLE_NAME} lists no files")
        unlisted = sorted(set(names) - set(files) - {BUNDLE_NAME})
        if unlisted:
            raise UnsafeBundleError(
                f"{where}: member {unlisted[0]!r} is not listed in {BUNDLE_NAME}; refusing the bundle"
            )
        missing = sorted(set(files) - set(names))
        if missing:
            raise UnsafeBundleError(f"{where}: {missing[0]!r} is listed in {BUNDLE_NAME} but missing")
        contents = {}
        for name in sorted(files):
            data = _read_member(zf, name, where)
            digest = _sha256(data)
            if digest != files[name]:
                raise UnsafeBundleError(
                    f"{where}: member {name!r} does not match its hash in {BUNDLE_NAME} (sha256 "
                    f"{digest[:12]}..., recorded {str(files[name])[:12]}...): the bundle was modified"
                )
            reason = _pickle_reason(name, data)
            if reason is not None:
                raise UnsafeBundleError(
                    f"{where}: member {name!r} {reason}; refusing the bundle (nothing was unpacked or loaded)"
                )
            contents[name] = data
    _check_records(where, contents)
    return manifest


#: what reading a damaged zip member raises: a bad CRC or header (BadZipFile), a broken deflate stream
#: (zlib.error), a stream that ends early (EOFError), an unknown compression method (NotImplementedError),
#: an encrypted member (RuntimeError), a short read (OSError) or a size field out of range (ValueError)
_DAMAGED = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, OSError, ValueError)


def _read_member(zf: zipfile.ZipFile, name: str, where: str) -> bytes:
    """The bytes of member ``name``; a damaged member (a flipped bit or byte anywhere, a truncated file)
    raises :class:`UnsafeBundleError` naming the bundle and the member."""
    try:
        return zf.read(name)
    except _DAMAGED as err:
        detail = str(err) if len(str(err)) <= 100 else str(err)[:97] + "..."
        raise UnsafeBundleError(
            f"{where}: member {name!r} is damaged ({type(err).__name__}: {detail}): the bundle was "
            "corrupted in transit or on disk; nothing was unpacked. Copy or export it again"
        ) from None


def _require_bundle_file(path: Path) -> None:
    """A bundle is a file: a missing path or a folder raise ``UnsafeBundleError`` saying so."""
    from xtml._files import InputPathError, require_file

    try:
        require_file(path, "bundle")
    except InputPathError as err:
        raise UnsafeBundleError(str(err)) from None


def _check_records(where: str, contents: dict[str, bytes]) -> None:
    """The members must also match the run record(s) they belong to (a second, independent list)."""
    from xtml.runs.record import RunRecord

    for prefix in ("", "evaluation/"):
        raw = contents.get(prefix + RECORD_NAME)
        if raw is None:
            if prefix == "":
                raise UnsafeBundleError(f"{where}: no run record ({RECORD_NAME})")
            continue
        try:
            record = RunRecord.from_json(raw.decode())
        except (ValueError, TypeError, UnicodeDecodeError) as err:
            raise UnsafeBundleError(f"{where}: {prefix}{RECORD_NAME} is not a run record ({err})") from None
        for name, data in contents.items():
            if not name.startswith(prefix) or name == prefix + RECORD_NAME:
                continue
            key = name[len(prefix) :]
            if prefix == "" and key.startswith("evaluation/"):
                continue
            recorded = record.files.get(key)
            if recorded is None and key in _CARDS:
                continue  # written after the run (the cards): covered by BUNDLE.json only
            if recorded is None or recorded != _sha256(data):
                raise UnsafeBundleError(
                    f"{where}: member {name!r} does not match the run record {prefix}{RECORD_NAME}; "
                    "refusing the bundle"
                )


def import_bundle(path: str | Path, to: str | Path, *, overwrite: bool = False) -> Path:
    """Check the bundle ``path`` and unpack it into the run folder ``to``; returns ``to``.

    The unpacked folder is a finished run: ``xtml analyze --run``, ``xtml sbi infer`` and ``xtml runs``
    use it as they use the original.  It carries the model card made at export, not the test predictions
    that ``xtml report`` needs: a report is made where the run was trained.  Raises
    :class:`UnsafeBundleError` (nothing is written) and ``ValueError`` if ``to`` exists and is not empty
    (unless ``overwrite``).
    """
    manifest = check_bundle(path)
    dest = Path(to)
    if dest.exists() and not dest.is_dir():
        raise ValueError(f"{str(dest)!r} exists and is a file, not a folder; choose a new or empty folder")
    if dest.exists() and any(dest.iterdir()):
        if not overwrite:
            raise ValueError(f"{str(dest)!r} exists and is not empty; choose another folder or --overwrite")
        shutil.rmtree(dest)
    tmp = Path(tempfile.mkdtemp(prefix=".import-", dir=dest.parent if dest.parent.exists() else None))
    try:
        with zipfile.ZipFile(path) as zf:
            for name in manifest["files"]:
                target = tmp / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(_read_member(zf, name, str(path)))
        (tmp / BUNDLE_NAME).write_text(json.dumps(manifest, indent=1))
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            dest.rmdir()
        shutil.move(str(tmp), str(dest))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    # the unpacked run checks out against its own record (the loaders check it again on every load)
    bad = [k for k, v in file_manifest(dest).items() if k in manifest["files"] and v != manifest["files"][k]]
    if bad:  # pragma: no cover - only a failing disk gets here
        raise UnsafeBundleError(f"{dest}: {bad[0]} changed while it was unpacked")
    return dest


_OPENED: dict[str, Path] = {}


def open_bundle(path: str | Path) -> Path:
    """Check and unpack a bundle into a temporary folder removed at exit; returns the run folder.

    The same bundle file (by content) is unpacked once per process.
    """
    path = Path(path)
    _require_bundle_file(path)
    key = _sha256(path.read_bytes())
    if key in _OPENED and _OPENED[key].is_dir():
        return _OPENED[key]
    root = Path(tempfile.mkdtemp(prefix="xtml-bundle-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    name = path.name.removesuffix(".zip").removesuffix(".xtml") or "run"
    run = import_bundle(path, root / name)
    _OPENED[key] = run
    return run
