"""The claims beyond the ranking (bench/analysis/claims.py, docs/method.md "Claims"): head
to head against a reference with its detectable ratio, identical rules, robustness."""

import io
import math

import numpy as np
import pandas as pd
import pytest
from test_bench_report import _folder
from test_bench_tuning import lanes
from test_statistics import COSTS, _runs

from bench.analysis import claims, profiles, stats
from bench.analysis.analyze import analyze, complete_facts
from bench.cli import main
from bench.report.render import render


def _summary(costs: dict[str, list[float]]) -> pd.DataFrame:
    """Ranked summary rows: optimizer -> its median steps to target on p0, p1, ...
    (inf: unsolved; None: not run)."""
    rows = [
        {"problem": f"p{i}", "optimizer": name, "median_steps_to_target": float(cost)}
        for name, per_problem in costs.items()
        for i, cost in enumerate(per_problem)
        if cost is not None
    ]
    return pd.DataFrame(rows)


def _versus(costs, skipped=None, reference="ref"):
    summary = _summary(costs)
    can_run = profiles.runnable(summary, skipped)
    order = list(costs)
    return claims.head_to_head(summary, "steps", reference, can_run, order).set_index("optimizer")


def test_a_rule_cheaper_on_every_problem_has_a_ratio_below_1_and_the_exact_p_value():
    reference = [20, 40, 10, 30, 50, 60, 80, 25]
    fast = [10, 10, 8, 10, 10, 20, 40, 5]  # cheaper on all 8 problems
    same = reference  # equal everywhere: no difference to test
    table = _versus({"ref": reference, "fast": fast, "same": same})
    row = table.loc["fast"]
    logs = np.log(np.divide(fast, reference))
    assert row.ratio == pytest.approx(math.exp(logs.mean()), rel=1e-12)
    assert row.ratio_low <= row.ratio <= row.ratio_high < 1
    # All 8 log ratios negative: W+ = 0, P(W+ <= 0) = 1 / 2^8, two-sided 2 / 2^8.
    assert row.p == pytest.approx(2 / 2**8, rel=1e-12)
    # Holm over the two comparisons: the smaller p-value times 2.
    assert row.p_holm == pytest.approx(4 / 2**8, rel=1e-12)
    assert (row.wins, row.losses, row.ties, row.not_run) == (8, 0, 0, 0)
    assert (row.both_solved, row.differing) == (8, 8)
    assert row.detectable_ratio == pytest.approx(math.sqrt(row.ratio_high / row.ratio_low))
    equal = table.loc["same"]
    assert (equal.ratio, equal.ratio_low, equal.ratio_high, equal.p) == (1, 1, 1, 1)
    assert (equal.wins, equal.losses, equal.ties, equal.differing) == (0, 0, 8, 0)
    assert math.isnan(equal.detectable_ratio)  # no problem differs: nothing to detect


def test_wins_losses_and_ties_count_every_ranked_problem_and_skipped_ones_apart():
    inf = math.inf
    # p0: both solve, rule cheaper (win); p1: only the rule solves (win); p2: only the
    # reference (loss); p3: neither (tie); p4: equal (tie); p5: rule dearer (loss);
    # p6: the rule cannot run it (not run, not a loss).
    table = _versus(
        {"ref": [10, inf, 10, inf, 10, 10, 10], "rule": [5, 10, inf, inf, 10, 20, None]},
        skipped=pd.DataFrame({"problem": ["p6"], "optimizer": ["rule"], "reason": ["no"]}),
    )
    row = table.loc["rule"]
    assert (row.wins, row.losses, row.ties, row.not_run) == (2, 2, 2, 1)
    # Both solve p0, p4, p5: ratios 0.5, 1, 2 (one equal, so 2 differ).
    assert (row.both_solved, row.differing) == (3, 2)
    assert row.ratio == pytest.approx(1.0, rel=1e-12)
    assert math.isnan(row.detectable_ratio)


def test_a_cost_of_0_against_a_positive_one_is_a_win_outside_the_ratio():
    # p0: the rule's lanes stay at the level from the start (cost 0), the reference's
    # reach it at 10; p1 .. p6: the rule twice as dear. Without p0 the ratio is 2 exactly;
    # with it, it would be 0 (a log of -inf) and its interval none.
    reference, rule = [10, 10, 20, 30, 40, 50, 60], [0, 20, 40, 60, 80, 100, 120]
    row = _versus({"ref": reference, "rule": rule}).loc["rule"]
    assert (row.wins, row.losses, row.ties) == (1, 6, 0)
    assert (row.both_solved, row.differing) == (6, 6)
    assert row.ratio == row.ratio_low == row.ratio_high == pytest.approx(2.0, rel=1e-12)
    assert row.detectable_ratio == pytest.approx(1.0, rel=1e-12)
    both_at_start = _versus({"ref": [0, 10], "rule": [0, 20]}).loc["rule"]
    assert (both_at_start.ties, both_at_start.both_solved) == (1, 2)  # 0 against 0: equal


def test_fewer_than_six_differing_problems_can_never_reject():
    assert claims.FEWEST == 6
    assert stats.wilcoxon(np.arange(1, 7), np.zeros(6))[1] < stats.ALPHA
    assert stats.wilcoxon(np.arange(1, 6), np.zeros(5))[1] >= stats.ALPHA
    assert math.isnan(claims.detectable_ratio(0.5, 2.0, claims.FEWEST - 1))
    assert claims.detectable_ratio(0.5, 2.0, claims.FEWEST) == pytest.approx(2.0)


def test_the_reference_is_adamw_where_ranked_else_the_first_and_a_bad_name_is_refused():
    ranking = pd.DataFrame({"optimizer": ["lion", "adamw", "sgd"]})
    assert claims.reference_of(ranking, None) == "adamw"
    assert claims.reference_of(ranking.iloc[[0, 2]], None) == "lion"
    assert claims.reference_of(ranking, "sgd") == "sgd"
    with pytest.raises(claims.UnknownReference, match="reference 'adam' is not an optimizer"):
        claims.reference_of(ranking, "adam")


def test_plot_with_a_reference_not_ranked_exits_2_with_one_line(tmp_path, capsys):
    folder = _folder(tmp_path, _runs(COSTS))
    assert main(["plot", "--reference", "adam", str(folder)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "reference 'adam' is not an optimizer" in err[0]
    assert not (folder / "head_to_head.csv").exists()


def test_render_writes_the_head_to_head_of_the_named_reference(tmp_path):
    folder = _folder(tmp_path, _runs(COSTS))
    render(folder, io.StringIO(), "steps", problem_figures=False, reference="b")
    table = pd.read_csv(folder / "head_to_head.csv")
    assert table["optimizer"].tolist() == ["a", "c"] and set(table["reference"]) == {"b"}
    # a and c cost 10 against b's 40 on all 8 problems (c: 9 to 12).
    assert (table["ratio_high"] < 1).all() and (table["wins"] == 8).all()
    text = (folder / "TABLES.md").read_text()
    assert (
        "## Head to head against `b`" in text
        and "- cheaper than `b` (Holm-adjusted p below 0.05): `a`, `c`" in text
    )


def _outcomes(rows: dict[str, list[tuple]]) -> pd.DataFrame:
    """Summary rows: optimizer -> per problem (success, steps, grad evals, final f - f*)."""
    return pd.DataFrame(
        [
            {
                "problem": f"p{i}",
                "optimizer": name,
                "success_rate": success,
                "median_steps_to_target": steps,
                "median_grad_evals_to_target": evals,
                "median_final_suboptimality": final,
            }
            for name, per_problem in rows.items()
            for i, (success, steps, evals, final) in enumerate(per_problem)
        ]
    )


def test_rules_with_the_same_outcome_on_every_problem_are_joined():
    inf = math.inf
    twin = [(1.0, 30, 30, 1e-9), (0.0, inf, inf, 0.5)]
    summary = _outcomes(
        {
            "heavy_ball": twin,
            "lion": [(1.0, 20, 20, 1e-9), (0.0, inf, inf, 0.5)],
            # Below the target (1e-3) final values differ freely; above, by under 0.1%.
            "momentum": [(1.0, 30, 30, 4e-7), (0.0, inf, inf, 0.5004)],
            "other": [(1.0, 30, 30, 1e-9), (0.0, inf, inf, 0.6)],  # ends elsewhere on p1
            "slower": [(1.0, 31, 31, 1e-9), (0.0, inf, inf, 0.5)],
        }
    )
    runs = pd.DataFrame({"problem": ["p0", "p1"], "target": 1e-3})
    order = ["lion", "heavy_ball", "other", "momentum", "slower"]
    assert claims.identical(summary, runs, order) == [["heavy_ball", "momentum"]]


def test_the_ranking_shows_identical_rules_as_one_row(tmp_path):
    # e is a copy of a's lanes under another name: joined, at a's place and once in its
    # group; ranking.csv keeps a row each.
    runs = _runs(COSTS)
    runs = pd.concat([runs, runs[runs["optimizer"] == "a"].assign(optimizer="e")])
    folder = _folder(tmp_path, runs)
    render(folder, io.StringIO(), "steps", problem_figures=False)
    text = (folder / "TABLES.md").read_text().split("## Head to head")[0]
    assert "| 1 | `a` = `e` | 1 |" in text and "| `e` |" not in text
    assert "**Group 1** (2): `a` = `e`, `c`" in text
    assert set(pd.read_csv(folder / "ranking.csv")["optimizer"]) == {"a", "b", "c", "e"}
    page = (folder / "index.html").read_text()
    assert "<td>a = e</td>" in page and "<td>e</td>" not in page.split("Head to head")[0]


def _lasting_and_first(first_hits: dict[str, int]) -> pd.DataFrame:
    """Runs of one problem where a, b and c stay at the target from steps 10, 20 and 30 on,
    and touch it first at `first_hits[rule]`."""
    frames = []
    for name, lasting in {"a": 10, "b": 20, "c": 30}.items():
        for role, seeds in (("tune", 1), ("eval", 5)):
            frame = lanes("p0", name, 0.1, [0.0] * seeds, [lasting] * seeds, role=role)
            frames.append(
                frame.assign(
                    steps_to_first_hit=first_hits[name],
                    grad_evals_to_first_hit=first_hits[name],
                    seconds_to_first_hit=0.01 * first_hits[name],
                )
            )
    return pd.concat(frames, ignore_index=True)


def test_robustness_ranks_the_same_lanes_under_every_definition():
    # Lasting success: a (10), b (20), c (30); first hit: c (2), b (5), a (10).
    runs = _lasting_and_first({"a": 10, "b": 5, "c": 2})
    analysis = analyze({"runs": runs, "curves": None}, "steps", complete_facts())
    definitions = analysis.robustness
    assert list(definitions) == [
        "own target, lasting, steps (the ranking)",
        "own target, first hit, steps",
        "own target, lasting, gradient evaluations",
    ]
    orders = [scores.index.tolist() for scores in definitions.values()]
    assert orders == [["a", "b", "c"], ["c", "b", "a"], ["a", "b", "c"]]
    # First hit: c's 2 steps make b's 5 a ratio of 2.5, a's 10 of 5: (4 - 2.5) / 3, 0.
    assert definitions["own target, first hit, steps"].tolist() == pytest.approx([1.0, 0.5, 0.0])
    assert claims.robust_top(definitions, 2) == ["b"]
    # a scores 0 on first hits: at the top of nothing, however few rules there are.
    assert claims.robust_top(definitions, 3) == ["b", "c"]
    table = claims.robustness_table(definitions)
    assert len(table) == 9 and table["rank"].tolist() == [1, 2, 3] * 3


def test_an_older_folder_ranks_by_first_hit_and_says_lasting_success_is_not_recorded(tmp_path):
    runs = _runs(COSTS)  # no *_to_first_hit columns: written before lasting success
    folder = _folder(tmp_path, runs)
    render(folder, io.StringIO(), "steps", problem_figures=False)
    text = (folder / "TABLES.md").read_text()
    # b, 4x slower than a everywhere, scores 0: at the top of nothing.
    assert "| own target, first hit, steps (the ranking) | `a`, `c` |" in text
    assert "| own target, lasting, steps | not recorded |" in text
    assert "In the top 10 under every one of the 2 definitions recorded here: `a`, `c`." in text
    written = pd.read_csv(folder / "robustness.csv")
    assert set(written["definition"]) == {
        "own target, first hit, steps (the ranking)",
        "own target, first hit, gradient evaluations",
    }


def test_the_top_of_a_definition_holds_every_rule_tied_at_its_last_place_but_no_zero():
    scores = pd.Series([0.9, 0.5, 0.5, 0.2, 0.0, 0.0], index=list("abcdef"))
    assert claims.top(scores, 2) == ["a", "b", "c"]
    assert claims.top(scores, 4) == ["a", "b", "c", "d"]
    assert claims.top(scores, 6) == ["a", "b", "c", "d"]
