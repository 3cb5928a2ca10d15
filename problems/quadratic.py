"""Ill-conditioned convex quadratics f(x) = 1/2 x^T A x with a random rotation."""

import functools

import jax.numpy as jnp
import numpy as np

from problems import draws, stored
from problems.base import Problem


def quadratic(
    dim: int = 20, condition: float = 1e3, seed: int = 0, target: float = 1e-6
) -> Problem:
    """f(x) = 1/2 x^T A x, A = Q diag(lambda) Q^T, eigenvalues log-spaced in [1, condition].

    Q is a Haar-random rotation drawn from `seed` (`problems.stored`, where the registered
    quadratics' Hessians are stored), so the problem is not axis-aligned
    (diagonal preconditioners get no free pass). f* = 0 at x* = 0; x0 ~ N(0, I)
    (the Irwin-Hall draw of `problems.draws`).
    """

    def loss(x, a):
        return 0.5 * x @ (a.astype(x.dtype) @ x)

    return Problem(
        name=f"quadratic_{dim}d_cond{condition:.0e}".replace("+0", "").replace("+", ""),
        description=f"rotated quadratic, {dim}-D, condition number {condition:g}",
        tags=frozenset({"convex"}),
        dim=dim,
        init=lambda key: draws.normal(key, (dim,)),
        loss=loss,
        data=functools.partial(stored.matrix, stored.quadratic_hessian, dim, condition, seed),
        f_star=0.0,
        x_star=np.zeros(dim),
        target=target,
        steps=1000,
    )


def noisy_quadratic(dim: int = 100, p: float = 1.0, q: float = 1.0, batch_size: int = 1) -> Problem:
    """The noisy quadratic model of Zhang et al. (2019), "Which algorithmic choices matter
    at which batch sizes?", NeurIPS.

    f(x) = 1/2 sum_i h_i x_i^2 with h_i = i^-p (diagonal, f* = 0 at x* = 0). A batch of
    `batch_size` examples sees f(x) + xi^T x, so its gradient is H x + xi with
    xi ~ N(0, C / batch_size), C = diag(i^-q): the model's gradient noise. The full
    data set has xi = 0 (the exact loss). x0 ~ N(0, I).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")

    def data():
        index = np.arange(1, dim + 1, dtype=np.float64)
        return {
            "curvature": (index**-p).astype(np.float32),
            "noise_std": np.sqrt(index**-q / batch_size).astype(np.float32),
            "noise": np.zeros(dim, np.float32),
        }

    def loss(x, batch):
        return 0.5 * jnp.sum(batch["curvature"] * x**2) + jnp.sum(batch["noise"] * x)

    def sample_batch(data, key):
        xi = draws.normal(key, (dim,)).astype(data["noise_std"].dtype)
        return {**data, "noise": data["noise_std"] * xi}

    return Problem(
        name=f"noisy_quadratic_{dim}d",
        description=f"noisy quadratic model, {dim}-D, h_i = i^-{p:g}, noise covariance i^-{q:g}",
        tags=frozenset({"convex", "stochastic"}),
        dim=dim,
        init=lambda key: draws.normal(key, (dim,)),
        loss=loss,
        data=data,
        f_star=0.0,
        x_star=np.zeros(dim),
        target=0.1,
        steps=1000,
        sample_batch=sample_batch,
    )
