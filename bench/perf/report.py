"""PERF.md and the perf plots, from the tidy rows of one `python -m bench.perf.run` run."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench.results.files import write_atomic  # noqa: E402

PARITY_SIZES = (1_000_000, 10_000_000)
PARITY_LIMIT = 1.05  # ours / optax step time
ADAM_SPEEDUP = 1.3  # optax / ours at 1e7
# ours / optax_loop throughput, by a word of the case's problem name
SWEEP_TARGETS = {"rosenbrock": 1000.0, "logistic": 20.0, "cnn_digits": 3.0, "transformer": 3.0}
MODEL_KEYWORDS = ("cnn_digits", "transformer")  # the model families' cases
TORCH_TARGET = 10.0  # ours / torch throughput
COMPILE_SHARE = 1 / 3


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


def targets(frame: pd.DataFrame, facts: dict) -> list[tuple[str, str, bool | None]]:
    """(target, what this run measured, met?) for each target of the performance issue."""
    result = []
    ratios = kernel_ratios(frame)
    parity = ratios[ratios["size"].isin(PARITY_SIZES) & ratios["ratio"].notna()]
    if len(parity):
        worst = parity.loc[parity["ratio"].idxmax()]
        slow = parity[parity["ratio"] > PARITY_LIMIT]
        listed = ", ".join(
            f"{r.case} ({r.layout}, {r.size:.0e}): {r.ratio:.2f}" for r in slow.itertuples()
        )
        result.append(
            (
                f"every update no slower than optax's: ours/optax <= {PARITY_LIMIT} at 1e6, 1e7",
                f"{len(parity) - len(slow)} of {len(parity)} within; worst {worst.ratio:.2f} "
                f"({worst.case}, {worst.layout}, {worst['size']:.0e}); median "
                f"{parity['ratio'].median():.2f}" + (f"; above: {listed}" if listed else ""),
                bool(len(slow) == 0),
            )
        )
    adam = ratios[(ratios.case == "adam") & (ratios.layout == "flat")]
    adam = adam[adam["size"] == adam["size"].max()]
    stream = frame[(frame.section == "stream")].set_index("size")["gbps"]
    if len(adam) and not np.isnan(adam.iloc[0]["optax"]):
        row = adam.iloc[0]
        bound = 28 * row["size"] / (stream[row["size"]] * 1e9)
        speedup = row["optax"] / row["ours"]
        text = (
            f"plain rule: {speedup:.2f}x (ours {_ms(row['ours'])} ms, optax "
            f"{_ms(row['optax'])} ms, fusions {row['fusions_ours']:.0f} and "
            f"{row['fusions_optax']:.0f}); bound {_ms(bound)} ms (28 B/param at the "
            "streaming bandwidth)"
        )
        mof = frame[(frame.section == "kernel_mof") & (frame.case == "adam")]
        mof = mof[mof["size"] == row["size"]].set_index("impl")
        if {"fused", "optax"} <= set(mof.index):
            # Judged against optax compiled with the same flag, in the same process.
            fused, optax_mof = mof.loc["fused"], mof.loc["optax"]
            speedup = optax_mof.seconds / fused.seconds
            text = (
                f"{speedup:.2f}x with `fused_step` and multi-output fusion: fused "
                f"{_ms(fused.seconds)} ms ({fused.fusions:.0f} loop) against optax "
                f"{_ms(optax_mof.seconds)} ms under the same flag "
                f"({row['optax'] / fused.seconds:.2f}x optax's {_ms(row['optax'])} ms with "
                "default flags, timed in the other process); " + text
            )
        result.append(
            (
                f"Adam at {row['size']:.0e} at least {ADAM_SPEEDUP}x faster than optax",
                text,
                bool(speedup >= ADAM_SPEEDUP),
            )
        )
    donation = frame[frame.section == "kernel_no_donation"]
    if len(donation):
        donated = frame[(frame.section == "kernel") & (frame.layout == "flat")]
        parts = []
        for r in donation.itertuples():
            with_donation = donated[
                (donated.case == r.case) & (donated.impl == r.impl) & (donated["size"] == r.size)
            ]["seconds"]
            parts.append(
                f"{r.case}/{r.impl} {_ms(with_donation.iloc[0])} ms donated vs "
                f"{_ms(r.seconds)} ms not"
            )
        result.append(
            (
                "buffers donated wherever the runner or a documented helper owns them",
                "kernels here donate params and state; the runner's scan carries them "
                "in place (no arrays cross the program boundary per step). " + "; ".join(parts),
                None,
            )
        )
    sweeps = sweep_ratios(frame)

    def sweep_target(problem: str, baseline: str, goal: float, name: str):
        """The ratio of `run_sweep(optimize=True)` (judged) and of make bench's level 0."""
        rows = sweeps[sweeps.problem == problem].set_index("impl")["steps_per_second"]
        level0 = rows["ours"] / rows[baseline]
        if "ours_optimize" not in rows.index:
            return (name, f"{level0:,.1f}x", bool(level0 >= goal))
        optimized = rows["ours_optimize"] / rows[baseline]
        text = f"{optimized:,.1f}x with `optimize=True`; {level0:,.1f}x at make bench's level 0"
        return (name, text, bool(optimized >= goal))

    for keyword, goal in SWEEP_TARGETS.items():
        rows = sweeps[sweeps.problem.str.contains(keyword) & (sweeps.impl == "optax_loop")]
        if len(rows):
            problem = rows.iloc[0]["problem"]
            name = f"vmapped sweep >= {goal:.0f}x optax Python loop, {problem}"
            result.append(sweep_target(problem, "optax_loop", goal, name))
    torch_rows = sweeps[sweeps.impl == "torch"]
    for r in torch_rows.itertuples():
        if any(m in r.problem for m in MODEL_KEYWORDS):  # the model families: no target set
            rows = sweeps[sweeps.problem == r.problem].set_index("impl")["steps_per_second"]
            ratio = rows["ours"] / rows["torch"]
            name = f"vmapped sweep against torch.optim, {r.problem}"
            result.append((name, f"{ratio:,.1f}x", None))
            continue
        name = f"vmapped sweep >= {TORCH_TARGET:.0f}x torch.optim, {r.problem}"
        result.append(sweep_target(r.problem, "torch", TORCH_TARGET, name))
    if not len(torch_rows):
        result.append((f"vmapped sweep >= {TORCH_TARGET:.0f}x torch.optim", "torch absent", None))
    compiled = frame[frame.section == "compile"]
    if len(compiled):
        share = compiled.compile_seconds.sum() / (compiled.compile_seconds + compiled.seconds).sum()
        text = (
            f"{share:.0%} over {len(compiled)} of make bench's programs measured here "
            f"({compiled.compile_seconds.sum():.0f} s compile, {compiled.seconds.sum():.1f} s run)"
        )
        recorded = facts.get("bench_runs_csv")
        if recorded:
            # The whole of make bench, when its runs.csv.gz is at hand, is what the target means.
            share = recorded["share"]
            text = (
                f"{share:.0%} in the last make bench's runs.csv.gz ({recorded['pairs']} pairs, "
                f"{recorded['compile_seconds']:.0f} s compile, {recorded['run_seconds']:.0f} s "
                f"run, summed over its parallel jobs); " + text
            )
        result.append(
            (
                f"compile time at most {COMPILE_SHARE:.0%} of make bench",
                text,
                bool(share <= COMPILE_SHARE),
            )
        )
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
    for r in ratios[ratios["size"] == size].itertuples():
        mine = ours.loc[(r.case, r.layout)]
        rows.append(
            {
                "optimizer": r.case,
                "layout": r.layout,
                "ours ms": _ms(r.ours),
                "optax ms": "" if np.isnan(r.optax) else _ms(r.optax),
                "ours/optax": "" if np.isnan(r.ratio) else f"{r.ratio:.2f}",
                "ours GB/s": f"{mine.gbps:.1f}",
                "of stream": f"{mine.stream_fraction:.2f}",
                "fusions ours/optax": f"{r.fusions_ours:.0f}/"
                + ("" if np.isnan(r.optax) else f"{r.fusions_optax:.0f}"),
            }
        )
    return _table(pd.DataFrame(rows))


def multi_output_fusion_section(frame: pd.DataFrame) -> list[str]:
    """Default XLA flags against XLA:CPU multi-output fusion, same kernels, same size."""
    mof = frame[frame.section == "kernel_mof"]
    if not len(mof):
        return []
    default = frame[(frame.section == "kernel") & (frame.layout == "flat")]
    rows = []
    for r in mof.itertuples():
        base = default[
            (default.case == r.case) & (default.impl == r.impl) & (default["size"] == r.size)
        ]
        rows.append(
            {
                "optimizer": r.case,
                "impl": r.impl,
                "parameters": f"{r.size:.0e}",
                "fusions default": f"{base.fusions.iloc[0]:.0f}" if len(base) else "",
                "ms default": _ms(base.seconds.iloc[0]) if len(base) else "",
                "fusions MOF": f"{r.fusions:.0f}",
                "ms MOF": _ms(r.seconds),
            }
        )
    return [
        "",
        "### XLA:CPU multi-output fusion and `fused_step`",
        "",
        "The flat kernels compiled in a second process with "
        "`XLA_FLAGS=--xla_backend_extra_options=xla_cpu_use_multi_output_fusion` "
        "(off by default): XLA may then merge sibling loops that read the same arrays "
        "into one loop with several outputs. `fused` is our rule in "
        "`optimizers.fused_step`, which makes every output of the step a sibling (see "
        "its docstring), so the whole step becomes one loop. The 'default' columns come "
        "from the first process: compare them with the MOF columns by fusion count more "
        "than by milliseconds.",
        "",
        _table(pd.DataFrame(rows)),
    ]


def parity_explanations(frame: pd.DataFrame) -> list[str]:
    """Each kernel above the parity limit, with what its fused-loop count says about it."""
    ratios = kernel_ratios(frame)
    slow = ratios[ratios["size"].isin(PARITY_SIZES) & (ratios["ratio"] > PARITY_LIMIT)]
    lines = []
    for r in slow.itertuples():
        if r.fusions_ours > r.fusions_optax:
            why = (
                f"ours launches {r.fusions_ours:.0f} array loops, optax {r.fusions_optax:.0f}: "
                "the rule's formulation makes extra passes; writing it so that XLA fuses it "
                "as optax's does would close it"
            )
        else:
            why = (
                f"same or fewer loops ({r.fusions_ours:.0f} vs {r.fusions_optax:.0f}): the "
                "programs stream the same data, so the gap is timing noise on the shared "
                "machine (see the load average) or a costlier element-wise expression"
            )
        lines.append(f"- {r.case} ({r.layout}, {r.size:.0e}): {r.ratio:.2f}; {why}.")
    return lines


def analysis(frame: pd.DataFrame, judged: list[tuple[str, str, bool | None]]) -> list[str]:
    """Why the missed targets are missed, from the profile evidence gathered in this run."""
    lines = ["", "## Where a target is missed, and why", ""]
    parity = parity_explanations(frame)
    if parity:
        lines += ["### Kernels slower than optax's", "", *parity, ""]
    adam_ok = [ok for name, _, ok in judged if name.startswith("Adam")]
    adam_status = "met in this run" if adam_ok and adam_ok[0] else "missed in this run"
    lines += [
        "### Adam in one pass",
        "",
        f"This target is {adam_status} with `optimizers.fused_step` under multi-output "
        "fusion; the plain rule is as fast as optax's and no faster. Both plain Adam "
        "kernels compile "
        "to the same three array loops (fusion counts above): `m <- b1 m + (1 - b1) g` "
        "(reads m, g; writes m), the same for v, then `p <- p - lr mhat / (sqrt(vhat) + "
        "eps)` reading p and the new m and v: 40 bytes per parameter instead of the 28 of "
        "one pass. XLA:CPU emits one loop per output array, and its multi-output fusion "
        "(off by default) merges sibling loops only, never a producer into its consumer, "
        "so even with the flag the parameter loop, which consumes the new moments, stays "
        "apart (two loops in the table above).",
        "",
        "`fused_step` evaluates the rule a second time, behind an optimization barrier, "
        "for the parameter update: every output then reads only the old params, state and "
        "gradient, all loops are siblings, and under the flag XLA emits a single loop "
        "(28 bytes per parameter). The values are the plain step's, bit for bit "
        "(tests/test_fused.py, also against optax over 300 float32 steps). Without the "
        "flag the same program is slower than the plain one (XLA copies the old state it "
        "still reads), so `fused_step` warns there, and the plain rules keep optax's form.",
        "",
        "Tried before and not adopted, at 1e7 parameters, float32, on the idle 2-core "
        "machine (optax 8-12 ms there): (p, m, v) stacked in one donated (3, n) or (n, 3) "
        "array gives one output, but XLA cannot update it in place and adds a full copy "
        "(46 and 67 ms); cache blocking, a `fori_loop` over blocks of 2^12 to 2^18 "
        "elements with `dynamic_update_slice`, keeps every value but costs 0.46 to 30 s, "
        "as XLA:CPU copies the whole moment buffers in each iteration.",
        "",
    ]
    compiled = frame[frame.section == "compile"]
    if len(compiled):
        share = compiled.compile_seconds.sum() / (compiled.compile_seconds + compiled.seconds).sum()
        lines += [
            "### Compile time",
            "",
            f"`make bench` builds one program per (problem, optimizer) pair and most run in "
            f"tens of milliseconds, so compiling is {share:.0%} of the measured pairs' time. "
            "The runner already compiles for a fast compile (bench/runner.py: LLVM level 0, "
            "XLA:CPU's loop emitters, one LLVM module per program: about 4x faster than "
            "XLA's defaults), traces each problem's loss and gradient once for all "
            "optimizers, and has one copy of them per program. What is left is about "
            "0.1-0.3 s per program, half of it tracing and lowering in Python (which holds "
            "the GIL, so parallel jobs do not overlap it) and half XLA. The persistent "
            "compilation cache (table above) turns a compile into a load on the second run "
            "of the same programs: it closes the gap for repeated runs (CI with a kept "
            "cache folder, a second `make bench`) but not for a first run from a fresh "
            "clone. Closing that needs fewer programs: one program for all optimizers "
            "sharing a state shape, or problems of equal shapes batched into one program.",
            "",
        ]
    sweeps = sweep_ratios(frame)
    if (sweeps.impl == "ours_optimize").any():
        by = sweeps.set_index(["problem", "impl"])["seconds"]
        slowdown = ", ".join(
            f"{p} {by[p, 'ours'] / by[p, 'ours_optimize']:.1f}x"
            for p in sweeps.problem.unique()
            if (p, "ours_optimize") in by.index
        )
        lines += [
            "### Sweeps and the runner's optimisation level",
            "",
            "By default the runner compiles at `xla_backend_optimization_level` 0 "
            "(bench/runner.py): `make bench` is hundreds of short sweeps, and there the "
            "compile is the cost. `run_sweep(..., optimize=True)` (command line "
            "`--optimize`, suite.toml `optimize = true`) keeps XLA's default level; "
            f"those sweeps (row `ours_optimize`) run faster by: {slowdown}, for the compile "
            "times in perf.csv. Level 0 leaves the vmapped matrix products and the scan "
            "loop unoptimised, which costs most on the data-set problems. The sweep targets "
            "above are judged with `optimize=True`, the setting meant for long sweeps; "
            "make bench's level-0 ratios stand beside them.",
            "",
        ]
    missed = [name for name, _, ok in judged if "vmapped sweep" in name and ok is False]
    if missed and (sweeps.impl == "bare_vmap").any():
        by = sweeps.set_index(["problem", "impl"])["seconds"]
        floors = [
            f"{p}: ours_optimize {by[p, 'ours_optimize']:.3g} s, "
            f"bare_vmap {by[p, 'bare_vmap']:.3g} s"
            for p in sweeps.problem.unique()
            if (p, "ours_optimize") in by.index and (p, "bare_vmap") in by.index
        ]
        ops = frame[frame.section == "elementwise"].set_index("case")["seconds"]
        log1p = (
            f" (here {ops['log1p'] / ops['exp']:.1f}x the time of an `exp`, same array)"
            if {"exp", "log1p"} <= set(ops.index)
            else ""
        )
        lines += [
            "### Sweeps below their target",
            "",
            f"Missed: {'; '.join(missed)}. The sweep against its floor, the same lanes with "
            f"nothing recorded ({'; '.join(floors)}): where the two are close, the runner "
            "is not the gap. The floor is the problem's own arithmetic: on the logistic "
            "regression the loss's element-wise `log1p(exp(-|z|))` over 512 lanes x 1,000 "
            "examples per step, on the MLP every lane's own small matrix products, which "
            "vmap batches but cannot share. The one-run baselines spend most of each step "
            "on dispatch (tens of microseconds in a Python loop, hundreds for torch), not "
            "arithmetic, so the ratio is set by the machine's arithmetic rate against that "
            f"overhead. What would close it: a faster element-wise `log1p` in XLA:CPU{log1p}, "
            "or more cores: the lanes are independent.",
            "",
        ]
    models = [name for name in missed if any(m in name for m in MODEL_KEYWORDS)]
    if models:
        rates = sweeps.set_index(["problem", "impl"])["steps_per_second"]
        floors = [
            f"{p}: the sweep {rates[p, 'ours'] / rates[p, 'optax_loop']:.2f}x the loop, "
            f"its floor {rates[p, 'bare_vmap'] / rates[p, 'optax_loop']:.2f}x"
            for p in sweeps.problem.unique()
            if any(m in p for m in MODEL_KEYWORDS)
            and {(p, "ours"), (p, "bare_vmap"), (p, "optax_loop")} <= set(rates.index)
        ]
        lines += [
            "### The model families below their target",
            "",
            f"Missed: {'; '.join(models)}. A step of one trial of these networks is already "
            "hundreds of microseconds of arithmetic (minibatch matrix products, the "
            "convolutions as products over patches, attention), so the per-trial loop's "
            "dispatch (tens of microseconds a step) is a small part of its time; vmap turns "
            "the lanes' products, each with its own weights, into a batch of as many small "
            "products, which XLA:CPU runs at about the rate of the loop's. The floor "
            "(`bare_vmap`: the same lanes as one jitted `vmap(scan)` of optax steps, "
            f"nothing recorded) bounds what any sweep reaches here: {'; '.join(floors)}. "
            "The sweep's cost above its floor is what it records and counts (the "
            "evaluation batch's loss at the record points, gradient norms, evaluations and "
            "the step at the target). The target is one for an accelerator, where one trial of a "
            "network this size leaves the device idle and the lanes fill it.",
            "",
        ]
    lines += [
        "A note on fairness: the one-run-at-a-time baselines are timed one run at a time "
        "(torch on one thread, its fastest here). Two such runs in parallel, one per core, "
        "would at most double their throughput, i.e. halve the ratios above.",
    ]
    return lines


def markdown(frame: pd.DataFrame, notes: list[str], facts: dict) -> str:
    lines = ["# Performance", ""]
    lines += [
        "Written by `make perf` (`python -m bench.perf.run`): every number below comes from one "
        "run, ours and the reference measured side by side in the same process, medians of "
        "repeated calls, float32 on the CPU.",
        "",
        f"- date: {facts['date']}; wall time of the run: {facts['wall_seconds']:.0f} s",
        f"- machine: {facts['cpu']}, {facts['cpu_count']} cores, {facts['platform']}; "
        f"device {facts['device']}",
        f"- versions: Python {facts['python']}, jax {facts['jax']}, jaxlib {facts['jaxlib']}, "
        f"optax {facts['optax']}, numpy {facts['numpy']}, torch {facts['torch']}",
        f"- XLA_FLAGS: `{facts['xla_flags'] or '(none)'}`",
        f"- load average (1, 5, 15 min): {facts['load_before']} before; "
        f"{facts['load_after_kernels']} after the kernels; {facts['load_after_sweeps']} after "
        f"the sweeps; {facts['load_after']} at the end",
        "",
        "## Targets",
        "",
        "| target | measured in this run | status |",
        "| --- | --- | --- |",
    ]
    judged = targets(frame, facts)
    lines += [f"| {t} | {m} | {_status(ok)} |" for t, m, ok in judged]
    stream = frame[frame.section == "stream"]
    lines += ["", "## Streaming bandwidth", ""]
    lines += [
        "In-place `x <- 1.0001 x + 1e-4` on a donated float32 vector, 8 bytes per element: "
        "the ceiling an update kernel is compared with, at each size. Up to about 1e6 "
        "parameters the data fits in the last-level cache.",
        "",
        _table(
            pd.DataFrame(
                {
                    "parameters": [f"{n:.0e}" for n in stream["size"]],
                    "ms": [_ms(s) for s in stream.seconds],
                    "GB/s": [f"{g:.1f}" for g in stream.gbps],
                }
            )
        ),
    ]
    lines += ["", "## Update kernels", ""]
    lines += [
        "`(params, state, grads) -> (params, state)`: one `update` plus `apply_updates`, "
        "params and state donated, learning rate 1e-3 and the registry's hyperparameters. "
        "Flat: one vector; pytree: 20 leaves of mixed sizes with the same total. GB/s "
        "counts params, grads and state read once and params and state written once "
        "(28 B/param for Adam); 'of stream' divides it by the streaming bandwidth at the "
        "same size. 'fusions' counts the fused loops XLA launches: each is one pass over "
        "the arrays it touches. Every size is in perf.csv and perf_kernels.png.",
    ]
    for size in (1_000_000, 10_000_000):
        if (frame["size"] == size).any() and (frame.section == "kernel").any():
            lines += ["", f"### {size:.0e} parameters", "", kernel_table(frame, size)]
    if notes:
        lines += ["", "Not timed or timed alone:", ""] + [f"- {n}" for n in notes]
    lines += multi_output_fusion_section(frame)
    sweeps = sweep_ratios(frame)
    if len(sweeps):
        shown = sweeps.assign(
            seconds=sweeps.seconds.map(lambda s: f"{s:.4g}"),
            steps_per_second=sweeps.steps_per_second.map(lambda s: f"{s:,.0f}"),
            ours_ratio=sweeps.ours_ratio.map(lambda r: f"{r:,.1f}"),
        ).rename(columns={"ours_ratio": "ours / this", "steps_per_second": "steps/s"})
        lines += ["", "## Whole sweeps", ""]
        lines += [
            "Adam on each problem. `ours`: `bench.run_sweep`, every lane (learning rate x "
            "seed) in one compiled `jit(vmap(scan))` call, loss and gradient norm recorded "
            "at every step, compile excluded; `ours_optimize`: the same with "
            "`optimize=True`. `bare_vmap`: the same lanes as one jitted `vmap(scan)` of "
            "optax steps recording only the loss, at XLA's default level: the floor under "
            "ours, what the problem's loss and gradient cost. `optax_loop`: one run, a "
            "Python loop over a jitted optax step. `optax_scan`: one run as one jitted "
            "`lax.scan`. `torch`: one run of `torch.optim.Adam` in a Python loop. The model "
            "families (cnn_digits, transformer_stdlib at cpu scale) run as `make bench` runs "
            "them: minibatches, their own step budgets, the evaluation batch's loss at the "
            "suite's record points, the compile level the runner chooses; their torch rows "
            "train the same network (bench/perf_torch_models.py) on the same minibatches. "
            "seconds is per call (all lanes for the vmapped rows, one run for the others); "
            "steps/s counts every lane.",
            "",
            _table(shown),
        ]
    lanes = frame[frame.section == "lanes"]
    if len(lanes):
        lines += ["", "## Scaling with the number of lanes", ""]
        lines += [
            "Run time of our sweep (Adam, one seed per lane) against the lane count; "
            "perf_scaling.png plots it with the kernel time against the parameter count.",
            "",
            _table(
                lanes.assign(
                    steps=lanes.steps.astype(int),
                    seconds=lanes.seconds.map(lambda s: f"{s:.4g}"),
                    compile_seconds=lanes.compile_seconds.map(lambda s: f"{s:.2f}"),
                    steps_per_second=lanes.steps_per_second.map(lambda s: f"{s:,.0f}"),
                )[["case", "lanes", "steps", "seconds", "compile_seconds", "steps_per_second"]]
            ),
        ]
    compiled = frame[frame.section == "compile"]
    if len(compiled):
        lines += ["", "## Compile time", ""]
        lines += [
            "The exact program `make bench` builds for each pair (its grid and seeds, the "
            "problem's budget): every optimizer on one problem, then Adam on every problem, "
            "until the time budget of this section is spent.",
            "",
            _table(
                compiled.assign(
                    compile_seconds=compiled.compile_seconds.map(lambda s: f"{s:.2f}"),
                    seconds=compiled.seconds.map(lambda s: f"{s:.3f}"),
                    share=(
                        compiled.compile_seconds / (compiled.compile_seconds + compiled.seconds)
                    ).map(lambda s: f"{s:.0%}"),
                )[["case", "lanes", "compile_seconds", "seconds", "share"]].rename(
                    columns={"seconds": "run_seconds"}
                )
            ),
        ]
    cache = frame[frame.section == "cache"]
    if len(cache):
        wide = cache.pivot_table(index="case", columns="impl", values="compile_seconds")
        lines += ["", "### Persistent compilation cache", ""]
        lines += [
            "The same pairs compiled in two fresh processes sharing a `jax_compilation_cache_dir`"
            ", first empty, then filled by the first.",
            "",
            _table(
                pd.DataFrame(
                    {
                        "pair": wide.index,
                        "cold s": wide["cache_cold"].map(lambda s: f"{s:.2f}"),
                        "warm s": wide["cache_warm"].map(lambda s: f"{s:.2f}"),
                        "cold / warm": (wide["cache_cold"] / wide["cache_warm"]).map(
                            lambda s: f"{s:.1f}"
                        ),
                    }
                )
            ),
        ]
    lines += analysis(frame, judged)
    return "\n".join(lines) + "\n"


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
    axes[2].axhline(PARITY_LIMIT, color="r", lw=0.8, ls="--", label=f"{PARITY_LIMIT}")
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
