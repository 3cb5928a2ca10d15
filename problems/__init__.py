"""Test problems: pure-function losses with known optima, registered in `PROBLEMS`.

`PROBLEMS` holds the built-in families; `problems.sources` resolves a name or a tag in
them and in the optional sources (CUTEst through sif2jax, `problems.cutest`), which are
built only when asked for.

f_star of the regularised convex data-set problems is a float64 Newton solve, of the
least-squares problem the closed-form lstsq solution; tests/test_problems.py re-solves
each one independently. The MLPs store the cross-entropy lower bound 0.

The model families (a CNN, a transformer language model, a denoising autoencoder) come
in size presets `tiny`, `cpu` and `gpu` of the same code: `MODELS` maps each name to its
factory of the scale, and `model(name, scale)` builds (once) the instance at a scale.
They are kept apart from `PROBLEMS`, whose problems have one size each.
"""

import functools
from collections.abc import Callable

from problems.autoencoder import denoising_autoencoder
from problems.base import Problem
from problems.cnn import cnn_classifier
from problems.functions import ackley, beale, himmelblau, rastrigin, six_hump_camel, styblinski_tang
from problems.layers import SCALES, check_scale
from problems.least_squares import least_squares
from problems.logistic import logistic_breast_cancer, logistic_regression
from problems.minibatch import minibatch
from problems.mlp import mlp_classifier
from problems.quadratic import noisy_quadratic, quadratic
from problems.rosenbrock import rosenbrock
from problems.softmax_regression import softmax_regression
from problems.transformer import transformer_lm

_least_squares = least_squares(f_star=0.48225159381929217)
_logistic = logistic_breast_cancer(l2=1e-3, f_star=0.05982793700140971)
_softmax = softmax_regression(n_train=512, l2=1e-3, f_star=0.06188179901231163)
_mlp_relu = mlp_classifier(hidden=(32,), activation="relu")

PROBLEMS: dict[str, Problem] = {
    p.name: p
    for p in (
        # convex
        quadratic(dim=20, condition=1e1),
        quadratic(dim=20, condition=1e3),
        quadratic(dim=20, condition=1e6, target=10.0),  # f(x0) is about 1e6
        logistic_regression(n=200, dim=10, l2=1e-2, f_star=0.4487174687039245),
        _least_squares,
        _logistic,
        _softmax,
        # non-convex
        rosenbrock(dim=2),
        rosenbrock(dim=10),
        beale(),
        himmelblau(),
        six_hump_camel(),
        rastrigin(dim=10),
        ackley(dim=10),
        styblinski_tang(dim=10),
        mlp_classifier(hidden=(32,), activation="sigmoid"),
        _mlp_relu,
        mlp_classifier(hidden=(16,) * 6, activation="sigmoid"),
        mlp_classifier(hidden=(16,) * 6, activation="relu"),
        # stochastic
        # targets above the noise floor a constant step size leaves (measured with adam)
        minibatch(_least_squares, batch_size=32, target=1e-2),
        minibatch(_logistic, batch_size=32, target=5e-3),
        minibatch(_softmax, batch_size=64, target=1e-2),
        minibatch(_mlp_relu, batch_size=64),
        noisy_quadratic(dim=100, p=1.0, q=1.0),
    )
}

# name -> factory(scale) of the model families; every instance is named as its key here.
MODELS: dict[str, Callable[[str], Problem]] = {
    "cnn_digits": functools.partial(cnn_classifier, norm=True),
    # the same network without its normalization layers: what they do to gradient norms
    "cnn_digits_no_norm": functools.partial(cnn_classifier, norm=False),
    "transformer_stdlib": transformer_lm,
    "autoencoder_digits": denoising_autoencoder,
}


@functools.cache
def model(name: str, scale: str = "cpu") -> Problem:
    """The model family `name` of MODELS at `scale` (tiny, cpu or gpu), built once."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from: {', '.join(MODELS)}")
    check_scale(scale)
    return MODELS[name](scale)


__all__ = ["MODELS", "PROBLEMS", "SCALES", "Problem", "model"]
