"""Decoder-only transformer language model on bytes of Python source, in size presets.

    bytes -> token + position embedding -> [x + attn(LN(x)); x + MLP(LN(x))] x layers
          -> LN -> logits over the 256 byte values (output layer tied to the embedding)

Pre-norm residual blocks (Xiong et al. 2020) with causal multi-head self-attention
(Vaswani et al. 2017) and a GELU MLP four times as wide; GPT-2's initialisation (normal
0.02, the projections into the residual stream scaled by 1/sqrt(2 layers)).

The corpus (`problems.datasets.text("python_stdlib")`, see problems/data/README.md) is
1.3 MB of the Python 3.11 standard library's own source files, shipped in the repository
under the PSF licence: the training bytes are its first files, the held-out bytes its
last 10 files (125 kB), never trained on. A training step takes `batch` windows of
`context + 1` bytes at offsets drawn from the step's key (inputs and next-byte targets);
the recorded training loss is the mean next-byte cross-entropy, in nats, on
`eval_windows` windows at fixed, evenly spaced offsets of the training bytes; at the end
the run reports `test_loss` (nats per byte) and `perplexity` (its exponential) on
`test_windows` evenly spaced windows of the held-out bytes. A byte-level model is only
worth its parameters if it beats the unigram model (`unigram_entropy()`, the held-out
cross-entropy of the training bytes' frequencies), and worth its context if it beats
the bigram model (`bigram_entropy()`, of their pair frequencies): both are the problem's
`baselines` of `test_loss`, printed beside its results.
"""

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from problems import datasets, draws
from problems.base import Problem
from problems.layers import (
    at_least_float32,
    check_scale,
    dense,
    layer_norm,
    layer_norms,
    parameter_count,
)
from problems.losses import softmax_cross_entropy_with_integer_labels

CORPUS, VOCAB = "python_stdlib", 256


@dataclasses.dataclass(frozen=True)
class Size:
    width: int  # model width d
    layers: int
    heads: int
    context: int  # bytes each prediction sees
    batch: int  # windows per step
    steps: int
    eval_windows: int  # training windows the recorded loss is taken on
    test_windows: int  # held-out windows of the end-of-run metrics
    target: float  # training loss (nats per byte) to reach


SIZES = {
    "tiny": Size(16, 1, 2, 16, 4, 20, 8, 16, target=4.0),
    "cpu": Size(32, 2, 2, 32, 8, 200, 16, 256, target=2.7),
    # 10.8M parameters, 256-byte context: a real workload for an accelerator.
    "gpu": Size(384, 6, 6, 256, 32, 5000, 64, 480, target=1.2),
}


def windows(stream, starts, length):
    """The `length` bytes from each start: (len(starts), length) int32 tokens."""
    return stream[starts[:, None] + jnp.arange(length)].astype(jnp.int32)


def spaced_starts(n: int, count: int, length: int) -> np.ndarray:
    """`count` window offsets evenly spread over a stream of n bytes (fewer if it is short)."""
    count = min(count, n // length)
    return np.linspace(0, n - length, count).astype(np.int32)


def attention(x, block, heads: int):
    """Causal multi-head self-attention of x (windows, positions, width)."""
    b, t, d = x.shape
    q, k, v = jnp.split(dense(x, block["qkv"]), 3, axis=-1)
    q, k, v = (a.reshape(b, t, heads, d // heads) for a in (q, k, v))
    scores = jnp.einsum("bqhc,bkhc->bhqk", q, k) / math.sqrt(d // heads)
    causal = jnp.tril(jnp.ones((t, t), bool))
    scores = jnp.where(causal, at_least_float32(scores), -jnp.inf)
    weights = jax.nn.softmax(scores, axis=-1).astype(x.dtype)
    mixed = jnp.einsum("bhqk,bkhc->bqhc", weights, v).reshape(b, t, d)
    return dense(mixed, block["out"])


def logits(params, tokens, heads: int):
    """Next-byte logits for every position of tokens (windows, positions)."""
    embed = params[0]
    x = embed["tokens"][tokens] + embed["positions"][: tokens.shape[1]]
    for block in params[1:-1]:
        x = x + attention(layer_norm(x, **block["norm1"]), block, heads)
        hidden = jax.nn.gelu(dense(layer_norm(x, **block["norm2"]), block["up"]))
        x = x + dense(hidden, block["down"])
    x = layer_norm(x, **params[-1])
    return x @ embed["tokens"].T


def lm_loss(params, batch, heads: int):
    """Mean next-byte cross-entropy (nats) of windows of context + 1 bytes."""
    z = at_least_float32(logits(params, batch[:, :-1], heads))
    return softmax_cross_entropy_with_integer_labels(z, batch[:, 1:])


def init_lm(key, size: Size):
    d, hidden = size.width, 4 * size.width
    keys = iter(jax.random.split(key, 2 + 4 * size.layers))
    residual = 0.02 / math.sqrt(2 * size.layers)

    def normal(shape, std):
        return std * draws.normal(next(keys), shape)

    def norm():
        return {"scale": jnp.ones(d, jnp.float32), "shift": jnp.zeros(d, jnp.float32)}

    def linear(fan_in, fan_out, std):
        return {"w": normal((fan_in, fan_out), std), "b": jnp.zeros(fan_out, jnp.float32)}

    params = [{"tokens": normal((VOCAB, d), 0.02), "positions": normal((size.context, d), 0.02)}]
    for _ in range(size.layers):
        params.append(
            {
                "norm1": norm(),
                "qkv": linear(d, 3 * d, 0.02),
                "out": linear(d, d, residual),
                "norm2": norm(),
                "up": linear(d, hidden, 0.02),
                "down": linear(hidden, d, residual),
            }
        )
    params.append(norm())
    return params


def unigram_entropy(corpus: str = CORPUS) -> float:
    """Cross-entropy (nats per byte) of the held-out bytes under the training bytes'
    frequencies (add-one smoothed): what a model that ignores context achieves."""
    train, held_out = datasets.text(corpus)
    counts = np.bincount(train, minlength=VOCAB) + 1.0
    log_p = np.log(counts / counts.sum())
    return float(-np.mean(log_p[held_out]))


def bigram_entropy(corpus: str = CORPUS) -> float:
    """Cross-entropy (nats per byte) of each held-out byte after the first under the
    training bytes' pair frequencies, P(b | a) add-one smoothed: what a model that sees
    one byte of context achieves."""
    train, held_out = datasets.text(corpus)
    pairs = train[:-1].astype(np.int64) * VOCAB + train[1:]
    counts = np.bincount(pairs, minlength=VOCAB * VOCAB).reshape(VOCAB, VOCAB) + 1.0
    log_p = np.log(counts / counts.sum(axis=1, keepdims=True))
    return float(-np.mean(log_p[held_out[:-1], held_out[1:]]))


def transformer_lm(scale: str = "cpu") -> Problem:
    """The byte-level language model at `scale` (tiny, cpu or gpu)."""
    check_scale(scale)
    size = SIZES[scale]
    length = size.context + 1
    init = functools.partial(init_lm, size=size)
    loss = functools.partial(lm_loss, heads=size.heads)

    def data():
        return jnp.asarray(datasets.text(CORPUS)[0])

    def sample_batch(stream, key):
        starts = jax.random.randint(key, (size.batch,), 0, len(stream) - length + 1, jnp.int32)
        return windows(stream, starts, length)

    def eval_batch(stream):
        return windows(stream, spaced_starts(len(stream), size.eval_windows, length), length)

    def test_data():
        held_out = datasets.text(CORPUS)[1]
        starts = spaced_starts(len(held_out), size.test_windows, length)
        return jnp.asarray(held_out[starts[:, None] + np.arange(length)], jnp.int32)

    dim = parameter_count(init)
    return Problem(
        name="transformer_stdlib",
        description=(
            f"byte-level transformer LM, {size.layers} x {size.width} wide, {size.context}-byte "
            f"context, Python stdlib source, {dim} parameters, {scale} scale"
        ),
        tags=frozenset({"nonconvex", "stochastic", "transformer"}),
        dim=dim,
        init=init,
        loss=loss,
        data=data,
        sample_batch=sample_batch,
        f_star=0.0,
        target=size.target,
        steps=size.steps,
        layer_grad_norms=layer_norms,
        eval_batch=eval_batch,
        test_data=test_data,
        metrics={"test_loss": loss, "perplexity": lambda p, test: jnp.exp(loss(p, test))},
        baselines={"test_loss": {"unigram": unigram_entropy(), "bigram": bigram_entropy()}},
    )
