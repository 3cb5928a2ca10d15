"""`optimizers.fused_step`: the values of the plain step, in one fused loop."""

import json
import os
import platform
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from parity_settings import settings

from optimizers import OPTIMIZERS, apply_updates, fused_step
from optimizers.fused import MULTI_OUTPUT_FUSION_FLAG, multi_output_fusion_enabled

# Many cases that together take minutes: make test-slow runs them, make test does not.
pytestmark = pytest.mark.slow

# Every rule that needs only the gradient: fused_step's domain.
NAMES = [n for n, spec in OPTIMIZERS.items() if not (spec.needs_value_fn or spec.needs_loss)]
# A step's largest difference from the plain step where XLA contracts multiply-adds into
# FMAs, in ulps of each leaf's largest entry: a contraction rounds once where the
# plain program rounds twice, half an ulp of a term at most, and a rule has a few such
# terms per entry (measured: 2-3 ulps for nadam, nadamw, muon and the optimistic Adams
# on an FMA CPU, under 1 for the rest, float32 and float64, with and without
# multi-output fusion). Using a new state for the update, or skipping one, moves a
# step by far more.
FMA_ULPS = 4


def plain_step(opt):
    def step(params, state, grads):
        updates, state = opt.update(grads, state, params)
        return apply_updates(params, updates), state

    return jax.jit(step)


def make_fused(opt):
    if multi_output_fusion_enabled():
        return fused_step(opt)
    with pytest.warns(UserWarning, match="xla_cpu_use_multi_output_fusion"):
        return fused_step(opt)


# The test settings' 3 x 3 blocks cut the 64 x 32 matrix below into 242 blocks, and a
# program with a root per block takes about a minute to compile.
LARGER_BLOCKS = {"distributed_shampoo": {"block_size": 16}}
# Rules whose fused step is not the plain step bit for bit even without FMA. apollo: from
# its second step the parameters differ in the last bits while the state stays bitwise
# equal (measured under SSE4.2, float32 and float64); the test above holds each of its
# steps to FMA_ULPS, as for every rule.
NOT_BITWISE = {"apollo"}


def start(name, dtype):
    """The rule with its test hyperparameters, and params: a 64 x 32 matrix and a vector."""
    hparams = settings(name).hparams | LARGER_BLOCKS.get(name, {})
    opt = OPTIMIZERS[name].factory(learning_rate=1e-2, **hparams)
    rng = np.random.default_rng(0)
    params = {
        "w": jnp.asarray(rng.standard_normal((64, 32)), dtype),
        "b": jnp.asarray(rng.standard_normal(32), dtype),
    }
    return opt, params


def gradient(params):
    return jax.tree.map(lambda p: jnp.sin(3 * p) + 0.1 * p**2, params)


def raw(leaf):
    return jax.random.key_data(leaf) if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key) else leaf


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", NAMES)
def test_fused_step_takes_each_plain_step_to_the_last_bits(name, dtype):
    """Per step, from the plain step's params and state: within FMA_ULPS (this CPU may
    contract multiply-adds); bitwise without FMA in the test below."""
    opt, params = start(name, dtype)
    plain, fused = plain_step(opt), make_fused(opt)
    expected = (params, opt.init(params))
    # The first step donates init's state as it is; later ones copies of the plain state.
    inputs = (jax.tree.map(jnp.copy, params), opt.init(params))
    for _ in range(50):
        grads = gradient(expected[0])
        got = fused(*inputs, grads)
        expected = plain(*expected, grads)
        for e, g in zip(jax.tree.leaves(expected), jax.tree.leaves(got), strict=True):
            e, g = np.asarray(raw(e)), np.asarray(raw(g))
            if not np.issubdtype(e.dtype, np.inexact):
                np.testing.assert_array_equal(g, e)
                continue
            ulp = np.finfo(e.dtype).eps * np.max(np.abs(e), initial=0.0)
            np.testing.assert_allclose(g, e, rtol=0, atol=FMA_ULPS * ulp)
        inputs = jax.tree.map(jnp.copy, expected)


@pytest.mark.extensive
@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86 ISA flag")
@pytest.mark.parametrize("fusion", [False, True], ids=["plain-xla", "multi-output-fusion"])
def test_fused_step_takes_the_plain_steps_bit_for_bit_without_fma(fusion):
    """Every gradient-only rule, 20 steps, float32 and float64, in a process whose XLA may
    not contract multiply-adds (SSE4.2 has no FMA): the trajectories are bitwise equal."""
    probe = textwrap.dedent(
        """
        import json, sys, warnings
        import jax, jax.numpy as jnp, numpy as np
        jax.config.update("jax_enable_x64", True)
        warnings.simplefilter("ignore")  # fused_step's warning without the fusion flag
        sys.path.insert(0, "tests")
        from test_fused import NAMES, NOT_BITWISE, gradient, plain_step, raw, start
        from optimizers import fused_step
        differ = []
        for name in sorted(set(NAMES) - NOT_BITWISE):
            for dtype in ("float32", "float64"):
                opt, params = start(name, dtype)
                plain, fused = plain_step(opt), fused_step(opt)
                expected = (params, opt.init(params))
                got = (jax.tree.map(jnp.copy, params), opt.init(params))
                for _ in range(20):
                    grads = gradient(expected[0])
                    expected, got = plain(*expected, grads), fused(*got, grads)
                leaves = zip(jax.tree.leaves(expected), jax.tree.leaves(got), strict=True)
                if not all(np.array_equal(raw(e), raw(g)) for e, g in leaves):
                    differ.append(f"{name} {dtype}")
        print(json.dumps(differ))
        """
    )
    flags = "--xla_cpu_max_isa=SSE4_2" + (f" {MULTI_OUTPUT_FUSION_FLAG}" if fusion else "")
    env = dict(os.environ, XLA_FLAGS=flags, JAX_PLATFORMS="cpu")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=root
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1]) == []


def test_fused_adam_follows_optax_adam():
    """Per step over 300 steps, float32, against optax with the same arguments."""
    params = jnp.linspace(-2.0, 2.0, 64, dtype=jnp.float32)
    ours, reference = OPTIMIZERS["adam"].factory(3e-2), optax.adam(3e-2)
    fused = make_fused(ours)
    p, s = jnp.copy(params), ours.init(params)
    q, t = params, reference.init(params)

    @jax.jit
    def reference_step(q, t, grads):
        updates, t = reference.update(grads, t, q)
        return optax.apply_updates(q, updates), t

    def grad(x):  # computed outside both steps, so that both see the same gradient
        return jnp.tanh(x) * x

    for _ in range(300):
        p, s = fused(p, s, grad(p))
        q, t = reference_step(q, t, grad(q))
        np.testing.assert_array_equal(p, q)


def test_fused_adam_is_one_loop_under_multi_output_fusion():
    """Structural, in a process with the flag: optax's Adam two loops, fused_step one."""
    probe = textwrap.dedent(
        """
        import json, warnings
        import jax, jax.numpy as jnp, optax
        from bench.perf.kernels import count_fusions, kernel
        from optimizers import adam, fused_step
        p, g = jnp.ones(256), jnp.full(256, 0.5)
        def loops(step, opt):
            return count_fusions(step.lower(p, opt.init(p), g).compile().as_text())
        ref = optax.adam(1e-3)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the flag is set: no warning expected
            fused = fused_step(adam(1e-3))
        plain = jax.jit(kernel(ref, optax.apply_updates), donate_argnums=(0, 1))
        print(json.dumps({"optax": loops(plain, ref), "fused": loops(fused, adam(1e-3))}))
        """
    )
    env = dict(os.environ, XLA_FLAGS=MULTI_OUTPUT_FUSION_FLAG, JAX_PLATFORMS="cpu")
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True
    )
    loops = json.loads(done.stdout.splitlines()[-1])
    assert loops == {"optax": 2, "fused": 1}
