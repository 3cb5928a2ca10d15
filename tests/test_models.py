"""The model families (CNN, transformer LM, denoising autoencoder) at their size presets:
facts, gradients against finite differences at `tiny`, the runner's handling of them
(data as arguments, evaluation batch, chunks, bfloat16, compile level), the command
line's --scale, and the quality a tuned Adam reaches at `cpu` scale."""

import json
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from jax.flatten_util import ravel_pytree
from test_problems import assert_gradient_matches_central_differences, to_float64

from bench import run_sweep
from bench.cli import main
from bench.sweep.lane import program_inputs
from problems import MODELS, SCALES, datasets, model, transformer
from problems.autoencoder import NOISE
from problems.transformer import bigram_entropy, unigram_entropy

# Many cases that together take minutes: make test-slow runs them, make test does not.
pytestmark = pytest.mark.slow

FAMILY_TAGS = {"cnn", "transformer", "autoencoder"}
KEYS = jax.random.split(jax.random.PRNGKey(3), 3)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_facts_at_every_scale(name, scale):
    """Shapes only (jax.eval_shape): the gpu presets are checked without computing them."""
    problem = model(name, scale)
    assert problem.name == name and problem is model(name, scale)  # built once
    assert len(problem.tags & FAMILY_TAGS) == 1 and {"nonconvex", "stochastic"} <= problem.tags
    assert problem.description and "\n" not in problem.description and scale in problem.description
    shapes = jax.eval_shape(problem.init, jax.random.PRNGKey(0))
    assert problem.dim == sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(shapes))
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(shapes))
    assert problem.eval_batch is not None and problem.test_data is not None
    assert problem.layer_grad_norms is not None and problem.metrics
    assert problem.target > problem.f_star == 0.0 and problem.steps > 0


def test_sizes_grow_with_the_scale_and_the_gpu_transformer_is_a_real_workload():
    for name in MODELS:
        dims = [model(name, scale).dim for scale in SCALES]
        assert dims == sorted(dims) and dims[0] < dims[-1], (name, dims)
    gpu = model("transformer_stdlib", "gpu")
    assert gpu.dim >= 10_000_000
    positions = jax.eval_shape(gpu.init, jax.random.PRNGKey(0))[0]["positions"]
    assert positions.shape[0] == 256  # context


def test_unknown_scale_or_model_is_a_value_error_naming_it():
    with pytest.raises(ValueError, match="scale must be one of tiny, cpu, gpu, got 'huge'"):
        model("cnn_digits", "huge")
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        model("resnet", "cpu")


def test_text_corpus_is_over_a_megabyte_with_a_disjoint_held_out_part():
    train, held_out = datasets.text("python_stdlib")
    assert train.dtype == np.uint8 and len(train) + len(held_out) >= 1_000_000
    assert len(held_out) > 100_000
    # The held-out part starts at a file boundary: the docstring of genericpath.py.
    assert bytes(held_out[:40]).startswith(b'"""\nPath operations common to more than')
    # A byte model must beat the unigram entropy of the bytes to be worth anything, and
    # the bigram entropy to be worth its context.
    assert 3.0 < unigram_entropy() < 3.5
    assert 2.3 < bigram_entropy() < unigram_entropy() - 0.4


def test_the_bigram_baseline_is_the_cross_entropy_of_smoothed_pair_frequencies(monkeypatch):
    # Training pairs (0,1) and (1,0) twice each; add-one smoothing over 256 next bytes:
    # P(1|0) = 3/258 and P(1|1) = 1/258, the held-out pairs (0,1) and (1,1).
    corpus = (np.array([0, 1, 0, 1, 0], np.uint8), np.array([0, 1, 1], np.uint8))
    monkeypatch.setattr(transformer.datasets, "text", lambda name: corpus)
    expected = -(math.log(3 / 258) + math.log(1 / 258)) / 2
    assert bigram_entropy() == pytest.approx(expected, rel=1e-12)
    # Unigram: 3 zeros and 2 ones, add-one over 256 values; held out 0, 1, 1.
    assert unigram_entropy() == pytest.approx(-(math.log(4 / 261) + 2 * math.log(3 / 261)) / 3)


def test_the_transformer_declares_its_unigram_and_bigram_test_losses_as_baselines():
    from bench.known import problem_facts

    problem = model("transformer_stdlib", "tiny")
    assert problem.baselines == {
        "test_loss": {"unigram": unigram_entropy(), "bigram": bigram_entropy()}
    }
    text = problem_facts("transformer_stdlib")["baselines"]
    assert text == f"test_loss: unigram {unigram_entropy():.4g}, bigram {bigram_entropy():.4g}"
    assert problem_facts("cnn_digits")["baselines"] == ""


@pytest.mark.parametrize("name", sorted(MODELS))
def test_gradient_matches_central_differences_at_tiny_scale(name):
    """jax.grad against float64 central differences, as tests/test_problems.py checks every
    registered problem: along the gradient and a random unit direction, on a sampled
    minibatch at three initial points; error relative to |grad| below 1e-6."""
    problem = model(name, "tiny")
    data = to_float64(problem.data())
    batches = jax.vmap(problem.sample_batch, (None, 0))(data, KEYS)
    points = jax.vmap(problem.init)(KEYS)
    assert_gradient_matches_central_differences(problem, points, batches, KEYS)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_same_key_same_start_and_minibatch(name):
    problem = model(name, "tiny")
    data = problem.data()
    for a, b in zip(
        jax.tree.leaves((problem.init(KEYS[0]), problem.sample_batch(data, KEYS[1]))),
        jax.tree.leaves((problem.init(KEYS[0]), problem.sample_batch(data, KEYS[1]))),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
    first, other = problem.init(KEYS[0]), problem.init(KEYS[1])
    assert not np.array_equal(ravel_pytree(first)[0], ravel_pytree(other)[0])


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_tiny_sweep_records_the_evaluation_batch_loss_and_per_layer_norms(name):
    problem = model(name, "tiny")
    result = run_sweep(problem, "adam", [1e-3, 1e-2], seeds=1, steps=6, dtype="float32")
    assert result.losses.shape == (2, 7) and np.isfinite(result.losses).all()
    assert set(result.metrics) == set(problem.metrics)
    assert all(np.isfinite(v).all() for v in result.metrics.values())
    # The first record is the evaluation batch's loss at the start point.
    start = problem.init(jax.random.split(jax.random.PRNGKey(0))[0])
    expected = problem.loss(start, problem.eval_batch(problem.data()))
    np.testing.assert_allclose(result.losses[:, 0], float(expected), rtol=1e-5)
    # Per-layer norms partition the gradient the step's update was given.
    layers = result.layer_grad_norms
    assert layers.shape[:2] == (2, 7) and layers.shape[2] >= 3
    np.testing.assert_allclose(np.sqrt((layers**2).sum(-1)), result.grad_norms, rtol=1e-5)


def test_data_enter_the_program_as_arguments_not_constants():
    """The transformer's 1.2 MB of text is an argument: the compiled program is small."""
    problem = model("transformer_stdlib", "tiny")
    inputs = program_inputs(problem, "float32")
    assert inputs["train"].shape == datasets.text("python_stdlib")[0].shape
    from bench.sweep.lane import lane_program
    from optimizers import OPTIMIZERS

    lane = lane_program(problem, OPTIMIZERS["adam"], 3, jnp.float32, {})
    args = ({"learning_rate": jnp.ones(2)}, jnp.arange(2, dtype=jnp.uint32))
    text = jax.jit(jax.vmap(lane, in_axes=(None, 0, 0))).lower(inputs, *args).as_text()
    main = text[text.index("func.func public @main") :].splitlines()[0]
    assert f"tensor<{len(inputs['train'])}xui8>" in main  # the text is a parameter
    constants = re.findall(r"constant dense<([^>]*)>", text)
    assert max(len(c) for c in constants) < 1_000  # and no constant holds data


def test_lanes_that_do_not_fit_run_in_chunks_with_the_same_numbers():
    problem = model("cnn_digits", "tiny")
    common = dict(learning_rates=[1e-3, 1e-2, 3e-2], seeds=2, steps=5, dtype="float32")
    whole = run_sweep(problem, "adam", **common)
    assert whole.chunk == 6
    chunked = run_sweep(problem, "adam", memory_limit=2_000_000, **common)
    assert 1 <= chunked.chunk < 6
    np.testing.assert_allclose(chunked.losses, whole.losses, rtol=1e-5)
    np.testing.assert_allclose(
        chunked.metrics["test_accuracy"], whole.metrics["test_accuracy"], atol=1e-6
    )


def test_bfloat16_computes_in_bfloat16_on_float32_master_weights():
    problem = model("autoencoder_digits", "tiny")
    common = dict(learning_rates=[1e-2], seeds=1, steps=10)
    full = run_sweep(problem, "adam", dtype="float32", **common)
    mixed = run_sweep(problem, "adam", dtype="bfloat16", **common)
    # bfloat16 keeps 8 bits of mantissa: the losses agree to a few percent, not exactly.
    assert not np.array_equal(mixed.losses, full.losses)
    np.testing.assert_allclose(mixed.losses, full.losses, rtol=5e-2)
    # Mixed precision trains: the loss falls as in float32.
    assert mixed.losses[0, -1] < mixed.losses[0, 0]


def test_bad_scale_on_the_command_line_exits_2_in_one_line(capsys):
    assert main(["run", "--scale", "huge"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--scale" in err[0] and "gpu" in err[0]


def test_run_at_tiny_scale_from_the_command_line(tmp_path):
    out = tmp_path / "tiny"
    argv = ["run", "--scale", "tiny", "--problems", "autoencoder_digits", "--optimizers", "adam"]
    argv += ["--steps", "3", "--seeds", "1", "--grid", "1e-2", "--out", str(out)]
    assert main(argv) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["spec"]["scale"] == "tiny" and meta["fingerprint"]["scale"] == "tiny"
    assert "test_mse" in pd.read_csv(out / "runs.csv.gz").columns


# The tuned Adam of each family at cpu scale: its learning rate as `make bench` tunes it
# (grid 1e-4 .. 1, 2 per decade), re-run on one held-out seed.
QUALITY_LR = {"cnn_digits": 1e-2, "transformer_stdlib": 3e-3, "autoencoder_digits": 1e-2}


@pytest.mark.extensive
def test_tuned_adam_cnn_reaches_95_percent_test_accuracy_at_cpu_scale():
    problem = model("cnn_digits", "cpu")
    result = run_sweep(problem, "adam", [QUALITY_LR["cnn_digits"]], seeds=[1000], steps=None)
    assert float(result.metrics["test_accuracy"][0]) >= 0.95


@pytest.mark.extensive
def test_tuned_adam_language_model_beats_the_unigram_entropy_clearly_at_cpu_scale():
    problem = model("transformer_stdlib", "cpu")
    result = run_sweep(problem, "adam", [QUALITY_LR["transformer_stdlib"]], seeds=[1000])
    held_out = float(result.metrics["test_loss"][0])
    assert held_out <= unigram_entropy() - 0.3, (held_out, unigram_entropy())
    np.testing.assert_allclose(result.metrics["perplexity"][0], math.exp(held_out), rtol=1e-5)


@pytest.mark.extensive
def test_tuned_adam_denoiser_halves_the_error_of_the_identity_at_cpu_scale():
    """Returning the noisy input costs NOISE^2 = 1 per standardised pixel; the denoiser
    must do at least twice as well on held-out digits."""
    problem = model("autoencoder_digits", "cpu")
    result = run_sweep(problem, "adam", [QUALITY_LR["autoencoder_digits"]], seeds=[1000])
    assert float(result.metrics["test_mse"][0]) <= 0.5 * NOISE**2


def test_perf_times_the_sweep_against_a_per_trial_optax_loop():
    import pandas as pd

    from bench.perf import models, report

    rows = models.run_models(models.model_cases(quick=True), log=lambda _: None)
    impls = ("ours", "bare_vmap", "optax_loop")
    impls += ("torch",) if models.torch_version() is not None else ()
    assert {(r["case"], r["impl"]) for r in rows} == {
        (name, impl) for name in models.MODEL_CASES for impl in impls
    }
    ratios = report.sweep_ratios(pd.DataFrame(rows))
    assert (ratios["ours_ratio"] > 0).all()
    assert set(ratios["problem"]) == set(models.MODEL_CASES)
    assert {"cnn_digits", "transformer"} <= set(report.TARGETS.sweep_targets)
