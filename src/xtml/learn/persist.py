"""Safe model files: scikit-learn parts through skops (an allow-list, no pickle), networks as safetensors.

A fitted pipeline is written to a folder:

* ``pipeline.skops``: the scikit-learn steps (for a network: the steps before it), loaded with
  ``skops.io.load`` after checking that every type it contains is a scikit-learn, numpy or
  ``xtml.learn`` *class* (anything else, e.g. a smuggled ``os.system``, ``builtins.exec`` or
  ``numpy.load``, is refused);
* ``network.safetensors`` + ``network.json``: the weights of a :mod:`xtml.learn.cnn` network and its
  parameters and fitted arrays (plain numbers);
* ``manifest.json``: the files with their SHA-256, checked before anything is loaded.

Nothing here ever calls ``pickle.load`` or ``torch.load``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline

from xtml.runs.hashing import file_sha256  # one file hash for model folders and run records

__all__ = ["IncompatibleModelError", "UnsafeModelError", "file_sha256", "load_model", "save_model"]

MODEL_FORMAT_VERSION = 1  # of the model folder (manifest, pipeline.skops, network files); bump on a change

_TRUSTED_PREFIXES = ("sklearn.", "xtml.learn.", "numpy.", "builtins.", "scipy.sparse.")
_PLAIN_BUILTINS = (
    slice,
    range,
    frozenset,
    set,
    complex,
    bytes,
    bytearray,
    tuple,
    list,
    dict,
    int,
    float,
    str,
    bool,
)
_PLAIN = (bool, int, float, str, np.ndarray, np.generic, list, tuple, dict, type(None))


class IncompatibleModelError(ValueError):
    """A model folder written by a newer xtml in a format this one cannot read (both versions named)."""


class UnsafeModelError(ValueError):
    """A model file that is not what its manifest says, or that holds types outside the allow-list."""


def _is_network(est: object) -> bool:
    return type(est).__name__ in ("CNNClassifier", "CNNRegressor")


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return {"__array__": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _from_json(value: Any) -> Any:
    if isinstance(value, dict) and "__array__" in value:
        return np.asarray(value["__array__"], dtype=value["dtype"])
    if isinstance(value, dict):
        return {k: _from_json(v) for k, v in value.items()}
    return value


def _fitted_state(est: Any) -> dict[str, Any]:
    """Every fitted attribute of a network estimator except the torch module, as JSON-ready values."""
    params = est.get_params()
    return {
        k: _jsonable(v)
        for k, v in vars(est).items()
        if k not in params and k != "module_" and isinstance(v, _PLAIN)
    }


def save_model(model: Pipeline, directory: str | Path) -> dict[str, str]:
    """Write a fitted pipeline to ``directory`` (module docstring); returns ``{file: sha256}``."""
    import skops.io as sio

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    last = model.steps[-1][1]
    files: dict[str, str] = {}
    if _is_network(last):
        from safetensors.torch import save_file

        sio.dump(Pipeline(model.steps[:-1]), out / "pipeline.skops")
        state = {k: v.detach().contiguous() for k, v in last.module_.state_dict().items()}
        save_file(state, str(out / "network.safetensors"))
        info = {
            "class": type(last).__name__,
            "params": _jsonable(last.get_params()),
            "step": model.steps[-1][0],
            "fitted": _fitted_state(last),
        }
        (out / "network.json").write_text(json.dumps(info, indent=1))
        names = ["pipeline.skops", "network.safetensors", "network.json"]
    else:
        sio.dump(model, out / "pipeline.skops")
        names = ["pipeline.skops"]
    _canonical_skops(out / "pipeline.skops")
    files = {name: file_sha256(out / name) for name in names}
    from xtml import __version__

    manifest = {"format_version": MODEL_FORMAT_VERSION, "xtml_version": __version__, "files": files}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return files


_SKOPS_ID = re.compile(r'("__id__": |"file": ")(\d+)')


def _canonical_skops(path: Path) -> None:
    """Rewrite a skops archive so that the same model always gives the same bytes (and hash).

    skops names objects and array files by the Python ``id()`` of each object, which differs from run to
    run; they are renumbered in order of appearance (consistently, so shared references stay shared),
    and the member times are fixed.
    """
    import zipfile

    with zipfile.ZipFile(path) as zf:
        members = {info.filename: (info, zf.read(info)) for info in zf.infolist()}
    schema = members["schema.json"][1].decode()
    ids: dict[str, str] = {}
    schema = _SKOPS_ID.sub(lambda m: m.group(1) + ids.setdefault(m.group(2), str(len(ids) + 1)), schema)
    renamed = {"schema.json": schema.encode()}
    for name, (_info, data) in members.items():
        if name != "schema.json":
            stem, dot, suffix = name.partition(".")
            renamed[f"{ids.get(stem, stem)}{dot}{suffix}"] = data
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(renamed):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, renamed[name])
    tmp.replace(path)


def _check_manifest(directory: Path) -> dict[str, str]:
    manifest = directory / "manifest.json"
    if not manifest.is_file():
        raise UnsafeModelError(f"{directory} has no manifest.json: not an xtml model folder")
    recorded = json.loads(manifest.read_text())
    version = int(recorded.get("format_version", 1))  # folders written before versions were recorded: 1
    if version > MODEL_FORMAT_VERSION:
        from xtml import __version__

        raise IncompatibleModelError(
            f"{directory} was saved by xtml {recorded.get('xtml_version', '?')} in model format {version}; "
            f"this xtml {__version__} reads model formats up to {MODEL_FORMAT_VERSION}: upgrade xtml to "
            "load it"
        )
    files = recorded["files"]
    for name, digest in files.items():
        path = directory / name
        if not path.is_file():
            raise UnsafeModelError(f"{path} is listed in the manifest but missing")
        actual = file_sha256(path)
        if actual != digest:
            raise UnsafeModelError(
                f"{path} does not match its manifest (sha256 {actual[:12]}..., expected {digest[:12]}...): "
                "refusing to load a modified model file"
            )
    return files


def _trusted_type(name: str) -> bool:
    """Whether skops may build ``name``: a *class* of scikit-learn, ``xtml.learn`` or scipy.sparse, a
    numpy scalar, dtype or array type, or a plain builtin container.

    Functions are never trusted, whatever their module: skops calls a reduce function with arguments
    from the file, and e.g. ``numpy.load`` (allow_pickle) or ``builtins.exec`` would run the file's code.
    Nor is ``numpy.memmap`` (it creates files).
    """
    import importlib

    module, _, attr = name.rpartition(".")
    if not module or not name.startswith(_TRUSTED_PREFIXES):
        return False
    try:
        obj = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError):
        return False
    if not isinstance(obj, type):
        return False
    if module == "builtins":
        return obj in _PLAIN_BUILTINS
    if name.startswith("numpy."):
        return obj is np.ndarray or (issubclass(obj, np.generic | np.dtype) and obj is not np.memmap)
    return True


def load_model(directory: str | Path) -> Pipeline:
    """Load a pipeline written by :func:`save_model`, after checking hashes and types."""
    import skops.io as sio

    d = Path(directory)
    files = _check_manifest(d)
    untrusted = sio.get_untrusted_types(file=d / "pipeline.skops")
    bad = [t for t in untrusted if not _trusted_type(t)]
    if bad:
        raise UnsafeModelError(f"{d / 'pipeline.skops'} contains types outside the allow-list: {bad}")
    model = sio.load(d / "pipeline.skops", trusted=untrusted)
    if "network.safetensors" not in files:
        return model
    from safetensors.torch import load_file

    from xtml.learn import cnn

    info = json.loads((d / "network.json").read_text())
    cls = {"CNNClassifier": cnn.CNNClassifier, "CNNRegressor": cnn.CNNRegressor}.get(info["class"])
    if cls is None:
        raise UnsafeModelError(f"{d / 'network.json'}: unknown network class {info['class']!r}")
    est = cls(**_from_json(info["params"]))
    for key, value in _from_json(info["fitted"]).items():
        setattr(est, key, value)
    state = load_file(str(d / "network.safetensors"))
    last_weight = [v for k, v in state.items() if k.endswith("weight")][-1]
    est.module_ = est._build_module(int(last_weight.shape[0]))
    est.module_.load_state_dict(state)
    est.module_.eval()
    return Pipeline([*model.steps, (info["step"], est)])
