"""A small TOML writer for resolved configurations (nested dicts of str, int, float, bool and lists).

The standard library reads TOML (:mod:`tomllib`) but does not write it, and ``tomli_w`` is not a
dependency of xtml; configurations are plain enough for the few rules below.  ``tomllib.loads`` of the
output gives the input back (test_runs checks it), except that keys whose value is ``None`` are left
out: TOML has no null.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["to_toml"]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
_INT64 = 2**63


def _string(text: str) -> str:
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:  # control characters must be escaped in TOML
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _key(key: Any, where: str) -> str:
    if not isinstance(key, str):
        raise TypeError(f"{where}: TOML keys are strings, got {key!r}")
    return key if _BARE_KEY.fullmatch(key) else _string(key)


def _value(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if not -_INT64 <= value < _INT64:
            raise ValueError(f"{where}: TOML integers are 64-bit, got {value}")
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)  # shortest round-tripping form: "0.1", "1e-05", "1e+16" are all TOML floats
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v, f"{where}[{i}]") for i, v in enumerate(value)) + "]"
    if isinstance(value, Mapping):  # inside an array: an inline table
        items = (f"{_key(k, where)} = {_value(v, f'{where}.{k}')}" for k, v in value.items() if v is not None)
        return "{" + ", ".join(items) + "}"
    if value is None:
        raise ValueError(f"{where}: TOML has no null, so None cannot be written inside an array")
    raise TypeError(f"{where}: cannot write {type(value).__name__} {value!r} as TOML")


def _table(table: Mapping[str, Any], prefix: tuple[str, ...], lines: list[str]) -> None:
    where = ".".join(prefix) or "config"
    simple = [(k, v) for k, v in table.items() if v is not None and not isinstance(v, Mapping)]
    subtables = [(k, v) for k, v in table.items() if isinstance(v, Mapping)]
    if prefix and (simple or not subtables):  # a header, also for an empty table so that its key exists
        if lines:
            lines.append("")
        lines.append("[" + ".".join(_key(k, where) for k in prefix) + "]")
    for k, v in simple:
        lines.append(f"{_key(k, where)} = {_value(v, f'{where}.{k}')}")
    for k, v in subtables:
        _table(v, (*prefix, k), lines)


def to_toml(data: Mapping[str, Any]) -> str:
    """``data`` as a TOML document: nested mappings become ``[tables]``, lists of mappings arrays of
    inline tables.  ``None`` values of a table are left out; anything TOML cannot hold (``None`` inside
    an array, an integer beyond 64 bits, a non-string key, an object) raises with its dotted key.

    >>> print(to_toml({"seed": 1, "model": {"lr": 0.001, "layers": [32, 16]}}), end="")
    seed = 1
    <BLANKLINE>
    [model]
    lr = 0.001
    layers = [32, 16]
    """
    lines: list[str] = []
    _table(data, (), lines)
    return "\n".join(lines) + "\n"
