"""The claims scorecard: every verdict of the book on one page, generated from the run's data.

Each chapter notebook judges its claims with :mod:`equivar.stats` (rules fixed before the run
they judge, one Holm family per chapter) and writes one row per claim to
``verdicts/verdicts-NN.json`` in
the figures directory (:func:`write_verdicts`); :func:`markdown` reads every such file and builds
the scorecard page: one line per claim of :data:`CLAIMS` (C1, C2, C3 ×3, C4 per threat model,
the headline) with its verdict, the statistic and its 95 % CI, the Holm-corrected p, the rule
and a link to the figure. A claim whose chapter did not run (no file, or no row) reads
"not run". Nothing here is hand-written: the page changes when the run changes.
"""
from __future__ import annotations

import gzip
import json
import math
import os
from pathlib import Path
from typing import Mapping

import numpy as np

from equivar import stats
from equivar.cache import atomic_path, code_digest
from equivar.paths import figures_dir

# the scorecard's claims in reading order, with the chapter whose verdict file holds each
CLAIMS: tuple[tuple[str, str], ...] = (
    ("C1-twirl", "01"), ("C1-invariance", "01"), ("C2-sectors", "01"),
    ("C3-reliance", "02"), ("C3-transfer", "03"), ("C3-ring-means", "03"),
    ("C4-transfer", "04"), ("C4-transfer-strong", "04"), ("C4-white-box", "04"),
    ("C4-adaptive", "04"), ("C4-black-box", "04"), ("headline", "03"),
)
NOT_RUN = "not run"
# claims that judge another claim's test at another threshold (one test, one Holm member)
SAME_TEST = {"headline": "C3-transfer"}
FIELDS = ("claim", "verdict", "statistic", "estimate", "low", "high", "ci", "p_raw", "p_holm",
          "rule", "threshold", "direction", "kind", "figure", "chapter", "scope")
NUMERIC = ("estimate", "low", "high", "p_raw", "p_holm", "threshold")


SUBDIR = "verdicts"   # beside the figures, apart from their JSON records


def verdict_dir(out_dir: str | os.PathLike | None = None) -> Path:
    """``<figures dir>/verdicts``: the verdict and per-image prediction files of a run."""
    return figures_dir(out_dir) / SUBDIR


def verdict_path(chapter: str, out_dir: str | os.PathLike | None = None) -> Path:
    """``<figures dir>/verdicts/verdicts-<chapter>.json`` (``chapter``: two digits, e.g.
    ``"02"``)."""
    if not (len(chapter) == 2 and chapter.isdigit()):
        raise ValueError(f"chapter must be two digits like '02', got {chapter!r}")
    return verdict_dir(out_dir) / f"verdicts-{chapter}.json"


def judge_rows(found: Mapping[str, tuple[stats.Interval, float | None]],
               rules: Mapping[str, stats.Rule], figures: Mapping[str, str], chapter: str,
               scope: str = "", same_test: Mapping[str, str] | None = None) -> list[dict]:
    """Judge a chapter's family of claims and return one scorecard row per claim.

    ``found[claim] = (ci, raw two-sided p)`` (p ``None`` for identity rules); the effect
    claims form one Holm family (:func:`equivar.stats.holm`); ``figures[claim]`` is the id of
    the figure that shows the evidence; ``scope`` says what was pooled (datasets, models).
    ``same_test[c] = d``: claim ``c`` judges the same test as claim ``d`` (another threshold),
    so it is not a second member of the family and takes ``d``'s adjusted p.
    """
    same_test = dict(same_test or {})
    bad = {c: d for c, d in same_test.items() if c not in found or d not in found or c == d}
    if bad:
        raise ValueError(f"same_test must map claims to other claims of found, got {bad}")
    missing = [c for c in found if c not in rules]
    if missing:
        raise ValueError(f"no rule for claim(s) {missing}")
    no_figure = [c for c in found if c not in figures]
    if no_figure:
        raise ValueError(f"no figure id for claim(s) {no_figure}")
    effects = [c for c in found if rules[c].kind == "effect" and c not in same_test]
    adjusted = dict(zip(effects, stats.holm([found[c][1] for c in effects]))) if effects else {}
    adjusted.update({c: adjusted.get(d) for c, d in same_test.items()})
    rows = []
    for claim, (ci, p) in found.items():
        rule = rules[claim]
        p_holm = adjusted.get(claim)
        rows.append({
            "claim": claim, "verdict": str(stats.judge(rule, ci, p_holm)),
            "statistic": rule.statistic, "estimate": ci.estimate, "low": ci.low,
            "high": ci.high, "ci": ci.what, "p_raw": p, "p_holm": p_holm,
            "rule": rule.description, "threshold": rule.threshold,
            "direction": rule.direction, "kind": rule.kind, "figure": figures[claim],
            "chapter": chapter, "scope": scope, "test": same_test.get(claim, claim),
            "why": stats.explain(rule, ci, p_holm)})
    return rows


def _clean(value):
    """JSON-safe: NaN/inf → None, numpy scalars → Python."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def write_verdicts(rows: list[dict], chapter: str,
                   out_dir: str | os.PathLike | None = None, settings=None) -> Path:
    """Write a chapter's verdict rows (from :func:`judge_rows`) to ``verdicts-<chapter>.json``
    atomically; returns the path. Every row needs the fields of :data:`FIELDS`. The file also
    names its run: the chapter's ``settings``' profile and seeds, and the package's code digest
    (:func:`equivar.cache.code_digest`, 12 hex digits), so that a scorecard mixing runs shows it."""
    for row in rows:
        absent = [f for f in FIELDS if f not in row]
        if absent:
            raise ValueError(f"verdict row for {row.get('claim')!r} lacks {absent}")
        if row["verdict"] not in {str(v) for v in stats.Verdict}:
            raise ValueError(f"verdict of {row['claim']!r} must be one of "
                             f"{[str(v) for v in stats.Verdict]}, got {row['verdict']!r}")
    path = verdict_path(chapter, out_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    run = {"profile": getattr(settings, "profile", None),
           "n_seeds": getattr(settings, "n_seeds", None), "code": code_digest()[:12]}
    payload = {"chapter": chapter, "run": run,
               "rows": [{k: (_clean(v) if k in NUMERIC else v) for k, v in row.items()}
                        for row in rows]}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    return path


def read_verdicts(directory: str | os.PathLike | None = None) -> dict[str, dict]:
    """Every verdict row in the ``verdicts-*.json`` files of ``directory`` (a figures
    directory; the files live in its ``verdicts`` subdirectory), by claim.
    A claim judged in two files is an error (each claim has one home chapter)."""
    out: dict[str, dict] = {}
    for path in sorted(verdict_dir(directory).glob("verdicts-*.json")):
        try:
            payload = json.loads(path.read_text())
            rows = payload["rows"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ValueError(f"{path.name} is not a verdict file: {err}") from None
        for row in rows:
            row = {**row, "run": payload.get("run") or {}}
            if row["claim"] in out:
                raise ValueError(f"claim {row['claim']!r} is judged in two verdict files "
                                 f"(chapters {out[row['claim']]['chapter']} and "
                                 f"{row['chapter']})")
            out[row["claim"]] = row
    return out


def _number(row: dict) -> str:
    est, lo, hi = row.get("estimate"), row.get("low"), row.get("high")
    if est is None:
        return "n/a"
    if row.get("kind") == "identity":
        return f"max deviation {hi if hi is not None else est:.2g}"
    if lo is None or hi is None:
        return f"{est:+.3f}"
    return f"{est:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def _p(value) -> str:
    return "–" if value is None else f"{value:.3g}"


def markdown(directory: str | os.PathLike | None = None, link: str = "numref") -> str:
    """The scorecard as a Markdown table (MyST), one line per claim of :data:`CLAIMS`.

    Columns: claim, what the claim says, verdict, statistic with its 95 % CI, Holm p, rule
    (threshold), evidence. ``link="numref"`` links figures with MyST's ``{numref}`` role (the
    book); ``"plain"`` prints the figure id. Claims without a verdict row read "not run".
    """
    if link not in ("numref", "plain"):
        raise ValueError(f"link must be 'numref' or 'plain', got {link!r}")
    found = read_verdicts(directory)
    page_wide = page_holm(found)
    lines = ["| Claim | What the claim says | Verdict | Statistic [95 % CI] | p (Holm) | "
             "p (Holm, page) | Rule | Evidence |", "|---|---|---|---|---|---|---|---|"]
    for claim, chapter in CLAIMS:
        row = found.get(claim)
        rule = stats.RULES.get(claim)
        said = rule.description if rule else (row or {}).get("rule", "")
        if row is None:
            lines.append(f"| {claim} | {said} | {NOT_RUN} | – | – | – | – | no verdict file "
                         f"from chapter {chapter} in this run |")
            continue
        if row.get("kind") == "identity":
            rule_text = f"max deviation ≤ {row['threshold']:g}"
        else:
            sign = ">" if row.get("direction") == "greater" else "<"
            alpha = rule.alpha if rule else 0.05
            rule_text = (f"significant (Holm, α = {alpha:g}) and CI {sign} "
                         f"{'' if sign == '>' else '−'}{row['threshold']:g}")
        figure = row.get("figure") or ""
        evidence = (f"{{numref}}`{figure}`" if link == "numref" and figure else figure) or "–"
        lines.append(f"| {claim} | {said} | **{row['verdict']}** | {_number(row)} | "
                     f"{_p(row.get('p_holm'))} | {_p(page_wide.get(claim))} | {rule_text} | "
                     f"{evidence} |")
    extra = sorted(set(found) - {c for c, _ in CLAIMS})
    notes = ["", "Statistics are differences of accuracy (fractions); the CI of each is stated in "
                 "its chapter (95 %, paired two-level bootstrap over seeds × test images). "
                 "Verdicts follow the rules fixed in `equivar.stats.RULES` before the run, "
                 "with Holm's correction over each chapter's family (p (Holm)); "
                 f"p (Holm, page) corrects over all {len(set(_tests(found).values()))} tests on "
                 "this page at once, the stricter reading: a verdict whose page-wide p is "
                 "0.05 or more would not survive it."]
    if extra:
        notes.append(f"Further verdict rows not on the scorecard: {', '.join(extra)}.")
    notes += _runs(found)
    return "\n".join(lines + notes)


def _tests(found: dict[str, dict]) -> dict[str, tuple]:
    """Claim → the test behind it, (chapter, claim whose test it is), for rows with a raw p:
    the row's ``test`` (files written before it existed: :data:`SAME_TEST`, else the claim).
    Not by equal p-values: with few seeds distinct tests often share the same exact p."""
    return {claim: (row["chapter"], row.get("test") or SAME_TEST.get(claim, claim))
            for claim, row in found.items()
            if row.get("kind") == "effect" and row.get("p_raw") is not None}


def page_holm(found: dict[str, dict]) -> dict[str, float]:
    """Holm-corrected p of every claim with a test, over all distinct tests of the page."""
    tests = _tests(found)
    raw = {}                                 # one raw p per test (its claims share it)
    for claim, test in tests.items():
        raw.setdefault(test, found[claim]["p_raw"])
    adjusted = dict(zip(raw, stats.holm(list(raw.values())))) if raw else {}
    return {claim: float(adjusted[test]) for claim, test in tests.items()}


def _runs(found: dict[str, dict]) -> list[str]:
    """Lines naming the run behind each chapter's verdicts, and a warning if they differ."""
    runs = {row["chapter"]: row.get("run") or {} for row in found.values()}
    if not runs:
        return []
    tests = _tests(found)
    lines = ["", "Runs behind these verdicts:"]
    for chapter, run in sorted(runs.items()):
        n = run.get("n_seeds")
        seeds = f", {n} seed{'' if n == 1 else 's'}" if n else ""
        line = (f"- chapter {chapter}: profile `{run.get('profile') or 'unknown'}`{seeds}, "
                f"code `{run.get('code') or 'unknown'}`")
        family = len({t for t in tests.values() if t[0] == chapter})
        if n and family and min(1.0, family * stats.min_pvalue(n)) >= 0.05:
            # too few seeds for any effect verdict: "not reproduced" then says nothing
            line += (f"; **{stats.floor_note(n, family)}: its effect verdicts read \"not "
                     f"reproduced\" whatever the data, and are not evidence either way**")
        lines.append(line)
    if len({(r.get("profile"), r.get("code")) for r in runs.values()}) > 1:
        lines += ["", "**These verdicts come from different runs (profiles or code versions); "
                      "rerun the chapters together before citing them side by side.**"]
    return lines


def rules_table(claims, rules: Mapping[str, stats.Rule] | None = None):
    """The verdict rules of ``claims`` as a table (printed by the book *before* the results):
    claim, what it says, the statistic, the threshold and direction, α, where the threshold
    comes from, and what each verdict means."""
    import pandas as pd

    rules = stats.RULES if rules is None else rules
    unknown = [c for c in claims if c not in rules]
    if unknown:
        raise ValueError(f"no rule for claim(s) {unknown}")
    rows = []
    for claim in claims:
        r = rules[claim]
        if r.kind == "identity":
            reading = (f"reproduced if max deviation ≤ {r.threshold:g}; refuted above "
                       f"{r.refute_above:g}")
        else:
            sign = "+" if r.direction == "greater" else "−"
            reading = (f"reproduced: Holm p < {r.alpha} and 95 % CI beyond {sign}{r.threshold:g}; "
                       f"partly: significant, CI excludes 0; refuted: significant, opposite sign")
        rows.append({"claim": claim, "claim says": r.description, "statistic": r.statistic,
                     "threshold": r.threshold, "rule": reading, "source": r.source})
    return pd.DataFrame(rows)


def sensitivity_table(rows: list[dict], thresholds, rules: Mapping[str, stats.Rule]):
    """How each verdict of ``rows`` (from :func:`judge_rows`) moves as its rule's threshold
    moves over ``thresholds`` (:func:`equivar.stats.sensitivity`; the CI and the Holm p stay
    fixed): one row per claim and threshold, with ``preregistered`` marking the rule's own."""
    import pandas as pd

    out = []
    for row in rows:
        rule = rules[row["claim"]]
        ci = stats.Interval(row["estimate"], row["low"], row["high"], 0.95, 1, row["ci"])
        p = row["p_holm"]
        p = 1.0 if p is None and rule.kind == "effect" else p  # no test: no evidence
        grid = sorted({float(t) for t in thresholds} | {rule.threshold})
        for t, verdict in stats.sensitivity(rule, ci, p, grid):
            out.append({"claim": row["claim"], "threshold": t, "verdict": str(verdict),
                        "preregistered": bool(np.isclose(t, rule.threshold))})
    return pd.DataFrame(out, columns=["claim", "threshold", "verdict", "preregistered"])


def write_per_image(table, name: str, out_dir: str | os.PathLike | None = None) -> Path:
    """Write a per-image table to ``verdicts/<name>.csv.gz`` (gzip without a name or a
    timestamp: the same run, the same bytes); returns the path."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"name must be a plain file stem, got {name!r}")
    path = verdict_dir(out_dir) / f"{name}.csv.gz"
    blob = gzip.compress(table.to_csv(index=False).encode(), mtime=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_bytes(blob)
    return path


def write_predictions(table, chapter: str, out_dir: str | os.PathLike | None = None) -> Path:
    """Write a chapter's per-image predictions (one row per model and condition, the classes
    as a digit string) to ``verdicts/predictions-<chapter>.csv.gz`` beside its verdicts, so
    that every statistic can be recomputed."""
    verdict_path(chapter, out_dir)   # checks the chapter
    if "predicted" not in table.columns:
        raise ValueError(f"a predictions table needs a 'predicted' column, got "
                         f"{list(table.columns)}")
    return write_per_image(table, f"predictions-{chapter}", out_dir)
