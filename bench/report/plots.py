"""Matplotlib figures drawn from the CSV tables (never from live results).

Legends stay readable with dozens of optimizers: each per-problem figure draws the
top-ranked few (TOP_K) at their tuned settings (trials); TABLES.md lists them all.
"""

import io
import itertools
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import PIL.Image  # noqa: E402

from bench.analysis import budget, profiles, tuning
from bench.report.format import counted  # noqa: E402
from bench.results import schema  # noqa: E402
from bench.results.files import write_atomic  # noqa: E402

TOP_K = 8
OVERVIEW_K = 5
# Suboptimality is drawn down to this fraction of the problem's target: far below the
# target every optimizer has solved the problem, and float32 rounding makes f - f*
# noisy or even negative there.
FLOOR_FRACTION = 1e-4
COLORS = tuple(matplotlib.color_sequences["tab10"])  # the colours of the tab10 colormap
# One per setting of an optimizer's other swept hyperparameters in the sensitivity plot.
LINE_STYLES = ("-", "--", ":", "-.")


def _save(fig, path: Path) -> None:
    """Writes `fig` as a 128-colour PNG at 80 dpi: line plots need no more, and the file
    is a third of a full-colour one, which keeps results/ small enough to commit at
    every run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=80, bbox_inches="tight", format="png")
    plt.close(fig)
    image = PIL.Image.open(buffer).convert("RGB").quantize(colors=128)
    write_atomic(path, lambda tmp: image.save(tmp, format="png", optimize=True))


def _top(summary: pd.DataFrame, problem: str, k: int) -> pd.DataFrame:
    return summary[summary["problem"] == problem].sort_values("rank").head(k)


def _tuned_lanes(frame: pd.DataFrame, problem: str, optimizer: str) -> pd.DataFrame:
    return frame[(frame["problem"] == problem) & (frame["optimizer"] == optimizer)]


def _setting(summary: pd.DataFrame, pick) -> str:
    """The tuned setting of a summary row (from itertuples) as 'lr 0.1, b1 0.9'."""
    return tuning.setting_text(pick._asdict(), schema.hyperparameters(summary))


def _log_steps(ax) -> None:
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlim(left=0)


def convergence_axes(ax, curves, summary, runs_facts, problem: str, k: int) -> None:
    """Median suboptimality over the evaluation seeds (interquartile band) of the top-k
    optimizers of `problem`."""
    f_star, target = runs_facts.loc[problem, "f_star"], runs_facts.loc[problem, "target"]
    floor = FLOOR_FRACTION * target
    for color, pick in zip(COLORS, _top(summary, problem, k).itertuples(), strict=False):
        q = _tuned_lanes(curves, problem, str(pick.optimizer)).set_index("step")
        q = (q[["loss_q25", "loss", "loss_q75"]] - f_star).clip(lower=floor)
        label = f"{pick.rank}. {pick.optimizer} ({_setting(summary, pick)})"
        ax.plot(q.index, q["loss"], color=color, label=label, lw=1.5)
        ax.fill_between(q.index, q["loss_q25"], q["loss_q75"], color=color, alpha=0.15, lw=0)
    ax.axhline(target, color="grey", ls=":", lw=1, label="target")
    ax.set(title=problem, xlabel="step", yscale="log")
    ax.set_ylabel(f"f(x) - f*, clipped at {floor:.0e}")  # and at 0, float32's rounding
    _log_steps(ax)
    ax.grid(True, which="major", alpha=0.3)


def _facts(runs: pd.DataFrame) -> pd.DataFrame:
    return runs.groupby("problem")[["f_star", "target", "steps"]].first()


def convergence(curves, summary, runs, path: Path, problem: str) -> None:
    fig, ax = plt.subplots(figsize=(7.5, 5))
    convergence_axes(ax, curves, summary, _facts(runs), problem, TOP_K)
    ax.legend(fontsize="small", loc="best", framealpha=0.8)
    ax.set_title(
        f"{problem}: top {TOP_K} optimizers at their tuned learning rate\n"
        f"median over seeds, band = interquartile range; f - f* drawn down to "
        f"{FLOOR_FRACTION:g} x the target"
    )
    _save(fig, path)


def overview(curves, summary, runs, path: Path) -> None:
    """Every problem in one figure, the top few optimizers each."""
    problems = sorted(summary["problem"].unique())
    cols = min(3, len(problems))
    rows = math.ceil(len(problems) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 4.3 * rows), squeeze=False)
    facts = _facts(runs)
    for ax, problem in zip(axes.flat, problems, strict=False):
        convergence_axes(ax, curves, summary, facts, problem, OVERVIEW_K)
        ax.legend(fontsize="x-small", loc="best", framealpha=0.8)
    for ax in axes.flat[len(problems) :]:
        ax.set_visible(False)
    fig.suptitle(
        f"Convergence: the top {OVERVIEW_K} optimizers per problem at their tuned learning rate "
        "(median over seeds, interquartile band)",
        y=1.0,
    )
    fig.tight_layout()
    _save(fig, path)


def sensitivity(runs, summary, path: Path, problem: str, cost: str) -> None:
    """What the tuning rule compares, per trial against its learning rate (top-k optimizers;
    one line per setting of the other swept hyperparameters; star = the tuned trial).

    Left: median cost over the tuning seeds to the deepest level the tuned trial reaches
    (the level named in the legend; the target in a folder without levels): among trials
    that reach as many levels, the rule picks the cheapest there. Right: the median that
    decides where no level is reached, final f - f* floored at the target (or the
    held-out loss).
    """
    medians = tuning.grid_medians(runs[runs["problem"] == problem], cost)
    tuned_on = summary.loc[summary["problem"] == problem, "tuned_on"].iloc[0]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5), sharex=True)
    reached = False  # whether any trial drawn reaches the target (has a cost to draw)
    finished = False  # whether any trial drawn has a finite final value (did not diverge)
    for color, pick in zip(COLORS, _top(summary, problem, TOP_K).itertuples(), strict=False):
        grid = medians[medians["optimizer"] == pick.optimizer].sort_values("learning_rate")
        deepest = grid.loc[grid[schema.TRIAL] == pick.trial, "deepest"]
        deepest = str(deepest.iloc[0]) if len(deepest) else ""
        at = tuning.LEVEL_MEDIAN.format(deepest) if deepest in tuning.LEVELS else "cost"
        others = schema.other_hyperparameters(grid)
        lines = grid.groupby(others, sort=True) if others else [((), grid)]
        styles = itertools.cycle(LINE_STYLES)
        if others and len(lines) > len(LINE_STYLES):  # a random search: one point per trial
            lines, styles = [((), grid)], itertools.repeat("none")
        for style, (_, line) in zip(styles, lines, strict=False):
            setting = "" if style == "none" else tuning.setting_text(line.iloc[0], others)
            name = str(pick.optimizer)
            label = f"{name} ({setting})" if setting else name
            label += f", to {deepest}" if deepest in tuning.LEVELS else ""
            lrs = line["learning_rate"].to_numpy()
            tuned = (line[schema.TRIAL] == pick.trial).to_numpy()
            for ax, column in ((left, at), (right, "score")):
                y = line[column].where(np.isfinite(line[column])).to_numpy()
                ax.plot(lrs, y, "o", ls=style, color=color, ms=3, label=label)
                ax.plot(lrs[tuned], y[tuned], "*", color=color, ms=12, mec="black")
            reached |= bool(np.isfinite(line[at]).any())
            finished |= bool(np.isfinite(line["score"]).any())
    if tuned_on != "cv_loss" and finished:
        right.axhline(_facts(runs).loc[problem, "target"], color="grey", ls=":", label="target")
    levels = [tuning.LEVEL_MEDIAN.format(name) for name in tuning.LEVELS]
    leveled = bool(medians.reindex(columns=levels).notna().to_numpy().any())
    reach = "the tuned trial's deepest level" if leveled else "the target"
    left.set(ylabel=f"median {tuning.COST_LABELS[cost]} to {reach} (missing: not reached)")
    right.set(
        ylabel="median held-out loss (CV)"
        if tuned_on == "cv_loss"
        else "median final f - f*, floored at the target (missing: diverged)"
    )
    if not reached:  # no log scale to draw on
        left.text(
            0.5, 0.5, f"no setting drawn reaches {reach}", ha="center", transform=left.transAxes
        )
        left.set_yticks([])
    else:
        left.set(yscale="log")
    if not finished:  # every lane drawn diverged: nothing on the right either
        right.text(0.5, 0.5, "every setting drawn diverged", ha="center", transform=right.transAxes)
        right.set_yticks([])
    else:
        right.set(yscale="log")
    for ax in (left, right):
        ax.set(xscale="log", xlabel="learning rate")
        ax.grid(True, which="major", alpha=0.3)
    right.legend(fontsize="small", framealpha=0.8)
    fig.suptitle(
        f"{problem}: learning-rate sensitivity over the tuning seeds (top {TOP_K}); star = tuned.\n"
        + (
            "Settings that reach as many levels compete on cost (left), those reaching none "
            "on the right"
            if leveled
            else "Settings that reach the target compete on cost (left), the others on the right"
        )
    )
    fig.tight_layout()
    _save(fig, path)


def _nothing_to_draw(path: Path, title: str, reason: str) -> None:
    """A figure that says why there is nothing to draw, in place of an empty one."""
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.text(0.5, 0.5, reason, ha="center", va="center", fontsize=12)
    ax.set_axis_off()
    ax.set_title(title)
    _save(fig, path)


def performance_profile(summary, path: Path, cost: str, k: int = 10) -> None:
    """Dolan-More profile over median cost (`profiles.cost_matrix`: every (problem,
    level) instance, or each problem's own target in a folder without levels), with the
    integrated score."""
    label = tuning.COST_LABELS[cost]
    unit = "instance" if profiles.records_levels(summary) else "problem"
    reached = "each level" if unit == "instance" else "target"
    scores = profiles.integrated_scores(summary, cost).sort_values(ascending=False, kind="stable")
    times = profiles.cost_matrix(summary, cost)
    times = times[np.isfinite(times).any(axis=1)]
    if times.empty:  # no optimizer reached any target: say so rather than draw nothing
        _nothing_to_draw(
            path,
            f"Performance profile over {label} to {reached}",
            f"No optimizer reached {reached} on any {unit}:\nno profile to draw.",
        )
        return
    ratios = profiles.performance_ratios(times.to_numpy())
    top = max(tuning.MAX_RATIO, float(ratios[np.isfinite(ratios)].max()) * 1.2)
    taus = np.geomspace(1.0, top, 400)
    profile = profiles.performance_profile(summary, taus, cost)
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for optimizer in scores.index[k:]:
        ax.step(taus, profile[optimizer], where="post", color="lightgrey", lw=0.8)
    for i, optimizer in enumerate(scores.index[:k]):
        style = "-" if i < len(COLORS) else "--"
        ax.step(
            taus,
            profile[optimizer],
            where="post",
            lw=1.8,
            ls=style,
            color=COLORS[i % len(COLORS)],
            label=f"{optimizer} (score {scores[optimizer]:.2f})",
        )
    ax.axvline(tuning.MAX_RATIO, color="grey", ls=":", lw=1)
    ax.set(
        xscale="log",
        xlabel=f"tau: {label} to {reached} / the cheapest optimizer's",
        ylabel=f"share of {unit}s solved within tau",
        ylim=(-0.02, 1.02),
    )
    ax.set_title(
        f"Performance profile over {label} to {reached}, {counted(len(times), unit)} "
        f"(top {k} by score; grey: the rest)\n"
        f"score = mean of the profile for tau in [1, {tuning.MAX_RATIO:g}] (AlgoPerf-style)"
    )
    ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xticks([t for t in (1, 1.5, 2, 3, 4, 6, 10, 20, 50, 100) if t <= top])
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small", loc="lower right", framealpha=0.85)
    _save(fig, path)


def _budgets(times: pd.DataFrame, dims: dict[str, int]) -> np.ndarray:
    """400 log-spaced budgets, in units of d + 1, spanning the positive finite costs of
    `times` (a cost of 0, a start already at the target, is within every budget)."""
    sizes = [dims[p] + 1 for p in profiles.problems_of(times)]
    units = times.div(sizes, axis=0).to_numpy()
    positive = units[np.isfinite(units) & (units > 0)]
    low, high = (positive.min() / 1.5, positive.max() * 1.5) if positive.size else (0.1, 10.0)
    return np.geomspace(low, high, 400)


def _data_profile_axes(ax, times, dims, order, k: int, budgets=None) -> None:
    """The data profile of `times` (a cost matrix of gradient evaluations): the first k
    optimizers of `order` in colour, the rest in grey."""
    times = times[np.isin(profiles.problems_of(times), list(dims))]
    budgets = _budgets(times, dims) if budgets is None else budgets
    profile = profiles.solved_within(times, dims, budgets)
    for optimizer in [o for o in order[k:] if o in profile]:
        ax.step(budgets, profile[optimizer], where="post", color="lightgrey", lw=0.8)
    for i, optimizer in enumerate(o for o in order[:k] if o in profile):
        ax.step(
            budgets,
            profile[optimizer],
            where="post",
            lw=1.8,
            ls="-" if i < len(COLORS) else "--",
            color=COLORS[i % len(COLORS)],
            label=optimizer,
        )
    ax.set(
        xscale="log",
        xlabel="budget: gradient evaluations / (d + 1), d = the problem's parameter count",
        ylabel=f"share of {_unit(times)}s solved within the budget",
        ylim=(-0.02, 1.02),
    )
    ax.grid(True, which="both", alpha=0.3)


def _unit(times: pd.DataFrame) -> str:
    """What a row of a cost matrix is, in words."""
    return "instance" if _by_level(times) else "problem"


def _by_level(times: pd.DataFrame) -> bool:
    """Whether a cost matrix's rows are level instances (not only own targets)."""
    index = times.index
    return isinstance(index, pd.MultiIndex) and bool(
        (index.get_level_values(1) != tuning.TARGET).any()
    )


def data_profile(summary, dims: dict[str, int], path: Path, cost: str, k: int = 10) -> None:
    """Moré-Wild data profile over gradient evaluations in units of d + 1 (dims: d per
    problem), over the ranking's instances (every level, as a runtime ECDF aggregates over
    targets; each problem's own target in a folder without levels)."""
    if summary["median_grad_evals_to_target"].isna().all():
        raise ValueError("runs.csv.gz records no gradient evaluations to target")
    times = profiles.cost_matrix(summary, "grad_evals")
    times = times[np.isin(profiles.problems_of(times), list(dims))]
    if times.empty:
        raise ValueError("no problem of the summary has a known parameter count")
    order = profiles.integrated_scores(summary, cost).sort_values(ascending=False, kind="stable")
    fig, ax = plt.subplots(figsize=(8, 5.5))
    _data_profile_axes(ax, times, dims, list(order.index), k)
    unit = "(problem, level) instance" if _by_level(times) else "problem"
    reached = "each level" if _by_level(times) else "target"
    ax.set_title(
        f"Data profile (Moré-Wild) over {counted(len(times), unit)} "
        f"(top {k} by profile score; grey: the rest)\n"
        f"median gradient evaluations to {reached} of the tuned setting over evaluation seeds"
    )
    ax.legend(fontsize="small", loc="lower right", framealpha=0.85)
    _save(fig, path)


def data_profiles(
    levels: list[str], dims: dict[str, int], summary, path: Path, cost: str, k: int = 10
) -> None:
    """One Moré-Wild data profile per level of `levels` (names of `tuning.LEVELS` that
    some problem of `summary` resolves), on one budget axis; the top k by profile score
    in colour, the rest in grey."""
    order = profiles.integrated_scores(summary, cost).sort_values(ascending=False, kind="stable")
    order = list(order.index)
    times = {level: profiles.cost_matrix(summary, "grad_evals", level) for level in levels}
    times = {level: matrix for level, matrix in times.items() if len(matrix)}
    if not times:
        raise ValueError("no problem resolves a level of the data profiles")
    every = pd.concat(times.values())
    budgets = _budgets(every[np.isin(profiles.problems_of(every), list(dims))], dims)
    cols = min(2, len(times))
    rows = math.ceil(len(times) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(7.5 * cols, 5 * rows), squeeze=False)
    for ax, (level, matrix) in zip(axes.flat, times.items(), strict=False):
        _data_profile_axes(ax, matrix, dims, order, k, budgets)
        ax.set_ylabel("share of problems solved within the budget")
        solved_over = counted(len(matrix), "problem")
        ax.set_title(f"tau = {level}: f - f* <= tau (f(x0) - f*), {solved_over}")
    for ax in axes.flat[len(times) :]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize="small", loc="upper left", framealpha=0.85)
    fig.suptitle(
        "Data profiles (Moré-Wild) by gradient evaluations, at each level "
        f"(the tuned setting of each pair, lasting success; top {k} by score, grey: the rest)",
        y=1.0,
    )
    fig.tight_layout()
    _save(fig, path)


def _loss_surface(problem, box, points: int = 160):
    """f on a points x points grid over box = (x0, x1, y0, y1), from the registry problem."""
    import jax
    from jax.flatten_util import ravel_pytree

    _, unravel = ravel_pytree(problem.init(jax.random.PRNGKey(0)))
    xs, ys = np.linspace(box[0], box[1], points), np.linspace(box[2], box[3], points)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    data = problem.data()
    values = jax.jit(jax.vmap(lambda v: problem.loss(unravel(v), data)))(grid)
    return xs, ys, np.asarray(values, np.float64).reshape(points, points)


def paths(path_frame, summary, runs, problem_obj, path: Path, k: int = 6) -> None:
    """The iterates of the top-k optimizers (first seed) on a contour plot of f."""
    from jax.flatten_util import ravel_pytree

    name = problem_obj.name
    frame = path_frame[path_frame["problem"] == name]
    picks = list(_top(summary, name, k).itertuples())
    seed = frame["seed"].min()
    points = frame[np.isfinite(frame["x"]) & np.isfinite(frame["y"])]
    start = frame[(frame["step"] == 0) & (frame["seed"] == seed)][["x", "y"]].iloc[0].to_numpy()
    anchors = [start]
    if problem_obj.x_star is not None:
        anchors.append(np.asarray(ravel_pytree(problem_obj.x_star)[0], np.float64))
    anchors = np.array(anchors)
    low = np.minimum(anchors.min(0), points[["x", "y"]].quantile(0.02).to_numpy())
    high = np.maximum(anchors.max(0), points[["x", "y"]].quantile(0.98).to_numpy())
    pad = 0.15 * np.maximum(high - low, 1e-3)
    box = (low[0] - pad[0], high[0] + pad[0], low[1] - pad[1], high[1] + pad[1])
    xs, ys, values = _loss_surface(problem_obj, box)
    f_star = runs.loc[runs["problem"] == name, "f_star"].iloc[0]
    gap = np.log10(np.clip(values - f_star, 1e-12, None))
    fig, ax = plt.subplots(figsize=(7.5, 6))
    filled = ax.contourf(xs, ys, gap, levels=30, cmap="Greys_r", alpha=0.6)
    ax.contour(xs, ys, gap, levels=15, colors="white", linewidths=0.4, alpha=0.6)
    fig.colorbar(filled, ax=ax, label="log10(f - f*)")
    for color, pick in zip(COLORS, picks, strict=False):
        lane = frame[(frame["optimizer"] == pick.optimizer) & (frame["seed"] == seed)]
        lane = lane.sort_values("step")
        ax.plot(lane["x"], lane["y"], "-", color=color, lw=1.3, label=f"{pick.optimizer}")
        ax.plot(lane["x"].iloc[-1:], lane["y"].iloc[-1:], "o", color=color, ms=4)
    ax.plot(*start, "o", color="black", ms=7, label="start")
    if problem_obj.x_star is not None:
        ax.plot(*anchors[1], "*", color="red", ms=14, mec="black", label="x*")
    ax.set(xlim=box[:2], ylim=box[2:], xlabel="x1", ylabel="x2")
    ax.set_title(
        f"{name}: paths of the top {k} optimizers at their tuned learning rate (seed {seed})"
    )
    ax.legend(fontsize="small", loc="best", framealpha=0.85)
    _save(fig, path)


def layer_grad_norms(frame, summary, path: Path, problem: str, panels: int = 4) -> None:
    """Per-layer gradient norms over steps (median over seeds) for a few optimizers."""
    frame = frame[frame["problem"] == problem]
    chosen = list(_top(summary, problem, panels)["optimizer"])
    if "sgd" in set(frame["optimizer"]) and "sgd" not in chosen:
        chosen = chosen[: panels - 1] + ["sgd"]  # plain SGD shows the raw gradient decay
    layers = int(frame["layer"].max()) + 1
    colors = plt.get_cmap("viridis")(np.linspace(0, 0.9, layers))
    fig, axes = plt.subplots(1, len(chosen), figsize=(4.6 * len(chosen), 4), squeeze=False)
    for ax, optimizer in zip(axes.flat, chosen, strict=True):
        lanes = frame[frame["optimizer"] == optimizer]
        median = lanes.groupby(["layer", "step"])["grad_norm"].median()
        for layer in range(layers):
            series = median.loc[layer]
            ax.plot(
                series.index,
                series.clip(lower=1e-30),
                color=colors[layer],
                label=f"layer {layer + 1}" + (" (input)" if layer == 0 else ""),
            )
        pick = next(_tuned_lanes(summary, problem, optimizer).itertuples())
        ax.set(
            title=f"{optimizer} ({_setting(summary, pick)})",
            xlabel="step",
            ylabel="gradient norm",
            yscale="log",
        )
        _log_steps(ax)
        ax.grid(True, which="major", alpha=0.3)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize="small")
    fig.suptitle(
        f"{problem}: per-layer gradient norms at the tuned learning rate (median over seeds)"
    )
    fig.tight_layout()
    _save(fig, path)


def budget_curves(curves, summary, path: Path, problem: str | None = None, k: int = 10) -> None:
    """Expected best trial score against the tuning budget (bench.analysis.budget): on one problem,
    or (problem None) averaged over the suite. The top k at the largest budget are drawn
    in colour, the rest in grey."""
    if problem is None:
        frame = budget.suite_budget_curves(curves)
        where = f"mean over {counted(curves['problem'].nunique(), 'problem')}"
    else:
        frame = curves[curves["problem"] == problem]
        where = problem
    if frame.empty:
        title = f"Tuning-budget curves, {where}"
        reason = "No trial of any optimizer reached the target:\nno budget curve to draw."
        _nothing_to_draw(path, title, reason)
        return
    lines = dict(list(frame.groupby("optimizer", sort=True)))
    final = {name: line["expected_best_score"].iloc[-1] for name, line in lines.items()}
    order = sorted(final, key=lambda name: -final[name])
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for name in order[k:]:
        ax.plot(
            lines[name]["trials"], lines[name]["expected_best_score"], color="lightgrey", lw=0.8
        )
    for i, name in enumerate(order[:k]):
        line = lines[name]
        ax.plot(
            line["trials"],
            line["expected_best_score"],
            marker="o" if len(line) < 20 else None,
            ms=3,
            lw=1.8,
            ls="-" if i < len(COLORS) else "--",
            color=COLORS[i % len(COLORS)],
            label=f"{name} ({final[name]:.2f} at {int(line['trials'].iloc[-1])})",
        )
    ax.set(
        xscale="log",
        xlabel="tuning budget: trials drawn at random from the search",
        ylabel="expected score of the best trial",
        ylim=(-0.02, 1.02),
    )
    ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.set_title(
        f"Tuning-budget curves, {where} (top {k} at the full budget; grey: the rest)\n"
        f"score of a trial: (r_max - r) / (r_max - 1), r = its cost to target over the "
        "cheapest trial's"
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small", loc="lower right", framealpha=0.85)
    _save(fig, path)


def heat_maps(scored, summary, spaces: dict, path: Path, problem: str, k: int = 6) -> None:
    """Median trial score over learning rate x the pair's second most sensitive
    hyperparameter (bench.analysis.budget.heat_map), for the top-k optimizers of `problem` that
    swept more than the learning rate. `spaces`: optimizer -> its search space (for the
    scale of each axis; log where unknown)."""
    title = f"{problem}: trial score over learning rate x the second most sensitive hyperparameter"
    if scored.loc[scored["problem"] == problem, "trial_score"].isna().all():
        reason = "No trial of any optimizer reached the target:\nno score to map."
        _nothing_to_draw(path, title, reason)
        return
    panels = []
    for pick in _top(summary, problem, len(summary)).itertuples():
        trials = scored[(scored["problem"] == problem) & (scored["optimizer"] == pick.optimizer)]
        trials = trials.dropna(axis=1, how="all")  # the hyperparameters it does not sweep
        ranked = [n for n in budget.sensitivities(trials).index if n != "learning_rate"]
        if ranked and trials["learning_rate"].nunique() > 1:
            panels.append((pick.optimizer, trials, ranked[0]))
        if len(panels) == k:
            break
    if not panels:
        raise ValueError(f"no optimizer on {problem} swept a hyperparameter besides the lr")
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 3.8 * rows), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.set_axis_off()
    for ax, (optimizer, trials, second) in zip(axes.flat, panels, strict=False):
        dim = spaces.get(optimizer, {}).get(second)
        scale = getattr(dim, "scale", "log" if (trials[second] > 0).all() else "linear")
        cells = budget.heat_map(trials, second, scale)
        x, y = cells.columns.to_numpy(), cells.index.to_numpy()
        image = ax.imshow(
            cells.to_numpy(),
            origin="lower",
            aspect="auto",
            vmin=0,
            vmax=1,
            cmap="viridis",
            extent=(*_extent(x), *_extent(y)),
        )
        ax.plot(
            np.log10(trials["learning_rate"]),
            budget.axis_values(trials[second], scale),
            ".",
            color="white",
            ms=3,
        )
        label = {"log": f"log10 {second}", "one_minus_log": f"log10(1 - {second})"}
        ax.set(title=optimizer, xlabel="log10 learning rate", ylabel=label.get(scale, second))
    fig.colorbar(image, ax=axes, shrink=0.8, label="median trial score (0: target missed)")
    fig.suptitle(f"{title} of each optimizer (dots: trials)")
    _save(fig, path)


def _extent(centres: np.ndarray) -> tuple[float, float]:
    """The outer edges of equal bins with these centres."""
    half = (centres[1] - centres[0]) / 2 if len(centres) > 1 else 0.5
    return float(centres[0] - half), float(centres[-1] + half)


def runtime_ecdf(ecdf: pd.DataFrame, order: list[str], path: Path, cost: str, k: int = 10) -> None:
    """The runtime ECDF (`bench.analysis.runtime.runtime_ecdf`) of the first k rules of
    `order` (the overall ranking) with their bootstrap bands: one panel over every
    instance, and one per group where there are several."""
    if ecdf.empty:
        raise ValueError("no ranked problem has a known parameter count")
    panels = list(dict.fromkeys(ecdf["group"]))
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(7.5 * cols, 5 * rows), squeeze=False)
    shown = [name for name in order[:k] if name in set(ecdf["optimizer"])]
    for ax, group in zip(axes.flat, panels, strict=False):
        frame = ecdf[ecdf["group"] == group]
        for i, name in enumerate(shown):
            line = frame[frame["optimizer"] == name]
            color = COLORS[i % len(COLORS)]
            ax.step(
                line["budget"],
                line["share"],
                where="post",
                lw=1.8,
                ls="-" if i < len(COLORS) else "--",
                color=color,
                label=name,
            )
            ax.fill_between(
                line["budget"],
                line["low"],
                line["high"],
                step="post",
                color=color,
                alpha=0.12,
                lw=0,
            )
        ax.set(
            xscale="log",
            ylim=(-0.02, 1.02),
            title=str(group),
            xlabel=f"budget: {tuning.COST_LABELS[cost]} / (d + 1)",
            ylabel="share of (instance, lane) pairs reached",
        )
        ax.grid(True, which="both", alpha=0.3)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize="small", loc="upper left", framealpha=0.85)
    fig.suptitle(
        f"Runtime ECDF (COCO): evaluation lanes reaching each instance to stay, top {k} of the "
        "ranking; band: bootstrap 95% over problems",
        y=1.0,
    )
    fig.tight_layout()
    _save(fig, path)


def win_rate(rates: pd.DataFrame, path: Path, k: int = 20) -> None:
    """A heat map of the pairwise win rates (`bench.analysis.runtime.win_rates`) among the
    first k rules of its order: the row's share of wins against the column."""
    names = list(rates.index[:k])
    if len(names) < 2:
        raise ValueError("a win rate needs two rules")
    values = rates.loc[names, names].to_numpy(np.float64)
    size = max(5.0, 0.42 * len(names) + 2.0)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    image = ax.imshow(np.ma.masked_invalid(values), vmin=0, vmax=1, cmap="RdBu")
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize="small")
    ax.set_yticks(range(len(names)), names, fontsize="small")
    for (i, j), value in np.ndenumerate(values):
        if np.isfinite(value):
            text_color = "white" if abs(value - 0.5) > 0.3 else "black"
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6, color=text_color)
    fig.colorbar(image, ax=ax, shrink=0.8, label="share of instances the row wins")
    ax.set_title(
        f"Win rates, top {len(names)} of the ranking: row against column over the instances "
        "both can run\n(lower median cost wins; solved beats unsolved; ties count one half)"
    )
    _save(fig, path)
