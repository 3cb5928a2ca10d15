"""The runtime views (bench/analysis/runtime.py) on hand-made runs whose ECDF values,
expected runtimes, win rates, group scores and informativeness counts are worked out
here by hand, and `bench plot` writing their files on a small real folder."""

import math

import numpy as np
import pandas as pd
import pytest
from test_bench_tuning import lanes

from bench.analysis import runtime
from bench.analysis.analyze import analyze, complete_facts
from bench.report import tables

# Eval-lane costs (gradient evaluations = steps) of lasting success at level 1e-1, the one
# level every problem resolves; -1: never. Every whole run costs 100 evaluations.
# c cannot run q (skipped.csv); nobody solves t.
EVAL_COSTS = {
    ("p", "a"): [4, 8],
    ("p", "b"): [6, -1],
    ("p", "c"): [2, 2],
    ("q", "a"): [-1, -1],
    ("q", "b"): [8, 40],
    ("r", "a"): [-1, -1],
    ("r", "b"): [3, 3],
    ("r", "c"): [-1, -1],
    ("s", "a"): [1, 1],
    ("s", "b"): [1, 1],
    ("s", "c"): [1, 1],
    ("t", "a"): [-1, -1],
    ("t", "b"): [-1, -1],
    ("t", "c"): [-1, -1],
}
DIMS = {"p": 1, "q": 3, "r": 1, "s": 1, "t": 1}
GROUPS = {"p": "g1", "q": "g1", "r": "g2", "s": "g2", "t": "g2"}


def _runs(final_grad_evals: bool = True) -> pd.DataFrame:
    frames = []
    for (problem, optimizer), costs in EVAL_COSTS.items():
        finals = [0.0 if cost >= 0 else 1.0 for cost in costs]
        tune = {"1e-1": costs[:1]}
        frames.append(
            lanes(problem, optimizer, 0.1, finals[:1], costs[:1], role="tune", levels=tune)
        )
        evals = {"1e-1": costs}
        frames.append(lanes(problem, optimizer, 0.1, finals, costs, role="eval", levels=evals))
    runs = pd.concat(frames, ignore_index=True)
    return runs.assign(final_grad_evals=100.0) if final_grad_evals else runs


def _analysis(runs=None, groups: bool = True):
    runs = _runs() if runs is None else runs
    facts = pd.DataFrame({"problem": list(DIMS), "dim": list(DIMS.values()), "model_family": False})
    if groups:
        facts["group"] = [GROUPS[p] for p in DIMS]
    skipped = pd.DataFrame({"problem": ["q"], "optimizer": ["c"], "reason": ["cannot"]})
    tables_ = {"runs": runs, "curves": None, "skipped": skipped}
    return analyze(tables_, "grad_evals", complete_facts(facts))


@pytest.fixture(scope="module")
def analysis():
    return _analysis()


def test_the_ranking_these_cases_assume(analysis):
    # Overall scores over p, q, r, s (t is solved by nobody): a 1/3 on p (ratio 6/2 = 3)
    # and 1 on s; b 1 on q, r and s; c 1 on p and s.
    scores = analysis.ranking.set_index("optimizer")["score"]
    assert analysis.ranking["optimizer"].tolist() == ["b", "c", "a"]
    assert scores.to_dict() == pytest.approx({"b": 0.75, "c": 0.5, "a": (1 / 3 + 1) / 4})


def test_the_expected_runtime_counts_the_whole_runs_of_the_lanes_that_fail(analysis):
    ert = analysis.ert.set_index(["optimizer", "problem"])
    assert ert.loc[("a", "p"), "ert"] == (4 + 8) / 2
    assert ert.loc[("b", "p"), "ert"] == (6 + 100) / 1
    assert ert.loc[("b", "q"), "ert"] == (8 + 40) / 2
    assert ert.loc[("a", "q"), "ert"] == math.inf  # no lane reaches it
    assert ert.loc[("b", "p"), ["runs", "successes"]].tolist() == [2, 1]
    assert ("c", "q") not in ert.index  # skipped: no lanes
    assert set(analysis.ert["level"]) == {"1e-1"}
    # rows in ranking order, then by problem
    assert analysis.ert["optimizer"].tolist()[:5] == ["b"] * 5


def test_an_expected_runtime_is_empty_where_a_failed_lane_s_whole_run_is_not_recorded():
    ert = _analysis(_runs(final_grad_evals=False)).ert.set_index(["optimizer", "problem"])
    values = ert["ert"]
    assert np.isnan(values[("b", "p")])  # one lane failed: its run is unknown
    assert values[("a", "p")] == 6.0  # every lane succeeded
    assert values[("a", "q")] == math.inf


def test_the_ert_summary_shares_and_ratios_to_the_best(analysis):
    rows = analysis.ert_summary.set_index(["group", "optimizer"])
    # all 5 instances. ERTs: p a 6, b 106, c 2; q b 24; r b 3; s 1 each; t none.
    assert rows.loc[("all", "a"), ["instances", "finite"]].tolist() == [5, 2]
    assert rows.loc[("all", "a"), "share"] == pytest.approx(2 / 5)
    # a: p 6 / 2 = 3, s 1 / 1 = 1 -> median 2
    assert rows.loc[("all", "a"), "median_ratio"] == pytest.approx(2.0)
    # b: p 106 / 2 = 53, q 1, r 1, s 1 -> median 1
    assert rows.loc[("all", "b"), "median_ratio"] == pytest.approx(1.0)
    # g1 (p, q): b 53 and 1 -> median 27; c finite on p only (skipped on q)
    assert rows.loc[("g1", "b"), "median_ratio"] == pytest.approx(27.0)
    assert rows.loc[("g1", "c"), ["instances", "finite"]].tolist() == [2, 1]


def _at(ecdf, optimizer, group, budget):
    rows = ecdf[(ecdf["optimizer"] == optimizer) & (ecdf["group"] == group)]
    row = rows[np.isclose(rows["budget"], budget)]
    assert len(row) == 1
    return row.iloc[0]


def test_the_runtime_ecdf_by_hand(analysis):
    ecdf = analysis.ecdf
    # Costs / (d + 1): s 1/2 is the smallest, b's 40/4 on q the largest: quarter-decade
    # powers of 10 from 10^(-2/4) to 10^(4/4).
    assert np.allclose(sorted(set(ecdf["budget"])), 10 ** (np.arange(-2, 5) / 4))
    assert list(dict.fromkeys(ecdf["group"])) == ["all", "g1", "g2"]
    # g1 = p (d + 1 = 2) and q (d + 1 = 4). a: p at 2 and 4, q never; b: p at 3 and
    # never, q at 2 and 10; c: p at 1 and 1, q not run (0).
    budget = 10**0.5
    assert _at(ecdf, "a", "g1", budget).share == pytest.approx((0.5 + 0) / 2)
    assert _at(ecdf, "b", "g1", budget).share == pytest.approx((0.5 + 0.5) / 2)
    assert _at(ecdf, "c", "g1", budget).share == pytest.approx((1 + 0) / 2)
    assert _at(ecdf, "c", "g1", 1.0).share == pytest.approx(0.5)
    assert _at(ecdf, "b", "g1", 1.0).share == 0.0
    assert _at(ecdf, "b", "g1", 10.0).share == pytest.approx((0.5 + 1) / 2)
    # over all five: a reaches p (both lanes) and s within 10: 2 of 5 instances
    assert _at(ecdf, "a", "all", 10.0).share == pytest.approx(2 / 5)
    # The band resamples g1's two problems: p twice gives a 1 and b 0.5, q twice a 0 and
    # b 1, each on about a quarter of the resamples.
    a, b = _at(ecdf, "a", "g1", 10.0), _at(ecdf, "b", "g1", 10.0)
    assert (a.low, a.high) == (0.0, 1.0)
    assert (b.low, b.high) == (0.5, 1.0)


def test_the_ecdf_is_the_same_on_every_draw(analysis):
    again = _analysis()
    pd.testing.assert_frame_equal(analysis.ecdf, again.ecdf)


def test_win_rates_over_the_instances_both_can_run(analysis):
    # Median costs: p a 6, b inf, c 2; q a inf, b 24 (c cannot run q); r b 3, others
    # inf; s 1 each; t inf each.
    rates = analysis.win_rate
    assert list(rates.index) == list(rates.columns) == ["b", "c", "a"]
    # a against b on p, q, r, s, t: win, loss, loss, tie, tie
    assert rates.loc["a", "b"] == pytest.approx((1 + 0 + 0 + 0.5 + 0.5) / 5)
    assert rates.loc["b", "a"] == pytest.approx((0 + 1 + 1 + 0.5 + 0.5) / 5)
    # c against a on p, r, s, t only (c cannot run q): win, tie, tie, tie
    assert rates.loc["c", "a"] == pytest.approx((1 + 0.5 + 0.5 + 0.5) / 4)
    assert rates.loc["c", "b"] == pytest.approx((1 + 0 + 0.5 + 0.5) / 4)
    assert np.isnan(np.diag(rates.to_numpy())).all()


def test_each_group_s_score_counts_its_own_instances_only(analysis):
    scores = analysis.group_scores.set_index(["group", "optimizer"])
    # g1: p (a 1/3, b 0, c 1) and q (b 1): b 1/2, c 1/2 (tied: the ranking's order), a 1/6
    assert scores.loc[("g1", "b"), "score"] == pytest.approx(0.5)
    assert scores.loc[("g1", "c"), "score"] == pytest.approx(0.5)
    assert scores.loc[("g1", "a"), "score"] == pytest.approx(1 / 6)
    g1 = analysis.group_scores[analysis.group_scores["group"] == "g1"]
    assert g1["optimizer"].tolist() == ["b", "c", "a"] and g1["rank"].tolist() == [1, 2, 3]
    # g2: r (b 1) and s (all 1); t is solved by nobody and counts for no one
    assert scores.loc[("g2", "b"), "score"] == pytest.approx(1.0)
    assert scores.loc[("g2", "a"), "score"] == pytest.approx(0.5)
    assert scores.loc[("g2", "a"), "instances"] == 3


def test_informativeness_counts(analysis):
    counts = analysis.informative.set_index("group")
    # p: a and c of 3; q: b of the 2 that can run it; r: b of 3; s: all; t: none.
    assert counts.loc["all"].to_dict() == {
        "instances": 5,
        "problems": 5,
        "nobody": 1,
        "everyone": 1,
        "few": 3,
        "rest": 0,
        "informative": 3,
        "informative_problems": 3,
    }
    assert counts.loc["g2", ["nobody", "everyone", "few", "informative"]].tolist() == [1, 1, 1, 1]


def test_an_instance_solved_by_more_than_two_but_not_all_is_the_rest():
    # Four rules, one instance per problem; d cannot run problem y.
    index = pd.MultiIndex.from_tuples([("x", "1e-1"), ("y", "1e-1"), ("z", "1e-1")])
    inf = math.inf
    times = pd.DataFrame(
        [[1.0, 2.0, 3.0, inf], [1.0, 2.0, 3.0, inf], [1.0, inf, inf, inf]],
        index=index,
        columns=["a", "b", "c", "d"],
    )
    can_run = pd.DataFrame(True, index=index, columns=times.columns)
    can_run.loc[("y", "1e-1"), "d"] = False
    groups = pd.Series({"x": "main", "y": "main", "z": "main"}, name="group")
    row = runtime.informativeness(times, can_run, groups).iloc[0]
    # x: 3 of 4 solve (the rest); y: every rule that can run it; z: one rule (few)
    assert (row["rest"], row["everyone"], row["few"], row["informative"]) == (1, 1, 1, 2)


def test_a_folder_without_groups_is_one_group():
    analysis = _analysis(groups=False)
    assert set(analysis.groups) == {runtime.UNGROUPED}
    assert analysis.breakdown == ["all"]
    assert analysis.group_scores.empty
    assert set(analysis.ecdf["group"]) == {"all"}
    text = tables.document(analysis, _runs(), pd.DataFrame(columns=["reason"]))
    assert "### Scores by group" not in text


def test_the_tables_show_the_runtime_views(analysis):
    text = tables.document(analysis, _runs(), pd.DataFrame(columns=["reason"]))
    section = text.split("## Runtime distributions")[1].split("## Grid edges")[0]
    assert (
        "the share of instances with a finite ERT and the median over those instances of "
        "ERT / the best ERT of any rule on that instance" in section
    )
    assert "| optimizer | all | g1 | g2 |" in section
    # a: 2 of 5 finite, median ratio 2; in g1 1 of 2 (p: ratio 3)
    assert "| `a` | 40% · 2.00 | 50% · 3.00 |" in section
    assert "| `c` | 0.50 | - | 0.62 |" in section  # c against b, itself, a
    assert "### Scores by group" in section
    assert "| 3 | `a` | 0.333 | 0.167 (3) | 0.500 (3) |" in section
    assert "3 of 5 instances are informative" in section


@pytest.mark.slow  # a run and a plot end to end: about 30 s on 2 cores
def test_bench_plot_writes_the_runtime_files(tmp_path, capsys):
    from bench.cli import main

    out = tmp_path / "out"
    argv = ["run", "--problems", "beale", "rosenbrock_2d", "--optimizers", "adam", "sgd", "lion"]
    assert main([*argv, "--out", str(out), "--no-cache", "--jobs", "1"]) == 0
    for name in ("runtime_ecdf.csv.gz", "ert.csv.gz", "win_rate.csv", "informativeness.csv"):
        (out / name).unlink()
    assert main(["plot", str(out)]) == 0
    assert "skipped" not in capsys.readouterr().err
    ecdf = pd.read_csv(out / "runtime_ecdf.csv.gz")
    assert set(ecdf["optimizer"]) == {"adam", "sgd", "lion"} and set(ecdf["group"]) == {"all"}
    assert ((ecdf["low"] <= ecdf["share"]) & (ecdf["share"] <= ecdf["high"])).all()
    ert = pd.read_csv(out / "ert.csv.gz")
    assert set(ert["problem"]) == {"beale", "rosenbrock_2d"}
    assert (ert["successes"] <= ert["runs"]).all()
    rates = pd.read_csv(out / "win_rate.csv", index_col="optimizer")
    ranking = pd.read_csv(out / "ranking.csv")
    assert list(rates.index) == list(rates.columns) == ranking["optimizer"].tolist()
    both = rates.to_numpy() + rates.to_numpy().T
    assert np.allclose(both[~np.eye(3, dtype=bool)], 1.0)
    assert not (out / "groups.csv").exists()  # both problems are "main": one group
    for figure in ("runtime_ecdf.png", "win_rate.png"):
        assert (out / figure).read_bytes().startswith(b"\x89PNG")
    page = (out / "index.html").read_text()
    assert "<h2>Runtime distributions</h2>" in page and 'src="runtime_ecdf.png"' in page
    assert "## Runtime distributions" in (out / "TABLES.md").read_text()
