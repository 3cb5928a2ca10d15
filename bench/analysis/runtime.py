"""Runtime views of a results folder in COCO's manner (docs/method.md, "Runtime
distributions"): the empirical cumulative distribution of the evaluation lanes' run
lengths (runtime ECDF) with bootstrap bands, the expected runtime counted with restarts
(ERT), the pairwise win rates of the rules, the score of each group of problems, and how
many instances tell the rules apart (informativeness).

Everything is computed over the headline's instances (`profiles.instances` of the
`ranked` rows of a summary) and on the ranking's cost axis. A lane's cost at an instance
is its cost to lasting success there (`tuning.cost_to_level`; +inf where it never gets
there to stay, diverges, or the level is not recorded for it). The groups are
problems.csv's `group` column (UNGROUPED where a problem has none, as in a folder
written before it); each breakdown is given OVERALL, over every instance, and per group
where the folder holds more than one (`breakdown`).
"""

import numpy as np
import pandas as pd

from bench.analysis import profiles, stats, tuning

# The breakdown over every instance, and the group of a problem whose facts name none.
OVERALL = "all"
UNGROUPED = "ungrouped"
# The runtime ECDF's budgets (in units of d + 1) are the powers of 10 ** (1 / this) that
# span the lanes' costs.
BUDGETS_PER_DECADE = 4
# An instance solved by this many rules or fewer, and not by every rule that can run it,
# is rarely solved: a column of the informativeness table.
FEW = 2


def problem_groups(summary: pd.DataFrame, facts: pd.DataFrame) -> pd.Series:
    """problem -> its group, for every problem of `summary`, in the order of `facts`
    (problems.csv's rows; problems it lacks follow, sorted); UNGROUPED where `facts`
    give no group."""
    problems = set(summary["problem"])
    listed = [p for p in facts["problem"] if p in problems]
    order = listed + sorted(problems - set(listed))
    given = facts.drop_duplicates("problem").set_index("problem")
    given = given["group"] if "group" in given else pd.Series(dtype=object)
    groups = given.reindex(order)
    named = groups.notna() & (groups.astype(str).str.strip() != "")
    return pd.Series(
        np.where(named, groups.astype(str), UNGROUPED),
        index=pd.Index(order, name="problem"),
        name="group",
        dtype=object,
    )


def breakdown(groups: pd.Series) -> list[str]:
    """What the runtime views break down by: OVERALL, then each group in the order of
    `groups` (`problem_groups`) where there is more than one."""
    names = list(dict.fromkeys(groups))
    return [OVERALL, *names] if len(names) > 1 else [OVERALL]


def members(groups: pd.Series, group: str) -> set[str]:
    """The problems of `group` (a name of `breakdown`; OVERALL: every problem)."""
    return set(groups.index if group == OVERALL else groups.index[groups == group])


def run_cost(lanes: pd.DataFrame, cost: str) -> np.ndarray:
    """Per lane: what its whole run cost on axis `cost`: its gradient evaluations
    (`final_grad_evals`), steps (its budget), or seconds (steps x seconds per step); NaN
    where `lanes` do not record it."""
    steps = lanes["steps"].to_numpy(np.float64)
    if cost == "steps":
        return steps
    column = "final_grad_evals" if cost == "grad_evals" else "seconds_per_step"
    if column not in lanes:
        return np.full(len(lanes), np.nan)
    values = lanes[column].to_numpy(np.float64)
    return values if cost == "grad_evals" else steps * values


def lane_costs(summary: pd.DataFrame, runs: pd.DataFrame, cost: str) -> pd.DataFrame:
    """One row per (instance, evaluation lane of the pair's tuned trial) over the
    instances of `summary` (the `ranked` rows): `problem`, `level`, `optimizer`, `cost`
    (to lasting success at the instance on axis `cost`; +inf where never, diverged or not
    recorded) and `run_cost` (the whole run's, `run_cost`)."""
    index = profiles.instances(summary)
    lanes = tuning.evaluation_lanes(runs, summary)
    frames = []
    for label in index.get_level_values("level").unique():
        problems = index.get_level_values("problem")[index.get_level_values("level") == label]
        at = lanes[lanes["problem"].isin(problems)]
        reached = tuning.cost_to_level(at, cost, label)
        frames.append(
            pd.DataFrame(
                {
                    "problem": at["problem"].to_numpy(object),
                    "level": label,
                    "optimizer": at["optimizer"].to_numpy(object),
                    "cost": np.where(np.isnan(reached), np.inf, reached),
                    "run_cost": run_cost(at, cost),
                }
            )
        )
    columns = ["problem", "level", "optimizer", "cost", "run_cost"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def budget_grid(units: np.ndarray) -> np.ndarray:
    """The ECDF's budgets: the powers of 10 ** (1 / BUDGETS_PER_DECADE) from the largest
    at or below the smallest positive finite value of `units` to the smallest at or above
    the largest (1 alone where there is none)."""
    positive = units[np.isfinite(units) & (units > 0)]
    if not positive.size:
        return np.array([1.0])
    low = np.floor(np.log10(positive.min()) * BUDGETS_PER_DECADE + 1e-9)
    high = np.ceil(np.log10(positive.max()) * BUDGETS_PER_DECADE - 1e-9)
    return 10.0 ** (np.arange(low, high + 1) / BUDGETS_PER_DECADE)


def runtime_ecdf(
    lanes: pd.DataFrame,
    instances: pd.Index,
    dims: dict[str, int],
    groups: pd.Series,
    order: list[str],
) -> pd.DataFrame:
    """The runtime ECDF of every rule of `order` (docs/method.md, "Runtime
    distributions"): per group of `breakdown(groups)` and budget (`budget_grid`, in units
    of d + 1), the mean over the group's `instances` (those of problems in `dims`) of the
    share of the rule's evaluation lanes (`lanes`: `lane_costs` over these instances) that
    reach the instance within the budget (0 on an instance it has no lanes on), with the
    bounds of its bootstrap 95% band, the problems resampled with all their instances.
    Columns: optimizer, group, budget, share, low, high."""
    instances = instances[np.isin(instances.get_level_values("problem"), list(dims))]
    problems = list(dict.fromkeys(instances.get_level_values("problem")))
    columns = ["optimizer", "group", "budget", "share", "low", "high"]
    if not problems:
        return pd.DataFrame(columns=columns)
    problem = pd.Index(problems).get_indexer(pd.Index(lanes["problem"]))
    lanes, problem = lanes[problem >= 0], problem[problem >= 0]
    size = np.array([dims[p] + 1 for p in problems], np.float64)[problem]
    units = lanes["cost"].to_numpy(np.float64) / size
    budgets = budget_grid(units)
    # Each lane adds 1 / (its pair's lanes at the instance) to its problem's count at the
    # first budget it is within; the cumulative sum over budgets is the problem's summed
    # shares of its instances reached within each budget.
    optimizer = pd.Index(order).get_indexer(pd.Index(lanes["optimizer"]))
    level, labels = pd.factorize(lanes["level"])
    pair = np.ravel_multi_index(
        (problem, level, optimizer), (len(problems), len(labels), len(order))
    )
    weight = 1.0 / np.bincount(pair)[pair]
    within = np.searchsorted(budgets, units, side="left")  # len(budgets): never
    shape = (len(problems), len(order), len(budgets) + 1)
    flat = np.ravel_multi_index((problem, optimizer, within), shape)
    counts = np.bincount(flat, weights=weight, minlength=int(np.prod(shape))).reshape(shape)
    reached = np.cumsum(counts, axis=2)[:, :, :-1]  # [problems, optimizers, budgets]
    sizes = pd.Series(instances.get_level_values("problem")).value_counts()
    sizes = sizes.reindex(problems).to_numpy(np.float64)
    frames = []
    for group in breakdown(groups):
        chosen = np.isin(problems, list(members(groups, group)))
        if not chosen.any():
            continue
        block, weights = reached[chosen].reshape(int(chosen.sum()), -1), sizes[chosen]
        share = block.sum(axis=0) / weights.sum()
        low, high = _problem_bootstrap(block, weights)
        frames.append(
            pd.DataFrame(
                {
                    "optimizer": np.repeat(order, len(budgets)),
                    "group": group,
                    "budget": np.tile(budgets, len(order)),
                    "share": share,
                    "low": low,
                    "high": high,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)[columns]


def _problem_bootstrap(sums: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 95% percentile interval (`stats.percentile_interval`) of a ratio of sums over
    problems, sum(sums) / sum(sizes), the problems (rows) resampled with replacement:
    `stats.RESAMPLES` resamples from a generator seeded with `stats.SEED`."""
    count = len(sizes)
    picks = np.random.default_rng(stats.SEED).integers(0, count, (stats.RESAMPLES, count))
    slots = (np.arange(stats.RESAMPLES)[:, None] * count + picks).ravel()
    taken = np.bincount(slots, minlength=stats.RESAMPLES * count).reshape(-1, count)
    return stats.percentile_interval((taken @ sums) / (taken @ sizes)[:, None])


def expected_runtimes(lanes: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """ert.csv.gz: per (optimizer, problem, level) of `lane_costs`, in the order of `order`
    then of the problems and levels: `runs` (its evaluation lanes), `successes` (those
    that reach the level to stay) and `ert`, the expected runtime counted as COCO counts
    restarts: the costs of the successes plus the whole runs of the others, over the
    successes; +inf without a success, NaN where a failed lane's whole run is not
    recorded."""
    reached = np.isfinite(lanes["cost"].to_numpy(np.float64))
    spent = np.where(reached, lanes["cost"], lanes["run_cost"])
    keyed = lanes.assign(
        successes=reached.astype(int),
        spent=np.where(np.isnan(spent), 0.0, spent),
        unknown=np.isnan(spent).astype(int),
    )
    table = (
        keyed.groupby(["optimizer", "problem", "level"], sort=False)
        .agg(
            runs=("successes", "size"),
            successes=("successes", "sum"),
            spent=("spent", "sum"),
            unknown=("unknown", "sum"),
        )
        .reset_index()
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        ert = np.where(table["successes"] > 0, table["spent"] / table["successes"], np.inf)
    table["ert"] = np.where((table["unknown"] > 0) & (table["successes"] > 0), np.nan, ert)
    table = table.assign(
        _rule=table["optimizer"].map({name: i for i, name in enumerate(order)}),
        _level=table["level"].map({name: i for i, name in enumerate(profiles.INSTANCE_ORDER)}),
    ).sort_values(["_rule", "problem", "_level"], kind="stable")
    return table[["optimizer", "problem", "level", "runs", "successes", "ert"]].reset_index(
        drop=True
    )


def ert_matrix(ert: pd.DataFrame, instances: pd.Index, order: list[str]) -> pd.DataFrame:
    """`expected_runtimes` as a matrix, `instances` x the rules of `order`; +inf where a
    rule has no lanes on the instance (a NaN ERT, a whole run not recorded, stays NaN)."""
    if ert.empty:
        return pd.DataFrame(np.inf, index=instances, columns=order)
    values, ran = (
        ert.pivot(index=["problem", "level"], columns="optimizer", values=column).reindex(
            index=instances, columns=order
        )
        for column in ("ert", "runs")
    )
    ran = ran.notna()
    return values.where(ran, np.inf)


def ert_summary(
    ert: pd.DataFrame, instances: pd.Index, groups: pd.Series, order: list[str]
) -> pd.DataFrame:
    """Per group of `breakdown(groups)` and rule of `order`: `instances` (the group's),
    `finite` (those where the rule's ERT is finite), `share` (their share) and
    `median_ratio`, the median over those instances of its ERT over the best ERT of any
    rule there (1 where both are 0; NaN where it has none)."""
    times = ert_matrix(ert, instances, order)
    values = times.to_numpy(np.float64)
    finite = np.isfinite(values)
    best = np.where(finite, values, np.inf).min(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(values == best, 1.0, values / best)
    ratios = pd.DataFrame(np.where(finite, ratios, np.nan), columns=order)
    problems = profiles.problems_of(times)
    rows = []
    for group in breakdown(groups):
        chosen = np.isin(problems, list(members(groups, group)))
        medians = ratios[chosen].median()
        counts = finite[chosen].sum(axis=0)
        for i, name in enumerate(order):
            rows.append(
                {
                    "group": group,
                    "optimizer": name,
                    "instances": int(chosen.sum()),
                    "finite": int(counts[i]),
                    "share": counts[i] / max(int(chosen.sum()), 1),
                    "median_ratio": float(medians[name]),
                }
            )
    return pd.DataFrame(rows)


def win_rates(times: pd.DataFrame, can_run: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """The pairwise win rates of the rules of `order` (rows and columns in that order):
    at [a, b], over the instances of `times` (a cost matrix, +inf where unsolved) of the
    problems both can run (`can_run`, `profiles.runnable_instances`), the share where a's
    median cost is lower than b's, with equal costs (both unsolved included) counting one
    half; NaN on the diagonal and where no instance counts."""
    costs = times[order].to_numpy(np.float64)
    runs = can_run[order].to_numpy(bool)
    rates = np.full((len(order), len(order)), np.nan)
    for a in range(len(order)):
        both = runs[:, [a]] & runs
        score = (costs[:, [a]] < costs) + 0.5 * (costs[:, [a]] == costs)
        counted = both.sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            rates[a] = np.where(counted > 0, (score * both).sum(axis=0) / counted, np.nan)
    np.fill_diagonal(rates, np.nan)
    return pd.DataFrame(rates, index=pd.Index(order, name="optimizer"), columns=order)


def group_scores(times: pd.DataFrame, groups: pd.Series, order: list[str]) -> pd.DataFrame:
    """groups.csv: per group (none where there is one: `breakdown`) and rule of `order`,
    the profile score over the group's instances only (`profiles.mean_scores`: each
    ratio against the cheapest rule there) and its `rank` in the group (1 first, ties in
    the order of `order`), with the group's number of `instances`."""
    problems = profiles.problems_of(times)
    frames = []
    for group in breakdown(groups)[1:]:
        chosen = np.isin(problems, list(members(groups, group)))
        scores = pd.Series(profiles.mean_scores(times[order].to_numpy()[chosen]), index=order)
        scores = scores.sort_values(ascending=False, kind="stable")
        frames.append(
            pd.DataFrame(
                {
                    "group": group,
                    "rank": np.arange(1, len(scores) + 1),
                    "optimizer": scores.index,
                    "score": scores.to_numpy(),
                    "instances": int(chosen.sum()),
                }
            )
        )
    columns = ["group", "rank", "optimizer", "score", "instances"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def informativeness(times: pd.DataFrame, can_run: pd.DataFrame, groups: pd.Series) -> pd.DataFrame:
    """Per group of `breakdown(groups)`: how many of its instances (of `times`, a cost
    matrix; a rule solves an instance where its median cost is finite) no rule solves
    (`nobody`), every rule that can run its problem (`can_run`) solves (`everyone`), at
    most FEW rules solve and not all of them (`few`), and the rest (`rest`);
    `informative`, those solved by some rule and not by every one (`few` + `rest`), and
    `informative_problems`, the problems with an informative instance, beside
    `instances` and `problems`."""
    solved = np.isfinite(times.to_numpy(np.float64)) & can_run.to_numpy(bool)
    solvers, runners = solved.sum(axis=1), can_run.to_numpy(bool).sum(axis=1)
    nobody = solvers == 0
    everyone = ~nobody & (solvers == runners)
    few = ~nobody & ~everyone & (solvers <= FEW)
    informative = ~nobody & ~everyone
    problems = profiles.problems_of(times)
    rows = []
    for group in breakdown(groups):
        chosen = np.isin(problems, list(members(groups, group)))
        rows.append(
            {
                "group": group,
                "instances": int(chosen.sum()),
                "problems": len(set(problems[chosen])),
                "nobody": int((nobody & chosen).sum()),
                "everyone": int((everyone & chosen).sum()),
                "few": int((few & chosen).sum()),
                "rest": int((informative & ~few & chosen).sum()),
                "informative": int((informative & chosen).sum()),
                "informative_problems": len(set(problems[informative & chosen])),
            }
        )
    return pd.DataFrame(rows)
