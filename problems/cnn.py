"""Convolutional classifier on the 8x8 digits, in size presets tiny, cpu and gpu.

    image 8x8x1 -> [conv 3x3 -> layer norm -> ReLU -> 2x2 average pool] x 2 -> linear -> 10

A convolution is written as a matrix product over 3x3 patches (nine shifted copies of
the zero-padded image side by side): under the runner's `vmap` over lanes, each lane
having its own kernel, that is a batched matrix product, which XLA runs well on every
backend, where a per-lane kernel would make a grouped convolution. The normalization
layer (`problems.layers.layer_norm`) normalizes each example's feature map over its
height, width and channels, with a learned scale and shift per channel; `norm=False`
drops it, the network otherwise the same, so that the pair shows what normalization does
to the per-layer gradient norms (`layer_grad_norms`, one per layer, input layer first).

Trains on minibatches drawn with replacement (`problems.minibatch`) from 1297 examples
of the fixed digits permutation and reports `test_accuracy` and `test_loss` on the next
500. The training loss is recorded on the first `eval_examples` training examples. The
minimum is unknown: `f_star = 0`, the cross-entropy's lower bound, and `target` is an
absolute training-loss level, as for the MLPs.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp

from problems import datasets
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
from problems.losses import softmax_cross_entropy_with_integer_labels
from problems.minibatch import minibatch

SIDE, CLASSES = 8, 10
N_TRAIN, N_TEST = 1297, 500


@dataclasses.dataclass(frozen=True)
class Size:
    channels: tuple[int, int]  # of the two convolutions
    batch: int  # examples per step
    steps: int  # step budget
    eval_examples: int  # training examples the recorded loss is taken on
    target: float  # training loss to reach


SIZES = {
    "tiny": Size(channels=(4, 8), batch=16, steps=20, eval_examples=32, target=0.5),
    "cpu": Size(channels=(8, 16), batch=32, steps=300, eval_examples=128, target=0.15),
    "gpu": Size(channels=(64, 128), batch=256, steps=3000, eval_examples=1024, target=0.02),
}


def conv3x3(x, layer):
    """'Same' 3x3 convolution of x (examples, height, width, channels) as patches @ kernel."""
    n, h, w, c = x.shape
    padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    patches = jnp.concatenate(
        [padded[:, i : i + h, j : j + w, :] for i in range(3) for j in range(3)], axis=-1
    )
    return dense(patches, layer)  # (n, h, w, 9 c) @ (9 c, out) + b


def average_pool(x):
    """2x2 average pooling of (examples, height, width, channels)."""
    n, h, w, c = x.shape
    return jnp.mean(x.reshape(n, h // 2, 2, w // 2, 2, c), axis=(2, 4))


def cnn_logits(params, x, norm: bool):
    h = x.reshape(-1, SIDE, SIDE, 1).astype(params[0]["w"].dtype)
    for layer in params[:-1]:
        h = conv3x3(h, layer)
        if norm:
            h = layer_norm(h, layer["scale"], layer["shift"], axes=(1, 2, 3))
        h = average_pool(jax.nn.relu(h))
    return dense(h.reshape(len(h), -1), params[-1])


def cnn_loss(params, batch, norm: bool):
    x, y = batch
    logits = at_least_float32(cnn_logits(params, x, norm))
    return softmax_cross_entropy_with_integer_labels(logits, y)


def init_cnn(key, channels, norm: bool):
    """He-normal kernels, zero biases, unit scales and zero shifts."""
    c1, c2 = channels
    features = (SIDE // 4) ** 2 * c2
    shapes = [(9 * 1, c1), (9 * c1, c2), (features, CLASSES)]
    kernels = scaled_normal(key, shapes, [9, 9 * c1, features], gain=2.0)
    params = []
    for kernel, (_, out) in zip(kernels, shapes, strict=True):
        layer = {"w": kernel, "b": jnp.zeros(out, jnp.float32)}
        if norm and len(params) < 2:
            layer |= {"scale": jnp.ones(out, jnp.float32), "shift": jnp.zeros(out, jnp.float32)}
        params.append(layer)
    return params


def test_accuracy(params, test, norm: bool):
    x, y = test
    return jnp.mean(jnp.argmax(cnn_logits(params, x, norm), axis=-1) == y)


def cnn_classifier(scale: str = "cpu", norm: bool = True) -> Problem:
    """The CNN on digits at `scale` (tiny, cpu or gpu), with or without its normalization."""
    check_scale(scale)
    size = SIZES[scale]
    init = functools.partial(init_cnn, channels=size.channels, norm=norm)
    loss = functools.partial(cnn_loss, norm=norm)
    name = "cnn_digits" + ("" if norm else "_no_norm")
    c1, c2 = size.channels
    full = Problem(
        name=name,
        description=(
            f"CNN conv{c1}-conv{c2}{'' if norm else ' without normalization'}, digits "
            f"({N_TRAIN} train), {parameter_count(init)} parameters, {scale} scale"
        ),
        tags=frozenset({"nonconvex", "dataset", "cnn"}),
        dim=parameter_count(init),
        init=init,
        loss=loss,
        data=lambda: datasets.split("digits", N_TRAIN, N_TEST)[0],
        f_star=0.0,
        target=size.target,
        steps=size.steps,
        layer_grad_norms=layer_norms,
        eval_batch=lambda data: jax.tree.map(lambda a: a[: size.eval_examples], data),
        test_data=lambda: datasets.split("digits", N_TRAIN, N_TEST)[1],
        metrics={
            "test_accuracy": functools.partial(test_accuracy, norm=norm),
            "test_loss": loss,
        },
    )
    stochastic = minibatch(full, batch_size=size.batch)
    return dataclasses.replace(stochastic, name=name)
