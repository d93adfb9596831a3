"""Run every benchmark in bench/ and write the figures to bench/out/results.json."""

from __future__ import annotations

import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import bench_analyze
import bench_cnn
import bench_deadtime
import bench_events
import bench_fit
import bench_memory
import bench_parallel
import bench_qpo
import bench_report
import bench_simulate
import bench_zhang


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # show each figure as soon as it is measured
    machine = {
        "date_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": len(os.sched_getaffinity(0)),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
    }
    print(f"machine: {machine}")
    results = {"machine": machine}
    print("\n== bench_simulate ==")
    results["simulate"] = bench_simulate.main()
    print("\n== bench_memory ==")
    results["memory"] = bench_memory.main()
    print("\n== bench_deadtime ==")
    results["deadtime"] = bench_deadtime.main()
    print("\n== bench_zhang ==")
    results["zhang"] = bench_zhang.main()
    print("\n== bench_fit ==")
    results["fit"] = bench_fit.main()
    print("\n== bench_qpo ==")
    results["qpo"] = bench_qpo.main()
    print("\n== bench_cnn ==")
    results["cnn"] = bench_cnn.main()
    print("\n== bench_analyze ==")
    results["analyze"] = bench_analyze.main()
    print("\n== bench_events ==")
    results["events"] = bench_events.main()
    print("\n== bench_report ==")
    results["report"] = bench_report.main()
    print("\n== bench_parallel ==")
    results["parallel"] = bench_parallel.main()
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(f"\nwrote {out / 'results.json'}")


if __name__ == "__main__":
    main()
