"""`xtml report` on a learning run and an SBI run: every section, a model card, lessons from the results,
a page that renders in a real browser; and the scope gate said loudly by `xtml sbi infer`."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from browser import render_page
from xtml.cli import main
from xtml.critique.run_scope import load_run_scope
from xtml.data import SimulationConfig, simulate_dataset
from xtml.report.run_report import SECTIONS

pytest.importorskip("torch")
from test_sbi_run import TINY


def _check_report(run: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["report", str(run)]) == 0
    out = capsys.readouterr().out
    assert f"report: {run / 'report.html'}" in out
    page = (run / "report.html").read_text()
    for title in SECTIONS:
        assert f"<h2>{title}</h2>" in page, title
    assert "http://" not in page
    assert "https://" not in page
    assert (run / "report.html").stat().st_size < 10e6
    card = (run / "model_card.md").read_text()
    for heading in (
        "## Intended use",
        "## Training domain",
        "## Metrics",
        "## Known limits",
        "## Provenance",
    ):
        assert heading in card
    check = render_page(run / "report.html", Path("test-artifacts") / f"report_{run.parent.name}.png")
    assert check.problems() == [], check.problems()
    assert len(check.figures) >= 5
    return page


def test_learn_report(learn_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = _check_report(learn_run, capsys)
    metrics = json.loads((learn_run / "evaluation" / "metrics.json").read_text())
    # the lessons are the comparison's verdicts, not hand-written text
    verdicts = metrics["comparison"]["verdict"].splitlines()
    assert all(v.replace("+-", "+-") in page.replace("&#x27;", "'") for v in verdicts[:2])
    assert "scope gate flags" in page
    held = load_run_scope(learn_run)
    assert held is not None
    assert held[1]["flag_rate"] < 0.05


def test_model_card_answers_scope_for_the_files_the_run_was_applied_to(
    learn_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`xtml report --applied` (the JSON of `xtml analyze`): the card's third question is answered for real
    files, from their scope flags, not only for held-out simulations."""
    import stingray

    card = learn_run / "model_card.md"
    assert main(["report", str(learn_run)]) == 0
    assert "Not yet applied to real data" in card.read_text()
    capsys.readouterr()
    data = Path(stingray.__file__).parent / "tests" / "data" / "xte_test.evt.gz"
    assert main(["analyze", str(data), "--run", str(learn_run), "--json"]) == 0
    applied = tmp_path / "applied.json"
    applied.write_text(capsys.readouterr().out)
    assert main(["report", str(learn_run), "--applied", str(applied)]) == 0
    text = card.read_text()
    assert "No: applied to 1 file(s): 0 in scope, 1 OUT OF SCOPE (xte_test.evt.gz: " in text
    assert "mean count rate" in text  # the gate's own reason for the file
    (tmp_path / "bad.json").write_text('{"not": "rows"}')
    assert main(["report", str(learn_run), "--applied", str(tmp_path / "bad.json")]) == 2
    assert "not the JSON of `xtml analyze --json`" in capsys.readouterr().err


def test_sbi_report_and_loud_scope(sbi_run: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    page = _check_report(sbi_run, capsys)
    cal = json.loads((sbi_run / "calibration.json").read_text())
    assert f"Verdict: <b>{cal['status'].upper()}</b>" in page
    for reason in cal["reasons"]:
        assert "calibration: " in page
        assert reason.split(":")[0] in page
    # a held-out test row is in scope; the same grid at ten times the rate is loudly out of scope
    code = main(
        [
            "sbi",
            "infer",
            str(sbi_run),
            str(sbi_run / "test.zarr"),
            "--allow-uncalibrated",
            "--n-samples",
            "200",
        ]
    )
    out = capsys.readouterr().out
    assert "in scope (scope p =" in out
    raw = tomllib.loads(TINY)
    raw = {k: v for k, v in raw.items() if k not in ("sbi", "npe", "validation")}
    raw["rate"] = {"dist": "loguniform", "low": 10_000.0, "high": 12_000.0}
    bright = simulate_dataset(SimulationConfig.from_dict(raw), 3, tmp_path / "bright.zarr", progress=False)
    code = main(["sbi", "infer", str(sbi_run), str(bright), "--allow-uncalibrated", "--n-samples", "200"])
    out = capsys.readouterr().out
    assert code == 1
    assert "OUT OF SCOPE" in out
    assert "outside the training range" in out


def test_tampered_scope_refused(sbi_run: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(sbi_run, copy, ignore=shutil.ignore_patterns("*.zarr"))
    path = copy / "scope.json"
    doc = json.loads(path.read_text())
    doc["gate"]["alpha"] = 1e-9  # a gate that never flags
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"scope\.json does not match its hash"):
        load_run_scope(copy)
