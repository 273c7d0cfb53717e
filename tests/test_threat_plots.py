"""equivar.book.plots: the figures of chapter 4's threat models draw from their tables."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # tests only; notebooks keep the inline backend
import pandas as pd  # noqa: E402

from equivar.book import plots  # noqa: E402


def test_threat_figures(tmp_path):
    rows = [{"dataset": d, "variant": v, "model": m, "threat": t, "eps": e,
             "mean": max(0.0, 0.8 - e * (1 + i)), "std": 0.02}
            for d in ("a", "b") for v in ("west", "sector") for i, m in enumerate(("none", "k=0 × 0"))
            for t in plots.THREAT_ORDER for e in (0.0, 0.1, 0.3, 1.0)]
    fig = plots.plot_threat_curves(pd.DataFrame(rows), ["none", "k=0 × 0"])
    assert len(fig.axes) == len(plots.THREAT_ORDER) * 2
    effects = pd.DataFrame([{"threat": t, "model": m, "robust change": 0.1, "robust low": 0.0,
                             "robust high": 0.2, "drop change": -0.1, "drop low": -0.2,
                             "drop high": 0.0} for t in plots.THREAT_ORDER
                            for m in ("k=0 × 0", "adversarial training")])
    fig2 = plots.plot_threat_effects(effects, threshold=0.1)
    curve = pd.DataFrame([{"eps": e, "variant": "west", "model": m, "attack": a, "curve": c,
                           "steps": s, "restarts": r, "accuracy": 0.1} for e in (0.02, 0.1)
                          for m in ("none", "k=0 × 0")
                          for a in ("PGD", "APGD-CE")
                          for c, s, r in (("steps", 5, 1), ("steps", 10, 1), ("restarts", 10, 1),
                                          ("restarts", 10, 2))])
    fig3 = plots.plot_convergence(curve)
    for i, f in enumerate((fig, fig2, fig3)):
        paths = plots.save_figure(f, f"fig-test-threats{i}", pd.DataFrame({"x": [1]}), "c.",
                                  "test", None, tmp_path)
        assert paths["png"].stat().st_size > 0
