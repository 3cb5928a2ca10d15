"""What a results folder lets one claim beyond the ranking (docs/method.md, "Claims"):
every rule head to head against a reference rule with the smallest effect each comparison
could detect, the rules that behave identically, and the top of the ranking under every
alternative definition of success and cost.

Every function takes the `ranked` rows of a summary (`bench.analysis.profiles.ranked`).
Comparisons run over its (problem, level) instances (`profiles.instances`); what is
resampled, and what the paired test counts as one unit, is the problem.
"""

import math

import numpy as np
import pandas as pd

from bench.analysis import profiles, stats, tuning

# The rule every other is compared with, where the folder ranks it and none is named.
REFERENCE = "adamw"
# The fewest non-zero differences on which the two-sided Wilcoxon test can reject at
# ALPHA: n differences of one sign give the smallest p-value, 2 / 2^n (0.0625 at 5, 0.031
# at 6).
FEWEST = math.floor(math.log2(2.0 / stats.ALPHA)) + 1
# What two rules share on every ranked problem to be one row of the ranking: these
# exactly, at the own target and at every level the summary records, and the median final
# f - f* floored at the target to FINAL_RTOL (the same arithmetic in another order rounds
# differently).
SAME = [
    *(tuning.success_column(level) for level in [tuning.TARGET, *tuning.LEVELS]),
    *(
        tuning.summary_level_column(axis, level)
        for level in [tuning.TARGET, *tuning.LEVELS]
        for axis in ("steps", "grad_evals")
    ),
]
FINAL_RTOL = 1e-3
# The robustness table shows this many of the top of each definition.
TOP = 10


class UnknownReference(ValueError):
    """A reference rule that the ranking does not hold."""


def reference_of(ranking: pd.DataFrame, name: str | None) -> str:
    """The reference rule: `name`, else REFERENCE where ranked, else the first ranked.
    Raises UnknownReference for a `name` the ranking does not hold."""
    names = ranking["optimizer"].tolist()
    if name is None:
        return REFERENCE if REFERENCE in names else names[0]
    if name not in names:
        raise UnknownReference(
            f"reference {name!r} is not an optimizer of this ranking; choose from: "
            + ", ".join(names)
        )
    return name


def ratio_interval(logs: np.ndarray, units: np.ndarray | None = None) -> tuple[float, float, float]:
    """exp of the mean of `logs` (a geometric-mean ratio) and its bootstrap interval, the
    `units` (one label per value, such as its problem; default: each value its own)
    resampled with replacement, each with all its values; NaN without values."""
    if not len(logs):
        return math.nan, math.nan, math.nan
    units = np.arange(len(logs)) if units is None else np.asarray(units)
    labels, unit = np.unique(units, return_inverse=True)
    sums = np.bincount(unit, weights=logs, minlength=len(labels))
    sizes = np.bincount(unit, minlength=len(labels)).astype(np.float64)
    picks = np.random.default_rng(stats.SEED).integers(
        0, len(labels), (stats.RESAMPLES, len(labels))
    )
    low, high = stats.percentile_interval(sums[picks].sum(axis=1) / sizes[picks].sum(axis=1))
    return math.exp(logs.mean()), math.exp(low), math.exp(high)


def detectable_ratio(low: float, high: float, differing: int) -> float:
    """The smallest geometric-mean ratio (a factor either way) the comparison could
    declare: exp of the half width of its log-ratio interval [low, high]; NaN where fewer
    than FEWEST problems differ, on which the test cannot reject whatever the ratio."""
    return math.sqrt(high / low) if differing >= FEWEST else math.nan


def _versus(cost: pd.Series, reference: pd.Series, both_run: pd.Series) -> dict:
    """One rule against the reference (median costs per ranked instance, indexed by
    (problem, level), +inf where unsolved; `both_run`: the instances of the problems both
    can run). The ratio is over the instances both solve, its interval resamples their
    problems; the test takes one value per problem, the mean log ratio over its instances
    both solve, so that its units are independent. A cost of 0 (the start already there to
    stay) has no ratio to a positive one: such an instance counts as a win or a loss, not
    in the ratio."""
    solved, solved_by_reference = np.isfinite(cost), np.isfinite(reference)
    both = solved & solved_by_reference
    rated = both & (((cost > 0) & (reference > 0)) | (cost == reference))
    mine, theirs = cost[rated].to_numpy(), reference[rated].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(mine == theirs, 0.0, np.log(mine / theirs))
    problems = np.asarray(cost[rated].index.get_level_values(0))
    per_problem = pd.Series(logs).groupby(problems, sort=True).mean().to_numpy()
    wins = both_run & ((solved & ~solved_by_reference) | (both & (cost < reference)))
    losses = both_run & ((solved_by_reference & ~solved) | (both & (cost > reference)))
    ratio, low, high = ratio_interval(logs, problems)
    differing = int((per_problem != 0).sum())
    return {
        "both_solved": len(logs),
        "both_solved_problems": len(per_problem),
        "differing": differing,
        "ratio": ratio,
        "ratio_low": low,
        "ratio_high": high,
        "detectable_ratio": detectable_ratio(low, high, differing),
        "p": stats.wilcoxon(per_problem, np.zeros(len(per_problem)))[1],
        "wins": int(wins.sum()),
        "losses": int(losses.sum()),
        "ties": int(both_run.sum() - wins.sum() - losses.sum()),
        "not_run": int((~both_run).sum()),
    }


def head_to_head(
    summary: pd.DataFrame, cost: str, reference: str, can_run: pd.DataFrame, order: list[str]
) -> pd.DataFrame:
    """Every rule of `order` but the reference against it, in that order (docs/method.md,
    "Head to head"): the geometric-mean ratio of median costs over the instances both
    solve with its interval, the detectable ratio, the Wilcoxon p-value on the per-problem
    mean log ratios and its Holm adjustment over these comparisons, and wins, losses and
    ties over the ranked instances of the problems both can run (`can_run`,
    `profiles.runnable`)."""
    times = profiles.cost_matrix(summary, cost)
    can_run = profiles.runnable_instances(can_run, times)
    rows = [
        {
            "optimizer": name,
            "reference": reference,
            **_versus(times[name], times[reference], can_run[name] & can_run[reference]),
        }
        for name in order
        if name != reference
    ]
    columns = ["optimizer", "reference", "both_solved", "both_solved_problems", "differing"]
    columns += ["ratio", "ratio_low"]
    columns += ["ratio_high", "detectable_ratio", "p", "wins", "losses", "ties", "not_run"]
    table = pd.DataFrame(rows, columns=columns)
    table.insert(columns.index("p") + 1, "p_holm", stats.holm(table["p"].to_numpy(float)))
    return table


def identical(summary: pd.DataFrame, runs: pd.DataFrame, order: list[str]) -> list[list[str]]:
    """The sets of rules that behave identically on every ranked problem, each in `order`
    (the ranking's), only sets of two or more: equal in SAME and in the median final
    f - f* floored at the target (to FINAL_RTOL), and not run on the same problems. A
    rule joins the first set whose first rule it matches."""
    target = summary["problem"].map(runs.groupby("problem")["target"].first())
    final = np.maximum(summary["median_final_suboptimality"], target)
    same = [c for c in SAME if c in summary]
    exact = summary.pivot(index="optimizer", columns="problem", values=same)
    floored = summary.assign(final=final).pivot(
        index="optimizer", columns="problem", values="final"
    )
    rows = {
        name: (exact.loc[name].to_numpy(float), floored.loc[name].to_numpy(float)) for name in order
    }
    sets: list[list[str]] = []
    for name in order:
        members = next((m for m in sets if _same(rows[m[0]], rows[name])), None)
        if members is None:
            sets.append([name])
        else:
            members.append(name)
    return [members for members in sets if len(members) > 1]


def _same(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> bool:
    """Whether two rules' outcomes, (SAME, floored final f - f*) on every problem, are the
    same: the first exactly, the second to FINAL_RTOL; a problem neither ran (NaN) is."""
    return np.array_equal(a[0], b[0], equal_nan=True) and np.allclose(
        a[1], b[1], rtol=FINAL_RTOL, atol=0.0, equal_nan=True
    )


def _first_hit_costs(summary: pd.DataFrame, runs: pd.DataFrame, cost: str) -> pd.DataFrame:
    """As `profiles.cost_matrix` at the own target, the median over the tuned trial's
    eval lanes of the cost to the first touch of the target."""
    lanes = tuning.evaluation_lanes(runs, summary)
    lanes = lanes.assign(first_hit=tuning.cost_to_target(lanes, cost, first_hit=True))
    medians = lanes.groupby(tuning.PAIR)["first_hit"].median().unstack()
    times = profiles.cost_matrix(summary, cost, tuning.TARGET)
    values = medians.reindex(index=profiles.problems_of(times), columns=times.columns)
    return pd.DataFrame(values.to_numpy(), times.index, times.columns).fillna(np.inf)


def _scores(times: pd.DataFrame) -> pd.Series:
    """The profile score of each optimizer of `times` (as `profiles.cost_matrix`)."""
    return pd.Series(profiles.mean_scores(times.to_numpy()), index=times.columns)


def robustness(
    summary: pd.DataFrame, runs: pd.DataFrame, cost: str, ranking: pd.DataFrame
) -> dict[str, pd.Series | None]:
    """Each definition of success and cost (docs/method.md, "Robustness") -> every rule's
    profile score under it over the ranked problems, best first, ties in the ranking's
    order; None for a definition the folder does not record.

    Where the summary records levels: the ranking's own (every level, lasting success,
    its cost axis), each level alone (that some problem resolves), the own target with
    lasting success and with the first hit, then every level on the other of gradient
    evaluations and steps. Where it
    does not (an older folder): the own target, lasting and first hit, on the ranking's
    axis and the other; a folder without the first-hit columns was written before lasting
    success: its costs to target are first hits, and lasting success is what it does not
    record."""
    labels = tuning.COST_LABELS
    label = labels[cost]
    first_hits = tuning.FIRST_HITS[cost] in runs
    definitions: dict[str, pd.Series | None] = {}
    ranked = ranking.set_index("optimizer")["score"]
    others = [axis for axis in ("grad_evals", "steps") if axis != cost]
    if profiles.records_levels(summary):
        definitions[f"every level, lasting, {label} (the ranking)"] = ranked
        for level in tuning.LEVELS:  # those no problem resolves say nothing
            times = profiles.cost_matrix(summary, cost, level)
            if len(times):
                definitions[f"level {level} alone, lasting, {label}"] = _scores(times)
        definitions[f"own target, lasting, {label}"] = _scores(
            profiles.cost_matrix(summary, cost, tuning.TARGET)
        )
        definitions[f"own target, first hit, {label}"] = (
            _scores(_first_hit_costs(summary, runs, cost)) if first_hits else None
        )
        for axis in others:
            definitions[f"every level, lasting, {labels[axis]}"] = _scores(
                profiles.cost_matrix(summary, axis)
            )
    else:
        success, other = ("lasting", "first hit") if first_hits else ("first hit", "lasting")
        definitions[f"own target, {success}, {label} (the ranking)"] = ranked
        definitions[f"own target, {other}, {label}"] = (
            _scores(_first_hit_costs(summary, runs, cost)) if first_hits else None
        )
        for axis in others:
            recorded = summary[f"median_{axis}_to_target"].notna().any()
            scores = _scores(profiles.cost_matrix(summary, axis)) if recorded else None
            definitions[f"own target, {success}, {labels[axis]}"] = scores
    order = ranking["optimizer"].tolist()
    return {
        name: None
        if scores is None
        else scores.reindex(order).sort_values(ascending=False, kind="stable")
        for name, scores in definitions.items()
    }


def level_scores(summary: pd.DataFrame, cost: str, order: list[str]) -> pd.DataFrame:
    """The score restricted to each level the summary records and to the own target, per
    rule of `order` (rows): `score_NAME` and `solved_NAME` (the instances where at least
    half its evaluation seeds succeed) for every level and for TARGET, with the number of
    problems each counts over in `.attrs["problems"]` (NAME -> count)."""
    table = pd.DataFrame(index=pd.Index(order, name="optimizer"))
    counts = {}
    for level in [*tuning.LEVELS, tuning.TARGET]:
        times = profiles.cost_matrix(summary, cost, level)
        if not len(times):
            continue
        table[f"score_{level}"] = _scores(times).reindex(order)
        solved = profiles.solved_matrix(summary, level)
        table[f"solved_{level}"] = solved.sum().reindex(order).fillna(0).astype(int)
        counts[level] = len(times)
    table.attrs["problems"] = counts
    return table


def top(scores: pd.Series, count: int = TOP) -> list[str]:
    """The rules at the top `count` of one definition (`robustness`'s scores, best first):
    fewer than `count` rules score strictly higher, so that all tied at the last place are
    in, and the score is above 0 (a rule within tuning.MAX_RATIO of the cheapest nowhere is
    at the top of nothing)."""
    higher = scores.rank(method="min", ascending=False) - 1
    return scores.index[(higher < count) & (scores > 0)].tolist()


def robust_top(definitions: dict[str, pd.Series | None], count: int = TOP) -> list[str]:
    """The rules in the `top` `count` under every recorded definition, in the ranking's
    order (the first definition's)."""
    recorded = [scores for scores in definitions.values() if scores is not None]
    tops = [set(top(scores, count)) for scores in recorded]
    return [name for name in recorded[0].index if all(name in t for t in tops)]


def robustness_table(definitions: dict[str, pd.Series | None]) -> pd.DataFrame:
    """robustness.csv: one row per recorded definition and rule: `definition`, `rank` (its
    place under the definition, 1 first), `optimizer`, `score`."""
    rows = [
        (label, rank, name, score)
        for label, scores in definitions.items()
        if scores is not None
        for rank, (name, score) in enumerate(scores.items(), 1)
    ]
    return pd.DataFrame(rows, columns=["definition", "rank", "optimizer", "score"])
