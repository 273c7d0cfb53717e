"""Benchmark: the simulator against the old dense path and PennyLane, on one batch, in one run.

Times, on the same batch of real Fashion-MNIST states (16 rings × 8 angles, 7 qubits), forward
only (what evaluation does):

* ``simulator``: ``QuantumClassifier.readout``, i.e. :mod:`equivar.core.simulator` (weights →
  gates, then the batch through the structured circuit);
* ``old dense path``: the previous fast path: build the circuit's dense unitary from its
  PennyLane operations, apply it to the batch, read out (``benchmarks/reference_paths.py``);
* ``dense matmul``: a plain numpy product with a precomputed unitary and the same readout
  (the floor any dense-unitary method can reach);
* ``QNode, broadcast``: PennyLane ``default.qubit`` (torch, backprop) with the whole batch;
* ``QNode, per sample``: a Python loop of QNode calls (timed once: it is slow).

Checks that all agree to 1e-10, prints a Markdown table with ratios and writes it (and a JSON
record) to ``--out``. Run with ``make bench`` or ``python benchmarks/fast_path.py``. The full
comparison (7-13 qubits, forward + backward, lightning, memory) is ``benchmarks/simulator.py``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_paths import make_dense_old  # noqa: E402

from equivar import data  # noqa: E402
from equivar.core import rings  # noqa: E402
from equivar.core.model import (ModelConfig, QuantumClassifier, amplitudes,  # noqa: E402
                                readout_diagonals)


def best_time(fn, repeats: int, min_seconds: float = 0.2) -> float:
    """Median over ``repeats`` rounds of the mean time per call (calls per round grow until a
    round lasts ``min_seconds``)."""
    fn()  # warm-up
    calls = 1
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds or calls >= 1024:
            break
        calls *= 2
    rounds = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        rounds.append((time.perf_counter() - start) / calls)
    return statistics.median(rounds)


def run(variant: str, n_layers: int, batch: int, repeats: int) -> dict:
    images, _ = data.load("fashion-mnist", "test", n=batch, seed=0)
    states = torch.as_tensor(amplitudes(rings.sample(images, 16, 8)))
    model = QuantumClassifier(ModelConfig(variant=variant, n_layers=n_layers), seed=0)
    qnode = model.qnode()
    old = make_dense_old(model)
    with torch.no_grad():
        U = model.unitary()
        U_np = U.numpy()
        diag_np = readout_diagonals(model.config).numpy()
        x_np = states.numpy().astype(complex)

        def fast():
            return model.readout(states)

        def old_dense():
            return old(states)

        def dense():
            psi = x_np @ U_np.T
            return (psi.real ** 2 + psi.imag ** 2) @ diag_np.T

        def broadcast():
            return qnode(states)

        def per_sample():
            return torch.stack([qnode(s) for s in states])

        start = time.perf_counter()
        looped = per_sample()  # slow: run once, and time that run
        per_sample_seconds = time.perf_counter() - start
        outputs = {"fast": fast(), "old_dense": old_dense(),
                   "dense": torch.as_tensor(dense()), "broadcast": broadcast(),
                   "per_sample": looped}
        worst = max(float((o - outputs["fast"]).abs().max()) for o in outputs.values())
        if worst > 1e-10:
            raise AssertionError(f"paths disagree by {worst:.2e}")
        times = {"fast": best_time(fast, repeats), "old_dense": best_time(old_dense, repeats),
                 "dense": best_time(dense, repeats), "broadcast": best_time(broadcast, repeats),
                 "per_sample": per_sample_seconds}
    return {"variant": variant, "n_layers": n_layers, "batch": batch, "max_disagreement": worst,
            "seconds": times}


def table(results: list[dict]) -> str:
    rows = ["| model | simulator | old dense path | dense matmul (U cached) | QNode broadcast | "
            "QNode per sample | broadcast / simulator | old dense / simulator | "
            "simulator / dense matmul |",
            "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        t = {k: v * 1e3 for k, v in r["seconds"].items()}
        rows.append(
            f"| {r['variant']}, {r['n_layers']} layers, batch {r['batch']} | {t['fast']:.2f} ms | "
            f"{t['old_dense']:.2f} ms | {t['dense']:.2f} ms | {t['broadcast']:.1f} ms | "
            f"{t['per_sample']:.0f} ms | {t['broadcast'] / t['fast']:.0f}× | "
            f"{t['old_dense'] / t['fast']:.1f}× | {t['fast'] / t['dense']:.1f}× |")
    return "\n".join(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    results = [run("west", 4, args.batch, args.repeats), run("sector", 4, args.batch, args.repeats)]
    text = table(results)
    machine = (f"Python {platform.python_version()}, torch {torch.__version__}, "
               f"{torch.get_num_threads()} threads, {platform.machine()}, "
               f"load average {os.getloadavg()[0]:.2f}")
    print(text)
    print(f"\n{machine}; all paths agree to {max(r['max_disagreement'] for r in results):.1e}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "fast_path.json").write_text(json.dumps({"machine": machine, "results": results},
                                                   indent=2) + "\n")
    (out / "fast_path.md").write_text(text + f"\n\n{machine}.\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
