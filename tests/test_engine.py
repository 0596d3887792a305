"""The reference engine: reproducible, independent models, divergence recorded."""

import dataclasses
import math

import torch

from initbench import engine
from initbench.engine import Job, TrainSettings

CPU = torch.device("cpu")
ONE_EPOCH = TrainSettings(epochs=1)


def test_same_job_same_numbers(small) -> None:
    job = Job("rule", 0, ONE_EPOCH)
    first, again = engine.train_sequential([job], small, CPU) + engine.train_sequential([job], small, CPU)
    assert torch.equal(first.losses, again.losses) and first.val_acc == again.val_acc


def test_a_model_does_not_depend_on_the_models_beside_it(small) -> None:
    alone = engine.train_sequential([Job("default", 1, ONE_EPOCH)], small, CPU)[0]
    together = engine.train_sequential(
        [Job("zeros", 1, ONE_EPOCH), Job("default", 1, ONE_EPOCH), Job("rule", 2, ONE_EPOCH)], small, CPU)[1]
    assert torch.equal(alone.losses, together.losses) and alone.test_acc == together.test_acc


def test_seeds_differ_and_rule_learns(small) -> None:
    a, b = engine.train_sequential([Job("rule", 0, ONE_EPOCH), Job("rule", 1, ONE_EPOCH)], small, CPU)
    assert not torch.equal(a.losses, b.losses)
    assert a.losses.shape == (1, 20)  # 2,000 images in batches of 100
    assert a.val_acc[0] > 0.45 and a.losses[0, -1] < a.losses[0, 0]


def test_divergence_is_recorded_and_does_not_stop_the_others(small) -> None:
    exploding = dataclasses.replace(ONE_EPOCH, lr=1e30, epochs=2)
    blown, fine = engine.train_sequential(
        [Job("rule", 0, exploding), Job("rule", 0, dataclasses.replace(exploding, lr=1e-3))], small, CPU)
    assert blown.diverged_at is not None and 1 < blown.diverged_at <= 40
    flat = blown.losses.flatten()
    assert not math.isfinite(flat[blown.diverged_at - 1])  # the batch that went non-finite
    assert torch.isnan(flat[blown.diverged_at:]).all()  # nothing trained after it
    assert len(blown.val_acc) == 2 and 0 <= blown.test_acc <= 1
    assert fine.diverged_at is None and fine.val_acc[-1] > 0.65


def test_non_finite_outputs_count_as_wrong(small) -> None:
    model = torch.nn.Linear(784, 10)
    torch.nn.init.constant_(model.weight, math.nan)
    assert engine.accuracy(model, small.x_val, small.y_val) == 0.0


def test_stream_seeds_are_stable_and_distinct() -> None:
    assert engine.stream_seed(0, "order") == engine.stream_seed(0, "order")
    seeds = {engine.stream_seed(s, p, n) for s in range(3) for p in ("init", "dropout") for n in ("rule", "zeros")}
    assert len(seeds) == 12 and all(0 <= s < 2**63 for s in seeds)
