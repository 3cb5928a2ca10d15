"""The 24 noiseless functions of COCO's BBOB suite, their instances drawn as COCO draws them.

Hansen, Finck, Ros & Auger, "Real-Parameter Black-Box Optimization Benchmarking 2009:
Noiseless Functions Definitions", INRIA research report RR-6829 (the definitions and the
names below: T_osz, T_asy, Lambda, f_pen). An instance of function f is COCO's instance
number i: every random quantity (the optimum x_opt, the optimal value f_opt, the
rotations R and Q, Gallagher's peaks) comes from COCO's own generator seeded with
rseed = f + 10000 i (f4 takes f3's seed and f18 f17's), so that `value` equals COCO's
f(x) for the same (function, dimension, instance); `tests/test_bbob.py` checks it against
the official implementation (`pip install -e '.[bbob]'`).

The instance is data: `instance_data(function, dim, instance)` is a dict of arrays
(x_opt, R, Q, and Gallagher's peak positions and scalings), drawn on the host in float64,
and `value(function, x, data)` is f(x) - f_opt, a pure JAX function of both, so one
compiled program runs every instance of a (function, dimension). f* = 0 and
x* = x_opt, exactly, for every instance.

Vectors are rows (z = x M), as in the report's reference code. Three functions are not
differentiable everywhere: the step ellipsoid (f7: piecewise constant but for its small
linear term), the sharp ridge (f13: a cone) and Katsuura (f23: a fractal); their gradient
is what JAX's rules give (zero on f7's plateaus). The others are smooth but at sets of
measure zero (the kinks of |x| in T_osz and f_pen at their switch points).
"""

import functools
import math

import jax.numpy as jnp
import numpy as np

from problems.base import Problem

TAG = "bbob"
FUNCTIONS = tuple(range(1, 25))
DIMENSIONS = (2, 5, 10, 20)  # the suite's; any dim >= 2 builds
STEPS = 1000  # default step budget
# The problem's own target on f - f_opt. COCO's last one, 1e-8, lies below what float32
# resolves where a function subtracts large terms near its optimum (f16, f19, f20, f24:
# about 1e-6 to 1e-5); the relative levels judge the rest.
TARGET = 1e-5
# The first of a suite's held-out evaluation seeds (`bench.spec.EVAL_SEED_START`).
HELD_OUT_FROM = 1000
# The function groups of the report (and of COCO's aggregated figures).
GROUPS = {
    "separable": (1, 2, 3, 4, 5),
    "moderate": (6, 7, 8, 9),
    "ill-conditioned": (10, 11, 12, 13, 14),
    "multimodal": (15, 16, 17, 18, 19),
    "weakly structured": (20, 21, 22, 23, 24),
}
NAMES = {
    1: "sphere",
    2: "ellipsoid",
    3: "rastrigin",
    4: "bueche_rastrigin",
    5: "linear_slope",
    6: "attractive_sector",
    7: "step_ellipsoid",
    8: "rosenbrock",
    9: "rosenbrock_rotated",
    10: "ellipsoid_rotated",
    11: "discus",
    12: "bent_cigar",
    13: "sharp_ridge",
    14: "different_powers",
    15: "rastrigin_rotated",
    16: "weierstrass",
    17: "schaffers_f7",
    18: "schaffers_f7_ill_conditioned",
    19: "griewank_rosenbrock",
    20: "schwefel",
    21: "gallagher_101",
    22: "gallagher_21",
    23: "katsuura",
    24: "lunacek_bi_rastrigin",
}
NOT_DIFFERENTIABLE = (7, 13, 23)
# Functions whose generator seed is another function's.
_SEED_OF = {4: 3, 18: 17}
# Gallagher: (peaks, the global peak's condition, the box of the local optima's
# coordinates as a factor of [-5, 5]).
_GALLAGHER = {21: (101, 1000.0**0.5, 1.0), 22: (21, 1000.0, 0.98)}


# --- COCO's generator (host side, float64) --------------------------------------------


def uniform(count: int, seed: float) -> np.ndarray:
    """`count` numbers in (0, 1) from COCO's generator: Park and Miller's minimal standard
    generator (Schrage's factorisation of 16807 x mod 2^31 - 1) behind a 32-entry shuffle
    table, warmed up for 40 draws from `seed`."""
    state = max(abs(seed), 1.0)

    def advance(state):
        high = math.floor(state / 127773.0)
        state = 16807.0 * (state - high * 127773.0) - 2836.0 * high
        return state + 2147483647.0 if state < 0 else state

    table = [0.0] * 32
    for i in range(39, -1, -1):
        state = advance(state)
        if i < 32:
            table[i] = state
    last = table[0]
    out = np.empty(count)
    for i in range(count):
        state = advance(state)
        slot = int(math.floor(last / 67108865.0))
        last, table[slot] = table[slot], state
        out[i] = last / 2.147483647e9
    out[out == 0] = 1e-99
    return out


def normal(count: int, seed: float) -> np.ndarray:
    """`count` standard normal numbers: Box and Muller's transform of 2 `count` uniforms."""
    u = uniform(2 * count, seed)
    g = np.sqrt(-2.0 * np.log(u[:count])) * np.cos(2.0 * np.pi * u[count:])
    g[g == 0] = 1e-99
    return g


def rotation(seed: float, dim: int) -> np.ndarray:
    """An orthogonal matrix: the rows of a normal dim x dim matrix, orthonormalised in
    order (classical Gram-Schmidt)."""
    b = normal(dim * dim, seed).reshape(dim, dim)
    for i in range(dim):
        for j in range(i):
            b[i] = b[i] - (b[i] @ b[j]) * b[j]
        b[i] = b[i] / math.sqrt(np.sum(b[i] ** 2))
    return b


def _x_opt(seed: float, dim: int) -> np.ndarray:
    """x_opt uniform on [-4, 4] to four decimals, never 0."""
    x = 8.0 * np.floor(1e4 * uniform(dim, seed)) / 1e4 - 4.0
    x[x == 0] = -1e-5
    return x


def _seed(function: int, instance: int) -> float:
    return float(_SEED_OF.get(function, function) + 10000 * instance)


def f_opt(function: int, instance: int) -> float:
    """The optimal value of an instance: 100 g1 / g2 of two normal draws, to two decimals,
    clipped to [-1000, 1000]."""
    seed = _seed(function, instance)
    ratio = normal(1, seed)[0] / normal(1, seed + 1)[0]
    return min(1000.0, max(-1000.0, math.floor(100.0 * 100.0 * ratio + 0.5) / 100.0))


def instance_data(function: int, dim: int, instance: int) -> dict[str, np.ndarray]:
    """The arrays that make (function, dim) instance `instance`: "x_opt" (where the value
    is f_opt), "f_opt" (a scalar, for reference: `value` subtracts it), "R" and "Q" (the
    rotations of rseed and rseed + 1e6), and for Gallagher's functions "peaks" and
    "peak_scales" (each local optimum and the diagonal of its inverse covariance)."""
    if function not in NAMES:
        raise ValueError(f"function must be one of 1..24, got {function!r}")
    if dim < 2:
        raise ValueError(f"dim must be >= 2, got {dim!r}")
    seed = _seed(function, instance)
    data = {
        "R": rotation(seed, dim),
        "Q": rotation(seed + 1e6, dim),
        "f_opt": np.float64(f_opt(function, instance)),
    }
    x = _x_opt(seed, dim)
    if function == 4:  # the odd variables' optimum on the positive side
        x[::2] = np.abs(x[::2])
    elif function == 5:
        x = 5.0 * np.sign(x)
    elif function == 8:
        x = 0.75 * x
    elif function in (9, 19):  # where the rotated Rosenbrock's optimum z = 1 falls
        x = data["R"] @ np.full(dim, 0.5) / max(1.0, math.sqrt(dim) / 8.0)
    elif function == 12:
        x = _x_opt(seed + 1e6, dim)
    elif function == 20:
        x = 0.5 * 4.2096874633 * np.sign(uniform(dim, seed) - 0.5)
    elif function == 24:
        x = 0.5 * 2.5 * np.sign(normal(dim, seed))
    elif function in _GALLAGHER:
        count, top, box = _GALLAGHER[function]
        conditions = 1000.0 ** np.linspace(0.0, 1.0, count - 1)
        conditions = np.insert(conditions[np.argsort(uniform(count - 1, seed))], 0, top)
        scales = []
        for i, condition in enumerate(conditions):
            order = np.argsort(uniform(dim, seed + 1e3 * i))  # a permutation, not a rotation
            scales.append((condition ** np.linspace(-0.5, 0.5, dim))[order])
        local = box * (10.0 * uniform(dim * count, seed) - 5.0).reshape(count, dim)
        peaks = local @ data["R"]  # where the peaks are, in rotated coordinates
        peaks[0] = 0.8 * peaks[0]  # the global one not too close to the box's edge
        data |= {"peaks": peaks, "peak_scales": np.stack(scales)}
        x = peaks[0] @ data["R"].T
    data["x_opt"] = x
    return data


# --- the functions (JAX, any float dtype) ---------------------------------------------


def _ramp(dim: int, dtype) -> jnp.ndarray:
    """i / (dim - 1), i = 0 .. dim - 1."""
    return jnp.linspace(0.0, 1.0, dim, dtype=dtype)


def t_osz(x):
    """The oscillation T_osz, element-wise: sign(x) exp(x^ + 0.049 (sin(c1 x^) +
    sin(c2 x^))), x^ = log|x| (0 at 0), c1, c2 = 10, 7.9 for x > 0 and 5.5, 3.1 else."""
    nonzero = x != 0
    log = jnp.log(jnp.where(nonzero, jnp.abs(x), 1.0))
    c1 = jnp.where(x > 0, 10.0, 5.5)
    c2 = jnp.where(x > 0, 7.9, 3.1)
    return jnp.where(
        nonzero, jnp.sign(x) * jnp.exp(log + 0.049 * (jnp.sin(c1 * log) + jnp.sin(c2 * log))), 0.0
    )


def t_asy(x, beta: float):
    """The asymmetry T_asy^beta: x_i^(1 + beta i/(D-1) sqrt(x_i)) where x_i > 0."""
    positive = x > 0
    safe = jnp.where(positive, x, 1.0)
    power = 1.0 + beta * _ramp(x.shape[-1], x.dtype) * jnp.sqrt(safe)
    return jnp.where(positive, safe**power, x)


def scaling(alpha: float, dim: int, dtype):
    """The diagonal of Lambda^alpha: alpha^(i / (2 (D - 1)))."""
    return jnp.asarray(alpha, dtype) ** (0.5 * _ramp(dim, dtype))


def f_pen(x):
    """The boundary penalty sum max(0, |x_i| - 5)^2."""
    return jnp.sum(jnp.maximum(0.0, jnp.abs(x) - 5.0) ** 2)


def _rastrigin(z):
    return 10.0 * (z.shape[-1] - jnp.sum(jnp.cos(2.0 * jnp.pi * z))) + jnp.sum(z**2)


def _rosenbrock(z):
    return jnp.sum(100.0 * (z[:-1] ** 2 - z[1:]) ** 2 + (z[:-1] - 1.0) ** 2)


def value(function: int, x, data) -> jnp.ndarray:
    """f(x) - f_opt of BBOB function `function` (1..24) at the row vector x, for the
    instance `data` (`instance_data`, as arrays of x's dtype)."""
    dim, dtype = x.shape[-1], x.dtype
    x_opt, r, q = data["x_opt"], data["R"], data["Q"]
    ramp = _ramp(dim, dtype)
    shifted = x - x_opt
    if function == 1:
        return jnp.sum(shifted**2)
    if function == 2:
        return jnp.sum(1e6**ramp * t_osz(shifted) ** 2)
    if function == 3:
        return _rastrigin(scaling(10.0, dim, dtype) * t_asy(t_osz(shifted), 0.2))
    if function == 4:
        z = t_osz(shifted)
        odd = (jnp.arange(dim) % 2 == 0) & (z > 0)  # the 1st, 3rd, ... variables
        z = scaling(10.0, dim, dtype) * jnp.where(odd, 10.0 * z, z)
        return _rastrigin(z) + 100.0 * f_pen(x)
    if function == 5:
        s = jnp.sign(x_opt) * 10.0**ramp
        z = jnp.where(x * x_opt < 25.0, x, x_opt)
        return jnp.sum(5.0 * jnp.abs(s) - s * z)
    if function == 6:
        z = shifted @ (r * scaling(10.0, dim, dtype)) @ q
        z = jnp.where(z * x_opt > 0, 100.0 * z, z)
        return t_osz(jnp.sum(z**2)) ** 0.9
    if function == 7:
        z_hat = shifted @ (r * scaling(10.0, dim, dtype))
        z_bar = jnp.where(jnp.abs(z_hat) > 0.5, jnp.round(z_hat), jnp.round(10.0 * z_hat) / 10.0)
        z = z_bar @ q
        return 0.1 * jnp.maximum(1e-4 * jnp.abs(z_hat[0]), jnp.sum(100.0**ramp * z**2)) + f_pen(x)
    if function == 8:
        return _rosenbrock(max(1.0, math.sqrt(dim) / 8.0) * shifted + 1.0)
    if function == 9:
        return _rosenbrock(max(1.0, math.sqrt(dim) / 8.0) * (x @ r) + 0.5)
    if function == 10:
        return jnp.sum(1e6**ramp * t_osz(shifted @ q) ** 2)
    if function == 11:
        z = t_osz(shifted @ q)
        return 1e6 * z[0] ** 2 + jnp.sum(z[1:] ** 2)
    if function == 12:
        z = t_asy(shifted @ q, 0.5) @ q
        return z[0] ** 2 + 1e6 * jnp.sum(z[1:] ** 2)
    if function == 13:
        z = shifted @ (r * scaling(10.0, dim, dtype)) @ q
        return z[0] ** 2 + 100.0 * jnp.sqrt(jnp.sum(z[1:] ** 2))
    if function == 14:
        z = shifted @ q
        return jnp.sqrt(jnp.sum(jnp.abs(z) ** (2.0 + 4.0 * ramp)))
    if function == 15:
        z = t_asy(t_osz(shifted @ q), 0.2) @ (r * scaling(10.0, dim, dtype)) @ q
        return _rastrigin(z)
    if function == 16:
        z = t_osz(shifted @ q) @ (r * scaling(0.01, dim, dtype)) @ q
        k = jnp.arange(12, dtype=dtype)
        f0 = jnp.sum(0.5**k * jnp.cos(jnp.pi * 3.0**k))
        terms = 0.5**k * jnp.cos(2.0 * jnp.pi * 3.0**k * (z[:, None] + 0.5))
        return 10.0 * (jnp.sum(terms) / dim - f0) ** 3 + 10.0 / dim * f_pen(x)
    if function in (17, 18):
        condition = 10.0 if function == 17 else 1000.0
        z = t_asy(shifted @ q, 0.5) @ (r * scaling(condition, dim, dtype))
        s = z[:-1] ** 2 + z[1:] ** 2  # the squared s_i of the report
        return jnp.mean(s**0.25 * (jnp.sin(50.0 * s**0.1) ** 2 + 1.0)) ** 2 + 10.0 * f_pen(x)
    if function == 19:
        z = max(1.0, math.sqrt(dim) / 8.0) * (x @ r) + 0.5
        s = 100.0 * (z[:-1] ** 2 - z[1:]) ** 2 + (1.0 - z[:-1]) ** 2
        return 10.0 + 10.0 / (dim - 1) * jnp.sum(s / 4000.0 - jnp.cos(s))
    if function == 20:
        twice = 2.0 * jnp.abs(x_opt)
        z = 2.0 * jnp.sign(x_opt) * x
        z = z.at[1:].add(0.25 * (z[:-1] - twice[:-1]))
        z = 100.0 * (scaling(10.0, dim, dtype) * (z - twice) + twice)
        penalty = 0.01 * jnp.sum(jnp.maximum(0.0, jnp.abs(z) - 500.0) ** 2)
        # z sin(sqrt|z|), its gradient 0 at z = 0 (where sqrt's is infinite)
        root = jnp.sqrt(jnp.where(z == 0, 1.0, jnp.abs(z)))
        terms = jnp.where(z == 0, 0.0, z * jnp.sin(root))
        return 0.01 * (418.9828872724339 - jnp.mean(terms)) + penalty
    if function in _GALLAGHER:
        count = _GALLAGHER[function][0]
        heights = jnp.concatenate(
            [jnp.full(1, 10.0, dtype), jnp.linspace(1.1, 9.1, count - 1, dtype=dtype)]
        )
        gaps = (x @ r)[None, :] - data["peaks"]
        peaks = heights * jnp.exp(-0.5 / dim * jnp.sum(data["peak_scales"] * gaps**2, axis=1))
        return t_osz(10.0 - jnp.max(peaks)) ** 2 + f_pen(x)
    if function == 23:
        z = shifted @ (r * scaling(100.0, dim, dtype)) @ q
        powers = 2.0 ** jnp.arange(1, 33, dtype=dtype)
        scaled = z[:, None] * powers
        sums = jnp.sum(jnp.abs(scaled - jnp.round(scaled)) / powers, axis=1)
        factors = (1.0 + jnp.arange(1, dim + 1, dtype=dtype) * sums) ** (10.0 / dim**1.2)
        return 10.0 / dim**2 * (jnp.prod(factors) - 1.0) + f_pen(x)
    if function == 24:
        mu0, d = 2.5, 1.0
        s = 1.0 - 1.0 / (2.0 * math.sqrt(dim + 20.0) - 8.2)
        mu1 = -math.sqrt((mu0**2 - d) / s)
        x_hat = 2.0 * jnp.sign(x_opt) * x
        z = (x_hat - mu0) @ (r * scaling(100.0, dim, dtype)) @ q
        spheres = jnp.minimum(
            jnp.sum((x_hat - mu0) ** 2), d * dim + s * jnp.sum((x_hat - mu1) ** 2)
        )
        return spheres + 10.0 * (dim - jnp.sum(jnp.cos(2.0 * jnp.pi * z))) + 1e4 * f_pen(x)
    raise ValueError(f"function must be one of 1..24, got {function!r}")


# --- as problems ----------------------------------------------------------------------


def instance_of(seed: int) -> int:
    """COCO's instance a lane of `seed` plays: the tuning seeds 0, 1, ... instances 1, 2,
    ...; the held-out seeds 1000, 1001, ... instances 6, 7, .... With a suite's 5 tuning
    and 10 held-out seeds these are COCO's fifteen, tuned on 1-5 and reported on 6-15
    (more than 5 tuning seeds would reach held-out instances)."""
    return seed + 1 if seed < HELD_OUT_FROM else seed - HELD_OUT_FROM + 6


def name(function: int, dim: int) -> str:
    return f"bbob_f{function:02d}_{dim}d"


def names() -> tuple[str, ...]:
    """Every (function, dimension) of the suite, function first."""
    return tuple(_NAMED)


def parse(text: str) -> tuple[int, int]:
    """(function, dim) of the suite's problem named `text` (`names`); KeyError otherwise."""
    return _NAMED[text]


_NAMED = {name(f, d): (f, d) for f in FUNCTIONS for d in DIMENSIONS}


def group(function: int) -> str:
    return next(g for g, members in GROUPS.items() if function in members)


@functools.cache
def problem(function: int, dim: int) -> Problem:
    """BBOB function `function` in `dim` dimensions as a `Problem` whose lanes are
    instances (`instance_of`; `Problem.lane_data`): the loss is f - f_opt (f* = 0, at
    each instance's x_opt), the start COCO's initial solution, the origin, for every
    lane."""
    if function not in NAMES:
        raise ValueError(f"function must be one of 1..24, got {function!r}")
    if dim < 2:
        raise ValueError(f"dim must be >= 2, got {dim!r}")

    def lane_data(seed: int) -> dict[str, np.ndarray]:
        drawn = instance_data(function, dim, instance_of(seed))
        return {k: v for k, v in drawn.items() if k != "f_opt"}

    kind = " (not differentiable everywhere)" if function in NOT_DIFFERENTIABLE else ""
    return Problem(
        name=name(function, dim),
        description=f"BBOB f{function} {NAMES[function]}, {dim}-D, COCO's instances{kind}",
        tags=frozenset({TAG, group(function)}),
        dim=dim,
        init=lambda key: jnp.zeros(dim, jnp.float32),
        loss=functools.partial(value, function),
        f_star=0.0,
        f_star_note="the loss is f - f_opt: 0 at every instance's x_opt",
        target=TARGET,
        steps=STEPS,
        lane_data=lane_data,
    )
