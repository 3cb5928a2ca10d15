"""`optimizers.fused_step`: the values of the plain step, in one fused loop."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optimizers import OPTIMIZERS, apply_updates, fused_step
from optimizers.fused import MULTI_OUTPUT_FUSION_FLAG, multi_output_fusion_enabled

NAMES = ["sgd", "momentum", "rmsprop", "adam", "adamw", "lion", "lamb", "adafactor"]


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


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", NAMES)
def test_fused_step_takes_the_plain_steps_bit_for_bit(name, dtype):
    spec = OPTIMIZERS[name]
    opt = spec.factory(learning_rate=1e-2, **spec.test_hparams)
    rng = np.random.default_rng(0)
    params = {
        "w": jnp.asarray(rng.standard_normal((6, 5)), dtype),
        "b": jnp.asarray(rng.standard_normal(5), dtype),
    }
    plain, fused = plain_step(opt), make_fused(opt)
    expected = (params, opt.init(params))
    # fused_step donates its inputs: it gets its own copies.
    got = jax.tree.map(jnp.copy, expected)
    for _ in range(100):
        grads = jax.tree.map(lambda p: jnp.sin(3 * p) + 0.1 * p**2, expected[0])
        expected = plain(*expected, grads)
        got = fused(*got, grads)
        for e, g in zip(jax.tree.leaves(expected), jax.tree.leaves(got), strict=True):
            np.testing.assert_array_equal(g, e)


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
        from bench.perf_kernels import count_fusions, kernel
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
