"""State classification and parameter regression via train_run / evaluate_run, with the fit reference."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest

from xtml.data import SimulationConfig, load_config, open_dataset, simulate_dataset
from xtml.learn import TrainConfig, load_task
from xtml.learn.config import TaskSpec
from xtml.learn.evaluate import evaluate_run
from xtml.learn.train import train_run

CONFIGS = Path(__file__).parents[1] / "configs"


def _small(name: str, **observation) -> SimulationConfig:
    raw = tomllib.loads((CONFIGS / name).read_text())
    raw["observation"] |= observation
    return SimulationConfig.from_dict(raw)


def test_state_classification_beats_chance_by_far(tmp_path):
    config = _small("states.toml", segment_bins=256, n_segments=8, dt=1 / 128, alias_factor=1)
    data = simulate_dataset(config, 800, tmp_path / "states.zarr", progress=False)
    raw = tomllib.loads((CONFIGS / "train_state.toml").read_text())
    raw["models"] = {"logistic": {}, "random_forest": {"params": {"n_estimators": 100}}}
    raw["cv"]["n_splits"] = 3
    train_run(TrainConfig.from_dict(raw), data, tmp_path / "run", log=None)
    out = evaluate_run(tmp_path / "run")
    assert out["names"] == ["type_c", "type_b", "red_noise", "white"]
    for name, m in out["models"].items():
        assert m["test"]["accuracy"] > 0.45, (name, m["test"]["accuracy"])  # chance: ~0.3 (largest class)
        assert np.asarray(m["test"]["confusion_matrix"]).shape == (4, 4)
        assert m["test"]["rows"] == f"all {out['n_test']:,} test spectra"
    # the learning curve of a multi-class task reads the accuracy on the validation rows
    record = json.loads((tmp_path / "run" / "train.json").read_text())
    curve = record["models"]["logistic"]["learning_curve"]
    assert curve["metric"] == "accuracy"
    assert curve["rows"] == f"the {record['split']['validation']:,} validation spectra"
    _report_has_every_section(tmp_path / "run")


def test_regression_with_uncertainties_and_the_fit_reference(tmp_path):
    config = _small("powerlaw_qpo.toml", segment_bins=512, n_segments=8)
    data = simulate_dataset(config, 600, tmp_path / "pl.zarr", progress=False)
    task = load_task(
        open_dataset(data), TaskSpec("regress", targets=("qpo.nu0", "red.index"), log_targets=False)
    )
    labels = open_dataset(data).array("labels")
    assert task.y.shape == (int((labels == 0).sum()), 2)  # spectra without a QPO are left out
    raw = tomllib.loads((CONFIGS / "train_regress.toml").read_text())
    raw["models"] = {"linear": {}, "random_forest": {"params": {"n_estimators": 100}}}
    raw["cv"]["n_splits"] = 3
    raw["task"]["log_targets"] = True
    raw["reference"]["max_spectra"] = 25
    train_run(TrainConfig.from_dict(raw), data, tmp_path / "run", log=None)
    out = evaluate_run(tmp_path / "run")
    for name, m in out["models"].items():
        assert m["test"]["r2"][0] > 0.5, name  # log10 of the QPO centroid is learnable
        assert 0.5 < m["test"]["coverage_68"][0] < 0.9, name  # uncertainties of the right order
    ref = out["reference"]
    assert ref["test"] == "fit"
    assert ref["n_spectra"] == 25
    ok = ref["n_spectra"] - ref["n_failed"]
    assert ok >= 15
    # most fits of the generating model find the QPO: the median error of log10(nu0) is small (a few
    # fits lock onto another peak of a weak QPO: the rmse, in the summary, shows them)
    with np.load(tmp_path / "run" / "evaluation" / "test_predictions.npz") as f:
        truth = f["y"][f["reference/subset"], 0]
        found = f["reference/pred"][:, 0]
    assert np.median(np.abs(found - truth)) < 0.05
    summary = (tmp_path / "run" / "evaluation" / "summary.txt").read_text()
    assert "reference fit" in summary
    assert (
        ref["rows"]
        == f"the {ok:,} of a random 25 of the {out['n_test']:,} test spectra where the fit succeeded"
    )
    assert ref["rows"] in summary
    record = json.loads((tmp_path / "run" / "train.json").read_text())
    assert record["models"]["linear"]["learning_curve"]["metric"] == "rmse"
    _report_has_every_section(tmp_path / "run")


def _report_has_every_section(run: Path) -> None:
    """The report of a state or regression run: every section, a headline panel, a model card answering
    the four questions (n/a where a task has no answer)."""
    from xtml.report.card import CAUTION_QUESTIONS
    from xtml.report.run_report import SECTIONS, build_report

    result = build_report(run)
    page = result.html.read_text()
    for title in SECTIONS:
        assert f"<h2>{title}</h2>" in page, title
    assert page.index("<h2>Headline</h2>") < page.index("<h2>What was asked</h2>")
    assert "<pre>" not in page.split("</details>")[-1]  # no table typeset as text
    card = result.model_card.read_text()
    for question in CAUTION_QUESTIONS:
        assert f"**{question}**" in card


def test_task_errors_name_the_problem(tmp_path):
    config = load_config(CONFIGS / "default.toml")
    raw = config.to_dict()
    raw["observation"] |= {"segment_bins": 128, "n_segments": 2}
    data = simulate_dataset(SimulationConfig.from_dict(raw), 20, tmp_path / "d.zarr", progress=False)
    ds = open_dataset(data)
    with pytest.raises(ValueError, match="not parameters of the dataset"):
        load_task(ds, TaskSpec("regress", targets=("qpo.width",)))
    with pytest.raises(ValueError, match="unknown class"):
        load_task(ds, TaskSpec("detect", positive=("kilohertz",)))
