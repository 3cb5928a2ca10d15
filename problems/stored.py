"""Matrices made by floating-point linear algebra, stored so that every machine has the same bits.

A QR factorisation's last bits depend on the machine's linear-algebra kernels, so the
matrices the registered problems use (the quadratics' Hessians, the rotations of the
test-function instances) are computed once in float64, rounded to float32 and stored in
problems/data/matrices.npz; `make data` rewrites the file from the functions below,
and tests/test_portable.py checks that it still matches them. A matrix that is not
stored (a configuration of your own) is computed at first use: the same on every
machine to float64 rounding, which the rounding to float32 almost always hides.
"""

import functools
from pathlib import Path

import numpy as np

MATRICES = Path(__file__).parent / "data" / "matrices.npz"


def haar_rotation(dim: int, seed: int) -> np.ndarray:
    """A Haar-random rotation in float64: the QR factorisation of a standard normal matrix
    drawn by numpy's PCG64 generator from `seed`, its columns' signs fixed by diag(R)."""
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((dim, dim)))
    return q * np.sign(np.diag(r))


def rotation(dim: int, seed: int) -> np.ndarray:
    """haar_rotation rounded to float32."""
    return haar_rotation(dim, seed).astype(np.float32)


def quadratic_hessian(dim: int, condition: float, seed: int) -> np.ndarray:
    """A = Q diag(lambda) Q^T, Q = haar_rotation(dim, seed), eigenvalues log-spaced in
    [1, condition]; computed in float64, symmetrised and rounded to float32."""
    q = haar_rotation(dim, seed)
    a = (q * np.logspace(0.0, np.log10(condition), dim)) @ q.T
    return (0.5 * (a + a.T)).astype(np.float32)


# name -> (function, arguments) of every stored matrix: the registered problems' ones.
STORED = {
    **{
        f"quadratic_hessian_dim20_cond{condition:.0e}_seed0": (
            quadratic_hessian,
            (20, condition, 0),
        )
        for condition in (1e1, 1e3, 1e6)
    },
    **{f"rotation_dim10_seed{seed}": (rotation, (10, seed)) for seed in (1,)},
}


@functools.cache
def _stored() -> dict[str, np.ndarray]:
    with np.load(MATRICES) as arrays:
        return dict(arrays)


@functools.cache
def matrix(function, *args) -> np.ndarray:
    """function(*args), read from MATRICES when it is stored there."""
    for name, (stored_function, stored_args) in STORED.items():
        if stored_function is function and stored_args == args and name in _stored():
            return _stored()[name]
    return function(*args)


def write() -> None:
    """Computes every STORED matrix and writes MATRICES."""
    arrays = {name: function(*args) for name, (function, args) in STORED.items()}
    np.savez_compressed(MATRICES, **arrays)
    print(f"wrote {len(arrays)} matrices to {MATRICES}: {', '.join(arrays)}")
