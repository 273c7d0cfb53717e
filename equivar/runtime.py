"""The process's thread policy: one thread per process, parallelism by processes.

On these 2-core machines torch and OpenBLAS each start a thread per core; when anything else
runs, their OpenMP threads spin-wait for each other and a training step gets 4-44× slower
(measured: ``benchmarks/threads.py``, results on the book's performance page). equivar
therefore runs every process single-threaded and spreads work over processes (``equivar run
--workers N``). :func:`pin_threads` sets the policy in the environment, where notebook kernels
and Dask workers inherit it; a value the user has set is kept. Bottom layer: imports nothing of
equivar.
"""
from __future__ import annotations

import os
import sys

THREAD_POLICY = {
    "OMP_NUM_THREADS": "1",        # torch's intra-op pool and OpenMP in general
    "OPENBLAS_NUM_THREADS": "1",   # numpy/scipy's BLAS (scipy-openblas)
    "MKL_NUM_THREADS": "1",        # in case an MKL build is installed instead
    "OMP_WAIT_POLICY": "PASSIVE",  # if a user asks for more threads: sleep, do not spin
}


def pin_threads(environ=os.environ) -> dict[str, str]:
    """Set :data:`THREAD_POLICY` in ``environ`` where the user has not set a value; returns
    the effective values. Call before torch or numpy start their thread pools (child
    processes always see it)."""
    for name, value in THREAD_POLICY.items():
        environ.setdefault(name, value)
    return {name: environ[name] for name in THREAD_POLICY}


def thread_report() -> str:
    """One line for logs and benchmarks: the thread settings in effect in this process."""
    import torch

    env = ", ".join(f"{k}={os.environ.get(k, 'unset')}" for k in THREAD_POLICY)
    return f"torch threads {torch.get_num_threads()}; {env}"


def in_notebook_kernel() -> bool:
    """Whether this process is a Jupyter kernel (papermill executing a chapter)."""
    if "IPython" not in sys.modules:
        return False
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def progress(iterable=None, **kwargs):
    """A tqdm progress bar on the terminal (``sys.__stderr__``). Inside a notebook kernel it is
    off: ipykernel forwards the process's own stderr into the cell's outputs, so a bar there
    would be printed into the book (papermill's bar over the cells stays on the terminal)."""
    from tqdm import tqdm

    if in_notebook_kernel():
        kwargs["disable"] = True
    return tqdm(iterable, file=sys.__stderr__, **kwargs)
