"""Random draws that are identical to the last bit on every machine.

`jax.random.uniform` and `jax.random.normal` turn random bits into floats with
multiply-adds and a polynomial (the inverse error function) that XLA:CPU compiles to
fused multiply-add instructions where the CPU has them and to a multiply and an add
where it does not: their last bits depend on the instruction set. The draws here
use integer arithmetic on the bits (jax's threefry generator and `randint` are
integer-only), then one conversion to float32 and one multiplication by a power of
two, both exact. No rounding step is left whose result could depend on the machine.

    uniform(key, shape, low, high)  a grid of 2^-s spacing in [low, high], s as fine as
                                    float32 represents exactly (about 2^-23 of the box)
    normal(key, shape)              the Irwin-Hall approximation of N(0, 1): the sum of
                                    12 uniforms on (0, 1) minus 6; mean 0, variance
                                    1 - 2^-40, support [-6, 6]

`moved_minimiser` draws where a problem instance puts its optimum, with numpy integers
and exactly rounded operations, the same on every machine.
"""

import math
import zlib

import jax
import jax.numpy as jnp
import numpy as np

# Each of the normal draw's 12 uniforms has this many random bits; 12 * 2^20 < 2^24,
# so their integer sum converts to float32 exactly.
NORMAL_TERMS = 12
NORMAL_BITS = 20


def _grid_bits(low: float, high: float) -> int:
    """The finest power-of-two grid 2^-s on which every point of [low, high] is a float32."""
    largest = max(abs(low), abs(high), 2.0**-100)
    return 23 - math.ceil(math.log2(largest))


def uniform(key: jax.Array, shape: tuple[int, ...], low: float, high: float) -> jax.Array:
    """float32 points drawn uniformly from the grid of spacing 2^-s in [low, high]."""
    if not low < high:
        raise ValueError(f"uniform needs low < high, got low={low}, high={high}")
    bits = _grid_bits(low, high)
    scale = 2.0**bits
    ticks = jax.random.randint(
        key, shape, math.ceil(low * scale), math.floor(high * scale) + 1, jnp.int32
    )
    return ticks.astype(jnp.float32) * jnp.float32(2.0**-bits)


def normal(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """float32 draws of the Irwin-Hall approximation of the standard normal distribution.

    Each of the 12 uniforms is (k + 1/2) / 2^20 with k uniform on 0 .. 2^20 - 1, so the sum
    minus 6 is (sum k - 6 (2^20 - 1)) / 2^20: an integer, converted exactly, times 2^-20.
    """
    ticks = jax.random.bits(key, (NORMAL_TERMS, *shape), jnp.uint32) >> (32 - NORMAL_BITS)
    centred = jnp.sum(ticks.astype(jnp.int32), axis=0) - NORMAL_TERMS * (2**NORMAL_BITS - 1) // 2
    return centred.astype(jnp.float32) * jnp.float32(2.0**-NORMAL_BITS)


def moved_minimiser(name: str, box: tuple[float, float], x_raw: np.ndarray, seed: int):
    """Where instance `seed` of a test function moves its minimiser x_raw: x_raw + s.

    Each shift s_i is 10-40% of the init box's half-width with a random sign, so the
    minimum is never at the origin nor at the box's centre. The draws are numpy PCG64
    integers from (seed, the function's name), turned into floats by exactly rounded
    operations: the same on every machine.
    """
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    fraction = 0.1 + 0.3 * (rng.integers(0, 2**20, x_raw.shape) / 2**20)
    sign = np.where(rng.integers(0, 2, x_raw.shape) == 1, 1.0, -1.0)
    return x_raw + sign * fraction * ((box[1] - box[0]) / 2)
