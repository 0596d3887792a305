"""Each scheme's weights and biases against its formula, and the registry's errors."""

import math

import pytest
import torch
from torch import nn

from initbench import initializers
from initbench.errors import InitbenchError
from initbench.initializers.layer import variance_scaling_

SHAPES = [(256, 784), (128, 256), (10, 128), (300, 20)]  # (fan_out, fan_in)
# lsuv and pretrained fill whole models; a transformer's schemes fill a gpt (tests/test_transformer_schemes.py)
LAYER_SCHEMES = [n for n in initializers.names() if not initializers.whole_model(n) and not initializers.get(n).roles_only]


def init(name: str, shape: tuple[int, int], seed: int = 0, activation: str = "relu",
         bias: str = "scheme") -> tuple[torch.Tensor, torch.Tensor]:
    layer = nn.Linear(shape[1], shape[0])
    initializers.get(name).init_layer(layer, torch.Generator().manual_seed(seed), activation, bias)
    return layer.weight.detach(), layer.bias.detach()


def uniform(a: float, b: float) -> tuple[float, float, float, float]:
    return a, b, (a + b) / 2, (b - a) / math.sqrt(12)


TRUNC_STD = 0.8796  # std of a standard normal cut at +-2


# name -> (fan_in, fan_out) -> (low, high, mean, std) of the weights; None where unbounded.
# The lesson's and torch's names; Keras's are checked against Keras's formulas further down.
EXPECTED = {
    "uniform": lambda i, o: uniform(0.0, 1.0),
    "centered": lambda i, o: uniform(-0.5, 0.5),
    "rule": lambda i, o: uniform(-1 / math.sqrt(i), 1 / math.sqrt(i)),
    "normal": lambda i, o: (None, None, 0.0, 1 / math.sqrt(i)),
    "default": lambda i, o: uniform(-1 / math.sqrt(i), 1 / math.sqrt(i)),
    "xavier_uniform": lambda i, o: uniform(-math.sqrt(6 / (i + o)), math.sqrt(6 / (i + o))),
    "xavier_normal": lambda i, o: (None, None, 0.0, math.sqrt(2 / (i + o))),
    "xavier_normal:2": lambda i, o: (None, None, 0.0, 2 * math.sqrt(2 / (i + o))),
    "kaiming_uniform": lambda i, o: uniform(-math.sqrt(6 / i), math.sqrt(6 / i)),  # ReLU: gain sqrt(2)
    "kaiming_normal": lambda i, o: (None, None, 0.0, math.sqrt(2 / i)),
    "trunc_normal": lambda i, o: (-0.04, 0.04, 0.0, 0.02 * TRUNC_STD),
    "uniform:-0.1,0.1": lambda i, o: uniform(-0.1, 0.1),
    "normal:0.05": lambda i, o: (None, None, 0.0, 0.05),
}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", list(EXPECTED))
def test_random_scheme_statistics_match_formula(name: str, shape: tuple[int, int]) -> None:
    w, _ = init(name, shape)
    low, high, mean, std = EXPECTED[name](shape[1], shape[0])
    count = w.numel()
    # Five standard errors: a correct scheme passes, a wrong scale (e.g. 1/n for 1/sqrt(n)) fails.
    assert abs(w.mean().item() - mean) < 5 * std / math.sqrt(count)
    assert abs(w.std().item() / std - 1) < 5 / math.sqrt(2 * count)
    if low is not None:
        assert w.min().item() >= low and w.max().item() < high
        span = high - low
        assert w.min().item() < low + 0.01 * span and w.max().item() > high - 0.01 * span


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name,value", [("zeros", 0.0), ("ones", 1.0)])
def test_constant_schemes(name: str, value: float, shape: tuple[int, int]) -> None:
    w, b = init(name, shape)
    assert torch.all(w == value) and torch.all(b == 0)


@pytest.mark.parametrize("name", [n for n in LAYER_SCHEMES if n != "default"])
def test_schemes_zero_the_bias_and_bias_policies_override(name: str) -> None:
    assert torch.all(init(name, (256, 784))[1] == 0)
    assert torch.all(init(name, (256, 784), bias="zeros")[1] == 0)
    b = init(name, (256, 784), bias="default")[1]
    assert b.abs().max() <= 1 / 28 and b.std() > 0.5 / math.sqrt(3 * 784)


@pytest.mark.parametrize("activation,gain", [("relu", math.sqrt(2)), ("tanh", 5 / 3), ("selu", 0.75)])
def test_kaiming_follows_the_activation_gain_and_orthogonal_its_own(activation: str, gain: float) -> None:
    w, _ = init("kaiming_normal", (300, 400), activation=activation)
    assert abs(w.std().item() / (gain / math.sqrt(400)) - 1) < 0.03
    w, _ = init("xavier_normal", (300, 400), activation=activation)  # Glorot's gain is its own (1)
    assert abs(w.std().item() / math.sqrt(2 / 700) - 1) < 0.03
    for shape in ((128, 256), (256, 128)):  # gain 1 as torch and Keras define it, or the one given
        for name, g in (("orthogonal", 1.0), (f"orthogonal:{gain}", gain)):
            w, _ = init(name, shape, activation=activation)
            small = w @ w.T if shape[0] <= shape[1] else w.T @ w
            torch.testing.assert_close(small, g**2 * torch.eye(min(shape)), atol=1e-4, rtol=0)


def test_sparse_zeroes_a_fixed_share_of_each_column() -> None:
    w, _ = init("sparse", (300, 200))
    assert torch.all((w == 0).sum(0) == 30)  # ceil(0.1 * 300) in every column
    assert abs(w[w != 0].std().item() / 0.01 - 1) < 0.03
    assert torch.all((init("sparse:0.5", (300, 200))[0] == 0).sum(0) == 150)


def test_constant_takes_its_value_and_is_0_without_one_as_keras_constant() -> None:
    w, b = init("constant:0.5", (64, 32))
    assert torch.all(w == 0.5) and torch.all(b == 0)
    w, b = init("constant", (64, 32))
    assert torch.all(w == 0) and torch.all(b == 0)


@pytest.mark.parametrize("name", LAYER_SCHEMES + ["constant:2"])
def test_every_scheme_draws_only_from_its_generator(name: str) -> None:
    torch.manual_seed(1)
    first = init(name, (64, 96), seed=5)
    torch.manual_seed(2)
    assert all(torch.equal(a, b) for a, b in zip(first, init(name, (64, 96), seed=5)))


@pytest.mark.parametrize("spec,message", [
    ("constant:a", "write constant[:VALUE]"), ("uniform:a", "write uniform[:LOW,HIGH]"),
    ("uniform:1,2,3", "write uniform[:LOW,HIGH]"), ("rule:1", "takes no parameters"),
    ("he_norml", "Did you mean 'he_normal'?"), ("HeNormal:2", "takes no parameters"),
    ("GlorotNormall", "Did you mean 'GlorotNormal'?"), ("glorotnormal", "Did you mean 'glorot_normal'?"),
    ("HENORMAL", "Did you mean 'HeNormal'?"),
])
def test_bad_names_and_parameters(spec: str, message: str) -> None:
    with pytest.raises(InitbenchError, match=message.replace("[", r"\[").replace("?", r"\?")):
        initializers.get(spec)


@pytest.mark.parametrize("shape", SHAPES)
def test_default_is_pytorchs_reset_parameters_bit_for_bit(shape: tuple[int, int]) -> None:
    w, b = init("default", shape, seed=7)
    torch.manual_seed(7)
    reference = nn.Linear(shape[1], shape[0])  # calls reset_parameters() on the global generator
    assert torch.equal(w, reference.weight.detach()) and torch.equal(b, reference.bias.detach())
    bound = 1 / math.sqrt(shape[1])
    assert b.abs().max() <= bound and b.abs().max() > 0.5 * bound  # unlike `rule`, a random bias


def test_same_generator_seed_same_weights_and_only_from_that_generator() -> None:
    torch.manual_seed(1)
    first, _ = init("normal", (128, 256), seed=3)
    torch.manual_seed(2)  # the global generator must not matter
    again, _ = init("normal", (128, 256), seed=3)
    other, _ = init("normal", (128, 256), seed=4)
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_every_scheme_has_summary_formula_and_reference() -> None:
    assert set(initializers.names()) >= {"zeros", "ones", "uniform", "centered", "rule", "normal", "default",
                                     "xavier_uniform", "xavier_normal", "glorot_normal", "kaiming_uniform",
                                     "kaiming_normal", "he_uniform", "he_normal", "lecun_uniform", "lecun_normal",
                                     "orthogonal", "trunc_normal", "sparse", "lsuv"}
    for row in initializers.catalogue():
        assert row["summary"] and "W" in row["formula"] and row["reference"]
        assert row["convention"] in initializers.CONVENTIONS
        for alias in row["aliases"]:
            assert alias["convention"] == "keras" and initializers.get(alias["name"]).name == alias["equals"]
            assert alias["equals"].partition(":")[0] == row["name"]
    listed_aliases = {a["name"] for row in initializers.catalogue() for a in row["aliases"]}
    assert listed_aliases == set(initializers.ALIASES)


TRANSFORMER = ("gpt2", "scaled_normal", "megatron_normal", "small_init", "wang_init", "mitchell", "full_megatron",
               "zero_proj", "small_embedding", "t_fixup", "deepnorm", "mimetic")  # initializers.transformer


def test_conventions_and_keras_schemes_cite_keras() -> None:
    rows = {row["name"]: row for row in initializers.catalogue()}
    assert {n for n, r in rows.items() if r["convention"] == "lesson"} == {
        "zeros", "ones", "uniform", "centered", "rule", "normal"}
    assert {n for n, r in rows.items() if r["convention"] == "paper"} == {
        "trunc_normal", "lsuv", "pretrained", "fixup", "skipinit", *TRANSFORMER}
    for name, cls in (("glorot_normal", "GlorotNormal"), ("he_uniform", "HeUniform"), ("he_normal", "HeNormal"),
                      ("lecun_uniform", "LecunUniform"), ("lecun_normal", "LecunNormal"), ("constant", "Constant")):
        assert rows[name]["convention"] == "keras" and f"keras.initializers.{cls}" in rows[name]["reference"]
    for name in ("glorot_normal", "he_normal", "lecun_normal"):
        assert "cut to [-2s, 2s]" in rows[name]["formula"] and "0.8796" in rows[name]["formula"]
    assert "--activation ignored" in rows["he_normal"]["formula"] and "gain from --activation" in rows[
        "kaiming_normal"]["formula"]
    for name in ("uniform", "normal"):  # Keras's meaning of these two names is said, not taken
        assert f"Keras's \"{name}\" is random_{name} here" in rows[name]["reference"]


def test_unknown_scheme_names_closest_match_and_valid_choices() -> None:
    with pytest.raises(InitbenchError) as err:
        initializers.get("rul")
    message = str(err.value)
    assert "Unknown scheme 'rul'" in message and "Did you mean 'rule'?" in message
    assert all(name in message for name in initializers.names())


def test_register_demands_formula_and_reference_in_docstring() -> None:
    def half_(weight, bias, generator=None):
        """Half: but no formula line."""

    with pytest.raises(ValueError, match="Formula"):
        initializers.register("half")(half_)
    assert "half" not in initializers.names()


def test_lsuv_gives_unit_variance_outputs_on_real_data(small) -> None:
    from initbench.jobs import Job
    from initbench.settings import TrainSettings
    from initbench.training.streams import initial_model

    for activation in ("relu", "tanh"):
        model = initial_model(Job("lsuv", 0, TrainSettings.of(hidden=(128,) * 5, activation=activation)),
                              small.x_train)
        x = small.x_val[:500]
        for i, layer in enumerate(model.layers):
            out = layer(x)
            assert abs(out.var().item() - 1) < 0.2, (activation, i)  # fitted on other images, to 0.1
            x = model.activation(out)


def test_aliases_give_the_same_models_as_their_names(small) -> None:
    from initbench.jobs import Job
    from initbench.settings import TrainSettings
    from initbench.training.streams import initial_model

    for alias, name in (("HeNormal", "he_normal"), ("glorot_uniform", "xavier_uniform"),
                        ("random_normal", "normal:0.05")):
        a, b = (initial_model(Job(n, 3, TrainSettings()), small.x_train) for n in (alias, name))
        assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


# --- Keras's names mean Keras's initializers (keras/src/initializers/random_initializers.py) ---

ACTIVATIONS = ["relu", "tanh", "sigmoid", "gelu", "selu"]
KERAS_SHAPES = [(256, 784), (128, 256), (10, 128), (300, 300), (6, 64)]  # torch's [out, in]
CUT = 2.0  # Keras's truncated_normal redraws what lies beyond 2 stddev of the underlying normal
CUT_STD = math.sqrt(1 - 2 * CUT * math.exp(-CUT**2 / 2) / math.sqrt(2 * math.pi) / math.erf(CUT / math.sqrt(2)))


def variance_scaling(scale: float, mode: str, distribution: str):
    """Keras's VarianceScaling as (fan_in, fan_out) -> (distribution, its parameter)."""
    def expected(i: int, o: int) -> tuple[str, float]:
        n = max(1.0, {"fan_in": i, "fan_out": o, "fan_avg": (i + o) / 2}[mode])
        if distribution == "uniform":
            return "uniform", math.sqrt(3 * scale / n)  # the limit
        return "truncated", math.sqrt(scale / n) / 0.87962566103423978  # the underlying normal's stddev
    return expected


# Keras name -> (fan_in, fan_out) -> (distribution, parameter): "uniform" limit, "normal" stddev,
# "truncated" stddev of the normal cut at CUT of it, "constant" value, "orthogonal" gain.
KERAS = {
    "glorot_uniform": variance_scaling(1.0, "fan_avg", "uniform"),
    "glorot_normal": variance_scaling(1.0, "fan_avg", "truncated_normal"),
    "he_uniform": variance_scaling(2.0, "fan_in", "uniform"),
    "he_normal": variance_scaling(2.0, "fan_in", "truncated_normal"),
    "lecun_uniform": variance_scaling(1.0, "fan_in", "uniform"),
    "lecun_normal": variance_scaling(1.0, "fan_in", "truncated_normal"),
    "random_uniform": lambda i, o: ("uniform", 0.05),
    "random_normal": lambda i, o: ("normal", 0.05),
    "truncated_normal": lambda i, o: ("truncated", 0.05),  # stddev 0.05 is the underlying one: not rescaled
    "zeros": lambda i, o: ("constant", 0.0),
    "ones": lambda i, o: ("constant", 1.0),
    "constant": lambda i, o: ("constant", 0.0),  # Constant(value=0.0)
    "orthogonal": lambda i, o: ("orthogonal", 1.0),  # Orthogonal(gain=1.0)
}
KERAS_CLASSES = {"GlorotUniform": "glorot_uniform", "GlorotNormal": "glorot_normal", "HeUniform": "he_uniform",
                 "HeNormal": "he_normal", "LecunUniform": "lecun_uniform", "LecunNormal": "lecun_normal",
                 "RandomUniform": "random_uniform", "RandomNormal": "random_normal",
                 "TruncatedNormal": "truncated_normal", "Zeros": "zeros", "zero": "zeros", "Ones": "ones",
                 "one": "ones", "Constant": "constant", "Orthogonal": "orthogonal",
                 "OrthogonalInitializer": "orthogonal", "orthogonal_initializer": "orthogonal"}


def cdf(distribution: str, p: float, x: torch.Tensor) -> torch.Tensor:
    if distribution == "uniform":
        return ((x + p) / (2 * p)).clamp(0, 1)
    if distribution == "normal":
        return torch.special.ndtr(x / p)
    lo, hi = torch.special.ndtr(torch.tensor([-CUT, CUT], dtype=torch.float64))
    return ((torch.special.ndtr(x / p) - lo) / (hi - lo)).clamp(0, 1)


def ks(w: torch.Tensor, distribution: str, p: float) -> float:
    """Kolmogorov-Smirnov statistic of the weights against the exact CDF."""
    x = w.flatten().double().sort().values
    f, n = cdf(distribution, p, x), x.numel()
    i = torch.arange(1, n + 1, dtype=torch.float64)
    return max((i / n - f).max().item(), (f - (i - 1) / n).max().item())


def keras_deviations(w: torch.Tensor, distribution: str, p: float) -> list[str]:
    """What in ``w`` departs from Keras's distribution, beyond what its sample size explains."""
    n = w.numel()
    if distribution == "constant":
        return [] if torch.all(w == p) else [f"not all {p}"]
    if distribution == "orthogonal":
        small = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
        return [] if torch.allclose(small, p**2 * torch.eye(min(w.shape)), atol=1e-4, rtol=0) else ["not orthogonal"]
    std = {"uniform": p / math.sqrt(3), "normal": p, "truncated": p * CUT_STD}[distribution]
    bound = {"uniform": p, "normal": math.inf, "truncated": CUT * p}[distribution]
    found = []
    if abs(w.mean().item()) > 5 * std / math.sqrt(n):
        found.append(f"mean {w.mean().item():.3g}")
    if abs(w.std().item() / std - 1) > 5 / math.sqrt(2 * n):  # five standard errors (normal's, the widest here)
        found.append(f"std ratio {w.std().item() / std:.4f}")
    top = w.abs().max().item()
    if top > bound:
        found.append(f"range: {top:.4g} beyond {bound:.4g}")
    elif distribution == "uniform" and top < p * (1 - 10 / n):  # the edge is reached (fails with prob. e^-10)
        found.append(f"range: {top:.4g} short of {p:.4g}")
    elif distribution == "truncated" and top < 0.9 * bound:  # so is the cut (fails with prob. < 1e-4)
        found.append(f"range: {top:.4g} short of the cut {bound:.4g}")
    if distribution != "constant" and ks(w, distribution, p) > 2.0 / math.sqrt(n):  # p ~ 1e-3 for the right one
        found.append(f"KS {ks(w, distribution, p):.4f}")
    return found


@pytest.mark.parametrize("name", [*KERAS, *KERAS_CLASSES])
def test_keras_names_match_keras_formulas_whatever_the_activation(name: str) -> None:
    expected = KERAS[KERAS_CLASSES.get(name, name)]
    for seed, shape in enumerate(KERAS_SHAPES):
        w, b = init(name, shape, seed=seed, activation="relu")
        assert keras_deviations(w, *expected(shape[1], shape[0])) == [], shape
        assert torch.all(b == 0)  # Dense's zero bias
        for activation in ACTIVATIONS[1:]:  # the very same numbers, so the same statistics, under every one
            again, b = init(name, shape, seed=seed, activation=activation)
            assert torch.equal(again, w) and torch.all(b == 0), (shape, activation)


@pytest.mark.parametrize("name,value", [("constant:0.5", 0.5), ("Constant:-2", -2.0)])
def test_keras_constant_takes_a_value(name: str, value: float) -> None:
    w, b = init(name, (10, 128))
    assert keras_deviations(w, "constant", value) == [] and torch.all(b == 0)


@pytest.mark.parametrize("cls,name", list(KERAS_CLASSES.items()))
def test_keras_class_names_give_the_weights_of_their_snake_names(cls: str, name: str) -> None:
    assert initializers.get(cls).name == initializers.get(name).name  # the same random streams in a run, too
    for activation in ACTIVATIONS:
        a, b = init(cls, (128, 256), seed=11, activation=activation), init(name, (128, 256), seed=11,
                                                                          activation=activation)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_keras_checks_catch_the_old_aliases() -> None:
    """he_normal used to be kaiming_normal: gain from --activation, untruncated normal."""
    shape, he = (256, 784), KERAS["he_normal"](784, 256)
    old_tanh, _ = init("kaiming_normal", shape, activation="tanh")
    found = keras_deviations(old_tanh, *he)
    assert any(f.startswith("std ratio 1.17") or f.startswith("std ratio 1.18") for f in found), found
    for old, new in (("kaiming_normal", "he_normal"), ("xavier_normal", "glorot_normal")):
        w, _ = init(old, shape)  # the right variance from a plain normal
        found = keras_deviations(w, *KERAS[new](784, 256))
        assert not any(f.startswith("std") for f in found)
        assert any(f.startswith("KS") for f in found) and any(f.startswith("range") for f in found), found
    w, _ = init("normal:0.05", (128, 256))  # TruncatedNormal is not RandomNormal
    assert any(f.startswith("KS") for f in keras_deviations(w, "truncated", 0.05))
    w, _ = init("orthogonal:1.41", (128, 256))  # the activation gain the old orthogonal applied
    assert keras_deviations(w, "orthogonal", 1.0) == ["not orthogonal"]


@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "fan_avg"])
@pytest.mark.parametrize("distribution", ["truncated_normal", "untruncated_normal", "uniform"])
def test_variance_scaling_gives_scale_over_n_as_keras(mode: str, distribution: str) -> None:
    w = torch.empty(300, 200)
    variance_scaling_(w, torch.Generator().manual_seed(0), scale=3.0, mode=mode, distribution=distribution)
    n = {"fan_in": 200, "fan_out": 300, "fan_avg": 250}[mode]
    kind, p = {"truncated_normal": ("truncated", math.sqrt(3 / n) / 0.87962566103423978),
               "untruncated_normal": ("normal", math.sqrt(3 / n)),
               "uniform": ("uniform", math.sqrt(9 / n))}[distribution]
    assert keras_deviations(w, kind, p) == []


@pytest.mark.parametrize(("spec", "words"), [
    ("sparse:-0.1", "sparsity (the fraction of each column's weights set to 0) must be from 0 up to"),
    ("sparse:1.5", "sparsity"),
    ("uniform:1,0", "low must be below high (got low 1, high 0)"),
    ("uniform:-inf,inf", "low (the lower end of the range) must be a finite float32 number"),
    ("normal:-1", "std (the standard deviation) must be a finite number above 0; got -1"),
    ("normal:nan", "std"),
    ("trunc_normal:0", "std"),
    ("constant:1e40", "value (the weight every unit gets) must be a finite float32 number"),
    ("Constant:1e40", "value"),
    ("xavier_uniform:0", "gain (the factor the weights are scaled by) must be a finite number above 0"),
    ("orthogonal:-1", "gain"),
])
def test_parameters_outside_their_range_are_refused_when_the_name_is_parsed(spec: str, words: str) -> None:
    with pytest.raises(InitbenchError, match="Bad parameter") as raised:
        initializers.get(spec)
    assert words in str(raised.value) and repr(spec) in str(raised.value)


@pytest.mark.parametrize("spec", ["sparse:0", "sparse:0.99", "uniform:-1,1", "uniform:0.5", "constant:-2",
                                  "normal:1e-6", "xavier_normal:2", "RandomUniform"])
def test_parameters_inside_their_range_are_accepted(spec: str) -> None:
    weight, bias = torch.empty(16, 32), torch.empty(16)
    initializers.get(spec).init(weight, bias, torch.Generator().manual_seed(0), 1.0)
    assert torch.isfinite(weight).all()


def test_a_name_in_the_wrong_case_gets_the_right_one_suggested() -> None:
    with pytest.raises(InitbenchError, match="Did you mean 'rule'"):
        initializers.get("RULE")
