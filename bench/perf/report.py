"""PERF.md and the perf plots, from the tidy rows of one `python -m bench.perf` run.

The prose is data: the sections of bench/perf/explanations.md, `str.format` templates that
`render` fills with the values computed here (this module decides which sections appear),
and the targets are bench/perf/targets.toml's (bench.perf.targets).
"""

import math
import re
from pathlib import Path
from string import Formatter
from typing import Any, cast

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench.perf.targets import TARGETS  # noqa: E402
from bench.results.files import write_atomic  # noqa: E402

EXPLANATIONS_FILE = Path(__file__).with_name("explanations.md")
_MARKER = re.compile(r"^<!-- section: ([a-z0-9_]+) -->$", re.MULTILINE)
Target = tuple[str, str, bool | None]  # (target, what this run measured, met?)


def load_sections(path: Path = EXPLANATIONS_FILE) -> dict[str, str]:
    """Section name -> template, in the file's order; the blank lines around a section are
    not part of it, and what precedes the first marker is the file's own comment."""
    parts = _MARKER.split(path.read_text())
    names = parts[1::2]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: a section is named twice in {names}")
    return {name: body.strip("\n") for name, body in zip(names, parts[2::2], strict=True)}


SECTIONS = load_sections()


def placeholders(template: str) -> set[str]:
    """The names of a template's `{placeholders}`."""
    return {field for _, field, _, _ in Formatter().parse(template) if field is not None}


def render(name: str, **values: object) -> str:
    """Section `name` of explanations.md, its placeholders filled from `values`: every
    placeholder, and nothing else, is given."""
    template = SECTIONS[name]
    expected = placeholders(template)
    if expected != set(values):
        raise ValueError(f"section {name!r} takes {sorted(expected)}, given {sorted(values)}")
    return template.format(**values)


def _rendered_from(text: str, name: str) -> bool:
    """Whether `text` is section `name` rendered with some values."""
    pattern = "".join(
        re.escape(literal) + ("" if field is None else ".*?")
        for literal, field, _, _ in Formatter().parse(SECTIONS[name])
    )
    return re.fullmatch(pattern, text, re.DOTALL) is not None


def _rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The frame's rows as dicts of Python values (a row's columns have mixed types)."""
    return cast(list[dict[str, Any]], frame.to_dict("records"))


def _size_label(n: int) -> str:
    """A parameter count as a target names it: 1e6 for 1,000,000."""
    exponent = round(math.log10(n))
    return f"1e{exponent}" if 10**exponent == n else f"{n:,}"


# Measured by hand (not by `make perf`): the one-loop Adam prototype under multi-output fusion.
def kernel_ratios(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (optimizer, layout, size) with ours and optax's step time and their ratio."""
    kernels = frame[frame.section == "kernel"]
    wide = kernels.pivot_table(
        index=["case", "layout", "size"], columns="impl", values="seconds", aggfunc="first"
    )
    fusions = kernels.pivot_table(
        index=["case", "layout", "size"], columns="impl", values="fusions", aggfunc="first"
    ).add_prefix("fusions_")
    wide = wide.join(fusions).reset_index()
    if "optax" not in wide:
        wide["optax"] = np.nan
    wide["ratio"] = wide["ours"] / wide["optax"]
    return wide


def _ms(seconds: float) -> str:
    return f"{1e3 * seconds:.3g}"


def _status(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "**missed**")


def _sweep(frame: pd.DataFrame, keyword: str) -> pd.DataFrame:
    sweeps = frame[(frame.section == "sweep") & frame.case.str.contains(keyword)]
    return sweeps.set_index("impl")


def sweep_ratios(frame: pd.DataFrame) -> pd.DataFrame:
    """Per problem: throughput of each way of running and our sweep's ratio to it."""
    sweeps = frame[frame.section == "sweep"]
    rows = []
    for case, group in sweeps.groupby("case", sort=False):
        by_impl = group.set_index("impl")
        ours = by_impl.loc["ours", "steps_per_second"]
        for impl, row in by_impl.iterrows():
            rows.append(
                {
                    "problem": case,
                    "impl": impl,
                    "lanes": int(row["lanes"]),
                    "steps": int(row["steps"]),
                    "seconds": row["seconds"],
                    "steps_per_second": row["steps_per_second"],
                    "ours_ratio": ours / row["steps_per_second"],
                }
            )
    return pd.DataFrame(rows)


def targets(frame: pd.DataFrame, facts: dict) -> list[Target]:
    """(target, what this run measured, met?) for each target of targets.toml."""
    result: list[Target] = []
    ratios = kernel_ratios(frame)
    parity = ratios[ratios["size"].isin(TARGETS.parity_sizes) & ratios["ratio"].notna()]
    if len(parity):
        # The index is kernel_ratios' RangeIndex, filtered.
        worst = parity.loc[cast(int, parity["ratio"].idxmax())]
        slow = parity[parity["ratio"] > TARGETS.parity_limit]
        listed = ", ".join(
            f"{r.case} ({r.layout}, {r.size:.0e}): {r.ratio:.2f}" for r in slow.itertuples()
        )
        name = render(
            "target_parity",
            limit=TARGETS.parity_limit,
            sizes=", ".join(_size_label(n) for n in TARGETS.parity_sizes),
        )
        measured = render(
            "target_parity_measured",
            within=len(parity) - len(slow),
            total=len(parity),
            worst=worst.ratio,
            case=worst.case,
            layout=worst.layout,
            size=worst["size"],
            median=parity["ratio"].median(),
            above=render("target_parity_above", kernels=listed) if listed else "",
        )
        result.append((name, measured, bool(len(slow) == 0)))
    adam = ratios[(ratios.case == "adam") & (ratios.layout == "flat")]
    adam = adam[adam["size"] == adam["size"].max()]
    stream = frame[(frame.section == "stream")].set_index("size")["gbps"]
    if len(adam) and not np.isnan(adam.iloc[0]["optax"]):
        row = adam.iloc[0]
        bound = 28 * row["size"] / (stream[row["size"]] * 1e9)
        speedup = row["optax"] / row["ours"]
        text = render(
            "target_adam_plain",
            speedup=speedup,
            ours=_ms(row["ours"]),
            optax=_ms(row["optax"]),
            fusions_ours=row["fusions_ours"],
            fusions_optax=row["fusions_optax"],
            bound=_ms(bound),
        )
        mof = frame[(frame.section == "kernel_mof") & (frame.case == "adam")]
        mof = mof[mof["size"] == row["size"]].set_index("impl")
        if {"fused", "optax"} <= set(mof.index):
            # Judged against optax compiled with the same flag, in the same process.
            fused, optax_mof = mof.loc["fused"], mof.loc["optax"]
            speedup = optax_mof.seconds / fused.seconds
            text = render(
                "target_adam_fused",
                speedup=speedup,
                fused=_ms(fused.seconds),
                fusions=fused.fusions,
                optax_mof=_ms(optax_mof.seconds),
                default_ratio=row["optax"] / fused.seconds,
                optax=_ms(row["optax"]),
                plain=text,
            )
        name = render("target_adam", size=row["size"], speedup=TARGETS.adam_speedup)
        result.append((name, text, bool(speedup >= TARGETS.adam_speedup)))
    donation = frame[frame.section == "kernel_no_donation"]
    if len(donation):
        donated = frame[(frame.section == "kernel") & (frame.layout == "flat")]
        parts = []
        for r in _rows(donation):
            with_donation = donated[
                (donated.case == r["case"])
                & (donated.impl == r["impl"])
                & (donated["size"] == r["size"])
            ]["seconds"]
            parts.append(
                render(
                    "donation_kernel",
                    case=r["case"],
                    impl=r["impl"],
                    donated=_ms(float(with_donation.iloc[0])),
                    not_donated=_ms(r["seconds"]),
                )
            )
        measured = render("target_donation_measured", kernels="; ".join(parts))
        result.append((render("target_donation"), measured, None))
    sweeps = sweep_ratios(frame)

    def sweep_target(problem: str, baseline: str, goal: float, name: str) -> Target:
        """The ratio of `run_sweep(optimize=True)` (judged) and of make bench's fast compile."""
        rows = sweeps[sweeps.problem == problem].set_index("impl")["steps_per_second"]
        fast = rows["ours"] / rows[baseline]
        if "ours_optimize" not in rows.index:
            return (name, f"{fast:,.1f}x", bool(fast >= goal))
        optimized = rows["ours_optimize"] / rows[baseline]
        text = render("target_sweep_optimize", optimized=optimized, fast=fast)
        return (name, text, bool(optimized >= goal))

    for keyword, goal in TARGETS.sweep_targets.items():
        rows = sweeps[sweeps.problem.str.contains(keyword) & (sweeps.impl == "optax_loop")]
        if len(rows):
            problem = str(rows.iloc[0]["problem"])
            name = render("target_sweep_loop", goal=goal, problem=problem)
            result.append(sweep_target(problem, "optax_loop", goal, name))
    torch_rows = sweeps[sweeps.impl == "torch"]
    for problem in map(str, torch_rows.problem):
        if any(m in problem for m in TARGETS.model_keywords):  # the model families: not judged
            rows = sweeps[sweeps.problem == problem].set_index("impl")["steps_per_second"]
            ratio = rows["ours"] / rows["torch"]
            result.append((render("target_torch_model", problem=problem), f"{ratio:,.1f}x", None))
            continue
        name = render("target_sweep_torch", goal=TARGETS.torch_target, problem=problem)
        result.append(sweep_target(problem, "torch", TARGETS.torch_target, name))
    if not len(torch_rows):
        name = render("target_torch_absent", goal=TARGETS.torch_target)
        result.append((name, render("torch_absent"), None))
    compiled = frame[frame.section == "compile"]
    if len(compiled):
        share = compiled.compile_seconds.sum() / (compiled.compile_seconds + compiled.seconds).sum()
        text = render(
            "target_compile_measured",
            share=share,
            programs=len(compiled),
            compile_seconds=compiled.compile_seconds.sum(),
            run_seconds=compiled.seconds.sum(),
        )
        recorded = facts.get("bench_runs_csv")
        if recorded:
            # The whole of make bench, when its runs.csv.gz is at hand, is what the target means.
            share = recorded["share"]
            text = render(
                "target_compile_recorded",
                share=share,
                pairs=recorded["pairs"],
                compile_seconds=recorded["compile_seconds"],
                run_seconds=recorded["run_seconds"],
                measured=text,
            )
        name = render("target_compile", share=TARGETS.compile_share)
        result.append((name, text, bool(share <= TARGETS.compile_share)))
    return result


def _table(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def kernel_table(frame: pd.DataFrame, size: int) -> str:
    ratios = kernel_ratios(frame)
    kernels = frame[(frame.section == "kernel") & (frame["size"] == size)]
    ours = kernels[kernels.impl == "ours"].set_index(["case", "layout"])
    rows = []
    for r in _rows(ratios[ratios["size"] == size]):
        mine = ours.loc[(r["case"], r["layout"])]
        rows.append(
            {
                "optimizer": r["case"],
                "layout": r["layout"],
                "ours ms": _ms(r["ours"]),
                "optax ms": "" if np.isnan(r["optax"]) else _ms(r["optax"]),
                "ours/optax": "" if np.isnan(r["ratio"]) else f"{r['ratio']:.2f}",
                "ours GB/s": f"{mine.gbps:.1f}",
                "of stream": f"{mine.stream_fraction:.2f}",
                "fusions ours/optax": f"{r['fusions_ours']:.0f}/"
                + ("" if np.isnan(r["optax"]) else f"{r['fusions_optax']:.0f}"),
            }
        )
    return _table(pd.DataFrame(rows))


def torch_kernel_section(frame: pd.DataFrame) -> list[str]:
    """Our update kernels against the PyTorch classes they are proven equal to
    (bench.perf.torch_kernels): one row per rule and size, sorted by rule."""
    timed = frame[frame.section == "torch_kernel"]
    if timed.empty:
        return []
    wide = timed.pivot_table(
        index=["case", "layout", "size"], columns="impl", values="seconds", aggfunc="first"
    ).reset_index()
    wide = wide.sort_values(["case", "size"])
    ratio = wide["ours"] / wide["torch"]
    references = timed.groupby("case")["reference"].first()
    table = pd.DataFrame(
        {
            "rule": wide["case"],
            "reference": wide["case"].map(references),
            "layout": wide["layout"],
            "size": wide["size"].map(lambda n: f"{n:.0e}"),
            "ours ms": wide["ours"].map(_ms),
            "torch ms": wide["torch"].map(_ms),
            "ours/torch": ratio.map(lambda r: f"{r:.2f}"),
        }
    )
    text = render(
        "torch_kernels",
        rules=wide["case"].nunique(),
        median=ratio.median(),
        faster=int((ratio < 1).sum()),
        pairs=len(wide),
        table=_table(table),
    )
    return ["", text]


def multi_output_fusion_section(frame: pd.DataFrame) -> list[str]:
    """Default XLA flags against XLA:CPU multi-output fusion, same kernels, same size."""
    mof = frame[frame.section == "kernel_mof"]
    if not len(mof):
        return []
    default = frame[(frame.section == "kernel") & (frame.layout == "flat")]
    rows = []
    for r in _rows(mof):
        base = default[
            (default.case == r["case"])
            & (default.impl == r["impl"])
            & (default["size"] == r["size"])
        ]
        rows.append(
            {
                "optimizer": r["case"],
                "impl": r["impl"],
                "parameters": f"{r['size']:.0e}",
                "fusions default": f"{base.fusions.iloc[0]:.0f}" if len(base) else "",
                "ms default": _ms(float(base.seconds.iloc[0])) if len(base) else "",
                "fusions MOF": f"{r['fusions']:.0f}",
                "ms MOF": _ms(r["seconds"]),
            }
        )
    return ["", render("multi_output_fusion", table=_table(pd.DataFrame(rows)))]


def parity_explanations(frame: pd.DataFrame) -> list[str]:
    """Each kernel above the parity limit, with what its fused-loop count says about it."""
    ratios = kernel_ratios(frame)
    slow = ratios[
        ratios["size"].isin(TARGETS.parity_sizes) & (ratios["ratio"] > TARGETS.parity_limit)
    ]
    lines = []
    for r in _rows(slow):
        ours, optax = r["fusions_ours"], r["fusions_optax"]
        why = render(
            "parity_more_loops" if ours > optax else "parity_same_loops", ours=ours, optax=optax
        )
        lines.append(
            render(
                "parity_kernel",
                case=r["case"],
                layout=r["layout"],
                size=r["size"],
                ratio=r["ratio"],
                why=why,
            )
        )
    return lines


def analysis(frame: pd.DataFrame, judged: list[Target]) -> list[str]:
    """Why the missed targets are missed, from the profile evidence gathered in this run."""
    lines = ["", render("analysis"), ""]
    parity = parity_explanations(frame)
    if parity:
        lines += [render("parity_slow", kernels="\n".join(parity)), ""]
    adam_ok = [ok for name, _, ok in judged if _rendered_from(name, "target_adam")]
    lines += [render("adam_one_pass", status="met" if adam_ok and adam_ok[0] else "missed"), ""]
    compiled = frame[frame.section == "compile"]
    if len(compiled):
        share = compiled.compile_seconds.sum() / (compiled.compile_seconds + compiled.seconds).sum()
        lines += [render("compile_analysis", share=share), ""]
    sweeps = sweep_ratios(frame)
    if (sweeps.impl == "ours_optimize").any():
        by = sweeps.set_index(["problem", "impl"])["seconds"]
        speedups = ", ".join(
            f"{p} {by[p, 'ours'] / by[p, 'ours_optimize']:.1f}x"
            for p in sweeps.problem.unique()
            if (p, "ours_optimize") in by.index
        )
        lines += [render("optimize_level", speedups=speedups), ""]
    sweep_targets = ("target_sweep_loop", "target_sweep_torch")
    missed = [
        name
        for name, _, ok in judged
        if ok is False and any(_rendered_from(name, section) for section in sweep_targets)
    ]
    if missed and (sweeps.impl == "bare_vmap").any():
        by = sweeps.set_index(["problem", "impl"])["seconds"]
        floors = [
            render(
                "sweep_floor",
                problem=p,
                ours_optimize=by[p, "ours_optimize"],
                bare_vmap=by[p, "bare_vmap"],
            )
            for p in sweeps.problem.unique()
            if (p, "ours_optimize") in by.index and (p, "bare_vmap") in by.index
        ]
        ops = frame[frame.section == "elementwise"].set_index("case")["seconds"]
        log1p = (
            " " + render("log1p_cost", ratio=ops["log1p"] / ops["exp"])
            if {"exp", "log1p"} <= set(ops.index)
            else ""
        )
        text = render(
            "sweeps_below", missed="; ".join(missed), floors="; ".join(floors), log1p=log1p
        )
        lines += [text, ""]
    models = [name for name in missed if any(m in name for m in TARGETS.model_keywords)]
    if models:
        rates = sweeps.set_index(["problem", "impl"])["steps_per_second"]
        floors = [
            render(
                "model_floor",
                problem=p,
                sweep=rates[p, "ours"] / rates[p, "optax_loop"],
                floor=rates[p, "bare_vmap"] / rates[p, "optax_loop"],
            )
            for p in sweeps.problem.unique()
            if any(m in p for m in TARGETS.model_keywords)
            and {(p, "ours"), (p, "bare_vmap"), (p, "optax_loop")} <= set(rates.index)
        ]
        lines += [render("models_below", missed="; ".join(models), floors="; ".join(floors)), ""]
    lines += [render("fairness")]
    return lines


def markdown(frame: pd.DataFrame, notes: list[str], facts: dict) -> str:
    # The header shows the facts its template names; no XLA flags read "(none)".
    header = {key: facts[key] for key in placeholders(SECTIONS["header"]) - {"xla_flags"}}
    lines = [render("header", **header, xla_flags=facts["xla_flags"] or "(none)")]
    judged = targets(frame, facts)
    lines += [f"| {t} | {m} | {_status(ok)} |" for t, m, ok in judged]
    stream = frame[frame.section == "stream"]
    bandwidth = pd.DataFrame(
        {
            "parameters": [f"{n:.0e}" for n in stream["size"]],
            "ms": [_ms(s) for s in stream.seconds],
            "GB/s": [f"{g:.1f}" for g in stream.gbps],
        }
    )
    lines += ["", render("stream", table=_table(bandwidth))]
    lines += ["", render("kernels")]
    for size in (1_000_000, 10_000_000):
        if (frame["size"] == size).any() and (frame.section == "kernel").any():
            lines += ["", render("kernel_size", size=size, table=kernel_table(frame, size))]
    lines += torch_kernel_section(frame)
    if notes:
        lines += ["", render("notes", notes="\n".join(f"- {n}" for n in notes))]
    lines += multi_output_fusion_section(frame)
    sweeps = sweep_ratios(frame)
    if len(sweeps):
        shown = sweeps.assign(
            seconds=sweeps.seconds.map(lambda s: f"{s:.4g}"),
            steps_per_second=sweeps.steps_per_second.map(lambda s: f"{s:,.0f}"),
            ours_ratio=sweeps.ours_ratio.map(lambda r: f"{r:,.1f}"),
        ).rename(columns={"ours_ratio": "ours / this", "steps_per_second": "steps/s"})
        lines += ["", render("sweeps", table=_table(shown))]
    lanes = frame[frame.section == "lanes"]
    if len(lanes):
        shown = lanes.assign(
            steps=lanes.steps.astype(int),
            seconds=lanes.seconds.map(lambda s: f"{s:.4g}"),
            compile_seconds=lanes.compile_seconds.map(lambda s: f"{s:.2f}"),
            steps_per_second=lanes.steps_per_second.map(lambda s: f"{s:,.0f}"),
        )[["case", "lanes", "steps", "seconds", "compile_seconds", "steps_per_second"]]
        lines += ["", render("lanes", table=_table(shown))]
    compiled = frame[frame.section == "compile"]
    if len(compiled):
        shown = compiled.assign(
            compile_seconds=compiled.compile_seconds.map(lambda s: f"{s:.2f}"),
            seconds=compiled.seconds.map(lambda s: f"{s:.3f}"),
            share=(compiled.compile_seconds / (compiled.compile_seconds + compiled.seconds)).map(
                lambda s: f"{s:.0%}"
            ),
        )[["case", "lanes", "compile_seconds", "seconds", "share"]]
        lines += [
            "",
            render("compile", table=_table(shown.rename(columns={"seconds": "run_seconds"}))),
        ]
    cache = frame[frame.section == "cache"]
    if len(cache):
        wide = cache.pivot_table(index="case", columns="impl", values="compile_seconds")
        table = pd.DataFrame(
            {
                "pair": wide.index,
                "cold s": wide["cache_cold"].map(lambda s: f"{s:.2f}"),
                "warm s": wide["cache_warm"].map(lambda s: f"{s:.2f}"),
                "cold / warm": (wide["cache_cold"] / wide["cache_warm"]).map(lambda s: f"{s:.1f}"),
            }
        )
        lines += ["", render("cache", table=_table(table))]
    lines += suite_section(frame)
    lines += analysis(frame, judged)
    return "\n".join(lines) + "\n"


def suite_section(frame: pd.DataFrame) -> list[str]:
    """The whole runs of bench.perf.suite_runs: cold against warm, one process against two
    shards, and the cold run's compile share."""
    suite = frame[frame.section == "suite"]
    if suite.empty:
        return []

    def value(case: str, impl: str, column: str = "seconds") -> float:
        row = suite[(suite.case == case) & (suite.impl == impl)]
        return float(row[column].iloc[0])

    def from_cache(impl: str) -> str:
        """Pairs served whole by the sweep cache, of the run's pairs."""
        if "units" not in suite or pd.isna(value("cache", impl, "units")):
            return "n/a"  # a perf.csv written before the count was kept
        return f"{value('cache', impl, 'units'):.0f} of {value('cache', impl, 'pairs'):.0f}"

    runs = [("cache", "cold"), ("cache", "warm")]
    runs += [("shards", "one_process"), ("shards", "two_shards")]
    compiled = value("cache", "cold", "compile_seconds")
    table = pd.DataFrame(
        {
            "run": ["cold", "warm", "one process", "two shards"],
            "wall s": [f"{value(*run):.1f}" for run in runs],
            "pairs from the cache": [*map(from_cache, ("cold", "warm")), "", ""],
        }
    )
    return [
        "",
        render(
            "suite",
            table=_table(table),
            cold_over_warm=value("cache", "cold") / value("cache", "warm"),
            shards_over_one=value("shards", "two_shards") / value("shards", "one_process"),
            share=compiled / (compiled + value("cache", "cold", "run_seconds")),
        ),
    ]


def _save(fig, path: Path) -> None:
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)


def plots(frame: pd.DataFrame, out: Path) -> None:
    """perf_kernels.png, perf_scaling.png and perf_sweeps.png under `out`."""
    kernels = frame[frame.section == "kernel"]
    stream = frame[frame.section == "stream"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for ax, layout in zip(axes[:2], ("flat", "pytree"), strict=True):
        for case, color in (("sgd", "C0"), ("adam", "C1")):
            for impl, style in (("ours", "-o"), ("optax", "--s")):
                rows = kernels[(kernels.case == case) & (kernels.impl == impl)]
                rows = rows[rows.layout == layout]
                ax.loglog(
                    rows["size"], 1e3 * rows.seconds, style, color=color, label=f"{case} {impl}"
                )
        ax.loglog(stream["size"], 1e3 * stream.seconds, ":", color="k", label="stream (8 B/param)")
        ax.set(title=f"update kernel, {layout}", xlabel="parameters", ylabel="ms per step")
        ax.legend(fontsize=8)
    ratios = kernel_ratios(frame).dropna(subset=["ratio"])
    for layout, marker in (("flat", "o"), ("pytree", "x")):
        rows = ratios[ratios.layout == layout]
        axes[2].scatter(rows["size"], rows.ratio, marker=marker, alpha=0.6, label=layout)
    axes[2].axhline(1.0, color="k", lw=0.8)
    axes[2].axhline(
        TARGETS.parity_limit, color="r", lw=0.8, ls="--", label=f"{TARGETS.parity_limit}"
    )
    axes[2].set(xscale="log", title="ours / optax step time, every optimizer", xlabel="parameters")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    _save(fig, out / "perf_kernels.png")

    lanes = frame[frame.section == "lanes"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for case, rows in lanes.groupby("case"):
        axes[0].loglog(rows.lanes, rows.seconds, "-o", label=case)
        first = rows.iloc[0]
        axes[0].loglog(rows.lanes, first.seconds * rows.lanes / first.lanes, ":", color="gray")
    axes[0].set(title="our sweep: run time vs lanes (dotted: linear)", xlabel="lanes", ylabel="s")
    axes[0].legend(fontsize=8)
    ours = kernels[(kernels.impl == "ours") & (kernels.layout == "flat")]
    for _, rows in ours.groupby("case"):
        axes[1].loglog(rows["size"], 1e3 * rows.seconds, "-", lw=0.8, alpha=0.6)
    axes[1].loglog(stream["size"], 1e3 * stream.seconds, ":", color="k", lw=2, label="stream")
    axes[1].set(
        title="update kernels (all optimizers, flat) vs parameters",
        xlabel="parameters",
        ylabel="ms per step",
    )
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    _save(fig, out / "perf_scaling.png")

    sweeps = sweep_ratios(frame)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    if len(sweeps):
        wide = sweeps.pivot_table(index="problem", columns="impl", values="steps_per_second")
        wide.plot.bar(ax=ax, logy=True, rot=0)
    ax.set(title="Adam steps per second, all lanes", ylabel="steps / s", xlabel="")
    fig.tight_layout()
    _save(fig, out / "perf_sweeps.png")
