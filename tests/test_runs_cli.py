"""Recorded runs end to end (issue 9): every command writes a run record; runs are listed, compared,
verified, reproduced, exported to a bundle and imported elsewhere; tampered or unfinished runs never load."""

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import zipfile
from pathlib import Path

import numpy as np
import pytest

from xtml.cli import main
from xtml.data import open_dataset
from xtml.runs import TamperedRunError, dataset_hash, list_runs, load_record
from xtml.runs.bundle import BUNDLE_NAME, UnsafeBundleError, check_bundle, export_run, import_bundle

CONFIGS = Path(__file__).resolve().parents[1] / "src" / "xtml" / "configs"
XTML = [sys.executable, "-m", "xtml.cli"]
SMALL_TRAIN = """
[task]
kind = "detect"
positive = ["qpo"]

[split]
seed = 2

[cv]
n_splits = 3

[models.logistic]

[reference]
test = "lrt"
null = { broad = "zero_lorentzian" }
max_spectra = 12

[evaluation]
n_boot = 50
"""


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def _simulate(out: Path, n: int = 40, seed: int = 5) -> Path:
    args = ["simulate", str(CONFIGS / "default.toml"), "--n", str(n), "--out", str(out)]
    assert main([*args, "--seed", str(seed), "--chunk-size", "20", "--no-progress"]) == 0
    return out


@pytest.fixture(scope="module")
def small_detect(tmp_path_factory):
    """A simulate run and an evaluated logistic-regression training run on it (seconds)."""
    from test_learn_pipeline import DATA

    root = tmp_path_factory.mktemp("small_detect")
    text = DATA.replace("QPO_LOW", "0.05").replace("NOISE_LOW", "0.0005").replace("NOISE_HIGH", "0.001")
    (root / "data.toml").write_text(text)
    sim = root / "sim"
    assert main(["simulate", str(root / "data.toml"), "--n", "240", "--out", str(sim), "--no-progress"]) == 0
    (root / "train.toml").write_text(SMALL_TRAIN)
    run = root / "detect"
    assert (
        main(["train", str(root / "train.toml"), "--data", str(sim), "--out", str(run), "--no-progress"]) == 0
    )
    assert main(["evaluate", str(run), "--no-plots"]) == 0
    return sim, run


def test_simulate_writes_a_run_record_and_refuses_to_overwrite_it(tmp_path, capsys):
    run = _simulate(tmp_path / "sim")
    record = load_record(run)
    assert record.kind == "simulate"
    assert record.status == "complete"
    assert record.seeds == {"dataset": 5}
    assert record.config["n"] == 40
    assert record.config["chunk_size"] == 20
    assert record.command[:2] == ("xtml", "simulate")
    assert record.metrics["dataset_sha256"] == dataset_hash(run / "data.zarr") == record.files["data.zarr/"]
    assert sum(record.metrics["classes"].values()) == 40
    assert set(record.versions) >= {"python", "numpy", "xtml"}
    assert tomllib.loads((run / "config.toml").read_text())["seed"] == 5  # the resolved config, as TOML
    assert open_dataset(run).n == 40  # every --data takes the run folder
    assert main(["simulate", str(CONFIGS / "default.toml"), "--n", "40", "--out", str(run)]) == 2
    assert "already holds a finished simulate run" in capsys.readouterr().err


def test_runs_list_show_compare_and_verify(tmp_path, capsys):
    a, b = _simulate(tmp_path / "a", seed=1), _simulate(tmp_path / "b", seed=2)
    capsys.readouterr()
    assert main(["runs", "list", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("simulate") == 2
    assert str(a) in out
    assert str(b) in out
    assert main(["runs", "show", str(a)]) == 0
    assert "seeds    dataset=1" in capsys.readouterr().out
    assert main(["runs", "compare", str(a), str(b)]) == 0
    table = capsys.readouterr().out
    seed_row = next(line for line in table.splitlines() if line.strip().startswith("seed "))
    assert "1" in seed_row
    assert "2" in seed_row
    assert "metrics" in table
    assert "dataset_sha256" in table
    assert main(["runs", "verify", str(a)]) == 0
    card = a / "data.zarr" / "DATASET_CARD.md"
    card.write_text(card.read_text() + "edited\n")
    assert main(["runs", "verify", str(a)]) == 1
    assert "data.zarr/DATASET_CARD.md" in capsys.readouterr().out


def test_train_and_evaluate_are_recorded_runs_with_a_reference_check(small_detect, capsys):
    sim, run = small_detect
    train = load_record(run)
    assert train.kind == "train"
    assert train.status == "complete"
    assert train.inputs["data"]["sha256"] == dataset_hash(sim / "data.zarr")
    assert "logistic" in train.metrics["models"]
    assert "scope" in train.metrics
    assert {"models/logistic/pipeline.skops", "split.npz", "scope.json", "train.json"} <= set(train.files)
    ev = load_record(run / "evaluation")
    assert ev.kind == "evaluate"
    assert ev.inputs["train_run"]["sha256"] == dataset_hash(run)
    check = next(c for c in ev.checks if c.name == "reference_beaten")
    verdicts = json.loads((run / "evaluation" / "metrics.json").read_text())["comparison"]["verdict"]
    assert check.passed == ("logistic is better than the reference" in verdicts)
    assert ev.status == ("complete" if check.passed else "failed-check")
    capsys.readouterr()
    assert main(["runs", "list", str(run.parent)]) == 0
    listed = capsys.readouterr().out
    assert ("FAILED-CHECK (reference_beaten)" in listed) != check.passed  # failed runs stay, marked


def test_reproduce_a_simulation_bit_for_bit(tmp_path, capsys):
    run = _simulate(tmp_path / "sim", n=40)
    assert main(["reproduce", str(run), "--out", str(tmp_path / "again"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "data data.zarr: identical" in out
    assert "verdict: BIT-FOR-BIT" in out
    assert dataset_hash(tmp_path / "again" / "data.zarr") == dataset_hash(run / "data.zarr")
    assert json.loads((tmp_path / "again" / "reproduction.json").read_text())["verdict"] == "bit-for-bit"


def test_reproduce_a_training_run_with_its_evaluation(small_detect, tmp_path, capsys):
    _sim, run = small_detect
    code = main(["reproduce", str(run), "--out", str(tmp_path / "again"), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "verdict: BIT-FOR-BIT" in out or "verdict: WITHIN TOLERANCE" in out
    result = json.loads((tmp_path / "again" / "reproduction.json").read_text())
    keys = {m[0] for m in result["metrics"]}
    assert any(k.startswith("models.logistic.validation") for k in keys)
    assert any(k.startswith("evaluation.models.logistic.test") for k in keys)
    assert "split.npz" in result["files"]["identical"]
    assert "models/logistic/pipeline.skops" in result["files"]["identical"]  # the same model, the same bytes


def test_reproduce_refuses_changed_input_data(small_detect, tmp_path):
    sim, run = small_detect
    copy_sim, copy_run = tmp_path / "sim", tmp_path / "detect"
    shutil.copytree(sim, copy_sim)
    record = json.loads((run / "record.json").read_text())
    record["inputs"]["data"]["path"] = str(copy_sim / "data.zarr")
    shutil.copytree(run, copy_run)
    (copy_run / "record.json").write_text(json.dumps(record))
    import zarr

    g = zarr.open_group(str(copy_sim / "data.zarr"), mode="r+")
    g["labels"][0] = 1 - g["labels"][0]
    from xtml.runs.reproduce import reproduce_run

    with pytest.raises(ValueError, match="has changed since the run"):
        reproduce_run(copy_run, tmp_path / "again", log=None)


def _predict_script(bundle: Path, x_path: Path, out_path: Path) -> str:
    return (
        "import numpy as np\n"
        "from xtml.analyze import load_run\n"
        f"run = load_run({str(bundle)!r})\n"
        f"x = np.load({str(x_path)!r})\n"
        "p = run.calibrator.transform(run.model.predict_proba(x))\n"
        f"np.save({str(out_path)!r}, p)\n"
    )


def test_export_import_round_trip_in_a_fresh_process(small_detect, tmp_path, capsys):
    _sim, run = small_detect
    bundle = tmp_path / "model.xtml.zip"
    assert main(["export", str(run), "--out", str(bundle)]) == 0
    names = set(zipfile.ZipFile(bundle).namelist())
    assert {
        BUNDLE_NAME,
        "record.json",
        "model_card.md",
        "scope.json",
        "config.toml",
        "DATASET_CARD.md",
    } <= names
    assert {"models/logistic/pipeline.skops", "evaluation/metrics.json"} <= names
    assert not any(n.endswith((".zarr/", ".npz", ".pkl")) or ".zarr/" in n for n in names)  # no data
    scope = json.loads(zipfile.ZipFile(bundle).read("scope.json"))
    assert len(scope["sample"]) > 50
    assert "gate" in scope
    from xtml.analyze import load_run
    from xtml.learn.tasks import load_task
    from xtml.learn.train import load_train_record

    here = load_run(run)
    config = json.loads((run / "config.json").read_text())
    from xtml.learn.config import TrainConfig

    td = load_task(
        open_dataset(load_train_record(run)["dataset"]["path"]), TrainConfig.from_dict(config).task
    )
    x = td.X[:25]
    np.save(tmp_path / "x.npy", x)
    expected = here.calibrator.transform(here.model.predict_proba(x))
    script = _predict_script(bundle, tmp_path / "x.npy", tmp_path / "p.npy")
    subprocess.run([sys.executable, "-c", script], check=True, env=_env(), timeout=300)
    assert np.array_equal(np.load(tmp_path / "p.npy"), expected)  # identical predictions elsewhere
    # import: a run folder that the other commands use like the original
    assert main(["import", str(bundle), "--to", str(tmp_path / "imported")]) == 0
    assert load_record(tmp_path / "imported").run_id == load_record(run).run_id
    assert main(["runs", "verify", str(tmp_path / "imported")]) == 0
    # exporting twice gives the same bytes
    again = export_run(run, tmp_path / "again.xtml.zip")
    assert again.read_bytes() == bundle.read_bytes()


def _rewrite(bundle: Path, out: Path, changes: dict[str, bytes | None], rehash: bool) -> Path:
    """Copy a bundle with members replaced, added or (None) removed; ``rehash``: as an attacker would,
    recompute BUNDLE.json and the run record so that every hash matches again."""
    import hashlib

    with zipfile.ZipFile(bundle) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    for name, data in changes.items():
        if data is None:
            members.pop(name, None)
        else:
            members[name] = data
    if rehash:
        record = json.loads(members["record.json"])
        for name, data in members.items():
            if name in record["files"]:
                record["files"][name] = hashlib.sha256(data).hexdigest()
        members["record.json"] = json.dumps(record).encode()
        manifest = json.loads(members[BUNDLE_NAME])
        manifest["files"] = {n: hashlib.sha256(d).hexdigest() for n, d in members.items() if n != BUNDLE_NAME}
        members[BUNDLE_NAME] = json.dumps(manifest).encode()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out


class _Payload:
    """Unpickling this runs code: it creates a file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def test_tampered_bundles_are_refused_and_run_no_code(small_detect, tmp_path, capsys):
    _sim, run = small_detect
    bundle = export_run(run, tmp_path / "model.xtml.zip")
    weights = "models/logistic/pipeline.skops"
    original = zipfile.ZipFile(bundle).read(weights)
    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 1
    sentinel = tmp_path / "PWNED"
    payload = pickle.dumps(_Payload(sentinel))
    cases = {
        "one byte changed in the weights": (
            _rewrite(bundle, tmp_path / "flip.zip", {weights: bytes(flipped)}, rehash=False),
            "does not match its hash",
        ),
        "a smuggled pickle file": (
            _rewrite(bundle, tmp_path / "smuggled.zip", {"models/logistic/extra.pkl": payload}, rehash=True),
            "file type outside",
        ),
        "pickle data in place of the weights, every hash recomputed": (
            _rewrite(bundle, tmp_path / "swapped.zip", {weights: payload}, rehash=True),
            "pickle data",
        ),
        "pickle data in a JSON file, every hash recomputed": (
            _rewrite(bundle, tmp_path / "json.zip", {"models/logistic/extra.json": payload}, rehash=True),
            "pickle data",
        ),
        "a path leaving the bundle": (
            _rewrite(bundle, tmp_path / "escape.zip", {"../escape.json": b"{}"}, rehash=True),
            "leaves the bundle",
        ),
        "a member the record does not list": (
            _rewrite(bundle, tmp_path / "unlisted.zip", {"models/logistic/more.json": b"{}"}, rehash=False),
            "not listed",
        ),
    }
    good = tmp_path / "good.evt"
    good.write_bytes(b"")  # a file to analyse exists: the run is what is refused
    for what, (path, message) in cases.items():
        with pytest.raises(UnsafeBundleError, match=message):
            check_bundle(path)
        with pytest.raises(UnsafeBundleError):
            import_bundle(path, tmp_path / f"imported-{path.stem}")
        assert not (tmp_path / f"imported-{path.stem}").exists(), what  # nothing unpacked
        code = main(["analyze", str(good), "--run", str(path)])
        assert code == 2, what
        assert message in capsys.readouterr().err, what
    assert not sentinel.exists()  # no code from any bundle ran
    check_bundle(bundle)  # the untouched bundle passes


def test_a_modified_imported_run_is_refused_on_load(small_detect, tmp_path):
    _sim, run = small_detect
    bundle = export_run(run, tmp_path / "model.xtml.zip")
    imported = import_bundle(bundle, tmp_path / "imported")
    extra = imported / "models" / "logistic" / "extra.json"
    doc = json.loads(extra.read_text())
    doc["calibration"] = doc["calibration"]  # same content, different bytes
    extra.write_text(json.dumps(doc) + " ")
    from xtml.analyze import load_run

    with pytest.raises(TamperedRunError, match=r"extra\.json does not match"):
        load_run(imported)
    extra.unlink()
    (imported / "models" / "logistic" / "extra.json").write_text("{}")
    (imported / "models" / "logistic" / "evil.json").write_text("{}")
    with pytest.raises(TamperedRunError):
        load_run(imported)


def test_skops_functions_are_refused_even_from_trusted_modules(tmp_path):
    import skops.io as sio

    from xtml.learn.persist import UnsafeModelError, file_sha256, load_model

    for name, obj in (("numpy_load", np.load), ("exec", exec)):
        folder = tmp_path / name
        folder.mkdir()
        sio.dump({"f": obj}, folder / "pipeline.skops")
        digest = file_sha256(folder / "pipeline.skops")
        (folder / "manifest.json").write_text(json.dumps({"files": {"pipeline.skops": digest}}))
        with pytest.raises(UnsafeModelError, match="allow-list"):
            load_model(folder)


def test_two_runs_started_at_once_never_mix(tmp_path):
    """Two `xtml simulate` processes: into sibling folders both finish; into one folder, one is refused."""
    config = str(CONFIGS / "default.toml")

    def start(out: Path, seed: int) -> subprocess.Popen:
        args = [*XTML, "simulate", config, "--n", "60", "--chunk-size", "20", "--seed", str(seed)]
        return subprocess.Popen(
            [*args, "--out", str(out), "--no-progress"],
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    procs = [
        start(tmp_path / "a", 1),
        start(tmp_path / "b", 2),
        start(tmp_path / "same", 3),
        start(tmp_path / "same", 4),
    ]
    errors = [p.communicate(timeout=300)[1] for p in procs]  # reads and closes the pipes
    results = [(p.returncode, err) for p, err in zip(procs, errors, strict=True)]
    assert results[0][0] == 0, results
    assert results[1][0] == 0, results
    assert sorted(r[0] for r in results[2:]) == [0, 2], results  # one wins; the other is refused
    refused = next(err for code, err in results[2:] if code == 2)
    assert "another run" in refused or "already holds a finished" in refused
    records = {Path(r.path).name: r for r in list_runs(tmp_path)}
    assert set(records) == {"a", "b", "same"}
    for name, r in records.items():
        assert r.status == "complete", name
        assert dataset_hash(tmp_path / name / "data.zarr") == r.files["data.zarr/"], name
    # the shared folder holds exactly one run's data: that of the seed its record names
    seed = records["same"].seeds["dataset"]
    assert dataset_hash(tmp_path / "same" / "data.zarr") == dataset_hash(
        _simulate_library(tmp_path / f"check{seed}", seed)
    )


def _simulate_library(out: Path, seed: int) -> Path:
    from xtml.data import load_config, simulate_dataset

    return simulate_dataset(
        load_config(CONFIGS / "default.toml"), 60, out, seed=seed, chunk_size=20, progress=False
    )


def test_a_killed_run_is_incomplete_and_the_same_command_resumes_it(tmp_path):
    config = str(CONFIGS / "default.toml")
    out = tmp_path / "sim"
    args = [*XTML, "simulate", config, "--n", "400", "--chunk-size", "20", "--seed", "9", "--out", str(out)]
    proc = subprocess.Popen(
        [*args, "--no-progress"], env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    import zarr

    while time.monotonic() < deadline:  # wait for a few committed chunks, then kill -9 (no cleanup runs)
        try:
            done = np.asarray(zarr.open_group(str(out / "data.zarr"), mode="r")["done"][:])
            if done.sum() >= 2:
                break
        except Exception:
            pass
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    record = load_record(out)
    if record.status == "complete":
        pytest.skip("the run finished before it could be killed")
    assert record.status == "incomplete"
    assert "stopped without finishing" in record.error
    with pytest.raises(ValueError, match=r"unfinished chunks|incomplete"):
        open_dataset(out)
    assert subprocess.run([*args, "--no-progress"], env=_env(), capture_output=True).returncode == 0
    assert load_record(out).status == "complete"
    assert dataset_hash(out / "data.zarr") == dataset_hash(
        _simulate_library_n(tmp_path / "ref", 400, 9)
    )  # the resumed run is byte-identical to an uninterrupted one


def _simulate_library_n(out: Path, n: int, seed: int) -> Path:
    from xtml.data import load_config, simulate_dataset

    return simulate_dataset(
        load_config(CONFIGS / "default.toml"), n, out, seed=seed, chunk_size=20, progress=False
    )


def test_a_training_run_that_crashed_never_loads(small_detect, tmp_path, monkeypatch):
    sim, _run = small_detect
    from xtml.learn import train as train_module
    from xtml.learn.config import TrainConfig

    real = train_module._train_one
    calls = []

    def crash_after_first(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("simulated crash")
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "_train_one", crash_after_first)
    raw = tomllib.loads(SMALL_TRAIN)
    raw["models"]["logistic_b"] = {"kind": "logistic"}
    run = tmp_path / "crashed"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_module.train_run(TrainConfig.from_dict(raw), sim, run, log=None)
    record = load_record(run)
    assert record.status == "incomplete"
    assert "simulated crash" in record.error
    assert (run / "models" / "logistic" / "pipeline.skops").is_file()  # a model was written...
    from xtml.analyze import load_run
    from xtml.learn.evaluate import evaluate_run
    from xtml.runs.bundle import export_run as export

    for attempt in (lambda: evaluate_run(run), lambda: export(run, tmp_path / "x.zip")):
        with pytest.raises(ValueError, match="did not finish"):  # ...but nothing of the run is used
            attempt()
    with pytest.raises(ValueError, match="neither a finished"):  # no train.json: not a training run
        load_run(run)


def test_an_sbi_bundle_gives_identical_posterior_draws_in_a_fresh_process(sbi_run, tmp_path):
    bundle = export_run(sbi_run, tmp_path / "posterior.xtml.zip")
    names = set(zipfile.ZipFile(bundle).namelist())
    assert {
        "posterior/weights.safetensors",
        "posterior/posterior.json",
        "calibration.json",
        "scope.json",
    } <= names
    assert not any(".zarr/" in n and not n.endswith(".md") for n in names)  # no simulations
    args = [str(sbi_run / "test.zarr"), "--index", "3", "--n-samples", "500", "--seed", "11"]
    args += ["--allow-uncalibrated", "--json"]

    def infer(run: Path, name: str) -> subprocess.CompletedProcess:  # each in a fresh process
        cmd = [*XTML, "sbi", "infer", str(run), *args, "--samples", str(tmp_path / f"{name}.npz")]
        return subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)

    here, there = infer(sbi_run, "here"), infer(bundle, "there")
    assert here.returncode == there.returncode, (here.stderr, there.stderr)
    with np.load(tmp_path / "here.npz") as a, np.load(tmp_path / "there.npz") as b:
        assert a["samples"].shape == (500, len(a["names"]))
        assert np.array_equal(a["samples"], b["samples"])  # the same draws from the bundle
    assert json.loads(here.stdout)["summary"] == json.loads(there.stdout)["summary"]


def test_a_bundle_from_a_newer_xtml_is_refused_naming_both_versions(small_detect, tmp_path):
    from xtml import __version__

    _sim, run = small_detect
    bundle = export_run(run, tmp_path / "model.xtml.zip")
    manifest = json.loads(zipfile.ZipFile(bundle).read(BUNDLE_NAME))
    manifest |= {"format_version": 99, "xtml_version": "9.9.0"}
    newer = _rewrite(
        bundle, tmp_path / "newer.zip", {BUNDLE_NAME: json.dumps(manifest).encode()}, rehash=False
    )
    with pytest.raises(UnsafeBundleError, match=rf"xtml 9\.9\.0 .*this xtml {__version__}"):
        check_bundle(newer)
