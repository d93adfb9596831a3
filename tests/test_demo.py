"""`xtml demo --quick`: the whole loop runs, every stage leaves its run, and the report has every section."""

import json
import re

from xtml.cli import main
from xtml.demo import DEMO_SECTIONS, REAL_FILES
from xtml.runs import list_runs, load_record


def test_quick_demo_runs_the_whole_loop_and_reports_every_section(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--quick", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    for k in range(1, 8):
        assert f"[{k}/7]" in printed  # progress at every stage
    last = printed.strip().splitlines()[-4:]  # where the report is, then the three numbers
    assert last[0].startswith(f"report: {out / 'report.html'}")
    assert re.match(
        r"1\. QPO detection power at 1% false alarms: likelihood-ratio test 0\.\d\d, best ML", last[1]
    )
    assert re.match(r"2\. SBI coverage error: at most \d+\.\d pp", last[2])
    assert last[3].startswith("3. scope of the real files: ")
    assert all(name in last[3] for name in REAL_FILES)
    page = (out / "report.html").read_text()
    titles = re.findall(r"<h2[^>]*>(.*?)</h2>", page)
    assert tuple(titles) == DEMO_SECTIONS
    kinds = {r.kind: r for r in list_runs(out)}
    assert set(kinds) == {"demo", "simulate", "train", "evaluate", "sbi"}
    assert load_record(out).status == "complete"
    summary = json.loads((out / "summary.json").read_text())
    assert 0 <= summary["detection"]["tpr_reference"] <= 1
    assert summary["sbi"]["max_coverage_error_pp"] >= 0
    assert len(summary["real"]) == 2 * len(REAL_FILES)
    # the files are far from the demo's training data (34 and 1660 ct/s against 160-570): the gate says so
    assert not any(r["in_scope"] for r in summary["real"])
    # what did not work is listed, failed checks first, with the runs' reports linked
    failed = [r for r in kinds.values() if r.status == "failed-check"]
    section = page[page.index("What did not work") :]
    for record in failed:
        assert f"check {record.failed_checks[0].name} FAILED" in section
    assert (out / "detect" / "report.html").is_file()
    assert (out / "sbi" / "report.html").is_file()
