"""TABLES.md: the overall ranking with its intervals and groups, the claims (head to head
against a reference, robustness under other definitions), and one table per problem."""

from typing import cast

import pandas as pd

from bench.analysis import claims, profiles, stats, tuning
from bench.analysis.analyze import Analysis
from bench.report.format import (
    INFORMATIVE_HEADER,
    PER_PROBLEM_LEFT_OUT,
    RUNTIME_TOP,
    WIN_RATE_TOP,
    both_solved_text,
    by_group,
    cost_text,
    counted,
    detectable_text,
    edge_line,
    edge_mark,
    ert_cell,
    group_score_cell,
    groups,
    informative_cells,
    informative_line,
    interval,
    joined,
    level_cell,
    levels_line,
    metric_columns,
    number,
    problem_levels,
    rank_interval,
    ratio_text,
    robust_line,
    setting,
    share,
    solved_text,
    top_rows,
    win_cell,
)
from bench.results import schema


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _names(names: list[str]) -> str:
    return " = ".join(f"`{name}`" for name in names)


def overall_table(ranking: pd.DataFrame, identical: list[list[str]]) -> str:
    """The overall ranking, one row per set of identical rules (`format.joined`)."""
    rows = [
        [
            str(r.overall_rank),
            _names(names),
            str(r.group),
            f"{r.score:.3f} [{r.score_low:.3f}, {r.score_high:.3f}]",
            rank_interval(r),
            f"{r.score_run:.3f}",
            share(cast(float, r.coverage)),
            solved_text(r),
            f"{r.mean_rank:.1f}",
        ]
        for names, r in joined(ranking, identical)
    ]
    header = ["rank", "optimizer", "group", "profile score [95% CI]", "rank [95% CI]"]
    header += ["score where it runs", "coverage", "solved", "mean rank"]
    return markdown(header, rows)


def group_lines(ranking: pd.DataFrame, identical: list[list[str]]) -> list[str]:
    """One line per group of the ranking: 'Group 1 (3): `a`, `b`, `c` = `d`'."""
    return [
        f"- **Group {group}** ({len(rows)}): {', '.join(_names(names) for names in rows)}"
        for group, rows in groups(ranking, identical).items()
    ]


def _p_value(p: float) -> str:
    return number(p) + (" *" if p < stats.ALPHA else "")


def head_to_head_table(table: pd.DataFrame) -> str:
    """claims.head_to_head, one row per rule."""
    rows = [
        [
            f"`{r.optimizer}`",
            ratio_text(r),
            both_solved_text(r),
            detectable_text(r),
            number(cast(float, r.p)),
            _p_value(cast(float, r.p_holm)),
            f"{r.wins}/{r.losses}/{r.ties}",
            str(r.not_run),
        ]
        for r in table.itertuples()
    ]
    header = ["optimizer", "cost ratio [95% CI]", "both solve", "detectable ratio", "p"]
    return markdown([*header, "p (Holm)", "wins/losses/ties", "not run"], rows)


def head_to_head_lines(table: pd.DataFrame, reference: str) -> list[str]:
    """What the head-to-head table lets one claim, in words."""
    separated = table[table["p_holm"] < stats.ALPHA]
    cheaper = separated.loc[separated["ratio"] < 1, "optimizer"]
    costlier = separated.loc[separated["ratio"] >= 1, "optimizer"]
    blind = int(table["detectable_ratio"].isna().sum())
    claim = f"than `{reference}` (Holm-adjusted p below {stats.ALPHA:g})"
    return [
        f"- cheaper {claim}: {', '.join(f'`{o}`' for o in cheaper) or 'none'}",
        f"- costlier {claim}: {', '.join(f'`{o}`' for o in costlier) or 'none'}",
        f"- no difference detected: {counted(len(table) - len(separated), 'optimizer')}, "
        f"of which {blind} could not show one whatever the ratio (fewer than "
        f"{claims.FEWEST} problems that differ)",
    ]


def robustness_table(definitions: dict[str, pd.Series | None], count: int) -> str:
    """The top `count` under each definition of claims.robustness, one row each."""
    rows = [
        [
            label,
            "not recorded"
            if scores is None
            else ", ".join(f"`{name}`" for name in claims.top(scores, count)) or "none",
        ]
        for label, scores in definitions.items()
    ]
    return markdown(["definition", f"top {count}, best first"], rows)


def ert_table(analysis: Analysis) -> str:
    """The top of the ranking's ERT cells (`format.ert_cell`), a column per breakdown."""
    cells = by_group(analysis.ert_summary)
    rows = [
        [_names(names), *(ert_cell(cells[group, r.optimizer]) for group in analysis.breakdown)]
        for names, r in top_rows(analysis.ranking, analysis.identical)
    ]
    return markdown(["optimizer", *analysis.breakdown], rows)


def win_rate_table(analysis: Analysis) -> str:
    """The win rates among the top of the ranking: the row's against the column's."""
    top = top_rows(analysis.ranking, analysis.identical)
    names = [r.optimizer for _, r in top]
    rates = analysis.win_rate.loc[names, names]
    rows = [[_names(members), *(win_cell(x) for x in rates.loc[r.optimizer])] for members, r in top]
    return markdown(["row beats column", *(f"`{name}`" for name in names)], rows)


def group_table(analysis: Analysis) -> str:
    """The top of the overall ranking with its score and rank in each group."""
    scores = by_group(analysis.group_scores)
    groups = analysis.breakdown[1:]
    rows = [
        [
            str(r.overall_rank),
            _names(names),
            f"{r.score:.3f}",
            *(group_score_cell(scores[group, r.optimizer]) for group in groups),
        ]
        for names, r in top_rows(analysis.ranking, analysis.identical)
    ]
    return markdown(["rank", "optimizer", "overall", *groups], rows)


def informative_table(informative: pd.DataFrame) -> str:
    """`runtime.informativeness`, a row per breakdown."""
    return markdown(INFORMATIVE_HEADER, [informative_cells(r) for r in informative.itertuples()])


def runtime_section(analysis: Analysis) -> list[str]:
    """The runtime views: the ECDF's files, the ERT and win-rate tables, the scores by
    group where there are several, and the informative instances."""
    label = tuning.COST_LABELS[analysis.cost]
    instance = (
        "a (problem, level) pair the ranking scores"
        if analysis.records_levels
        else "a problem at its own target, as the ranking scores it"
    )
    top = f"the top {RUNTIME_TOP} of the overall ranking"
    grouped = len(analysis.breakdown) > 1
    parts = [
        "",
        "## Runtime distributions",
        "",
        f"Over the ranking's instances (an instance: {instance}), on its cost axis. COCO's "
        "runtime ECDF (`runtime_ecdf.png`, values in `runtime_ecdf.csv.gz`): the share of "
        "(instance, evaluation lane) pairs that reach the instance to stay within a budget "
        f"of {label} / (d + 1), with a bootstrap 95% band (problems resampled)"
        + (", over all instances and per group of problems" if grouped else "")
        + ". The expected runtime of every pair and instance is in `ert.csv.gz`, the whole "
        "win-rate matrix in `win_rate.csv`; definitions in docs/method.md.",
        "",
        "### Expected runtime",
        "",
        f"ERT: the {label} of the evaluation lanes that reach the instance, plus the whole "
        "runs of those that do not, over the number that reach it (COCO's count with "
        f"restarts). For {top}, per group: the share of instances with a finite ERT and "
        "the median over those instances of ERT / the best ERT of any rule on that "
        "instance.",
        "",
        ert_table(analysis),
        "",
        "### Win rates",
        "",
        f"For {top}: the share of the instances of the problems both can run on which the "
        f"row's median cost is lower than the column's (solved beats unsolved; equal "
        "costs, both unsolved included, count one half). `win_rate.png` draws the top "
        f"{WIN_RATE_TOP}.",
        "",
        win_rate_table(analysis),
    ]
    if grouped:
        parts += [
            "",
            "### Scores by group",
            "",
            f"For {top}: the profile score over each group's instances only (each ratio "
            "against the cheapest rule there), with the rule's rank in the group in "
            "brackets; every rule in `groups.csv`.",
            "",
            group_table(analysis),
        ]
    parts += [
        "",
        "### Informative instances",
        "",
        informative_line(analysis.informative)
        + " A rule solves an instance where its median cost there is finite.",
        "",
        informative_table(analysis.informative),
    ]
    return parts


def problem_table(summary: pd.DataFrame) -> str:
    """One problem's rows of the summary; a column per swept hyperparameter of its pairs,
    a cell per level the problem resolves (the median cost on the summary's cost axis and
    the success rate there), and the costs to its own target on every axis with their
    intervals."""
    cost = str(summary["cost"].iloc[0])
    levels = problem_levels(summary)
    metrics = metric_columns(summary)
    others = schema.other_hyperparameters(summary)
    header = ["rank", "optimizer", "tuned lr", *(f"tuned {c}" for c in others)]
    header += [f"to {level}" for level in levels]
    header += ["median f - f* [95% CI]"]
    header += [f"{tuning.COST_LABELS[axis]} to target [95% CI]" for axis in tuning.COSTS]
    header += ["success", "tuneability", "diverged lanes"]
    header += [m.removeprefix("median_").replace("_", " ") for m in metrics]
    rows = []
    for r in summary.to_dict("records"):
        row = [
            str(r["rank"]),
            f"`{r['optimizer']}`",
            setting(r["learning_rate"]) + edge_mark(r),
            *("-" if pd.isna(r[c]) else setting(r[c]) for c in others),
            *(level_cell(r, cost, level) for level in levels),
            interval(r, "final_suboptimality", number),
            *(
                interval(r, f"{axis}_to_target", lambda x, a=axis: cost_text(x, a))
                for axis in tuning.COSTS
            ),
            share(cast(float, r["success_rate"])),
            share(cast(float, r["tuneability"])),
            share(cast(float, r["diverged_share"])),
        ]
        rows.append(row + [number(r[m]) for m in metrics])
    return markdown(header, rows)


def _baselines_text(problem: str, facts: pd.DataFrame) -> str:
    """The sentence naming what reference models score on the problem's metrics
    (problems.csv's `baselines`), or "" where it records none."""
    if "baselines" not in facts:
        return ""
    text = facts.loc[facts["problem"] == problem, "baselines"].dropna()
    text = text.iloc[0] if len(text) else ""
    return f" What reference models score on its metrics: {text}." if text else ""


def _f_star_text(f_star: float, fact) -> str:
    """A problem's f* with its provenance (`fact`: its problems.csv row, None if none)."""
    if fact is None:
        return f"f* = {f_star:.10g}"
    note = fact.note if isinstance(fact.note, str) else ""
    if fact.f_star_source == "best_found":
        text = f"f* = f_L = {f_star:.10g}, **best found** (the lowest value any optimizer reached"
        text += f"; {note})" if note else ")"
    else:
        text = f"f* = {f_star:.10g}, known" + (f" ({note})" if note else "")
    flagged = isinstance(fact.check, str) and fact.check
    return text + (f"; **check**: {fact.check}" if flagged else "")


def level_table(levels: pd.DataFrame, identical: list[list[str]], ranking: pd.DataFrame) -> str:
    """The score restricted to each level and to the own target (`claims.level_scores`),
    one row per row of the ranking: 'score (solved/problems)' per level."""
    counts = levels.attrs["problems"]
    labels = list(counts)
    header = ["optimizer", *(_level_label(label) for label in labels)]
    rows = []
    for names, r in joined(ranking, identical):
        row = levels.loc[r.optimizer]
        cells = [
            f"{row[f'score_{label}']:.3f} ({int(row[f'solved_{label}'])}/{counts[label]})"
            for label in labels
        ]
        rows.append([_names(names), *cells])
    return markdown(header, rows)


def _level_label(label: str) -> str:
    return "own target" if label == tuning.TARGET else f"level {label}"


def edges_section(summary: pd.DataFrame) -> list[str]:
    """How many tuned pairs sit at an edge of their learning-rate grid, and which."""
    if "grid_edge" not in summary:
        return []
    at_edge = summary[summary["grid_edge"].fillna("") != ""]
    parts = ["", "## Grid edges", "", edge_line(summary)]
    if len(at_edge):
        listed = ", ".join(
            f"`{r.optimizer}` on {r.problem} ({r.grid_edge})" for r in at_edge.itertuples()
        )
        parts += ["", listed + "."]
    return parts


def _problem_sections(facts: pd.DataFrame) -> list[str]:
    """The sections of problems.csv: f* found wrong, problems left out."""
    parts = []
    provenance = facts[facts["f_star_source"].notna() & (facts["f_star_source"] != "")]
    if len(provenance):
        named = sorted(provenance.loc[provenance["f_star_source"] == "best_found", "problem"])
        found = len(named)
        best_found = f" ({', '.join(named)})" if named else ""
        parts += [
            "",
            "## f* provenance",
            "",
            f"{counted(len(provenance), 'problem')} have an f* resolved by the run: "
            f"{len(provenance) - found} a known one (the SIF file's value or a reviewed one), "
            f"{found} the best found{best_found}. Every known value is checked against the "
            "lowest value any optimizer reached:",
            "",
        ]
        checked = provenance[provenance["check"].notna() & (provenance["check"] != "")]
        if len(checked):
            rows = [[f"{r.problem}", r.check] for r in checked.itertuples()]
            parts.append(markdown(["problem", "check"], rows))
        else:
            parts.append("none is below the values found or out of their reach.")
    left_out = facts[facts["skipped"].notna() & (facts["skipped"] != "")]
    if len(left_out):
        parts += ["", f"## Skipped problems ({len(left_out)})", ""]
        rows = [[r.problem, str(int(cast(float, r.dim))), r.skipped] for r in left_out.itertuples()]
        parts.append(markdown(["problem", "parameters", "reason"], rows))
    return parts


def _unranked(left_out: list[str]) -> str:
    """The sentence naming the problems left out of the overall ranking (profiles.ranked)."""
    if not left_out:
        return ""
    names = ", ".join(f"`{p}`" for p in left_out)
    return (
        f" Not in it: {names}, model families run with some of the optimizers only "
        "(bench/models.toml); their own tables below rank those."
    )


def _levels_text(problem: str, levels: list[str], facts: pd.DataFrame) -> str:
    """A problem's levels in words: f(x0) and the levels it resolves (those it does not)."""
    row = facts[facts["problem"] == problem]
    f0 = row["f0"].iloc[0] if len(row) else float("nan")
    start = "" if pd.isna(f0) else f"f(x0) = {f0:.10g}. "
    if not levels:
        return f" {start}No relative level resolved: judged at the target."
    missing = [name for name in tuning.LEVELS if name not in levels]
    unresolved = f" ({', '.join(missing)} finer than the dtype resolves)" if missing else ""
    return f" {start}Levels f - f* <= tau (f(x0) - f*) at tau = {', '.join(levels)}{unresolved}."


def document(
    analysis: Analysis,
    runs: pd.DataFrame,
    skipped: pd.DataFrame,
    problems: pd.DataFrame | None = None,
    per_problem: bool = True,
) -> str:
    """The whole TABLES.md, from the analysis, the runs (for problem facts) and skipped
    pairs; with problems.csv (`problems`), the f* provenance of each problem whose f* the
    run resolved and the problems left out. `per_problem`: one ranked table per problem
    (a suite of over a hundred problems has none: `PER_PROBLEM_LEFT_OUT`)."""
    summary, cost, ranking = analysis.summary, analysis.cost, analysis.ranking
    facts = runs.groupby("problem", sort=True)[["f_star", "target", "steps"]].first()
    tune = tuning.lanes_of(runs, "tune")
    seeds = int(tune.groupby(schema.trial_key(tune), dropna=False).size().max())
    evals = int(summary["seeds"].min())
    reference = analysis.reference
    label = tuning.COST_LABELS[cost]
    leveled = analysis.records_levels
    unit = "(problem, level) instance" if leveled else "problem"
    if leveled:
        judged = (
            "Costs are medians over evaluation seeds; *to 1e-3*: the median "
            f"{label} to reach f - f* <= 1e-3 (f(x0) - f*) and stay there, with the share of "
            "seeds that do; *to target*: the same at the problem's own target, "
            "*success* the share of seeds that reach it; *tuneability*: share of the "
            "hyperparameter grid that reaches as many levels within "
            f"{tuning.MAX_RATIO:g}x the tuned cost at the deepest (when the tuned setting "
            f"reaches none: within {tuning.TUNEABLE_FACTOR:g}x its final f - f*)."
        )
    else:
        judged = (
            "Costs to target are medians over evaluation seeds; "
            "*success*: seeds that reach the target; *tuneability*: share of the "
            "hyperparameter grid that reaches the target within "
            f"{tuning.MAX_RATIO:g}x the tuned cost (when the tuned setting misses it: "
            f"within {tuning.TUNEABLE_FACTOR:g}x its final f - f*)."
        )
    parts = [
        "# Benchmark tables",
        "",
        f"Every optimizer at its tuned setting (learning rate and any other swept "
        f"hyperparameter), tuned on {counted(seeds, 'seed')} per setting and reported over "
        f"at least {counted(evals, 'evaluation seed')} of the tuned one. "
        f"{levels_line(leveled, cost)} "
        "Tuning rule, ranking and columns are defined in docs/method.md. " + judged + " "
        "*median f - f\\**: at the final iterate; slightly below 0 where the loss, computed "
        "in the run's dtype, rounds below the known f*.",
        "",
        "## Overall ranking",
        "",
        "Score: the AlgoPerf-style integral of the Dolan-More performance profile over "
        f"median {label} to {'each level' if leveled else 'target'}, for ratios 1 to "
        f"{tuning.MAX_RATIO:g} (1 = cheapest on every {unit}), averaged over every {unit} "
        "some optimizer solves, with its bootstrap 95% interval (problems resampled"
        f"{', each with all its levels' if leveled else ''}, then seeds within problems); "
        "a problem the optimizer cannot run counts as unsolved. *rank [95% CI]*: the ranks "
        "it takes on 95% of those resamples. "
        "*group*: the best-ranked optimizer not yet in a group leads the next, which holds "
        "every optimizer not yet in a group whose rank interval overlaps the leader's: the "
        "data cannot order the members of a group. *score where it runs*: the score over "
        "the problems the optimizer can run; *coverage*: the share of the ranked problems "
        f"it can run (the others are in *Skipped pairs*). *solved*: {unit}s where at least "
        "half the evaluation seeds succeed, of the ranked ones it ran. Optimizers joined by "
        "= behave identically on every ranked problem (the same success rates and median costs, "
        f"final f - f* within {claims.FINAL_RTOL:.1%}); their row holds the first one's "
        "numbers." + _unranked(analysis.left_out),
        "",
        *group_lines(ranking, analysis.identical),
        "",
        overall_table(ranking, analysis.identical),
    ]
    if leveled:
        parts += [
            "",
            "## Per-level rankings",
            "",
            "The same score restricted to one level (each problem that resolves it is one "
            "instance), and at each problem's own target; in brackets the problems where at "
            "least half the evaluation seeds succeed, of those that count.",
            "",
            level_table(analysis.levels, analysis.identical, ranking),
        ]
    parts += [
        "",
        f"## Head to head against `{reference}`",
        "",
        f"Each optimizer against `{reference}` on median {label} to "
        f"{'each level' if leveled else 'target'}. *cost ratio*: the geometric mean of its "
        f"cost over `{reference}`'s on the {unit}s both solve (below 1: cheaper), with its "
        "bootstrap 95% interval (problems resampled); *both solve*: those "
        + ("instances, and in brackets their problems" if leveled else "problems")
        + "; *p*: the two-sided Wilcoxon signed-rank test of the log ratios"
        + (", one value per problem (the mean over its levels both solve)" if leveled else "")
        + f", and Holm's adjustment over these {len(analysis.head_to_head)} comparisons "
        f"(* below {stats.ALPHA:g}). *detectable ratio*: the smallest ratio either way whose "
        "interval would exclude 1, at this spread over this many problems; with fewer than "
        f"{claims.FEWEST} problems that differ the test cannot reject at all. "
        f"*wins/losses/ties* over the ranked {unit}s "
        + ("of the problems " if leveled else "")
        + f"both can run: a win solves where `{reference}` does not, or both solve at a "
        "lower cost; a tie costs the same or neither solves. *not run*: ranked "
        + ("instances of problems" if leveled else "problems")
        + " one of the two cannot run.",
        "",
        *head_to_head_lines(analysis.head_to_head, reference),
        "",
        head_to_head_table(analysis.head_to_head),
        "",
        "## Robustness",
        "",
        "The top of the ranking when the same tuned trials' evaluation lanes are scored "
        "under other definitions of success and cost, each by the same profile score "
        "(ties in the ranking's order): every level or each level alone; each problem's "
        "own target, with success that lasts to the end of the budget or the first hit "
        "(a folder written before lasting success holds first hits only); gradient "
        "evaluations or steps. *not recorded*: the folder does not hold it. A top "
        f"{claims.TOP} holds every rule tied at its last place and none that scores 0.",
        "",
        robust_line(analysis.robustness, claims.TOP, "`"),
        "",
        robustness_table(analysis.robustness, claims.TOP),
        *runtime_section(analysis),
        *edges_section(summary),
    ]
    if problems is not None:
        parts += _problem_sections(problems)
    resolved = (
        {}
        if problems is None
        else {
            r.problem: r
            for r in problems.itertuples()
            if isinstance(r.f_star_source, str) and r.f_star_source  # f* the run resolved
        }
    )
    levels = profiles.resolved_levels(summary)
    if not per_problem:
        problems_here = counted(summary["problem"].nunique(), "problem")
        parts += [
            "",
            "## Each problem",
            "",
            PER_PROBLEM_LEFT_OUT.format(problems=problems_here),
        ]
    for problem, table in summary.groupby("problem", sort=True) if per_problem else ():
        f_star, target, steps = cast(pd.Series, facts.loc[problem])  # a problem's one row
        problem = str(problem)  # a name (pandas-stubs type a group's key as any scalar)
        levels_text = _levels_text(problem, levels[problem], analysis.facts) if leveled else ""
        parts += [
            "",
            f"## {problem}",
            "",
            f"{_f_star_text(f_star, resolved.get(problem))}, target f - f* <= {target:g}, "
            f"{int(steps)} steps.{levels_text}{_baselines_text(problem, analysis.facts)}",
            "",
            problem_table(table),
        ]
    if len(skipped):
        parts += ["", "## Skipped pairs", ""]
        rows = [[r.problem, f"`{r.optimizer}`", r.reason] for r in skipped.itertuples()]
        parts.append(markdown(["problem", "optimizer", "reason"], rows))
    return "\n".join(parts) + "\n"
