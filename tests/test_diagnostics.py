"""Per-layer statistics and the flags that name what is wrong with a start."""

import torch

from initbench.jobs import Job
from initbench.settings import TrainSettings
from initbench.training import diagnostics
from initbench.training.streams import initial_model


def stats(small, scheme: str, **settings):
    model = initial_model(Job(scheme, 0, TrainSettings.of(**settings)), small.x_train)
    x, y = diagnostics.stats_batch(small.x_val, small.y_val)
    return diagnostics.layer_stats(model, x, y)


def test_constant_schemes_are_symmetric(small) -> None:
    for scheme in ("zeros", "ones", "constant:0.1"):
        rows = stats(small, scheme)
        assert [r["distinct_units"] for r in rows] == [1, 1, 1]
        assert any(f.startswith("symmetry") for f in diagnostics.flags(rows)), scheme


def test_a_good_start_raises_no_flag(small) -> None:
    rows = stats(small, "kaiming_normal")
    assert [r["distinct_units"] for r in rows] == [256, 128, 10]
    assert diagnostics.flags(rows) == []
    assert all(r["dead_fraction"] < 0.1 and r["grad_norm"] > 0 for r in rows)


def test_deep_relu_rule_vanishes_and_kaiming_does_not(small) -> None:
    deep = {"hidden": (256,) * 10}
    rule = stats(small, "rule", **deep)
    assert rule[-2]["act_std"] < 1e-3 * rule[0]["act_std"]
    assert any(f.startswith("vanishing activations") for f in diagnostics.flags(rule))
    kaiming = stats(small, "kaiming_normal", **deep)
    assert 0.3 < kaiming[-2]["act_std"] / kaiming[0]["act_std"] < 3
    assert not any("vanishing" in f for f in diagnostics.flags(kaiming))


def test_exploding_start_is_flagged(small) -> None:
    rows = stats(small, "normal:0.2", hidden=(256,) * 6)
    assert any(f.startswith("exploding activations") for f in diagnostics.flags(rows))


def test_statistics_match_a_hand_computation(small) -> None:
    model = initial_model(Job("rule", 0, TrainSettings()), small.x_train)
    x, y = diagnostics.stats_batch(small.x_val, small.y_val)
    rows = diagnostics.layer_stats(model, x, y)
    first = torch.relu(model.layers[0](x))
    assert rows[0]["act_std"] == torch.std(first).item()
    assert rows[0]["dead_fraction"] == (first == 0).all(0).float().mean().item()
    assert rows[0]["weight_std"] == model.layers[0].weight.std().item()
    assert model.layers[0].weight.grad is None  # the model given is left untouched


def test_backprop_std_is_the_gradient_at_each_layers_output(small) -> None:
    """backprop_std: the std of dLoss/d(layer output, before its activation), as autograd gives
    it for the same batch (Glorot & Bengio's Figure 7)."""
    import torch.nn.functional as F

    model = initial_model(Job("xavier_uniform", 0, TrainSettings.of(activation="tanh", dropout=0.0)), small.x_train)
    x, y = diagnostics.stats_batch(small.x_val, small.y_val)
    rows = diagnostics.layer_stats(model, x, y)
    h, outputs = x, []
    for i, layer in enumerate(model.layers):
        z = layer(h)
        z.retain_grad()
        outputs.append(z)
        h = torch.tanh(z) if i < len(model.layers) - 1 else z
    F.cross_entropy(h, y).backward()
    for row, z in zip(rows, outputs):
        assert abs(row["backprop_std"] - z.grad.std().item()) <= 1e-6 * z.grad.std().item()
