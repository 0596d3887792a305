"""Next-token prediction on the sequential engine (initbench.training.lm): a gpt learns a
text from about ln V, every scheme of a seed reads the same windows, a blow-up is
divergence, and the same job trains to the same numbers."""

import math

from pathlib import Path

import torch

from initbench import data
from initbench.analysis import frames
from initbench.jobs import Job
from initbench.settings import TrainSettings
from initbench.training import engines, lm


def corpus_settings(tmp_path, **changes) -> TrainSettings:
    path = tmp_path / "rhyme.txt"
    path.write_text("".join(f"the cat sat on the mat {i % 7}\n" for i in range(400)))
    return TrainSettings.of(**{"dataset": f"text:{path}", "network": "gpt", "hidden": (32, 32), "heads": 2,
                               "context": 16, "batch_size": 16, "dropout": 0.0, "epochs": 2, "steps": 40,
                               "lr": 3e-3, **changes})


tmp_path_unused = Path("/nonexistent")


def trained(settings: TrainSettings, schemes=("gpt2",), seed: int = 0):
    splits = data.load(tmp_path_unused, settings.data)  # a text:FILE reads no data folder
    jobs = [Job(scheme, seed, settings) for scheme in schemes]
    return engines.train(jobs, splits, torch.device("cpu"), "sequential"), splits


def test_a_gpt_learns_a_text_from_ln_v(tmp_path) -> None:
    settings = corpus_settings(tmp_path)
    [run], _ = trained(settings)
    vocab = data.get(settings.data.dataset).input_size
    first = float(run.losses[0, 0])
    assert abs(first - math.log(vocab)) < 0.15  # gpt2's start knows nothing: about ln V
    assert run.diverged_at is None and len(run.val_acc) == 2 and run.val_acc[-1] < 0.6 * math.log(vocab)
    assert math.isfinite(run.test_acc) and run.losses.shape == (2, 40)
    assert float(run.losses.flatten()[-1]) < 1.5
    assert len(run.sample) == lm.SAMPLE_CHARS and set(run.sample) <= set(data.get(settings.data.dataset).class_names)


def test_every_scheme_of_a_seed_sees_the_same_windows(tmp_path) -> None:
    tokens = torch.arange(500)
    a = lm.windows(tokens, 16, 8, torch.Generator().manual_seed(5))
    b = lm.windows(tokens, 16, 8, torch.Generator().manual_seed(5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[0][:, 1:], a[1][:, :-1])


def test_the_same_job_trains_to_the_same_numbers(tmp_path) -> None:
    settings = corpus_settings(tmp_path, epochs=1, steps=10)
    (first, other), _ = trained(settings, ("gpt2", "small_init"))
    [again], _ = trained(settings)
    assert torch.equal(first.losses, again.losses) and first.val_acc == again.val_acc and first.sample == again.sample
    assert not torch.equal(first.losses, other.losses)  # the start alone differs, and it shows


def test_a_blow_up_is_divergence_and_the_model_is_kept(tmp_path) -> None:
    settings = corpus_settings(tmp_path, epochs=1, steps=30, lr=1e4)
    [run], _ = trained(settings, ("default",))
    assert run.diverged_at is not None and run.val_acc[-1] == run.test_acc == lm.DIVERGED and run.sample is None
    assert math.isnan(float(run.losses.flatten()[run.diverged_at]))  # nothing recorded after it


def test_spikes_are_steps_far_above_the_running_median() -> None:
    assert frames.spikes([3.0, 2.9, 2.8, 6.0, 2.7, 2.6]) == [3]
    assert frames.spikes([3.0, 2.0, 1.0, math.nan]) == []
