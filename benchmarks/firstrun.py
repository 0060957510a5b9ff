"""The first five minutes, timed as a user meets them: each command in a fresh process, as the console runs it.

    python benchmarks/firstrun.py [--repeats 3] [--data sample_data/text]

Cold = an empty cache folder; cached = the same command again (every embedding and score read back). Per
command: wall seconds (median), CPU seconds (user + system of the process), peak RSS, and whether torch or a
model library was imported. Wall time on a shared machine is noisy; CPU seconds are the steadier figure.
Results: benchmarks/results/firstrun.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
HEAVY = ("torch", "sentence_transformers", "open_clip", "cleanlab", "scipy.stats")
# Runs the CLI as the console script does, then reports which heavy modules the process imported.
PROBE = """
import json, sys
from labelaudit.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
sys.stdout.flush()
print("\\nHEAVY " + json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


def run(args: list[str], cwd: Path) -> dict[str, Any]:
    """One command in a fresh interpreter: its wall time, CPU time and peak RSS (os.wait4: this process's
    own figures, not the running maximum over every child) and the heavy modules it imported."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    stdout = process.stdout.read()
    _, _, usage = os.wait4(process.pid, 0)
    process.returncode = 0  # reaped above; keeps Popen from waiting again
    wall = time.perf_counter() - start
    heavy = next((json.loads(line[6:]) for line in stdout.splitlines() if line.startswith("HEAVY ")), None)
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": usage.ru_maxrss / 1024,  # Linux reports KiB
        "heavy_imports": heavy,
    }


def timed(args: list[str], cwd: Path, repeats: int) -> dict[str, Any]:
    results = [run(args, cwd) for _ in range(repeats)]
    return {
        "command": "labelaudit " + " ".join(args),
        "runs": repeats,
        "wall_s_median": round(statistics.median(r["wall_s"] for r in results), 2),
        "cpu_s_median": round(statistics.median(r["cpu_s"] for r in results), 2),
        "peak_rss_mb": round(max(r["peak_rss_mb"] for r in results)),
        "heavy_imports": results[-1]["heavy_imports"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", type=Path, default=REPO / "sample_data" / "text")
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="labelaudit-firstrun-"))
    try:
        data = options.data.resolve()
        audit = ["audit", str(data), "--cache-dir", str(work / "cache"), "--quiet", "--overwrite"]
        rows = {
            "help": timed(["audit", "--help"], work, options.repeats),
            "gate_missing_report": timed(["gate", str(work / "nonexistent"), "--max-error-rate", "0.1"], work, 3),
            "audit_missing_data": timed(["audit", str(work / "nonexistent")], work, options.repeats),
            # Cold needs an empty cache every time: one run (it is minutes on a slow machine).
            "audit_cold": timed([*audit, "--out", str(work / "cold")], work, 1),
            "audit_cached": timed([*audit, "--out", str(work / "cached")], work, options.repeats),
        }
        cold = json.loads((work / "cold" / "run.json").read_text())
        cached = json.loads((work / "cached" / "run.json").read_text())
        same = all(
            (work / "cold" / name).read_bytes() == (work / "cached" / name).read_bytes()
            for name in ("report.csv", "classes.csv", "summary.json", "report.html")
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    payload = {
        "data": str(options.data.relative_to(REPO) if options.data.is_relative_to(REPO) else options.data),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "encoder": cold.get("platform", {}),
        "cold_model_loaded": cold.get("model_loaded"),
        "cached_model_loaded": cached.get("model_loaded"),
        "cold_timings_s": cold["timings_s"],
        "cached_timings_s": cached["timings_s"],
        "cached_report_identical_to_cold": same,
        "commands": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "firstrun.json").write_text(json.dumps(payload, indent=2) + "\n")
    lines = [
        f"# First-run timings ({payload['data']}, {os.cpu_count()} CPU(s))",
        "",
        "| command | runs | wall s (median) | CPU s (median) | peak RSS MB | heavy imports |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, row in rows.items():
        heavy = ", ".join(row["heavy_imports"] or []) or "none"
        lines.append(
            f"| {name} | {row['runs']} | {row['wall_s_median']} | {row['cpu_s_median']} | {row['peak_rss_mb']} | "
            f"{heavy} |"
        )
    lines += ["", f"Cached report byte-identical to the cold one: {same}; model loaded on the cached run: "
              f"{payload['cached_model_loaded']}."]  # fmt: skip
    (RESULTS / "firstrun.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
