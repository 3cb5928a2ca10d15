"""index.html: a results folder as one static page, readable from the file system.

The page holds the overall ranking (profile scores and ranks with their bootstrap
intervals, the groups, coverage), the head-to-head table against the reference rule,
the robustness table and the runtime views (ECDF, expected runtime, win rates, scores by
group, informative instances), as TABLES.md has them, one table per problem, and the folder's
figures by relative links. Every table sorts by a click on a column header (numbers as
numbers; "never", "inf" and "n/a" last either way), and two menus filter by problem tag
and by optimizer family (the module that defines the rule: its file in optimizers/, or
the user's file). Tags and descriptions are problems.csv's; families those the caller
knows (bench.known); a name without them gets none. No server, no network: the style
and the small script (page.css, page.js beside this module) are inline. A URL hash
drives the same code, for tests and for links: `#click=TABLE:COLUMN` (repeatable,
clicks the header of column COLUMN, 0 first, of the table with id TABLE), `tag=NAME`,
`family=NAME`, joined by `&`.
"""

import html
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import pandas as pd

from bench.analysis import claims, tuning
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
    slug,
    solved_text,
    top_rows,
    win_cell,
)
from bench.results import schema
from bench.results.files import write_text

OVERVIEW = [
    "convergence.png",
    "performance_profile.png",
    "data_profile.png",
    "data_profiles.png",
    "budget_curves.png",
]


# Sorting: a column is numeric when one of its cells starts with a number; cells that do
# not ("never", "inf", "n/a", "-") sort last in both directions. Filters hide rows of
# other families and sections of problems without the tag.
def _package_file(name: str) -> str:
    """The page's style or script, a file beside this module, inlined (no server needed)."""
    return (Path(__file__).parent / name).read_text()


def _table(table_id: str, header: list[str], rows: Sequence[tuple[str | None, list[str]]]) -> str:
    """A sortable table; rows are (family, cells): a row of an optimizer is marked with its
    family (the menu filters it), one of no optimizer (None) is not."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "\n".join(
        ("<tr>" if family is None else f'<tr data-family="{html.escape(family)}">')
        + "".join(f"<td>{html.escape(c)}</td>" for c in cells)
        + "</tr>"
        for family, cells in rows
    )
    head = f'<table id="{html.escape(table_id)}"><thead><tr>{head}</tr></thead>'
    return f"{head}<tbody>\n{body}\n</tbody></table>"


def _overall(analysis: Analysis, families: dict) -> str:
    header = ["rank", "optimizer", "family", "group", "profile score [95% CI]"]
    header += ["rank [95% CI]", "score where it runs", "coverage", "solved", "mean rank"]
    rows = [
        (
            families[names[0]],
            [
                str(r.overall_rank),
                " = ".join(names),
                families[names[0]],
                str(r.group),
                f"{r.score:.3f} [{r.score_low:.3f}, {r.score_high:.3f}]",
                rank_interval(r),
                f"{r.score_run:.3f}",
                share(cast(float, r.coverage)),
                solved_text(r),
                f"{r.mean_rank:.1f}",
            ],
        )
        for names, r in joined(analysis.ranking, analysis.identical)
    ]
    return _table("overall", header, rows)


def _groups(analysis: Analysis) -> str:
    """One line per group of the ranking."""
    lines = [
        f"Group {group}: " + ", ".join(" = ".join(names) for names in rows)
        for group, rows in groups(analysis.ranking, analysis.identical).items()
    ]
    return "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in lines) + "</ul>"


def _head_to_head(analysis: Analysis, families: dict) -> str:
    header = ["optimizer", "cost ratio [95% CI]", "both solve", "detectable ratio", "p"]
    header += ["p (Holm)", "wins/losses/ties", "not run"]
    rows = [
        (
            families[r.optimizer],
            [
                r.optimizer,
                ratio_text(r),
                both_solved_text(r),
                detectable_text(r),
                number(cast(float, r.p)),
                number(cast(float, r.p_holm)),
                f"{r.wins}/{r.losses}/{r.ties}",
                str(r.not_run),
            ],
        )
        for r in analysis.head_to_head.itertuples()
    ]
    return _table("head-to-head", header, rows)


def _robustness(analysis: Analysis) -> str:
    rows = [
        (
            None,
            [
                label,
                "not recorded"
                if scores is None
                else ", ".join(claims.top(scores, claims.TOP)) or "none",
            ],
        )
        for label, scores in analysis.robustness.items()
    ]
    return _table("robustness", ["definition", f"top {claims.TOP}, best first"], rows)


def _runtime(analysis: Analysis, figures: Sequence[str], families: dict) -> list[str]:
    """The runtime views: the ECDF and win-rate figures, the ERT and win-rate tables of
    the top of the ranking, its scores by group where there are several, and the
    informative instances."""
    top = top_rows(analysis.ranking, analysis.identical)
    breakdown = analysis.breakdown
    ert = by_group(analysis.ert_summary)
    ert_rows = [
        (
            families[names[0]],
            [" = ".join(names), *(ert_cell(ert[g, r.optimizer]) for g in breakdown)],
        )
        for names, r in top
    ]
    names = [r.optimizer for _, r in top]
    rates = analysis.win_rate.loc[names, names]
    win_rows = [
        (families[members[0]], [" = ".join(members), *map(win_cell, rates.loc[r.optimizer])])
        for members, r in top
    ]
    parts = [
        "<h2>Runtime distributions</h2>",
        "<p>COCO's runtime ECDF: the share of (instance, evaluation lane) pairs that reach "
        f"the instance to stay within a budget of {tuning.COST_LABELS[analysis.cost]} / "
        "(d + 1), with a bootstrap 95% band "
        '(<a href="runtime_ecdf.csv.gz">runtime_ecdf.csv.gz</a>); win rates of the top '
        f'{WIN_RATE_TOP} (<a href="win_rate.csv">win_rate.csv</a>).</p>',
        *(_image(f, lazy=False) for f in ("runtime_ecdf.png", "win_rate.png") if f in figures),
        f"<p>Expected runtime (COCO's count with restarts; "
        '<a href="ert.csv.gz">ert.csv.gz</a>). For the top '
        f"{RUNTIME_TOP} rules, per group: the share of instances with a finite ERT and the "
        "median over those instances of ERT / the best ERT of any rule on that "
        "instance.</p>",
        _table("ert", ["optimizer", *breakdown], ert_rows),
        "<p>Win rates: the share of the instances of the problems both can run where the "
        "row's median cost is lower than the column's (solved beats unsolved; equal costs "
        "count one half).</p>",
        _table("win-rate", ["row beats column", *names], win_rows),
    ]
    if len(breakdown) > 1:
        scores = by_group(analysis.group_scores)
        group_rows = [
            (
                families[members[0]],
                [
                    str(r.overall_rank),
                    " = ".join(members),
                    f"{r.score:.3f}",
                    *(group_score_cell(scores[g, r.optimizer]) for g in breakdown[1:]),
                ],
            )
            for members, r in top
        ]
        parts += [
            "<p>The profile score over each group's instances only, and the rank there "
            '(<a href="groups.csv">groups.csv</a>).</p>',
            _table("groups", ["rank", "optimizer", "overall", *breakdown[1:]], group_rows),
        ]
    informative = [(None, informative_cells(r)) for r in analysis.informative.itertuples()]
    parts += [
        f"<p>{html.escape(informative_line(analysis.informative))}</p>",
        _table("informative", INFORMATIVE_HEADER, informative),
    ]
    return parts


def _problem(summary: pd.DataFrame, cost: str, families: dict) -> str:
    """One problem's pairs at their tuned trials, on the ranking's cost axis: a cell per
    level the problem resolves, then the own target."""
    levels = problem_levels(summary)
    others = schema.other_hyperparameters(summary)
    header = ["rank", "optimizer", "tuned lr", *(f"tuned {c}" for c in others)]
    header += [f"to {level}" for level in levels]
    header += ["median f - f* [95% CI]", f"{tuning.COST_LABELS[cost]} to target [95% CI]"]
    header += ["success", "tuneability", "diverged lanes"]
    metrics = metric_columns(summary)
    header += [m.removeprefix("median_").replace("_", " ") for m in metrics]
    rows = [
        (
            families[r["optimizer"]],
            [
                str(r["rank"]),
                r["optimizer"],
                f"{setting(r['learning_rate'])}{edge_mark(r)}",
                *("-" if pd.isna(r[c]) else setting(r[c]) for c in others),
                *(level_cell(r, cost, level) for level in levels),
                interval(r, "final_suboptimality", number),
                interval(r, f"{cost}_to_target", lambda x: cost_text(x, cost)),
                share(cast(float, r["success_rate"])),
                share(cast(float, r["tuneability"])),
                share(cast(float, r["diverged_share"])),
                *(number(r[m]) for m in metrics),
            ],
        )
        for r in summary.to_dict("records")
    ]
    return _table(f"p-{summary['problem'].iloc[0]}", header, rows)


def _image(path: str, lazy: bool) -> str:
    path = html.escape(path)
    loading = ' loading="lazy"' if lazy else ""
    return f'<a href="{path}"><img src="{path}" alt="{path}"{loading}></a>'


def _figures_of(problems: Sequence[str], figures: Sequence[str]) -> dict[str, list[str]]:
    """The plots/ figures of each problem: a file plots/KIND_SLUG.png belongs to the
    problem with the longest slug it ends with."""
    owned = {problem: [] for problem in problems}
    slugs = sorted(((slug(p), p) for p in problems), key=lambda s: -len(s[0]))
    for figure in figures:
        stem = figure.removeprefix("plots/").removesuffix(".png")
        owner = next((p for s, p in slugs if stem.endswith(f"_{s}")), None)
        if figure.startswith("plots/") and owner is not None:
            owned[owner].append(figure)
    return owned


def _select(select_id: str, label: str, values: Sequence[str]) -> str:
    options = "".join(f'<option value="{html.escape(v)}">{html.escape(v)}</option>' for v in values)
    options = f'<option value="">all</option>{options}'
    return f'<label>{label} <select id="{select_id}">{options}</select></label>'


def document(
    analysis: Analysis,
    runs: pd.DataFrame,
    figures: Sequence[str],
    families: dict[str, str],
    per_problem: bool = True,
) -> str:
    """The whole index.html from the analysis, the runs and the figures drawn (paths
    relative to the folder); `families`: optimizer -> the module that defines it;
    `per_problem`: a section per problem (as TABLES.md's, `tables.document`)."""
    summary, cost, ranking = analysis.summary, analysis.cost, analysis.ranking
    numbers = runs.groupby("problem", sort=True)[["f_star", "target", "steps"]].first()
    problems = sorted(summary["problem"].unique())
    owned = _figures_of(problems, figures)
    facts = {p: _problem_facts(analysis.facts, p) for p in problems}
    families = {o: families.get(o, "") for o in ranking["optimizer"]}
    every_tag = sorted({t for _, tags in facts.values() for t in tags})
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>Benchmark results</title>",
        f"<style>\n{_package_file('page.css')}</style></head><body>",
        "<h1>Benchmark results</h1>",
        f"<p>{counted(len(ranking), 'optimizer')} on {counted(len(problems), 'problem')}. "
        f"{html.escape(levels_line(analysis.records_levels, cost))} Click a column header to sort. "
        'Every number and what each means: <a href="TABLES.md">TABLES.md</a>, '
        '<a href="summary.csv">summary.csv</a>.</p>',
        f"<p>{_select('tag', 'Problem tag', every_tag)}",
        f"{_select('family', 'Optimizer family', sorted(set(families.values()) - {''}))}</p>",
        "<h2>Overall ranking</h2>",
        "<p>Score: the integral of the performance profile over cost ratios 1 to "
        f"{tuning.MAX_RATIO:g}, over all "
        f"{'(problem, level) instances' if analysis.records_levels else 'problems'}, "
        "with its bootstrap 95% interval, and the "
        "ranks taken on 95% of the resamples. A group holds the optimizers whose rank "
        "intervals overlap its leader's: the data cannot order them. Names joined by = "
        "behave identically on every problem.</p>",
        _groups(analysis),
        _overall(analysis, families),
        f"<h2>Head to head against {html.escape(analysis.reference)}</h2>",
        "<p>Geometric-mean ratio of median cost over the instances both solve (below 1: "
        "cheaper), Wilcoxon signed-rank p-values over per-problem mean log ratios, the "
        "smallest ratio this many problems could detect, and wins, losses and ties over "
        "the instances of the problems both can run.</p>",
        _head_to_head(analysis, families),
        "<h2>Robustness</h2>",
        f"<p>{html.escape(robust_line(analysis.robustness, claims.TOP))}</p>",
        _robustness(analysis),
    ]
    if "grid_edge" in summary:
        parts.append(f"<p>{html.escape(edge_line(summary))}</p>")
    parts += _runtime(analysis, figures, families)
    overview = [f for f in OVERVIEW if f in figures]
    if overview:
        parts += ["<h2>Figures</h2>", *(_image(f, lazy=False) for f in overview)]
    if not per_problem:
        problems_here = counted(summary["problem"].nunique(), "problem")
        parts += [
            "<h2>Each problem</h2>",
            f"<p>{html.escape(PER_PROBLEM_LEFT_OUT.format(problems=problems_here))}</p>",
        ]
    for problem, table in summary.groupby("problem", sort=True) if per_problem else ():
        problem = str(problem)  # a name (pandas-stubs type a group's key as any scalar)
        f_star, target, steps = cast(pd.Series, numbers.loc[problem])  # a problem's one row
        description, tags = facts[problem]
        parts += [
            f'<section data-tags="{html.escape(" ".join(tags))}">',
            f'<h2 id="{html.escape(problem)}">{html.escape(problem)}</h2>',
            f"<p>{html.escape(description + '. ' if description else '')}"
            f"Tags: {', '.join(tags) or 'none'}; "
            f"f* = {f_star:.10g}, target f - f* &lt;= {target:g}, {int(steps)} steps.</p>",
            _problem(table, cost, families),
        ]
        if owned[problem]:
            images = "".join(_image(f, lazy=True) for f in owned[problem])
            parts.append(
                f"<details><summary>figures ({len(owned[problem])})</summary>{images}</details>"
            )
        parts.append("</section>")
    parts += [f"<script>\n{_package_file('page.js')}</script>", "</body></html>"]
    return "\n".join(parts) + "\n"


def _problem_facts(facts: pd.DataFrame, problem: str) -> tuple[str, list[str]]:
    """(description, sorted tags) of a problem as problems.csv gives them, else ("", [])."""
    row = facts[facts["problem"] == problem]
    if not len(row):
        return "", []
    description, tags = row["description"].iloc[0], row["tags"].iloc[0]
    description = description if isinstance(description, str) else ""
    return description, sorted(tags.split()) if isinstance(tags, str) else []


def write(
    folder: Path,
    analysis: Analysis,
    runs: pd.DataFrame,
    families: dict[str, str],
    per_problem: bool = True,
) -> Path:
    """Writes folder/index.html, linking the PNG files in the folder."""
    figures = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png"))
    path = folder / "index.html"
    write_text(document(analysis, runs, figures, families, per_problem), path)
    return path
