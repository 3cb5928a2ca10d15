"""`run_sweep` checks what the command line checks: a ValueError naming the argument,
raised before anything is compiled, never an error from inside JAX."""

import dataclasses

import pytest

from bench import run_sweep
from problems import PROBLEMS

ROSENBROCK = PROBLEMS["rosenbrock_2d"]


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        (dict(learning_rates=[0.1, -0.1]), ["learning_rates", "positive and finite", "-0.1"]),
        (dict(learning_rates=[float("nan")]), ["learning_rates", "nan"]),
        (dict(learning_rates=[float("inf")]), ["learning_rates", "inf"]),
        (dict(b1=[0.9, 1.5]), ["b1", "[0, 1)", "1.5"]),
        (dict(b1=[]), ["b1 is empty"]),
        (dict(b2=-0.5), ["b2", "[0, 1)"]),
        (dict(seeds=[-1]), ["seeds", "[0, 2**32)", "-1"]),
        (dict(seeds=[2**32]), ["seeds", str(2**32)]),
        (dict(seeds=[0.5]), ["seeds", "0.5"]),
    ],
)
def test_bad_arguments_raise_a_value_error_naming_them(kwargs, words):
    kwargs = {"learning_rates": [0.1], "seeds": 1, **kwargs}
    with pytest.raises(ValueError) as raised:
        run_sweep("rosenbrock_2d", "adam", steps=3, **kwargs)
    assert all(word in str(raised.value) for word in words), raised.value


def test_capabilities_are_enforced_outside_the_suite_too():
    # newton's dense Hessian is meant for at most 100 parameters; the MLP has 2,410.
    with pytest.raises(ValueError, match="newton cannot run on problem mlp_digits_sigmoid_32"):
        run_sweep("mlp_digits_sigmoid_32", "newton", [0.1], seeds=1, steps=2)
    with pytest.raises(ValueError, match="stochastic"):
        run_sweep("least_squares_diabetes_batch32", "lbfgs", [0.1], seeds=1, steps=2)


def test_a_problem_whose_dim_is_not_its_parameter_count_is_refused():
    wrong = dataclasses.replace(ROSENBROCK, name="mine", dim=3)
    with pytest.raises(ValueError, match="mine declares dim=3, but its init returns 2"):
        run_sweep(wrong, "sgd", [1e-3], seeds=1, steps=2)


def test_an_f_star_above_the_loss_reached_is_warned_about():
    wrong = dataclasses.replace(ROSENBROCK, name="mine", f_star=1e6)
    with pytest.warns(UserWarning, match="below f_star=1e\\+06.*f_star is too high"):
        result = run_sweep(wrong, "sgd", [1e-3], seeds=1, steps=2)
    assert result.losses.max() < wrong.f_star  # what made every lane "succeed" at step 0


def test_a_correct_f_star_gives_no_warning():
    # pytest turns warnings into errors: a false alarm on a registry problem fails here.
    run_sweep("logistic_synthetic_200x10", "adam", [0.1], seeds=2, steps=200)
