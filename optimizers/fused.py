"""`fused_step`: a training step that XLA can fuse into one pass over the data.

A plain step `update` then `apply_updates` has several array outputs: the params and
each state leaf (Adam's m and v). XLA:CPU computes each output in a loop of its own,
and the parameter loop reads the moments the other loops have just written: Adam
streams 40 bytes per parameter in three passes instead of 28 bytes in one.

`fused_step` evaluates the rule twice on the same inputs: once for the new state, and
once, behind an optimization barrier that keeps XLA from merging the two, for the
parameter update. Every output then reads only the old params, state and gradient, so
all are siblings, and XLA's multi-output fusion computes them in a single loop.

The operations are those of the plain step, on the same inputs. The values are the
plain step's bit for bit where XLA cannot contract a multiply and an add into one
fused multiply-add (FMA): on a CPU without FMA, or with `--xla_cpu_max_isa=SSE4_2` in
XLA_FLAGS. Where it can, each program contracts as LLVM sees fit, and the two programs,
fused differently, may contract different pairs: a step of some rules (NAdam,
AdaBelief, Adan, Muon, ...) then differs from the plain one in the last bits, by a
few ulps of the leaf's largest entry (2-3 measured for NAdam, NAdamW, Muon and
OptimisticAdam, each contraction rounding once where the plain program rounds twice;
tests/test_fused.py holds every rule to 4). `jit(update)` and an eager `update` differ
from each other in the same way.

XLA:GPU fuses siblings by default. XLA:CPU does so only when XLA_FLAGS holds
`MULTI_OUTPUT_FUSION_FLAG` before JAX starts; without it the step is still correct,
but slower than the plain one (XLA copies the old state to keep it readable), and
`fused_step` warns.
"""

import os
import warnings
from collections.abc import Callable

import jax

from optimizers.base import Optimizer, apply_updates

MULTI_OUTPUT_FUSION_FLAG = "--xla_backend_extra_options=xla_cpu_use_multi_output_fusion"


def multi_output_fusion_enabled() -> bool:
    """Whether XLA will fuse sibling loops: always off the CPU, on the CPU by the flag."""
    if jax.default_backend() != "cpu":
        return True
    return MULTI_OUTPUT_FUSION_FLAG in os.environ.get("XLA_FLAGS", "")


def fused_step(optimizer: Optimizer) -> Callable:
    """`step(params, state, grads) -> (params, state)`, jitted, params and state donated.

    For rules that need only the gradient (not `value`/`value_fn`). The donated params
    and state are updated in place: do not use them after the call. The steps are the
    plain `update` + `apply_updates` steps, bit for bit without FMA contraction and to
    the last bits with it (see the module docstring).
    """
    if not multi_output_fusion_enabled():
        warnings.warn(
            "fused_step on the CPU needs XLA_FLAGS="
            f"{MULTI_OUTPUT_FUSION_FLAG!r} set before JAX starts; without it the step "
            "is slower than jit(update + apply_updates)",
            stacklevel=2,
        )

    def step(params, state, grads):
        _, new_state = optimizer.update(grads, state, params)
        # The same rule on copies XLA cannot identify with the originals: the parameter
        # update no longer reads the new state, so it fuses beside it.
        grads_, state_, params_ = jax.lax.optimization_barrier((grads, state, params))
        updates, _ = optimizer.update(grads_, state_, params_)
        return apply_updates(params, updates), new_state

    return jax.jit(step, donate_argnums=(0, 1))
