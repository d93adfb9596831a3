"""Checked input paths: a file where a file is expected, a folder where a folder is, TOML that is TOML.

Every reader of a user-named path starts here, so that a missing path, a directory given as a file, a
file given as a folder, a binary file given as a configuration or an unreadable one gets the same clear
:class:`InputPathError` (a ``ValueError``) naming the path, what was expected and what it is, instead of
a ``FileNotFoundError``, ``IsADirectoryError`` or ``UnicodeDecodeError`` traceback.  This module imports
nothing from xtml, so every room (``timing`` included) can use it.

>>> require_file("no/such/file.toml", "configuration file")
Traceback (most recent call last):
...
xtml._files.InputPathError: configuration file 'no/such/file.toml' does not exist
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

__all__ = ["InputPathError", "read_bytes", "read_toml", "require_file", "require_folder"]


class InputPathError(ValueError):
    """A path named by the user that is missing, of the wrong kind, or unreadable.

    Attributes
    ----------
    path : Path
        The path as given.
    what : str
        What it should have been (``"configuration file"``, ``"run folder"``...).
    reason : str
        What is wrong, in words (``"does not exist"``, ``"is a directory, not a file"``...).
    """

    def __init__(self, path: str | os.PathLike[str], what: str, reason: str) -> None:
        self.path = Path(path)
        self.what = what
        self.reason = reason
        super().__init__(f"{what} {str(path)!r} {reason}")


def require_file(path: str | os.PathLike[str], what: str = "file") -> Path:
    """``path`` as a ``Path`` if it is an existing file (or a link to one); else :class:`InputPathError`.

    The error says "does not exist", "is a directory, not a file" or "is not a regular file".
    """
    p = Path(path)
    if p.is_file():
        return p
    if p.is_dir():
        raise InputPathError(p, what, "is a directory, not a file")
    if p.exists():
        raise InputPathError(p, what, "is not a regular file")
    raise InputPathError(p, what, "does not exist")


def require_folder(path: str | os.PathLike[str], what: str = "folder") -> Path:
    """``path`` as a ``Path`` if it is an existing folder; else :class:`InputPathError`
    ("does not exist", "is a file, not a folder")."""
    p = Path(path)
    if p.is_dir():
        return p
    if p.exists():
        raise InputPathError(p, what, "is a file, not a folder")
    raise InputPathError(p, what, "does not exist")


def read_bytes(path: str | os.PathLike[str], what: str = "file") -> bytes:
    """The bytes of an existing file; missing, directory or unreadable (permissions, I/O error) raise
    :class:`InputPathError` naming the path."""
    p = require_file(path, what)
    try:
        return p.read_bytes()
    except OSError as err:
        raise InputPathError(p, what, f"cannot be read ({err.strerror or err})") from None


def read_toml(path: str | os.PathLike[str], what: str = "configuration file") -> dict[str, Any]:
    """Parse a TOML file; every failure is an :class:`InputPathError` naming the file.

    A binary file, text that is not UTF-8 and invalid TOML all say "is not a TOML file" with the reason
    (the offending byte, or the TOML parser's line and column).
    """
    p = Path(path)
    raw = read_bytes(p, what)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputPathError(
            p,
            what,
            f"is not a TOML file (not UTF-8 text: byte 0x{raw[err.start]:02x} at position {err.start}; "
            "a configuration is a TOML text file, see configs/)",
        ) from None
    if "\x00" in text:
        raise InputPathError(p, what, "is not a TOML file (it holds NUL bytes: a binary file?)")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise InputPathError(p, what, f"is not a TOML file (not valid TOML: {err})") from None
