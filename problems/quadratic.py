"""Ill-conditioned convex quadratics f(x) = 1/2 x^T A x with a random rotation.

The Hessians of the registered quadratics are stored in problems/data/quadratic_hessians.npz
(`make data` rewrites it): a QR factorisation's last bits depend on
the machine's linear-algebra kernels, so the matrices are computed once and shipped,
and every machine runs on the same bits.
"""

import functools
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from problems import draws
from problems.base import Problem

HESSIANS = Path(__file__).parent / "data" / "quadratic_hessians.npz"
# The registered configurations (dim, condition, seed), the ones stored in HESSIANS.
STORED = ((20, 1e1, 0), (20, 1e3, 0), (20, 1e6, 0))


def hessian_name(dim: int, condition: float, seed: int) -> str:
    return f"dim{dim}_cond{condition:.0e}_seed{seed}"


def compute_hessian(dim: int, condition: float, seed: int) -> np.ndarray:
    """A = Q diag(lambda) Q^T in float64, symmetrised and rounded to float32.

    Q is a Haar-random rotation: the QR factorisation of a standard normal matrix drawn
    by numpy's PCG64 generator from `seed`, its columns' signs fixed by diag(R).
    The eigenvalues are log-spaced in [1, condition].
    """
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((dim, dim)))
    q = q * np.sign(np.diag(r))  # makes the rotation Haar-distributed
    a = (q * np.logspace(0.0, np.log10(condition), dim)) @ q.T
    return (0.5 * (a + a.T)).astype(np.float32)


@functools.cache
def hessian(dim: int, condition: float, seed: int) -> np.ndarray:
    """The stored Hessian for a registered configuration, else computed (see compute_hessian).

    A computed one is the same on every machine to float64 rounding, which the rounding
    to float32 almost always hides; a stored one is the same to the last bit.
    """
    with np.load(HESSIANS) as stored:
        name = hessian_name(dim, condition, seed)
        if name in stored:
            return stored[name]
    return compute_hessian(dim, condition, seed)


def quadratic(
    dim: int = 20, condition: float = 1e3, seed: int = 0, target: float = 1e-6
) -> Problem:
    """f(x) = 1/2 x^T A x, A = Q diag(lambda) Q^T, eigenvalues log-spaced in [1, condition].

    Q is a Haar-random rotation drawn from `seed`, so the problem is not axis-aligned
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
        data=functools.partial(hessian, dim, condition, seed),
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


def write_hessians() -> None:
    """Computes the stored configurations' Hessians and writes HESSIANS."""
    arrays = {hessian_name(*config): compute_hessian(*config) for config in STORED}
    np.savez_compressed(HESSIANS, **arrays)
    print(f"wrote {', '.join(arrays)} to {HESSIANS}")
