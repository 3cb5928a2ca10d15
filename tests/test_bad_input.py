"""Bad input gets a clear error naming the problem, for every registered optimizer.

The hyperparameters checked are found by inspecting each factory's signature, so a
new rule is covered as soon as it is registered.
"""

import inspect
import warnings

import jax.numpy as jnp
import optax
import pytest
from parity_settings import settings

import optimizers
from optimizers import OPTIMIZERS

# Hyperparameters that are a decay factor or momentum coefficient, valid in [0, 1).
BETA_NAMES = {"b1", "b2", "b3", "beta1", "beta2", "momentum", "decay", "rho"}
EPS_NAMES = {"eps", "eps_root"}


def parameters(name):
    return inspect.signature(OPTIMIZERS[name].factory).parameters


def build(name, **overrides):
    spec = OPTIMIZERS[name]
    return spec.factory(**{"learning_rate": 0.1, **spec.hparams, **overrides})


def cases(names):
    return [
        (optimizer, argument)
        for optimizer in OPTIMIZERS
        for argument in parameters(optimizer)
        if argument in names
    ]


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_negative_learning_rate_raises_value_error(name):
    # A rule whose step size optax calls otherwise (polyak_sgd's `scaling`) names that.
    argument = settings(name).learning_rate_arg
    with pytest.raises(ValueError, match=f"learning_rate|{argument}"):
        build(name, learning_rate=-0.1)


@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5])
@pytest.mark.parametrize(("name", "argument"), cases(BETA_NAMES))
def test_beta_outside_unit_interval_raises_value_error(name, argument, value):
    with pytest.raises(ValueError, match=argument):
        build(name, **{argument: value})


@pytest.mark.parametrize(("name", "argument"), cases(EPS_NAMES))
def test_negative_eps_raises_value_error(name, argument):
    with pytest.raises(ValueError, match=argument):
        build(name, **{argument: -1e-8})


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_mismatched_grads_and_params_raise_a_clear_error(name):
    params = {"w": jnp.ones((2, 2)), "b": jnp.zeros(2)}
    opt = build(name)
    state = opt.init(params)
    grads = {"w": jnp.ones((2, 2))}  # "b" missing
    extra = OPTIMIZERS[name].update_extras(jnp.zeros(()), grads, lambda p: jnp.zeros(()))
    with pytest.raises(ValueError, match="grads") as raised:
        opt.update(grads, state, params, **extra)
    assert "structure" in str(raised.value)


# (factory, option, value): optax options that these rules deliberately do not implement.
UNSUPPORTED = [
    ("lars", "trust_ratio_mask", {"w": True}),
    ("novograd", "weight_decay", lambda count: 1e-3),
]


@pytest.mark.parametrize(("factory", "option", "value"), UNSUPPORTED, ids=lambda x: str(x)[:20])
def test_unsupported_optax_option_raises_not_implemented(factory, option, value):
    if not hasattr(optimizers, factory):
        pytest.skip(f"{factory} is not in optimizers yet")
    with pytest.raises(NotImplementedError, match=option):
        getattr(optimizers, factory)(learning_rate=0.1, **{option: value})


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_a_string_learning_rate_raises_type_error_naming_it(name):
    argument = settings(name).learning_rate_arg
    with pytest.raises(TypeError, match=f"learning_rate|{argument}"):
        build(name, learning_rate="0.1")


@pytest.mark.parametrize(("name", "argument"), cases(BETA_NAMES | EPS_NAMES))
def test_a_string_hyperparameter_raises_type_error_naming_it(name, argument):
    with pytest.raises(TypeError, match=argument):
        build(name, **{argument: "0.5"})


WITH_OPTAX = [name for name, spec in OPTIMIZERS.items() if spec.optax_name]


@pytest.mark.parametrize("name", WITH_OPTAX)
def test_an_optax_state_raises_type_error_naming_the_state(name):
    spec, test = OPTIMIZERS[name], settings(name)
    params = {"w": jnp.ones((2, 2)), "b": jnp.zeros(2)}
    optax_state = getattr(optax, spec.optax_name)(
        **{**test.hparams, test.learning_rate_arg: 0.1}
    ).init(params)
    ours = spec.factory(learning_rate=0.1, **test.hparams)
    extra = spec.update_extras(jnp.zeros(()), params, lambda p: jnp.zeros(()))
    with pytest.raises(TypeError, match="state must be the .*State that this optimizer's init"):
        ours.update(params, optax_state, params, **extra)


LOSS_USING = [name for name, spec in OPTIMIZERS.items() if spec.needs_value_fn]


@pytest.mark.parametrize("name", LOSS_USING)
def test_a_loss_using_rule_in_optax_chain_is_told_to_use_our_chain(name):
    params = {"w": jnp.ones((2, 2)), "b": jnp.zeros(2)}
    chained = optax.chain(optax.clip_by_global_norm(1.0), build(name))
    loss = lambda p: jnp.sum(p["w"] ** 2) + jnp.sum(p["b"] ** 2)  # noqa: E731
    # What a user passes to the chain: optax.chain keeps it from our rule.
    extra = dict(value=loss(params), grad=params, value_fn=loss)
    with pytest.raises(ValueError, match="optimizers.transforms.chain") as raised:
        chained.update(params, chained.init(params), params, **extra)
    assert "fused_step" in str(raised.value)


@pytest.mark.parametrize("name", LOSS_USING)
def test_fused_step_of_a_loss_using_rule_says_it_takes_the_gradient_only(name):
    params = {"w": jnp.ones((2, 2)), "b": jnp.zeros(2)}
    opt = build(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fused_step's warning about the CPU flag
        step = optimizers.fused_step(opt)
    with pytest.raises(ValueError, match="fused_step passes only the gradient"):
        step(params, opt.init(params), params)
