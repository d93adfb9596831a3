"""The headline of a detection evaluation: one record that every place showing a figure reads.

``xtml evaluate`` computes the headline once (:func:`headline_record`) from the paired comparison of
:func:`~xtml.learn.comparison.compare_scores` and writes it into ``metrics.json`` under ``"headline"``;
``summary.txt``, the report's tables, the model card, the performance maps (their operating
thresholds) and the demo's final lines all read that record and print it through the formatters here
(:func:`fmt_value`, :func:`fmt_interval`, :func:`headline_lines`), so a figure is the same wherever it
appears, to the digit.

The record says which rows it was computed on (``rows``: e.g. "the 2,200 test spectra also scored by
the LRT"), how many of them hold a QPO and how many do not, whether that many QPO-free rows resolve the
TPR at the fixed false-positive rate (:func:`~xtml.learn.comparison.tpr_resolution`), every scorer's
estimate with its interval and operating threshold, the paired differences to the reference and one
verdict, which names a winner only when the test set resolves the difference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from xtml.learn.comparison import ComparisonTable, min_negatives

__all__ = [
    "DIGITS",
    "best_model",
    "fmt_interval",
    "fmt_value",
    "headline_lines",
    "headline_record",
    "rows_text",
    "tpr_label",
]

#: Decimals of every headline figure, wherever it is printed.
DIGITS = 3


def fmt_value(value: float | None, digits: int = DIGITS) -> str:
    """A headline number with ``digits`` decimals; "n/a" where the metric does not apply (None, NaN)."""
    if value is None or value != value:
        return "n/a"
    return f"{value:.{digits}f}"


def fmt_interval(value: float | None, low: float | None, high: float | None, digits: int = DIGITS) -> str:
    """``"0.312 [0.281, 0.344]"``, or "n/a" where the metric does not apply."""
    if value is None or value != value:
        return "n/a"
    if low is None or high is None:
        return fmt_value(value, digits)
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def tpr_label(fpr_target: float) -> str:
    """``"TPR at 1% FPR"``."""
    return f"TPR at {100 * fpr_target:g}% FPR"


def rows_text(n: int, *, subset_of: int | None = None, scored_by: str = "the LRT") -> str:
    """What rows a figure was computed on: ``"all 250 test spectra"`` or ``"the 60 test spectra also
    scored by the LRT"`` (a subset of ``subset_of`` test rows)."""
    if subset_of is None or n == subset_of:
        return f"all {n:,} test spectra"
    return f"the {n:,} of {subset_of:,} test spectra also scored by {scored_by}"


def best_model(table: ComparisonTable, models: Sequence[str]) -> str:
    """The ML scorer with the highest TPR at the table's FPR (ties: the higher ROC-AUC, then the first)."""
    ml = [m for m in table.scorers if m in models]
    if not ml:
        raise ValueError(f"none of the models {list(models)} is a scorer of the table {table.scorers}")

    def key(name: str) -> tuple[float, float]:
        return (table.get(name, "tpr_at_fpr").estimate or 0.0, table.get(name, "roc_auc").estimate or 0.0)

    return max(ml, key=key)


def headline_record(
    table: ComparisonTable, *, rows: str, models: Sequence[str], reference: str | None
) -> dict[str, Any]:
    """The headline of a detection evaluation as a JSON-ready dict (module docstring).

    Parameters
    ----------
    table : ComparisonTable
        The comparison on the headline rows (ML models and, if any, the reference).
    rows : str
        What those rows are (:func:`rows_text`).
    models : sequence of str
        The ML scorers of the table.
    reference : str or None
        The classical reference's scorer name, if it is in the table.

    Returns
    -------
    dict
        ``metric``, ``label``, ``fpr_target``, ``level``, ``rows``, ``n_rows``, ``n_positive``,
        ``n_negative``, ``min_negatives``, ``resolved`` and ``resolution`` (the TPR at the FPR on these
        rows), ``reference``, ``best_model``, ``scorers`` (per scorer: ``kind`` "ML" or "reference",
        ``tpr_at_fpr``, ``roc_auc`` and ``brier`` each with ``_low`` / ``_high``, Brier None for a test
        statistic; ``threshold`` and ``fpr_at_threshold``), ``differences`` (each paired difference
        to the reference: ``scorer``, ``metric``, ``difference``, ``std``, ``low``, ``high``,
        ``resolved``, ``verdict``), ``verdict`` (one line) and ``reference_beaten`` (a resolved win of
        an ML model at the TPR; None without a reference).
    """
    best = best_model(table, models)
    scorers: dict[str, dict[str, Any]] = {}
    for name in table.scorers:
        entry: dict[str, Any] = {"kind": "reference" if name == reference else "ML"}
        for m in ("tpr_at_fpr", "roc_auc", "brier"):
            e = table.get(name, m)
            entry |= {m: e.estimate, f"{m}_low": e.low, f"{m}_high": e.high}
        entry["threshold"], entry["fpr_at_threshold"] = table.operating[name]
        scorers[name] = entry
    differences = [
        {
            "scorer": d.scorer,
            "reference": d.reference,
            "metric": d.metric,
            "difference": d.difference,
            "std": d.std,
            "low": d.low,
            "high": d.high,
            "resolved": d.resolved,
            "verdict": d.verdict,
        }
        for d in table.differences
        if reference is not None and d.reference == reference
    ]
    record: dict[str, Any] = {
        "metric": "tpr_at_fpr",
        "label": tpr_label(table.fpr_target),
        "fpr_target": table.fpr_target,
        "level": table.level,
        "rows": rows,
        "n_rows": table.n_positive + table.n_negative,
        "n_positive": table.n_positive,
        "n_negative": table.n_negative,
        "min_negatives": min_negatives(table.fpr_target),
        "resolved": table.tpr_resolved,
        "resolution": table.resolution,
        "reference": reference,
        "best_model": best,
        "scorers": scorers,
        "differences": differences,
    }
    tpr_diffs = [d for d in differences if d["metric"] == "tpr_at_fpr"]
    if reference is None:
        record["reference_beaten"] = None
        s = scorers[best]
        record["verdict"] = (
            f"best model {best}: {record['label']} "
            f"{fmt_interval(s['tpr_at_fpr'], s['tpr_at_fpr_low'], s['tpr_at_fpr_high'])}; no classical "
            "reference was run"
            + ("" if table.tpr_resolved else f"; not resolved by this test set: {table.resolution}")
        )
    else:
        record["reference_beaten"] = any(d["resolved"] and d["difference"] > 0 for d in tpr_diffs)
        record["verdict"] = next(d["verdict"] for d in tpr_diffs if d["scorer"] == best)
    return record


def headline_lines(h: Mapping[str, Any], *, question: str = "QPO detection") -> list[str]:
    """The headline in a few plain lines (summary.txt, the CLI, the demo): the rows, every scorer's
    figure with its interval, and the verdict."""
    pct = f"{100 * h['level']:g}%"
    lines = [
        f"headline: {question}, {h['label']} ({pct} intervals), on {h['rows']} "
        f"({h['n_positive']:,} with a QPO, {h['n_negative']:,} without)",
        ("  resolved: " if h["resolved"] else "  NOT RESOLVED by this test set: ") + h["resolution"],
    ]
    width = max(len(n) for n in h["scorers"])
    for name, s in h["scorers"].items():
        mark = " (best ML)" if name == h["best_model"] and h["reference"] is not None else ""
        lines.append(
            f"  {name.ljust(width)}  {h['label']} "
            f"{fmt_interval(s['tpr_at_fpr'], s['tpr_at_fpr_low'], s['tpr_at_fpr_high'])}, "
            f"ROC-AUC {fmt_interval(s['roc_auc'], s['roc_auc_low'], s['roc_auc_high'])}, "
            f"Brier {fmt_value(s['brier'])}; threshold {s['threshold']:.4g} "
            f"(FPR {fmt_value(s['fpr_at_threshold'])} on these rows){mark}"
        )
    lines.append(f"  verdict: {h['verdict']}")
    return lines
