"""`xtml sbi train` / `xtml sbi infer`: scenario files, inputs on the trained grid, run folders, refusals."""

from __future__ import annotations

import json
import os
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("zuko")

from xtml.cli import main
from xtml.data import open_dataset, simulate_dataset
from xtml.sbi.infer import infer
from xtml.sbi.inputs import dataset_inputs, spectrum_inputs
from xtml.sbi.run import (
    UncalibratedPosteriorError,
    accuracy_table,
    load_run_posterior,
    scenario_prior,
)
from xtml.sbi.scenario import SBIConfig, load_sbi_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

TINY = """
[observation]
dt = 0.0078125
segment_bins = 512
n_segments = 2
norm = "leahy"
rebin_log = 0.1

[rate]
dist = "loguniform"
low = 200.0
high = 1000.0

[classes.qpo]
components = { broad = "zero_lorentzian", qpo = "lorentzian" }

[classes.qpo.priors]
"broad.nu_max" = { dist = "fixed", value = 2.0 }
"broad.rms" = { dist = "uniform", low = 0.05, high = 0.2 }
"qpo.nu0" = { dist = "loguniform", low = 4.0, high = 20.0 }
"qpo.q" = { dist = "fixed", value = 8.0 }
"qpo.rms" = { dist = "uniform", low = 0.05, high = 0.25 }

[detector]
n_modules = 2

[detector.dead_time]
value = 0.0025
kind = "nonparalyzable"

[dataset]
seed = 5
chunk_size = 200

[sbi]
n_train = 800
n_test = 200
parameters = ["qpo.nu0", "qpo.rms", "broad.rms", "rate"]
channels = ["power", "cospectrum"]

[npe]
flow = "nsf"
embedding = "mlp"
embedding_hidden = [32]
hidden_features = [32, 32]
transforms = 2
max_epochs = 40

[validation]
n_samples = 200
"""


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sbi")
    config = _write(root / "tiny.toml", TINY)
    out = root / "run"
    code = main(["sbi", "train", str(config), "--out", str(out), "--threads", "1", "--no-progress"])
    status = json.loads((out / "calibration.json").read_text())["status"]
    assert code == (0 if status == "passed" else 1)
    return out


@pytest.mark.parametrize("name", ["sbi_ideal", "sbi_nustar", "sbi_variable_deadtime", "sbi_pileup"])
def test_shipped_scenarios_load_and_describe_what_is_inferred(name):
    config = load_sbi_config(CONFIGS / f"{name}.toml")
    assert config.sbi.n_train >= 50_000
    assert config.sbi.n_test >= 1000
    prior = scenario_prior(config)
    assert prior.names == config.sbi.parameters
    assert config.npe_config().n_ensemble >= 1
    det = config.simulation.detector
    expected = {
        "sbi_ideal": det.is_ideal and "rate" not in config.sbi.parameters,
        "sbi_nustar": det.dead_time is not None and det.dead_time.is_constant and det.n_modules == 2,
        "sbi_variable_deadtime": det.dead_time is not None and not det.dead_time.is_constant,
        "sbi_pileup": det.pileup is not None,
    }
    assert expected[name]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r["sbi"].update(chanels=["power"]), "unknown key"),
        (lambda r: r["sbi"].update(channels=["phase"]), "channel 'phase'"),
        (lambda r: r["sbi"].update(parameters=["qpo.q"]), "cannot be inferred"),
        (lambda r: r["sbi"].update(parameters=["qpo.nu0", "qpo.nu0"]), "twice"),
        (lambda r: r["detector"].update(n_modules=1), "cospectrum channel needs n_modules"),
        (lambda r: r["npe"].update(flows="maf"), "[npe]"),
        (lambda r: r["validation"].update(coverage_tolerance=2.0), "coverage_tolerance"),
        (lambda r: r["sbi"].update({"class": "noise"}), "not a class"),
        (lambda r: r.pop("sbi"), "[sbi] table"),
        (
            lambda r: r["sbi"].update(n_calibration=12),
            "n_calibration must be 0 .no recalibration. or at least 40",
        ),
        (lambda r: r["sbi"].update(calibration_data=3), "calibration_data must be a path string"),
    ],
)
def test_bad_scenarios_are_refused_with_the_offending_key(change, message):
    raw = tomllib.loads(TINY)
    change(raw)
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        SBIConfig.from_dict(raw)


def test_run_folder_holds_the_posterior_its_checks_and_their_hashes(run):
    for name in (
        "config.toml",
        "config.json",
        "scenario.toml",
        "sbi.json",
        "scope.json",
        "posterior/weights.safetensors",
        "posterior/posterior.json",
        "posterior/inputs.json",
        "manifest.json",
        "calibration.json",
        "test_posteriors.npz",
        "summary.txt",
        "record.json",
    ):
        assert (run / name).is_file(), name
    cal = json.loads((run / "calibration.json").read_text())
    assert cal["n_test"] == 200
    # recalibrated on its own held-out simulations (n_calibration defaults to n_test), not on the test set
    rec = cal["recalibration"]
    assert rec["method"] == "base_gaussian"
    assert rec["n"] == 200
    assert json.loads((run / "posterior" / "posterior.json").read_text())["recalibration"] == rec
    assert np.asarray(rec["chol"]).shape == (1, 4, 4)
    assert np.all(np.diagonal(rec["chol"], axis1=1, axis2=2) > 0)
    from xtml.data import open_dataset

    cal_ds, test_ds = open_dataset(run / "calibration.zarr"), open_dataset(run / "test.zarr")
    assert not np.isin(
        np.asarray(cal_ds.array("params"))[:, 0], np.asarray(test_ds.array("params"))[:, 0]
    ).any()
    assert json.loads((run / "sbi.json").read_text())["n_calibration"] == 200
    assert "recalibrated on 200 held-out simulations (not the test set)" in (run / "summary.txt").read_text()
    assert set(cal["coverage"]) == {"qpo.nu0", "qpo.rms", "broad.rms", "rate"}
    assert all(0 <= p <= 1 for p in cal["sbc_ks_pvalue"].values())
    rows = [r for r in cal["accuracy"] if r["rate_bin"] == "all"]
    assert len(rows) == 4
    assert len(cal["accuracy"]) == 4 * 4  # all rates + 3 rate bins, per parameter
    # rate is well measured (the detected rate is an input): the posterior must beat the prior width
    rate = next(r for r in rows if r["parameter"] == "rate")
    assert rate["rmse"] < 0.5 * (1000 - 200) / np.sqrt(12)
    npz = np.load(run / "test_posteriors.npz")
    assert npz["quantiles"].shape == (200, 7, 4)
    assert np.all(np.diff(npz["quantiles"], axis=1) >= 0)


def test_accuracy_table_measures_bias_and_coverage_of_known_posteriors():
    rng = np.random.default_rng(3)
    n = 4000
    truths = rng.uniform(1, 2, (n, 1))
    rates = rng.uniform(100, 1000, n)
    sigma = 0.05
    # a calibrated Gaussian posterior centred on a noisy estimate, and one shifted by +1 sigma
    centre = truths + sigma * rng.normal(size=(n, 1))
    draws = centre[:, None, :] + sigma * rng.normal(size=(n, 1000, 1))
    rows = accuracy_table(("a",), truths, rates, draws)
    assert len(rows) == 4  # three bins of equal numbers, and all rates
    (good,) = [r for r in rows if r.rate_bin is None]
    assert sum(r.n for r in rows if r.rate_bin is not None) == n
    assert abs(good.coverage68 - 0.68) < 0.03
    assert abs(good.coverage95 - 0.95) < 0.015
    assert abs(good.bias) < 3 * sigma * np.sqrt(2 / n)
    (bad,) = [r for r in accuracy_table(("a",), truths, rates, draws + sigma) if r.rate_bin is None]
    assert abs(bad.bias - sigma) < 0.01
    assert bad.coverage68 < 0.5


def test_infer_on_a_dataset_row_and_refusals(run, tmp_path):
    rp = load_run_posterior(run, allow_uncalibrated=True)
    test = run / "test.zarr"
    result = infer(run, [test], index=7, n_samples=500, seed=1, allow_uncalibrated=True)
    again = infer(run, [test], index=7, n_samples=500, seed=1, allow_uncalibrated=True)
    assert result.samples.shape == (500, 4)
    assert np.array_equal(result.samples, again.samples)
    assert np.all(rp.posterior.box.contains(result.samples))
    assert [r["parameter"] for r in result.summary()] == ["qpo.nu0", "qpo.rms", "broad.rms", "rate"]
    if not rp.passed:
        with pytest.raises(UncalibratedPosteriorError, match="FAILED its calibration"):
            load_run_posterior(run)
        assert result.notes[0].startswith("UNCALIBRATED")

    # NaN powers, a different frequency grid, a different number of segments
    ds = open_dataset(test)
    spectra = {c: ds.spectra(np.array([0]), array=c) for c in ("power", "cospectrum")}
    power = spectra["power"].power.copy()
    power[0, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):  # refused when the spectrum is made, or by the inputs
        spectrum_inputs({**spectra, "power": _replace(spectra["power"], power=power)}, rp.inputs)
    negative = _replace(spectra["power"], power=-np.ones_like(power))
    with pytest.raises(ValueError, match="power must be > 0"):
        spectrum_inputs({**spectra, "power": negative}, rp.inputs)
    shifted = _replace(spectra["power"], freq=spectra["power"].freq * 2)
    with pytest.raises(ValueError, match="frequency grid"):
        spectrum_inputs({**spectra, "power": shifted}, rp.inputs)
    more = _replace(spectra["power"], m=np.asarray(spectra["power"].m) * 2)
    with pytest.raises(ValueError, match="number of averaged segments"):
        spectrum_inputs({**spectra, "power": more}, rp.inputs)
    with pytest.raises(ValueError, match="missing"):
        spectrum_inputs({"power": spectra["power"]}, rp.inputs)

    # a dataset with 3 segments per observation is refused as a whole
    raw = tomllib.loads(TINY)
    raw["observation"]["n_segments"] = 3
    cfg = SBIConfig.from_dict(raw)
    other = simulate_dataset(cfg.simulation, 5, tmp_path / "three.zarr", progress=False)
    with pytest.raises(ValueError, match="segments"):
        infer(run, [other], allow_uncalibrated=True)
    with pytest.raises(ValueError, match="segments"):
        dataset_inputs(open_dataset(other), rp.inputs)


def _replace(ps, **changes):
    import dataclasses

    return dataclasses.replace(ps, **changes)


def test_tampered_posterior_files_are_refused(run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(run / "posterior", copy / "posterior")
    for name in ("manifest.json", "calibration.json", "config.json", "record.json"):
        shutil.copyfile(run / name, copy / name)
    load_run_posterior(copy, allow_uncalibrated=True)  # the untouched copy loads
    weights = copy / "posterior" / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="modified"):
        load_run_posterior(copy, allow_uncalibrated=True)
    shutil.copyfile(run / "posterior" / "weights.safetensors", weights)
    cal = json.loads((copy / "calibration.json").read_text())
    cal["status"] = "passed"  # promoting a failed posterior by hand is caught too
    (copy / "calibration.json").write_text(json.dumps(cal) + " ")
    with pytest.raises(ValueError, match="modified"):
        load_run_posterior(copy, allow_uncalibrated=True)


def _with_verdict(run, folder, status, wider_by):
    """A copy of ``run`` whose calibration verdict is ``status``, re-hashed as if it had been trained so."""
    from xtml.runs.hashing import entry_hash, file_sha256

    copy = folder / status
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("*.zarr"))
    cal = json.loads((copy / "calibration.json").read_text())
    cal["status"], cal["wider_by"] = status, wider_by
    (copy / "calibration.json").write_text(json.dumps(cal))
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["calibration.json"] = file_sha256(copy / "calibration.json")
    (copy / "manifest.json").write_text(json.dumps(manifest))
    record = json.loads((copy / "record.json").read_text())
    for key in ("calibration.json", "manifest.json"):
        record["files"][key] = entry_hash(copy, key)
    (copy / "record.json").write_text(json.dumps(record))
    return copy


def test_a_conservative_posterior_is_used_with_a_warning_and_a_failed_one_refused(run, tmp_path):
    """The gate's two kinds of failure: a conservative posterior (usable, wider than needed) loads and its
    answers say by how much; an overconfident or biased one is refused unless explicitly allowed."""
    wide = _with_verdict(run, tmp_path, "conservative", {"qpo.nu0": 0.12, "qpo.rms": 0.0, "joint HPD": 0.09})
    rp = load_run_posterior(wide)
    assert rp.usable
    assert not rp.passed
    result = infer(wide, [run / "test.zarr"], index=0, n_samples=200, seed=1)
    assert result.calibrated
    assert result.notes[0] == (
        "CONSERVATIVE POSTERIOR: its credible regions cover at least their level, wider than needed "
        "(qpo.nu0 by ~12 %, the joint region by ~9 %)"
    )
    bad = _with_verdict(run, tmp_path, "failed", {"qpo.nu0": -0.2})
    with pytest.raises(UncalibratedPosteriorError, match="overconfident or biased"):
        load_run_posterior(bad)
    assert not infer(bad, [run / "test.zarr"], n_samples=50, allow_uncalibrated=True).calibrated


def test_cli_infer_on_event_files_of_the_trained_grid(run, tmp_path, capsys):
    import stingray

    data = Path(os.path.dirname(stingray.__file__)) / "tests" / "data"
    # the run's posterior needs the cospectrum channel: event files give the total power only
    code = main(["sbi", "infer", str(run), str(data / "monol_testA.evt"), "--allow-uncalibrated"])
    assert code == 2
    assert "cospectrum" in capsys.readouterr().err

    text = (
        TINY.replace('channels = ["power", "cospectrum"]', 'channels = ["power"]')
        .replace("n_train = 800", "n_train = 300")
        .replace("n_test = 200", "n_test = 100")
        .replace("max_epochs = 4", "max_epochs = 1")
    )
    config = _write(tmp_path / "power_only.toml", text)
    out = tmp_path / "power_run"
    main(["sbi", "train", str(config), "--out", str(out), "--threads", "1", "--no-progress"])
    capsys.readouterr()
    code = main(
        [
            "sbi",
            "infer",
            str(out),
            str(data / "monol_testA.evt"),
            "--allow-uncalibrated",
            "--n-samples",
            "300",
            "--plot",
            str(tmp_path / "corner.png"),
            "--json",
        ]
    )
    printed = json.loads(capsys.readouterr().out)
    assert code in (0, 1)
    assert any("segments" in note for note in printed["notes"])  # 1025 s of GTI, 2 x 4 s used
    assert (tmp_path / "corner.png").stat().st_size > 1000
    assert [r["parameter"] for r in printed["summary"]] == ["qpo.nu0", "qpo.rms", "broad.rms", "rate"]
    assert all(200 <= r["lo95"] <= r["hi95"] <= 1000 for r in printed["summary"] if r["parameter"] == "rate")


def test_sbi_train_takes_a_scenario_or_files_to_match(tmp_path, capsys):
    """`xtml sbi train` needs exactly one of a scenario and --like FILE...; a missing file is named."""
    assert main(["sbi", "train", "--out", str(tmp_path / "a")]) == 2
    assert (
        "give a scenario (CONFIG) or the observation files to match (--like FILE...)"
        in capsys.readouterr().err
    )
    config = tmp_path / "s.toml"
    config.write_text("")
    assert main(["sbi", "train", str(config), "--like", "x.evt", "--out", str(tmp_path / "b")]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["sbi", "train", "--like", str(tmp_path / "missing.evt"), "--out", str(tmp_path / "c")]) == 2
    assert "missing.evt" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
