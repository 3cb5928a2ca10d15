"""Classic non-convex test functions with known global minima and minimisers.

Definitions, domains and optima follow the Virtual Library of Simulation Experiments
(Surjanovic and Bingham, https://www.sfu.ca/~ssurjano/optimization.html). Each
starting point is drawn uniformly from a box inside the function's usual domain.

Rastrigin, Ackley and Styblinski-Tang are global-optimisation tests: from a random
start a gradient method usually ends in a local minimum, so their target (1e-3,
well below the gap to the nearest local minimum) is met only by lanes that reach
the global basin, and final suboptimality is the informative number.
"""

import math

import jax.numpy as jnp
import numpy as np

from problems import draws, stored
from problems.base import Problem


def beale_value(x):
    """(1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2; 0 at (3, 1/2)."""
    u, v = x[0], x[1]
    return (1.5 - u + u * v) ** 2 + (2.25 - u + u * v**2) ** 2 + (2.625 - u + u * v**3) ** 2


def himmelblau_value(x):
    """(x^2 + y - 11)^2 + (x + y^2 - 7)^2; 0 at four points, (3, 2) among them."""
    u, v = x[0], x[1]
    return (u**2 + v - 11) ** 2 + (u + v**2 - 7) ** 2


def six_hump_camel_value(x):
    """(4 - 2.1 x^2 + x^4 / 3) x^2 + x y + (4 y^2 - 4) y^2; six minima, two global."""
    u, v = x[0], x[1]
    return (4 - 2.1 * u**2 + u**4 / 3) * u**2 + u * v + (4 * v**2 - 4) * v**2


def rastrigin_value(x):
    """10 n + sum_i x_i^2 - 10 cos(2 pi x_i); 0 at the origin, a local minimum near each integer."""
    return 10.0 * x.size + jnp.sum(x**2 - 10.0 * jnp.cos(2 * math.pi * x))


def ackley_value(x):
    """-20 exp(-0.2 sqrt(mean x^2)) - exp(mean cos(2 pi x)) + 20 + e; 0 at the origin.

    The norm has a kink at the origin: the `where` pair gives it the subgradient 0
    there instead of 0 * inf = nan.
    """
    mean_square = jnp.mean(x**2)
    positive = mean_square > 0
    radius = jnp.where(positive, jnp.sqrt(jnp.where(positive, mean_square, 1.0)), 0.0)
    ripple = jnp.mean(jnp.cos(2 * math.pi * x))
    return -20.0 * jnp.exp(-0.2 * radius) - jnp.exp(ripple) + 20.0 + math.e


def styblinski_tang_value(x):
    """1/2 sum_i x_i^4 - 16 x_i^2 + 5 x_i; minimum at x_i = -2.9035... in every coordinate."""
    return 0.5 * jnp.sum(x**4 - 16.0 * x**2 + 5.0 * x)


# The global minimiser of Styblinski-Tang per coordinate: the smallest root of
# d/dx (x^4 - 16 x^2 + 5 x) / 2 = 2 x^3 - 16 x + 5/2, and the value there.
STYBLINSKI_TANG_X = -2.9035340277711783
STYBLINSKI_TANG_F = -39.16616570377141


def function_problem(
    name, description, value, dim, box, f_star, x_raw, target, steps, seed, rotate=False
) -> Problem:
    """Instance `seed` of a test function, COCO-style: f_seed(x) = f(x_raw + R (x - x_star)).

    The raw function's minimiser x_raw moves to x_star (`draws.moved_minimiser`); a separable
    function is also rotated about it (R a stored Haar rotation, `problems.stored`; else
    R = I). f* and x* stay exact: at x = x_star the argument is x_raw itself. The
    minimisers and the rotation are the problem's data, arguments of the compiled program.
    x0 is uniform in `box`, which does not move.
    """
    low, high = box
    x_raw = np.asarray(x_raw, np.float64)
    x_star = draws.moved_minimiser(name, box, x_raw, seed)

    def data():
        arrays = {"raw_minimiser": x_raw, "minimiser": x_star}
        if rotate:
            arrays["rotation"] = stored.matrix(stored.rotation, dim, seed)
        return arrays

    def loss(x, data):
        offset = x - data["minimiser"]
        if "rotation" in data:
            offset = data["rotation"] @ offset
        return value(data["raw_minimiser"] + offset)

    return Problem(
        name=name,
        description=f"{description}; instance {seed}: minimiser moved"
        + (" and rotated" if rotate else ""),
        tags=frozenset({"nonconvex"}),
        dim=dim,
        init=lambda key: draws.uniform(key, (dim,), low, high),
        loss=loss,
        data=data,
        f_star=f_star,
        x_star=x_star,
        target=target,
        steps=steps,
    )


def beale(seed: int = 1) -> Problem:
    """Beale (1958): flat plateaus and steep walls; raw minimum at (3, 0.5); x0 in [-2, 2]^2."""
    return function_problem(
        "beale", "Beale, 2-D, minimum 0", beale_value, 2, (-2.0, 2.0),
        0.0, [3.0, 0.5], 1e-4, 1000, seed,
    )  # fmt: skip


def himmelblau(seed: int = 1) -> Problem:
    """Himmelblau (1972): four global minima of value 0, the raw one kept as x_star at (3, 2);
    x0 in [-5, 5]^2."""
    return function_problem(
        "himmelblau", "Himmelblau, 2-D, four global minima of 0",
        himmelblau_value, 2, (-5.0, 5.0), 0.0, [3.0, 2.0], 1e-4, 1000, seed,
    )  # fmt: skip


def six_hump_camel(seed: int = 1) -> Problem:
    """Six-hump camel: two global minima at +-(0.0898, -0.7127) of value -1.0316; x0 in [-2, 2]^2.

    x_star and f_star are a float64 Newton solve from the published (0.0898, -0.7126).
    """
    return function_problem(
        "six_hump_camel", "six-hump camel, 2-D, two global minima of -1.0316",
        six_hump_camel_value, 2, (-2.0, 2.0), -1.0316284534898774,
        [0.08984201310031806, -0.7126564030207396], 1e-4, 1000, seed,
    )  # fmt: skip


def rastrigin(dim: int = 10, seed: int = 1) -> Problem:
    """Rastrigin (1974): raw, a local minimum near every integer point; x0 in [-5.12, 5.12]^n.

    Each local minimum near a nonzero integer point costs about k^2 per coordinate.
    Separable: the instance is rotated.
    """
    return function_problem(
        f"rastrigin_{dim}d", f"Rastrigin, {dim}-D, minimum 0, many local minima",
        rastrigin_value, dim, (-5.12, 5.12), 0.0, np.zeros(dim), 1e-3, 1000, seed, rotate=True,
    )  # fmt: skip


def ackley(dim: int = 10, seed: int = 1) -> Problem:
    """Ackley (1987): a funnel under a cosine ripple; x0 in [-5, 5]^n (the ripple region).

    The ripple is separable: the instance is rotated.
    """
    return function_problem(
        f"ackley_{dim}d", f"Ackley, {dim}-D, minimum 0, many local minima",
        ackley_value, dim, (-5.0, 5.0), 0.0, np.zeros(dim), 1e-3, 1000, seed, rotate=True,
    )  # fmt: skip


def styblinski_tang(dim: int = 10, seed: int = 1) -> Problem:
    """Styblinski-Tang: 2^n local minima, the raw global one at x_i = -2.9035; x0 in [-5, 5]^n.

    Separable: the instance is rotated.
    """
    return function_problem(
        f"styblinski_tang_{dim}d",
        f"Styblinski-Tang, {dim}-D, minimum {dim * STYBLINSKI_TANG_F:.4f}",
        styblinski_tang_value, dim, (-5.0, 5.0), dim * STYBLINSKI_TANG_F,
        np.full(dim, STYBLINSKI_TANG_X), 1e-3, 1000, seed, rotate=True,
    )  # fmt: skip
