"""Run records: reproducible content hashes, one run per folder, honest statuses, tamper detection."""

import json
import math
import os
import subprocess
import sys
import textwrap
import threading
import tomllib
from pathlib import Path

import numpy as np
import pytest
import zarr

from xtml.data import SimulationConfig, simulate_dataset
from xtml.runs import (
    LOCK_NAME,
    RunExistsError,
    RunLockedError,
    RunRecord,
    compare_runs,
    dataset_hash,
    list_runs,
    load_record,
    run_folder,
    show_run,
    to_toml,
    verify_files,
)

TINY = """
[observation]
dt = 0.015625
segment_bins = 128
n_segments = 2
rebin_log = 0.2

[rate]
dist = "loguniform"
low = 200.0
high = 800.0

[classes.qpo]
components = { broad = "zero_lorentzian", qpo = "lorentzian" }

[classes.qpo.priors]
"broad.nu_max" = { dist = "loguniform", low = 0.5, high = 5.0 }
"broad.rms" = { dist = "uniform", low = 0.05, high = 0.15 }
"qpo.nu0" = { dist = "uniform", low = 3.0, high = 20.0 }
"qpo.q" = 8.0
"qpo.rms" = { dist = "uniform", low = 0.05, high = 0.12 }

[dataset]
seed = 11
chunk_size = 8
"""
N = 32  # four chunks of 8


def _run(path, config=None, **kwargs):
    kwargs.setdefault("command", ["xtml", "test", str(path)])
    kwargs.setdefault("seeds", {"seed": 1})
    return run_folder(path, kwargs.pop("kind", "train"), config=config or {"a": 1}, **kwargs)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """The same config and seed simulated twice (once in one go, once chunk by chunk out of order and
    resumed), and once with another seed."""
    config = SimulationConfig.from_dict(tomllib.loads(TINY))
    root = tmp_path_factory.mktemp("data")
    one_go = simulate_dataset(config, N, root / "one_go.zarr", progress=False)
    resumed = root / "resumed.zarr"
    simulate_dataset(config, N, resumed, chunks=[3, 1], progress=False)  # "interrupted" after 2 chunks
    simulate_dataset(config, N, resumed, progress=False)  # the resumed run writes chunks 0 and 2
    other_seed = simulate_dataset(config, N, root / "other_seed.zarr", seed=12, progress=False)
    return {"one_go": one_go, "resumed": resumed, "other_seed": other_seed}


def _set_provenance(store, **changes):
    g = zarr.open_group(str(store), mode="r+")
    meta = dict(g.attrs["xtml"])
    meta["provenance"] = {**meta["provenance"], **changes}
    g.attrs["xtml"] = meta


def test_same_config_and_seed_hash_the_same_whatever_the_chunk_order(datasets):
    a, b = datasets["one_go"], datasets["resumed"]
    # the chunks were written at different times and in another order; only the bytes count
    assert (a / "power" / "c" / "3" / "0").read_bytes() == (b / "power" / "c" / "3" / "0").read_bytes()
    assert dataset_hash(a) == dataset_hash(b)
    # a second pass over a complete store rewrites nothing and changes nothing
    before = dataset_hash(b)
    simulate_dataset(SimulationConfig.from_dict(tomllib.loads(TINY)), N, b, progress=False)
    assert dataset_hash(b) == before


def test_provenance_is_volatile_but_data_and_config_are_not(datasets, tmp_path):
    import shutil

    a = datasets["one_go"]
    copy = tmp_path / "copy.zarr"
    shutil.copytree(a, copy)
    _set_provenance(copy, created_utc="1999-01-01T00:00:00+00:00", git_revision="deadbeef+dirty")
    assert (copy / "zarr.json").read_bytes() != (a / "zarr.json").read_bytes()
    assert dataset_hash(copy) == dataset_hash(a)
    # a non-volatile attribute is content
    g = zarr.open_group(str(copy), mode="r+")
    g.attrs["xtml"] = {**dict(g.attrs["xtml"]), "seed": 99}
    assert dataset_hash(copy) != dataset_hash(a)
    # and so is every stored byte
    shutil.rmtree(copy)
    shutil.copytree(a, copy)
    chunk = copy / "params" / "c" / "1" / "0"
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 1
    chunk.write_bytes(bytes(data))
    assert dataset_hash(copy) != dataset_hash(a)
    # files that are not Zarr's (desktop litter, a run record next to the arrays) are not data
    shutil.copytree(a, tmp_path / "litter.zarr")
    (tmp_path / "litter.zarr" / ".DS_Store").write_bytes(b"x")
    (tmp_path / "litter.zarr" / "notes.txt").write_text("mine")
    assert dataset_hash(tmp_path / "litter.zarr") == dataset_hash(a)


def test_different_seed_hashes_differently(datasets):
    assert dataset_hash(datasets["one_go"]) != dataset_hash(datasets["other_seed"])


def test_record_round_trip_and_config_toml(tmp_path):
    config = {
        "model": {"lr": 1e-3, "layers": [32, 16], "name": 'q"uo\\te\tü', "empty": {}},
        "priors": {"qpo.nu0": {"low": 3.0, "high": float("inf")}},
        "models": [{"kind": "cnn", "params": {"depth": 2}}, {"kind": "rf"}],
        "flags": [True, False],
        "big": 2**62,
        "np": np.float32(0.5),
        "skipped": None,
    }
    with _run(tmp_path / "r", config, seeds={"split": np.int64(7)}) as run:
        run.add_metrics({"auc": np.float64(0.91), "per_class": np.array([0.5, 0.25])})
    record = load_record(tmp_path / "r")
    assert RunRecord.from_json(record.to_json()) == record
    assert record.seeds == {"split": 7}
    assert record.metrics == {"auc": 0.91, "per_class": [0.5, 0.25]}
    assert record.config["np"] == 0.5
    back = tomllib.loads((tmp_path / "r" / "config.toml").read_text())
    want = {k: v for k, v in record.config.items() if k != "skipped"}
    assert back == want
    with pytest.raises(ValueError, match="None cannot be written"):
        to_toml({"a": [1, None]})
    data = json.loads((tmp_path / "r" / "record.json").read_text())
    data["format_version"] = 99
    with pytest.raises(ValueError, match="newer"):
        RunRecord.from_dict(data)


def test_finished_run_records_files_inputs_and_versions(datasets, tmp_path):
    with _run(tmp_path / "r", inputs={"data": datasets["one_go"]}) as run:
        (run.path / "models" / "m").mkdir(parents=True)
        (run.path / "models" / "m" / "weights.bin").write_bytes(bytes(range(256)))
        assert load_record(run.path).status == "running"
    record = load_record(tmp_path / "r")
    assert record.status == "complete"
    assert record.finished >= record.created
    assert set(record.files) == {"config.toml", "models/m/weights.bin"}
    assert record.inputs["data"]["sha256"] == dataset_hash(datasets["one_go"])
    assert record.versions["numpy"] == np.__version__
    assert not (tmp_path / "r" / LOCK_NAME).exists()
    assert not (tmp_path / "r" / "record.json.tmp").exists()
    # the hash of a finished run folder is that of the files its record lists
    (tmp_path / "r" / "later.txt").write_text("added by another command")
    first = dataset_hash(tmp_path / "r")
    (tmp_path / "r" / "later.txt").write_text("changed")
    assert dataset_hash(tmp_path / "r") == first


def test_two_threads_never_share_a_folder(tmp_path):
    path = tmp_path / "shared"
    n = 6
    barrier = threading.Barrier(n)
    refused = threading.Semaphore(0)
    outcome: dict[int, str] = {}
    messages: list[str] = []

    def worker(i: int) -> None:
        barrier.wait()  # all start at once
        try:
            with _run(path, {"who": i}, seeds={"seed": i}) as run:
                (run.path / f"from_{i}.txt").write_text(str(i))
                # hold the folder until every other run has been refused (a second winner would wait
                # here for ever, hence the timeout)
                for _ in range(n - 1):
                    if not refused.acquire(timeout=30):
                        raise TimeoutError("another run was not refused")
                run.add_metrics({"who": i})
            outcome[i] = "ran"
        except RunLockedError as err:
            outcome[i] = "locked"
            messages.append(str(err))
            refused.release()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcome.values()) == ["locked"] * (n - 1) + ["ran"]
    assert all(str(path) in m and "in use by another run" in m for m in messages)
    (w,) = (i for i, o in outcome.items() if o == "ran")
    assert sorted(p.name for p in path.iterdir()) == ["config.toml", f"from_{w}.txt", "record.json"]
    record = load_record(path)
    assert record.config == {"who": w}
    assert record.metrics == {"who": w}
    assert record.status == "complete"
    assert verify_files(path) == []


HOLDER = textwrap.dedent(
    """
    import sys, time
    from xtml.runs import run_folder
    with run_folder(sys.argv[1], "sbi", command=sys.argv, config={"a": 1}, seeds={"s": 1}) as run:
        (run.path / "train.txt").write_text("first half")
        print("ready", flush=True)
        time.sleep(120)
    """
)


def test_second_process_refused_and_killed_run_is_incomplete_then_resumed(tmp_path):
    path = tmp_path / "run"
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True, env=os.environ
    )
    try:
        assert child.stdout.readline().strip() == "ready"
        with pytest.raises(RunLockedError, match=f"pid {child.pid}") as err, _run(path, kind="sbi"):
            pytest.fail("entered a folder another process is writing")
        assert str(path) in str(err.value)
        assert load_record(path).status == "running"
    finally:
        child.kill()  # SIGKILL: no chance to write anything
        child.wait()
        child.stdout.close()
    assert (path / LOCK_NAME).exists()  # left behind by the killed process
    killed = load_record(path)
    assert killed.status == "incomplete"
    assert "killed" in killed.error
    assert [r.status for r in list_runs(tmp_path)] == ["incomplete"]
    # the stale lock does not block the folder; the unfinished run is resumed with its files
    with pytest.raises(ValueError, match="another configuration"), _run(path, {"a": 2}, kind="sbi"):
        pass
    with _run(path, kind="sbi") as run:
        assert (run.path / "train.txt").read_text() == "first half"
    assert load_record(path).status == "complete"


@pytest.mark.parametrize(
    ("exc", "text"),
    [(ValueError("loss is NaN"), "ValueError: loss is NaN"), (KeyboardInterrupt(), "KeyboardInterrupt")],
)
def test_exception_leaves_an_incomplete_record(tmp_path, exc, text):
    def failing_run() -> None:
        with _run(tmp_path / "r") as run:
            run.add_metrics({"epochs_done": 3})
            (run.path / "partial.bin").write_bytes(b"\0")
            raise exc

    with pytest.raises(type(exc)):
        failing_run()
    record = load_record(tmp_path / "r")
    assert record.status == "incomplete"
    assert record.error == text
    assert record.metrics == {"epochs_done": 3}  # what was recorded before the failure survives
    assert record.finished is not None
    assert record.files == {}
    assert not (tmp_path / "r" / LOCK_NAME).exists()
    assert not (tmp_path / "r" / "record.json.tmp").exists()
    assert "INCOMPLETE: " + text in show_run(tmp_path / "r")
    with pytest.raises(ValueError, match="did not finish"):
        verify_files(tmp_path / "r")


def test_finished_run_is_refused_unless_overwritten(tmp_path):
    path = tmp_path / "r"
    with _run(path) as run:
        (run.path / "old.txt").write_text("old")
    with pytest.raises(RunExistsError, match="already holds a finished train run"), _run(path):
        pass
    with _run(path, overwrite=True) as run:
        assert not (run.path / "old.txt").exists()
    assert load_record(path).status == "complete"
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(ValueError, match="holds no run record"), _run(tmp_path / "mine", overwrite=True):
        pass
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"


def _flip_byte(path: Path) -> bytes:
    original = path.read_bytes()
    data = bytearray(original)
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    return original


def test_verify_files_catches_one_changed_byte(tmp_path):
    path = tmp_path / "r"
    with _run(path) as run:
        (run.path / "models" / "m").mkdir(parents=True)
        (run.path / "models" / "m" / "weights.bin").write_bytes(np.arange(1000.0).tobytes())
        (run.path / "summary.txt").write_text("fine\n")
        g = zarr.open_group(str(run.path / "test.zarr"), mode="w")
        g.create_array("x", shape=(100,), chunks=(10,), dtype="float64")[:] = np.arange(100.0)
    record = load_record(path)
    assert "test.zarr/" in record.files
    assert "summary.txt" in record.files
    assert verify_files(path) == []
    weights = path / "models" / "m" / "weights.bin"
    original = _flip_byte(weights)
    assert verify_files(path) == ["models/m/weights.bin"]
    weights.write_bytes(original)
    original = _flip_byte(path / "test.zarr" / "x" / "c" / "4")
    assert verify_files(path) == ["test.zarr/"]
    (path / "test.zarr" / "x" / "c" / "4").write_bytes(original)
    (path / "summary.txt").unlink()
    (path / "models" / "m" / "extra.py").write_text("import os")  # slipped in next to the weights
    (path / "notes.txt").write_text("ignored: not a model folder")
    assert verify_files(path) == ["models/m/extra.py", "summary.txt"]


def test_list_runs_marks_every_status(tmp_path):
    with _run(tmp_path / "a", inputs={}) as run:
        run.add_check("calibration", True, "coverage 0.68 at 68 %")
    with _run(tmp_path / "b") as run:
        run.add_check("beats reference", False, "TPR 0.41 vs LRT 0.55 at FPR 1 %")
    with pytest.raises(RuntimeError), _run(tmp_path / "nested" / "c"):
        raise RuntimeError("out of memory")
    with _run(tmp_path / "a" / "evaluate", kind="evaluate", inputs={"run": tmp_path / "a"}):
        pass
    (tmp_path / "legacy").mkdir()
    (tmp_path / "legacy" / "record.json").write_text('{"kind": "train", "models": {}}')
    listed = {r.path.relative_to(tmp_path).as_posix(): r.status for r in list_runs(tmp_path)}
    assert listed == {
        "a": "complete",
        "b": "failed-check",
        "nested/c": "incomplete",
        "a/evaluate": "complete",
    }
    # the evaluation nested in run a is its own run: a's files are unchanged
    assert verify_files(tmp_path / "a") == []
    text = show_run(tmp_path / "b")
    assert "FAILED CHECK: beats reference" in text
    assert "[FAIL] beats reference: TPR 0.41" in text
    assert "xtml test" in text
    assert "config.toml" in text


def test_compare_runs_shows_exactly_the_differing_keys(tmp_path):
    base = {"model": {"lr": 0.1, "depth": 3, "layers": [8, 8]}, "split": {"seed": 1}, "task": "detect"}
    other = {"model": {"lr": 0.01, "depth": 3, "layers": [8, 16], "dropout": 0.2}, "split": {"seed": 1}}
    other["task"] = "detect"
    for name, config, auc in (("x", base, 0.9), ("y", other, 0.875)):
        with _run(tmp_path / name, config) as run:
            run.add_metrics({"roc": {"auc": auc}, "n_test": 100})
    table = compare_runs([tmp_path / "x", tmp_path / "y"])
    lines = table.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("config"))
    assert lines[start] == "config: 3 differ"
    rows = []
    for line in lines[start + 1 :]:
        if not line.startswith("  "):
            break
        rows.append(line.split())
    assert [r[0] for r in rows] == ["model.dropout", "model.layers", "model.lr"]
    assert rows[0][1:] == ["-", "0.2"]
    assert rows[2][1:] == ["0.1", "0.01"]
    assert "seeds: identical" in lines
    auc = next(line.split() for line in lines if line.strip().startswith("roc.auc"))
    assert auc == ["roc.auc", "0.9", "0.875"]
    assert math.isclose(float(auc[2]), 0.875)
