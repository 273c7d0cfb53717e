"""Benchmark: a chapter run in one process against the same run on two Dask workers.

Runs ``equivar run CHAPTERS --profile P`` end to end (sweep, then the notebooks) in fresh
subprocesses, each with its own empty result cache (so both arms compute everything) and
the shared data directory, once serially (no ``--workers``: units are computed by the
notebooks, one after another) and once with ``--workers 2`` (units on a local Dask cluster of
two single-threaded processes, then the notebooks two at a time). Rounds are interleaved
(serial, workers, serial, workers, ...) so machine load hits both alike; the thread policy
(one thread per process) is pinned and printed, and the load average is recorded before each
run. Writes ``benchmarks/results/workers.md`` and ``workers.json``.
Run: ``python benchmarks/workers.py --profile smoke --rounds 2 sector-reliance transfer``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
THREADS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "OMP_WAIT_POLICY": "PASSIVE"}
ARMS = {"serial": [], "--workers 2": ["--workers", "2"]}


def data_dir() -> str:
    """The data directory every run shares (downloads are not what is measured)."""
    sys.path.insert(0, str(ROOT))
    from equivar.paths import data_dir as where

    return str(where())


def run_once(chapters: list[str], profile: str, extra: list[str],
             data: str) -> tuple[float, dict[str, float]]:
    """Wall seconds of one ``equivar run`` with an empty cache and a scratch output, and the
    seconds per chapter (and sweep) that the run recorded in its ``run-info.json``."""
    with tempfile.TemporaryDirectory(prefix="equivar-bench-") as scratch:
        env = {**os.environ, **THREADS, "EQUIVAR_CACHE_DIR": f"{scratch}/cache",
               "EQUIVAR_DATA_DIR": data, "EQUIVAR_FIGURES_DIR": f"{scratch}/figures"}
        cmd = [sys.executable, "-m", "equivar", "run", *chapters, "--profile", profile,
               "--output", f"{scratch}/out", *extra]
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if done.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
        info = json.loads(Path(f"{scratch}/out/run-info.json").read_text())["chapters"]
        return seconds, {stem: row["seconds"] for stem, row in info.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapters", nargs="+", help="chapter ids, e.g. sector-reliance transfer")
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    data = data_dir()
    print("threads:", " ".join(f"{k}={v}" for k, v in THREADS.items()), flush=True)
    times = {arm: [] for arm in ARMS}
    parts = {arm: [] for arm in ARMS}   # per round: seconds per chapter, as each run recorded
    loads = []
    for r in range(args.rounds):
        for arm, extra in ARMS.items():
            loads.append(os.getloadavg()[0])
            seconds, per_chapter = run_once(args.chapters, args.profile, extra, data)
            times[arm].append(seconds)
            parts[arm].append(per_chapter)
            print(f"round {r + 1} {arm}: {times[arm][-1]:.1f} s (load {loads[-1]:.2f})",
                  flush=True)
    ratios = [s / w for s, w in zip(times["serial"], times["--workers 2"])]
    result = {"chapters": args.chapters, "profile": args.profile, "rounds": args.rounds,
              "threads": THREADS, "seconds": times, "seconds per chapter": parts,
              "ratio serial / workers": ratios,
              "median ratio": statistics.median(ratios), "load averages": loads,
              "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count()}}
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "workers.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# `equivar run {' '.join(args.chapters)} --profile {args.profile}`: serial "
             f"against `--workers 2`", "",
             f"Empty cache per run, "
             f"{'1 round' if args.rounds == 1 else f'{args.rounds} interleaved rounds'} "
             f"(serial first), one thread per process "
             f"({', '.join(f'{k}={v}' for k, v in THREADS.items())}), {os.cpu_count()} cores; "
             f"load averages before the runs: {', '.join(f'{x:.2f}' for x in loads)}.", "",
             "| round | serial (s) | --workers 2 (s) | serial / workers |", "|---|---|---|---|"]
    lines += [f"| {i + 1} | {s:.1f} | {w:.1f} | {s / w:.2f}× |"
              for i, (s, w) in enumerate(zip(times["serial"], times["--workers 2"]))]
    stems = sorted({stem for rounds in parts.values() for run in rounds for stem in run})
    lines += ["", "Seconds per chapter as each run recorded them (median over rounds; serially a "
                  "chapter computes its own units, with workers it reads them from the cache the "
                  "sweep filled):", "", "| part | serial (s) | --workers 2 (s) |", "|---|---|---|"]
    lines += [f"| {stem} | " + " | ".join(
        f"{statistics.median(run[stem] for run in parts[arm] if stem in run):.1f}"
        if any(stem in run for run in parts[arm]) else "–" for arm in ARMS) + " |"
        for stem in stems]
    lines += ["", f"Median ratio: {result['median ratio']:.2f}× (a ratio measured side by side; "
                  f"the absolute seconds move with the machine's load)."]
    (out / "workers.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
