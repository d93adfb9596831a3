"""`xtml demo --quick`: the whole loop runs, every stage leaves its run, the report has every section, and
the detection headline is resolved and reads the same in the final lines, summary.json, the demo's report
and the detection run's own record."""

import html
import json
import re

from xtml.demo import DEMO_SECTIONS, MATCHED_FILE, REAL_FILES, SIZES, detection_line
from xtml.learn.comparison import min_negatives
from xtml.learn.headline import fmt_interval
from xtml.runs import list_runs, load_record


def test_quick_demo_runs_the_whole_loop_and_reports_every_section(quick_demo):
    out = quick_demo
    printed = (out.parent / "printed.txt").read_text()
    for k in range(1, 9):
        assert f"[{k}/8]" in printed  # progress at every stage
    lines = printed.strip().splitlines()
    start = max(i for i, line in enumerate(lines) if line.startswith("report: "))
    assert lines[start].startswith(f"report: {out / 'report.html'}")
    numbered = [line for line in lines[start:] if re.match(r"\d\. ", line)]
    assert [line[:2] for line in numbered] == ["1.", "2.", "3.", "4."]
    assert re.match(r"2\. SBI coverage error: at most \d+\.\d pp", numbered[1])
    # the recalibrated posterior passes its gate (issue 19): the demo ends with "calibration PASSED"
    assert numbered[1].endswith("calibration PASSED"), numbered[1]
    assert numbered[2].startswith("3. scope of the real files: ")
    assert all(name in numbered[2] for name in REAL_FILES)
    page = (out / "report.html").read_text()
    titles = re.findall(r"<h2[^>]*>(.*?)</h2>", page)
    assert tuple(titles) == DEMO_SECTIONS
    kinds = {r.kind: r for r in list_runs(out)}
    assert set(kinds) == {"demo", "simulate", "train", "evaluate", "sbi"}
    assert load_record(out / "matched").kind == "sbi"
    assert load_record(out).status == "complete"
    summary = json.loads((out / "summary.json").read_text())
    assert 0 <= summary["detection"]["tpr_reference"] <= 1
    assert summary["sbi"]["max_coverage_error_pp"] >= 0
    assert len(summary["real"]) == 2 * len(REAL_FILES)
    # the files are far from the demo's training data (34 and 1660 ct/s against 160-570): the gate says so
    assert not any(r["in_scope"] for r in summary["real"])
    # ... and a run matched to the real RXTE file answers in scope, next to the classical fits (issue 20)
    assert numbered[3].startswith(f"4. run matched to the real file {MATCHED_FILE} ("), numbered[3]
    assert ": in scope: " in numbered[3], numbered[3]
    matched = summary["matched"]
    assert matched["in_scope"]
    assert matched["error"] is None
    assert any(c.startswith("Zhang (dead-time-aware) fit") for c in matched["classical"])
    assert "A run matched to the real file" in page
    # what did not work lists failures only, failed checks first, with the runs' reports linked
    failed = [r for r in kinds.values() if r.status == "failed-check"]
    section = page[page.index("What did not work") :]
    for record in failed:
        assert f"check {record.failed_checks[0].name} FAILED" in section
    for lesson in summary["lessons"]:
        flagged = re.search(r"scope gate flags ([\d.]+)% .*\(target < 5%\)", lesson)
        assert flagged is None or float(flagged.group(1)) >= 5, lesson  # a passed check is no failure
        assert not lesson.startswith(("detect: not resolved", "sbi: not resolved"))
    assert (out / "detect" / "report.html").is_file()
    assert (out / "sbi" / "report.html").is_file()
    assert "&amp;lt;" not in page  # escaped once
    assert "&amp;gt;" not in page


def test_quick_demo_headline_is_resolved_and_the_same_everywhere(quick_demo):
    out = quick_demo
    head = json.loads((out / "detect" / "evaluation" / "metrics.json").read_text())["headline"]
    # sized to be resolved: the LRT scored every test spectrum, enough QPO-free ones for the FPR
    assert head["fpr_target"] == SIZES["quick"]["fpr"]
    assert head["n_negative"] >= min_negatives(head["fpr_target"])
    assert head["resolved"]
    assert head["rows"] == f"all {head['n_rows']:,} test spectra"
    # the final line is the record, printed by the shared formatter; its figures are the record's
    printed = (out.parent / "printed.txt").read_text()
    line = next(x for x in printed.splitlines() if x.startswith("1. "))
    assert line == "1. " + detection_line(head)
    best, ref = head["best_model"], head["scorers"]["LRT (reference)"]
    for s in (head["scorers"][best], ref):
        assert fmt_interval(s["tpr_at_fpr"], s["tpr_at_fpr_low"], s["tpr_at_fpr_high"]) in line
    assert f"{head['n_negative']:,} without" in line
    # summary.json carries the same record; the report's headline panel and tables print it the same way
    summary = json.loads((out / "summary.json").read_text())
    assert summary["detection"]["headline"] == head
    text = html.unescape(re.sub(r"<[^>]+>", " ", (out / "report.html").read_text()))
    text = re.sub(r"\s+", " ", text)
    assert detection_line(head, verdict=False) in text
    assert head["verdict"] in text
    for s in head["scorers"].values():
        assert fmt_interval(s["tpr_at_fpr"], s["tpr_at_fpr_low"], s["tpr_at_fpr_high"]).split(" [")[0] in text
    # the detection run's model card quotes the same figures on the same rows
    card = (out / "detect" / "model_card.md").read_text()
    s = head["scorers"][best]
    assert (
        f"{fmt_interval(s['tpr_at_fpr'], s['tpr_at_fpr_low'], s['tpr_at_fpr_high'])} on {head['rows']}"
        in card
    )
