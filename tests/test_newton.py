"""Newton's method, the second-order reference (optax has no counterpart to compare with).

Expected values come from numpy's own linear algebra or from optima known in closed form.
"""

import jax
import jax.numpy as jnp
import numpy as np

from optimizers import apply_updates, newton

# A symmetric positive definite 7 x 7 matrix with eigenvalues 1 to 10, and a right-hand side.
_Q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(7, 7)))
A = _Q @ np.diag(np.linspace(1.0, 10.0, 7)) @ _Q.T
B = np.arange(1.0, 8.0)
CENTRE = {"w": jnp.array([[0.5, -1.0], [2.0, 0.25]]), "b": jnp.array([1.5, -0.5, 0.75])}


def as_vector(params):
    return jnp.concatenate([params["w"].ravel(), params["b"]])


def quadratic(params):
    """0.5 x^T A x - B^T x over the 7 numbers of the tree; minimised at x = A^-1 B."""
    x = as_vector(params)
    return 0.5 * x @ A @ x - B @ x


def smooth(params):
    """Strongly convex, not quadratic; every term is stationary, so minimal, at CENTRE."""
    u = as_vector(jax.tree.map(jnp.subtract, params, CENTRE))
    return jnp.sum(jnp.logaddexp(u, -u)) + 0.5 * u @ A @ u


def start():
    return {"w": jnp.ones((2, 2)), "b": jnp.zeros(3)}


def run(opt, loss, steps, params=None):
    """Parameters after each of `steps` Newton updates, as a list."""
    params = start() if params is None else params
    state, path = opt.init(params), []
    for _ in range(steps):
        updates, state = opt.update(jax.grad(loss)(params), state, params, value_fn=loss)
        params = apply_updates(params, updates)
        path.append(params)
    return path


def test_one_step_solves_a_quadratic_exactly():
    (params,) = run(newton(), quadratic, 1)
    # Only rounding separates one step from numpy's solve; cond(A) = 10, so 1e-12 is ample.
    np.testing.assert_allclose(as_vector(params), np.linalg.solve(A, B), rtol=1e-12)


def test_damped_step_with_a_learning_rate():
    lr, damping, params = 0.7, 0.3, start()
    (after,) = run(newton(learning_rate=lr, damping=damping), quadratic, 1)
    x = np.asarray(as_vector(params))
    expected = x - lr * np.linalg.solve(A + damping * np.eye(7), A @ x - B)
    np.testing.assert_allclose(as_vector(after), expected, rtol=1e-12)


def test_quadratic_convergence_on_a_smooth_strongly_convex_function():
    errors = [
        float(jnp.linalg.norm(as_vector(jax.tree.map(jnp.subtract, p, CENTRE))))
        for p in [start(), *run(newton(), smooth, 6)]
    ]
    assert errors[-1] < 1e-13, errors
    # Quadratic convergence: e_{k+1} <= C e_k^2 with one C for every step. Newton from
    # this start does not need a line search (the error shrinks from the first step).
    # C = 1 bounds ||H^-1|| * Lipschitz(H) / 2 here (||H^-1|| <= 1, the third derivative
    # of logcosh is below 0.77); a linearly convergent method fails it within 3 steps.
    for before, after in zip(errors, errors[1:], strict=False):
        if before > 1e-7:  # below this, rounding dominates
            assert after <= 1.0 * before**2, errors


def test_traced_learning_rates_under_vmap_and_jit():
    learning_rates = jnp.array([0.25, 0.5, 1.0])
    params = start()

    def one_step(lr):
        opt = newton(learning_rate=lr)
        updates, _ = opt.update(
            jax.grad(quadratic)(params), opt.init(params), params, value_fn=quadratic
        )
        return as_vector(apply_updates(params, updates))

    moved = jax.jit(jax.vmap(one_step))(learning_rates)
    x0, x_star = np.asarray(as_vector(params)), np.linalg.solve(A, B)
    for lr, x in zip(np.asarray(learning_rates), np.asarray(moved), strict=True):
        # On a quadratic a Newton step of size lr moves lr of the way to the minimum.
        np.testing.assert_allclose(x, x0 + lr * (x_star - x0), rtol=1e-12)
