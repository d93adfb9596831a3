"""The configurations shipped inside the package (``xtml/configs``), for a pip-installed user.

A checkout has them under ``configs/`` too (a link into the package); an installed xtml has only the package
copy, which ``xtml config list`` and ``xtml config show NAME`` give.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["config_kind", "config_path", "config_summary", "shipped_configs"]


def shipped_configs() -> dict[str, Path]:
    """``name -> path`` of every shipped configuration (name without ``.toml``), sorted by name."""
    folder = Path(str(resources.files("xtml") / "configs"))
    return {p.stem: p for p in sorted(folder.glob("*.toml"))}


def config_path(name: str) -> Path:
    """The path of the shipped configuration ``name`` (with or without ``.toml``).

    Raises
    ------
    ValueError
        Naming the shipped configurations, if there is none of that name.
    """
    configs = shipped_configs()
    key = name.removesuffix(".toml")
    if key not in configs:
        raise ValueError(f"no shipped configuration {name!r}; the shipped ones are: {', '.join(configs)}")
    return configs[key]


def config_kind(path: Path) -> str:
    """``"training"`` (``xtml train``), ``"sbi"`` (``xtml sbi train``) or ``"simulation"``
    (``xtml simulate``)."""
    from xtml._files import read_toml

    keys = set(read_toml(path))
    if "task" in keys:
        return "training"
    if "sbi" in keys:
        return "sbi"
    return "simulation"


def config_summary(path: Path) -> str:
    """The first line of the file's leading comment (what the configuration is for)."""
    for line in path.read_text().splitlines():
        text = line.strip()
        if text.startswith("#"):
            return text.lstrip("#").strip()
        if text:
            break
    return ""
