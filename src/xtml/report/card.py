"""The model card and the lessons learned of a run, generated from its results (never written by hand).

A model card (Mitchell et al. 2019) says what a model is for, what it was trained on, how well it did
and where it must not be used; xtml's cards also answer, from the run's own evidence, the four questions
of when to be cautious about machine learning (:data:`CAUTION_QUESTIONS`). :class:`ModelCard` holds
those facts as plain data; :meth:`to_markdown` and :meth:`to_html` render them. Lessons are
:class:`Lesson` rows produced by the report builders from the metrics: every configuration where the
ML did not beat the classical reference, failed a calibration check, or was flagged by its own scope gate
is listed.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CAUTION_QUESTIONS", "Lesson", "ModelCard", "applied_scope_text", "lessons_html", "scope_answer"]

#: When to be cautious about machine learning: the questions every model card answers from its run.
CAUTION_QUESTIONS = (
    "Is this really a statistics problem?",
    "Is there enough training data?",
    "Does the training data look like the data it is applied to?",
    "Would unrecognised biases matter downstream?",
)


def applied_scope_text(applied: Sequence[Mapping[str, Any]]) -> str:
    """What the scope gate said of the data a run was applied to (rows of ``xtml analyze --json``).

    ``"applied to 3 file(s): 1 in scope, 2 OUT OF SCOPE (a.evt: mean count rate ...; b.evt: ...)"``.
    """
    done = [r for r in applied if not r.get("error")]
    inside = [r for r in done if r.get("in_scope")]
    outside = [r for r in done if not r.get("in_scope")]
    text = f"applied to {len(applied)} file(s): {len(inside)} in scope, {len(outside)} OUT OF SCOPE"
    if outside:
        why = "; ".join(
            f"{str(r['path']).rsplit('/', 1)[-1]}: {', '.join(r.get('reasons') or ['flagged'])}"
            for r in outside
        )
        text += f" ({why})"
    errors = len(applied) - len(done)
    return text + (f", {errors} could not be analysed" if errors else "")


def scope_answer(gate_text: str | None, applied: Sequence[Mapping[str, Any]] | None) -> str:
    """The model card's answer to "Does the training data look like the data it is applied to?".

    ``gate_text`` is what the scope gate says of held-out simulations (None: no gate); ``applied`` the rows
    of the files the run answered (``xtml analyze``), which decide the answer when there are any.
    """
    if gate_text is None:
        return "Not answered: no scope gate."
    if not applied:
        return (
            f"Partly answered: {gate_text}. Not yet applied to real data: run `xtml analyze FILE --run RUN "
            "--json > applied.json` and `xtml report RUN --applied applied.json` to answer it for your files."
        )
    done = [r for r in applied if not r.get("error")]
    verdict = "Yes" if done and all(r.get("in_scope") for r in done) else "No" if done else "Not answered"
    return f"{verdict}: {applied_scope_text(applied)}. The gate on held-out simulations: {gate_text}."


@dataclass(frozen=True)
class Lesson:
    """One finding: ``kind`` is "failed" (ML lost or a check failed), "tie" or "ok"; ``text`` says what."""

    kind: str
    text: str


@dataclass(frozen=True)
class ModelCard:
    """Facts of a model card (all text is plain; rendering escapes it).

    Attributes
    ----------
    title : str
    intended_use : str
        What the model answers and for which data.
    not_for : tuple of str
        Uses it must not be put to.
    training_domain : dict of str to str
        Readable ranges and settings (parameters, rates, grid, detector).
    metrics : list of (str, str)
        Headline metrics as (name, value with its uncertainty and the rows it was computed on).
    questions : list of (str, str)
        :data:`CAUTION_QUESTIONS`, each with its answer from the run's evidence.
    limits : tuple of str
        Known limits, including failed checks.
    provenance : dict of str to str
        Versions, seeds, data hashes.
    """

    title: str
    intended_use: str
    not_for: tuple[str, ...] = ()
    training_domain: Mapping[str, str] = field(default_factory=dict)
    metrics: Sequence[tuple[str, str]] = ()
    questions: Sequence[tuple[str, str]] = ()
    limits: tuple[str, ...] = ()
    provenance: Mapping[str, str] = field(default_factory=dict)

    def to_markdown(self) -> str:
        """The card as Markdown."""
        out = [f"# Model card: {self.title}", "", "## Intended use", "", self.intended_use, ""]
        if self.not_for:
            out += ["Not for:", ""] + [f"- {t}" for t in self.not_for] + [""]
        out += ["## Training domain", "", "| quantity | range or setting |", "|---|---|"]
        out += [f"| {k} | {v} |" for k, v in self.training_domain.items()] + [""]
        out += ["## Metrics (held-out test set)", "", "| metric | value |", "|---|---|"]
        out += [f"| {k} | {v} |" for k, v in self.metrics] + [""]
        if self.questions:
            out += ["## When to be cautious about ML", ""]
            for q, a in self.questions:
                out += [f"**{q}** {a}", ""]
        out += ["## Known limits", ""] + [f"- {t}" for t in self.limits or ("none recorded",)] + [""]
        out += ["## Provenance", "", "| item | value |", "|---|---|"]
        out += [f"| {k} | {v} |" for k, v in self.provenance.items()] + [""]
        return "\n".join(out)

    def to_html(self) -> str:
        """The card as an HTML fragment."""
        e = html.escape

        def rows(items: Sequence[tuple[str, str]]) -> str:
            return "".join(f"<tr><th>{e(str(k))}</th><td>{e(str(v))}</td></tr>" for k, v in items)

        parts = [f"<h3>Intended use</h3><p>{e(self.intended_use)}</p>"]
        if self.not_for:
            parts.append("<p>Not for:</p><ul>" + "".join(f"<li>{e(t)}</li>" for t in self.not_for) + "</ul>")
        parts.append(f"<h3>Training domain</h3><table>{rows(list(self.training_domain.items()))}</table>")
        parts.append(f"<h3>Metrics (held-out test set)</h3><table>{rows(list(self.metrics))}</table>")
        if self.questions:
            parts.append(
                "<h3>When to be cautious about ML</h3><dl>"
                + "".join(f"<dt><b>{e(q)}</b></dt><dd>{e(a)}</dd>" for q, a in self.questions)
                + "</dl>"
            )
        limits = self.limits or ("none recorded",)
        parts.append("<h3>Known limits</h3><ul>" + "".join(f"<li>{e(t)}</li>" for t in limits) + "</ul>")
        parts.append(f"<h3>Provenance</h3><table>{rows(list(self.provenance.items()))}</table>")
        return "\n".join(parts)


def lessons_html(lessons: Sequence[Lesson]) -> str:
    """Lessons as an HTML list, failures first."""
    if not lessons:
        return (
            "<p>No comparison or check was recorded for this run, so there is nothing to learn from yet.</p>"
        )
    order = {"failed": 0, "tie": 1, "ok": 2}
    mark = {"failed": "did not work", "tie": "no better than the reference", "ok": "worked"}
    items = sorted(lessons, key=lambda x: order.get(x.kind, 3))
    body = "".join(
        f'<li class="lesson-{html.escape(x.kind)}"><b>{html.escape(mark.get(x.kind, x.kind))}:</b> '
        f"{html.escape(x.text)}</li>"
        for x in items
    )
    n_bad = sum(x.kind != "ok" for x in lessons)
    return f"<p>{n_bad} of {len(lessons)} findings are failures or ties.</p><ul>{body}</ul>"


def fmt(value: Any, digits: int = 3) -> str:
    """A number for a table with ``digits`` significant digits ("n/a" for None or NaN: not applicable)."""
    if value is None:
        return "n/a"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if v != v:  # NaN
        return "n/a"
    return f"{v:.{digits}g}"
