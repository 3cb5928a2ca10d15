"""The relative levels (docs/method.md, "Relative levels"): the tuning rule, the summary, the
ranking over (problem, level) instances, its bootstrap, head to head, robustness and the
tables, on hand-made runs whose answers are known."""

import io
import math

import numpy as np
import pandas as pd
import pytest
from test_bench_report import _folder
from test_bench_tuning import lanes

from bench.analysis import budget, claims, profiles, stats, tuning
from bench.analysis.analyze import analyze, complete_facts
from bench.report.render import render
from bench.results import schema

EVERY = {name: None for name in schema.LEVELS}
DONE = 0.0  # a final f - f* at f*


def levels_at(*steps, never=(), unresolved=()):
    """Level name -> steps for the levels in order (1e-1 first); `never` names levels not
    reached (-1), `unresolved` those the dtype cannot resolve (left out: NaN)."""
    names = [n for n in schema.LEVELS if n not in unresolved]
    given = dict(zip(names, steps, strict=False))
    return {n: (-1 if n in never or n not in given else given[n]) for n in names}


def pair(problem, optimizer, lr, levels, tune_seeds=5, eval_seeds=5, target_steps=None):
    """Tune and eval lanes of one trial reaching each level at the given steps."""
    target_steps = 10 if target_steps is None else target_steps
    return pd.concat(
        [
            lanes(problem, optimizer, lr, [DONE] * n, [target_steps] * n, role=role, levels=levels)
            for role, n in (("tune", tune_seeds), ("eval", eval_seeds))
        ],
        ignore_index=True,
    ).assign(seed=lambda f: np.where(f["role"] == "eval", 1000, 0) + f.groupby("role").cumcount())


def tuned_lr(runs, cost="steps"):
    return tuning.tuned_trials(runs, cost)["learning_rate"].tolist()


# -- the tuning rule --------------------------------------------------------------------


def test_a_trial_reaching_a_deeper_level_wins_however_cheap_the_other():
    # lr 0.1 reaches 1e-1 .. 1e-3 in 1, 2, 3 steps (and its own target in 5) and never
    # 1e-5; lr 1 reaches every level, 1e-7 at 990 steps, and is costlier at every level
    # both reach and at the own target.
    runs = pd.concat(
        [
            pair("p", "a", 0.1, levels_at(1, 2, 3, never=("1e-5", "1e-7")), target_steps=5),
            pair("p", "a", 1.0, levels_at(100, 200, 300, 900, 990), target_steps=50),
        ]
    )
    assert tuned_lr(runs) == [1.0]
    pick = tuning.tuned_trials(runs, "steps").iloc[0]
    assert (pick.reached, pick.deepest, pick.deepest_cost) == (5, "1e-7", 990)


def test_among_trials_that_reach_as_many_levels_the_cheapest_at_the_deepest_wins():
    # Both reach 1e-1 .. 1e-5: lr 0.3 is cheaper at 1e-1 .. 1e-3 and at the own target,
    # lr 1 at 1e-5.
    runs = pd.concat(
        [
            pair("p", "a", 0.3, levels_at(1, 2, 3, 500, never=("1e-7",)), target_steps=3),
            pair("p", "a", 1.0, levels_at(50, 60, 70, 80, never=("1e-7",)), target_steps=70),
        ]
    )
    assert tuned_lr(runs) == [1.0]


def test_a_level_counts_as_reached_when_most_tune_seeds_reach_it():
    # 5 tune seeds: 3 reaching 1e-5 make a finite median there, 2 do not.
    three = {**levels_at(10, 20, 30, never=("1e-7",)), "1e-5": [40, 40, 40, -1, -1]}
    two = {**levels_at(10, 20, 30, never=("1e-7",)), "1e-5": [40, 40, -1, -1, -1]}
    medians = tuning.grid_medians(
        pd.concat([pair("p", "a", 1.0, three), pair("p", "b", 1.0, two)]), "steps"
    ).set_index("optimizer")
    assert medians.loc["a", ["reached", "deepest"]].tolist() == [4, "1e-5"]
    assert medians.loc["b", ["reached", "deepest"]].tolist() == [3, "1e-3"]


def test_a_diverged_lane_reaches_no_level():
    runs = pair("p", "a", 1.0, levels_at(1, 2, 3, 4, 5), tune_seeds=3)
    runs.loc[runs["role"] == "tune", "diverged"] = [True, True, False]
    assert tuning.grid_medians(runs, "steps")["reached"].tolist() == [0]


def test_a_level_the_dtype_cannot_resolve_is_left_out_not_failed():
    # 1e-7 is NaN on every lane: reaching 1e-1 .. 1e-5 is reaching every level there is.
    levels = levels_at(10, 20, 30, 40, unresolved=("1e-7",))
    runs = pd.concat(
        [
            pair("p", "a", 1.0, levels),
            pair("p", "b", 1.0, levels_at(10, 20, 30, 50, unresolved=("1e-7",))),
        ]
    )
    summary = tuning.summarize(runs, "steps")
    row = summary.set_index("optimizer").loc["a"]
    assert row["success_rate_tau_1e-5"] == 1.0 and math.isnan(row["success_rate_tau_1e-7"])
    assert math.isnan(row["median_steps_to_tau_1e-7"])
    assert profiles.instances(summary).get_level_values("level").tolist() == [
        "1e-1", "1e-2", "1e-3", "1e-5"
    ]  # fmt: skip
    # Both solve every instance; a is cheaper at 1e-5 only, tied elsewhere: (3 + 1) / 4 and
    # b's 50 / 40 = 1.25 there gives (4 - 1.25) / 3.
    ranking = stats.overall_ranking(
        summary, runs, "steps", profiles.runnable(summary, None)
    ).set_index("optimizer")
    assert ranking.loc["a", "score"] == 1.0
    assert ranking.loc["b", "score"] == pytest.approx((3 + (4 - 1.25) / 3) / 4, rel=1e-12)
    assert ranking.loc["a", "solved"] == ranking.loc["a", "instances"] == 4


def test_a_pair_whose_problem_resolves_no_level_is_tuned_at_its_own_target():
    # Every level NaN: the own target decides, lr 1 reaching it first.
    runs = pd.concat(
        [
            pair("p", "a", 1.0, {}, target_steps=5),
            pair("p", "a", 0.1, {}, target_steps=50),
        ]
    )
    pick = tuning.tuned_trials(runs, "steps").iloc[0]
    assert (pick.learning_rate, pick.reached, pick.deepest) == (1.0, 1, "target")
    summary = tuning.summarize(runs, "steps")
    assert profiles.instances(summary).tolist() == [("p", "target")]


def test_the_seconds_axis_at_a_level_is_steps_times_seconds_per_step():
    runs = pd.concat(
        [
            pair("p", "a", 1.0, levels_at(10, 20, 30, 40, 50)).assign(seconds_per_step=0.1),
            pair("p", "a", 0.1, levels_at(10, 20, 30, 40, 60)).assign(seconds_per_step=0.01),
        ]
    )
    # 50 steps at 0.1 s is 5 s; 60 steps at 0.01 s is 0.6 s.
    assert tuned_lr(runs, "steps") == [1.0]
    assert tuned_lr(runs, "seconds") == [0.1]
    summary = tuning.summarize(runs, "seconds")
    assert summary.loc[0, "median_seconds_to_tau_1e-7"] == pytest.approx(0.6)


def test_the_median_study_is_chosen_by_the_level_rule_under_algoperf():
    # Three studies of two trials, each a shallow one at the smaller learning rate and a
    # deep one. By levels the studies' bests reach 3, 5 and 4 levels: the median is study
    # 2's, reaching 4. (Tied at the own target, the smaller rate would pick every study's
    # shallow trial, and the median would be study 1's, reaching 2.)
    frames = []
    for study, (shallow, deep) in enumerate([(1, 3), (2, 5), (1, 4)]):
        for k, count in enumerate((shallow, deep)):
            reached = list(schema.LEVELS)[:count]
            levels = {n: (100 + 10 * study if n in reached else -1) for n in schema.LEVELS}
            frame = pair("p", "a", 0.1 * (2 * study + k + 1), levels)
            frames.append(frame.assign(study=study, trial=2 * study + k))
    runs = pd.concat(frames, ignore_index=True)
    ids = ["problem", "optimizer", "trial", "study"]
    runs = runs[[*ids, *runs.columns.drop(ids)]]
    pick = tuning.tuned_trials(runs, "steps").iloc[0]
    assert (pick.study, pick.reached, pick.trial) == (2, 4, 5)


# -- the summary -------------------------------------------------------------------------


def test_the_summary_reports_every_level_on_every_axis_from_the_eval_lanes():
    runs = pd.concat(
        [
            lanes("p", "a", 1.0, [DONE] * 2, [10] * 2, role="tune", levels=levels_at(*range(1, 6))),
            # eval: 1e-5 reached by 3 of 5 seeds, 1e-7 by 2
            lanes(
                "p", "a", 1.0, [DONE] * 5, [10] * 5, role="eval",
                levels={**levels_at(1, 2, 3), "1e-5": [4, 4, 6, -1, -1], "1e-7": [5, 5] + [-1] * 3},
            ).assign(seed=range(1000, 1005)),
        ]
    )  # fmt: skip
    row = tuning.summarize(runs, "steps").iloc[0]
    assert row["median_steps_to_tau_1e-5"] == 6 and row["success_rate_tau_1e-5"] == 0.6
    assert row["median_grad_evals_to_tau_1e-5"] == 6
    assert row["median_seconds_to_tau_1e-5"] == pytest.approx(0.06)
    assert row["median_steps_to_tau_1e-7"] == np.inf and row["success_rate_tau_1e-7"] == 0.4
    assert row["median_steps_to_target"] == 10  # the own target's columns stay


def test_grid_edge_names_the_end_of_the_learning_rate_grid_the_tuned_trial_sits_at():
    def grid(best, b1s=(0.9,)):
        frames = []
        for b1 in b1s:
            for lr in (0.01, 0.1, 1.0):
                steps = 10 if (lr, b1) == best else 100
                frames.append(
                    pair("p", "a", lr, levels_at(steps, steps, steps, steps, steps)).assign(b1=b1)
                )
        runs = pd.concat(frames, ignore_index=True)
        runs.insert(3, "b1", runs.pop("b1"))
        return tuning.summarize(runs, "steps").loc[0, "grid_edge"]

    assert grid((0.01, 0.9)) == "low"
    assert grid((1.0, 0.9)) == "high"
    assert grid((0.1, 0.9)) == ""
    # At the largest rate among those sharing its b1, though another b1 goes higher.
    assert grid((0.1, 0.5), b1s=(0.9, 0.5)) == ""
    # A random search: no other trial shares its b1, so it sits at no edge.
    frames = [
        pair("p", "a", lr, levels_at(s, s, s, s, s)).assign(b1=b1)
        for lr, b1, s in ((0.01, 0.9, 10), (0.1, 0.8, 50), (1.0, 0.7, 90))
    ]
    runs = pd.concat(frames, ignore_index=True)
    runs.insert(3, "b1", runs.pop("b1"))
    assert tuning.summarize(runs, "steps").loc[0, "grid_edge"] == ""


# -- the ranking over (problem, level) instances ----------------------------------------


def test_the_headline_score_averages_over_every_problem_and_level():
    # p0 resolves every level: a is cheapest on all 5. p1 resolves 1e-1 only: b cheapest,
    # a 4x slower there (score 0). Per problem a would score (1 + 0) / 2; per instance
    # 5 / 6.
    runs = pd.concat(
        [
            pair("p0", "a", 1.0, levels_at(10, 20, 30, 40, 50)),
            pair("p0", "b", 1.0, levels_at(40, 80, 120, 160, 200)),
            pair("p1", "a", 1.0, {"1e-1": 40}),
            pair("p1", "b", 1.0, {"1e-1": 10}),
        ]
    )
    summary = tuning.summarize(runs, "steps")
    scores = profiles.integrated_scores(summary, "steps")
    assert scores["a"] == pytest.approx(5 / 6) and scores["b"] == pytest.approx(1 / 6)
    times = profiles.cost_matrix(summary, "steps")
    assert times.index.tolist() == [("p0", n) for n in schema.LEVELS] + [("p1", "1e-1")]


def test_a_resampled_problem_carries_all_its_levels():
    # As above: a resample of the two problems holds k picks of p0 (5 instances each, a
    # scores 1) and 2 - k of p1 (1 instance, a scores 0). With the levels kept together a
    # resample scores 0 (k = 0), 5/6 (k = 1) or 1 (k = 2); instances drawn one by one
    # would give other values.
    runs = pd.concat(
        [
            pair("p0", "a", 1.0, levels_at(10, 20, 30, 40, 50)),
            pair("p0", "b", 1.0, levels_at(40, 80, 120, 160, 200)),
            pair("p1", "a", 1.0, {"1e-1": 40}),
            pair("p1", "b", 1.0, {"1e-1": 10}),
        ]
    )
    summary = tuning.summarize(runs, "steps")
    samples = stats.score_samples(summary, runs, "steps")["a"].to_numpy()
    assert set(np.round(samples, 12)) == {0.0, round(5 / 6, 12), 1.0}


def test_levels_of_one_pick_share_one_draw_of_seeds():
    # a's eval seeds reach every level at the same step on a seed (10 on seed 0 ... 50 on
    # seed 4); a seed resample moves every level's median together, so the cost is one
    # number per resample across its levels.
    steps = np.array([10, 20, 30, 40, 50])
    lanes_a = pair("p0", "a", 1.0, {n: steps for n in schema.LEVELS})
    runs = pd.concat([lanes_a, pair("p0", "b", 1.0, levels_at(25, 25, 25, 25, 25))])
    summary = tuning.summarize(runs, "steps")
    rng = np.random.default_rng(0)
    costs = np.stack(
        [tuning.cost_to_level(lanes_a[lanes_a.role == "eval"], "steps", n) for n in schema.LEVELS],
        1,
    )
    medians = stats.resampled_level_medians(costs, rng, 50)
    assert (medians == medians[:, :1]).all() and len(np.unique(medians[:, 0])) > 1
    assert len(stats.score_samples(summary, runs, "steps")) == stats.RESAMPLES


def test_a_folder_without_level_columns_ranks_as_one_whose_problems_resolve_none():
    # The same lanes without level columns, and with every level NaN: one instance per
    # problem, its own target, and the same ranking to the last bit.
    costs = {"a": [10, 20, 30], "b": [20, 10, 40], "c": [80, 80, 80]}
    frames = [
        lanes(f"p{i}", name, 0.1, [DONE] * n, np.full(n, steps) + np.arange(n) % 3, role=role)
        for name, per_problem in costs.items()
        for i, steps in enumerate(per_problem)
        for role, n in (("tune", 3), ("eval", 7))
    ]
    older = pd.concat(frames, ignore_index=True)
    empty = {
        schema.level_column(a, n): np.nan for n in schema.LEVELS for a in ("steps", "grad_evals")
    }
    newer = pd.concat([f.assign(**empty) for f in frames], ignore_index=True)
    analyses = [
        analyze({"runs": r, "curves": None}, "steps", complete_facts()) for r in (older, newer)
    ]
    assert not analyses[0].records_levels and not analyses[1].records_levels
    pd.testing.assert_frame_equal(analyses[0].ranking, analyses[1].ranking)
    assert analyses[0].ranking["instances"].tolist() == [3, 3, 3]


# -- claims ----------------------------------------------------------------------------


def test_the_paired_test_takes_one_value_per_problem_not_per_level():
    # 6 problems, 5 levels each; fast is half the reference's cost at every level. Over 30
    # instances the test would give 2 / 2^30; over the 6 problems it gives 2 / 2^6.
    frames = []
    for i in range(6):
        frames.append(pair(f"p{i}", "ref", 1.0, levels_at(20, 40, 60, 80, 100), eval_seeds=1))
        frames.append(pair(f"p{i}", "fast", 1.0, levels_at(10, 20, 30, 40, 50), eval_seeds=1))
    runs = pd.concat(frames, ignore_index=True)
    summary = tuning.summarize(runs, "steps")
    can_run = profiles.runnable(summary, None)
    row = claims.head_to_head(summary, "steps", "ref", can_run, ["ref", "fast"]).iloc[0]
    assert (row.both_solved, row.both_solved_problems, row.differing) == (30, 6, 6)
    assert row.ratio == pytest.approx(0.5)
    assert row.p == pytest.approx(2 / 2**6)
    assert (row.wins, row.losses, row.ties) == (30, 0, 0)


def test_robustness_ranks_every_level_alone_and_the_own_target():
    # a is cheapest at the coarse levels, b at the fine ones; at the own target c.
    runs = pd.concat(
        [
            pair("p0", "a", 1.0, levels_at(10, 10, 10, 800, 900), target_steps=50),
            pair("p0", "b", 1.0, levels_at(80, 80, 80, 100, 100), target_steps=50),
            pair("p0", "c", 1.0, levels_at(80, 80, 80, 800, 900), target_steps=5),
        ]
    )
    analysis = analyze({"runs": runs, "curves": None}, "steps", complete_facts())
    definitions = analysis.robustness
    assert list(definitions) == [
        "every level, lasting, steps (the ranking)",
        *(f"level {n} alone, lasting, steps" for n in schema.LEVELS),
        "own target, lasting, steps",
        "own target, first hit, steps",
        "every level, lasting, gradient evaluations",
    ]
    assert definitions["own target, first hit, steps"] is None  # no first-hit columns
    assert definitions["level 1e-1 alone, lasting, steps"].index[0] == "a"
    assert definitions["level 1e-7 alone, lasting, steps"].index[0] == "b"
    assert definitions["own target, lasting, steps"].index[0] == "c"
    # The per-level table: a scores 1 at 1e-1 and 0 at 1e-7; its solved counts.
    levels = analysis.levels
    assert levels.loc["a", "score_1e-1"] == 1.0 and levels.loc["a", "score_1e-7"] == 0.0
    assert levels.loc["a", "solved_1e-7"] == 1 and levels.attrs["problems"]["1e-7"] == 1


def test_rules_that_differ_at_one_level_only_are_not_identical():
    same = levels_at(10, 20, 30, 40, 50)
    runs = pd.concat(
        [
            pair("p0", "a", 1.0, same),
            pair("p0", "b", 1.0, same),
            pair("p0", "c", 1.0, {**same, "1e-7": 60}),
        ]
    )
    analysis = analyze({"runs": runs, "curves": None}, "steps", complete_facts())
    assert analysis.identical == [["a", "b"]]


def test_budget_curves_score_each_trial_over_the_problems_levels():
    # One problem, every level: trial lr 1 is cheapest on 1e-1 .. 1e-3 (a ratio of 1),
    # lr 0.1 on 1e-5 and 1e-7 where lr 1 never gets.
    runs = pd.concat(
        [
            pair("p", "a", 1.0, levels_at(10, 10, 10, never=("1e-5", "1e-7"))),
            pair("p", "a", 0.1, levels_at(40, 40, 40, 40, 40)),
        ]
    )
    scores = budget.trial_scores(runs, "steps").set_index("learning_rate")["trial_score"]
    assert scores[1.0] == pytest.approx(3 / 5)
    assert scores[0.1] == pytest.approx(2 / 5)  # ratio 4 at the coarse levels scores 0


def test_a_summary_median_of_seconds_to_a_level_is_not_compared():
    assert schema.tolerance("summary", "median_seconds_to_tau_1e-3") is None
    assert (
        schema.tolerance("summary", "median_steps_to_tau_1e-3")
        == schema.DECLARED["steps_to_tau_1e-3"].tolerance
    )


# -- the views -------------------------------------------------------------------------


def test_tables_show_a_cell_per_level_the_per_level_ranking_and_the_grid_edges(tmp_path):
    frames = []
    for lr, steps in ((0.1, 30), (1.0, 10)):  # a's best is its largest rate: the high edge
        frames.append(
            pair("p0", "a", lr, levels_at(steps, steps, steps, steps, unresolved=("1e-7",)))
        )
    frames.append(
        pair("p0", "b", 1.0, levels_at(20, 20, 20, never=("1e-5",), unresolved=("1e-7",)))
    )
    folder = _folder(tmp_path, pd.concat(frames, ignore_index=True))
    log = io.StringIO()
    render(folder, log, "steps")  # a table per problem goes with its figures
    assert "records no relative levels" not in log.getvalue()
    text = (folder / "TABLES.md").read_text()
    assert "lasting success at the relative levels 1e-1, 1e-2, 1e-3, 1e-5, 1e-7" in text
    assert "## Per-level rankings" in text
    assert "| `a` | 1.000 (1/1) | 1.000 (1/1) | 1.000 (1/1) | 1.000 (1/1) | 1.000 (1/1) |" in text
    assert "| `b` | 0.667 (1/1) | 0.667 (1/1) | 0.667 (1/1) | 0.000 (0/1) | 1.000 (1/1) |" in text
    assert "level 1e-7 alone" not in text  # no problem resolves it
    assert "1 of 2 tuned pairs (50%) sit at an edge of their learning-rate grid" in text
    assert "`a` on p0 (high)" in text
    table = text.split("## p0")[1]
    assert "| to 1e-1 | to 1e-2 | to 1e-3 | to 1e-5 |" in table and "to 1e-7" not in table
    assert "(1e-7 finer than the dtype resolves)" in table
    row = next(line for line in table.splitlines() if "`b`" in line)
    assert "| 20 (100%) | 20 (100%) | 20 (100%) | never (0%) |" in row
    assert "| 1 (high edge) |" in next(line for line in table.splitlines() if "`a`" in line)
    summary = pd.read_csv(folder / "summary.csv")
    assert {"median_grad_evals_to_tau_1e-3", "success_rate_tau_1e-5", "grid_edge"} <= set(summary)
    ranking = pd.read_csv(folder / "ranking.csv").set_index("optimizer")
    assert ranking.loc["a", "instances"] == 4 and ranking.loc["b", "solved"] == 3
    page = (folder / "index.html").read_text()
    assert "<th>to 1e-5</th>" in page and "<td>never (0%)</td>" in page


def test_a_problem_where_a_pair_records_no_levels_is_judged_at_its_own_target():
    # b's lanes come from a folder written before the levels (joined by --against): its
    # problem is one instance at the own target, where b is the cheaper, not five that b
    # would fail for want of columns.
    runs = pd.concat(
        [pair("p0", "a", 1.0, levels_at(1, 2, 3, 4, 5), target_steps=20), pair("p0", "b", 1.0, {})],
        ignore_index=True,
    )
    summary = tuning.summarize(runs, "steps")
    assert profiles.instances(summary).tolist() == [("p0", "target")]
    scores = profiles.integrated_scores(summary, "steps")
    assert scores["b"] == 1.0 and scores["a"] == pytest.approx((4 - 2) / 3)
    assert summary.sort_values("rank")["optimizer"].tolist() == ["b", "a"]
