"""One figure per claim: every place a run shows its headline metric shows the same number, to the printed
precision, and says which rows it was computed on.

The run (conftest's ``learn_run``: 600 simulated spectra, three models, the LRT on 40 of the test spectra) is
opened everywhere it shows a figure: ``evaluation/metrics.json`` (the record), the evaluation's run record,
``summary.txt``, ``model_card.md``, ``report.html`` and ``performance_maps.json``.
"""

import html
import json
import re

import numpy as np
import pytest

from xtml.cli import main
from xtml.learn.comparison import tpr_resolution
from xtml.learn.headline import fmt_interval, fmt_value, headline_lines
from xtml.runs import load_record


@pytest.fixture(scope="module")
def shown(learn_run):
    """Every file of the run that shows a figure, read once (the report built here)."""
    assert main(["report", str(learn_run)]) == 0
    ev = learn_run / "evaluation"
    page = (learn_run / "report.html").read_text()
    text = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))
    return {
        "metrics": json.loads((ev / "metrics.json").read_text()),
        "record": load_record(ev),
        "summary": (ev / "summary.txt").read_text(),
        "card": (learn_run / "model_card.md").read_text(),
        "page": page,
        "text": text,
        "maps": json.loads((learn_run / "performance_maps.json").read_text()),
        "train": json.loads((learn_run / "train.json").read_text()),
    }


def _tpr(s):
    return fmt_interval(s["tpr_at_fpr"], s["tpr_at_fpr_low"], s["tpr_at_fpr_high"])


def test_the_headline_states_its_rows_and_its_resolution(shown):
    m = shown["metrics"]
    h = m["headline"]
    n_ref = m["reference"]["n_spectra"]
    assert h["n_rows"] == n_ref < m["n_test"]  # the LRT ran on a subset: the headline is on that subset
    assert h["rows"] == f"the {n_ref:,} of {m['n_test']:,} test spectra also scored by the LRT"
    assert h["n_positive"] + h["n_negative"] == n_ref
    assert (h["resolved"], h["resolution"]) == tpr_resolution(h["n_negative"], h["fpr_target"])
    assert not h["resolved"]  # 40 spectra cannot resolve a TPR at 1% FPR
    assert h["verdict"].startswith("not resolved by this test set")
    assert h["reference_beaten"] is False
    check = next(c for c in shown["record"].checks if c.name == "reference_beaten")
    assert not check.passed  # the check follows the same rule
    # the run record keeps the very same headline
    assert shown["record"].metrics["headline"] == h


def test_summary_prints_the_record(shown):
    m, summary = shown["metrics"], shown["summary"]
    h = m["headline"]
    for line in headline_lines(h):
        assert line in summary
    for s in h["scorers"].values():
        assert f"{h['label']} {_tpr(s)}" in summary
    # each model's all-rows figures are labelled as such and are those of the record
    assert f"each model on all {m['n_test']:,} test spectra (ML models only):" in summary
    for name, model in m["models"].items():
        t = model["test"]
        line = next(x for x in summary.splitlines() if x.startswith(f"  {name}: "))
        assert f"{h['label']} {_tpr(t)}" in line
        assert ("NOT resolved" in line) != t["tpr_resolved"]
        assert t["rows"] == f"all {m['n_test']:,} test spectra"


def test_model_card_quotes_the_record_with_its_rows(shown):
    h, card = shown["metrics"]["headline"], shown["card"]
    for name, s in h["scorers"].items():
        assert (
            f"| {name}: {h['label']} [95% CI] | {_tpr(s)} on {h['rows']} (NOT resolved by this test set) |"
            in card
        )
    # the four questions of when to be cautious, each answered from the run's evidence
    for question in (
        "Is this really a statistics problem?",
        "Is there enough training data?",
        "Does the training data look like the data it is applied to?",
        "Would unrecognised biases matter downstream?",
    ):
        assert f"**{question}**" in card
    assert h["verdict"] in card
    models = shown["train"]["models"]
    curve = models[h["best_model"]].get("learning_curve")
    if curve is None:  # a model that is not cross-validated gets no learning curve: another model's is quoted
        assert f"No learning curve for {h['best_model']}; " in card
        curve = next(m["learning_curve"] for m in models.values() if m.get("learning_curve"))
    assert curve["verdict"] in card
    assert curve["rows"].endswith("validation spectra")  # never the test set


def test_report_shows_the_record(shown):
    h, text = shown["metrics"]["headline"], shown["text"]
    best = h["best_model"]
    s = h["scorers"][best]
    assert f"{best}: {h['label']} {_tpr(s)} ({100 * h['level']:g}% interval) on {h['rows']}" in text
    assert h["verdict"] in text
    for s in h["scorers"].values():  # the headline table: value, then its interval, one cell each
        value, interval = _tpr(s).split(" [")
        assert f"{value} [{interval}" in text
        assert f"{s['threshold']:.4g}" in text
    assert "The headline, on " + h["rows"] in text
    # a metric that does not apply reads n/a (the LRT statistic has no Brier score)
    assert h["scorers"]["LRT (reference)"]["brier"] is None
    assert "Brier is n/a for the LRT" in text
    assert "None" not in text


def test_performance_maps_use_the_headline_thresholds_and_give_back_its_figures(shown):
    h, maps = shown["metrics"]["headline"], shown["maps"]
    assert maps["rows"] == h["rows"]
    for name, s in maps["scorers"].items():
        assert s["threshold"] == h["scorers"][name]["threshold"]
        assert fmt_value(s["tpr_overall"]) == fmt_value(h["scorers"][name]["tpr_at_fpr"])
        assert s["n_positive"] == h["n_positive"]
    # summed over the bins of every variable, the map's detection rate is the headline's
    for var, per in maps["variables"].items():
        for name, rows in per.items():
            n = np.array([r["tpr_n"] for r in rows])
            tpr = np.array([np.nan if r["tpr"] is None else r["tpr"] for r in rows])
            overall = np.nansum(tpr * n) / n.sum()
            assert n.sum() == h["n_positive"], (var, name)
            assert fmt_value(overall) == fmt_value(h["scorers"][name]["tpr_at_fpr"]), (var, name)
    # the model card's answer on downstream biases quotes the worst bin of the maps
    worst = min(maps["worst"], key=lambda w: w["tpr"])
    assert f"detects {fmt_value(worst['tpr'])} [{fmt_value(worst['tpr_lower'])}, " in shown["card"]
