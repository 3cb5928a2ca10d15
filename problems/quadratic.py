"""Ill-conditioned convex quadratics f(x) = 1/2 x^T A x with a random rotation."""

import functools

import jax
import jax.numpy as jnp

from problems.base import Problem


def quadratic(dim: int = 20, condition: float = 1e3, seed: int = 0) -> Problem:
    """f(x) = 1/2 x^T A x, A = Q diag(lambda) Q^T, eigenvalues log-spaced in [1, condition].

    Q is a Haar-random rotation drawn from `seed`, so the problem is not axis-aligned
    (diagonal preconditioners get no free pass). f* = 0 at x* = 0; x0 ~ N(0, I).
    """

    @functools.cache
    def hessian():
        eigenvalues = jnp.logspace(0.0, jnp.log10(condition), dim)
        q, r = jnp.linalg.qr(jax.random.normal(jax.random.PRNGKey(seed), (dim, dim), jnp.float32))
        q = q * jnp.sign(jnp.diag(r))  # makes the rotation Haar-distributed
        return (q * eigenvalues) @ q.T

    def loss(x, a):
        return 0.5 * x @ (a.astype(x.dtype) @ x)

    return Problem(
        name=f"quadratic_{dim}d_cond{condition:.0e}".replace("+0", "").replace("+", ""),
        description=f"rotated quadratic, {dim}-D, condition number {condition:g}",
        tags=frozenset({"convex"}),
        dim=dim,
        init=lambda key: jax.random.normal(key, (dim,), jnp.float32),
        loss=loss,
        data=hessian,
        f_star=0.0,
        x_star=jnp.zeros(dim),
        target=1e-6,
        steps=1000,
    )
