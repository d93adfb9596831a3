"""``xtml``: one command line entry point with subcommands; a thin layer over the library."""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from xtml import __version__

__all__ = ["build_parser", "main"]


def _at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``low`` (the usage error names the flag and the range)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {value}")
        return value

    return parse


def _pi_range(args: argparse.Namespace) -> tuple[int, int] | None:
    """``--pi LO HI`` as a range, checked (``0 <= LO < HI``)."""
    if args.pi is None:
        return None
    lo, hi = args.pi
    if not 0 <= lo < hi:
        raise ValueError(f"--pi must be two channels 0 <= LO < HI, got {lo} {hi}")
    return (lo, hi)


def _check_output_file(path: Path | None, flag: str) -> None:
    """An output file named by ``flag``: its folder must exist, and it must not be a folder itself."""
    if path is None:
        return
    if path.is_dir():
        raise ValueError(f"{flag} {str(path)!r} is a directory; give a file name")
    if not path.absolute().parent.is_dir():
        raise ValueError(f"{flag} {str(path)!r}: the folder {str(path.parent)!r} does not exist")


def _cmd_simulate(args: argparse.Namespace) -> int:
    from xtml.data import load_config, open_dataset
    from xtml.data.simrun import simulate_run

    config = load_config(args.config)
    from functools import partial

    from xtml.parallel import client_from_args, simulate_dataset_dask

    try:
        with client_from_args(args) as client:  # --scheduler / --workers: on Dask, one task per chunk
            run = simulate_run(
                config,
                args.n,
                args.out,
                seed=args.seed,
                chunk_size=args.chunk_size,
                overwrite=args.overwrite,
                progress=not args.no_progress,
                command=args.argv,
                simulate=None if client is None else partial(simulate_dataset_dask, client=client),
            )
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: finished chunks are kept in {args.out} (run recorded as incomplete); run the "
            "same command again to resume",
            file=sys.stderr,
        )
        return 130
    ds = open_dataset(run)
    labels = ds.array("labels")
    counts = ", ".join(f"{name}: {(labels == k).sum()}" for k, name in enumerate(ds.class_names))
    splits = ", ".join(f"{s}: {ds.split_indices(s).size}" for s in ("train", "validation", "test"))
    n_obs = len(set(ds.groups.tolist()))
    what = (
        f"{ds.n} simulated observations"
        if n_obs == ds.n
        else f"{ds.n} spectra of {n_obs} simulated observations"
    )
    print(f"wrote {what} to {ds.path} (run folder {run})")
    print(f"  classes  {counts}")
    print(f"  splits   {splits}")
    print(f"  spectra  {ds.array('freq').size} frequencies, norm {ds.config.observation.norm}")
    print(f"  card     {ds.path / 'DATASET_CARD.md'}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from xtml.learn.config import load_train_config
    from xtml.learn.train import load_train_record, train_run, train_tables_text

    if args.like is not None:
        if args.config is not None or args.data is not None:
            raise ValueError(
                "give CONFIG and --data, or the observation files to match (--like FILE...), not both"
            )
        from xtml.workflows.matched import train_matched_detection

        answer = train_matched_detection(
            args.like, args.out, n=args.n, log=None if args.no_progress else print, **_like_options(args)
        )
        print(answer.text(derivation=args.no_progress))
        return 0 if all(r.error is None and r.in_scope for r in answer.rows) else 1
    if args.config is None or args.data is None:
        raise ValueError("give a training configuration (CONFIG) and --data, or --like FILE...")
    config = load_train_config(args.config)
    run = train_run(
        config,
        args.data,
        args.out,
        overwrite=args.overwrite,
        log=None if args.no_progress else print,
        command=args.argv,
    )
    print("\n".join(train_tables_text(load_train_record(run)["models"])))
    print(f"trained {len(config.models)} model(s) into {run}; next: xtml evaluate {run}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import json

    from xtml.learn.evaluate import EvaluationLockError, evaluate_run, evaluation_dir
    from xtml.runs import load_record

    try:
        out = evaluate_run(args.run, reopen=args.reopen, plots=not args.no_plots, command=args.argv)
    except EvaluationLockError as err:
        raise ValueError(str(err)) from None
    ev = evaluation_dir(args.run)
    if args.json:
        print(json.dumps(json.loads((ev / "metrics.json").read_text()), indent=1))
    else:
        print((ev / "summary.txt").read_text(), end="")
        if out.get("plots"):
            print(f"plots: {ev / 'plots'}")
        record = load_record(ev)
        for check in record.failed_checks:
            print(f"FAILED CHECK {check.name}: {check.detail}")
        print(f"evaluation run {ev}: {record.status}")
    return 0


def _cmd_config(args: argparse.Namespace) -> int:
    from xtml.shipped import config_kind, config_path, config_summary, shipped_configs

    if args.config_command == "list":
        configs = shipped_configs()
        width = max(len(n) for n in configs)
        for name, path in configs.items():
            print(f"{name:<{width}}  {config_kind(path):<10}  {config_summary(path)}")
        folder = next(iter(configs.values())).parent
        print(f"({len(configs)} configurations in {folder}; `xtml config show NAME` prints one)")
        return 0
    path = config_path(args.name)
    if args.out is not None:
        _check_output_file(args.out, "--out")
        if args.out.exists() and not args.overwrite:
            raise ValueError(f"--out {args.out} exists; pass --overwrite to replace it")
        args.out.write_text(path.read_text())
        print(f"wrote {args.out} ({config_kind(path)} configuration {path.stem!r})")
        return 0
    print(path.read_text(), end="")
    return 0


def _cmd_spectrum(args: argparse.Namespace) -> int:
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from xtml.timing import EventData, observation_spectrum, rebin_log
    from xtml.timing.observation import read_observation
    from xtml.timing.products import pair_products, save_spectrum

    if args.kind != "power" and len(args.files) != 2:
        raise ValueError(
            f"--kind {args.kind} needs the event files of two modules observing together (e.g. NuSTAR's FPMA "
            f"and FPMB); got {len(args.files)} file(s)"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    band = {
        "energy_range": None if args.energy is None else (args.energy[0], args.energy[1]),
        "pi_range": _pi_range(args),
    }
    sources = [read_observation(f, **band) for f in args.files]
    products: list[tuple[str, object, dict]] = []
    if args.kind == "power":
        for f, source in zip(args.files, sources, strict=True):
            ps, notes = observation_spectrum(source, dt=args.dt, segment_size=args.segment_size)
            products.append(
                (f"{Path(f).name.split('.')[0]}_power", ps, {"files": [str(f)], "kind": "power", **notes})
            )
    else:
        if not all(isinstance(s, EventData) for s in sources):
            raise ValueError(
                f"--kind {args.kind} needs event files (the two modules' events), not light curves"
            )
        pair, notes = pair_products(sources[0], sources[1], dt=args.dt, segment_size=args.segment_size)
        names = ("cospectrum",) + (("fad_power", "fad_cospectrum") if args.kind == "fad" else ())
        stem = Path(args.files[0]).name.split(".")[0]
        for name in ("power_a", "power_b", "power_total", *names):
            products.append(
                (f"{stem}_{name}", pair[name], {"files": [str(f) for f in args.files], "kind": name, **notes})
            )
    for stem, ps, meta in products:
        if args.rebin_log > 0:
            ps = rebin_log(ps, args.rebin_log)
        meta["rebin_log"] = args.rebin_log
        paths = save_spectrum(ps, args.out / stem, meta)
        line = f"{stem}: {ps.n_freq} frequencies {ps.freq[0]:.4g}-{ps.freq[-1]:.4g} Hz, {ps.n_segments} x "
        line += f"{ps.segment_length:g} s, {ps.norm}; " + ", ".join(str(p) for p in paths)
        if not args.no_plot:
            fig, ax = plt.subplots(figsize=(6, 4))
            err = ps.power[0] / np.sqrt(ps.m)
            ax.errorbar(ps.freq, ps.power[0] * ps.freq, yerr=err * ps.freq, fmt=".", ms=3)
            ax.set_xscale("log")
            if np.all(ps.power[0] > 0):
                ax.set_yscale("log")
            ax.set_xlabel("frequency (Hz)")
            ax.set_ylabel(f"{ps.norm} power x frequency")
            ax.set_title(stem, fontsize=9)
            png = args.out / f"{stem}.png"
            fig.savefig(png, dpi=90, bbox_inches="tight")
            plt.close(fig)
            line += f", {png}"
        print(line)
        if "fad_delta" in meta and "fad" in stem:
            print(f"  FAD compliance delta {meta['fad_delta']:+.3f} (Stingray warns at |delta| >= 0.05)")
    return 0


def _cmd_search(args: argparse.Namespace) -> int:
    import json

    from xtml.reference.fitcli import load_spectrum, rate_text
    from xtml.reference.search import periodicity_search

    ps, notes = load_spectrum(
        args.input,
        dt=args.dt,
        segment_size=args.segment_size,
        energy_range=None if args.energy is None else (args.energy[0], args.energy[1]),
        pi_range=_pi_range(args),
    )
    result = periodicity_search(
        ps,
        f_range=None if args.f_range is None else (args.f_range[0], args.f_range[1]),
        n_sim=args.n_sim,
        alpha=args.alpha,
        rng=args.seed,
    )
    if args.json:
        out = {k: v for k, v in result.__dict__.items() if k != "t_r_sim"}
        print(json.dumps(out | {"at_floor": result.at_floor, "observation": notes}, indent=2))
        return 0
    print(f"{args.input}: {ps.n_freq} frequencies, resolution {ps.df[0]:.3g} Hz; {rate_text(notes)}")
    print("continuum: " + ", ".join(f"{k} = {v:.4g}" for k, v in result.continuum_params.items()))
    print(result.summary())
    return 0


def _cmd_fit(args: argparse.Namespace) -> int:
    import json

    from xtml.reference.fitcli import (
        component_tests,
        dataset_dead_time,
        fit_report,
        load_spectrum,
        parse_model,
        rate_text,
    )

    names = [part.split("=", 1)[0].strip() for part in args.model.split(",")]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"--model names each component once; {', '.join(map(repr, twice))} appears twice")
    _check_output_file(args.plot, "--plot")
    is_dataset = Path(args.input).is_dir()
    if args.truth and not is_dataset:
        raise ValueError("--truth prints the true parameters of a simulated row; it needs an xtml dataset")
    psd = parse_model(args.model)
    spectrum, notes = load_spectrum(
        args.input,
        index=args.index,
        dt=args.dt,
        segment_size=args.segment_size,
        rebin_log=args.rebin_log,
        array=args.spectrum,
        energy_range=None if args.energy is None else (args.energy[0], args.energy[1]),
        pi_range=_pi_range(args),
    )
    if args.spectrum == "power_fad":  # FAD has removed the dead-time distortion: flat white noise
        dead_time, n_modules, source = 0.0, 1, "none (the FAD-corrected spectrum has no dead-time distortion)"
    elif args.dead_time is not None:
        dead_time, n_modules, source = args.dead_time, 1, "--dead-time"
    elif is_dataset:
        dead_time, n_modules = dataset_dead_time(args.input)
        source = (
            "the dataset's detector" if dead_time > 0 else "none (the dataset's detector has no dead time)"
        )
    elif "dead_time_s" in notes:
        dead_time, n_modules, source = notes["dead_time_s"], 1, notes["dead_time_source"]
    else:
        dead_time, n_modules = 0.0, 1
        source = "none: the file states no dead time (pass --dead-time TAU to model one)"
    n_modules = n_modules if args.modules is None else args.modules
    per_module = float(spectrum.mean_rate[0]) / n_modules
    if dead_time > 0 and per_module * dead_time >= 1:
        raise ValueError(
            f"{args.input}: a dead time of {dead_time:g} s with {per_module:.4g} ct/s detected per module "
            f"gives rate x dead time = {per_module * dead_time:.3g} >= 1, which no incident rate can produce "
            "(a non-paralyzable detector records at most 1 / dead time); check --dead-time and --modules"
        )
    n_free = len(psd.param_names) + (args.noise == "free")
    if spectrum.n_freq <= n_free:
        raise ValueError(
            f"{args.input}: the spectrum has {spectrum.n_freq} frequency bin(s), too few to fit {n_free} "
            f"free parameters (--model {args.model}, --noise {args.noise}): a fit needs more frequencies "
            "than parameters (longer segments, less rebinning, or a simpler model)"
        )
    report = fit_report(spectrum, psd, noise=args.noise, dead_time=dead_time, n_modules=n_modules)
    tests = component_tests(report, n_sim=args.n_sim, alpha=args.alpha) if args.n_sim > 0 else []
    truth = _row_truth(args.input, args.index, report.result.param_names) if args.truth else None
    dead_text = f"dead time {dead_time:g} s x {n_modules} module(s), from {source}"
    if args.json:
        out = report.to_dict() | {"observation": notes, "dead_time": {"seconds": dead_time, "source": source}}
        out["components"] = [t.__dict__ for t in tests]
        if truth is not None:
            out["truth"] = truth
        print(json.dumps(out, indent=2))
    else:
        print(f"{args.input}: {spectrum.n_freq} frequencies, {spectrum.norm} norm; {rate_text(notes)}")
        print(dead_text + ("; Zhang white noise and dead-time gain" if dead_time > 0 else ""))
        print(report.table())
        for t in tests:
            print(t.text())
        if truth is not None:
            print(
                "truth: "
                + ", ".join(
                    f"{k} = {v:.5g}" if isinstance(v, float) else f"{k}: {v}" for k, v in truth.items()
                )
            )
    if args.plot is not None:
        print(f"plot: {report.plot(args.plot)}")
    return 0 if report.result.success[0] else 1


def _row_truth(path: Path, index: int, names: tuple[str, ...]) -> dict[str, object]:
    """The simulated parameters of row ``index`` of a dataset that are parameters of the fit (and rate)."""
    import numpy as np

    from xtml.data import open_dataset

    ds = open_dataset(path)
    row = np.asarray(ds.array("params"))[index]
    cls = ds.class_names[int(np.asarray(ds.array("labels"))[index])]
    truth: dict = {"class": cls}
    truth.update({n: float(row[k]) for k, n in enumerate(ds.param_names) if np.isfinite(row[k])})
    missing = [n for n in names if n not in truth and n != "noise.level"]
    if missing:
        truth["note"] = f"the fit's {missing} are not parameters of class {cls!r}"
    return truth


def _cmd_sbi_train(args: argparse.Namespace) -> int:
    from xtml.sbi.scenario import load_sbi_config

    if (args.config is None) == (args.like is None):
        raise ValueError(
            "give a scenario (CONFIG) or the observation files to match (--like FILE...), not both"
        )
    if args.like is not None:
        return _sbi_train_like(args)
    config = load_sbi_config(args.config)
    from xtml.parallel import client_from_args
    from xtml.sbi.run import train_sbi_run

    try:
        with client_from_args(args) as client:  # --scheduler / --workers: the simulations on Dask
            run = train_sbi_run(
                config,
                args.out,
                overwrite=args.overwrite,
                log=None if args.no_progress else print,
                n_threads=args.threads,
                command=args.argv,
                client=client,
            )
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: finished simulation chunks are kept in {args.out} (run recorded as "
            "incomplete); run the same command again to resume",
            file=sys.stderr,
        )
        return 130
    from xtml.runs import load_record

    if load_record(run).status != "complete":
        print(f"CALIBRATION FAILED: the posterior in {run} must not be used (see {run / 'summary.txt'})")
        return 1
    print(f"next: xtml sbi infer {run} OBSERVATION")
    return 0


def _like_options(args: argparse.Namespace) -> dict:
    """The options `xtml train --like` and `xtml sbi train --like` share, as keyword arguments."""
    return {
        "energy_range": None if args.energy is None else (args.energy[0], args.energy[1]),
        "pi_range": _pi_range(args),
        "dt": args.dt,
        "n_detectors": args.detectors,
        "n_sim": args.n_sim,
        "seed": args.seed,
        "overwrite": args.overwrite,
    }


def _sbi_train_like(args: argparse.Namespace) -> int:
    import json

    from xtml.workflows.matched import train_matched_sbi

    answer = train_matched_sbi(
        args.like,
        args.out,
        model=args.model,
        n_train=args.n_train,
        n_test=args.n_test,
        n_calibration=args.n_test,
        **_like_options(args),
        log=None if (args.no_progress or args.json) else print,
        n_threads=args.threads,
        command=args.argv,
    )
    if args.json:
        print(json.dumps(answer.to_dict(), indent=1, default=float))
    else:
        print(answer.text(derivation=args.no_progress))  # else it was printed before the training
    in_scope = all(r.error is None and r.in_scope for r in answer.rows)
    return 0 if answer.calibrated and in_scope else 1


def _cmd_sbi_infer(args: argparse.Namespace) -> int:
    import json

    import numpy as np

    from xtml.critique.run_scope import scope_of_inference
    from xtml.sbi.infer import infer
    from xtml.sbi.run import UncalibratedPosteriorError

    _check_output_file(args.plot, "--plot")
    _check_output_file(args.samples, "--samples")
    given = args.run
    if args.run.is_file():  # a bundle (xtml export): checked, then unpacked into a temporary run folder
        from xtml.runs.bundle import open_bundle

        args.run = open_bundle(args.run)
    try:
        result = infer(
            args.run,
            args.inputs,
            index=args.index,
            n_samples=args.n_samples,
            seed=args.seed,
            allow_uncalibrated=args.allow_uncalibrated,
        )
    except (ValueError, UncalibratedPosteriorError) as err:  # a bundle's errors name the bundle, not the
        raise ValueError(str(err).replace(str(args.run), str(given))) from None  # folder it was unpacked to
    scope = scope_of_inference(args.run, result)
    in_scope = scope is None or bool(scope.in_scope[0])
    if args.samples is not None:
        np.savez_compressed(args.samples, names=np.array(result.names), samples=result.samples)
    if args.json:
        print(
            json.dumps(
                {
                    "source": result.source,
                    "calibrated": result.calibrated,
                    "scope": None if scope is None else scope.rows()[0],
                    "notes": list(result.notes),
                    "summary": result.summary(),
                    "seconds": result.seconds,
                },
                indent=1,
            )
        )
    else:
        print(
            f"{result.source}: {result.samples.shape[0]} posterior samples in {1e3 * result.seconds:.0f} ms"
        )
        if scope is None:
            print("  ! no scope gate in this run (trained before xtml had one): scope not checked")
        elif not in_scope:
            print(
                "  !!! OUT OF SCOPE: this observation is unlike the training data; do not trust the posterior"
            )
            for why in scope.reasons[0]:
                print(f"  !!!   {why}")
        else:
            print(f"  in scope (scope p = {scope.p_value[0]:.2g})")
        for note in result.notes:
            print(f"  ! {note}")
        print(result.table())
    if args.samples is not None and not args.json:
        print(f"samples: {args.samples}")
    if args.plot is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from xtml.critique.diag_plots import plot_posterior_corner

        fig = plot_posterior_corner(result.samples, list(result.names))
        title = result.source if result.calibrated else f"{result.source} (UNCALIBRATED)"
        fig.suptitle(title, fontsize=9)
        path = Path(args.plot)
        fig.savefig(path, dpi=90, bbox_inches="tight")
        plt.close(fig)
        if not args.json:
            print(f"corner plot: {path}")
    return 0 if result.calibrated and in_scope else 1


def _cmd_analyze(args: argparse.Namespace) -> int:
    import glob
    import json

    from xtml.analyze import analyze_files, rows_table

    paths: list[str] = []
    for item in args.files:
        text = str(item)
        if any(c in text for c in "*?["):
            found = sorted(glob.glob(text))
            if not found:
                raise ValueError(f"the pattern {text!r} matches no file")
            paths += found
        else:
            paths.append(text)
    from xtml.parallel import client_from_args

    with client_from_args(args) as client:  # --scheduler / --workers: one Dask task per file
        rows = analyze_files(
            paths,
            args.run,
            workers=2,  # threads, without a cluster
            energy_range=None if args.energy is None else (args.energy[0], args.energy[1]),
            pi_range=_pi_range(args),
            n_samples=args.n_samples,
            seed=args.seed,
            allow_uncalibrated=args.allow_uncalibrated,
            plot_dir=args.plots,
            exclude_gaps=args.exclude_gaps,
            client=client,
        )
    n_err = sum(r.error is not None for r in rows)
    n_out = sum(r.error is None and not r.in_scope for r in rows)
    if rows and n_err == len(rows):  # nothing could be analysed: a user error, one line per problem
        for error in dict.fromkeys(str(r.error) for r in rows):
            print(f"xtml analyze: error: {_one_line(error)}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([r.to_dict() for r in rows], indent=1))
    else:
        print(rows_table(rows))
        print(
            f"{len(rows)} answer(s): {len(rows) - n_err - n_out} in scope, {n_out} OUT OF SCOPE (do not "
            f"trust them), {n_err} error(s)"
        )
    return 1 if n_err else 0


def _cmd_report(args: argparse.Namespace) -> int:
    from xtml.report.run_report import build_report
    from xtml.runs import check_files, load_record

    # a report of a run that did not finish, or whose files changed since, would describe something else
    record = load_record(args.run)
    if (args.run / "BUNDLE.json").is_file():
        raise ValueError(
            f"{args.run} was imported from a bundle, which carries the model and its card "
            f"({args.run / 'model_card.md'}) but not the test predictions a report is made from: make the "
            "report where the run was trained"
        )
    check_files(args.run, [k for k in record.files if not k.endswith("/")])
    applied = None
    if args.applied is not None:
        import json

        from xtml._files import require_file

        path = require_file(args.applied, "--applied file")
        try:
            applied = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{path}: not the JSON of `xtml analyze --json` ({err})") from None
        if not isinstance(applied, list) or not all(isinstance(r, dict) and "run" in r for r in applied):
            raise ValueError(f"{path}: not the JSON of `xtml analyze --json` (a list of rows with a 'run')")
    result = build_report(args.run, max_points=args.max_points, seed=args.seed, applied=applied)
    failed = [text for kind, text in result.lessons if kind == "failed"]
    print(f"report: {result.html} ({result.size / 1e6:.2f} MB, {result.seconds:.1f} s)")
    print(f"model card: {result.model_card}")
    print(f"lessons: {len(result.lessons)} findings, {len(failed)} where the ML or a check failed")
    for text in failed[:5]:
        print(f"  ! {text}")
    return 0


def _cmd_runs(args: argparse.Namespace) -> int:
    from xtml.runs import compare_runs, list_runs, show_run, verify_files

    if args.runs_command == "list":
        records = list_runs(args.root)
        if not records:
            print(f"no runs under {args.root}")
            return 0
        rows = [("STATUS", "KIND", "CREATED", "RUN", "FOLDER")]
        for r in records:
            status = r.status.upper() if r.status != "complete" else r.status
            if r.status == "failed-check":
                status += " (" + ", ".join(c.name for c in r.failed_checks) + ")"
            rows.append((status, r.kind, r.created, r.run_id, str(r.path)))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        for row in rows:
            print("  ".join(f"{v:<{w}}" for v, w in zip(row[:4], widths, strict=True)) + "  " + row[4])
        return 0
    if args.runs_command == "show":
        print(show_run(args.run))
        return 0
    if args.runs_command == "compare":
        print(compare_runs(args.runs))
        return 0
    bad = verify_files(args.run)
    if bad:
        print(f"{args.run}: {len(bad)} file(s) differ from the record: " + ", ".join(bad))
        return 1
    print(f"{args.run}: every recorded file matches its hash")
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from xtml.runs.reproduce import reproduce_run

    result = reproduce_run(
        args.run,
        args.out,
        rtol=args.rtol,
        overwrite=args.overwrite,
        log=None if args.no_progress else print,
    )
    print(result.to_text())
    return 0 if result.reproduced_ok else 1


def _cmd_export(args: argparse.Namespace) -> int:
    from xtml.runs.bundle import export_run

    out = export_run(args.run, args.out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB); use it with: xtml analyze FILE --run {out}")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from xtml.runs import show_run
    from xtml.runs.bundle import import_bundle

    run = import_bundle(args.bundle, args.to, overwrite=args.overwrite)
    print(f"checked and unpacked {args.bundle} into {run}")
    print(show_run(run))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from xtml.demo import run_demo

    run_demo(Path(args.out), quick=args.quick, n=args.n, seed=args.seed, progress=not args.no_progress)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``xtml`` (also used to generate the CLI reference)."""
    parser = _Parser(
        prog="xtml",
        description="X-ray Timing Machine Learning: simulate X-ray timing data, compare machine learning "
        "with the classical statistics, and know the limits of both.",
    )
    parser.add_argument("--version", action="version", version=f"xtml {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    sim = sub.add_parser(
        "simulate",
        help="simulate a dataset of power spectra into a Zarr store",
        description="Simulate N observations from a TOML configuration (see configs/) into a chunked Zarr "
        "store with parameters, labels, spectra, splits and provenance. Interrupt at any time: running the "
        "same command again completes the missing chunks and never rewrites finished ones; on a finished "
        "run it reports 'already complete' and exits 0. A dataset that would not fit on the disk or whose "
        "chunks would not fit in memory is refused before anything is written, with the estimate.",
    )
    sim.add_argument(
        "config", type=Path, help="simulation configuration, a TOML file (e.g. configs/default.toml)"
    )
    sim.add_argument("--n", type=int, required=True, help="number of simulated observations (>= 1)")
    sim.add_argument(
        "--out",
        type=Path,
        required=True,
        help="run folder, e.g. runs/qpo: record.json, config.toml and the store data.zarr (every --data "
        "option takes the folder)",
    )
    sim.add_argument(
        "--seed", type=int, default=None, help="random seed (default: [dataset] seed of the config)"
    )
    sim.add_argument(
        "--chunk-size",
        type=int,
        default=None,
        help="observations per chunk, the unit of work and of resumption (default: [dataset] chunk_size)",
    )
    sim.add_argument("--overwrite", action="store_true", help="replace a finished run at --out")
    sim.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (there is none when stderr is not a terminal)",
    )
    from xtml.parallel import add_dask_arguments

    add_dask_arguments(sim)
    sim.set_defaults(func=_cmd_simulate)

    fit = sub.add_parser(
        "fit",
        help="maximum-likelihood fit of a power spectrum (exact Whittle likelihood)",
        description="Fit a PSD model plus a white-noise level to one power spectrum: a row of an xtml "
        "dataset (DIR.zarr --index I) or the averaged spectrum of an event file or light curve. Bounds are "
        "wide defaults derived from the spectrum and are printed with the fit, with the dead time used and "
        "where it came from; each Lorentzian gets its calibrated significance (the likelihood-ratio test "
        "against the model without it, calibrated by --n-sim simulations) and is said to be 'NOT required "
        "by the data' above --alpha. Exit status 1 if the fit did not succeed.",
    )
    fit.add_argument(
        "input",
        type=Path,
        help="an xtml dataset (DIR.zarr), a FITS event file or a light curve (FITS or ASCII)",
    )
    fit.add_argument(
        "--model",
        required=True,
        help="components as name=kind pairs, e.g. broad=zero_lorentzian,qpo=lorentzian "
        "(kinds: powerlaw, powerlaw_rms:LOW-HIGH [rms over LOW-HIGH Hz], bending_powerlaw, lorentzian, "
        "lorentzian_fwhm, zero_lorentzian, constant)",
    )
    fit.add_argument(
        "--noise",
        choices=("free", "poisson"),
        default="free",
        help="white-noise level: a free parameter (default) or fixed at the Poisson level",
    )
    fit.add_argument("--index", type=int, default=0, help="row of the dataset to fit (default 0)")
    fit.add_argument(
        "--spectrum",
        choices=("power", "power_fad"),
        default="power",
        help="datasets: the total power (default) or the FAD-corrected power",
    )
    fit.add_argument(
        "--dead-time",
        type=float,
        default=None,
        help="non-paralyzable dead time per module, s, for a Zhang-aware fit (default: the dataset's "
        "detector; 0 for event files)",
    )
    fit.add_argument(
        "--modules", type=int, default=None, help="modules summed into the spectrum (default: the dataset's)"
    )
    fit.add_argument("--dt", type=float, default=1 / 256, help="event files: bin time, s (default 1/256)")
    fit.add_argument(
        "--segment-size", type=float, default=16.0, help="event files: segment length, s (default 16)"
    )
    fit.add_argument(
        "--rebin-log", type=float, default=0.0, help="event files: log-rebinning factor (default 0)"
    )
    fit.add_argument(
        "--energy", type=float, nargs=2, metavar=("LO", "HI"), help="event files: energy band, keV"
    )
    fit.add_argument(
        "--pi",
        type=int,
        nargs=2,
        metavar=("LO", "HI"),
        help="event files: PI channels LO <= PI < HI (as the file numbers them)",
    )
    fit.add_argument(
        "--n-sim",
        type=int,
        default=100,
        help="simulations of the calibrated significance of each Lorentzian (default 100, the smallest p "
        "then 0.0099; 0 skips it)",
    )
    fit.add_argument(
        "--alpha", type=float, default=0.01, help="threshold of a Lorentzian 'required by the data' (0.01)"
    )
    fit.add_argument("--truth", action="store_true", help="datasets: print the true parameters of the row")
    fit.add_argument("--plot", type=Path, default=None, help="save the data and best fit to this PNG")
    fit.add_argument("--json", action="store_true", help="print the result as JSON")
    fit.set_defaults(func=_cmd_fit)

    config = sub.add_parser(
        "config",
        help="the configurations shipped with xtml: list them, print one or copy it to edit",
        description="The configurations shipped inside the package (a pip-installed xtml has no configs/ "
        "folder): `list` names them with their kind (simulation, training, sbi) and purpose; `show NAME` "
        "prints one, `show NAME --out FILE` copies it to edit.",
    )
    config_sub = config.add_subparsers(dest="config_command", required=True)
    config_sub.add_parser("list", help="every shipped configuration, its kind and purpose")
    config_show = config_sub.add_parser("show", help="print a shipped configuration (or copy it with --out)")
    config_show.add_argument("name", help="configuration name, e.g. default or sbi_nustar")
    config_show.add_argument("--out", type=Path, default=None, help="write it to this file instead")
    config_show.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    config.set_defaults(func=_cmd_config)

    search = sub.add_parser(
        "search",
        help="periodicity search: the strongest narrow peak of a power spectrum, with a calibrated p-value",
        description="Search an event file or light curve for a coherent periodicity (a pulsar, a magnetar "
        "spin): the averaged power spectrum of all whole segments, a power-law continuum on a white level, "
        "the largest outlier over it (Vaughan 2010) with its trial-corrected p-value, analytic and "
        "calibrated by simulating and refitting the continuum. Longer segments resolve the line better.",
    )
    search.add_argument("input", type=Path, help="a FITS event file, or a light curve (FITS or ASCII)")
    search.add_argument("--dt", type=float, default=1 / 64, help="bin time, s (default 1/64)")
    search.add_argument("--segment-size", type=float, default=128.0, help="segment length, s (default 128)")
    search.add_argument("--energy", type=float, nargs=2, metavar=("LO", "HI"), help="energy band, keV")
    search.add_argument(
        "--pi",
        type=int,
        nargs=2,
        metavar=("LO", "HI"),
        help="event files: PI channels LO <= PI < HI (as the file numbers them)",
    )
    search.add_argument(
        "--f-range", type=float, nargs=2, metavar=("LO", "HI"), help="search range, Hz (default: all)"
    )
    search.add_argument(
        "--n-sim", type=int, default=1000, help="simulations of the calibration (default 1000)"
    )
    search.add_argument("--alpha", type=float, default=0.01, help="significance threshold (default 0.01)")
    search.add_argument("--seed", type=int, default=0, help="seed of the calibration (default 0)")
    search.add_argument("--json", action="store_true", help="print the result as JSON")
    search.set_defaults(func=_cmd_search)

    spectrum = sub.add_parser(
        "spectrum",
        help="averaged, rebinned power spectra, cospectra and FAD spectra of files, saved and plotted",
        description="HENDRICS's habit: make the averaged power spectrum of each event file or light curve, "
        "or with --kind cospectrum|fad the power spectra, cospectrum and FAD-corrected spectra of two "
        "modules observing together, on the segments of their (common) GTIs; save each as .npz (xtml: "
        "xtml.timing.products.load_spectrum_file) and .ecsv (Stingray: AveragedPowerspectrum.read(path, "
        "fmt='ascii.ecsv')), and plot it.",
    )
    spectrum.add_argument("files", nargs="+", type=Path, help="event files or light curves")
    spectrum.add_argument("--out", type=Path, required=True, help="folder for the spectra and plots")
    spectrum.add_argument("--kind", choices=("power", "cospectrum", "fad"), default="power")
    spectrum.add_argument("--dt", type=float, default=1 / 256, help="bin time, s (default 1/256)")
    spectrum.add_argument("--segment-size", type=float, default=16.0, help="segment length, s (default 16)")
    spectrum.add_argument("--rebin-log", type=float, default=0.0, help="log-rebinning factor f (default 0)")
    spectrum.add_argument("--energy", type=float, nargs=2, metavar=("LO", "HI"), help="event files: keV")
    spectrum.add_argument("--pi", type=int, nargs=2, metavar=("LO", "HI"), help="event files: PI channels")
    spectrum.add_argument("--no-plot", action="store_true", help="no PNG plots")
    spectrum.set_defaults(func=_cmd_spectrum)

    train = sub.add_parser(
        "train",
        help="train and cross-validate models on a simulated dataset (the test set stays locked)",
        description="Split a dataset by simulated observation (stratified), tune and cross-validate each "
        "model of CONFIG.toml inside the training rows, fit, calibrate on the validation rows, and write a "
        "run folder with safe model files and record.json. The test set is only opened by `xtml evaluate`. "
        "On a finished run with the same configuration and data it reports 'already complete' and exits 0.",
    )
    train.add_argument(
        "config", type=Path, nargs="?", help="training configuration (see configs/train_*.toml)"
    )
    train.add_argument("--data", type=Path, default=None, help="simulated dataset (DIR.zarr)")
    train.add_argument("--out", type=Path, required=True, help="run folder to create")
    tlike = train.add_argument_group(
        "a detection run matched to observations (instead of CONFIG and --data)",
        "Derive the scenario from the files as `xtml sbi train --like` does (no QPO / QPO anywhere in the "
        "band, on the continuum of the quick fit), simulate into OUT/data, train and evaluate against the "
        "likelihood-ratio test into OUT/detect, and answer for every file next to its calibrated LRT.",
    )
    tlike.add_argument("--like", type=Path, nargs="+", default=None, metavar="FILE", help="observation files")
    tlike.add_argument("--n", type=_at_least(100), default=4000, help="simulated observations (default 4000)")
    tlike.add_argument("--energy", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"), help="keV")
    tlike.add_argument("--pi", type=int, nargs=2, metavar=("LO", "HI"), help="event files: PI channels")
    tlike.add_argument("--dt", type=float, default=None, help="bin time, s (default: from the files)")
    tlike.add_argument("--detectors", type=_at_least(1), default=None, help="detectors summed in the files")
    tlike.add_argument("--n-sim", type=_at_least(0), default=100, help="simulations of each calibrated LRT")
    tlike.add_argument("--seed", type=int, default=0, help="seed of the simulations (default 0)")
    train.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    train.add_argument(
        "--no-progress", action="store_true", help="no progress lines (bars only ever on a terminal)"
    )
    train.set_defaults(func=_cmd_train)

    evaluate = sub.add_parser(
        "evaluate",
        help="open the locked test set once: metrics, the classical reference, plots",
        description="Score every model of a training run on its test set next to the classical reference "
        "(the likelihood-ratio QPO test for detection), with bootstrap intervals, and write metrics.json, "
        "summary.txt and plots/. A second evaluation is refused unless --reopen gives a reason.",
    )
    evaluate.add_argument("run", type=Path, help="run folder written by `xtml train`")
    evaluate.add_argument("--reopen", default=None, help="reason to open the test set again (recorded)")
    evaluate.add_argument("--no-plots", action="store_true", help="skip the plots")
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")
    evaluate.set_defaults(func=_cmd_evaluate)

    sbi = sub.add_parser(
        "sbi",
        help="simulation-based inference: train a calibrated neural posterior, infer with it",
        description="Neural posterior estimation for what the likelihood cannot handle (dead time, pile-up).",
    )
    sbi_sub = sbi.add_subparsers(dest="sbi_command", metavar="SBI_COMMAND", required=True)
    sbi_train = sbi_sub.add_parser(
        "train",
        help="simulate, train a neural posterior and check its calibration",
        description="Simulate the scenario's training and held-out test sets (or read the datasets it "
        "names), train the neural posterior, and check it on the test set: SBC ranks, expected coverage at "
        "50/68/95 %, "
        "TARP, bias and RMSE per count-rate bin. Writes the run folder; exit status 1 if calibration failed "
        "(the posterior is kept for inspection but refused by `xtml sbi infer`). Interrupt at any time: the "
        "same command resumes the simulations; on a finished run it reports 'already complete' and exits "
        "as that run did.",
    )
    sbi_train.add_argument(
        "config", type=Path, nargs="?", help="SBI scenario, a TOML file (e.g. configs/sbi_nustar.toml)"
    )
    sbi_train.add_argument("--out", type=Path, required=True, help="run folder to create")
    like = sbi_train.add_argument_group(
        "a run matched to observations (instead of CONFIG)",
        "Derive the scenario from the files (bin time, segments from the GTIs, detector and dead time with "
        "its reference, a rate prior around the measured rate, the source model and priors from a quick "
        "dead-time-aware fit), train, check, and answer for every file next to the classical answers "
        "(docs/tutorial-sbi.md).",
    )
    like.add_argument("--like", type=Path, nargs="+", default=None, metavar="FILE", help="observation files")
    like.add_argument(
        "--model",
        default=None,
        help="source components as `xtml fit --model` takes them (default: chosen by the quick fit)",
    )
    like.add_argument("--energy", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"), help="keV")
    like.add_argument(
        "--pi",
        type=int,
        nargs=2,
        metavar=("LO", "HI"),
        help="event files: PI channels LO <= PI < HI (as the file numbers them)",
    )
    like.add_argument("--dt", type=float, default=None, help="bin time, s (default: from the files)")
    like.add_argument(
        "--detectors",
        type=_at_least(1),
        default=None,
        help="independent detectors summed in the files, where they do not say (RXTE PCA light curves)",
    )
    like.add_argument("--n-train", type=_at_least(100), default=20_000, help="training simulations (20000)")
    like.add_argument(
        "--n-test", type=_at_least(100), default=1_000, help="test and recalibration simulations (1000 each)"
    )
    like.add_argument(
        "--n-sim", type=_at_least(0), default=100, help="simulations of each calibrated LRT (100; 0: none)"
    )
    like.add_argument("--seed", type=int, default=0, help="seed of the simulations (default 0)")
    like.add_argument("--json", action="store_true", help="print the answer as JSON")
    sbi_train.add_argument("--overwrite", action="store_true", help="delete an existing run folder first")
    sbi_train.add_argument("--threads", type=int, default=None, help="torch threads (default: all CPUs)")
    sbi_train.add_argument(
        "--no-progress", action="store_true", help="no progress lines (bars only ever on a terminal)"
    )
    add_dask_arguments(sbi_train)  # the simulations on Dask (a gain beyond 2 cores: docs/cluster.md)
    sbi_train.set_defaults(func=_cmd_sbi_train)
    sbi_infer = sbi_sub.add_parser(
        "infer",
        help="posterior samples, summary table and corner plot for one observation",
        description="Apply a trained, calibrated posterior to one observation: a row of an xtml dataset "
        "(DIR.zarr --index I) or the FITS event files of its modules (summed on their common GTIs; the "
        "spectrum is made on the trained grid: same bin time, segment length, number of segments and "
        "rebinning). The run's scope gate checks that the observation resembles the training data and says "
        "so "
        "loudly when it does not. Exit status 1 if the posterior is uncalibrated (only with "
        "--allow-uncalibrated) or the observation is out of scope.",
    )
    sbi_infer.add_argument(
        "run", type=Path, help="run folder written by `xtml sbi train`, or its bundle (xtml export)"
    )
    sbi_infer.add_argument("inputs", type=Path, nargs="+", help="a dataset (DIR.zarr) or event file(s)")
    sbi_infer.add_argument("--index", type=int, default=0, help="datasets: the row to analyse (default 0)")
    sbi_infer.add_argument("--n-samples", type=int, default=10_000, help="posterior samples (default 10000)")
    sbi_infer.add_argument("--seed", type=int, default=0, help="random seed of the samples (default 0)")
    sbi_infer.add_argument("--samples", type=Path, default=None, help="save the samples to this .npz")
    sbi_infer.add_argument("--plot", type=Path, default=None, help="save a corner plot to this PNG")
    sbi_infer.add_argument("--json", action="store_true", help="print the summary as JSON")
    sbi_infer.add_argument(
        "--allow-uncalibrated", action="store_true", help="use a posterior that failed calibration (marked)"
    )
    sbi_infer.set_defaults(func=_cmd_sbi_infer)

    analyze = sub.add_parser(
        "analyze",
        help="apply trained runs to real event files or light curves, with scope flags",
        description="Read each file (FITS event files of NuSTAR, NICER, RXTE, XMM-Newton, Chandra...; FITS "
        "or ASCII light curves), make its spectrum on the exact grid of each run, and print a table: file, "
        "mission, target, exposure, rate, the answer (calibrated probability of the run's best model, or the "
        "SBI posterior summary) and the scope flag with its reasons. Files that cannot be analysed get an "
        "error row and the others go on; exit status 1 if any file failed, 2 (one line per problem, no "
        "table) if no file could be analysed.",
    )
    analyze.add_argument("files", nargs="+", help="event or light-curve files, or glob patterns (quoted)")
    analyze.add_argument(
        "--run",
        type=Path,
        action="append",
        required=True,
        help="trained run folder or bundle (xtml export; repeat for several)",
    )
    analyze.add_argument("--energy", type=float, nargs=2, metavar=("LO", "HI"), help="energy band, keV")
    analyze.add_argument(
        "--pi",
        type=int,
        nargs=2,
        metavar=("LO", "HI"),
        help="event files: PI channels LO <= PI < HI (as the file numbers them)",
    )
    analyze.add_argument("--n-samples", type=int, default=2000, help="SBI posterior draws (default 2000)")
    analyze.add_argument("--seed", type=int, default=0, help="seed of the posterior draws (default 0)")
    analyze.add_argument("--plots", type=Path, default=None, help="write each analysed spectrum here")
    analyze.add_argument(
        "--allow-uncalibrated", action="store_true", help="use an SBI run that failed calibration"
    )
    analyze.add_argument(
        "--exclude-gaps",
        action="store_true",
        help="cut data gaps inside an event file's GTIs out of them (said in the notes) instead of letting "
        "the scope gate flag them",
    )
    analyze.add_argument("--json", action="store_true", help="print the rows as JSON")
    from xtml.parallel import add_dask_arguments

    add_dask_arguments(analyze)  # without them: 2 threads in this process
    analyze.set_defaults(func=_cmd_analyze)

    report = sub.add_parser(
        "report",
        help="write report.html and model_card.md for a run",
        description="One self-contained HTML report of a training run (after `xtml evaluate`) or an SBI run: "
        "what was asked, data and provenance, the reference against the ML, diagnostics, scope, performance "
        "maps, a model card and the lessons learned (where the ML lost to the reference or failed a check), "
        "generated from the results. Also writes model_card.md.",
    )
    report.add_argument("run", type=Path, help="run folder (xtml train + evaluate, or xtml sbi train)")
    report.add_argument(
        "--max-points",
        type=_at_least(1),
        default=2000,
        help="test rows in the embeddings and outlier search (default 2000)",
    )
    report.add_argument("--seed", type=int, default=0, help="seed of the row subset and t-SNE (default 0)")
    report.add_argument(
        "--applied",
        type=Path,
        metavar="ANALYSIS.json",
        help="the output of `xtml analyze FILE... --run RUN --json`: the model card says whether the "
        "training data look like the files the run was applied to (their scope flags)",
    )
    report.set_defaults(func=_cmd_report)

    runs = sub.add_parser(
        "runs",
        help="list, show, compare and verify recorded runs",
        description="Every xtml command that makes something (simulate, train, evaluate, sbi train) records "
        "a run: record.json with the resolved configuration, seeds, versions, platform, git revision, input "
        "hashes, metrics, checks and the hash of every produced file. Runs that failed a check or stopped "
        "stay listed, marked.",
    )
    runs_sub = runs.add_subparsers(dest="runs_command", metavar="ACTION", required=True)
    runs_list = runs_sub.add_parser("list", help="every run under a folder, oldest first, with its status")
    runs_list.add_argument("root", type=Path, nargs="?", default=Path("runs"), help="folder (default runs/)")
    runs_show = runs_sub.add_parser("show", help="one run: command, versions, seeds, inputs, metrics, checks")
    runs_show.add_argument("run", type=Path, help="run folder")
    runs_compare = runs_sub.add_parser(
        "compare", help="runs side by side: the configuration keys that differ, and every metric"
    )
    runs_compare.add_argument("runs", type=Path, nargs="+", help="two or more run folders")
    runs_verify = runs_sub.add_parser(
        "verify", help="check every file of a finished run against its recorded hash (exit 1 if any differs)"
    )
    runs_verify.add_argument("run", type=Path, help="run folder")
    runs.set_defaults(func=_cmd_runs)

    reproduce = sub.add_parser(
        "reproduce",
        help="re-execute a run from its record and check that it agrees",
        description="Run a simulate, train (with its evaluation) or sbi run again from its record alone, "
        "into another folder, then compare: produced datasets must hash the same; model files and metrics "
        "are compared bit for bit, and metrics that are not identical must agree within --rtol. The verdict "
        "(bit-for-bit, within tolerance, not reproduced) is printed and written to reproduction.json. "
        "Exit status 1 if not reproduced.",
    )
    reproduce.add_argument("run", type=Path, help="run folder")
    reproduce.add_argument(
        "--out", type=Path, default=None, help="folder of the new run (default: RUN.reproduced beside it)"
    )
    reproduce.add_argument(
        "--rtol", type=float, default=1e-6, help="relative tolerance for metrics (default 1e-6)"
    )
    reproduce.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    reproduce.add_argument("--no-progress", action="store_true", help="quiet")
    reproduce.set_defaults(func=_cmd_reproduce)

    export = sub.add_parser(
        "export",
        help="pack a trained run into one safe, shareable bundle (model.xtml.zip)",
        description="Pack a finished training run (with its evaluation) or SBI run: record and "
        "configuration, model files (safetensors, skops with a type allow-list, JSON; never pickle), "
        "model card, dataset card, training domain and scope gate with a sample of the training inputs, "
        "and BUNDLE.json with the hash of every member. Use it with `xtml analyze FILE --run "
        "model.xtml.zip` or `xtml import`.",
    )
    export.add_argument("run", type=Path, help="run folder (xtml train + evaluate, or xtml sbi train)")
    export.add_argument("--out", type=Path, required=True, help="bundle file, e.g. model.xtml.zip")
    export.set_defaults(func=_cmd_export)

    import_ = sub.add_parser(
        "import",
        help="check a bundle and unpack it into a run folder",
        description="Check a bundle before anything is unpacked (every member against BUNDLE.json and the "
        "run record; no pickle data, links, paths outside the bundle or unexpected file types) and unpack "
        "it into a run folder that xtml analyze, xtml sbi infer and xtml runs use like the original (it "
        "holds the model card made at export; a report is made where the run was trained).",
    )
    import_.add_argument("bundle", type=Path, help="bundle file (xtml export)")
    import_.add_argument("--to", type=Path, required=True, help="run folder to create")
    import_.add_argument("--overwrite", action="store_true", help="replace a non-empty --to")
    import_.set_defaults(func=_cmd_import)

    demo = sub.add_parser(
        "demo",
        help="the whole loop on the built-in default, into one run folder with report.html",
        description="Simulate QPO / no-QPO spectra seen by a NuSTAR-like detector with dead time, test "
        "classifiers against the likelihood-ratio test on the same locked test set, train and calibrate a "
        "neural posterior of the QPO under dead time next to the classical dead-time-aware and naive fits, "
        "write each run's report (diagnostics, scope), put real observations shipped with Stingray through "
        "both runs with their scope flags, and write report.html. About 4-6 minutes on 2 cores; --quick "
        "about 1-2.",
    )
    demo.add_argument("--out", type=Path, default=Path("runs/demo"), help="run folder (default: runs/demo)")
    demo.add_argument("--quick", action="store_true", help="smaller sizes, for a first look")
    demo.add_argument(
        "--n", type=int, default=None, help="simulated detection observations (default 4000; quick 1000)"
    )
    demo.add_argument("--seed", type=int, default=None, help="dataset seed (default: the configuration's)")
    demo.add_argument("--no-progress", action="store_true", help="do not show progress bars")
    demo.set_defaults(func=_cmd_demo)
    return parser


#: errno values of a write that the disk refused: named "cannot write PATH" in the one-line error
_WRITE_ERRNOS = frozenset(
    getattr(errno, name) for name in ("ENOSPC", "EDQUOT", "EROFS", "EFBIG") if hasattr(errno, name)
)


def _one_line(text: str) -> str:
    """An error text on one line (a library message may hold a table or a path with a newline)."""
    return "; ".join(part.strip() for part in str(text).splitlines() if part.strip()) or "unknown error"


def _os_error(err: OSError) -> str:
    """An OSError in words, naming the path: "cannot write runs/x/data.zarr/...: No space left on device"."""
    reason = err.strerror or str(err) or type(err).__name__
    if err.filename is None or err.filename == "":
        return reason
    path = str(err.filename) if isinstance(err.filename, int) else os.fsdecode(err.filename)
    if err.filename2 is not None:
        path += f" -> {str(err.filename2) if isinstance(err.filename2, int) else os.fsdecode(err.filename2)}"
    if err.errno in _WRITE_ERRNOS:
        return f"cannot write {path}: {reason}"
    if err.errno in (errno.EACCES, errno.EPERM):
        return f"cannot access {path}: {reason}"
    return f"{path}: {reason}"


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit status 2), like every other user error of ``xtml``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see {self.prog} --help)\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``xtml``; user errors print one clear line and exit with status 2.

    Errors are one line on stderr, ``xtml COMMAND: error: ...``: a ``ValueError`` of the library (bad
    input, refused runs), an ``OSError`` (a missing, unreadable or unwritable path, a full or read-only
    disk: the line names the path; a run being written stays recorded as incomplete and the same command
    resumes it) and a ``MemoryError``.  A run folder that already holds the finished run asked for is
    reported as "already complete" with the exit status of that run (0, or 1 for a failed check).
    Other exceptions are bugs and keep their traceback.

    OpenMP threads (PyTorch, scikit-learn's gradient boosting) wait passively unless the user chose
    otherwise: on a busy 2-core machine spinning threads made a CNN epoch 25x slower (408 s vs 16 s).
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = ["xtml", *(sys.argv[1:] if argv is None else argv)]
    sub = getattr(args, "sbi_command", None) or getattr(args, "runs_command", None)
    name = f"xtml {args.command}" + (f" {sub}" if sub else "")
    try:
        return int(args.func(args))
    except ValueError as err:
        from xtml.runs.folder import RunCompleteError

        if isinstance(err, RunCompleteError):
            r = err.record
            checks = ", ".join(c.name for c in r.failed_checks)
            print(
                f"{err.path}: already complete ({r.kind} run {r.run_id}, {r.status}"
                + (f": {checks}" if checks else "")
                + f", finished {r.finished}); nothing to do (--overwrite runs it again)"
            )
            return 0 if r.status == "complete" else 1
        print(f"{name}: error: {_one_line(str(err))}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (`xtml runs show RUN | head`): nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as err:
        print(f"{name}: error: {_one_line(_os_error(err))}", file=sys.stderr)
        return 2
    except MemoryError as err:
        detail = f" ({_one_line(str(err))})" if str(err) else ""
        print(
            f"{name}: error: out of memory{detail}; ask for less (smaller --n, --chunk-size or segments) "
            "or use a machine with more memory",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print(f"\n{name}: interrupted (a run being written is recorded as incomplete)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
