"""TABLES.md and `bench plot` from hand-made runs: intervals, the three costs, the cost axis."""

import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_bench_tuning import lanes
from test_statistics import COSTS, _runs

from bench.analysis import stats
from bench.analysis.analyze import analyze, complete_facts
from bench.cli import main
from bench.known import known
from bench.report import tables
from bench.report.render import render
from bench.results import schema


def _document(runs, cost="steps"):
    analysis = analyze({"runs": runs, "curves": None}, cost, complete_facts())
    return tables.document(analysis, runs, pd.DataFrame(columns=["problem", "optimizer", "reason"]))


def test_tables_show_every_cost_to_target_with_its_interval():
    text = _document(_runs(COSTS))
    header = next(
        line for line in text.splitlines() if line.startswith("| rank | optimizer | tuned")
    )
    for label in ["median f - f* [95% CI]", "steps to target [95% CI]"]:
        assert label in header
    assert "gradient evaluations to target [95% CI]" in header
    assert "seconds to target [95% CI]" in header
    # a on p0: eval seeds at 9, 10 and 11 steps (0.01 s each, one evaluation per step).
    row = next(line for line in text.split("## p0")[1].splitlines() if "`a`" in line)
    cells = [cell.strip() for cell in row.split("|")[1:-1]]
    assert re.fullmatch(r"10 \[(9|10), (10|11)\] ", cells[4] + " ")
    assert cells[4] == cells[5]  # gradient evaluations = steps here
    assert re.fullmatch(r"0\.1 \[0\.0\d+, 0\.1\d*\]", cells[6])
    assert "profile score [95% CI]" in text and "Pairwise" not in text
    ranking = text.split("## Overall ranking")[1].split("## Head to head")[0]
    # c in a's group (ranks 1-2); its score 0.988 inside its interval. b, last on every
    # resample, alone in group 2.
    c_row = r"\| 2 \| `c` \| 1 \| 0\.988 \[0\.9\d\d, (0\.99\d|1\.000)\] \| 1-2 \| 0\.988 \| 100% \|"
    assert re.search(c_row, ranking)
    assert re.search(r"\| 3 \| `b` \| 2 \| 0\.000 \[0\.000, 0\.0\d\d\] \| 3 \|", ranking)
    assert "- **Group 1** (2): `a`, `c`\n- **Group 2** (1): `b`" in ranking


def _folder(tmp_path, runs):
    """A results folder with runs.csv and a curves.csv of one record (1.0) per lane."""
    runs.to_csv(tmp_path / "runs.csv", index=False)
    columns = list(schema.COLUMNS["curves"])
    curves = runs.assign(**{c: 1 for c in columns if c not in runs})[columns]
    curves.to_csv(tmp_path / "curves.csv", index=False)
    return tmp_path


def test_a_bad_cost_exits_2_with_one_line(tmp_path, capsys):
    assert main(["plot", "--cost", "minutes", str(tmp_path)]) == 2
    assert main(["run", "--cost", "minutes", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all("invalid choice: 'minutes'" in line for line in err)


@pytest.mark.slow
def test_plot_by_a_cost_whose_tuned_setting_was_not_evaluated_exits_2(tmp_path, capsys):
    runs = pd.concat(
        [
            lanes("p", "lbfgs", 0.3, [0.0] * 2, [10] * 2, evals=[100] * 2, role="tune"),
            lanes("p", "lbfgs", 1.0, [0.0] * 2, [15] * 2, evals=[30] * 2, role="tune"),
            lanes("p", "lbfgs", 1.0, [0.0] * 2, [15] * 2, evals=[30] * 2, role="eval"),
        ]
    )
    folder = _folder(tmp_path, runs)
    assert main(["plot", "--cost", "grad_evals", str(folder)]) == 0
    assert "gradient evaluations to target" in (folder / "TABLES.md").read_text()
    listed = {Path(line).name for line in capsys.readouterr().out.splitlines()}
    # every file it wrote, not the figures only
    assert {"TABLES.md", "summary.csv", "index.html", "performance_profile.png"} <= listed
    assert main(["plot", "--cost", "steps", str(folder)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "lbfgs on p (lr 0.3)" in err[0]


@pytest.mark.slow
def test_plot_of_a_folder_without_roles_or_other_costs_ranks_by_steps(tmp_path, capsys):
    runs = lanes("p", "a", 0.1, [0.0] * 2, [5, 7]).drop(
        columns=["grad_evals_to_target", "seconds_to_target"]
    )
    folder = _folder(tmp_path, runs)
    assert main(["plot", str(folder)]) == 0
    err = capsys.readouterr().err
    assert "records no grad_evals_to_target: tuning and ranking by steps" in err
    assert "records no relative levels (steps_to_tau_*): tuning and ranking by each" in err
    text = (folder / "TABLES.md").read_text()
    assert "This folder records no relative levels" in text
    assert "tuned and ranked by steps to each problem's own target" in text
    summary = pd.read_csv(folder / "summary.csv")
    assert summary.median_steps_to_target.tolist() == [6] and np.isnan(
        summary.median_grad_evals_to_target[0]
    )


def test_a_render_ranks_once_and_writes_the_ranking_every_view_shows(tmp_path, monkeypatch):
    calls = []
    overall_ranking = stats.overall_ranking

    def counted(*args, **kwargs):
        calls.append(args)
        return overall_ranking(*args, **kwargs)

    monkeypatch.setattr(stats, "overall_ranking", counted)
    folder = _folder(tmp_path, _runs(COSTS))
    render(folder, io.StringIO(), "steps", problem_figures=False)
    assert len(calls) == 1
    ranking = schema.read(folder, "ranking")
    assert ranking["optimizer"].tolist() == ["a", "c", "b"]
    tables_md = (folder / "TABLES.md").read_text().split("## Head to head")[0]
    page = (folder / "index.html").read_text()
    for row in ranking.itertuples():
        score = f"{row.score:.3f} [{row.score_low:.3f}, {row.score_high:.3f}]"
        cells = f"| {row.overall_rank} | `{row.optimizer}` | {row.group} | {score} |"
        assert cells in tables_md
        assert f"<td>{row.optimizer}</td>" in page and score in page


def test_the_data_profile_names_the_problems_whose_size_the_folder_does_not_give(tmp_path):
    """An older folder (no problems.csv) of problems no registry knows: the data profile
    cannot place them and says so in one line; given their facts, it draws them."""
    folder = _folder(tmp_path, _runs(COSTS))
    log = io.StringIO()
    render(folder, log, "steps", problem_figures=False, known=known())
    names = [f"p{i}" for i in range(8)]
    line = f"data_profile.png leaves out {', '.join(names)}: no parameter count in problems.csv"
    assert line in log.getvalue().splitlines()
    facts = pd.DataFrame({"problem": names, "dim": range(2, 10), "model_family": False})
    complete_facts(facts).to_csv(folder / "problems.csv", index=False)
    log = io.StringIO()
    render(folder, log, "steps", problem_figures=False)
    assert "leaves out" not in log.getvalue() and (folder / "data_profile.png").exists()


def test_a_data_profile_draws_a_cost_of_zero_a_start_already_at_the_target(tmp_path):
    # A start at the target costs 0 evaluations: the budgets are log-spaced over the
    # positive costs (np.geomspace from 0 failed), and the 0 is within every budget.
    from bench.report import plots

    summary = analyze({"runs": _runs(COSTS), "curves": None}, "steps", complete_facts()).summary
    summary.loc[summary.index[0], "median_grad_evals_to_target"] = 0.0
    dims = {f"p{i}": 2 for i in range(8)}
    plots.data_profile(summary, dims, tmp_path / "data_profile.png", "steps")
    assert (tmp_path / "data_profile.png").read_bytes().startswith(b"\x89PNG")


def test_a_tuned_hyperparameter_near_one_keeps_its_distance_from_one():
    from bench.report.format import setting

    # A b2 of 0.99977 printed as "1" at 3 significant digits.
    assert [setting(x) for x in (0.99977, 0.999, 0.9, 3.16227766017e-4, 1.0)] == [
        "0.99977",
        "0.999",
        "0.9",
        "0.000316",
        "1",
    ]


def test_matplotlibs_warnings_stay_out_of_the_terminal(tmp_path, monkeypatch, recwarn):
    # A figure whose legend has nothing to show: matplotlib warns "No artists with labels
    # found to put in legend", which reached the terminal of every bench plot.
    from bench.report import plots

    def empty_legend(summary, path, cost, k=10):
        fig, ax = plots.plt.subplots()
        ax.legend()
        fig.savefig(path)
        plots.plt.close(fig)

    monkeypatch.setattr(plots, "performance_profile", empty_legend)
    folder = _folder(tmp_path, _runs(COSTS))
    log = io.StringIO()
    render(folder, log, "steps", problem_figures=False)
    assert "skipped performance_profile" not in log.getvalue()
    assert not [w for w in recwarn if "No artists" in str(w.message)]


def test_ctrl_c_lost_in_a_finalizer_still_stops_the_render(tmp_path, monkeypatch):
    # A KeyboardInterrupt raised while a finalizer (or a garbage collector's callback, as
    # XLA's) runs is printed as "Exception ignored" and lost: the plot ran on and exited
    # 0 with every file written (4 tries in 28).
    import os
    import signal
    import sys
    import weakref

    from bench.report import plots

    lost = []  # what Python reports as ignored, as it does on a terminal
    monkeypatch.setattr(sys, "unraisablehook", lambda report: lost.append(report.exc_type))

    def interrupted_in_a_finalizer(*args, **kwargs):
        def interrupt():
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(10**6):  # the handler runs here, inside the finalizer
                pass

        class Swallowed:
            pass

        weakref.finalize(Swallowed(), interrupt)  # runs at once: the object is unreferenced

    monkeypatch.setattr(plots, "performance_profile", interrupted_in_a_finalizer)
    folder = _folder(tmp_path, _runs(COSTS))
    before = sorted(p.name for p in folder.iterdir())
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            render(folder, io.StringIO(), "steps", problem_figures=False)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert lost == [KeyboardInterrupt]  # the interrupt itself was lost in the finalizer
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing moved in


def test_ctrl_c_during_a_figure_stops_the_render_even_where_a_c_extension_swallows_it(
    tmp_path, monkeypatch
):
    # matplotlib's Agg renderer calls back into Python from C++ and turns an exception
    # there into its own error: a Ctrl-C at that moment became "skipped figure" and the
    # plot ran on and exited 0 (1 try in 6).
    import os
    import signal
    import time

    from bench.report import plots

    def interrupted_in_a_callback(*args, **kwargs):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1.0)
        except KeyboardInterrupt:
            raise RuntimeError("error in a drawing callback") from None

    monkeypatch.setattr(plots, "performance_profile", interrupted_in_a_callback)
    folder = _folder(tmp_path, _runs(COSTS))
    # As a terminal's process has it (a pytest-xdist worker ignores SIGINT).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            render(folder, io.StringIO(), "steps", problem_figures=False)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert signal.getsignal(signal.SIGINT) is previous
    assert not list(folder.glob(".render.*"))  # the draft is gone


def test_one_problem_is_counted_in_the_singular_on_the_page_and_in_the_tables(tmp_path):
    runs = _runs(COSTS)
    one = runs[runs["problem"] == runs["problem"].iloc[0]]
    folder = _folder(tmp_path, one)
    render(folder, io.StringIO(), "steps", problem_figures=False)
    page = (folder / "index.html").read_text()
    assert "on 1 problem." in page and "1 problems" not in page
    assert "1 problems" not in (folder / "TABLES.md").read_text()


def test_the_tables_say_why_a_median_f_minus_f_star_can_be_negative():
    text = _document(_runs(COSTS)).split("## Overall ranking")[0]
    assert "slightly below 0 where the loss, computed in the run's dtype, rounds below" in text


@pytest.mark.slow  # a run end to end: about 5 s
def test_a_problem_where_every_lane_diverged_still_gets_its_sensitivity_figure(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["run", "--problems", "rosenbrock_2d", "--optimizers", "sgd", "--grid", "100", "1000"]
    assert main([*argv, "--steps", "20", "--seeds", "1", "--out", str(out)]) == 0
    assert "skipped" not in capsys.readouterr().err
    assert (out / "plots" / "sensitivity_rosenbrock_2d.png").is_file()


def test_a_problem_with_baselines_names_them_beside_its_table_and_one_without_does_not():
    runs = _runs(COSTS)
    facts = pd.DataFrame(
        {"problem": ["p0"], "baselines": ["test_loss: unigram 3.167, bigram 2.548"]}
    )
    analysis = analyze({"runs": runs, "curves": None}, "steps", complete_facts(facts))
    text = tables.document(analysis, runs, pd.DataFrame(columns=["problem", "optimizer", "reason"]))
    heading = text.split("## p0")[1].split("|")[0]
    assert (
        "What reference models score on its metrics: test_loss: unigram 3.167, bigram 2.548."
        in heading
    )
    assert "What reference models score" not in _document(runs)
