"""The calibration study of issue 19: how a neural posterior's calibration moves with the number of
simulations, the ensemble size, the embedding and a post-hoc recalibration, on held-out simulations.

Usage::

    python evals/eval_npe_calibration.py SCENARIO [VARIANTS_JSON]   # SCENARIO: demo | ideal | nustar | ...

``SCENARIO`` names ``configs/sbi_<scenario>.toml``. Three pools are simulated once (resumable) into
``evals/out/npe_study/<scenario>/``: a training pool (the largest ``n`` of the variants), a *calibration*
pool and a *test* pool of ``XTML_EVAL_HELD_OUT`` simulations each (default 2,000), with seeds of their
own. Each variant (a JSON list of objects: ``n`` training simulations plus any keys of
:class:`xtml.sbi.density.NPEConfig` overriding the scenario's ``[npe]``) is trained on the first ``n`` of
the training pool and judged on the test pool three times: as trained, and recalibrated
(:meth:`xtml.sbi.posterior.NeuralPosterior.recalibrate`) on the calibration pool with a diagonal and with a
full covariance. The recalibration is
fitted on the calibration pool only; the test pool judges it and is never used to choose anything.

Judged: SBC rank KS p-value and the standard deviation of the standardised truths per parameter; marginal
and joint-HPD expected coverage at 50 / 68 / 95 % against the 3-sigma binomial band of the test pool;
the gate's verdict (:func:`xtml.sbi.diagnostics.check_calibration`, thresholds unchanged); training time.

In scenario (a) (``ideal``, where the Whittle likelihood is exact) each posterior is also compared with the
exact-likelihood MCMC (:func:`xtml.reference.sample_posterior`, seed = row) on test rows
``XTML_EVAL_C2ST_ROWS`` (default 50-89): the C2ST (median) and the ratio of posterior standard deviations
(median per parameter). Rows 0-49 are the acceptance evaluation's (``evals/eval_sbi.py``): the study never
chooses on the rows that judge its choice. The MCMC samples are cached in ``mcmc/row_<i>.npz``.

``python evals/eval_npe_calibration.py ideal --mcmc-floor=N`` measures the floor of that comparison: a
second MCMC chain of the first ``N`` reference rows against the cached one (``mcmc_floor.json``).

Results: one JSON line per (variant, recalibration) in ``results.jsonl`` (a variant already there is
skipped, so the study resumes) and the table ``study.md`` (recorded in BENCHMARKS.md).
Environment: ``XTML_EVAL_DIR`` (output root), ``XTML_EVAL_HELD_OUT``, ``XTML_EVAL_THREADS`` (torch threads,
default 2), ``XTML_EVAL_SAMPLES`` (posterior draws per test observation, default 500).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from xtml.data import open_dataset, simulate_dataset
from xtml.sbi.comparisons import compare_with_reference, exact_posterior_draws
from xtml.sbi.diagnostics import check_calibration
from xtml.sbi.inputs import InputSpec
from xtml.sbi.run import scenario_arrays, scenario_prior
from xtml.sbi.scenario import CALIBRATION_SEED_OFFSET, TEST_SEED_OFFSET, SBIConfig, load_sbi_config

ROOT = Path(__file__).resolve().parents[1]
OUT_ROOT = Path(os.environ.get("XTML_EVAL_DIR", ROOT / "evals" / "out")) / "npe_study"
N_HELD_OUT = int(os.environ.get("XTML_EVAL_HELD_OUT", "2000"))
THREADS = int(os.environ.get("XTML_EVAL_THREADS", "2"))
N_SAMPLES = int(os.environ.get("XTML_EVAL_SAMPLES", "500"))
_lo, _hi = os.environ.get("XTML_EVAL_C2ST_ROWS", "50-89").split("-")
C2ST_ROWS = range(int(_lo), int(_hi) + 1)
LEVELS = (0.5, 0.68, 0.95)
#: the default study: what the issue asks to vary, within a 2-core afternoon (scenario's own [npe] otherwise)
DEFAULT_VARIANTS = {
    "demo": [
        {"n": 2000},
        {"n": 8000},
        {"n": 8000, "n_ensemble": 2},
        {"n": 8000, "n_ensemble": 4},
        {"n": 20000},
        {"n": 40000},
    ],
    "ideal": [
        {"n": 10000, "embedding": "mlp", "embedding_hidden": [128, 128], "n_ensemble": 1},
        {"n": 25000, "embedding": "mlp", "embedding_hidden": [128, 128], "n_ensemble": 1},
        {"n": 25000, "embedding": "mlp", "embedding_hidden": [128, 128], "n_ensemble": 2},
        {"n": 50000, "embedding": "mlp", "embedding_hidden": [128, 128], "n_ensemble": 1},
    ],
}


def pools(cfg: SBIConfig, out: Path, n_train: int) -> dict[str, Any]:
    """The training, calibration and test pools of the scenario (simulated once; resumable)."""
    seed = cfg.simulation.dataset.seed
    sizes = {"train": (n_train, seed), "calibration": (N_HELD_OUT, seed + CALIBRATION_SEED_OFFSET)}
    sizes["test"] = (N_HELD_OUT, seed + TEST_SEED_OFFSET)
    found = {}
    for name, (n, s) in sizes.items():
        path = out / f"{name}.zarr"
        try:
            have = open_dataset(path).n
        except ValueError:  # not simulated yet, or interrupted before its first chunk
            have = 0
        if have < n:
            t = time.perf_counter()
            print(f"simulating the {name} pool: {n} observations into {path}", flush=True)
            simulate_dataset(cfg.simulation, n, path, seed=s, progress=True)
            print(f"  {time.perf_counter() - t:.0f} s", flush=True)
        found[name] = open_dataset(path)
    return found


def judge(post: Any, theta: np.ndarray, x: np.ndarray, names: tuple[str, ...]) -> dict[str, Any]:
    """The gate's checks and the study's figures on the test pool."""
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    s = post.sample(x, N_SAMPLES, rng=rng)
    lp_s = post.log_prob_draws(s, x)
    lp_t = post.log_prob(theta, x)
    rep = check_calibration(s, theta, rng=rng, names=names, log_prob_samples=lp_s, log_prob_truth=lp_t)
    marg, joint = rep.coverage.coverage_at(np.array(LEVELS))
    n = theta.shape[0]
    band = 3 * np.sqrt(np.array(LEVELS) * (1 - np.array(LEVELS)) / n)
    inside = bool(np.all(np.abs(marg - np.array(LEVELS)[:, None]) <= band[:, None]))
    if joint is not None:
        inside = inside and bool(np.all(np.abs(joint - np.array(LEVELS)) <= band))
    return {
        "verdict": rep.verdict,
        "reasons": list(rep.reasons),
        "sbc_p": dict(zip(names, np.round(rep.sbc.ks_pvalue, 4).tolist(), strict=True)),
        "sbc_zstd": dict(zip(names, np.round(rep.sbc.z_std, 3).tolist(), strict=True)),
        "marginal": {m: np.round(100 * marg[:, k], 1).tolist() for k, m in enumerate(names)},
        "joint": None if joint is None else np.round(100 * joint, 1).tolist(),
        "in_band": inside,
        "sbc_all_above_0.01": bool(np.all(rep.sbc.ks_pvalue > 0.01)),
        "band_pp": np.round(100 * band, 1).tolist(),
        "judge_s": round(time.perf_counter() - t, 1),
    }


def mcmc_reference(cfg: SBIConfig, test: Any, out: Path) -> dict[int, np.ndarray]:
    """Exact-likelihood MCMC samples (at most 4,000, in ``cfg.sbi.parameters`` order) of the C2ST rows."""
    from xtml.reference import SpectralModel

    sim = cfg.simulation
    model = SpectralModel(sim.classes[sim.class_names.index(cfg.sbi.class_name)].model, noise="poisson")
    prior = scenario_prior(cfg)
    (out / "mcmc").mkdir(exist_ok=True)
    ref = {}
    for i in C2ST_ROWS:
        path = out / "mcmc" / f"row_{i}.npz"
        if not path.is_file():
            t = time.perf_counter()
            a, converged = exact_posterior_draws(
                test.spectra(np.array([i])), model, prior, cfg.sbi.parameters, rng=i
            )
            np.savez(path, samples=a, converged=converged)
            print(f"  MCMC of test row {i}: {time.perf_counter() - t:.0f} s", flush=True)
        ref[i] = np.load(path)["samples"]
    return ref


def judge_c2st(post: Any, x: np.ndarray, ref: dict[int, np.ndarray]) -> dict[str, Any]:
    """C2ST and posterior-std ratio against the MCMC, per reference row (log where the prior is)."""
    scores, ratios = {}, []
    for i, a in ref.items():
        cmp = compare_with_reference(a, post.sample(x[i : i + 1], len(a), rng=i)[0], log=post.box.log, rng=i)
        scores[i] = round(cmp.c2st, 3)
        ratios.append(cmp.std_ratio)
    return {
        "c2st_rows": f"{min(ref)}-{max(ref)}",
        "c2st_median": float(np.median(list(scores.values()))),
        "c2st": scores,
        "std_ratio_median": dict(
            zip(post.names, np.round(np.median(ratios, axis=0), 3).tolist(), strict=True)
        ),
    }


def key(v: dict[str, Any]) -> str:
    return json.dumps(v, sort_keys=True)


def run(scenario: str, variants: list[dict[str, Any]]) -> Path:
    from xtml.sbi.density import NPEConfig
    from xtml.sbi.npe import train_npe
    from xtml.sbi.transforms import BoxTransform

    cfg = load_sbi_config(ROOT / "configs" / f"sbi_{scenario}.toml")
    out = OUT_ROOT / scenario
    out.mkdir(parents=True, exist_ok=True)
    ds = pools(cfg, out, max(v["n"] for v in variants))
    spec = InputSpec.from_dataset(ds["train"], cfg.sbi.channels, cfg.sbi.scalars)
    theta, x = scenario_arrays(cfg, ds["train"], spec)
    theta_c, x_c = scenario_arrays(cfg, ds["calibration"], spec)
    theta_t, x_t = scenario_arrays(cfg, ds["test"], spec)
    names = cfg.sbi.parameters
    box = BoxTransform.from_prior(scenario_prior(cfg), names)
    ref = mcmc_reference(cfg, ds["test"], out) if scenario == "ideal" else None
    base = {**cfg.npe, "n_channels": len(spec.channels), "n_scalars": len(spec.scalars)}
    results = out / "results.jsonl"
    done = (
        {json.loads(line)["key"] for line in results.read_text().splitlines()} if results.exists() else set()
    )
    for v in variants:
        if key(v) in done:
            print(f"done already: {key(v)}")
            continue
        over = {k: val for k, val in v.items() if k != "n"}
        conf = NPEConfig.from_dict({**base, **over})
        t = time.perf_counter()
        post = train_npe(theta[: v["n"]], x[: v["n"]], box, conf, n_threads=THREADS)
        train_s = time.perf_counter() - t
        epochs = [h["n_epochs"] for h in post.history]
        for recal in (False, "diagonal", "full"):
            p = post.recalibrate(theta_c, x_c, covariance=recal) if recal else post
            rec = {
                "key": key(v),
                "scenario": scenario,
                "n": v["n"],
                "npe": {k: conf.to_dict()[k] for k in ("embedding", "n_ensemble", "flow")},
                "variant": v,
                "recalibrated": recal,
                "n_calibration": int(theta_c.shape[0]) if recal else 0,
                "n_test": int(theta_t.shape[0]),
                "train_s": round(train_s),
                "epochs": epochs,
                **judge(p, theta_t, x_t, names),
            }
            if ref is not None:
                rec.update(judge_c2st(p, x_t, ref))
            if recal:
                chol = np.asarray(p.recalibration["chol"])
                rec["base_spread"] = np.round(np.sqrt(np.einsum("kij,kij->ki", chol, chol)), 3).tolist()
                rec["base_loc"] = np.round(np.asarray(p.recalibration["loc"]), 3).tolist()
            with results.open("a") as f:
                f.write(json.dumps(rec) + "\n")
            print(json.dumps(rec), flush=True)
    write_table(out)
    return out


def write_table(out: Path) -> None:
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    head = (
        "| n train | embedding | K | recalibrated | train s | min SBC p | SBC z-std range | worst marginal "
        "dev. pp (50/68/95) | joint HPD % (50/68/95) | in 3-sigma band | gate | C2ST vs MCMC |\n"
        "|---:|---|---:|---|---:|---:|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in sorted(
        rows, key=lambda r: (r["n"], r["npe"]["n_ensemble"], r["npe"]["embedding"], str(r["recalibrated"]))
    ):
        dev = np.array(list(r["marginal"].values())) - 100 * np.array(LEVELS)
        worst = [dev[np.abs(dev[:, j]).argmax(), j] for j in range(len(LEVELS))]
        z = list(r["sbc_zstd"].values())
        joint = "-" if r["joint"] is None else " / ".join(f"{c:.1f}" for c in r["joint"])
        c2 = f"{r['c2st_median']:.3f}" if "c2st_median" in r else "-"
        lines.append(
            f"| {r['n']:,} | {r['npe']['embedding']} | {r['npe']['n_ensemble']} | "
            f"{r['recalibrated'] + ' (' + str(r['n_calibration']) + ')' if r['recalibrated'] else 'no'} | "
            f"{r['train_s']} | "
            f"{min(r['sbc_p'].values()):.3f} | {min(z):.2f}-{max(z):.2f} | "
            f"{' / '.join(f'{d:+.1f}' for d in worst)} | {joint} | {'yes' if r['in_band'] else 'no'} | "
            f"{r['verdict']} | {c2} |"
        )
    (out / "study.md").write_text(
        f"Scenario {rows[0]['scenario']}: {rows[0]['n_test']} test simulations; 3-sigma binomial band "
        f"+-{' / '.join(str(b) for b in rows[0]['band_pp'])} pp at 50 / 68 / 95 %.\n\n"
        + "\n".join(lines)
        + "\n"
    )
    print((out / "study.md").read_text())


def mcmc_floor(rows: int) -> dict[str, Any]:
    """The C2ST of the exact MCMC against itself: a second chain (seed ``10,000 + row``) of the first
    ``rows`` reference rows, compared with the cached one. It is the smallest C2ST any posterior can
    reach on these rows with these draws (finite, correlated MCMC samples; the classifier's own noise)."""
    from xtml.reference import SpectralModel
    from xtml.sbi.transforms import BoxTransform

    cfg = load_sbi_config(ROOT / "configs" / "sbi_ideal.toml")
    out = OUT_ROOT / "ideal"
    test = open_dataset(out / "test.zarr")
    ref = mcmc_reference(cfg, test, out)
    sim = cfg.simulation
    model = SpectralModel(sim.classes[sim.class_names.index(cfg.sbi.class_name)].model, noise="poisson")
    prior = scenario_prior(cfg)
    log = BoxTransform.from_prior(prior, cfg.sbi.parameters).log  # the posteriors' log coordinates
    scores, ratios = {}, []
    for i in list(ref)[:rows]:
        again, _ = exact_posterior_draws(
            test.spectra(np.array([i])), model, prior, cfg.sbi.parameters, rng=10_000 + i
        )
        cmp = compare_with_reference(ref[i], again, log=log, rng=i)
        scores[i] = round(cmp.c2st, 3)
        ratios.append(cmp.std_ratio)
        print(f"  row {i}: C2ST of two MCMC chains {cmp.c2st:.3f}", flush=True)
    result = {
        "rows": list(scores),
        "c2st": scores,
        "c2st_median": float(np.median(list(scores.values()))),
        "std_ratio_median": dict(
            zip(cfg.sbi.parameters, np.round(np.median(ratios, axis=0), 3).tolist(), strict=True)
        ),
    }
    (out / "mcmc_floor.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"C2ST of the MCMC against itself, median over {len(scores)} rows: {result['c2st_median']:.3f}")
    return result


if __name__ == "__main__":
    name = sys.argv[1] if len(sys.argv) > 1 else "demo"
    if len(sys.argv) > 2 and sys.argv[2].startswith("--mcmc-floor"):
        mcmc_floor(int(sys.argv[2].split("=")[1]) if "=" in sys.argv[2] else 10)
        sys.exit(0)
    chosen = json.loads(sys.argv[2]) if len(sys.argv) > 2 else DEFAULT_VARIANTS[name]
    run(name, chosen)
