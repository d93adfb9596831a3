"""Provenance: package versions, platform and the git revision of xtml, for every product."""

from __future__ import annotations

import platform
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["git_revision", "package_versions", "provenance"]

_PACKAGES = (
    "xtml",
    "numpy",
    "scipy",
    "astropy",
    "stingray",
    "zarr",
    "numba",
    "torch",
    "zuko",
    "scikit-learn",
)


def package_versions(packages: tuple[str, ...] = _PACKAGES) -> dict[str, str]:
    """Installed versions of the packages that shape results (``"not installed"`` otherwise)."""
    out = {}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_revision() -> str:
    """Git commit of the xtml source tree (``+dirty`` if modified), or ``"unknown"`` outside git."""
    here = Path(__file__).resolve().parents[1]  # src/xtml
    try:
        rev = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no", "--", "."],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return rev + ("+dirty" if dirty else "")


def provenance() -> dict[str, Any]:
    """Versions, platform, Python and git revision, with a UTC timestamp."""
    return {
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": package_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "git_revision": git_revision(),
    }
