"""COCO's BBOB functions (problems/bbob.py): against the official implementation where the
`bbob` extra is installed, against the values the BBOB 2009 reference code documents
everywhere, and as problems whose lanes are instances."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bench.sweep import targets
from bench.sweep.runner import run_sweep
from problems import bbob, sources

# The BBOB 2009 reference code's documentation (numbbo/coco, bbobbenchmarks.py): every
# function's instance 0 at the origin of 4-D, and f3's instance 13 at (0, 1, 2).
AT_ORIGIN = [
    -77.27454592, 6180022.82173, 92.9877507529, 92.9877507529, 140.510117618,
    70877.9554128, -72.5505202195, 33355.7924722, -339.94, 4374717.49343,
    15631566.3487, 4715481.0865, 550.599783901, -17.2991756229, 27.3633128519,
    -227.827833529, -24.3305918781, 131.420159348, 40.7103737427, 6160.81782924,
    376.746889545, 107.830426761, 220.482266557, 106.094767386,
]  # fmt: skip
DIMS = (2, 5, 10, 20)


def _value(function, x, instance):
    """f(x) of an instance, f_opt included, in float64."""
    data = bbob.instance_data(function, len(x), instance)
    with jax.enable_x64(True):
        arrays = {k: jnp.asarray(v, jnp.float64) for k, v in data.items()}
        return float(bbob.value(function, jnp.asarray(x, jnp.float64), arrays)) + data["f_opt"]


@pytest.mark.parametrize("function", bbob.FUNCTIONS)
def test_each_function_gives_the_value_the_2009_reference_documents(function):
    assert _value(function, np.zeros(4), 0) == pytest.approx(AT_ORIGIN[function - 1], rel=1e-9)


def test_rastrigin_instance_13_gives_the_documented_value():
    assert _value(3, np.array([0.0, 1.0, 2.0]), 13) == pytest.approx(59.8733529, rel=1e-8)


@pytest.mark.slow
@pytest.mark.parametrize("function", bbob.FUNCTIONS)
def test_every_instance_has_its_minimum_zero_at_its_x_opt(function):
    for dim in DIMS:
        for instance in (1, 6, 15):
            data = bbob.instance_data(function, dim, instance)
            with jax.enable_x64(True):
                arrays = {k: jnp.asarray(v, jnp.float64) for k, v in data.items()}
                at = float(bbob.value(function, arrays["x_opt"], arrays))
                near = arrays["x_opt"] + 1e-3 * jnp.asarray(np.linspace(-1, 1, dim))
                above = float(bbob.value(function, near, arrays))
            assert abs(at) <= 1e-8, (dim, instance, at)
            assert above >= at - 1e-12, (dim, instance, above)
            assert np.all(np.abs(data["x_opt"]) <= 5.0)


@pytest.mark.slow
@pytest.mark.parametrize("function", bbob.FUNCTIONS)
def test_gradients_at_the_start_are_finite_in_float32(function):
    for dim in (2, 10):
        problem = bbob.problem(function, dim)
        data = {k: jnp.asarray(v, jnp.float32) for k, v in problem.lane_data(0).items()}
        loss, grad = jax.value_and_grad(problem.loss)(problem.init(jax.random.PRNGKey(0)), data)
        assert np.isfinite(float(loss)) and bool(jnp.all(jnp.isfinite(grad))), dim


def test_instances_play_the_seeds_tuning_on_1_to_5_and_reporting_on_6_to_15():
    assert [bbob.instance_of(s) for s in range(5)] == [1, 2, 3, 4, 5]
    assert [bbob.instance_of(s) for s in range(1000, 1010)] == list(range(6, 16))


def test_names_parse_back_and_resolve_through_the_source():
    for function in bbob.FUNCTIONS:
        for dim in DIMS:
            name = bbob.name(function, dim)
            assert bbob.parse(name) == (function, dim)
            assert sources.problem(name).dim == dim
    for wrong in ("bbob_f25_2d", "bbob_f1_2d", "bbob_f01_1d", "cutest_f01_2d", "bbob_f01_2"):
        with pytest.raises(KeyError):
            bbob.parse(wrong)
    assert len(sources.select("bbob")) == 24 * len(DIMS)
    with pytest.raises(ValueError, match="function"):
        bbob.instance_data(0, 2, 1)


def test_a_sweep_runs_each_lane_on_its_own_instance():
    problem = bbob.problem(10, 5)
    result = run_sweep(problem, "sgd", learning_rates=[1e-9], seeds=[0, 1, 1000], steps=3)
    expected = [_value(10, np.zeros(5), i) - bbob.f_opt(10, i) for i in (1, 2, 6)]
    np.testing.assert_allclose(result.losses[:, 0], expected, rtol=1e-5)
    assert len(set(result.losses[:, 0])) == 3
    # f(x0) of the relative levels: the median over the start seeds' instances
    starts = [_value(10, np.zeros(5), i) - bbob.f_opt(10, i) for i in range(1, 6)]
    assert targets.start_value(problem) == pytest.approx(np.median(starts), rel=1e-9)


# --- against the official implementation (the `bbob` extra) ----------------------------


@pytest.fixture(scope="module")
def official():
    cocoex = pytest.importorskip("cocoex", reason="the bbob extra: pip install -e '.[bbob]'")
    return cocoex.Suite("bbob", "instances: 1-15", "dimensions: 2,5,10,20")


@pytest.mark.reference
@pytest.mark.parametrize("function", bbob.FUNCTIONS)
def test_each_function_equals_coco_on_its_instances(official, function):
    rng = np.random.default_rng(function)
    for dim in DIMS:
        for instance in (1, 2, 6, 15):
            theirs = official.get_problem_by_function_dimension_instance(function, dim, instance)
            data = bbob.instance_data(function, dim, instance)
            points = [rng.uniform(-5, 5, dim) for _ in range(8)]
            points += [rng.uniform(-6, 6, dim), data["x_opt"] + rng.normal(0, 1e-2, dim)]
            for x in points:
                ours, expected = _value(function, x, instance), theirs(x)
                assert ours == pytest.approx(expected, rel=1e-9, abs=1e-9), (dim, instance, x)
            # x_opt and f_opt: COCO's value at our optimum is our f_opt
            assert theirs(data["x_opt"]) == pytest.approx(float(data["f_opt"]), abs=1e-8)


def test_a_results_folder_describes_a_bbob_problem_and_a_model_family_by_their_own_facts():
    from bench.known import problem_facts

    row = problem_facts("bbob_f13_5d")
    assert row is not None and row["description"] == bbob.problem(13, 5).description
    assert row["tags"] == "bbob ill-conditioned" and row["model_family"] is False
    row = problem_facts("cnn_digits")
    assert row is not None and row["model_family"] is True and "cnn" in row["tags"]


def test_every_problem_has_the_group_its_scores_are_broken_down_by():
    from bench.known import problem_facts
    from problems import sources

    assert sources.group("bbob_f13_5d") == "bbob: ill-conditioned"
    assert sources.group("bbob_f01_20d") == "bbob: separable"
    assert sources.group("bbob_f24_2d") == "bbob: weakly structured"
    assert sources.group("rosenbrock_2d") == "main"
    assert sources.group("cnn_digits") == "models"
    assert sources.group("a_problem_of_your_own") == "added"
    for name in ("bbob_f07_10d", "beale", "cnn_digits"):
        row = problem_facts(name)
        assert row is not None and row["group"] == sources.group(name)
