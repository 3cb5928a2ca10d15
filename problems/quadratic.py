"""Ill-conditioned convex quadratics f(x) = 1/2 (x - x*)^T A (x - x*) with a random rotation,
and the noisy quadratic model; each instance moves its minimiser x* off the origin."""

import jax.numpy as jnp
import numpy as np

from problems import draws, stored
from problems.base import Problem

# The box whose half-width scales the moved minimiser's shifts: x0 ~ N(0, I) lies mostly
# within it, so x* is as far from the origin as a typical start is from x*.
INIT_BOX = (-3.0, 3.0)


def quadratic(
    dim: int = 20, condition: float = 1e3, seed: int = 0, target: float = 1e-6
) -> Problem:
    """f(x) = 1/2 (x - x*)^T A (x - x*), A = Q diag(lambda) Q^T, eigenvalues log-spaced in
    [1, condition].

    Q is a Haar-random rotation drawn from `seed` (`problems.stored`, where the registered
    quadratics' Hessians are stored), so the problem is not axis-aligned
    (diagonal preconditioners get no free pass). f* = 0 at x*, which instance `seed`
    moves off the origin (`draws.moved_minimiser`: each coordinate 0.3 to 1.2 from it,
    either sign), so that a rule that shrinks its iterate gets no free pass either;
    x0 ~ N(0, I) (the Irwin-Hall draw of `problems.draws`).
    """
    name = f"quadratic_{dim}d_cond{condition:.0e}".replace("+0", "").replace("+", "")
    x_star = draws.moved_minimiser(name, INIT_BOX, np.zeros(dim), seed)

    def data():
        hessian = stored.matrix(stored.quadratic_hessian, dim, condition, seed)
        return {"hessian": hessian, "minimiser": x_star}

    def loss(x, data):
        offset = x - data["minimiser"].astype(x.dtype)
        return 0.5 * offset @ (data["hessian"].astype(x.dtype) @ offset)

    return Problem(
        name=name,
        description=f"rotated quadratic, {dim}-D, condition number {condition:g}, x* moved",
        tags=frozenset({"convex"}),
        dim=dim,
        init=lambda key: draws.normal(key, (dim,)),
        loss=loss,
        data=data,
        f_star=0.0,
        x_star=x_star,
        target=target,
        steps=1000,
    )


def noisy_quadratic(
    dim: int = 100, p: float = 1.0, q: float = 1.0, batch_size: int = 1, seed: int = 0
) -> Problem:
    """The noisy quadratic model of Zhang et al. (2019), "Which algorithmic choices matter
    at which batch sizes?", NeurIPS.

    f(x) = 1/2 sum_i h_i (x_i - x*_i)^2 with h_i = i^-p (diagonal, f* = 0 at x*, which
    instance `seed` moves off the origin as `quadratic` does). A batch of `batch_size`
    examples sees f(x) + xi^T (x - x*), so its gradient is H (x - x*) + xi with
    xi ~ N(0, C / batch_size), C = diag(i^-q): the model's gradient noise. The full
    data set has xi = 0 (the exact loss). x0 ~ N(0, I).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")

    name = f"noisy_quadratic_{dim}d"
    x_star = draws.moved_minimiser(name, INIT_BOX, np.zeros(dim), seed)

    def data():
        index = np.arange(1, dim + 1, dtype=np.float64)
        return {
            "curvature": (index**-p).astype(np.float32),
            "noise_std": np.sqrt(index**-q / batch_size).astype(np.float32),
            "noise": np.zeros(dim, np.float32),
            "minimiser": x_star,
        }

    def loss(x, batch):
        offset = x - batch["minimiser"].astype(x.dtype)
        return 0.5 * jnp.sum(batch["curvature"] * offset**2) + jnp.sum(batch["noise"] * offset)

    def sample_batch(data, key):
        xi = draws.normal(key, (dim,)).astype(data["noise_std"].dtype)
        return {**data, "noise": data["noise_std"] * xi}

    return Problem(
        name=name,
        description=(
            f"noisy quadratic model, {dim}-D, h_i = i^-{p:g}, noise covariance i^-{q:g}, x* moved"
        ),
        tags=frozenset({"convex", "stochastic"}),
        dim=dim,
        init=lambda key: draws.normal(key, (dim,)),
        loss=loss,
        data=data,
        f_star=0.0,
        x_star=x_star,
        target=0.1,
        steps=1000,
        sample_batch=sample_batch,
    )
