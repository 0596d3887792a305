"""Both engines: reproducible, each model independent of the others, divergence recorded,
and the batched engine equal to the sequential reference."""

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from initbench.jobs import Job, Keep
from initbench.settings import DataSettings, TrainSettings
from initbench.training import engines
from initbench.training.engines import batched, sequential
from initbench.training.streams import initial_model, stream_seed

CPU = torch.device("cpu")
# The engine tests that hold on any device run on CUDA too where there is one (skipped
# here otherwise); bit-for-bit exactness is a CPU claim (see same_numbers).
DEVICES = [pytest.param(CPU, id="cpu"),
           pytest.param(torch.device("cuda"), id="cuda",
                        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here"))]
ONE_EPOCH = TrainSettings.of(epochs=1)
LESSON = ["zeros", "ones", "uniform", "centered", "rule", "normal", "default"]


def same_numbers(a, b, device: torch.device) -> bool:
    """Bit for bit on the CPU; within float rounding over the first batches elsewhere."""
    if device.type == "cpu":
        return torch.equal(a.losses, b.losses) and a.val_acc == b.val_acc and a.test_acc == b.test_acc
    return torch.allclose(a.losses[0, :10], b.losses[0, :10], rtol=1e-5)


@pytest.mark.parametrize("name", engines.ENGINES)
def test_same_job_same_numbers(small, name: str) -> None:
    job = Job("rule", 0, ONE_EPOCH)
    first, again = (engines.train([job], small, CPU, name)[0] for _ in range(2))
    assert torch.equal(first.losses, again.losses) and first.val_acc == again.val_acc


@pytest.mark.exactness
@pytest.mark.parametrize("device", DEVICES)
def test_batched_model_gets_what_it_gets_alone(small, device: torch.device) -> None:
    """The lesson's schemes, two seeds, dropout on: trained together, each model's losses
    and accuracies are those it gets when trained alone."""
    data = small.to(device)
    jobs = [Job(scheme, seed, ONE_EPOCH) for seed in (0, 1) for scheme in LESSON]
    together = engines.train(jobs, data, device, "batched")
    for job, result in zip(jobs, together):
        assert same_numbers(engines.train([job], data, device, "batched")[0], result, device), job


@pytest.mark.exactness
def test_chunks_change_nothing(small) -> None:
    jobs = [Job(scheme, 3, ONE_EPOCH) for scheme in LESSON]
    whole = engines.train(jobs, small, CPU, "batched")
    chunked = engines.train(jobs, small, CPU, "batched", max_models=3)
    assert all(torch.equal(a.losses, b.losses) and a.val_acc == b.val_acc for a, b in zip(whole, chunked))


@pytest.mark.parametrize("device", DEVICES)
def test_engines_agree_over_the_first_batches(small, device: torch.device) -> None:
    """Without dropout, per-batch losses agree within 1e-5 (relative) over the first 10
    batches. `ones` and `uniform` are left out: their logits are in the millions, where a
    float32 step is about 1, so their losses are themselves rounding noise (see README)."""
    data = small.to(device)
    settings = TrainSettings.of(epochs=1, dropout=0.0)
    jobs = [Job(scheme, 0, settings) for scheme in ("zeros", "centered", "rule", "normal", "default")]
    for b, s in zip(engines.train(jobs, data, device, "batched"), engines.train(jobs, data, device, "sequential")):
        torch.testing.assert_close(b.losses[0, :10], s.losses[0, :10], rtol=1e-5, atol=0)


def test_engines_agree_statistically(data_dir) -> None:
    """With dropout, over 3 seeds and 60 batches, each scheme's mean validation accuracy
    differs between the engines by less than the seed-to-seed spread."""
    from initbench import data

    splits = data.load(data_dir, DataSettings(train_samples=6000))
    jobs = [Job(scheme, seed, ONE_EPOCH) for seed in range(3) for scheme in LESSON]
    acc = {name: torch.tensor([r.val_acc[-1] for r in engines.train(jobs, splits, CPU, name)]).view(3, -1)
           for name in engines.ENGINES}
    spread = torch.maximum(acc["batched"].std(0), acc["sequential"].std(0))
    gap = (acc["batched"].mean(0) - acc["sequential"].mean(0)).abs()
    assert (gap <= spread + 0.005).all(), (gap, spread)
    assert acc["batched"].mean(0)[LESSON.index("rule")] > 0.7


@pytest.mark.parametrize("name", engines.ENGINES)
def test_divergence_is_recorded_and_does_not_poison_the_others(small, name: str) -> None:
    """At lr 1e20 some models blow up (which ones depends on the CPU's kernels: on the AVX2
    path `ones` does too); whichever they are, each diverged model is recorded at the batch
    whose loss was not finite, with NaN after it, and every model of the group, diverged or
    not, has exactly the numbers it has when trained alone."""
    settings = TrainSettings.of(epochs=2, lr=1e20)
    jobs = [Job(scheme, 0, settings) for scheme in ("ones", "rule", "zeros", "uniform")]
    results = engines.train(jobs, small, CPU, name)
    assert any(r.diverged_at is not None for r in results)
    for job, r in zip(jobs, results):
        flat = r.losses.flatten()
        assert len(r.val_acc) == 2 and 0 <= r.test_acc <= 1
        if r.diverged_at is None:
            assert torch.isfinite(flat).all(), job
        else:
            at = r.diverged_at - 1  # 1-based
            assert torch.isfinite(flat[:at]).all() and not math.isfinite(flat[at]), job
            assert torch.isnan(flat[at + 1:]).all(), job
        alone = engines.train([job], small, CPU, name)[0]
        assert alone.diverged_at == r.diverged_at, job
        torch.testing.assert_close(alone.losses, r.losses, rtol=0, atol=0, equal_nan=True)
        assert (alone.val_acc, alone.test_acc) == (r.val_acc, r.test_acc), job


def test_frozen_model_stays_frozen(small) -> None:
    """A diverged model's parameters do not move after the batch that diverged."""
    jobs = [Job("rule", 0, TrainSettings.of(epochs=1, lr=1e20)), Job("zeros", 0, TrainSettings.of(epochs=1, lr=1e20))]
    population = batched.Population(jobs, [initial_model(job, small.x_train) for job in jobs], CPU)
    alive = torch.ones(2, dtype=torch.bool)
    idx = torch.arange(100).view(1, 100)  # both models are of seed 0
    population.train_step(small.x_train, small.y_train, idx, None, alive)
    population.train_step(small.x_train, small.y_train, idx, None, alive)
    assert alive.tolist() == [False, True]
    before = [p[0].clone() for p in population.parameters()]
    population.train_step(small.x_train, small.y_train, idx, None, alive)
    assert all(torch.equal(b, p[0]) for b, p in zip(before, population.parameters()))


def test_non_finite_outputs_count_as_wrong(small) -> None:
    model = torch.nn.Linear(784, 10)
    torch.nn.init.constant_(model.weight, math.nan)
    assert sequential.accuracy(model, small.x_val, small.y_val) == 0.0


def test_memory_estimate_bounds_the_group() -> None:
    lesson = TrainSettings()
    per_model = batched.bytes_per_model(lesson)
    assert 4 * 4 * 235_146 < per_model < 64 << 20  # parameters x 4 (weights, grads, 2 moments) .. 64 MiB
    assert batched.bytes_per_model(lesson.replace(hidden=(1024,) * 4)) > 4 * per_model
    assert batched.default_max_models(lesson, CPU) >= 1


def test_stream_seeds_are_stable_and_distinct() -> None:
    assert stream_seed(0, "order") == stream_seed(0, "order")
    purposes = ("init", "init/layer-0", "init/layer-1", "dropout", "eval-dropout", "order", "init-batch")
    seeds = {stream_seed(s, p) for s in range(3) for p in purposes}
    assert len(seeds) == 3 * len(purposes) and all(0 <= s < 2**63 for s in seeds)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "gelu", "selu", "linear"])
def test_engines_agree_for_every_activation(small, activation: str, device: torch.device) -> None:
    """The batched engine's hand-written gradients of each activation match autograd's: the
    losses of the first 10 steps agree to rounding. The two round apart, and a start near the
    edge of stability (kaiming_normal under SELU, gain 3/4) grows a rounding difference about
    tenfold a step (9e-5 by step 10): of it, the first 4 steps."""
    settings = TrainSettings.of(epochs=1, dropout=0.0, activation=activation, hidden=(64, 64, 64))
    jobs = [Job(scheme, 0, settings) for scheme in ("kaiming_normal", "xavier_normal", "lsuv")]
    data = small.to(device)
    for b, s in zip(engines.train(jobs, data, device, "batched"), engines.train(jobs, data, device, "sequential")):
        steps = 4 if (b.job.scheme, activation) == ("kaiming_normal", "selu") else 10
        torch.testing.assert_close(b.losses[0, :steps], s.losses[0, :steps], rtol=1e-5, atol=0)


ACTIVATIONS = ["relu", "tanh", "sigmoid", "gelu", "selu", "linear"]
# Every width from 1 to 16 in every position (the only hidden layer, the first of two,
# the second of two: the last two feed the 10-unit output layer), the activations in
# turn; then the lesson's shapes and a deep stack. Narrow products are where MKL
# switches kernels.
NARROW = [(ACTIVATIONS[(w + i) % len(ACTIVATIONS)], hidden) for w in range(1, 17) for i, hidden in enumerate(((w,), (w, 32), (32, w)))]
SHAPES = [*((a, (256, 128)) for a in ACTIVATIONS), ("relu", (64,) * 6), ("tanh", (64,) * 6), *NARROW]


@pytest.mark.exactness
@pytest.mark.parametrize(("activation", "hidden"), SHAPES,
                         ids=lambda v: "x".join(map(str, v)) if isinstance(v, tuple) else v)
def test_batched_exact_alone_for_every_activation_and_shape(tiny, activation: str, hidden: tuple[int, ...]) -> None:
    """With dropout, three schemes x two seeds trained together give each model the losses
    and accuracies it gets alone, bit for bit (the CPU path calls every operation per model
    on aligned memory; see batched.Population)."""
    settings = TrainSettings.of(epochs=1, activation=activation, hidden=hidden)
    jobs = [Job(scheme, seed, settings) for seed in (0, 1) for scheme in ("xavier_normal", "default", "lsuv")]
    for job, result in zip(jobs, engines.train(jobs, tiny, CPU, "batched")):
        assert same_numbers(engines.train([job], tiny, CPU, "batched")[0], result, CPU), job


# resmlp (residual blocks, dropout inside each): narrow and uneven widths, a deep stack,
# the residual schemes, and frozen layers that end inside a block and between blocks.
RESIDUAL = [*(TrainSettings.of(epochs=1, network="resmlp", activation=a, hidden=h) for a, h in
              (("relu", (16, 16)), ("tanh", (7, 3, 12)), ("linear", (5,)), ("gelu", (16,) * 8))),
            TrainSettings.of(epochs=2, network="resmlp", hidden=(16, 16), freeze=2, unfreeze_after=1),
            TrainSettings.of(epochs=1, network="resmlp", hidden=(16, 16), freeze=3)]
RESIDUAL_SCHEMES = ("default", "fixup", "skipinit")


@pytest.mark.exactness
@pytest.mark.parametrize("settings", RESIDUAL, ids=lambda s: f"{s.network.activation}-{s.optim.freeze}-"
                                                          + "x".join(map(str, s.network.hidden)))
def test_batched_resmlp_exact_alone(tiny, settings: TrainSettings) -> None:
    """Residual networks trained together: each model's numbers are those it gets alone, bit for bit."""
    jobs = [Job(scheme, seed, settings) for seed in (0, 1) for scheme in RESIDUAL_SCHEMES]
    for job, result in zip(jobs, engines.train(jobs, tiny, CPU, "batched")):
        assert same_numbers(engines.train([job], tiny, CPU, "batched")[0], result, CPU), job


@pytest.mark.parametrize("settings", [RESIDUAL[1], RESIDUAL[4].replace(dropout=0.0)], ids=["tanh-dropout", "unfrozen"])
@pytest.mark.parametrize("device", DEVICES)
def test_engines_agree_on_resmlp(tiny, settings: TrainSettings, device: torch.device) -> None:
    """The batched engine's hand-written residual backward (the skip's gradient added to the
    branch's) agrees with autograd's over every batch."""
    jobs = [Job(scheme, 0, settings) for scheme in RESIDUAL_SCHEMES]
    data = tiny.to(device)
    for b, s in zip(engines.train(jobs, data, device, "batched"), engines.train(jobs, data, device, "sequential")):
        torch.testing.assert_close(b.losses, s.losses, rtol=1e-4, atol=0)


@pytest.mark.skipif("ATEN_CPU_CAPABILITY" in os.environ or "MKL_ENABLE_INSTRUCTIONS" in os.environ,
                    reason="already restricted to one code path")
def test_exactness_holds_on_the_avx2_code_path_too() -> None:
    """The exactness tests again in a fresh process with MKL and ATen restricted to AVX2
    (set before torch loads), so a machine with AVX-512 also checks the other CPU's kernels."""
    env = {**os.environ, "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "exactness",
                           str(Path(__file__))], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:]
    passed = re.search(r"(\d+) passed", done.stdout)
    assert passed and int(passed[1]) > len(SHAPES), done.stdout[-3000:]  # and none skipped or failed


@pytest.mark.exactness
def test_code_path_is_the_one_asked_for() -> None:
    """Under ATEN_CPU_CAPABILITY the kernels really are that path's (so the test above tests it)."""
    wanted = os.environ.get("ATEN_CPU_CAPABILITY")
    assert wanted is None or torch.backends.cpu.get_cpu_capability() == wanted.upper()


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_stacked_form_agrees_with_the_per_model_form(small, monkeypatch, activation: str) -> None:
    """The form a GPU runs (one call per operation for all models), run here on the CPU:
    the losses agree with the exact per-model form to rounding, the accuracies to a few images."""
    settings = TrainSettings.of(epochs=1, activation=activation, lesson_eval=True)
    jobs = [Job(scheme, seed, settings) for seed in (0, 1) for scheme in ("rule", "default", "xavier_normal")]
    exact = engines.train(jobs, small, CPU, "batched")
    monkeypatch.setattr(batched, "PER_MODEL_DEVICES", ())
    for a, b in zip(exact, engines.train(jobs, small, CPU, "batched")):
        torch.testing.assert_close(a.losses[0, :10], b.losses[0, :10], rtol=1e-5, atol=0)
        assert abs(a.val_acc[0] - b.val_acc[0]) < 0.005 and abs(a.test_acc - b.test_acc) < 0.005


@pytest.mark.exactness
def test_lesson_eval_masks_are_each_models_own(small) -> None:
    """Scored with dropout on, a model's accuracies are the same alone as in a group, and
    again the same on a second run; the engines agree to within a few images."""
    settings = TrainSettings.of(epochs=1, lesson_eval=True)
    jobs = [Job(scheme, seed, settings) for seed in (0, 1) for scheme in ("rule", "normal", "default")]
    together = engines.train(jobs, small, CPU, "batched")
    for job, result in zip(jobs, together):
        alone = engines.train([job], small, CPU, "batched")[0]
        assert (alone.val_acc, alone.test_acc) == (result.val_acc, result.test_acc), job
    for b, s in zip(together, engines.train(jobs, small, CPU, "sequential")):
        assert abs(b.val_acc[-1] - s.val_acc[-1]) < 0.002 and abs(b.test_acc - s.test_acc) < 0.002


@pytest.mark.parametrize("name", engines.ENGINES)
def test_layer_stats_are_returned_for_every_model_at_init_and_after_each_epoch(small, name: str) -> None:
    jobs = [Job("rule", 0, TrainSettings.of(epochs=2)), Job("zeros", 1, TrainSettings.of(epochs=2))]
    rule, zeros = engines.train(jobs, small, CPU, name, keep=Keep(layer_stats=True))
    for r in (rule, zeros):
        assert [(row["epoch"], row["layer"]) for row in r.layer_stats] == [(e, i) for e in range(3) for i in (1, 2, 3)]
    weights = {row["epoch"]: row["weight_std"] for row in rule.layer_stats if row["layer"] == 1}
    assert weights[0] != weights[1] != weights[2]  # the trained model, not the initial one
    assert engines.train(jobs[:1], small, CPU, name)[0].layer_stats is None  # only when asked


def test_every_activation_has_a_function_a_gain_and_batched_ops() -> None:
    """An activation named in settings.ACTIVATIONS (what --activation accepts) exists everywhere it must."""
    from initbench import initializers, settings
    from initbench.models import mlp

    assert set(settings.ACTIVATIONS) == set(mlp.ACTIVATION_FNS) == set(initializers.GAIN) == set(batched.ACTIVATION_OPS)


FROZEN = TrainSettings.of(epochs=2, freeze=2, lr=0.01)  # the two hidden layers stay as initialized
UNFROZEN = TrainSettings.of(epochs=2, freeze=2, unfreeze_after=1)  # ...for the first epoch only


def changed_layers(result) -> list[bool]:
    return [not torch.equal(result.initial[f"layers.{i}.weight"], result.weights[f"layers.{i}.weight"])
            for i in range(3)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", engines.ENGINES)
def test_frozen_layers_stay_exactly_as_initialized(tiny, name: str, device: torch.device) -> None:
    """--freeze 2: the hidden layers' weights and biases end bit for bit as they began; the
    output layer trains: the loss falls (from ln 10 = 2.30 to about 2.2 in 14 steps; on random
    features accuracy after so few steps is near chance or not, by the seed)."""
    [r] = engines.train([Job("rule", 0, FROZEN)], tiny.to(device), device, name, keep=Keep(weights=True, initial=True))
    assert changed_layers(r) == [False, False, True]
    assert all(torch.equal(r.initial[f"layers.{i}.bias"], r.weights[f"layers.{i}.bias"]) for i in range(2))
    assert r.losses[-1].mean() < r.losses[0, 0] - 0.05


@pytest.mark.parametrize("name", engines.ENGINES)
def test_unfrozen_layers_train_from_the_epoch_after(tiny, name: str) -> None:
    """--unfreeze-after 1: after epoch 1 the hidden layers are still the initial ones, after
    epoch 2 they have moved; by a tenth of the output layer's learning rate, so less."""
    [r] = engines.train([Job("rule", 0, UNFROZEN)], tiny, CPU, name, keep=Keep(weights=True, initial=True,
                                                                                  layer_stats=True))
    first = {row["epoch"]: row["weight_std"] for row in r.layer_stats if row["layer"] == 1}
    assert first[0] == first[1] != first[2]
    assert changed_layers(r) == [True, True, True]
    hidden_step = (r.weights["layers.0.weight"] - r.initial["layers.0.weight"]).abs().max()
    assert hidden_step < 7 * 1e-4 * 1.01  # Adam moves a weight at most about lr per step: 7 steps at lr/10


@pytest.mark.exactness
@pytest.mark.parametrize("settings", [FROZEN, UNFROZEN, TrainSettings.of(epochs=2, freeze=1, unfreeze_after=1,
                                                                      unfreeze_lr=3e-3, dropout=0.0),
                                      # μP: an optimizer group per learning rate, unfrozen ones too
                                      UNFROZEN.replace(hidden=(128, 64), parametrization="mup")], ids=str)
def test_batched_model_gets_what_it_gets_alone_with_frozen_layers(tiny, settings: TrainSettings) -> None:
    jobs = [Job(scheme, seed, settings) for seed in (0, 1) for scheme in ("rule", "default", "lsuv")]
    for job, result in zip(jobs, engines.train(jobs, tiny, CPU, "batched")):
        assert same_numbers(engines.train([job], tiny, CPU, "batched")[0], result, CPU), job


@pytest.mark.parametrize("settings", [FROZEN.replace(dropout=0.0),
                                      UNFROZEN.replace(dropout=0.0)], ids=["frozen", "unfrozen"])
@pytest.mark.parametrize("device", DEVICES)
def test_engines_agree_with_frozen_and_unfrozen_layers(tiny, settings: TrainSettings, device: torch.device) -> None:
    """Both epochs (7 batches each: frozen, then unfrozen with fresh Adam moments at a tenth
    of the learning rate) agree between the engines within float rounding."""
    jobs = [Job(scheme, 0, settings) for scheme in ("rule", "default", "kaiming_normal")]
    data = tiny.to(device)
    for b, s in zip(engines.train(jobs, data, device, "batched"), engines.train(jobs, data, device, "sequential")):
        torch.testing.assert_close(b.losses, s.losses, rtol=1e-4, atol=0)


SGD = TrainSettings.of(epochs=1, optimizer="sgd", lr=0.05, momentum=0.9)


@pytest.mark.exactness
@pytest.mark.parametrize("settings", [SGD, SGD.replace(momentum=0.0, activation="tanh"),
                                      SGD.replace(epochs=2, freeze=1, unfreeze_after=1),
                                      SGD.replace(lr=0.02, hidden=(128, 128), parametrization="mup")], ids=str)
def test_batched_model_gets_what_it_gets_alone_with_sgd(tiny, settings: TrainSettings) -> None:
    jobs = [Job(scheme, seed, settings) for seed in (0, 1) for scheme in ("rule", "default", "lsuv")]
    for job, result in zip(jobs, engines.train(jobs, tiny, CPU, "batched")):
        assert same_numbers(engines.train([job], tiny, CPU, "batched")[0], result, CPU), job


@pytest.mark.parametrize("settings", [SGD.replace(dropout=0.0),
                                      SGD.replace(dropout=0.0, momentum=0.0, activation="gelu"),
                                      SGD.replace(dropout=0.0, epochs=2, freeze=2, unfreeze_after=1)],
                         ids=["momentum", "plain", "unfrozen"])
@pytest.mark.parametrize("device", DEVICES)
def test_engines_agree_with_sgd(tiny, settings: TrainSettings, device: torch.device) -> None:
    """The batched engine's SGD (buf = momentum * buf + grad; p -= lr * buf, per model)
    agrees with torch.optim.SGD over every batch."""
    jobs = [Job(scheme, 0, settings) for scheme in ("rule", "default", "kaiming_normal")]
    data = tiny.to(device)
    for b, s in zip(engines.train(jobs, data, device, "batched"), engines.train(jobs, data, device, "sequential")):
        torch.testing.assert_close(b.losses, s.losses, rtol=1e-4, atol=0)


def test_sgd_trains_and_differs_from_adam(small) -> None:
    """SGD with momentum learns (well above chance after one epoch) and is not Adam."""
    adam, sgd = engines.train([Job("kaiming_normal", 0, SGD.replace(optimizer=o)) for o in
                               ("adam", "sgd")], small, CPU, "batched")
    assert sgd.val_acc[-1] > 0.5 and not torch.equal(adam.losses, sgd.losses)


def test_a_step_is_timed_several_times_after_a_warm_up() -> None:
    """A sweep's plan read the median of three steps after one: a step that waited for a CPU
    on a shared machine made an estimate of 71 minutes. WARM_UP untimed, then at least
    TIMED[0] timed (more while under TIMED_SECONDS, at most TIMED[1])."""
    calls = []
    times = batched.repeated(lambda: calls.append(1), torch.device("cpu"))
    assert batched.TIMED[0] <= len(times) <= batched.TIMED[1] and len(calls) == batched.WARM_UP + len(times)
    slow = batched.repeated(lambda: __import__("time").sleep(batched.TIMED_SECONDS / 2), torch.device("cpu"))
    assert len(slow) == batched.TIMED[0]  # a second's worth already: no more than the fewest
    timed = batched.step_seconds(TrainSettings.of(hidden=(16,), dropout=0.0), torch.device("cpu"), 2)
    assert 0 < timed.low <= timed.median <= timed.high
