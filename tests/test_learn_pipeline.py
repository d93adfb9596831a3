"""`xtml train` / `xtml evaluate`: the whole supervised protocol on small simulated datasets."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib

import numpy as np
import pytest

from xtml.cli import main
from xtml.critique import plot_evaluation
from xtml.data import SimulationConfig, open_dataset, simulate_dataset
from xtml.learn.calibration import ScoreCalibrator, fit_calibrator
from xtml.learn.config import TrainConfig
from xtml.learn.evaluate import REFERENCE_NAME, EvaluationLockError, evaluate_run
from xtml.learn.persist import UnsafeModelError, load_model
from xtml.learn.train import train_run

DATA = """
[observation]
dt = 0.0078125
segment_bins = 256
n_segments = 8
red_noise_factor = 2
alias_factor = 1
rebin_log = 0.05

[rate]
dist = "uniform"
low = 500.0
high = 1000.0

[classes.qpo]
components = { broad = "zero_lorentzian", qpo = "lorentzian" }

[classes.qpo.priors]
"broad.nu_max" = { dist = "loguniform", low = 0.5, high = 3.0 }
"broad.rms" = { dist = "uniform", low = 0.05, high = 0.15 }
"qpo.nu0" = { dist = "loguniform", low = 4.0, high = 20.0 }
"qpo.q" = { dist = "uniform", low = 5.0, high = 10.0 }
"qpo.rms" = { dist = "uniform", low = QPO_LOW, high = 0.2 }

[classes.noise]
components = { broad = "zero_lorentzian", qpo = "lorentzian" }

[classes.noise.priors]
"broad.nu_max" = { dist = "loguniform", low = 0.5, high = 3.0 }
"broad.rms" = { dist = "uniform", low = 0.05, high = 0.15 }
"qpo.nu0" = { dist = "loguniform", low = 4.0, high = 20.0 }
"qpo.q" = { dist = "uniform", low = 5.0, high = 10.0 }
"qpo.rms" = { dist = "uniform", low = NOISE_LOW, high = NOISE_HIGH }

[dataset]
seed = 3
chunk_size = 400
spectra_per_observation = 2
"""

TRAIN = """
[task]
kind = "detect"
positive = ["qpo"]

[split]
seed = 2

[cv]
n_splits = 3

[models.logistic]
search = { C = [0.1, 1.0] }

[models.random_forest]
params = { n_estimators = 100 }

[models.hist_gb]
cv = false

[models.cnn]
params = { max_epochs = 30, patience = 4 }
cv = false

[reference]
test = "lrt"
null = { broad = "zero_lorentzian" }
max_spectra = 40

[evaluation]
n_boot = 200
"""


def _dataset(tmp_path, name, n, qpo_low, noise_low, noise_high):
    text = DATA.replace("QPO_LOW", str(qpo_low)).replace("NOISE_LOW", str(noise_low))
    config = SimulationConfig.from_dict(tomllib.loads(text.replace("NOISE_HIGH", str(noise_high))))
    return simulate_dataset(config, n, tmp_path / name, progress=False)


@pytest.fixture(scope="module")
def strong(tmp_path_factory):
    """Strong QPOs (rms 10-20 %) against none (rms 0.1 %: below any detection)."""
    return _dataset(tmp_path_factory.mktemp("strong"), "strong.zarr", 800, 0.1, 0.0005, 0.001)


@pytest.fixture(scope="module")
def trained(strong, tmp_path_factory):
    run = tmp_path_factory.mktemp("run") / "detect"
    train_run(TrainConfig.from_dict(tomllib.loads(TRAIN)), strong, run, log=None)
    return run


def test_every_model_separates_strong_qpos_and_the_reference_is_in_the_table(trained):
    out = evaluate_run(trained)
    plot_evaluation(trained)
    ev = trained / "evaluation"
    for name, m in out["models"].items():
        assert m["test"]["roc_auc"] > 0.99, name
    rows = {r["scorer"]: r for r in out["comparison"]["rows"]}
    assert REFERENCE_NAME in rows
    assert rows[REFERENCE_NAME]["roc_auc"] > 0.99
    assert out["reference"]["time_per_spectrum_s"] > 0
    summary = (ev / "summary.txt").read_text()
    assert "TPR@1%FPR" in summary
    assert "reference" in summary
    for plot in ("roc.png", "pr.png", "reliability.png", "confusion_cnn.png", "importance_logistic.png"):
        assert (ev / "plots" / plot).stat().st_size > 1000, plot
    record = json.loads((trained / "train.json").read_text())
    assert "+-" in record["models"]["logistic"]["cv"]["summary"]["roc_auc"]
    assert set(record["models"]["logistic"]["search"]["best_params"]) == {"model__C"}
    # the test set is opened once; reopening needs a reason and is recorded
    with pytest.raises(EvaluationLockError, match="already opened"):
        evaluate_run(trained)
    evaluate_run(trained, reopen="checking a plot")
    openings = json.loads((trained / "test_opened.json").read_text())
    assert [o["reason"] for o in openings] == ["final evaluation", "checking a plot"]


def test_split_keeps_observations_whole_and_the_test_rows_unseen(trained, strong):
    ds = open_dataset(strong)
    with np.load(trained / "split.npz") as split:
        train, val = split["train"], split["validation"]
    groups = ds.groups
    test = np.setdiff1d(np.arange(ds.n), np.union1d(train, val))
    sides = [set(groups[idx].tolist()) for idx in (train, val, test)]
    assert not sides[0] & sides[1]
    assert not sides[0] & sides[2]
    assert not sides[1] & sides[2]
    assert len(test) > 0.1 * ds.n


def test_pure_noise_labels_give_chance_auc(tmp_path):
    """Both classes simulated identically: the labels are noise and no model may find signal (no leakage)."""
    path = _dataset(tmp_path, "noise.zarr", 2400, 0.05, 0.05, 0.2)
    raw = tomllib.loads(TRAIN)
    raw["reference"]["test"] = "none"
    raw["models"]["cnn"]["params"]["max_epochs"] = 8
    del raw["models"]["logistic"]["search"]
    for m in raw["models"].values():
        m["cv"] = False
    run = tmp_path / "run"
    train_run(TrainConfig.from_dict(raw), path, run, log=None)
    out = evaluate_run(run)
    for name, m in out["models"].items():
        # the ROC-AUC of uninformative scores is the Mann-Whitney U / (n_pos n_neg), with variance
        # (n_pos + n_neg + 1) / (12 n_pos n_neg) under the null: within 3 sigma of 0.5 (~0.09 here)
        n_pos, n_neg = m["test"]["n_positive"], m["test"]["n_negative"]
        sigma = np.sqrt((n_pos + n_neg + 1) / (12 * n_pos * n_neg))
        assert abs(m["test"]["roc_auc"] - 0.5) < 3 * sigma, (name, m["test"]["roc_auc"], sigma)


def test_models_load_in_a_fresh_process_with_identical_predictions(trained, strong):
    ds = open_dataset(strong)
    from xtml.learn.inputs import spectra_to_X

    X, _ = spectra_to_X(ds.spectra(np.arange(20)))
    np.save(trained / "x.npy", X)
    for name in ("logistic", "random_forest", "hist_gb", "cnn"):
        here = load_model(trained / "models" / name).predict_proba(X)
        code = (
            "import numpy as np, sys; from xtml.learn.persist import load_model; "
            "p = load_model(sys.argv[1]).predict_proba(np.load(sys.argv[2])); np.save(sys.argv[3], p)"
        )
        out = trained / f"p_{name}.npy"
        subprocess.run(
            [sys.executable, "-c", code, str(trained / "models" / name), str(trained / "x.npy"), str(out)],
            check=True,
        )
        assert np.array_equal(np.load(out), here), name


def test_tampered_models_are_refused(trained, tmp_path):
    import shutil

    for name, victim in (("cnn", "network.safetensors"), ("logistic", "pipeline.skops")):
        copy = tmp_path / name
        shutil.copytree(trained / "models" / name, copy)
        data = bytearray((copy / victim).read_bytes())
        data[len(data) // 2] ^= 1
        (copy / victim).write_bytes(bytes(data))
        with pytest.raises(UnsafeModelError, match="does not match its manifest"):
            load_model(copy)


def test_a_smuggled_type_is_refused(tmp_path):
    """A skops file holding a non-allow-listed type (here a function from os) is never loaded."""
    import os

    import skops.io as sio

    from xtml.learn.persist import file_sha256

    folder = tmp_path / "evil"
    folder.mkdir()
    sio.dump({"payload": os.getcwd}, folder / "pipeline.skops")
    digest = file_sha256(folder / "pipeline.skops")
    (folder / "manifest.json").write_text(json.dumps({"files": {"pipeline.skops": digest}}))
    with pytest.raises(UnsafeModelError, match="allow-list"):
        load_model(folder)


def test_calibrators_fix_known_miscalibration():
    rng = np.random.default_rng(4)
    p_true = rng.uniform(0.02, 0.98, 20000)
    y = (rng.uniform(size=p_true.size) < p_true).astype(int)
    over = 1 / (1 + np.exp(-3 * np.log(p_true / (1 - p_true))))  # overconfident scores
    proba = np.column_stack([1 - over, over])
    half = slice(0, 10000), slice(10000, None)

    def brier(p):
        return float(np.mean((p[:, 1] - y[half[1]]) ** 2))

    for method in ("isotonic", "sigmoid", "temperature"):
        cal = fit_calibrator(proba[half[0]], y[half[0]], method)
        cal = ScoreCalibrator.from_dict(json.loads(json.dumps(cal.to_dict())))
        assert brier(cal.transform(proba[half[1]])) < brier(proba[half[1]]) - 0.005, method
    t = fit_calibrator(proba[half[0]], y[half[0]], "temperature").values["temperature"][0]
    assert abs(t - 3.0) < 0.3  # the temperature undoes the factor-3 logit stretch


def test_calibration_keeps_the_ranking_of_the_scores():
    """Isotonic calibration is flat between equal knots: without a tie-break it ties scores the model ranked,
    and a TPR at 1 % FPR read off the tied probabilities falls short of the raw scores' (the operating point
    cannot reach 1 % inside a block of ties). The calibrated map keeps the raw ranking, to 1e-6 in value."""
    from xtml.learn.metrics import binary_metrics

    rng = np.random.default_rng(12)
    y = rng.integers(0, 2, 20000)
    raw = 1 / (1 + np.exp(-(rng.normal(0, 1, y.size) + 1.2 * y)))  # distinct scores, informative
    proba = np.column_stack([1 - raw, raw])
    cal = fit_calibrator(proba[:4000], y[:4000], "isotonic")
    knots = np.asarray(cal.values["y"])
    assert np.unique(knots).size < knots.size  # the isotonic fit has flat steps: ties without the tie-break
    p = cal.transform(proba[4000:])[:, 1]
    flat = np.interp(raw[4000:], cal.values["x"], cal.values["y"])
    assert np.unique(flat).size < 0.5 * flat.size  # the plain map ties most test scores
    assert np.max(np.abs(p - flat)) < 2e-6  # the same probabilities
    order = np.argsort(raw[4000:], kind="stable")
    assert np.all(np.diff(p[order]) > 0)  # strictly increasing in the raw score: no ties, same ranking
    test_y = y[4000:]
    tpr = binary_metrics(test_y, p, fpr_target=0.01)["tpr_at_fpr"]
    assert tpr == binary_metrics(test_y, raw[4000:], fpr_target=0.01)["tpr_at_fpr"]
    assert tpr > binary_metrics(test_y, flat, fpr_target=0.01)["tpr_at_fpr"]


def test_train_config_errors_name_the_key():
    raw = tomllib.loads(TRAIN)
    raw["models"]["logistic"]["serch"] = {}
    with pytest.raises(ValueError, match="serch"):
        TrainConfig.from_dict(raw)
    with pytest.raises(ValueError, match="kind must be one of"):
        TrainConfig.from_dict({"task": {"kind": "cluster"}, "models": {"logistic": {}}})
    with pytest.raises(ValueError, match="at least one"):
        TrainConfig.from_dict({"task": {"kind": "detect"}})
    raw = tomllib.loads(TRAIN)
    raw["learning_curve"] = {"fractions": [0.5, 0.25, 1.0]}
    with pytest.raises(ValueError, match=r"\[learning_curve\] fractions must be"):
        TrainConfig.from_dict(raw)
    raw["learning_curve"] = {"fractions": [0.5, 1.0]}
    config = TrainConfig.from_dict(raw)
    assert config.curve_fractions == (0.5, 1.0)
    # a model cheap enough to cross-validate gets a learning curve unless told otherwise
    assert {m.name: m.learning_curve for m in config.models} == {
        "logistic": True,
        "random_forest": True,
        "hist_gb": False,
        "cnn": False,
    }
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_cli_train_and_evaluate(strong, tmp_path, capsys):
    cfg = tmp_path / "train.toml"
    raw = TRAIN.replace("max_spectra = 40", "max_spectra = 10").split("[models.random_forest]")[0]
    cfg.write_text(raw + "\n[reference]\nmax_spectra = 10\n")  # logistic only; a quick reference
    run = tmp_path / "run"
    assert main(["train", str(cfg), "--data", str(strong), "--out", str(run), "--no-progress"]) == 0
    trained = capsys.readouterr().out
    # CV as a table, not a Python dict: a header, one row per model and score, every fold
    assert "{'" not in trained
    lines = trained.splitlines()
    head = next(
        i
        for i, line in enumerate(lines)
        if line.split() == ["model", "CV", "score", "mean", "std", "folds", "tuned", "hyper-parameters"]
    )
    row = lines[head + 1].split()
    assert row[:2] == ["logistic", "ROC-AUC"]
    cv = json.loads((run / "train.json").read_text())["models"]["logistic"]["cv"]
    assert float(row[2]) == round(cv["mean"]["roc_auc"], 3)
    assert len(cv["folds"]["roc_auc"]) == 3
    assert "learning curves: " in trained
    assert "logistic: still improving: " in trained or "logistic: no resolved gain: " in trained
    assert main(["evaluate", str(run), "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert "logistic" in out
    assert "TPR@1%FPR" in out
    assert "headline: QPO detection, TPR at 1% FPR" in out
    assert "each model on all " in out
    assert main(["evaluate", str(run)]) == 2  # a second opening without a reason is refused
    assert "already opened" in capsys.readouterr().err


def test_a_model_from_a_newer_xtml_is_refused_naming_both_versions(trained, tmp_path):
    """A model folder in a newer model format is refused before anything in it is read."""
    import shutil

    from xtml import __version__
    from xtml.learn.persist import MODEL_FORMAT_VERSION, IncompatibleModelError

    copy = tmp_path / "logistic"
    shutil.copytree(trained / "models" / "logistic", copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    assert manifest["format_version"] == MODEL_FORMAT_VERSION
    assert manifest["xtml_version"] == __version__
    load_model(copy)  # as written: loads
    manifest |= {"format_version": MODEL_FORMAT_VERSION + 1, "xtml_version": "9.9.0"}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IncompatibleModelError, match=rf"saved by xtml 9\.9\.0 .*this xtml {__version__}"):
        load_model(copy)
