"""Config: validation, and lossless round trips through JSON and URL query parameters."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.config import Config, ConfigError

SEED_QUESTION = Config(dataset="catvnoncat", layers=(20, 7, 5), init="normal", init_scale=0.01, lr=0.0075,
                       iterations=2500, seed=1, rng="legacy", activation="relu,relu,tanh", init_gain=1.0 / 3.0)


def test_json_round_trip():
    assert Config.from_json(SEED_QUESTION.to_json()) == SEED_QUESTION


def test_query_round_trip_is_exact_for_floats():
    query = SEED_QUESTION.to_query()
    assert all(isinstance(v, str) for v in query.values())
    assert Config.from_query(query) == SEED_QUESTION


def test_missing_query_settings_take_defaults():
    assert Config.from_query({"init": "xavier_normal"}) == Config(init="xavier_normal")


@pytest.mark.parametrize("changes, fragment", [
    ({"layers": ()}, "at least one hidden size"),
    ({"layers": (5, -1)}, "at least 1"),
    ({"activation": "relu,tanh"}, "2 names for 3 hidden layers"),
    ({"activation": "softplus"}, "activation='softplus' is not known"),
    ({"lr": 0.0}, "lr must be > 0"),
    ({"init_scale": float("inf")}, "finite"),
    ({"beta1": 1.0}, "beta1 must be below 1"),
    ({"beta2": 1.0}, "beta2 must be below 1"),
    ({"beta2": -0.1}, "beta2 must be >= 0"),
    ({"eps": 0.0}, "eps must be > 0"),
    ({"eps": float("nan")}, "eps must be a finite number"),
    ({"record_every": 0}, "record_every"),
    ({"rng": "mersenne"}, "rng='mersenne'"),
])
def test_invalid_values_are_named(changes, fragment):
    with pytest.raises(ConfigError, match=fragment):
        Config(**{"layers": (4, 4, 4), **changes})


@pytest.mark.parametrize("query, fragment", [
    ({"layers": "20,x"}, "layers"),
    ({"iterations": "1e999"}, "iterations"),
    ({"iterations": "2.5"}, "iterations"),
    ({"standardize": "maybe"}, "standardize"),
    ({"seed": "-1"}, "seed"),
    ({"colour": "red"}, "unknown setting"),
    ({"dataset": "x" * 10_000}, "characters long"),
])
def test_hostile_query_parameters_are_refused(query, fragment):
    with pytest.raises(ConfigError, match=fragment):
        Config.from_query(query)


def test_adams_settings_round_trip_and_old_links_read_with_their_defaults():
    config = Config(optimizer="adam", beta1=0.8, beta2=0.99, eps=1e-6)
    query = config.to_query()
    assert (query["beta1"], query["beta2"], query["eps"]) == ("0.8", "0.99", "1e-06")
    assert Config.from_query(query) == config and Config.from_json(config.to_json()) == config
    # a link made before beta1 and eps: momentum was beta1's name, eps was fixed at 1e-8
    old = Config.from_query({"optimizer": "momentum", "momentum": "0.8", "beta2": "0.999"})
    assert old == Config(optimizer="momentum", beta1=0.8) and old.eps == 1e-8
    with pytest.raises(ConfigError, match="former name of beta1"):
        Config.from_query({"momentum": "0.8", "beta1": "0.7"})


def test_gelu_from_an_old_link_is_the_tanh_approximation_it_was():
    """Before gelu_erf, "gelu" named the tanh approximation: an old link must give the same network."""
    assert Config.from_query({"activation": "gelu", "layers": "4"}).activation == "gelu_tanh"
    assert Config.from_query({"activation": "relu, gelu", "layers": "4,4"}).activation == "relu,gelu_tanh"
    assert Config.from_dict({"activation": "gelu_erf", "layers": [4]}).activation == "gelu_erf"


def test_layers_accept_width_times_depth():
    assert Config.from_query({"layers": "784,100x3,10"}).layers == (784, 100, 100, 100, 10)
    assert Config.from_query({"layers": "500x50"}).layers == (500,) * 50
    with pytest.raises(ConfigError, match="repeats a layer 99999999 times"):
        Config.from_query({"layers": "5x99999999"})


def test_json_that_is_not_an_object_is_refused():
    with pytest.raises(ConfigError):
        Config.from_json(json.dumps([1, 2]))
    with pytest.raises(ConfigError):
        Config.from_json("{not json")


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(list(Config().to_query())), st.text(max_size=300), max_size=6))
def test_any_query_either_parses_or_raises_config_error(query):
    try:
        config = Config.from_query(query)
    except ConfigError as e:
        assert str(e)
    else:
        assert Config.from_query(config.to_query()) == config


def test_norm_and_residual_round_trip_through_json_and_the_url():
    c = Config(layers=(8, 8, 8), activation="tanh", norm="layer", residual=True, residual_scale=0.125,
               zero_init_residual=True)
    assert Config.from_json(c.to_json()) == c
    assert Config.from_query(c.to_query()) == c
    assert Config.from_query({"layers": "8,8"}).norm == "none"  # a link from before these settings: the plain stack


@pytest.mark.parametrize(
    "changes, fragments",
    [
        (dict(norm="group"), ["norm='group'", "none, batch, layer"]),
        (dict(norm="batch", batch_size=1), ["batch_size", "norm=layer"]),
        (dict(residual=True, layers=(10, 10, 5)), ["layer 3 has 5 units", "layer 2", "10x3"]),
        (dict(residual=True, layers=(10,)), ["at least 2 hidden layers"]),
        (dict(residual=True, residual_scale=0.0), ["residual_scale must be > 0"]),
        (dict(zero_init_residual=True), ["needs residual=true"]),
        (dict(residual=True, layers=(6, 6), zero_init_residual=True), ["layer 2's relu'(0) = 0", "tanh"]),
        (dict(residual=True, layers=(6, 6), activation="sigmoid", zero_init_residual=True), ["sigmoid(0) = 0.5"]),
    ],
)
def test_norm_and_residual_settings_that_cannot_work_are_refused_with_the_fix(changes, fragments):
    with pytest.raises(ConfigError) as caught:
        Config(**changes)
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_zero_init_residual_accepts_branches_that_start_at_zero_and_learn():
    for activation in ("tanh", "leaky_relu", "elu", "selu", "gelu_erf", "swish"):
        Config(residual=True, layers=(6, 6), activation=activation, zero_init_residual=True)
