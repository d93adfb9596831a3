"""``xtml report RUN_DIR``: one self-contained ``report.html`` and a ``model_card.md`` for a run.

The report of a learning run (``xtml train`` + ``xtml evaluate``) or an SBI run (``xtml sbi train``) has
the same sections in the same order: a headline panel (what was asked, the answer with its uncertainty, ML
against the reference, calibration, scope); what was asked; the data and its provenance; the reference against
the ML; diagnostics (and, for SBI, calibration); scope; performance maps; the model card; and the lessons
learned, generated from the results (configurations where the ML did not beat the reference, failed a
calibration check, or its scope gate missed its target). Figures are PNGs embedded in the page, so the
file needs no network and no other file. At most ``max_points`` test rows feed the embeddings and the
scope outliers (the metrics use every row), which keeps the report fast on 20,000 test spectra.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xtml.report.card import lessons_html
from xtml.report.html import Section, write_report

__all__ = ["SECTIONS", "ReportResult", "build_report"]

SECTIONS = (
    "Headline",
    "What was asked",
    "Data and provenance",
    "Reference vs ML",
    "Diagnostics",
    "Scope",
    "Performance maps",
    "Model card",
    "Lessons learned",
)

# SBI runs add a calibration section, learning runs a training section (CV and learning curves)
_ORDER = (*SECTIONS[:4], "Calibration", "Training", *SECTIONS[4:])


@dataclass(frozen=True)
class ReportResult:
    """Where the report went, its size in bytes, how long it took, and its lessons (kind, text)."""

    html: Path
    model_card: Path
    size: int
    seconds: float
    lessons: tuple[tuple[str, str], ...]


def build_report(
    run_dir: str | Path,
    *,
    max_points: int = 2000,
    seed: int = 0,
    applied: Sequence[Mapping[str, Any]] | None = None,
) -> ReportResult:
    """Write ``report.html`` and ``model_card.md`` into the run folder (module doc).

    ``applied`` are rows of ``xtml analyze`` (:meth:`xtml.analyze.AnalysisRow.to_dict`, or the JSON of
    ``xtml analyze --json``): those answered by this run tell the model card whether the training data look
    like the data the run was applied to; rows of other runs are ignored.
    """
    import matplotlib

    matplotlib.use("Agg")
    from xtml.critique.run_scope import run_kind

    t0 = time.perf_counter()
    run = Path(run_dir)
    kind = run_kind(run)
    mine = [r for r in applied or () if Path(str(r.get("run", ""))).resolve() == run.resolve()]
    if kind == "sbi":
        from xtml.report.sbi_report import sbi_sections

        sections, card, lessons = sbi_sections(run, max_points=max_points, seed=seed, applied=mine)
        title = f"xtml SBI run {run.name}"
    else:
        from xtml.report.learn_report import learn_sections

        sections, card, lessons = learn_sections(run, max_points=max_points, seed=seed, applied=mine)
        title = f"xtml training run {run.name}"
    sections = [
        *sections,
        Section("Model card", card.to_html()),
        Section("Lessons learned", lessons_html(lessons)),
    ]
    missing = [s for s in SECTIONS if s not in {x.title for x in sections}]
    if missing:  # pragma: no cover - a builder bug
        raise RuntimeError(f"report of {run} lacks the sections {missing}")
    order = {name: i for i, name in enumerate(_ORDER)}
    sections.sort(key=lambda s: order.get(s.title, len(order)))
    path = write_report(run / "report.html", title, sections)
    card_path = run / "model_card.md"
    card_path.write_text(card.to_markdown())
    return ReportResult(
        html=path,
        model_card=card_path,
        size=path.stat().st_size,
        seconds=time.perf_counter() - t0,
        lessons=tuple((x.kind, x.text) for x in lessons),
    )
