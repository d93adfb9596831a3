"""A Griffe extension for the API pages: the reST of xtml's numpydoc docstrings as Markdown.

xtml's docstrings are numpydoc, written for Sphinx: they use ``:math:`...``` roles, ``.. math::`` blocks,
``:func:`~x.y``` cross-reference roles, ``.. code-block::`` and ``.. note::`` directives.  mkdocstrings
renders Markdown, so before a docstring is parsed this extension rewrites, without touching the source
files:

- ``:math:`x``` into ``$x$`` and ``.. math::`` blocks into ``$$ ... $$`` (rendered by pymdownx.arithmatex and
  MathJax);
- ``:func:`~a.b.c``` (and ``class``, ``meth``, ``mod``, ``attr``, ``data``, ``obj``, ``exc``) into the code
  span ```c``` (```a.b.c``` without the tilde): not cross-references, which would fail the strict build
  wherever they point at a private or undocumented name;
- ``.. code-block:: LANG`` into a fenced block, ``.. note::`` / ``.. warning::`` into admonitions.

Loaded by mkdocstrings through ``extensions: [docs/griffe_rst.py]`` in ``mkdocs.yml``.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|obj|exc|ref):`(~?)([^`]+)`")
MATH_ROLE = re.compile(r":math:`([^`]+)`")
DIRECTIVE = re.compile(r"^(?P<indent>[ \t]*)\.\. (?P<name>math|code-block|note|warning)::[ \t]*(?P<arg>.*)$")


def _role(match: re.Match[str]) -> str:
    tilde, target = match.groups()
    if "<" in target and target.endswith(">"):  # :ref:`text <target>`
        target = target.split("<", 1)[0].strip()
    return f"`{target.rsplit('.', 1)[-1] if tilde else target}`"


def _block(lines: list[str], start: int, indent: int) -> tuple[list[str], int]:
    """The lines of a directive's body (more indented than ``indent``, blank lines kept), dedented."""
    body: list[str] = []
    k = start
    while k < len(lines):
        line = lines[k]
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            break
        body.append(line)
        k += 1
    while body and not body[-1].strip():
        body.pop()
        k -= 1
    while body and not body[0].strip():
        body.pop(0)
    cut = min((len(ln) - len(ln.lstrip()) for ln in body if ln.strip()), default=0)
    return [ln[cut:] for ln in body], k


def rst_to_markdown(text: str) -> str:
    """The reST constructs of a numpydoc docstring (module docstring) as Markdown."""
    lines = text.splitlines()
    out: list[str] = []
    k = 0
    while k < len(lines):
        m = DIRECTIVE.match(lines[k])
        if not m:
            out.append(lines[k])
            k += 1
            continue
        pad, name, arg = m.group("indent"), m.group("name"), m.group("arg").strip()
        body, k = _block(lines, k + 1, len(pad))
        if name == "math":
            out += [f"{pad}$$", *(f"{pad}{ln}" for ln in ([arg] if arg else []) + body), f"{pad}$$"]
        elif name == "code-block":
            out += [f"{pad}```{arg}", *(f"{pad}{ln}" for ln in body), f"{pad}```"]
        else:
            out += [
                f"{pad}!!! {name}",
                *(f"{pad}    {ln}" if ln else "" for ln in ([arg] if arg else []) + body),
            ]
        out.append("")
    text = "\n".join(out)
    text = MATH_ROLE.sub(lambda m: f"${m.group(1).strip()}$", text)
    return ROLE.sub(_role, text)


class RstToMarkdown(griffe.Extension):
    """Rewrite every docstring once the object tree is built (before mkdocstrings parses it)."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Rewrite the docstring of ``obj`` (idempotent: aliases see their target's twice)."""
        if obj.docstring is not None:
            obj.docstring.value = rst_to_markdown(obj.docstring.value)
