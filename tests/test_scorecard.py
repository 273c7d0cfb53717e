"""The claims scorecard (equivar.studies.scorecard) on synthetic verdict files."""
from __future__ import annotations

import json

import numpy as np
import pytest

from equivar import stats
from equivar.studies import scorecard


def _found(effect: float, rng, n_seeds: int = 10, n_images: int = 200):
    """(ci, raw p) of a paired comparison whose true accuracy difference is ``effect``."""
    b = rng.random((n_seeds, n_images)) < 0.5
    a = b | (rng.random((n_seeds, n_images)) < effect * 2)
    ci = stats.bootstrap_difference(a, b, n_resamples=2000, rng=1)
    return ci, stats.permutation_test_seeds(a, b).pvalue


def test_judge_rows_holm_and_verdicts(rng):
    strong, null = _found(0.2, rng), _found(0.0, rng)
    rows = scorecard.judge_rows({"C3-transfer": strong, "C3-ring-means": null}, stats.RULES,
                                {"C3-transfer": "fig-transfer-verdicts",
                                 "C3-ring-means": "fig-transfer-verdicts"}, "03", "all")
    by = {r["claim"]: r for r in rows}
    assert by["C3-transfer"]["verdict"] == "reproduced"
    assert by["C3-ring-means"]["verdict"] == "not reproduced"
    raw = [strong[1], null[1]]
    assert [by["C3-transfer"]["p_holm"], by["C3-ring-means"]["p_holm"]] == \
        pytest.approx(list(stats.holm(raw)))
    assert by["C3-transfer"]["p_holm"] >= by["C3-transfer"]["p_raw"]


def test_a_claim_on_the_same_test_is_not_a_second_family_member(rng):
    strong, null = _found(0.2, rng), _found(0.0, rng)
    found = {"C3-transfer": strong, "C3-ring-means": null, "headline": strong}
    figures = {c: "fig-transfer-verdicts" for c in found}
    rows = {r["claim"]: r for r in scorecard.judge_rows(
        found, stats.RULES, figures, "03", same_test={"headline": "C3-transfer"})}
    two = list(stats.holm([strong[1], null[1]]))  # a family of two, not three
    assert rows["C3-transfer"]["p_holm"] == pytest.approx(two[0])
    assert rows["headline"]["p_holm"] == rows["C3-transfer"]["p_holm"]
    with pytest.raises(ValueError, match="same_test"):
        scorecard.judge_rows(found, stats.RULES, figures, "03", same_test={"headline": "C9"})


def test_judge_rows_refuses_unknown_claims_and_missing_figures(rng):
    found = {"C3-transfer": _found(0.1, rng)}
    with pytest.raises(ValueError, match="no rule for claim"):
        scorecard.judge_rows({"C9": found["C3-transfer"]}, stats.RULES, {"C9": "fig-a-b"}, "03")
    with pytest.raises(ValueError, match="no figure id"):
        scorecard.judge_rows(found, stats.RULES, {}, "03")


def test_markdown_reads_files_and_marks_missing_chapters(tmp_path, rng):
    rows3 = scorecard.judge_rows({"C3-transfer": _found(0.2, rng), "headline": _found(0.2, rng)},
                                 stats.RULES, {"C3-transfer": "fig-transfer-verdicts",
                                               "headline": "fig-transfer-verdicts"}, "03")
    path = scorecard.write_verdicts(rows3, "03", tmp_path)
    assert path == tmp_path / "verdicts" / "verdicts-03.json"
    assert json.loads(path.read_text())["rows"][0]["claim"] == "C3-transfer"
    page = scorecard.markdown(tmp_path)
    lines = {line.split("|")[1].strip(): line for line in page.splitlines()
             if line.startswith(("| C1", "| C2", "| C3", "| C4", "| headline"))}
    assert set(lines) == {c for c, _ in scorecard.CLAIMS}
    assert "**reproduced**" in lines["C3-transfer"]
    assert "{numref}`fig-transfer-verdicts`" in lines["C3-transfer"]
    for claim in ("C1-twirl", "C3-reliance", "C4-white-box"):
        assert scorecard.NOT_RUN in lines[claim]
    ci = rows3[0]
    assert f"{ci['estimate']:+.3f} [{ci['low']:+.3f}, {ci['high']:+.3f}]" in lines["C3-transfer"]
    plain = scorecard.markdown(tmp_path, link="plain")
    assert "{numref}" not in plain and "fig-transfer-verdicts" in plain


def test_empty_directory_reads_all_not_run(tmp_path):
    page = scorecard.markdown(tmp_path)
    body = [l for l in page.splitlines() if l.startswith(("| C1", "| C2", "| C3", "| C4", "| headline"))]
    assert len(body) == len(scorecard.CLAIMS)
    assert all(scorecard.NOT_RUN in l for l in body)


def test_identity_rows_and_nan(tmp_path):
    ci = stats.Interval.exact(3e-14, "max over 64 inputs")
    rows = scorecard.judge_rows({"C1-twirl": (ci, None)}, stats.RULES,
                                {"C1-twirl": "fig-twirl-check"}, "01")
    rows[0]["p_raw"] = float("nan")
    scorecard.write_verdicts(rows, "01", tmp_path)
    data = json.loads((tmp_path / "verdicts" / "verdicts-01.json").read_text())
    assert data["rows"][0]["p_raw"] is None          # NaN is not valid JSON
    line = [l for l in scorecard.markdown(tmp_path).splitlines() if l.startswith("| C1-twirl")][0]
    assert "**reproduced**" in line and "max deviation 3e-14" in line


def test_bad_files_and_rows(tmp_path, rng):
    rows = scorecard.judge_rows({"C3-transfer": _found(0.1, rng)}, stats.RULES,
                                {"C3-transfer": "fig-x-y"}, "03")
    with pytest.raises(ValueError, match="two digits"):
        scorecard.write_verdicts(rows, "3", tmp_path)
    broken = dict(rows[0], verdict="maybe")
    with pytest.raises(ValueError, match="verdict of 'C3-transfer'"):
        scorecard.write_verdicts([broken], "03", tmp_path)
    with pytest.raises(ValueError, match="lacks"):
        scorecard.write_verdicts([{"claim": "C3-transfer"}], "03", tmp_path)
    scorecard.write_verdicts(rows, "03", tmp_path)
    scorecard.write_verdicts(rows, "02", tmp_path)
    with pytest.raises(ValueError, match="judged in two verdict files"):
        scorecard.markdown(tmp_path)
    (tmp_path / "verdicts" / "verdicts-02.json").write_text("{not json")
    with pytest.raises(ValueError, match="verdicts-02.json is not a verdict file"):
        scorecard.markdown(tmp_path)


def test_predictions_file_round_trips_and_is_deterministic(tmp_path):
    import pandas as pd

    table = pd.DataFrame({"dataset": ["d", "d"], "seed": [0, 1],
                          "predicted": ["0123", "0120"], "labels": ["0123", "0123"]})
    path = scorecard.write_predictions(table, "02", tmp_path)
    first = path.read_bytes()
    back = pd.read_csv(path, dtype={"predicted": str, "labels": str})
    assert back.equals(table)
    assert scorecard.write_predictions(table, "02", tmp_path).read_bytes() == first
    with pytest.raises(ValueError, match="'predicted' column"):
        scorecard.write_predictions(table.drop(columns="predicted"), "02", tmp_path)


def test_write_per_image_refuses_paths(tmp_path):
    import pandas as pd

    table = pd.DataFrame({"correct": ["0110"]})
    assert scorecard.write_per_image(table, "correct-04", tmp_path).name == "correct-04.csv.gz"
    for bad in ("../x", "", ".hidden"):
        with pytest.raises(ValueError, match="plain file stem"):
            scorecard.write_per_image(table, bad, tmp_path)


def test_verdict_files_name_their_run_and_the_page_flags_mixed_runs(tmp_path, rng):
    from equivar.settings import RelianceSettings, TransferSettings

    rows3 = scorecard.judge_rows({"C3-transfer": _found(0.2, rng)}, stats.RULES,
                                 {"C3-transfer": "fig-transfer-verdicts"}, "03")
    rows2 = scorecard.judge_rows({"C3-reliance": _found(0.2, rng)}, stats.RULES,
                                 {"C3-reliance": "fig-reliance-verdicts"}, "02")
    path = scorecard.write_verdicts(rows3, "03", tmp_path, TransferSettings.for_profile("paper"))
    run = json.loads(path.read_text())["run"]
    assert run["profile"] == "paper" and run["n_seeds"] == 10 and len(run["code"]) == 12
    scorecard.write_verdicts(rows2, "02", tmp_path, RelianceSettings.for_profile("paper"))
    page = scorecard.markdown(tmp_path)
    assert "- chapter 03: profile `paper`, 10 seeds, code" in page
    assert "different runs" not in page
    scorecard.write_verdicts(rows2, "02", tmp_path, RelianceSettings.for_profile("smoke"))
    page = scorecard.markdown(tmp_path)
    assert "- chapter 02: profile `smoke`, 1 seed," in page and "different runs" in page
    # one seed: the sign-flip test cannot reach α, which the page says for that chapter only
    line = next(x for x in page.splitlines() if x.startswith("- chapter 02"))
    assert "cannot go below p = 1" in line and "not evidence either way" in line
    assert "not evidence" not in next(x for x in page.splitlines()
                                      if x.startswith("- chapter 03"))


def test_page_wide_holm_counts_each_test_once(tmp_path, rng):
    rows3 = scorecard.judge_rows({"C3-transfer": _found(0.2, rng), "C3-ring-means":
                                  _found(0.0, rng), "headline": _found(0.2, rng)}, stats.RULES,
                                 {c: "fig-transfer-verdicts" for c in
                                  ("C3-transfer", "C3-ring-means", "headline")}, "03",
                                 same_test={"headline": "C3-transfer"})
    rows2 = scorecard.judge_rows({"C3-reliance": _found(0.1, rng)}, stats.RULES,
                                 {"C3-reliance": "fig-reliance-verdicts"}, "02")
    scorecard.write_verdicts(rows3, "03", tmp_path)
    scorecard.write_verdicts(rows2, "02", tmp_path)
    found = scorecard.read_verdicts(tmp_path)
    page = scorecard.page_holm(found)
    raw = [found[c]["p_raw"] for c in ("C3-transfer", "C3-ring-means", "C3-reliance")]
    expected = dict(zip(("C3-transfer", "C3-ring-means", "C3-reliance"), stats.holm(raw)))
    for claim, p in expected.items():            # three tests, not four
        assert page[claim] == pytest.approx(p)
    assert page["headline"] == page["C3-transfer"]
    # never below the chapter's own correction
    assert all(page[c] >= found[c]["p_holm"] - 1e-12 for c in page)
    text = scorecard.markdown(tmp_path)
    assert "over all 3 tests on this page" in text


def test_distinct_tests_with_equal_p_values_are_counted_apart(tmp_path, rng):
    # regression: tests were told apart by their raw p, and with few seeds distinct tests share
    # the exact sign-flip floor: the page counted 6 tests where the paper run has 8, and a
    # 2-seed chapter 4 "2 tests" where it has 5
    from equivar.settings import SuppressionSettings

    claims = ("C4-transfer", "C4-transfer-strong", "C4-white-box", "C4-adaptive", "C4-black-box")
    ci, _ = _found(0.2, rng)
    from equivar.studies import threats

    rows = scorecard.judge_rows({c: (ci, 0.5) for c in claims}, threats.RULES,
                                {c: "fig-x" for c in claims}, "04")
    assert [r["test"] for r in rows] == list(claims)
    scorecard.write_verdicts(rows, "04", tmp_path,
                             SuppressionSettings.for_profile("default", n_seeds=2))
    found = scorecard.read_verdicts(tmp_path)
    page = scorecard.markdown(tmp_path)
    assert "corrects over all 5 tests" in page and "after Holm over 5 tests" in page
    assert scorecard.page_holm(found)["C4-transfer"] == pytest.approx(1.0)
    # files written before rows named their test: one test per claim, the headline shares
    for row in found.values():
        row.pop("test")
    assert len(set(scorecard._tests(found).values())) == 5
    old = {"C3-transfer": {"chapter": "03", "kind": "effect", "p_raw": 0.01},
           "headline": {"chapter": "03", "kind": "effect", "p_raw": 0.01}}
    assert len(set(scorecard._tests(old).values())) == 1
