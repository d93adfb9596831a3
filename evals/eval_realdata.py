"""Real observations in, answers out (issue 20): what xtml says about each file of ``../shared/realdata``.

For every file listed in ``../shared/realdata/SOURCES.md`` that holds a timing observation:

1. the matched observation block and detector (:func:`xtml.workflows.matched.match_observation`);
2. the quick dead-time-aware fit that sets a matched run's model and priors
   (:func:`xtml.workflows.matched.quick_fit`): the continuum chosen by AIC and whether the calibrated
   likelihood-ratio test (``XTML_EVAL_NSIM`` simulations, default 100, alpha 0.01) requires a QPO — the
   claim a user would read (PSR J0218+4232 at 0.5 ct/s: none expected);
3. for the three pulsars, ``xtml search``'s periodicity search with its calibrated, trial-corrected p.

Results: ``evals/out/realdata.json`` and a table printed at the end (``XTML_EVAL_FILES``: a comma-separated
subset of the files). Run: ``python evals/eval_realdata.py``
(about 15 min on 2 cores, most of it the LRT calibrations).
"""

from __future__ import annotations

import json
import os
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REALDATA = ROOT.parent / "shared" / "realdata"
OUT = ROOT / "evals" / "out"
N_SIM = int(os.environ.get("XTML_EVAL_NSIM", "100"))

FILES = {
    "B1509_RXTE_short.fits": "PSR B1509-58, RXTE: pulsar at 6.597 Hz",
    "sgr1830kgfilt.evt": "SGR 1830-0645, NICER: spin 0.0960 Hz",
    "ngc300nicer_bary.evt": "NGC 300 ULX-1, NICER: spin 0.0504 Hz",
    "J0218_nicer_2070030405_cleanfilt_cut_bary.evt": "PSR J0218+4232, NICER, 0.5 ct/s: no QPO expected",
    "std1_ao9_01_01.lc": "Cyg X-2, RXTE Standard-1, 1 s bins",
    "cygx1_test_20ms_2to4keV.lc": "Cyg X-1, RXTE 20 ms (1/64 s resampled)",
}
PULSARS = {"B1509_RXTE_short.fits": 6.597, "sgr1830kgfilt.evt": 0.0960, "ngc300nicer_bary.evt": 0.0504}


def main() -> None:
    from xtml.reference.fitcli import load_spectrum
    from xtml.reference.search import periodicity_search
    from xtml.workflows.matched import match_observation, observation_spectrum_of, quick_fit

    if not REALDATA.is_dir():
        raise SystemExit(f"{REALDATA} is absent: the real observations are needed")
    OUT.mkdir(parents=True, exist_ok=True)
    cyg1 = OUT / "cygx1_test_20ms_2to4keV.lc"
    if not cyg1.is_file():
        with zipfile.ZipFile(REALDATA / "cygx1_test_20ms_2to4keV.lc.zip") as z:
            name = next(n for n in z.namelist() if n.endswith(".lc") and "__MACOSX" not in n)
            cyg1.write_bytes(z.read(name))
    results = []
    only = os.environ.get("XTML_EVAL_FILES")  # a comma-separated subset of the file names
    for name, what in FILES.items():
        if only and name not in only.split(","):
            continue
        path = cyg1 if name == cyg1.name else REALDATA / name
        t0 = time.perf_counter()
        row: dict = {"file": name, "what": what}
        try:
            match = match_observation([path])
            row["observation"] = match.text()
            ps = observation_spectrum_of(match, 0, rebin_log=match.rebin_log)
            fit = quick_fit(ps, match.detector, n_sim=N_SIM)
            row["model"], row["chosen_by"], row["tests"] = fit.model, fit.chosen_by, list(fit.tests)
            row["qpo_claimed"] = "qpo=" in fit.model
        except ValueError as err:
            row["error"] = str(err)
        if name in PULSARS:
            fast = PULSARS[name] > 1  # the grids of BENCHMARKS.md's search table
            spec, _ = load_spectrum(path, dt=1 / 64 if fast else 1 / 8, segment_size=512.0 if fast else 128.0)
            s = periodicity_search(spec, n_sim=N_SIM, rng=0)
            row["search"] = s.summary()
        row["seconds"] = time.perf_counter() - t0
        results.append(row)
        print(f"== {name} ({what}), {row['seconds']:.0f} s")
        for key in ("observation", "model", "chosen_by", "error", "search"):
            if key in row:
                print(f"{key}: {row[key]}")
        for t in row.get("tests", []):
            print(f"  {t}")
    (OUT / "realdata.json").write_text(json.dumps(results, indent=1))
    print("\n| file | model chosen | QPO claimed | seconds |\n|---|---|---|---|")
    for r in results:
        model = r.get("model", r.get("error"))
        print(f"| {r['file']} | {model} | {r.get('qpo_claimed')} | {r['seconds']:.0f} |")


if __name__ == "__main__":
    main()
