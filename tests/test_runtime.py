"""The process policy of equivar.runtime: threads, and progress bars kept out of the book."""
from __future__ import annotations

import IPython

from equivar import runtime


class ZMQInteractiveShell:  # the class name ipykernel's shell has
    pass


def test_progress_is_off_inside_a_notebook_kernel(monkeypatch):
    """ipykernel forwards the kernel's own stderr into cell outputs: a bar there would reach
    the rendered book (seen in a paper-profile run of chapters 2 and 3)."""
    monkeypatch.setattr(IPython, "get_ipython", lambda: ZMQInteractiveShell())
    assert runtime.in_notebook_kernel()
    assert runtime.progress(range(3)).disable


def test_progress_is_on_in_a_terminal(monkeypatch):
    monkeypatch.setattr(IPython, "get_ipython", lambda: None)
    assert not runtime.in_notebook_kernel()
    bar = runtime.progress(range(3))
    assert not bar.disable
    bar.close()


def test_pin_threads_keeps_what_the_user_set():
    env = {"OMP_NUM_THREADS": "4"}
    got = runtime.pin_threads(env)
    assert got["OMP_NUM_THREADS"] == "4" and got["OPENBLAS_NUM_THREADS"] == "1"
    assert env["OMP_WAIT_POLICY"] == "PASSIVE"
