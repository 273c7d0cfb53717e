"""Benchmark: the thread policy. One training step per configuration, in fresh processes.

Times, in subprocesses started with each thread configuration, a forward + backward step of
(a) the quantum classifier (West, 6 layers, batch 256, 7 qubits) and (b) the small CNN
surrogate (batch 128, 28×28), the two hot loops of the chapters. Configurations: 1 thread;
2 threads (torch's default here); 2 threads with ``OMP_WAIT_POLICY=PASSIVE``. Rounds are
interleaved (every configuration once per round, in turn), so machine load hits all alike;
the machine's load average is recorded. Then the same rounds again in two situations of a
shared machine: with ``--busy N`` busy-looping Python processes competing for the cores, and
with two copies of the same configuration running at once (two sweep workers, or a notebook
and a test run, each with its own thread pool). Writes ``benchmarks/results/threads.md`` and ``threads.json``.
Run: ``python benchmarks/threads.py``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

CONFIGS = {
    "1 thread": {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"},
    "2 threads": {"OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"},
    "2 threads, PASSIVE": {"OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2",
                           "OMP_WAIT_POLICY": "PASSIVE"},
}

WORKER = r"""
import json, sys, time
import numpy as np, torch
from equivar.core.model import ModelConfig, QuantumClassifier, amplitudes
from equivar.learn.surrogates import SmallCNN
rng = np.random.default_rng(0)
states = torch.as_tensor(amplitudes(rng.random((256, 16, 8))))
labels = torch.as_tensor(rng.integers(0, 10, 256))
qnn = QuantumClassifier(ModelConfig(n_layers=6), seed=0)
cnn = SmallCNN((28, 28), 10)
images = torch.rand(128, 1, 28, 28, generator=torch.Generator().manual_seed(0))
def step(model, x, y):
    loss = torch.nn.functional.cross_entropy(model(x), y)
    torch.autograd.grad(loss, [p for p in model.parameters()])
out = {}
for name, model, x, y in (("quantum", qnn, states, labels), ("cnn", cnn, images, labels[:128])):
    step(model, x, y)
    times = []
    for _ in range(int(sys.argv[1])):
        t = time.perf_counter(); step(model, x, y); times.append(time.perf_counter() - t)
    out[name] = float(np.median(times))
out["torch_threads"] = torch.get_num_threads()
print(json.dumps(out))
"""


def run(config: dict[str, str], steps: int, copies: int = 1) -> dict:
    """Medians of ``copies`` simultaneous processes with ``config`` (their mean)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                        "OMP_WAIT_POLICY")}
    env.update(config)
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(steps)], env=env,
                              stdout=subprocess.PIPE, text=True) for _ in range(copies)]
    outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    return {part: statistics.mean(o[part] for o in outs) for part in ("quantum", "cnn")}


BUSY = "while True: pass"


def measure(rounds: int, steps: int, copies: int = 1) -> tuple[dict, dict, list]:
    samples = {name: {"quantum": [], "cnn": []} for name in CONFIGS}
    loads = [os.getloadavg()[0]]
    for _ in range(rounds):
        for name, config in CONFIGS.items():
            result = run(config, steps, copies)
            for part in ("quantum", "cnn"):
                samples[name][part].append(result[part])
        loads.append(os.getloadavg()[0])
    medians = {name: {part: statistics.median(v) for part, v in parts.items()}
               for name, parts in samples.items()}
    return medians, samples, loads


def table(medians: dict, loads: list, title: str) -> list[str]:
    base = medians["1 thread"]
    lines = [f"**{title}** (load average {min(loads):.2f}-{max(loads):.2f})", "",
             "| threads | quantum step (ms) | × 1 thread | CNN step (ms) | × 1 thread |",
             "|---|---|---|---|---|"]
    for name, m in medians.items():
        lines.append(f"| {name} | {1e3 * m['quantum']:.2f} | {m['quantum'] / base['quantum']:.2f} "
                     f"| {1e3 * m['cnn']:.2f} | {m['cnn'] / base['cnn']:.2f} |")
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--busy", type=int, default=2, help="competing busy processes")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    lines = [f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
             f"Python {platform.python_version()}; {args.rounds} interleaved rounds × "
             f"{args.steps} steps per configuration, median of the rounds' medians; each "
             "configuration in a fresh process.", ""]
    record = {}
    medians, samples, loads = measure(args.rounds, args.steps)
    lines += table(medians, loads, "As the machine is")
    record["idle"] = {"medians": medians, "samples": samples, "load": loads}
    if args.busy:
        hogs = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(args.busy)]
        try:
            medians, samples, loads = measure(args.rounds, args.steps)
        finally:
            for hog in hogs:
                hog.kill()
        lines += table(medians, loads, f"With {args.busy} busy processes competing")
        record["busy"] = {"medians": medians, "samples": samples, "load": loads,
                          "busy_processes": args.busy}
    medians, samples, loads = measure(args.rounds, args.steps, copies=2)
    lines += table(medians, loads, "Two copies of each configuration at once (mean of the two)")
    record["twins"] = {"medians": medians, "samples": samples, "load": loads}
    text = "\n".join(lines)
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "threads.md").write_text(text)
    (out / "threads.json").write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
