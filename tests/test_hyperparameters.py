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


# --- compare --lr: a grid of learning rates, each scheme and seed at each, in one population


def test_compare_trains_an_lr_grid_in_one_population_and_tables_the_best_rate(data_dir, tmp_path) -> None:
    """Two schemes x three rates x three seeds: one chunk of 18 models; each row of the
    table is a scheme at a rate, paired by seed; best_lr.csv holds each scheme's best rate,
    the one its table row is best at, with an interval of the grid's rates."""
    import pandas as pd

    import initbench as ib
    from initbench.config import resolve

    config = resolve(None, {"schemes": ["rule", "default"], "lr": "1e-3,4e-3,2e-2", "seeds": 3, "epochs": 1,
                            "train_samples": 1200, "hidden": [64, 32], "data_dir": data_dir})
    assert config.lrs == (1e-3, 4e-3, 2e-2) and len(config.jobs()) == 18
    assert len(engines.plan(config.jobs(), "batched", lambda s: 1_000)) == 1
    run = ib.compare(["rule", "default"], lr=[1e-3, 4e-3, 2e-2], seeds=3, epochs=1, train_samples=1200,
                     hidden=[64, 32], data_dir=data_dir, out=tmp_path / "run", progress=False)
    assert sorted(run.summary["scheme"]) == sorted(f"{s} lr={lr:g}" for s in ("rule", "default")
                                                   for lr in (1e-3, 4e-3, 2e-2))
    assert "diff_mean" in run.summary  # paired by seed across schemes and rates
    best = pd.read_csv(tmp_path / "run" / "best_lr.csv").set_index("scheme")
    for scheme in ("rule", "default"):
        rows = run.summary[run.summary["scheme"].str.startswith(scheme + " ")]
        top = rows.loc[rows["val_acc_mean"].idxmax(), "scheme"]
        assert top == f"{scheme} lr={best.loc[scheme, 'best_lr']:g}"
        assert best.loc[scheme, "low"] <= best.loc[scheme, "best_lr"] <= best.loc[scheme, "high"]
        assert 0 < best.loc[scheme, "picked"] <= 1 and best.loc[scheme, "seeds"] == 3
    assert [listing.title for listing in run.listings()][1] == "Best learning rate by scheme"
    again = resolve(tmp_path / "run" / "config.toml")
    assert again.lrs == config.lrs and [j.settings.optim.lr for j in again.jobs()[:3]] == list(config.lrs)


def test_a_sweeps_top_level_rates_are_its_grid(tmp_path) -> None:
    from initbench.config import resolve_sweep

    sweep = resolve_sweep({"schemes": ["rule"], "lr": [1e-3, 2e-3], "grid": {"hidden": ["64", "128"]}})
    assert dict(sweep.grid)["lr"] == (1e-3, 2e-3) and sweep.size() == 4 and not sweep.run.lrs
    assert len(engines.plan(sweep.jobs(), "batched", lambda s: 1_000)) == 2  # a population per width


@pytest.mark.parametrize(("args", "said"), [
    (["--lr", "0,1e-3"], "Invalid --lr: must be a number greater than 0"),
    (["--lr", "1e-3,1e-3"], "several different ones"),
    (["--lr", "1e-3,x"], "Invalid --lr"),
    (["--lr", "1e-3,2e-3", "--expect", "rule > default"], "trains rule lr=0.001, rule lr=0.002"),
    (["--betas", "0.9"], "Invalid --betas: must be two numbers"),
    (["--betas", "0.9,1.0"], "Invalid --betas"),
    (["--weight-decay", "-1"], "Invalid --weight-decay"),
])
def test_bad_rates_and_optimizer_numbers_get_one_paragraph(tmp_path, args: list[str], said: str) -> None:
    from .test_faults_cli import initbench, one_paragraph

    one_paragraph(initbench("compare", "rule", *args, "--out", str(tmp_path / "r")), 2, said)
    assert not (tmp_path / "r").exists()


def test_commands_that_train_at_one_rate_refuse_several(tmp_path) -> None:
    from .test_faults_cli import initbench, one_paragraph

    config = tmp_path / "t.toml"
    config.write_text("lr = [0.001, 0.002]\n")
    one_paragraph(initbench("transfer", "--config", str(config), "--out", str(tmp_path / "t")), 2,
                  "transfer trains at one learning rate")
    one_paragraph(initbench("coordcheck", "--lr", "1e-3,2e-3", "--out", str(tmp_path / "c")), 2,
                  "coordcheck trains at one learning rate")
    assert not (tmp_path / "t").exists() and not (tmp_path / "c").exists()
