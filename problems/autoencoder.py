"""Denoising autoencoder on the 8x8 digits, in size presets tiny, cpu and gpu.

    noisy image 64 -> [dense -> layer norm -> ReLU] -> code -> [dense -> layer norm -> ReLU]
                   -> dense -> 64 (the clean image)

Vincent et al., "Extracting and composing robust features with denoising autoencoders",
ICML 2008. Inputs are the standardised pixels plus Gaussian noise of deviation `NOISE`
(drawn with `problems.draws.normal`, the same on every machine), and the loss is the mean
squared error of the reconstruction against the clean image. A step trains on `batch`
images drawn with replacement from 1297 training digits, each with noise of its own
from the step's key; the training loss is recorded on the first `eval_examples`
training images under one fixed draw of noise, and `test_mse` at the end on 500
held-out digits under another. The minimum is unknown (noise cannot be undone
entirely): `f_star = 0` is the lower bound and `target` an absolute loss level.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp

from problems import datasets, draws
from problems.base import Problem
from problems.layers import (
    at_least_float32,
    check_scale,
    dense,
    layer_norm,
    layer_norms,
    parameter_count,
    scaled_normal,
)
from problems.losses import mse

PIXELS, N_TRAIN, N_TEST = 64, 1297, 500
NOISE = 1.0  # deviation of the input noise, in units of each pixel's standard deviation
EVAL_KEY, TEST_KEY = 1, 2  # keys of the fixed noise draws


@dataclasses.dataclass(frozen=True)
class Size:
    hidden: int
    code: int
    batch: int
    steps: int
    eval_examples: int
    target: float  # training loss to reach


SIZES = {
    "tiny": Size(hidden=16, code=8, batch=16, steps=20, eval_examples=32, target=0.9),
    "cpu": Size(hidden=64, code=16, batch=32, steps=300, eval_examples=128, target=0.4),
    "gpu": Size(hidden=1024, code=64, batch=256, steps=3000, eval_examples=1024, target=0.25),
}


def reconstruct(params, x):
    enc_hidden, code, dec_hidden, out = params
    h = jax.nn.relu(layer_norm(dense(x.astype(out["w"].dtype), enc_hidden), **enc_hidden["norm"]))
    h = jax.nn.relu(layer_norm(dense(dense(h, code), dec_hidden), **dec_hidden["norm"]))
    return dense(h, out)


def denoising_loss(params, batch):
    """Mean squared error of the reconstruction of the noisy inputs against the clean images."""
    return mse(at_least_float32(reconstruct(params, batch["inputs"])), batch["targets"])


def noisy(clean, key):
    return {"inputs": clean + NOISE * draws.normal(key, clean.shape), "targets": clean}


def init_autoencoder(key, size: Size):
    """LeCun-normal weights, zero biases, unit scales and zero shifts."""
    widths = [PIXELS, size.hidden, size.code, size.hidden, PIXELS]
    shapes = list(zip(widths[:-1], widths[1:], strict=True))
    weights = scaled_normal(key, shapes, widths[:-1])
    params = [
        {"w": w, "b": jnp.zeros(o, jnp.float32)} for w, (_, o) in zip(weights, shapes, strict=True)
    ]
    for layer in (params[0], params[2]):
        layer["norm"] = {
            "scale": jnp.ones(size.hidden, jnp.float32),
            "shift": jnp.zeros(size.hidden, jnp.float32),
        }
    return params


def denoising_autoencoder(scale: str = "cpu") -> Problem:
    """The denoising autoencoder on digits at `scale` (tiny, cpu or gpu)."""
    check_scale(scale)
    size = SIZES[scale]
    init = functools.partial(init_autoencoder, size=size)

    def data():
        return datasets.split("digits", N_TRAIN, N_TEST)[0][0]  # the images; labels unused

    def sample_batch(images, key):
        pick, noise = jax.random.split(key)
        index = jax.random.randint(pick, (size.batch,), 0, len(images), jnp.int32)
        return noisy(images[index], noise)

    def eval_batch(images):
        return noisy(images[: size.eval_examples], jax.random.PRNGKey(EVAL_KEY))

    def test_data():
        return noisy(datasets.split("digits", N_TRAIN, N_TEST)[1][0], jax.random.PRNGKey(TEST_KEY))

    dim = parameter_count(init)
    widths = f"64-{size.hidden}-{size.code}-{size.hidden}-64"
    return Problem(
        name="autoencoder_digits",
        description=f"denoising autoencoder {widths}, digits, {dim} parameters, {scale} scale",
        tags=frozenset({"nonconvex", "stochastic", "autoencoder"}),
        dim=dim,
        init=init,
        loss=denoising_loss,
        data=data,
        sample_batch=sample_batch,
        f_star=0.0,
        target=size.target,
        steps=size.steps,
        layer_grad_norms=layer_norms,
        eval_batch=eval_batch,
        test_data=test_data,
        metrics={"test_mse": denoising_loss},
    )
