"""Peak memory of `xtml simulate` for many spectra: bounded whatever N is.

Runs the CLI in a child process for growing N and reads the child's peak RSS (ru_maxrss).
Anchor: the 2 GB budget of issue 2 (ratio = peak RSS / 2 GB, target < 1), and the RSS at the
smallest N (the ratio largest / smallest N shows that memory does not grow with N).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIG = Path(__file__).with_name("memory_512.toml")
SIZES = [int(x) for x in os.environ.get("XTML_BENCH_MEMORY_N", "10000,100000,1000000").split(",")]
BUDGET = 2 * 1024**3


def run(n: int, workdir: Path) -> tuple[float, float]:
    out = workdir / f"m{n}.zarr"
    code = (
        "import resource, sys; from xtml.cli import main; rc = main(sys.argv[1:]); "
        "print('MAXRSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)"
    )
    t = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "simulate",
            str(CONFIG),
            "--n",
            str(n),
            "--out",
            str(out),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    elapsed = time.perf_counter() - t
    kb = next(int(line.split()[1]) for line in proc.stdout.splitlines() if line.startswith("MAXRSS_KB"))
    shutil.rmtree(out)
    return kb * 1024, elapsed


def main() -> dict[str, float]:
    res: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in SIZES:
            rss, elapsed = run(n, Path(tmp))
            res[f"peak_rss_bytes_n{n}"] = rss
            res[f"seconds_n{n}"] = elapsed
            print(
                f"  xtml simulate n={n:>9,d}: peak RSS {rss / 1024**2:7.0f} MiB "
                f"({rss / BUDGET:.2f} of 2 GB), {elapsed:7.1f} s"
            )
    first, last = res[f"peak_rss_bytes_n{SIZES[0]}"], res[f"peak_rss_bytes_n{SIZES[-1]}"]
    res["rss_ratio_largest_to_smallest"] = last / first
    res["rss_ratio_to_budget"] = last / BUDGET
    print(f"  peak RSS n={SIZES[-1]:,} / n={SIZES[0]:,}: {last / first:.2f}   (bounded memory: ~1)")
    print(f"  peak RSS / 2 GB budget: {last / BUDGET:.2f}   (target < 1)")
    return res


if __name__ == "__main__":
    main()
