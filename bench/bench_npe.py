"""Neural posterior estimation (``xtml.sbi.npe``): sampling speed and training throughput.

The model is of realistic size: a neural spline flow (NSF, the defaults of ``NPEConfig``: 5 autoregressive
transforms, 64 x 64 hidden units, 8 bins) conditioned on a 1-D CNN embedding (32 summaries) of 150
log-power bins, for 5 parameters. The
data: log-power spectra on 150 frequencies (0.125-18.75 Hz), red noise ``A f^-alpha`` plus the Leahy white
level 2 plus a Lorentzian QPO (nu0, Q, peak ratio), times Gamma(m, 1/m) noise with m = 16; the five
parameters (log A, alpha, nu0, Q, peak ratio) are drawn from a box prior (log-uniform where marked).

Anchors (issue 6 targets), printed as ratios measured / target (< 1 meets the target):
- 10,000 posterior samples for one observation in under 50 ms on the CPU, for K = 1 and K = 5 ensemble
  members (an ensemble draws n/K samples from each member, so K costs little more than 1); the same NSF
  with coupling transforms (``passes=2``: 2 sequential passes per transform instead of 5) and an affine
  MAF of the same size are timed for comparison. Each posterior is timed twice in the same run, the calls
  interleaved: through zuko's ``sample`` (``fast_sampling = False``) and through the compiled sampler of
  :mod:`xtml.sbi.fastflow` (the default), with the speed-up fast / zuko. zuko runs on the posterior's
  threads (``--threads``; default: all CPUs), the fast sampler on 1 thread (its default), and the NSF's
  fast sampler also on 2 threads for comparison;
- training on 100,000 simulations of 150 features in under 15 minutes: one epoch is timed and the full
  training extrapolated with ``EPOCHS`` epochs (early stopping with patience 10 typically stops after
  30-60 epochs).

Issue 19's budgets, on the simulations of the shipped scenarios (``--scenarios``):

- scenario (b) (``configs/sbi_nustar.toml``): simulating ``--n-sim`` observations (default 2,000; 500 with
  ``--quick``), scaled to 100,000, against the 30-minute target, in one process and on 2 Dask workers
  (``xtml sbi train --workers 2``); one training epoch of the scenario's
  posterior (its ``[npe]`` table) on them, scaled to 100,000 simulations and ``EPOCHS`` epochs, against the
  15-minute target (the measured full training is in ``evals/eval_sbi.py nustar``'s record);
- the anchor, scenario (a) (``configs/sbi_ideal.toml``): xtml's NPE (the scenario's ``[npe]``, recalibrated
  on the scenario's calibration simulations) and sbi 0.27's ``NPE`` (its default NSF and training
  schedule, with an MLP embedding of xtml's size, ``FCEmbedding`` 141 -> 128 -> 128 -> 32) trained on the
  same ``--n-anchor`` simulations and the same input rows (log-power bins and log count rate); printed side
  by side: training wall time (ratio sbi / xtml) and the C2ST of each against the exact-likelihood MCMC
  (emcee) on the first ``--n-obs`` test observations, with the ratio of posterior standard deviations.
  Simulations come from ``--data`` (a run folder of ``xtml sbi train configs/sbi_ideal.toml`` with
  ``train.zarr``, ``calibration.zarr``, ``test.zarr``; its first rows are used) or are simulated into
  ``bench/out/npe_anchor`` (resumable). Needs ``pip install "sbi>=0.27,<0.28"`` (the ``sbi-check``
  extra); skipped with a message without it.

Wall and CPU times are both printed: the machines are shared (the load average is printed), and the CPU
time of the process is the steadier measure of the work. ``--quick`` times the epoch on 10,000 simulations
(scaled to 100,000) and repeats the sampling fewer times; ``--threads`` sets the torch threads;
``--sampling-only`` skips the training throughput.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from _timer import best_of
from xtml.psd import JointPrior, LogUniform, Uniform
from xtml.sbi import posterior as posterior_module
from xtml.sbi.npe import NPEConfig, train_npe
from xtml.sbi.transforms import BoxTransform

ROOT = Path(__file__).resolve().parents[1]
SIM_TARGET_S = 30 * 60.0

N_TRAIN, N_BINS, DF, M = 100_000, 150, 0.125, 16
N_SAMPLES = 10_000
SAMPLE_TARGET_S, TRAIN_TARGET_S = 0.050, 15 * 60.0
EPOCHS = 50  # assumed epochs of a full training (extrapolation)
CHUNK = 10_000
PAUSE_S = 0.3  # pause before each timed sampling call
PRIOR = JointPrior(
    {
        "red.amp": LogUniform(0.3, 30.0),
        "red.alpha": Uniform(1.0, 2.0),
        "qpo.nu0": LogUniform(0.5, 15.0),
        "qpo.q": Uniform(3.0, 12.0),
        "qpo.ratio": LogUniform(0.1, 3.0),
    }
)
BOX = BoxTransform.from_prior(PRIOR)
MODEL = NPEConfig(
    flow="nsf", transforms=5, hidden_features=(64, 64), bins=8, embedding="cnn", embedding_dim=32
)


def simulate(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Parameters (n, 5) from the prior and log-power spectra (n, N_BINS) float32."""
    rng = np.random.default_rng(seed)
    theta = PRIOR.sample(n, rng)
    f = DF * np.arange(1, N_BINS + 1)
    x = np.empty((n, N_BINS), dtype=np.float32)
    for start in range(0, n, CHUNK):
        amp, alpha, nu0, q, ratio = (c[:, None] for c in theta[start : start + CHUNK].T)
        continuum = amp * f**-alpha + 2.0
        half = nu0 / q / 2
        qpo = ratio * (amp * nu0**-alpha + 2.0) * half**2 / ((f - nu0) ** 2 + half**2)
        noise = rng.gamma(M, 1.0 / M, continuum.shape)
        x[start : start + CHUNK] = np.log((continuum + qpo) * noise)
    return theta, x


def _cpu_s() -> float:
    return time.process_time()


def _timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """Best wall time and best CPU time of ``repeat`` calls."""
    cpu = []

    def run() -> None:
        c = _cpu_s()
        fn()
        cpu.append(_cpu_s() - c)

    wall, _ = best_of(run, repeat=repeat)
    return wall, min(cpu)


def _interleaved(fns: dict[str, Callable[[], Any]], repeat: int) -> dict[str, tuple[float, float]]:
    """Best wall and CPU time of each function; the calls alternate, so load changes hit all alike. A
    pause before each call lets the OpenMP threads of a multi-threaded call go to sleep: still spinning,
    they slow the next call down (by 1.5-2 times, measured) and add to its CPU time."""
    wall = dict.fromkeys(fns, float("inf"))
    cpu = dict.fromkeys(fns, float("inf"))
    for _ in range(repeat):
        for key, fn in fns.items():
            time.sleep(PAUSE_S)
            c, t = _cpu_s(), time.perf_counter()
            fn()
            wall[key] = min(wall[key], time.perf_counter() - t)
            cpu[key] = min(cpu[key], _cpu_s() - c)
    return {key: (wall[key], cpu[key]) for key in fns}


def _sample(post: Any, x_obs: np.ndarray, fast: bool, fast_threads: int = 1) -> None:
    post.fast_sampling = fast
    previous, posterior_module.FAST_THREADS = posterior_module.FAST_THREADS, fast_threads
    try:
        post.sample(x_obs, N_SAMPLES, rng=0)
    finally:
        posterior_module.FAST_THREADS = previous
        post.fast_sampling = True


def sampling(threads: int | None, quick: bool) -> dict[str, float]:
    theta, x = simulate(2_000, seed=1)
    x_obs = x[:1]
    out: dict[str, float] = {}
    print(
        f"{N_SAMPLES} posterior samples for one observation ({N_BINS} log-power bins, 5 parameters); "
        "best wall / cpu ms, ratio to the 50 ms target, speed-up fast / zuko"
    )
    for key, label, config in (
        ("nsf_k1", "NSF + CNN, K=1", MODEL),
        ("nsf_k5", "NSF + CNN, K=5", NPEConfig(**{**MODEL.to_dict(), "n_ensemble": 5})),
        ("nsf_coupling_k1", "NSF coupling, K=1", NPEConfig(**{**MODEL.to_dict(), "passes": 2})),
        ("maf_k1", "MAF + CNN, K=1", NPEConfig(**{**MODEL.to_dict(), "flow": "maf"})),
    ):
        # a one-epoch training: the weights do not change the cost of sampling
        post = train_npe(theta, x, BOX, NPEConfig(**{**config.to_dict(), "max_epochs": 1}), n_threads=threads)
        fns = {
            "zuko": lambda p=post: _sample(p, x_obs, fast=False),
            "fast": lambda p=post: _sample(p, x_obs, fast=True),
        }
        if key == "nsf_k1":
            fns["fast_2threads"] = lambda p=post: _sample(p, x_obs, fast=True, fast_threads=2)
        for fn in fns.values():  # warm-up (and the compilation of the fast sampler, cached afterwards)
            fn()
        times = _interleaved(fns, 3 if quick else 7)
        for name, (wall, cpu) in times.items():
            out[f"{key}_{name}_wall_s"], out[f"{key}_{name}_cpu_s"] = wall, cpu
        (zw, zc), (fw, fc) = times["zuko"], times["fast"]
        print(
            f"  {label:<17} zuko {zw * 1e3:6.1f} / {zc * 1e3:6.1f}   fast {fw * 1e3:6.1f} / {fc * 1e3:6.1f}"
            f"   / 50 ms: zuko {zw / SAMPLE_TARGET_S:5.2f} / {zc / SAMPLE_TARGET_S:5.2f}"
            f"  fast {fw / SAMPLE_TARGET_S:5.2f} / {fc / SAMPLE_TARGET_S:5.2f}"
            f"   speed-up {zw / fw:4.1f} / {zc / fc:4.1f}"
        )
        if "fast_2threads" in times:
            tw, tc = times["fast_2threads"]
            print(
                f"  {'  fast, 2 threads':<17} {tw * 1e3:6.1f} / {tc * 1e3:6.1f} ms   / 50 ms: "
                f"{tw / SAMPLE_TARGET_S:5.2f} / {tc / SAMPLE_TARGET_S:5.2f}   "
                f"2 threads / 1: {tw / fw:4.2f} (wall)"
            )
    return out


def training(threads: int | None, quick: bool) -> dict[str, float]:
    n = 10_000 if quick else N_TRAIN
    theta, x = simulate(n, seed=2)
    scale = N_TRAIN / n
    print(f"training throughput, {n:,} simulations of {N_BINS} features (scaled to {N_TRAIN:,})")
    out: dict[str, float] = {"n_measured": n}
    for label, config in (
        ("NSF + CNN", MODEL),
        ("NSF + MLP", NPEConfig(**{**MODEL.to_dict(), "embedding": "mlp"})),
    ):
        one = NPEConfig(**{**config.to_dict(), "max_epochs": 1})
        train_npe(theta[:1000], x[:1000], BOX, one, n_threads=threads)  # warm-up
        wall, cpu = _timed(lambda c=one: train_npe(theta, x, BOX, c, n_threads=threads), 1)
        key = label.replace(" + ", "_").lower()
        epoch_wall, epoch_cpu = wall * scale, cpu * scale
        full = epoch_wall * EPOCHS
        out[f"{key}_epoch_wall_s"], out[f"{key}_epoch_cpu_s"], out[f"{key}_full_s"] = (
            epoch_wall,
            epoch_cpu,
            full,
        )
        print(
            f"  {label:<10} one epoch {epoch_wall:7.1f} s (cpu {epoch_cpu:6.1f} s); x {EPOCHS} epochs "
            f"{full / 60:6.1f} min   / 15 min target: {full / TRAIN_TARGET_S:5.2f}"
        )
    return out


def _scenario(name: str, **sbi: Any) -> Any:
    from xtml.sbi.scenario import SBIConfig, load_sbi_config

    cfg = load_sbi_config(ROOT / "configs" / f"sbi_{name}.toml")
    raw = cfg.to_dict()
    raw["sbi"].update(sbi)
    return SBIConfig.from_dict(raw, source=cfg.source)


def _arrays(cfg: Any, ds: Any, n: int | None = None) -> tuple[np.ndarray, np.ndarray, Any]:
    """(theta, x, input spec) of the first ``n`` rows of the scenario's class in ``ds``."""
    from xtml.sbi.inputs import InputSpec
    from xtml.sbi.run import scenario_arrays

    spec = InputSpec.from_dataset(ds, cfg.sbi.channels, cfg.sbi.scalars)
    return (*scenario_arrays(cfg, ds, spec, n), spec)


def _npe_config(cfg: Any, spec: Any, **over: Any) -> NPEConfig:
    return NPEConfig.from_dict(
        {**dict(cfg.npe), "n_channels": len(spec.channels), "n_scalars": len(spec.scalars), **over}
    )


def budget(threads: int | None, quick: bool, n_sim: int | None) -> dict[str, float]:
    """Scenario (b): simulation and training throughput, scaled to 100,000 simulations."""
    from xtml.data import open_dataset, simulate_dataset
    from xtml.sbi.run import scenario_prior

    n = n_sim or (500 if quick else 2_000)
    cfg = _scenario("nustar")
    print(f"scenario (b) ({Path(cfg.source).name}): {n:,} simulations, scaled to {N_TRAIN:,}")
    from xtml.parallel import dask_client, simulate_dataset_dask

    with tempfile.TemporaryDirectory() as tmp:
        simulate_dataset(cfg.simulation, 10, Path(tmp) / "warm.zarr", seed=0, progress=False)  # compile
        t = time.perf_counter()
        simulate_dataset(cfg.simulation, n, Path(tmp) / "b.zarr", seed=1, progress=False)
        sim_s = (time.perf_counter() - t) * N_TRAIN / n
        theta, x, spec = _arrays(cfg, open_dataset(Path(tmp) / "b.zarr"))
        with dask_client(workers=2) as client:  # `xtml sbi train --workers 2`; cluster start not timed
            simulate_dataset_dask(cfg.simulation, 10, Path(tmp) / "w.zarr", client=client, progress=False)
            t = time.perf_counter()
            simulate_dataset_dask(
                cfg.simulation, n, Path(tmp) / "d.zarr", client=client, seed=1, progress=False
            )
            dask_s = (time.perf_counter() - t) * N_TRAIN / n
    for label, secs in (("one process", sim_s), ("2 Dask workers", dask_s)):
        print(
            f"  simulate, {label:<14} {secs / 60:6.1f} min for {N_TRAIN:,}   "
            f"/ 30 min target: {secs / SIM_TARGET_S:5.2f}"
        )
    box = BoxTransform.from_prior(scenario_prior(cfg), cfg.sbi.parameters)
    one = _npe_config(cfg, spec, max_epochs=1)
    train_npe(theta[:500], x[:500], box, one, n_threads=threads)  # warm-up
    wall, cpu = _timed(lambda: train_npe(theta, x, box, one, n_threads=threads), 1)
    epoch = wall * N_TRAIN / theta.shape[0]
    print(
        f"  one epoch     {epoch:6.1f} s for {N_TRAIN:,} (cpu {cpu * N_TRAIN / theta.shape[0]:6.1f} s); x "
        f"{EPOCHS} epochs {epoch * EPOCHS / 60:6.1f} min   "
        f"/ 15 min target: {epoch * EPOCHS / TRAIN_TARGET_S:5.2f}"
    )
    return {
        "n_sim": n,
        "simulate_100k_s": sim_s,
        "simulate_100k_dask2_s": dask_s,
        "epoch_100k_s": epoch,
        "train_100k_s": epoch * EPOCHS,
    }


def _anchor_data(cfg: Any, data: Path | None, n_train: int, n_obs: int) -> tuple[Any, Any, Any]:
    from xtml.data import open_dataset
    from xtml.sbi.run import _dataset

    if data is not None:
        return tuple(open_dataset(data / f"{w}.zarr") for w in ("train", "calibration", "test"))
    out = Path(__file__).parent / "out" / "npe_anchor"
    out.mkdir(parents=True, exist_ok=True)
    sized = _scenario(
        "ideal", n_train=n_train, n_calibration=min(cfg.sbi.n_calibration, 2_000), n_test=max(n_obs, 10)
    )
    return tuple(_dataset(sized, w, out, print) for w in ("train", "calibration", "test"))


def _sbi_posterior(
    theta: np.ndarray, x: np.ndarray, box: BoxTransform, threads: int | None
) -> tuple[Any, int]:
    """sbi 0.27's NPE, its default NSF and schedule, with an MLP embedding of xtml's size. The parameters
    are given in the box's coordinates before the logit (log where the prior is log-uniform), so that sbi's
    ``BoxUniform`` is the prior."""
    import torch
    from sbi.inference import NPE
    from sbi.neural_nets import posterior_nn
    from sbi.neural_nets.embedding_nets import FCEmbedding
    from sbi.utils import BoxUniform
    from torch.utils.tensorboard import SummaryWriter

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    log = np.asarray(box.log, dtype=bool)
    low, high = np.asarray(box.low, float).copy(), np.asarray(box.high, float).copy()
    low[log], high[log] = np.log(low[log]), np.log(high[log])
    t = np.where(log, np.log(np.where(log, theta, 1.0)), theta)
    prior = BoxUniform(torch.tensor(low, dtype=torch.float32), torch.tensor(high, dtype=torch.float32))
    net = posterior_nn("nsf", embedding_net=FCEmbedding(x.shape[1], 32, num_layers=3, num_hiddens=128))
    with tempfile.TemporaryDirectory() as logs, warnings.catch_warnings():
        warnings.filterwarnings("ignore", "summary_writer is deprecated", FutureWarning)
        inference = NPE(
            prior=prior,
            density_estimator=net,
            show_progress_bars=False,
            summary_writer=SummaryWriter(log_dir=logs),
        )
        inference.append_simulations(
            torch.as_tensor(t, dtype=torch.float32), torch.as_tensor(x, dtype=torch.float32)
        )
        estimator = inference.train()
    return inference.build_posterior(estimator), int(inference.summary["epochs_trained"][-1])


def _sbi_sample(posterior: Any, x_row: np.ndarray, n: int, box: BoxTransform) -> np.ndarray:
    import torch

    s = posterior.sample((n,), x=torch.as_tensor(x_row, dtype=torch.float32), show_progress_bars=False)
    s = s.numpy().astype(np.float64)
    log = np.asarray(box.log, dtype=bool)
    s[:, log] = np.exp(s[:, log])
    return s


def anchor(threads: int | None, n_train: int, n_obs: int, data: Path | None) -> dict[str, Any]:
    """Scenario (a): xtml's NPE and sbi 0.27's on the same simulations, against the exact MCMC."""
    try:
        import sbi
    except ImportError:
        print('  sbi is not installed: pip install "sbi>=0.27,<0.28" (the sbi-check extra); anchor skipped')
        return {"skipped": "sbi not installed"}
    from xtml.reference import SpectralModel
    from xtml.sbi.comparisons import compare_with_reference, exact_posterior_draws
    from xtml.sbi.run import scenario_prior

    cfg = _scenario("ideal")
    train_ds, cal_ds, test_ds = _anchor_data(cfg, data, n_train, n_obs)
    theta, x, spec = _arrays(cfg, train_ds, n_train)
    theta_cal, x_cal, _ = _arrays(cfg, cal_ds)
    theta_test, x_test, _ = _arrays(cfg, test_ds, n_obs)
    prior = scenario_prior(cfg)
    box = BoxTransform.from_prior(prior, cfg.sbi.parameters)
    print(
        f"anchor, scenario (a) ({Path(cfg.source).name}): {theta.shape[0]:,} simulations of "
        f"{x.shape[1]} inputs, "
        f"sbi {sbi.__version__}; C2ST against MCMC on {theta_test.shape[0]} test observations"
    )
    t = time.perf_counter()
    ours = train_npe(theta, x, box, _npe_config(cfg, spec), n_threads=threads)
    xtml_s = time.perf_counter() - t
    recal = ours.recalibrate(theta_cal, x_cal)
    t = time.perf_counter()
    theirs, sbi_epochs = _sbi_posterior(theta, x, box, threads)
    sbi_s = time.perf_counter() - t
    xtml_epochs = int(ours.history[0]["n_epochs"])
    print(
        f"  training      xtml {xtml_s / 60:6.1f} min ({xtml_epochs} epochs)   sbi {sbi_s / 60:6.1f} min "
        f"({sbi_epochs} epochs)   sbi / xtml {sbi_s / xtml_s:5.2f}"
    )
    sim = cfg.simulation
    model = SpectralModel(sim.classes[sim.class_names.index(cfg.sbi.class_name)].model, noise="poisson")
    rows = []
    for i in range(theta_test.shape[0]):
        ref, _ = exact_posterior_draws(
            test_ds.spectra(np.array([i])), model, prior, cfg.sbi.parameters, rng=i
        )
        draws = {
            "xtml raw": ours.sample(x_test[i : i + 1], len(ref), rng=i)[0],
            "xtml": recal.sample(x_test[i : i + 1], len(ref), rng=i)[0],
            "sbi": _sbi_sample(theirs, x_test[i], len(ref), box),
        }
        row: dict[str, Any] = {}
        for key, d in draws.items():
            cmp = compare_with_reference(ref, d, log=box.log, rng=i)
            row[f"c2st {key}"], row[f"std ratio {key}"] = cmp.c2st, cmp.std_ratio
        rows.append(row)
        print(f"  obs {i:3d}  C2ST " + "  ".join(f"{k} {row[f'c2st {k}']:.3f}" for k in draws), flush=True)
    out: dict[str, Any] = {
        "n_train": int(theta.shape[0]),
        "n_obs": len(rows),
        "xtml_train_s": xtml_s,
        "sbi_train_s": sbi_s,
        "xtml_epochs": xtml_epochs,
        "sbi_epochs": sbi_epochs,
    }
    for key in ("xtml raw", "xtml", "sbi"):
        med = float(np.median([r[f"c2st {key}"] for r in rows]))
        ratio = np.median([r[f"std ratio {key}"] for r in rows], axis=0)
        out[f"c2st_median[{key}]"] = med
        out[f"std_ratio_median[{key}]"] = dict(zip(cfg.sbi.parameters, ratio.tolist(), strict=True))
        print(
            f"  {key:<9} C2ST median {med:.3f}; std ratio to MCMC (median) "
            + ", ".join(f"{n} {r:.2f}" for n, r in zip(cfg.sbi.parameters, ratio, strict=True))
        )
    return out


def main(
    quick: bool = False,
    threads: int | None = None,
    sampling_only: bool = False,
    scenarios: bool = False,
    n_sim: int | None = None,
    n_anchor: int = 20_000,
    n_obs: int = 10,
    data: Path | None = None,
) -> dict[str, Any]:
    load = os.getloadavg()[0]
    print(f"load average before: {load:.2f} on {len(os.sched_getaffinity(0))} CPUs; torch threads: {threads}")
    t = time.perf_counter()
    out: dict[str, Any] = {"load_average_before": load, "quick": quick}
    if not scenarios:
        out["sampling"] = sampling(threads, quick)
        if not sampling_only:
            out["training"] = training(threads, quick)
    else:
        if n_sim != 0:
            out["budget_b"] = budget(threads, quick, n_sim)
        if n_anchor:
            out["anchor_a"] = anchor(threads, n_anchor, n_obs, data)
    out["bench_s"] = time.perf_counter() - t
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="time the epoch on 10,000 simulations")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: available CPUs)")
    parser.add_argument("--sampling-only", action="store_true", help="skip the training throughput")
    parser.add_argument("--scenarios", action="store_true", help="issue 19: scenario (b) budget, sbi anchor")
    parser.add_argument(
        "--n-sim", type=int, default=None, help="scenario (b) simulations timed (0: no budget)"
    )
    parser.add_argument(
        "--n-anchor", type=int, default=20_000, help="anchor: training simulations (0: no anchor)"
    )
    parser.add_argument("--n-obs", type=int, default=10, help="anchor: test observations with MCMC")
    parser.add_argument("--data", type=Path, default=None, help="anchor: run folder with the simulations")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # show each figure as soon as it is measured
    main(
        args.quick,
        args.threads,
        args.sampling_only,
        args.scenarios,
        args.n_sim,
        args.n_anchor,
        args.n_obs,
        args.data,
    )
