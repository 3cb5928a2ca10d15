"""Multi-layer perceptron classifiers on the digits data set, architecture as parameters."""

import functools
import math

import jax
import jax.numpy as jnp

from problems import datasets, draws
from problems.base import Problem
from problems.losses import softmax_cross_entropy_with_integer_labels

FEATURES, CLASSES = 64, 10

# activation -> (function, initial weight variance times fan-in): He et al. (2015)
# for ReLU, LeCun et al. (1998) for the saturating ones.
ACTIVATIONS = {
    "relu": (jax.nn.relu, 2.0),
    "sigmoid": (jax.nn.sigmoid, 1.0),
    "tanh": (jnp.tanh, 1.0),
}


def mlp_logits(params, x, activation):
    """Hidden layers h <- act(h W + b), then a linear output layer."""
    act, _ = ACTIVATIONS[activation]
    h = x
    for layer in params[:-1]:
        h = act(h @ layer["w"] + layer["b"])
    return h @ params[-1]["w"] + params[-1]["b"]


def mlp_loss(params, data, activation):
    x, y = data
    return softmax_cross_entropy_with_integer_labels(mlp_logits(params, x, activation), y)


def layer_norms(grads):
    """sqrt(|dW|^2 + |db|^2) per layer, input layer first."""
    return jnp.stack([jnp.sqrt(jnp.sum(g["w"] ** 2) + jnp.sum(g["b"] ** 2)) for g in grads])


def mlp_classifier(
    hidden: tuple[int, ...] = (32,),
    activation: str = "relu",
    n_train: int = 256,
    n_test: int = 512,
    target: float = 1e-2,
    steps: int = 100,
) -> Problem:
    """Softmax-cross-entropy MLP 64 -> hidden... -> 10 on digits, no regularisation.

    Trains on the first `n_train` examples of the fixed digits permutation and reports
    `test_accuracy` on the next `n_test`. The global minimum is unknown: `f_star = 0`
    is the cross-entropy's lower bound (approached as the net separates the training
    set), so `target` is an absolute training-loss level, the same for every
    architecture: a deep sigmoid net that misses it where the ReLU net of the same
    shape meets it is the vanishing-gradient effect. `layer_grad_norms` gives one
    gradient norm per layer to see it directly.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    if not hidden or min(hidden) < 1:
        raise ValueError(f"hidden must be a non-empty tuple of positive widths, got {hidden!r}")
    widths = (FEATURES, *hidden, CLASSES)
    gain = ACTIVATIONS[activation][1]

    def init(key):
        # One normal draw for all the weights, cut into layers: one random-number
        # kernel to compile instead of one per layer.
        shapes = list(zip(widths[:-1], widths[1:], strict=True))
        noise = draws.normal(key, (sum(i * o for i, o in shapes),))
        params, start = [], 0
        for fan_in, fan_out in shapes:
            w = noise[start : start + fan_in * fan_out].reshape(fan_in, fan_out)
            params.append({"w": math.sqrt(gain / fan_in) * w, "b": jnp.zeros(fan_out, jnp.float32)})
            start += fan_in * fan_out
        return params

    def test_accuracy(params):
        x, y = datasets.split("digits", n_train, n_test)[1]
        logits = mlp_logits(params, x.astype(params[0]["w"].dtype), activation)
        return jnp.mean(jnp.argmax(logits, axis=-1) == y)

    # "32", "64-32", or depth x width for a deep net of equal widths ("6x16")
    uniform_deep = len(hidden) > 1 and len(set(hidden)) == 1
    shape = f"{len(hidden)}x{hidden[0]}" if uniform_deep else "-".join(map(str, hidden))
    return Problem(
        name=f"mlp_digits_{activation}_{shape}",
        description=f"MLP {'-'.join(map(str, widths))}, {activation}, digits ({n_train} train)",
        tags=frozenset({"nonconvex", "dataset"}),
        dim=sum((i + 1) * o for i, o in zip(widths[:-1], widths[1:], strict=True)),
        init=init,
        loss=functools.partial(mlp_loss, activation=activation),
        data=lambda: datasets.split("digits", n_train, n_test)[0],
        f_star=0.0,
        target=target,
        steps=steps,
        metrics={"test_accuracy": test_accuracy},
        layer_grad_norms=layer_norms,
    )
