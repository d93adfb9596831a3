"""MkDocs hooks: the reference pages are generated from the code when the site is built.

A page asks for generated content with a marker comment on a line of its own:

``<!-- xtml:cli -->``
    every ``xtml`` command's ``--help``, recursively (``xtml sbi train`` ...), from
    ``xtml.cli.build_parser()``;
``<!-- xtml:config -->``
    the configuration reference: every table and key of the simulation, training and SBI configurations,
    with its type (the dataclass annotations), its default (what the loaders fill in), whether it is required
    (the loaders refuse a file without it) and its meaning (the numpydoc of the dataclasses, else the comment
    of the key in the commented examples of the module docstrings or of the shipped configurations); then
    every shipped configuration file, each checked with its loader;
``<!-- xtml:results -->``
    the "when not to use ML" tables, from ``docs/results/ml_vs_reference.json``.

Nothing is hand-copied: a new CLI option, configuration key or docstring appears at the next build, and a
shipped configuration key that the reference does not know, or a shipped file that its loader refuses, fails
the build.  ``python docs/hooks.py collect`` refreshes ``docs/results/ml_vs_reference.json`` from the
outputs of the evaluation scripts in ``evals/out/`` (which are not committed).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
import tomllib
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results" / "ml_vs_reference.json"
MARKER = re.compile(r"^<!-- xtml:([a-z-]+) -->$", flags=re.M)
HELP_COLUMNS = "100"  # argparse wraps --help to the terminal: a fixed width makes the page reproducible


# ----------------------------------------------------------------------------------------- the MkDocs hook


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any, **kwargs: Any) -> str:
    """Replace every ``<!-- xtml:NAME -->`` marker by its generated Markdown (unknown names are errors)."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in GENERATORS:
            raise ValueError(f"{page.file.src_path}: unknown marker xtml:{name}; known: {sorted(GENERATORS)}")
        return GENERATORS[name]()

    return MARKER.sub(replace, markdown)


# ------------------------------------------------------------------------------------------- CLI reference


def _subparsers(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """(name, one-line help, parser) of each subcommand of ``parser``, in definition order."""
    out = []
    for action in parser._actions:  # argparse has no public API for this
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            seen: set[int] = set()
            for name, sub in action.choices.items():
                if id(sub) not in seen:  # aliases point at the same parser
                    seen.add(id(sub))
                    out.append((name, helps.get(name, ""), sub))
    return out


def _walk_cli(
    parser: argparse.ArgumentParser, path: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], str, argparse.ArgumentParser]]:
    for name, text, sub in _subparsers(parser):
        yield (*path, name), text, sub
        yield from _walk_cli(sub, (*path, name))


def cli_reference() -> str:
    """Every command's ``--help``, generated from :func:`xtml.cli.build_parser`."""
    from xtml.cli import build_parser

    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_COLUMNS
    try:
        parser = build_parser()
        commands = list(_walk_cli(parser, ("xtml",)))
        lines = ["| command | what it does |", "|---|---|"]
        for path, text, _ in commands:
            anchor = "-".join(path)
            lines.append(f"| [`{' '.join(path)}`](#{anchor}) | {_md_cell(text)} |")
        blocks = [
            "\n".join(lines),
            f"## xtml {{#xtml}}\n\n```text\n{parser.format_help().rstrip()}\n```",
        ]
        for path, _, sub in commands:
            level = "#" * min(len(path) + 1, 4)
            anchor = "-".join(path)
            blocks.append(
                f"{level} {' '.join(path)} {{#{anchor}}}\n\n```text\n{sub.format_help().rstrip()}\n```"
            )
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old
    return "\n\n".join(blocks) + "\n"


def _md_cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


# ------------------------------------------------------------------------------- docstrings and comments


def _rst_to_md(text: str) -> str:
    """The inline reST of the docstrings as Markdown: roles and double backticks."""
    text = re.sub(
        r":(?:class|func|meth|mod|attr|data|obj|exc):`~?([^`]+)`", lambda m: f"`{m.group(1)}`", text
    )
    text = re.sub(r"``([^`]+)``", r"`\1`", text)
    return " ".join(text.split())


def numpydoc_entries(doc: str | None) -> dict[str, str]:
    """``name -> description`` from the Parameters and Attributes sections of a numpydoc docstring.

    Grouped entries (``lr, weight_decay : float``) give the description to each name; entries without a
    description map to "" (their type is rendered from the annotations instead).
    """
    if not doc:
        return {}
    lines = doc.expandtabs().splitlines()
    body = [ln for ln in lines[1:] if ln.strip()]
    indent = min((len(ln) - len(ln.lstrip()) for ln in body), default=0)
    lines = [lines[0].strip()] + [ln[indent:] if ln.strip() else "" for ln in lines[1:]]
    out: dict[str, str] = {}
    in_section = False
    names: list[str] = []
    desc: list[str] = []

    def flush() -> None:
        if names:
            text = _rst_to_md(" ".join(desc))
            for n in names:
                out[n] = text

    for k, line in enumerate(lines):
        nxt = lines[k + 1] if k + 1 < len(lines) else ""
        if line.strip() and set(nxt.strip()) == {"-"} and not line.startswith(" "):
            flush()
            names, desc = [], []
            in_section = line.strip() in ("Parameters", "Attributes", "Other Parameters")
            continue
        if set(line.strip()) == {"-"} or not in_section:
            continue
        if line and not line.startswith(" "):
            flush()
            head = line.partition(" : ")[0]
            names = [n.strip() for n in head.split(",") if n.strip()]
            desc = []
        elif line.strip():
            desc.append(line.strip())
    flush()
    return out


def toml_comments(text: str) -> dict[tuple[str, str], str]:
    """``(table, key) -> trailing comment`` of a commented TOML file (``classes.*`` as ``classes.NAME``).

    Keys that are commented out (``# targets = [...]  # regress: ...``) count too: they document optional
    keys.
    """
    out: dict[tuple[str, str], str] = {}
    table = ""
    for raw in text.splitlines():
        line = raw.strip()
        m = re.match(r"^\[([^\]]+)\]\s*(?:#\s*(.*))?$", line)
        if m:
            table = _generic_table(m.group(1).strip())
            if m.group(2):
                out.setdefault((table, ""), m.group(2).strip())
            continue
        # a key with a trailing comment, also commented out: "# targets = [...]  # regress: ..."
        m = re.match(r'^(?:#\s*)?"?([A-Za-z_][\w.]*)"?\s*=\s*[^#]*#\s*(.+)$', line)
        if m:
            out.setdefault((table, m.group(1)), m.group(2).strip())
    return out


def _generic_table(name: str) -> str:
    parts = name.split(".")
    if parts[0] in ("classes", "models") and len(parts) >= 2:
        parts[1] = "NAME"
    return ".".join(parts)


def _docstring_toml(doc: str | None) -> str | None:
    """The ``.. code-block:: toml`` example of a module docstring, dedented."""
    if not doc or ".. code-block:: toml" not in doc:
        return None
    after = doc.split(".. code-block:: toml", 1)[1].splitlines()[1:]
    block: list[str] = []
    for line in after:
        if line.strip() and not line.startswith(" "):
            break
        block.append(line)
    while block and not block[-1].strip():
        block.pop()
    while block and not block[0].strip():
        block.pop(0)
    indent = min(len(ln) - len(ln.lstrip()) for ln in block if ln.strip())
    return "\n".join(ln[indent:] for ln in block)


# ---------------------------------------------------------------------------------------- types and values


def type_text(hint: Any) -> str:
    """A type annotation as a configuration-file reader sees it."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Literal:
        return " \\| ".join(f'`"{a}"`' if isinstance(a, str) else f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        text = " or ".join(type_text(a) for a in rest)
        return f"{text} (optional)" if len(rest) < len(args) else text
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"array of {type_text(args[0])}"
        if args and all(a == args[0] for a in args):
            return f"array of {len(args)} {type_text(args[0])}"
        return "array"
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        return "table"
    if origin is list:
        return f"array of {type_text(args[0])}" if args else "array"
    names = {bool: "boolean", int: "integer", float: "number", str: "string"}
    if hint in names:
        return names[hint]
    if dataclasses.is_dataclass(hint):
        return "table"
    return getattr(hint, "__name__", str(hint))


def toml_value(value: Any) -> str:
    """A Python value as TOML text (for the defaults column)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    return repr(value)


# --------------------------------------------------------------------------------------- config reference

# minimal configurations: what a loader needs at least; two different ones tell defaults that depend on the
# rest of the file ("the only class") from fixed ones


def _minimal_simulations() -> tuple[dict[str, Any], dict[str, Any]]:
    obs = {"dt": 0.0078125, "segment_bins": 256}
    rate = {"dist": "uniform", "low": 100.0, "high": 200.0}
    qpo = {
        "components": {"qpo": "lorentzian"},
        "priors": {
            "qpo.nu0": {"dist": "uniform", "low": 5.0, "high": 10.0},
            "qpo.q": {"dist": "fixed", "value": 10.0},
            "qpo.rms": {"dist": "uniform", "low": 0.1, "high": 0.2},
        },
    }
    red = {
        "components": {"red": "powerlaw"},
        "priors": {
            "red.norm": {"dist": "loguniform", "low": 1e-4, "high": 1e-2},
            "red.index": {"dist": "uniform", "low": 1.0, "high": 2.0},
        },
    }
    return (
        {"observation": obs, "rate": rate, "classes": {"a": qpo}},
        {"observation": dict(obs, dt=0.00390625), "rate": rate, "classes": {"b": red}},
    )


@dataclasses.dataclass
class _Key:
    key: str
    type: str
    default: str
    text: str


@dataclasses.dataclass
class _Table:
    name: str
    summary: str
    keys: list[_Key]
    note: str = ""


def _required(load: Callable[[dict[str, Any]], Any], minimal: dict[str, Any], path: tuple[str, ...]) -> bool:
    """Whether ``load`` refuses ``minimal`` without the key at ``path``."""
    import copy

    raw = copy.deepcopy(minimal)
    node = raw
    for p in path[:-1]:
        node = node[p]
    del node[path[-1]]
    try:
        load(raw)
    except (ValueError, KeyError, TypeError):
        return True
    return False


def _dig(d: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    for p in path:
        if not isinstance(d, Mapping) or p not in d:
            return dataclasses.MISSING
        d = d[p]
    return d


def _table_from_dataclass(
    name: str,
    cls: type,
    *,
    canon: tuple[Mapping[str, Any], Mapping[str, Any]] | None,
    path: tuple[str, ...],
    load: Callable[[dict[str, Any]], Any] | None,
    minimal: dict[str, Any] | None,
    comments: dict[tuple[str, str], str],
    minimal_b: dict[str, Any] | None = None,
    summary: str | None = None,
    rename: Mapping[str, str] | None = None,
    skip: tuple[str, ...] = (),
    fields: tuple[str, ...] | None = None,
    note: str = "",
) -> _Table:
    """One configuration table described by the dataclass the loader resolves it into."""
    rename = dict(rename or {})
    hints = typing.get_type_hints(cls)
    docs = numpydoc_entries(cls.__doc__)
    if summary is None:
        summary = _rst_to_md((cls.__doc__ or "").strip().split("\n\n")[0])
    keys = []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in skip or (fields is not None and f.name not in fields):
            continue
        key = rename.get(f.name, f.name)
        explicit = minimal is not None and _dig(minimal, (*path, key)) is not dataclasses.MISSING
        if canon is not None:
            a, b = (_dig(c, (*path, key)) for c in canon)
            if a is dataclasses.MISSING:
                default = "not set"
            elif (
                a != b
                and not explicit
                and (minimal_b is None or _dig(minimal_b, (*path, key)) is dataclasses.MISSING)
            ):
                default = "depends on the file (see meaning)"
            else:
                default = f"`{toml_value(a)}`"
        elif f.default is not dataclasses.MISSING:
            default = "not set" if f.default is None else f"`{toml_value(f.default)}`"
        elif f.default_factory is not dataclasses.MISSING:
            default = f"`{toml_value(f.default_factory())}`"
        else:
            default = "—"
        if load is not None and minimal is not None and explicit:
            if _required(load, minimal, (*path, key)):
                default = "**required**"
        elif canon is None and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            default = "**required**"
        text = docs.get(f.name) or comments.get((name, key), "")
        keys.append(_Key(key, type_text(hints[f.name]), default, text))
    return _Table(name, summary, keys, note)


def _render_table(t: _Table) -> str:
    lines = [f"### `[{t.name}]`", ""]
    if t.summary:
        lines += [t.summary, ""]
    if t.note:
        lines += [t.note, ""]
    lines += ["| key | type | default | meaning |", "|---|---|---|---|"]
    for k in t.keys:
        lines.append(f"| `{k.key}` | {k.type} | {k.default} | {_md_cell(k.text) or '—'} |")
    return "\n".join(lines)


def _shipped_configs() -> list[Path]:
    import xtml

    return sorted((Path(xtml.__file__).parent / "configs").glob("*.toml"))


def _all_comments() -> dict[tuple[str, str], str]:
    """Comments of every key in the shipped configurations, first file first (alphabetical)."""
    out: dict[tuple[str, str], str] = {}
    for p in _shipped_configs():
        for k, v in toml_comments(p.read_text()).items():
            out.setdefault(k, v)
    return out


def config_tables() -> dict[str, list[_Table]]:
    """Every configuration table, grouped by kind of file."""
    from xtml.data import config as dcfg
    from xtml.learn import config as lcfg
    from xtml.psd.priors import _DISTS
    from xtml.sbi import density, inputs, scenario
    from xtml.simulate import DeadTime, Detector, EnergySpectrum, PileUp

    comments = _all_comments()
    comments_learn = toml_comments(_docstring_toml(lcfg.__doc__) or "")
    comments_sbi = toml_comments(_docstring_toml(scenario.__doc__) or "")
    sim_a, sim_b = _minimal_simulations()

    def load_sim(raw: dict[str, Any]) -> Any:
        return dcfg.SimulationConfig.from_dict(raw)

    canon_sim = (load_sim(sim_a).to_dict(), load_sim(sim_b).to_dict())
    dead = {"dead_time": {"value": 0.0025}}
    canon_dead = tuple(load_sim(dict(s, detector=dead)).to_dict() for s in (sim_a, sim_b))
    pile_a = dict(sim_a, detector={"pileup": {"frame_time": sim_a["observation"]["dt"]}})
    pile_b = dict(sim_b, detector={"pileup": {"frame_time": sim_b["observation"]["dt"]}})
    canon_pile = (load_sim(pile_a).to_dict(), load_sim(pile_b).to_dict())

    priors = "; ".join(
        f'`{{dist = "{d}", {", ".join(f"{k} = ..." for k in keys)}}}`: '
        f"{_rst_to_md((cls.__doc__ or '').strip().splitlines()[0])}"
        for d, (cls, keys) in _DISTS.items()
    )
    rate = _Table(
        "rate",
        "The prior on the mean source count rate per module, ct/s (the `rate` parameter of every class).",
        [
            _Key(k, "number" if k != "dist" else " \\| ".join(f'`"{d}"`' for d in _DISTS), "—", "")
            for k in ("dist", *dict.fromkeys(k for _, keys in _DISTS.values() for k in keys))
        ],
        note=f"A prior is one of: {priors}; or a bare number (fixed). The same forms are used in "
        "`[classes.NAME.priors]`.",
    )
    cls_doc = numpydoc_entries(dcfg.ClassSpec.__doc__)
    classes = _Table(
        "classes.NAME",
        _rst_to_md((dcfg.ClassSpec.__doc__ or "").strip().split("\n\n")[0]),
        [
            _Key(
                "components",
                "table",
                "**required**",
                "`{component name = kind}` in order; kinds in the table below. Parameters are named "
                "`component.parameter`, e.g. `qpo.nu0`.",
            ),
            _Key(
                "priors",
                "table",
                "**required**",
                '`{"component.parameter" = prior}` for every parameter of the components (prior forms as '
                "in `[rate]`).",
            ),
            _Key(
                "weight",
                "number",
                f"`{toml_value(canon_sim[0]['classes']['a']['weight'])}`",
                cls_doc.get("weight") or comments.get(("classes.NAME", "weight"), ""),
            ),
        ],
    )
    simulation = [
        _table_from_dataclass(
            "observation",
            dcfg.ObservationSpec,
            canon=canon_sim,
            minimal_b=sim_b,
            path=("observation",),
            load=load_sim,
            minimal=sim_a,
            comments=comments,
        ),
        rate,
        classes,
        _table_from_dataclass(
            "detector",
            Detector,
            canon=canon_sim,
            minimal_b=sim_b,
            path=("detector",),
            load=None,
            minimal=None,
            comments=comments,
            note="`dead_time` and `pileup` are sub-tables (below); a detector has at most one of them.",
        ),
        _table_from_dataclass(
            "detector.dead_time",
            DeadTime,
            canon=canon_dead,  # type: ignore[arg-type]
            minimal_b=dict(sim_b, detector=dead),
            path=("detector", "dead_time"),
            load=load_sim,
            minimal=dict(sim_a, detector=dead),
            comments=comments,
        ),
        _table_from_dataclass(
            "detector.pileup",
            PileUp,
            canon=canon_pile,
            minimal_b=pile_b,
            path=("detector", "pileup"),
            load=load_sim,
            minimal=pile_a,
            comments=comments,
            note="`frame_time` must equal the simulation step `dt / alias_factor` of `[observation]`.",
        ),
        _table_from_dataclass(
            "detector.pileup.spectrum",
            EnergySpectrum,
            canon=canon_pile,
            minimal_b=pile_b,
            path=("detector", "pileup", "spectrum"),
            load=None,
            minimal=None,
            comments=comments,
        ),
        _table_from_dataclass(
            "dataset",
            dcfg.DatasetSpec,
            canon=canon_sim,
            minimal_b=sim_b,
            path=("dataset",),
            load=None,
            minimal=None,
            comments=comments,
            note="`split` is written as a table: `split = {train = 0.7, validation = 0.15, test = 0.15}`.",
        ),
    ]

    def load_train(raw: dict[str, Any]) -> Any:
        return lcfg.TrainConfig.from_dict(raw)

    train_a = {"models": {"logistic": {}}}
    train_b = {"task": {"kind": "state"}, "models": {"logistic": {}}}
    canon_train = (load_train(train_a).to_dict(), load_train(train_b).to_dict())
    tcomments = {**comments, **comments_learn}
    training = [
        _table_from_dataclass(
            "task",
            lcfg.TaskSpec,
            canon=canon_train,
            minimal_b=train_b,
            path=("task",),
            load=load_train,
            minimal=train_a,
            comments=tcomments,
        ),
        _table_from_dataclass(
            "split",
            lcfg.TrainConfig,
            canon=canon_train,
            minimal_b=train_b,
            path=("split",),
            load=None,
            minimal=None,
            comments=tcomments,
            fields=("fractions", "seed"),
            summary=tcomments.get(("split", ""), ""),
        ),
        _table_from_dataclass(
            "cv",
            lcfg.TrainConfig,
            canon=canon_train,
            minimal_b=train_b,
            path=("cv",),
            load=None,
            minimal=None,
            comments=tcomments,
            fields=("n_splits",),
            summary=tcomments.get(("cv", ""), ""),
        ),
        _table_from_dataclass(
            "models.NAME",
            lcfg.ModelSpec,
            canon=None,
            path=("models", "logistic"),
            load=None,
            minimal=None,
            comments=tcomments,
            skip=("name",),
            note=f"`kind` is one of {', '.join(f'`{k}`' for k in lcfg.MODEL_KINDS)} (default: the "
            f"table's NAME); `input` one of {', '.join(f'`{k}`' for k in lcfg.INPUT_KINDS)} (default: "
            "`log_spectrum` for `cnn`, `features` otherwise). `params` are the estimator's keyword "
            "arguments, `search` a grid of them searched by grouped cross-validation inside the training "
            "rows. At least one model is required.",
        ),
        _table_from_dataclass(
            "reference",
            lcfg.ReferenceSpec,
            canon=canon_train,
            minimal_b=train_b,
            path=("reference",),
            load=None,
            minimal=None,
            comments=tcomments,
        ),
        _table_from_dataclass(
            "evaluation",
            lcfg.EvaluationSpec,
            canon=canon_train,
            minimal_b=train_b,
            path=("evaluation",),
            load=None,
            minimal=None,
            comments=tcomments,
        ),
    ]
    for key in simulation[-1].keys:  # [dataset] split: a tuple in the dataclass, a table in the file
        if key.key == "split":
            key.type = "table"
    for key in training[3].keys:  # ModelSpec defaults are the loader's, which depend on the name
        if key.key in ("kind", "input"):
            key.default = "see above"
        elif key.key == "cv":
            key.default = "`true`"

    sbi_a = dict(sim_a, sbi={"n_train": 10})
    sbi_b = dict(sim_b, sbi={"n_train": 10})

    def load_sbi(raw: dict[str, Any]) -> Any:
        return scenario.SBIConfig.from_dict(raw)

    canon_sbi = (load_sbi(sbi_a).to_dict(), load_sbi(sbi_b).to_dict())
    scomments = {**comments, **comments_sbi}
    sbi = [
        _table_from_dataclass(
            "sbi",
            scenario.SBISpec,
            canon=canon_sbi,
            minimal_b=sbi_b,
            path=("sbi",),
            load=load_sbi,
            minimal=sbi_a,
            comments=scomments,
            rename={"class_name": "class"},
            note=f"Channels: {', '.join(f'`{c}`' for c in inputs.CHANNELS)}; scalars: "
            f"{', '.join(f'`{s}`' for s in inputs.SCALARS)}.",
        ),
        _table_from_dataclass(
            "npe",
            density.NPEConfig,
            canon=None,
            path=("npe",),
            load=None,
            minimal=None,
            comments=scomments,
            note="`n_channels` and `n_scalars` follow from `[sbi]` channels and scalars: leave them out.",
        ),
        _table_from_dataclass(
            "validation",
            scenario.ValidationSpec,
            canon=canon_sbi,
            minimal_b=sbi_b,
            path=("validation",),
            load=None,
            minimal=None,
            comments=scomments,
        ),
    ]
    return {"simulation": simulation, "training": training, "sbi": sbi}


def _components_table() -> str:
    from xtml.psd import COMPONENT_KINDS, make_component

    lines = ["| kind | parameters (allowed range) | shape |", "|---|---|---|"]
    for kind in COMPONENT_KINDS:
        comp = make_component(kind)
        params = ", ".join(f"`{p}` {_bound_text(comp.bounds[p])}" for p in comp.param_names)
        doc = (type(comp).__doc__ or "").strip().split("\n\n")[0]
        lines.append(f"| `{kind}` | {params} | {_md_cell(_rst_to_md(doc))} |")
    return "\n".join(lines)


def _bound_text(b: tuple[float, float, bool, bool]) -> str:
    low, high, low_in, high_in = b
    return f"{'[' if low_in else '('}{low:g}, {high:g}{']' if high_in else ')'}"


def _documented_keys(tables: dict[str, list[_Table]]) -> dict[str, set[str]]:
    out = {t.name: {k.key for k in t.keys} for group in tables.values() for t in group}
    return out


def _check_shipped(tables: dict[str, list[_Table]]) -> list[tuple[Path, str]]:
    """Load every shipped configuration with its loader; every key must be in the reference.

    Returns (file, kind) pairs; raises ValueError naming the file and key otherwise.
    """
    from xtml.data import load_config
    from xtml.learn.config import load_train_config
    from xtml.sbi.scenario import load_sbi_config

    documented = _documented_keys(tables)
    free = {"classes.NAME.components", "classes.NAME.priors", "models.NAME.params", "models.NAME.search"}
    free |= {"reference.null", "reference.alt", "dataset.split"}
    out = []
    for path in _shipped_configs():
        raw = tomllib.loads(path.read_text())
        if "sbi" in raw:
            load_sbi_config(path)
            kind = "SBI scenario (`xtml sbi train`)"
        elif "models" in raw or "task" in raw:
            load_train_config(path)
            kind = "training (`xtml train`)"
        else:
            load_config(path)
            kind = "simulation (`xtml simulate`)"
        for table, key in _walk_keys(raw):
            if table in free or (table == "" and key in documented):
                continue
            if table not in documented or key not in documented[table]:
                raise ValueError(
                    f"{path.name}: key {key!r} of [{table}] is not in the generated configuration reference "
                    "(docs/hooks.py config_tables)"
                )
        out.append((path, kind))
    return out


def _walk_keys(raw: Mapping[str, Any], table: str = "") -> Iterator[tuple[str, str]]:
    for key, value in raw.items():
        if isinstance(value, Mapping) and not (table == "rate" or table.startswith("classes.NAME")):
            sub = _generic_table(f"{table}.{key}" if table else key)
            if table and not sub.endswith(".NAME"):  # classes.qpo, models.cnn: names, not keys
                yield table, key
            yield from _walk_keys(value, sub)
        elif table:
            yield table, key


def config_reference() -> str:
    """The generated configuration reference (see the module docstring)."""
    from xtml.data import config as dcfg
    from xtml.learn import config as lcfg
    from xtml.sbi import scenario

    tables = config_tables()
    shipped = _check_shipped(tables)
    learn_example = _docstring_toml(lcfg.__doc__)
    sbi_example = _docstring_toml(scenario.__doc__)
    for example in (learn_example, sbi_example):
        if example is not None:
            tomllib.loads(example)  # the docstring examples must at least be valid TOML
    parts = [
        "## Simulation configuration",
        _rst_to_md((dcfg.__doc__ or "").strip().split("\n\n")[1]) if dcfg.__doc__ else "",
        *(_render_table(t) for t in tables["simulation"]),
        "### PSD component kinds\n\nThe kinds that `components` may name (`xtml.psd.COMPONENT_KINDS`); "
        "every component is a power density in (rms/mean)²/Hz:\n\n" + _components_table(),
        "## Training configuration",
        _rst_to_md((lcfg.__doc__ or "").strip().split("\n\n")[1]) if lcfg.__doc__ else "",
    ]
    if learn_example:
        parts.append(f"From the docstring of `xtml.learn.config`:\n\n```toml\n{learn_example}\n```")
    parts += [_render_table(t) for t in tables["training"]]
    parts += [
        "## SBI scenario",
        _rst_to_md((scenario.__doc__ or "").strip().split("\n\n")[1]) if scenario.__doc__ else "",
    ]
    if sbi_example:
        parts.append(f"From the docstring of `xtml.sbi.scenario`:\n\n```toml\n{sbi_example}\n```")
    parts += [_render_table(t) for t in tables["sbi"]]
    parts.append(
        "## Shipped configurations\n\nInstalled with the package (`xtml/configs/`; `configs/` in a "
        "checkout). Each one below was loaded with its loader when this page was built."
    )
    for path, kind in shipped:
        anchor = path.name.replace(".", "-")  # default.toml -> #default-toml
        parts.append(f"### {path.name} {{#{anchor}}}\n\n{kind}\n\n```toml\n{path.read_text().rstrip()}\n```")
    return "\n\n".join(p for p in parts if p) + "\n"


# ------------------------------------------------------------------------------- "when not to use ML" tables


def _pct(x: float | None, digits: int = 1) -> str:
    if x is None:
        return "—"
    if x != 0 and abs(x) < 10 ** (-digits - 2):  # 0.05 % is not "0.0 %"
        return f"{100 * x:.2g} %"
    return f"{100 * x:.{digits}f} %"


def results_tables() -> str:
    """Tables of ``docs/results/ml_vs_reference.json`` (see :func:`collect`)."""
    data = json.loads(RESULTS.read_text())
    out = []
    d = data["detection"]
    lines = [
        f"### QPO detection: {d['n_reference']:,} test spectra with both scores",
        "",
        f"Measured by `{d['command']}` ({d['date']}); {d['n_test']:,} test spectra, the likelihood-ratio "
        f"test on a random {d['n_reference']:,} of them"
        + (f" ({d['resolution']})" if "resolution" in d else "")
        + ". Bracketed: 95 % bootstrap intervals over observations.",
        "",
        "| scorer | TPR at 1 % FPR | ROC-AUC | cost per spectrum | against the LRT at 1 % FPR |",
        "|---|---|---|---|---|",
    ]
    for r in d["rows"]:
        verdict = d["verdicts"].get(r["scorer"], "")
        cost = r.get("ms_per_spectrum")
        lines.append(
            f"| {r['scorer']} | {r['tpr_at_fpr']:.3f} "
            f"[{r['tpr_at_fpr_low']:.3f}, {r['tpr_at_fpr_high']:.3f}] "
            f"| {r['roc_auc']:.3f} | {'—' if cost is None else f'{cost:.3g} ms'} | {_md_cell(verdict)} |"
        )
    out.append("\n".join(lines))

    s = data["sbi_ideal"]
    lines = [
        "### QPO parameters without dead time: the Whittle fit and MCMC against the neural posterior",
        "",
        f"Measured by `{s['command']}` ({s['date']}): {s['n']} held-out test observations of "
        f"`configs/sbi_ideal.toml`, one module, no dead time; the neural posterior trained on "
        f"{s['n_train']:,} simulations in {s['train_minutes']:.0f} min.",
        "",
        "| parameter | method | failed fits | frac. bias | RMSE | 68 % coverage | 95 % coverage "
        "| s per observation |",
        "|---|---|---|---|---|---|---|---|",
    ]
    methods = {"sbi": "SBI", "naive_fit": "Whittle fit (exact here)"}
    for r in s["rows"]:
        lines.append(
            f"| {r['parameter']} | {methods.get(r['method'], r['method'])} | {r['n_not_ok']} of {r['n']} | "
            f"{_pct(r['frac_bias'])} | "
            f"{r['rmse']:.3g} | {_pct(r['coverage68'], 0)} | {_pct(r['coverage95'], 0)} "
            f"| {r['seconds']:.3g} |"
        )
    lines += [
        "",
        "Relative bias of the QPO rms, mean(estimate - truth) / mean(truth), by true count rate: "
        + "; ".join(
            f"{'all rates' if r['rate_bin'] == 'all' else r['rate_bin'] + ' ct/s'}: SBI {_pct(r['sbi'], 2)}, "
            f"Whittle fit {_pct(r['fit'], 2)}"
            for r in s["rms_bias"]
        )
        + ".",
    ]
    c = s["c2st"]
    lines += [
        "",
        f"Against the exact-likelihood MCMC on {c['n']} observations: classifier two-sample test "
        f"(C2ST; 0.5 = the two posteriors cannot be told apart) median **{c['median']:.2f}**, at most "
        f"0.60 for "
        f"{_pct(c['fraction_le_0.6'], 0)} of them; posterior widths SBI / MCMC (median): "
        + ", ".join(f"{k} {v:.2f}" for k, v in c["std_ratio_median"].items())
        + f"; MCMC {c['mcmc_seconds_median']:.1f} s per observation.",
    ]
    out.append("\n".join(lines))

    p = data["shift"]
    lines = [
        "### A trained detector on data from another detector setting",
        "",
        f"Measured by `{p['command']}` ({p['date']}): a gradient-boosting QPO detector trained on "
        f"{p['n_train']:,} NuSTAR-like spectra at 2.5 ms dead time, 4 x 16 s, its threshold set at 1 % FPR, "
        f"then applied unchanged to {p['n_test']:,} spectra per setting.",
        "",
        "| setting | TPR | FPR | flagged by the scope gate |",
        "|---|---|---|---|",
    ]
    for r in p["rows"]:
        lines.append(f"| {r['setting']} | {_pct(r['tpr'])} | {_pct(r['fpr'])} | {_pct(r['flagged'])} |")
    out.append("\n".join(lines))

    b = data["sbi_deadtime"]
    lines = [
        "### Where ML is worth it: QPO rms under NuSTAR-like dead time",
        "",
        f"Measured by `{b['command']}` ({b['date']}): {b['n']} held-out test observations of "
        "`configs/sbi_nustar.toml` (2 modules, 2.5 ms dead time); relative bias of the fractional rms of the "
        "QPO, mean(estimate - truth) / mean(truth), by true incident rate per module.",
        "",
        "| rate bin (ct/s) | n | SBI | naive Whittle fit | Zhang dead-time fit | FAD fit |",
        "|---|---|---|---|---|---|",
    ]
    for r in b["rows"]:
        lines.append(
            f"| {r['rate_bin']} | {r['n']} | {_pct(r['sbi'], 2)} | {_pct(r['naive_fit'])} | "
            f"{_pct(r.get('zhang_fit'))} | {_pct(r.get('fad_fit'))} |"
        )
    out.append("\n".join(lines))
    out.append(
        "Source: [`results/ml_vs_reference.json`](results/ml_vs_reference.json), collected "
        f"{data['collected']}."
    )
    return "\n\n".join(out) + "\n"


GENERATORS: dict[str, Callable[[], str]] = {
    "cli": cli_reference,
    "config": config_reference,
    "results": results_tables,
}


# ----------------------------------------------------------------- collecting the results from evals/out


def _iso_date(text: str) -> str:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M UTC")


def _mtime(path: Path) -> str:
    return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def _detection(evals: Path) -> dict[str, Any]:
    run = evals / "detection" / "run_100000"
    metrics = json.loads((run / "evaluation" / "metrics.json").read_text())
    h = metrics["headline"]  # the evaluation's one record of its headline (xtml.learn.headline)
    cost = {name: 1e3 * m["predict_time_per_spectrum_s"] for name, m in metrics["models"].items()}
    cost[h["reference"]] = 1e3 * metrics["reference"]["time_per_spectrum_s"]
    verdicts = {d["scorer"]: d["verdict"] for d in h["differences"] if d["metric"] == "tpr_at_fpr"}
    rows = []
    for name, r in h["scorers"].items():
        keep = ("tpr_at_fpr", "tpr_at_fpr_low", "tpr_at_fpr_high", "roc_auc", "roc_auc_low", "roc_auc_high")
        rows.append({"scorer": name} | {k: r[k] for k in keep} | {"ms_per_spectrum": cost.get(name)})
    return {
        "command": "XTML_EVAL_REF=3000 python evals/eval_detection.py",
        "date": _iso_date(metrics["openings"][-1]["time"]),
        "n_test": metrics["n_test"],
        "n_reference": h["n_rows"],
        "n_negative": h["n_negative"],
        "resolution": h["resolution"],
        "rows": rows,
        "verdicts": verdicts,
    }


def _sbi_ideal(evals: Path) -> dict[str, Any]:
    ideal_path = evals / "sbi_ideal" / "eval.json"
    ideal = json.loads(ideal_path.read_text())
    sbi_rows = []
    for r in ideal["classical"]["rows"]:
        if r["rate_bin"] == "all":
            sbi_rows.append(
                {k: r[k] for k in ("parameter", "method", "n", "n_not_ok", "frac_bias", "rmse", "coverage68")}
                | {"coverage95": r["coverage95"], "seconds": r["seconds"]}
            )
    c2st = ideal["c2st"]
    return {
        "command": "XTML_EVAL_C2ST=50 XTML_EVAL_MCMC=0 python evals/eval_sbi.py ideal",
        "date": _mtime(ideal_path),
        "n": ideal["classical"]["n"],
        "n_train": ideal["n_train"],
        "train_minutes": ideal["speed"]["train_s"] / 60,
        "rows": sbi_rows,
        "rms_bias": [
            {
                "rate_bin": r["rate_bin"],
                "n": r["n"],
                "sbi": r["sbi rel. bias"],
                "fit": r["naive_fit rel. bias"],
            }
            for r in ideal["classical"]["rms_bias"]
        ],
        "c2st": {
            k: c2st[k] for k in ("n", "median", "fraction_le_0.6", "std_ratio_median", "mcmc_seconds_median")
        },
    }


def _shift(evals: Path) -> dict[str, Any]:
    perf_path = evals / "performance" / "eval.json"
    perf = json.loads(perf_path.read_text())
    shift_rows = [
        {
            "setting": "2.5 ms, 4 x 16 s (as trained)",
            "tpr": perf["main_test"]["tpr_at_1pct_fpr"],
            "fpr": perf["main_test"]["fpr_at_threshold"],
            "flagged": None,
        }
    ]
    for group in ("deadtime", "exposure"):
        for r in perf[group]["settings"]:
            if r["setting"].startswith("2.5 ms") or r["setting"].startswith("4 x 16"):
                continue
            shift_rows.append(
                {
                    "setting": r["setting"],
                    "tpr": r["tpr"],
                    "fpr": r["fpr"],
                    "flagged": r["gate"]["flagged_with_grid"],
                }
            )
    return {
        "command": "python evals/eval_performance.py",
        "date": _mtime(perf_path),
        "n_train": perf["n_train"],
        "n_test": perf["n_test"],
        "rows": shift_rows,
    }


def _sbi_deadtime(evals: Path) -> dict[str, Any]:
    nustar_path = evals / "sbi_nustar" / "eval.json"
    nustar = json.loads(nustar_path.read_text())
    dt_rows = []
    for r in nustar["classical"]["rms_bias"]:
        row = {
            "rate_bin": r["rate_bin"],
            "n": r["n"],
            "sbi": r["sbi rel. bias"],
            "naive_fit": r["naive_fit rel. bias"],
        }
        for k in ("zhang_fit", "fad_fit"):
            if f"{k} rel. bias" in r:
                row[k] = r[f"{k} rel. bias"]
        dt_rows.append(row)
    return {
        "command": "XTML_EVAL_CLASSICAL=150 XTML_EVAL_MCMC=10 python evals/eval_sbi.py nustar",
        "date": _mtime(nustar_path),
        "n": nustar["classical"]["n"],
        "rows": dt_rows,
    }


#: the sections of the results file, each from the output of one evaluation script
SECTIONS = {"detection": _detection, "sbi_ideal": _sbi_ideal, "shift": _shift, "sbi_deadtime": _sbi_deadtime}


def collect(evals: Path = ROOT / "evals" / "out", previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """Gather the figures of the "when not to use ML" page from the outputs of the evaluation scripts.

    A section whose evaluation output is not in ``evals`` (a script not re-run on this machine) keeps its
    entry of ``previous`` (the committed results file), with its own command and date: re-running one
    evaluation refreshes its table only.
    """
    out: dict[str, Any] = {"collected": datetime.now(tz=UTC).strftime("%Y-%m-%d")}
    for name, build in SECTIONS.items():
        try:
            out[name] = build(evals)
        except FileNotFoundError as err:
            if previous is None or name not in previous:
                raise
            print(
                f"{name}: kept the previous figures of {previous[name]['date']} ({err.filename} is missing)"
            )
            out[name] = previous[name]
    return out


def main(argv: list[str] | None = None) -> int:
    """``python docs/hooks.py collect``: refresh docs/results/ml_vs_reference.json from evals/out."""
    args = sys.argv[1:] if argv is None else argv
    if args != ["collect"]:
        print("usage: python docs/hooks.py collect", file=sys.stderr)
        return 2
    data = collect(previous=json.loads(RESULTS.read_text()) if RESULTS.is_file() else None)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=1) + "\n"
    RESULTS.write_text(text)
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
