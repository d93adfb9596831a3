"""Every example the user reads runs: module doctests, the README's Python example, the documentation.

The documentation (``docs/*.md``, built by MkDocs) is tested in two ways:

* ``mkdocs build --strict`` must succeed: no warning (broken links, unknown markers, docstrings that do not
  render, a shipped configuration key missing from the generated configuration reference...);
* every fenced code block of every page runs, page by page, in document order, in a fresh working
  directory per page (with ``configs/`` pointing at the shipped configurations, as in a checkout):

  - ``python`` blocks are executed in one namespace per page;
  - ``bash`` / ``console`` / ``shell`` blocks: every command line starting with ``xtml `` (``$ xtml `` in a
    console block) runs in bash with the venv's ``xtml`` first on ``PATH``, one after the other, so later
    commands see the files of earlier ones. A command must exit 0, unless its line ends with a comment
    ``# exits with status N``. Other lines (``make demo``, ``pip install``, output) are not run;
  - ``toml`` blocks are parsed with :mod:`tomllib`; a block with a file name
    (```` ```toml title="x.toml" ````) is a configuration file: it is written to the working directory, so
    later commands can use it, and it must load with its loader (SBI scenario, training or simulation);
  - ``text`` blocks are shown, not run; a block without a language is an error (say what it is).
"""

from __future__ import annotations

import contextlib
import doctest
import importlib
import os
import pkgutil
import re
import subprocess
import sys
import time
import tomllib
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import xtml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(p.name for p in DOCS.glob("*.md"))
BIN = Path(sys.executable).parent  # the venv's bin: its xtml is the one under test
COMMAND_TIMEOUT = 600  # s per command; the whole docs test takes ~2 min on 2 cores

MODULES = sorted(
    m.name for m in pkgutil.walk_packages(xtml.__path__, prefix="xtml.") if not m.name.endswith("__main__")
)


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, extraglobs={"np": np}, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_readme_python_example_runs(capsys):
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert blocks, "the README has no Python example"
    namespace: dict = {}  # the blocks read as one session, in order
    for code in blocks:
        exec(compile(code, "README.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert "(100," in out  # the first example prints the power array shape
    assert "(4, 2, 32768)" in out
    assert "np.float" not in out  # plain numbers, not numpy reprs such as np.float64(0.45)
    assert "np.int" not in out


def test_readme_command_lines_are_valid_commands():
    """Every ``xtml`` line of the README's bash blocks parses with the real parser: no stale option.

    (They are not run: they use the full sizes of hours-long runs and files the reader has; the docs pages'
    examples, below, run at small sizes.)"""
    import shlex

    from xtml.cli import build_parser

    readme = (ROOT / "README.md").read_text()
    lines = [
        re.split(r"\s(?:>|\||&&|;)\s", line.split("#")[0])[0].strip()  # the command, not its redirection
        for block in re.findall(r"```bash\n(.*?)```", readme, flags=re.S)
        for line in block.splitlines()
        if line.strip().startswith("xtml ")
    ]
    assert len(lines) >= 10, lines
    parser = build_parser()
    for line in lines:
        try:
            parser.parse_args(shlex.split(line)[1:])
        except SystemExit:
            pytest.fail(f"README command does not parse: {line}")


# ----------------------------------------------------------------------------------------- the docs site


def test_mkdocs_build_strict(tmp_path):
    """The site builds with no warning (mkdocs --strict), generated references included."""
    mkdocs = BIN / "mkdocs"
    if not mkdocs.exists():
        pytest.skip('mkdocs is not installed in this environment: pip install -e ".[dev]"')
    t0 = time.perf_counter()
    proc = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=COMMAND_TIMEOUT,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    site = tmp_path / "site"
    for page in ("cli", "config", "api", "tutorial-ml", "when-not-to-use-ml"):
        assert (site / page / "index.html").is_file(), f"{page} was not built"
    cli = (site / "cli" / "index.html").read_text()
    assert "usage: xtml sbi train" in cli, "the CLI reference lacks a nested command's --help"
    print(f"mkdocs build: {time.perf_counter() - t0:.1f} s")


# ------------------------------------------------------------------------------------ the pages' examples


@dataclass(frozen=True)
class Block:
    """A fenced code block of a page."""

    lang: str
    title: str | None
    code: str
    line: int  # first line of the code, 1-based


FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[\w+-]*)(?P<attrs>[^`\n]*)$")
TITLE = re.compile(r'title="([^"]+)"')
EXPECT = re.compile(r"#\s*exits with status (\d+)\s*$")


def fenced_blocks(text: str) -> list[Block]:
    """The fenced code blocks of a Markdown text, in order (indented ones too, e.g. inside admonitions)."""
    lines = text.splitlines()
    blocks = []
    k = 0
    while k < len(lines):
        m = FENCE.match(lines[k])
        if not m:
            k += 1
            continue
        indent, fence = m.group("indent"), m.group("fence")
        title = TITLE.search(m.group("attrs"))
        body = []
        j = k + 1
        while j < len(lines) and not (
            lines[j].strip().startswith(fence) and lines[j].strip().strip(fence[0]) == ""
        ):
            body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j].lstrip())
            j += 1
        if j == len(lines):
            raise ValueError(f"unclosed code fence at line {k + 1}")
        blocks.append(
            Block(m.group("lang").lower(), title.group(1) if title else None, "\n".join(body), k + 2)
        )
        k = j + 1
    return blocks


def shell_commands(block: Block) -> list[tuple[str, int, int]]:
    """``(command, expected exit status, line)`` of each ``xtml`` line of a shell block (``\\`` joined)."""
    out = []
    lines = block.code.splitlines()
    k = 0
    while k < len(lines):
        line, start = lines[k], k
        while line.rstrip().endswith("\\") and k + 1 < len(lines):
            k += 1
            line = line.rstrip()[:-1] + " " + lines[k].strip()
        k += 1
        text = line.strip()
        if block.lang == "console":
            if not text.startswith("$ "):
                continue  # output
            text = text[2:].strip()
        if not text.startswith("xtml ") and text != "xtml":
            continue
        m = EXPECT.search(text)
        out.append((text, int(m.group(1)) if m else 0, block.line + start))
    return out


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env["MPLBACKEND"] = "Agg"
    env.pop("COLUMNS", None)
    return env


def _load_config_file(path: Path) -> None:
    """Load a configuration file with the loader its tables call for."""
    raw = tomllib.loads(path.read_text())
    if "sbi" in raw:
        from xtml.sbi.scenario import load_sbi_config

        load_sbi_config(path)
    elif "models" in raw or "task" in raw:
        from xtml.learn.config import load_train_config

        load_train_config(path)
    elif "observation" in raw:
        from xtml.data import load_config

        load_config(path)
    else:
        raise AssertionError(f"{path.name}: a titled toml block must be a simulation, training or SBI config")


def run_page(page: str, work: Path) -> list[str]:
    """Run every block of ``docs/page`` in ``work``; returns a log line per command (for timing)."""
    text = (DOCS / page).read_text()
    (work / "configs").symlink_to(ROOT / "configs", target_is_directory=True)
    log = []
    env = _env()
    with page_session(page) as module:
        namespace = module.__dict__
        for block in fenced_blocks(text):
            where = f"{page}:{block.line}"
            if block.lang == "":
                raise AssertionError(
                    f"{where}: a code block without a language (use text, bash, python, toml...)"
                )
            if block.lang == "python":
                t0 = time.perf_counter()
                cwd = Path.cwd()
                os.chdir(work)
                try:
                    exec(compile(block.code, where, "exec"), namespace)
                finally:
                    os.chdir(cwd)
                log.append(f"{time.perf_counter() - t0:6.1f} s  {where} python block")
                print(log[-1], flush=True)
            elif block.lang in ("bash", "console", "shell", "sh"):
                for command, expected, line in shell_commands(block):
                    t0 = time.perf_counter()
                    proc = subprocess.run(
                        ["bash", "-c", command],
                        cwd=work,
                        env=env,
                        capture_output=True,
                        text=True,
                        timeout=COMMAND_TIMEOUT,
                    )
                    if proc.returncode != expected:
                        raise AssertionError(
                            f"{page}:{line}: `{command}` exited with status {proc.returncode} "
                            f"(expected {expected})"
                            f"\n--- stderr ---\n{proc.stderr[-4000:]}\n--- stdout ---\n{proc.stdout[-2000:]}"
                        )
                    log.append(f"{time.perf_counter() - t0:6.1f} s  {page}:{line} {command}")
                    print(log[-1], flush=True)
            elif block.lang == "toml":
                try:
                    tomllib.loads(block.code)
                except tomllib.TOMLDecodeError as err:
                    raise AssertionError(f"{where}: not valid TOML: {err}") from None
                if block.title is not None:
                    path = work / block.title
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(block.code + "\n")
                    try:
                        _load_config_file(path)
                    except ValueError as err:
                        raise AssertionError(f"{where}: {block.title} does not load: {err}") from None
    return log


@contextlib.contextmanager
def page_session(page: str) -> Iterator[types.ModuleType]:
    """A module for the page's Python (dataclasses look up their module, as in a user's script); global state
    a page may change on purpose (extending.md registers a PSD component) is restored afterwards."""
    from xtml.psd import COMPONENT_KINDS

    kinds = dict(COMPONENT_KINDS)
    module = types.ModuleType("docs_" + re.sub(r"\W", "_", page.removesuffix(".md")))
    sys.modules[module.__name__] = module
    try:
        yield module
    finally:
        del sys.modules[module.__name__]
        COMPONENT_KINDS.clear()
        COMPONENT_KINDS.update(kinds)
        if "matplotlib.pyplot" in sys.modules:
            sys.modules["matplotlib.pyplot"].close("all")


@pytest.mark.parametrize("page", PAGES)
def test_docs_page_examples_run(page, tmp_path, capsys):
    """Every code block of the page runs (see the module docstring for the rules); timings with ``-rP``.
    What the examples print reads as plain numbers, not numpy reprs such as ``np.float64(0.45)``."""
    t0 = time.perf_counter()
    run_page(page, tmp_path)  # prints a line per block or command, with its time
    out = capsys.readouterr().out
    print(out, end="")
    print(f"{page}: {time.perf_counter() - t0:.1f} s")
    assert not re.search(r"\bnp\.(float|int|bool_|str_)\w*\(", out), f"{page} prints numpy reprs"


def test_fenced_blocks_parser():
    text = (
        "# t\n\n```bash\nxtml simulate a.toml --n 4 \\\n  --out runs/a\nmake demo\n"
        "xtml sbi infer r x  # exits with status 1\n```\n\n"
        '!!! note\n    ```toml title="a.toml"\n    [x]\n    y = 1\n    ```\n\n'
        "```console\n$ xtml --version\nxtml 0.1.0\n```\n"
    )
    blocks = fenced_blocks(text)
    assert [b.lang for b in blocks] == ["bash", "toml", "console"]
    assert blocks[1].title == "a.toml"
    assert blocks[1].code == "[x]\ny = 1"
    cmds = shell_commands(blocks[0])
    assert [c[:2] for c in cmds] == [
        ("xtml simulate a.toml --n 4  --out runs/a", 0),
        ("xtml sbi infer r x  # exits with status 1", 1),
    ]
    assert shell_commands(blocks[2])[0][0] == "xtml --version"


def test_every_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text()
    missing = [p for p in PAGES if p not in nav]
    assert not missing, f"pages not in mkdocs.yml's nav: {missing}"
