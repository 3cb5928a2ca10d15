"""The torch twins of the model problems (bench.perf.torch_models) against the JAX models.

Optional: needs torch (the `make perf` baseline), and is skipped without it.
"""

import jax
import numpy as np
import pytest

from bench.perf.sweeps import SweepCase
from problems import model

torch = pytest.importorskip("torch")

from bench.perf.torch_models import to_torch, torch_model_loop, torch_model_loss  # noqa: E402

pytestmark = pytest.mark.reference

MODELS = ("cnn_digits", "cnn_digits_no_norm", "transformer_stdlib")

# float32 on both sides, the same formula with other summation orders (a convolution
# against patches @ kernel, fused attention against einsums, torch's log-sum-exp):
# a few ulps of 1.2e-7 on the loss (measured: 2.6e-7 relative at most).
LOSS_RTOL = 1e-5
# The gradient of each leaf, as ||torch - jax|| / ||jax||, norm-wise because the
# backward pass sums over the batch, positions and channels in yet other orders and a
# leaf's small entries (a conv bias whose terms nearly cancel) differ relatively more
# than the leaf does: measured 1.3e-6 at most (80 ulps leave room for other CPUs' kernels).
# A transposed kernel differs by order 1, the exact GELU for the tanh one by 3e-4.
GRAD_RTOL = 1e-5
# At the init the transformer's activations are so small that its GELU is nearly linear
# (the exact and the tanh GELU differ there by 6e-6): the check runs again at params
# moved off the init by noise of this deviation, where they differ by 3e-4.
PERTURBATION = 0.3


def perturbed(params, deviation: float):
    rng = np.random.default_rng(0)
    return jax.tree.map(
        lambda a: a + deviation * rng.standard_normal(a.shape).astype(np.float32), params
    )


@pytest.mark.parametrize("deviation", (0.0, PERTURBATION), ids=("init", "perturbed"))
@pytest.mark.parametrize("name", MODELS)
def test_torch_loss_and_gradients_equal_the_jax_model(name, deviation):
    problem = model(name, "tiny")
    params = perturbed(problem.init(jax.random.PRNGKey(0)), deviation)
    batch = problem.sample_batch(problem.data(), jax.random.PRNGKey(1))
    loss, grads = jax.value_and_grad(problem.loss)(params, batch)
    assert loss.dtype == np.float32

    twin = jax.tree.map(lambda a: torch.tensor(np.asarray(a), requires_grad=True), params)
    twin_loss = torch_model_loss(problem)(twin, to_torch(batch))
    twin_loss.backward()

    np.testing.assert_allclose(twin_loss.item(), float(loss), rtol=LOSS_RTOL)
    leaves = jax.tree_util.tree_leaves_with_path(grads)
    for (path, grad), leaf in zip(leaves, jax.tree.leaves(twin), strict=True):
        grad = np.asarray(grad)
        error = np.linalg.norm(leaf.grad.numpy() - grad) / np.linalg.norm(grad)
        assert error <= GRAD_RTOL, f"{name}{jax.tree_util.keystr(path)}: {error:.2e}"


@pytest.mark.parametrize("name", ("cnn_digits", "transformer_stdlib"))
def test_torch_model_loop_times_a_trial_and_restores_the_threads(name):
    threads = torch.get_num_threads()
    result = torch_model_loop(SweepCase(model(name, "tiny"), name, 3, 1, 1), runs=1)
    assert result["seconds"] > 0
    assert torch.get_num_threads() == threads


def test_torch_model_loss_refuses_other_problems():
    with pytest.raises(ValueError, match="no torch twin"):
        torch_model_loss(model("autoencoder_digits", "tiny"))
