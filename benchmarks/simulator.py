"""Benchmark: the structured simulator against the old dense path and PennyLane, in one run.

West's model (4 layers, "probs" readout, 10 classes) at 7, 9, 11 and 13 qubits (n_ang = 3,
n_rad = n - 3), and the sector variant at 7 and 9 qubits; batches of 256 and 4096 random
unit vectors (the states' content does not change the cost). For each case, forward
(``no_grad``) and forward + backward (cross-entropy on ``scale × readout``, gradient with
respect to the weights via ``torch.autograd.grad``) of:

* ``simulator``: :mod:`equivar.core.simulator` (what ``QuantumClassifier.forward`` runs; for
  these readouts, the readout pulled back to rows of the radial unitaries);
* ``simulator (layers)``: the same module with its layer-by-layer kernel forced
  (``simulator.KERNEL = "layers"``), the fast path before the rows kernel;
* ``dense (old)``: the previous fast path (dense unitary compiled every call), up to 9 qubits;
* ``default.qubit``: PennyLane, torch interface, backprop, whole batch broadcast;
* ``lightning.qubit``: adjoint differentiation, Projector expectations. It runs one tape per
  state, so it is timed on a few states and **extrapolated** linearly to the batch;
* ``dense floor``: a precomputed unitary times the batch (forward only), up to 11 qubits.

Rounds are interleaved (round-robin over the methods, median over rounds); the thread count is
pinned to 1 and printed with the machine load. Also: agreement of all methods with the
simulator (values and gradients, 7-13 qubits), a 13-qubit training epoch, a scaling
measurement (CSV + PNG) and peak memory per method (a fresh child process per measurement).
Writes ``simulator.md``, ``simulator.json``, ``simulator_scaling.csv`` and
``simulator_scaling.png`` to ``--out``. Run: ``python benchmarks/simulator.py`` (about 15 min;
``--quick`` for a smoke run of a few seconds).
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_paths import (make_default_qubit, make_dense_floor, make_dense_old,  # noqa: E402
                             make_lightning)

from equivar.core import simulator  # noqa: E402
from equivar.core.model import ModelConfig, QuantumClassifier  # noqa: E402

METHODS = ("simulator", "simulator (layers)", "dense (old)", "default.qubit", "lightning.qubit",
           "dense floor")
SCALE = 10.0


def config(n_qubits: int, variant: str = "west", n_layers: int = 4) -> ModelConfig:
    n_rad = n_qubits - 3
    return ModelConfig(n_rad=n_rad, n_ang=3, n_layers=n_layers, variant=variant,
                       readout="probs", n_classes=min(10, 2 ** n_rad), scale=SCALE)


def random_states(n: int, dim: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=gen, dtype=torch.float64)
    return x / x.norm(dim=1, keepdim=True)


def layers_kernel(model: QuantumClassifier):
    """``model.readout`` with the simulator's layer-by-layer kernel forced."""
    def run(states):
        saved, simulator.KERNEL = simulator.KERNEL, "layers"
        try:
            return model.readout(states)
        finally:
            simulator.KERNEL = saved
    return run


def make(method: str, model: QuantumClassifier):
    if method == "simulator":
        return model.readout
    if method == "simulator (layers)":
        return layers_kernel(model)
    return {"dense (old)": make_dense_old, "default.qubit": make_default_qubit,
            "lightning.qubit": make_lightning, "dense floor": make_dense_floor}[method](model)


def applicable(method: str, n_qubits: int, batch: int, variant: str) -> str | None:
    """None if the method runs for this case, else why not."""
    if method == "dense (old)" and n_qubits > 9:
        return "skipped ≥ 11 qubits (one unitary build ≈ seconds to minutes)"
    if method == "dense floor" and (n_qubits > 11 or (n_qubits == 11 and batch > 256)):
        return "skipped (a 2^n × 2^n unitary times the batch does not fit the time budget)"
    return None


def loss_fn(out: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(SCALE * out, labels)


class Timed:
    """One method on one case: forward and forward+backward on ``timed_batch`` states,
    scaled to the case's batch when ``timed_batch`` is smaller (extrapolation)."""

    def __init__(self, method, model, states, labels, timed_batch, forward_only=False):
        self.method, self.model = method, model
        self.fn = make(method, model)
        self.states, self.labels = states[:timed_batch], labels[:timed_batch]
        self.factor = len(states) / timed_batch
        self.forward_only = forward_only
        self.times = {"forward": [], "forward+backward": []}
        self.cpu = {"forward": [], "forward+backward": []}
        self.outputs = None

    def warm_up(self):
        with torch.no_grad():
            self.fn(self.states[:2])

    def round(self):
        start, cpu = time.perf_counter(), time.process_time()
        with torch.no_grad():
            out = self.fn(self.states)
        self.times["forward"].append((time.perf_counter() - start) * self.factor)
        self.cpu["forward"].append((time.process_time() - cpu) * self.factor)
        if self.forward_only:
            self.outputs = self.outputs or (out, None)
            return
        start, cpu = time.perf_counter(), time.process_time()
        out = self.fn(self.states)
        (grad,) = torch.autograd.grad(loss_fn(out, self.labels), self.model.weights)
        self.times["forward+backward"].append((time.perf_counter() - start) * self.factor)
        self.cpu["forward+backward"].append((time.process_time() - cpu) * self.factor)
        if self.outputs is None:
            self.outputs = (out.detach(), grad)

    def median(self, kind: str, cpu: bool = False) -> float | None:
        values = (self.cpu if cpu else self.times)[kind]
        return statistics.median(values) if values else None


def time_case(n_qubits, variant, batch, rounds, quick):
    """All applicable methods on one case, interleaved; returns a result row."""
    cfg = config(n_qubits, variant)
    dim = 2 ** cfg.n_wires
    states = random_states(batch, dim, seed=n_qubits)
    labels = torch.arange(batch) % cfg.n_classes
    row = {"qubits": n_qubits, "variant": variant, "batch": batch, "methods": {}}
    runners = []
    for method in METHODS:
        why = applicable(method, n_qubits, batch, variant)
        if why:
            row["methods"][method] = {"skipped": why}
            continue
        model = QuantumClassifier(cfg, seed=0)
        timed_batch = batch
        note = ""
        if method == "lightning.qubit":
            timed_batch = 1 if variant == "sector" else (2 if n_qubits >= 11 else 8)
            timed_batch = min(timed_batch, 2) if quick else timed_batch
            note = f"timed on {timed_batch} state(s), extrapolated ×{batch // timed_batch}"
        if method == "default.qubit" and batch > 256 and n_qubits >= (9 if quick else 11):
            timed_batch = 256
            note = f"timed on 256 states, extrapolated ×{batch // 256}"
        runner = Timed(method, model, states, labels, timed_batch,
                       forward_only=method == "dense floor")
        runner.note = note
        runners.append(runner)
    for runner in runners:
        runner.warm_up()
    for r in range(rounds):
        for runner in runners:
            slow = runner.median("forward+backward") or runner.median("forward") or 0
            if r >= 2 and slow > 20:   # very slow methods: 2 rounds
                continue
            runner.round()
    ref_out, ref_grad = runners[0].outputs
    for runner in runners:
        out, grad = runner.outputs
        n = len(out)
        entry = {"forward_s": runner.median("forward"),
                 "forward_backward_s": runner.median("forward+backward"),
                 "forward_cpu_s": runner.median("forward", cpu=True),
                 "forward_backward_cpu_s": runner.median("forward+backward", cpu=True),
                 "rounds": len(runner.times["forward"]), "note": runner.note,
                 "max_value_difference": float((out - ref_out[:n]).abs().max())}
        if grad is not None and n == len(ref_out):
            entry["max_gradient_difference"] = float((grad - ref_grad).abs().max())
        row["methods"][runner.method] = entry
    return row


# ----------------------------------------------------------------------------- agreement

def agreement(sizes, quick):
    """Values, weight gradients and input gradients of every method against the simulator on a
    few states (input gradients: default.qubit only; adjoint cannot differentiate StatePrep)."""
    rows = []
    for n_qubits, variant in sizes:
        cfg = config(n_qubits, variant)
        model = QuantumClassifier(cfg, seed=1)
        x = random_states(4 if n_qubits < 13 else 2, 2 ** cfg.n_wires, seed=100 + n_qubits)
        labels = torch.arange(len(x)) % cfg.n_classes

        def grads(fn, states):
            a = states.clone().requires_grad_(True)
            out = fn(a)
            return (out.detach(), *torch.autograd.grad(loss_fn(out, labels[:len(a)]),
                                                       (model.weights, a), allow_unused=True))

        ref = grads(model.readout, x)
        row = {"qubits": n_qubits, "variant": variant}
        for method in ("simulator (layers)", "default.qubit", "lightning.qubit", "dense (old)"):
            if method == "dense (old)" and n_qubits > 9:
                continue
            if method == "lightning.qubit" and (quick or variant == "sector") and n_qubits > 7:
                continue
            fn = make(method, model)
            states = x[:1] if method == "lightning.qubit" else x
            if method == "lightning.qubit":
                out = fn(states)
                (gw,) = torch.autograd.grad(loss_fn(out, labels[:1]), model.weights)
                sim_out = model.readout(states)
                (sim_gw,) = torch.autograd.grad(loss_fn(sim_out, labels[:1]), model.weights)
                row[method] = {"values": float((out.detach() - sim_out.detach()).abs().max()),
                               "weight_gradients": float((gw - sim_gw).abs().max())}
                continue
            out, gw, gx = grads(fn, states)
            row[method] = {"values": float((out - ref[0]).abs().max()),
                           "weight_gradients": float((gw - ref[1]).abs().max()),
                           "input_gradients": float((gx - ref[2]).abs().max())}
        # negative control: perturbed weights must move the output
        other = QuantumClassifier(cfg)
        with torch.no_grad():
            other.weights.copy_(model.weights + 0.05)
            row["negative_control"] = float((other.readout(x) - ref[0]).abs().max())
        rows.append(row)
        print(f"  agreement {n_qubits} qubits {variant}: {row}", flush=True)
    return rows


# ----------------------------------------------------------------------------- training epoch

def training_epoch(n_qubits, batch_size, n_images, repeats=1):
    """Seconds for one epoch of ``equivar.learn.train.fit`` (Adam, cross-entropy) on
    ``n_images`` random unit states with random labels (the cost does not depend on them);
    median of ``repeats`` epochs after a warm-up."""
    from equivar.learn.train import TrainConfig, fit
    cfg = config(n_qubits)
    states = random_states(n_images, 2 ** cfg.n_wires, seed=7)
    labels = torch.randint(0, cfg.n_classes, (n_images,), generator=torch.Generator().manual_seed(7))
    # warm-up: torch's first optimiser step pays a one-time lazy initialisation (about 1 s)
    fit(QuantumClassifier(cfg, seed=0), states[:8], labels[:8].numpy(),
        TrainConfig(epochs=1, batch_size=batch_size), progress=False)
    times = []
    for _ in range(repeats):
        model = QuantumClassifier(cfg, seed=0)
        start = time.perf_counter()
        fit(model, states, labels.numpy(), TrainConfig(epochs=1, batch_size=batch_size),
            progress=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# ----------------------------------------------------------------------------- scaling

def scaling(qubits, layer_counts, layer_qubits, batch, rounds):
    """Both simulator kernels' forward and forward+backward vs qubits (4 layers) and vs layers,
    interleaved."""
    rows = []
    cases = [(n, 4) for n in qubits] + [(layer_qubits, L) for L in layer_counts if L != 4]
    runners = []
    for n, L in cases:
        cfg = config(n, n_layers=L)
        states = random_states(batch, 2 ** cfg.n_wires, seed=n)
        labels = torch.arange(batch) % cfg.n_classes
        for method in ("simulator", "simulator (layers)"):
            runner = Timed(method, QuantumClassifier(cfg, seed=0), states, labels, batch)
            runner.warm_up()
            runners.append((n, L, runner))
    for _ in range(rounds):
        for _, _, runner in runners:
            runner.round()
    for n, L, runner in runners:
        rows.append({"qubits": n, "layers": L, "batch": batch, "method": runner.method,
                     "forward_s": runner.median("forward"),
                     "forward_backward_s": runner.median("forward+backward")})
    return rows


def plot_scaling(rows, layer_qubits, path_png):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for method, colour in (("simulator", "C0"), ("simulator (layers)", "C1")):
        mine = [r for r in rows if r["method"] == method]
        by_qubits = sorted((r for r in mine if r["layers"] == 4), key=lambda r: r["qubits"])
        by_layers = sorted((r for r in mine if r["qubits"] == layer_qubits),
                           key=lambda r: r["layers"])
        kernel = "rows" if method == "simulator" else "layers"
        for ax, data, key in ((axes[0], by_qubits, "qubits"), (axes[1], by_layers, "layers")):
            x = [r[key] for r in data]
            for kind, style in (("forward_s", "o-"), ("forward_backward_s", "s--")):
                ax.plot(x, [1e3 * r[kind] / r["batch"] for r in data], style, color=colour,
                        label=f"{kernel}: {kind.replace('_s', '').replace('_', ' + ')}")
    for ax, label in ((axes[0], "qubits (4 layers)"), (axes[1], f"layers ({layer_qubits} qubits)")):
        ax.set_xlabel(label)
        ax.set_ylabel("ms per state")
        ax.set_yscale("log", base=2)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"equivar.core.simulator, both kernels, batch {rows[0]['batch']}, 1 thread")
    fig.tight_layout()
    fig.savefig(path_png, dpi=120, metadata={"Software": None})
    plt.close(fig)


# ----------------------------------------------------------------------------- memory

def child_peak(method, n_qubits, variant, batch) -> dict:
    """Peak RSS of one forward+backward in a fresh process, minus the RSS before it."""
    cmd = [sys.executable, __file__, "--child", method, str(n_qubits), variant, str(batch)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def status_mib(key: str) -> float:
    """A memory line of /proc/self/status (VmRSS, VmHWM) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def run_child(method, n_qubits, variant, batch):
    """One forward+backward; its peak RSS above the RSS before it (the peak is reset first
    through /proc/self/clear_refs, so import-time peaks do not count)."""
    cfg = config(n_qubits, variant)
    model = QuantumClassifier(cfg, seed=0)
    states = random_states(batch, 2 ** cfg.n_wires)
    labels = torch.arange(batch) % cfg.n_classes
    fn = make(method, model)
    with torch.no_grad():
        fn(states[:2])
    before = status_mib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")
    start = time.perf_counter()
    out = fn(states)
    torch.autograd.grad(loss_fn(out, labels), model.weights)
    seconds = time.perf_counter() - start
    peak = status_mib("VmHWM")
    state_mib = batch * 2 ** cfg.n_wires * 16 / 2 ** 20
    print(json.dumps({"peak_rss_mib": peak, "extra_mib": peak - before,
                      "state_batch_mib": state_mib, "seconds": seconds}))


# ----------------------------------------------------------------------------- report

def machine() -> dict:
    model_name = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model_name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import pennylane
    from importlib.metadata import PackageNotFoundError, version
    try:
        lightning = version("pennylane_lightning")
    except PackageNotFoundError:
        lightning = "?"
    return {"python": platform.python_version(), "torch": torch.__version__,
            "pennylane": pennylane.__version__, "pennylane_lightning": lightning,
            "torch_threads": torch.get_num_threads(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "cpu": model_name, "cores": os.cpu_count(), "machine": platform.machine()}


def fmt_time(s: float | None) -> str:
    if s is None:
        return "—"
    if s >= 1:
        return f"{s:.2f} s"
    return f"{s * 1e3:.2f} ms" if s >= 1e-3 else f"{s * 1e6:.0f} µs"


def report(results) -> str:
    m = results["machine"]
    lines = [
        "# Simulator benchmark", "",
        f"Machine: {m['cpu']}, {m['cores']} cores (shared), {m['machine']}; Python {m['python']}, "
        f"torch {m['torch']}, PennyLane {m['pennylane']}, lightning {m['pennylane_lightning']}; "
        f"**{m['torch_threads']} torch thread** (OMP_NUM_THREADS={m['OMP_NUM_THREADS']}). "
        f"Load average (1 min) at start {results['load'][0]:.2f}, after timing "
        f"{results['load'][1]:.2f}, at the end {results['load'][2]:.2f}. "
        f"Peak RSS of the timing process: {results['peak_rss_mib']:.0f} MiB.", "",
        "West's model, 4 layers, \"probs\" readout, 10 classes (sector variant where marked); "
        "random unit states. Times are medians over interleaved rounds (wall clock). "
        "*fwd+bwd* = forward, cross-entropy and `torch.autograd.grad` with respect to the "
        "weights. Ratios are method time / simulator time (higher = the simulator is faster). "
        "*extrapolated*: timed on fewer states and scaled linearly (see notes).", "",
        "| qubits | variant | batch | method | forward | fwd+bwd | fwd ratio | fwd+bwd ratio | "
        "rounds | note |",
        "|---|---|---|---|---|---|---|---|---|---|"]
    for row in results["timing"]:
        sim = row["methods"]["simulator"]
        for method in METHODS:
            e = row["methods"][method]
            if "skipped" in e:
                lines.append(f"| {row['qubits']} | {row['variant']} | {row['batch']} | {method} | "
                             f"— | — | — | — | — | {e['skipped']} |")
                continue
            ratio_f = e["forward_s"] / sim["forward_s"]
            ratio_b = (e["forward_backward_s"] / sim["forward_backward_s"]
                       if e["forward_backward_s"] else None)
            lines.append(
                f"| {row['qubits']} | {row['variant']} | {row['batch']} | {method} | "
                f"{fmt_time(e['forward_s'])} | {fmt_time(e['forward_backward_s'])} | "
                f"{ratio_f:.2f}× | {'—' if ratio_b is None else f'{ratio_b:.1f}×'} | "
                f"{e['rounds']} | {e['note']} |")
    lines += ["", "## Goals", ""]
    for goal in results["goals"]:
        lines.append(f"- {goal}")
    lines += ["", "## Agreement with the simulator (max |difference|)", "",
              "| qubits | variant | method | values | weight gradients | input gradients | "
              "negative control (weights + 0.05) |", "|---|---|---|---|---|---|---|"]
    for row in results["agreement"]:
        for method in ("simulator (layers)", "default.qubit", "lightning.qubit", "dense (old)"):
            if method in row:
                e = row[method]
                lines.append(f"| {row['qubits']} | {row['variant']} | {method} | "
                             f"{e['values']:.1e} | {e['weight_gradients']:.1e} | "
                             f"{e.get('input_gradients', float('nan')):.1e} | "
                             f"{row['negative_control']:.1e} |")
    e0 = results["epoch"][0]
    lines += ["", f"## Training epoch ({e0['qubits']} qubits, West, 4 layers, {e0['images']} "
              "random states, `equivar.learn.train.fit`, Adam)", "",
              "| batch | seconds per epoch |", "|---|---|"]
    for e in results["epoch"]:
        lines.append(f"| {e['batch']} | {e['seconds']:.1f} |")
    lines += ["", "## Peak memory of one forward+backward (fresh process each)", "",
              "*extra* = peak RSS during the call minus RSS before it; *batch state* = B·2^n "
              "complex128 amplitudes (one copy of the batch's state).", "",
              "| qubits | variant | batch | method | extra RSS (MiB) | batch state (MiB) | "
              "extra / batch state | peak RSS (MiB) | seconds |",
              "|---|---|---|---|---|---|---|---|---|"]
    for e in results["memory"]:
        if "error" in e:
            lines.append(f"| {e['qubits']} | {e['variant']} | {e['batch']} | {e['method']} | "
                         f"error: {e['error']} | | |")
            continue
        lines.append(f"| {e['qubits']} | {e['variant']} | {e['batch']} | {e['method']} | "
                     f"{e['extra_mib']:.1f} | {e['state_batch_mib']:.1f} | "
                     f"{e['extra_mib'] / e['state_batch_mib']:.1f} | {e['peak_rss_mib']:.0f} | "
                     f"{e['seconds']:.2f} |")
    lines += ["", "Scaling (both kernels): `simulator_scaling.csv`, `simulator_scaling.png`.", ""]
    return "\n".join(lines)


def goals(results) -> list[str]:
    out = []
    worst = None
    for row in results["timing"]:
        sim = row["methods"]["simulator"]["forward_backward_s"]
        pl = [row["methods"][m]["forward_backward_s"] for m in ("default.qubit", "lightning.qubit")
              if "skipped" not in row["methods"][m]]
        ratio = min(pl) / sim
        worst = ratio if worst is None else min(worst, ratio)
        out.append(f"{row['qubits']} qubits, {row['variant']}, batch {row['batch']}: fastest "
                   f"PennyLane device / simulator (fwd+bwd) = {ratio:.1f}× "
                   f"({'met' if ratio >= 10 else 'NOT met'}: goal ≥ 10×)")
    for row in results["timing"]:
        for old, name in (("dense (old)", "old dense path"),
                          ("simulator (layers)", "layers kernel")):
            if row["qubits"] != 7 or "forward_s" not in row["methods"][old]:
                continue
            d, s = row["methods"][old], row["methods"]["simulator"]
            rf, rb = d["forward_s"] / s["forward_s"], d["forward_backward_s"] / s["forward_backward_s"]
            out.append(f"7 qubits, {row['variant']}, batch {row['batch']}: {name} / "
                       f"simulator = {rf:.2f}× forward, {rb:.2f}× fwd+bwd "
                       f"({'met' if min(rf, rb) >= 1 else 'NOT met'}: goal ≥ 1×, no slower)")
    for e in results["epoch"]:
        out.append(f"13-qubit epoch, batch {e['batch']}: {e['seconds']:.1f} s "
                   f"({'met' if e['seconds'] <= 30 else 'NOT met'}: goal ≤ 30 s)")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny sizes")
    parser.add_argument("--child", nargs=4, metavar=("METHOD", "QUBITS", "VARIANT", "BATCH"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        method, n, variant, batch = args.child
        run_child(method, int(n), variant, int(batch))
        return 0
    load = [os.getloadavg()[0]]
    if args.quick:
        cases = [(7, "west", 64), (9, "west", 64), (7, "sector", 16)]
        agree_sizes = [(7, "west"), (9, "west"), (7, "sector")]
        epoch_cases, epoch_qubits, n_images = [64], 9, 256
        scale_q, scale_l, scale_lq, scale_b = [5, 7, 9], [1, 2, 4], 7, 64
        memory_cases = [("simulator", 9, "west", 64), ("default.qubit", 9, "west", 64)]
        rounds = min(args.rounds, 2)
    else:
        cases = [(n, "west", b) for n in (7, 9, 11, 13) for b in (256, 4096)]
        cases += [(n, "sector", b) for n in (7, 9) for b in (256, 4096)]
        agree_sizes = [(n, "west") for n in (7, 9, 11, 12, 13)] + [(7, "sector"), (9, "sector")]
        epoch_cases, epoch_qubits, n_images = [64, 256], 13, 4000
        scale_q, scale_l, scale_lq, scale_b = list(range(5, 14)), [1, 2, 4, 8, 16], 11, 256
        memory_cases = [("simulator", n, "west", b) for n in (7, 9, 11, 13) for b in (256, 4096)]
        memory_cases += [("default.qubit", n, "west", 256) for n in (7, 9, 11, 13)]
        memory_cases += [("simulator (layers)", 13, "west", b) for b in (256, 4096)]
        memory_cases += [("dense (old)", n, "west", 256) for n in (7, 9)]
        memory_cases += [("simulator", 9, "sector", 256), ("default.qubit", 9, "sector", 256)]
        rounds = args.rounds
    info = machine()
    print(f"machine: {info}; load {load[0]:.2f}", flush=True)
    print("agreement ...", flush=True)
    agree = agreement(agree_sizes, args.quick)
    timing = []
    for n, variant, batch in cases:
        start = time.perf_counter()
        row = time_case(n, variant, batch, rounds, args.quick)
        row["load_after"] = os.getloadavg()[0]
        timing.append(row)
        summary = {m: (fmt_time(e.get("forward_s")), fmt_time(e.get("forward_backward_s")))
                   for m, e in row["methods"].items() if "skipped" not in e}
        print(f"timing {n} qubits {variant} batch {batch} "
              f"({time.perf_counter() - start:.0f} s): {summary}", flush=True)
    load.append(os.getloadavg()[0])
    peak_timing = status_mib("VmHWM")
    epoch = []
    for b in epoch_cases:
        seconds = training_epoch(epoch_qubits, b, n_images, repeats=1 if args.quick else 3)
        epoch.append({"qubits": epoch_qubits, "batch": b, "images": n_images, "seconds": seconds})
        print(f"epoch {epoch_qubits} qubits batch {b}: {seconds:.1f} s", flush=True)
    print("scaling ...", flush=True)
    scale_rows = scaling(scale_q, scale_l, scale_lq, scale_b, rounds=3)
    print("memory ...", flush=True)
    memory = []
    for method, n, variant, batch in memory_cases:
        e = child_peak(method, n, variant, batch)
        memory.append({"method": method, "qubits": n, "variant": variant, "batch": batch, **e})
        print(f"  memory {memory[-1]}", flush=True)
    load.append(os.getloadavg()[0])
    results = {"machine": info, "load": load, "peak_rss_mib": peak_timing, "timing": timing,
               "agreement": agree, "epoch": epoch, "scaling": scale_rows, "memory": memory,
               "quick": args.quick, "simulator_block_amplitudes": simulator.BLOCK_AMPLITUDES,
               "simulator_chunk": simulator.CHUNK}
    results["goals"] = goals(results)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "simulator_quick" if args.quick else "simulator"
    text = report(results)
    (out / f"{stem}.md").write_text(text)
    (out / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    with open(out / f"{stem}_scaling.csv", "w") as f:
        f.write("kernel,qubits,layers,batch,forward_s,forward_backward_s\n")
        for r in scale_rows:
            kernel = "rows" if r["method"] == "simulator" else "layers"
            f.write(f"{kernel},{r['qubits']},{r['layers']},{r['batch']},{r['forward_s']:.6g},"
                    f"{r['forward_backward_s']:.6g}\n")
    plot_scaling(scale_rows, scale_lq, out / f"{stem}_scaling.png")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
