"""Each model of a population with its own learning rate, betas, weight decay or momentum:
one batched step trains a grid of them, each model exactly as it trains alone."""

import pytest
import torch

from initbench.jobs import Job
from initbench.settings import TrainSettings
from initbench.training import engines

CPU = torch.device("cpu")
ADAM = TrainSettings.of(epochs=1, hidden=(64, 32))
SGD = ADAM.replace(optimizer="sgd", lr=0.05)


def exactly_as_alone(jobs: list[Job], data) -> list:
    """The jobs trained together: one population (one chunk), each model's numbers those it gets alone."""
    assert len(engines.plan(jobs, "batched", lambda s: 1_000)) == 1
    together = engines.train(jobs, data, CPU, "batched")
    for job, result in zip(jobs, together):
        alone = engines.train([job], data, CPU, "batched")[0]
        assert alone.diverged_at == result.diverged_at, job
        torch.testing.assert_close(alone.losses, result.losses, rtol=0, atol=0, equal_nan=True)
        assert (alone.val_acc, alone.test_acc) == (result.val_acc, result.test_acc), job
    return together


@pytest.mark.exactness
def test_an_adam_grid_trains_in_one_step_each_model_as_alone(tiny) -> None:
    """Three learning rates x two betas x two weight decays x two schemes x two seeds: 48
    models, one population; the rates interleave, so a rate's models are not neighbours."""
    jobs = [Job(scheme, seed, ADAM.replace(lr=lr, betas=betas, weight_decay=wd))
            for seed in (0, 1) for scheme in ("rule", "default") for betas in ((0.9, 0.999), (0.8, 0.99))
            for wd in (0.0, 1e-2) for lr in (1e-3, 3e-3, 1e-2)]
    results = exactly_as_alone(jobs, tiny)
    losses = {job.settings.optim: r.losses for job, r in zip(jobs, results) if (job.scheme, job.seed) == ("rule", 0)}
    assert len({tuple(t.flatten().tolist()) for t in losses.values()}) == 12  # every setting changed the training


@pytest.mark.exactness
def test_an_sgd_grid_with_a_diverging_rate_trains_in_one_step_each_model_as_alone(tiny) -> None:
    """Momentum and weight decay per model, and a rate at which models blow up: whichever
    diverge (the CPU's kernels decide), they leave the others' numbers as they are alone."""
    jobs = [Job("rule", seed, SGD.replace(lr=lr, momentum=m, weight_decay=wd))
            for seed in (0, 1) for lr in (0.01, 0.05, 1e4) for m, wd in ((0.9, 0.0), (0.5, 1e-2))]
    results = exactly_as_alone(jobs, tiny)
    assert all(r.diverged_at is None for job, r in zip(jobs, results) if job.settings.optim.lr < 1)


@pytest.mark.exactness
def test_an_unfrozen_layers_rate_is_each_models_own(tiny) -> None:
    jobs = [Job("rule", 0, ADAM.replace(epochs=2, freeze=1, unfreeze_after=1, lr=lr, unfreeze_lr=lr / f))
            for lr in (1e-3, 4e-3) for f in (2, 20)]
    exactly_as_alone(jobs, tiny)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_the_engines_agree_on_betas_and_weight_decay(tiny, optimizer: str) -> None:
    """The batched engine's update is torch.optim's (Adam's betas and weight decay, SGD's
    weight decay): the sequential engine's losses agree over every batch."""
    s = ADAM.replace(optimizer=optimizer, dropout=0.0, weight_decay=0.05, betas=(0.8, 0.95), momentum=0.7,
                     lr=1e-3 if optimizer == "adam" else 0.05)
    jobs = [Job(scheme, 0, s) for scheme in ("rule", "kaiming_normal")]
    for b, q in zip(engines.train(jobs, tiny, CPU, "batched"), engines.train(jobs, tiny, CPU, "sequential")):
        torch.testing.assert_close(b.losses, q.losses, rtol=1e-4, atol=0)
    plain = engines.train([Job("rule", 0, s.replace(weight_decay=0.0))], tiny, CPU, "batched")[0]
    assert not torch.equal(plain.losses, engines.train(jobs[:1], tiny, CPU, "batched")[0].losses)
