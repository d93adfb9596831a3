"""xtml.parallel: datasets made on a Dask cluster are the bytes of the single-process path, whatever the
number of workers, survive a killed worker, and resume after an interrupt; fits and features over a store are
chunk-aligned and identical with and without a cluster; `xtml analyze` gives the same rows on a cluster."""

from __future__ import annotations

import argparse
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

import xtml

pytest.importorskip("distributed", reason="the dask extra (pip install 'xtml[dask]') is not installed")

from xtml.data import IncompleteDatasetError, load_config, open_dataset, simulate_chunk, simulate_dataset
from xtml.parallel import (
    add_dask_arguments,
    client_from_args,
    dask_client,
    extract_features,
    fit_dataset,
    get_client,
    simulate_dataset_dask,
)
from xtml.runs import dataset_hash

CONFIG = Path(xtml.__file__).parent / "configs" / "nustar_deadtime.toml"  # two modules, 2.5 ms dead time
N, CHUNK = 32, 8


@pytest.fixture(scope="module")
def config():
    return load_config(CONFIG)


@pytest.fixture(scope="module")
def reference(config, seed, tmp_path_factory):
    """The single-process path: ``simulate_dataset`` in this process."""
    return simulate_dataset(
        config, N, tmp_path_factory.mktemp("ref") / "ref.zarr", seed=seed, chunk_size=CHUNK, progress=False
    )


@pytest.fixture(scope="module")
def seed() -> int:
    from conftest import SEED

    return SEED


@pytest.fixture(scope="module")
def client1():
    with dask_client(workers=1) as client:
        yield client


@pytest.fixture(scope="module")
def client2():
    with dask_client(workers=2) as client:
        yield client


def _assert_same_arrays(a: Path, b: Path) -> None:
    ga, gb = open_dataset(a).group, open_dataset(b).group
    assert sorted(ga.array_keys()) == sorted(gb.array_keys())
    for name in ga.array_keys():
        np.testing.assert_array_equal(np.asarray(ga[name][...]), np.asarray(gb[name][...]), err_msg=name)


@pytest.mark.parametrize("n_workers", [1, 2])
def test_a_cluster_writes_the_bytes_of_the_single_process_path(
    config, seed, reference, n_workers, client1, client2, tmp_path
) -> None:
    client = client1 if n_workers == 1 else client2
    assert len(client.scheduler_info()["workers"]) == n_workers
    out = simulate_dataset_dask(
        config, N, tmp_path / "d.zarr", seed=seed, chunk_size=CHUNK, client=client, progress=False
    )
    assert dataset_hash(out) == dataset_hash(reference)
    _assert_same_arrays(out, reference)
    ds = open_dataset(out)
    assert np.all(np.isfinite(ds.array("power")))
    assert np.all(ds.array("power") > 0)
    assert np.array_equal(ds.groups, np.arange(N))  # one spectrum per observation
    assert np.unique(ds.array("mean_rate")).size == N  # every chunk its own random stream


def test_an_interrupted_run_keeps_its_chunks_and_resumes_to_the_same_bytes(
    config, seed, reference, client1, tmp_path
) -> None:
    out = tmp_path / "d.zarr"
    # some chunks written by the single-process path first (a run stopped half-way)
    simulate_dataset(config, N, out, seed=seed, chunk_size=CHUNK, chunks=[0, 3], progress=False)
    committed: list[int] = []

    def interrupt(chunk: int) -> None:
        committed.append(chunk)
        raise KeyboardInterrupt  # as Ctrl-C in the driver while the cluster works

    with pytest.raises(KeyboardInterrupt):
        simulate_dataset_dask(
            config, N, out, seed=seed, chunk_size=CHUNK, client=client1, progress=False, on_chunk=interrupt
        )
    assert len(committed) == 1
    assert committed[0] not in (0, 3)
    with pytest.raises(IncompleteDatasetError) as err:
        open_dataset(out)
    assert err.value.missing
    assert not {0, 3, committed[0]} & set(err.value.missing)
    # the finished chunks are valid as they stand: those of the single-process path
    partial = open_dataset(out, allow_incomplete=True)
    for c in (0, 3, committed[0]):
        expect = simulate_chunk(config, c, CHUNK, seed)
        got = np.asarray(partial.group["power"][c * CHUNK : (c + 1) * CHUNK])
        np.testing.assert_array_equal(got, expect["power"])
    done: list[int] = []
    simulate_dataset_dask(
        config, N, out, seed=seed, chunk_size=CHUNK, client=client1, progress=False, on_chunk=done.append
    )
    assert not {0, 3, committed[0]} & set(done)  # finished chunks are not redone
    assert dataset_hash(out) == dataset_hash(reference)


def test_a_killed_worker_loses_nothing_and_the_run_completes(config, seed, tmp_path) -> None:
    n, chunk = 80, 10  # 8 chunks of ~0.4 s each: a worker is mid-chunk when the first one commits
    expected = simulate_dataset(config, n, tmp_path / "ref.zarr", seed=seed, chunk_size=chunk, progress=False)
    killed: list[int] = []
    with dask_client(workers=2) as client:

        def kill_a_busy_worker(_: int) -> None:
            if killed:
                return
            busy = [w for w, keys in client.processing().items() if keys]
            assert busy, "no worker is computing: the chunks are too fast for this test"
            pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

        out = simulate_dataset_dask(
            config,
            n,
            tmp_path / "d.zarr",
            seed=seed,
            chunk_size=chunk,
            client=client,
            progress=False,
            on_chunk=kill_a_busy_worker,
        )
        pids = set(client.run(os.getpid).values())
    assert len(killed) == 1
    assert killed[0] not in pids  # the worker did die (its nanny started another one)
    ds = open_dataset(out)  # every chunk committed
    assert dataset_hash(out) == dataset_hash(expected)
    _assert_same_arrays(out, expected)
    power = ds.array("power")
    assert np.all(np.isfinite(power))
    assert np.all(power > 0)


def test_the_fits_of_a_store_are_the_same_on_a_cluster_and_recover_the_qpo(
    config, seed, client2, tmp_path
) -> None:
    from xtml.psd import PSDModel
    from xtml.reference import SpectralModel, default_bounds, fit_spectra

    path = simulate_dataset(config, 12, tmp_path / "d.zarr", seed=seed, chunk_size=4, progress=False)
    ds = open_dataset(path)
    model = SpectralModel(
        PSDModel.from_kinds({"broad": "zero_lorentzian", "qpo": "lorentzian"}), noise="free"
    )  # the FAD-corrected power has no dead-time distortion left
    bounds = default_bounds(model, ds.spectra(slice(0, 1), array="power_fad"))
    here = fit_dataset(path, model, bounds, array="power_fad", n_starts=2, seed=1, progress=False)
    there = fit_dataset(
        path, model, bounds, array="power_fad", n_starts=2, seed=1, client=client2, progress=False
    )
    np.testing.assert_array_equal(here.params, there.params)
    np.testing.assert_array_equal(here.cov, there.cov)
    assert here.status == there.status
    # chunk 1 is fit_spectra on rows 4..8 with the chunk's own stream
    rng = np.random.default_rng(np.random.SeedSequence(1, spawn_key=(1,)))
    one = fit_spectra(
        ds.spectra(slice(4, 8), array="power_fad"), model, bounds, n_starts=2, workers=1, rng=rng
    )
    np.testing.assert_array_equal(one.params, there.params[4:8])
    # science: the QPO centroid of the QPO-class spectra is found
    qpo = (ds.array("labels") == ds.class_names.index("qpo")) & (here.success)
    assert qpo.sum() >= 3
    true_nu0 = ds.array("params")[qpo, list(ds.param_names).index("qpo.nu0")]
    fit_nu0 = here.params[qpo, here.index("qpo.nu0")]
    assert np.median(np.abs(fit_nu0 / true_nu0 - 1)) < 0.1


def test_features_of_a_store_are_the_same_on_a_cluster(reference, client2) -> None:
    from xtml.learn.features import SpectralFeatures
    from xtml.learn.inputs import spectra_to_X

    here = extract_features(reference, progress=False)
    there = extract_features(reference, client=client2, progress=False)
    np.testing.assert_array_equal(here, there)
    X, grid = spectra_to_X(open_dataset(reference).spectra())
    whole = SpectralFeatures(grid).fit(X).transform(X)  # all rows at once, in this process
    np.testing.assert_allclose(there, whole, rtol=1e-12, atol=1e-12)
    assert there.shape == (N, whole.shape[1])


def test_analyze_gives_the_same_rows_on_a_cluster(learn_run, client2, tmp_path) -> None:
    from test_analyze import DATA, _qpo_event_file
    from xtml.analyze import analyze_files

    files = [_qpo_event_file(tmp_path / "q.evt", rate=700.0, seed=1)]  # analysed here: sets the mission
    files += [DATA / "chandra_test.fits", tmp_path / "missing.evt", files[0]]  # another mission; none
    here = analyze_files(files, [learn_run], workers=1)
    there = analyze_files(files, [learn_run], client=client2)
    assert [r.to_dict() for r in there] == [r.to_dict() for r in here]
    assert [Path(r.path).name for r in there] == [f.name for f in files]
    assert there[0].error is None
    assert there[0].probability > 0.9
    assert there[1].error is None  # another mission, analysed in the same call (out of scope)
    assert not there[1].in_scope
    assert "missing.evt" in there[2].error
    assert there[3].error is None  # the first file again, now on a worker
    assert there[3].probability == there[0].probability


def test_client_arguments_are_checked() -> None:
    import dask

    with pytest.raises(ValueError, match="workers must be None or an integer >= 1, got 0"):
        get_client(workers=0)
    with pytest.raises(ValueError, match="applies to a local cluster only"):
        get_client("tcp://127.0.0.1:8786", workers=2)
    t = time.perf_counter()
    with (
        dask.config.set({"distributed.comm.timeouts.connect": "1s"}),
        pytest.raises(ValueError, match=r"cannot reach the Dask scheduler at 'tcp://127\.0\.0\.1:9'"),
    ):
        get_client("tcp://127.0.0.1:9")
    assert time.perf_counter() - t < 20


def test_cli_options_give_the_client_asked_for(client1) -> None:
    parser = argparse.ArgumentParser()
    add_dask_arguments(parser)
    args = parser.parse_args([])
    assert (args.scheduler, args.workers) == (None, None)
    with client_from_args(args) as client:
        assert client is None  # the caller's single-process path
    args = parser.parse_args(["--scheduler", client1.scheduler.address])
    with client_from_args(args) as client:
        assert client.scheduler.address == client1.scheduler.address
        assert client.submit(sum, [1, 2]).result() == 3
    assert client1.submit(sum, [2, 3]).result() == 5  # the remote cluster is left running
    with pytest.raises(SystemExit):
        parser.parse_args(["--workers", "0"])


def test_sbi_train_simulates_on_dask_the_same_bytes(client2, tmp_path) -> None:
    """`xtml sbi train --workers N`: the scenario's datasets made on a cluster are the single-process ones."""
    from xtml.sbi.run import _dataset
    from xtml.sbi.scenario import SBIConfig, load_sbi_config

    base = load_sbi_config(Path(__file__).resolve().parents[1] / "configs" / "sbi_demo.toml")
    raw = base.to_dict()
    raw["sbi"].update(n_train=24, n_test=10, n_calibration=30)
    raw["dataset"]["chunk_size"] = 6
    cfg = SBIConfig.from_dict(raw)
    logged: list[str] = []
    for which in ("train", "calibration"):
        here = _dataset(cfg, which, tmp_path / "here", None)
        there = _dataset(cfg, which, tmp_path / "there", logged.append, client2)
        assert dataset_hash(there.path) == dataset_hash(here.path)
        _assert_same_arrays(there.path, here.path)
    assert "on 2 Dask workers" in logged[0]
