"""index.html: a results folder as one static page, readable from the file system.

The page holds the overall ranking (profile scores with their bootstrap intervals and
the adjacent tests, as TABLES.md has them), one table per problem, and the folder's
figures by relative links. Every table sorts by a click on a column header (numbers as
numbers; "never", "inf" and "n/a" last either way), and two menus filter by problem tag
and by optimizer family (the module that defines the rule: its file in optimizers/, or
the user's file). Tags and families are those of the names the process knows
(bench.plugins: built-in, entry points, added by --problem and --optimizer); a name it
does not know gets none. No server, no network: the
style and the small script are inline. A URL hash drives the same code, for tests and
for links: `#click=TABLE:COLUMN` (repeatable, clicks the header of column COLUMN, 0
first, of the table with id TABLE), `tag=NAME`, `family=NAME`, joined by `&`.
"""

import html
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from bench import plugins
from bench.report import render
from bench.results import schema
from bench.analysis import stats, tuning
from bench.results.files import write_text
from bench.report.tables import _cost, _interval, _number, _share, _versus_above
from problems import sources

OVERVIEW = [
    "convergence.png",
    "performance_profile.png",
    "data_profile.png",
    "data_profiles.png",
    "budget_curves.png",
]

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1em 2em;color:#222}
table{border-collapse:collapse;margin:.5em 0}
th,td{border:1px solid #ccc;padding:2px 6px;text-align:right;white-space:nowrap}
td:nth-child(2),th:nth-child(2){text-align:left}
th{background:#eee;cursor:pointer;user-select:none}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
tbody tr:nth-child(even){background:#f8f8f8}
img{max-width:100%;display:block;margin:.5em 0}
.hidden{display:none}
"""

# Sorting: a column is numeric when one of its cells starts with a number; cells that do
# not ("never", "inf", "n/a", "-") sort last in both directions. Filters hide rows of
# other families and sections of problems without the tag.
SCRIPT = """
function key(cell){var t=cell.textContent.trim(),x=parseFloat(t);return isNaN(x)?null:x}
function sortBy(th){
  var table=th.closest("table"),col=th.cellIndex,body=table.tBodies[0];
  var up=th.getAttribute("aria-sort")!=="ascending";
  for(var h of table.tHead.rows[0].cells)h.removeAttribute("aria-sort");
  th.setAttribute("aria-sort",up?"ascending":"descending");
  var rows=Array.from(body.rows),numeric=rows.some(r=>key(r.cells[col])!==null);
  rows.sort(function(a,b){
    var x=a.cells[col],y=b.cells[col];
    if(!numeric)return (up?1:-1)*x.textContent.localeCompare(y.textContent);
    x=key(x);y=key(y);
    if(x===null||y===null)return (x===null)-(y===null);
    return up?x-y:y-x});
  for(var r of rows)body.appendChild(r)}
function filter(){
  var tag=document.getElementById("tag").value,family=document.getElementById("family").value;
  for(var s of document.querySelectorAll("section[data-tags]"))
    s.classList.toggle("hidden",tag!==""&&s.dataset.tags.split(" ").indexOf(tag)<0);
  for(var r of document.querySelectorAll("tr[data-family]"))
    r.classList.toggle("hidden",family!==""&&r.dataset.family!==family)}
for(var th of document.querySelectorAll("thead th"))
  th.addEventListener("click",e=>sortBy(e.target));
for(var id of ["tag","family"])document.getElementById(id).addEventListener("change",filter);
for(var part of location.hash.slice(1).split("&")){
  var kv=part.split("="),v=decodeURIComponent(kv[1]||"");
  if(kv[0]==="click"){var p=v.split(":");
    document.getElementById(p[0]).tHead.rows[0].cells[+p[1]].click()}
  else if(kv[0]==="tag"||kv[0]==="family"){document.getElementById(kv[0]).value=v;filter()}}
"""


def family(optimizer: str) -> str:
    """The name of the file that defines the optimizer's factory: its family module in
    optimizers/ (adam for adamw), or a user's file; "" when unknown."""
    try:
        factory = plugins.optimizer(optimizer).factory
    except KeyError:
        return ""
    module = sys.modules.get(getattr(factory, "__module__", None) or "")
    file = getattr(module, "__file__", None)
    return Path(file).stem if file else ""


def _problem_facts(problem: str, scale: str = "cpu") -> tuple[str, list[str]]:
    """(description, sorted tags) of a problem the process knows (a model family at
    `scale`), else ("", []); that of an optional source's problem (CUTEst's) from its
    list, without building it."""
    source = sources.source_of(problem)
    if source is not None and source.name != "built-in":
        return f"{source.description}, {source.facts(problem)[0]} parameters", [source.name]
    try:
        known = plugins.problem(problem, scale)
    except KeyError:
        return "", []
    return known.description, sorted(known.tags)


def _table(
    table_id: str, header: list[str], rows: list[tuple[str, list[str]]], families: dict
) -> str:
    """A sortable table; rows are (optimizer, cells), each marked with its family."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "\n".join(
        f'<tr data-family="{html.escape(families[optimizer])}">'
        + "".join(f"<td>{html.escape(c)}</td>" for c in cells)
        + "</tr>"
        for optimizer, cells in rows
    )
    head = f'<table id="{html.escape(table_id)}"><thead><tr>{head}</tr></thead>'
    return f"{head}<tbody>\n{body}\n</tbody></table>"


def _overall(ranking: pd.DataFrame, families: dict) -> str:
    header = ["rank", "optimizer", "family", "profile score [95% CI]", "vs the row above"]
    rows = [
        (
            r.optimizer,
            [
                str(r.overall_rank),
                r.optimizer,
                families[r.optimizer],
                f"{r.score:.3f} [{r.score_low:.3f}, {r.score_high:.3f}]",
                _versus_above(r),
                f"{r.solved}/{r.problems}",
                f"{r.mean_rank:.1f}",
            ],
        )
        for r in ranking.itertuples()
    ]
    return _table("overall", [*header, "solved", "mean rank"], rows, families)


def _problem(summary: pd.DataFrame, cost: str, families: dict) -> str:
    """One problem's pairs at their tuned trials, on the ranking's cost axis."""
    others = schema.other_hyperparameters(summary)
    header = ["rank", "optimizer", "tuned lr", *(f"tuned {c}" for c in others)]
    header += ["median f - f* [95% CI]", f"{tuning.COST_LABELS[cost]} to target [95% CI]"]
    header += ["success", "tuneability", "diverged lanes"]
    rows = [
        (
            r.optimizer,
            [
                str(r.rank),
                r.optimizer,
                f"{r.learning_rate:.3g}",
                *("-" if pd.isna(getattr(r, c)) else f"{getattr(r, c):.3g}" for c in others),
                _interval(r, "final_suboptimality", _number),
                _interval(r, f"{cost}_to_target", lambda x: _cost(x, cost)),
                _share(r.success_rate),
                _share(r.tuneability),
                _share(r.diverged_share),
            ],
        )
        for r in summary.itertuples()
    ]
    return _table(f"p-{summary['problem'].iloc[0]}", header, rows, families)


def _image(path: str, lazy: bool) -> str:
    path = html.escape(path)
    loading = ' loading="lazy"' if lazy else ""
    return f'<a href="{path}"><img src="{path}" alt="{path}"{loading}></a>'


def _figures_of(problems: Sequence[str], figures: Sequence[str]) -> dict[str, list[str]]:
    """The plots/ figures of each problem: a file plots/KIND_SLUG.png belongs to the
    problem with the longest slug it ends with."""
    owned = {problem: [] for problem in problems}
    slugs = sorted(((render._slug(p), p) for p in problems), key=lambda s: -len(s[0]))
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
    summary: pd.DataFrame,
    runs: pd.DataFrame,
    cost: str,
    figures: Sequence[str],
    scale: str = "cpu",
) -> str:
    """The whole index.html from the summary (with its intervals), the runs and the
    figures drawn (paths relative to the folder); `scale`: the model families' preset."""
    ranking = stats.overall_ranking(summary, runs, cost)
    numbers = runs.groupby("problem", sort=True)[["f_star", "target", "steps"]].first()
    problems = sorted(summary["problem"].unique())
    owned = _figures_of(problems, figures)
    facts = {p: _problem_facts(p, scale) for p in problems}
    families = {o: family(o) for o in ranking["optimizer"]}
    every_tag = sorted({t for _, tags in facts.values() for t in tags})
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>Benchmark results</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>Benchmark results</h1>",
        f"<p>{len(ranking)} optimizers on {len(problems)} problems, tuned and ranked by "
        f"{html.escape(tuning.COST_LABELS[cost])} to target. Click a column header to sort. "
        'Every number and the pairwise tests: <a href="TABLES.md">TABLES.md</a>, '
        '<a href="summary.csv">summary.csv</a>.</p>',
        f"<p>{_select('tag', 'Problem tag', every_tag)}",
        f"{_select('family', 'Optimizer family', sorted(set(families.values()) - {''}))}</p>",
        "<h2>Overall ranking</h2>",
        "<p>Score: the integral of the performance profile over cost ratios 1 to "
        f"{tuning.MAX_RATIO:g}, over all problems, with its bootstrap 95% interval; "
        "<i>tie</i>: not significantly different from the row above (Wilcoxon, Holm).</p>",
        _overall(ranking, families),
    ]
    overview = [f for f in OVERVIEW if f in figures]
    if overview:
        parts += ["<h2>Figures</h2>", *(_image(f, lazy=False) for f in overview)]
    for problem, table in summary.groupby("problem", sort=True):
        f_star, target, steps = numbers.loc[problem]
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
    parts += [f"<script>{SCRIPT}</script>", "</body></html>"]
    return "\n".join(parts) + "\n"


def write(
    folder: Path, summary: pd.DataFrame, runs: pd.DataFrame, cost: str, scale: str = "cpu"
) -> Path:
    """Writes folder/index.html, linking the PNG files in the folder."""
    figures = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png"))
    path = folder / "index.html"
    write_text(document(summary, runs, cost, figures, scale), path)
    return path
