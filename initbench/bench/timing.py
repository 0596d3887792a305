"""``initbench bench``: how fast the engines train, against the lesson's pipeline and
against the matrix products alone.

Everything is measured in one process on one machine, each measurement repeated
and interleaved with the others, and reported as the median; the ratios are
what the targets are stated in. This machine's timings are noisy (shared
cores), so a ratio from one run is better evidence than any absolute second.
"""

from __future__ import annotations

import dataclasses
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import pairwise
from pathlib import Path
from typing import Any

import torch

from initbench import data
from initbench.bench import lesson, peers
from initbench.errors import InitbenchError
from initbench.jobs import Job, batches_per_epoch
from initbench.models.dropout import EVAL_CHUNK
from initbench.settings import LESSON_SCHEMES, TrainSettings, default_data_dir
from initbench.training import engines
from initbench.training.engines.batched import timed
from initbench.views.progress import Activity


@dataclass(frozen=True)
class BenchConfig:
    schemes: tuple[str, ...] = LESSON_SCHEMES
    seeds: int = 3  # batched engine: schemes x seeds models
    repeats: int = 3
    whole_process: bool = True
    device: torch.device = torch.device("cpu")
    data_dir: Path = field(default_factory=default_data_dir)
    train_samples: int | None = None  # a seeded subset of the training split, for a quick bench; None: all of it


def gemm_floor(s: TrainSettings, n_train: int, n_val: int, n_test: int, device: torch.device,
               training: bool = True, evaluation: bool = True) -> Callable[[], None]:
    """One model-epoch of the matrix products the engines must do, and nothing else: per
    batch the forward product of every layer, the weight gradient of every layer and the
    input gradient of every layer but the first (``training``); then the forward products
    of evaluating the validation set (and the test set, once per run: here its share of
    one epoch when ``s.epochs`` is 1) (``evaluation``)."""
    sizes = (data.get(s.data.dataset).input_size, *s.network.hidden, len(data.class_numbers(s.data)))
    b = s.optim.batch_size

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, device=device)

    layers = [(rand(b, i), rand(i, o), rand(b, o), rand(b, i), rand(i, o)) for i, o in pairwise(sizes)]
    chunk = EVAL_CHUNK
    eval_layers = [(rand(chunk, i), rand(i, o), rand(chunk, o)) for i, o in pairwise(sizes)]
    n_batches = batches_per_epoch(n_train, b) if training else 0
    eval_chunks = -(-(n_val + n_test // s.optim.epochs) // chunk) if evaluation else 0

    def run() -> None:
        for _ in range(n_batches):
            for k, (x, w, y, dx, dw) in enumerate(layers):
                torch.mm(x, w, out=y)  # forward
                torch.mm(x.t(), y, out=dw)  # weight gradient
                if k:
                    torch.mm(y, w.t(), out=dx)  # input gradient
        for _ in range(eval_chunks):
            for x, w, y in eval_layers:
                torch.mm(x, w, out=y)

    return run


def spread(samples: dict[str, list[float]]) -> dict[str, tuple[float, float]]:
    """(min, max) over the repeats of each measurement: how far to trust its median."""
    return {name: (min(v), max(v)) for name, v in samples.items()}


def run(config: BenchConfig, activity: Activity) -> dict[str, Any]:
    """Measure, and return the numbers the bench command prints and writes."""
    settings = TrainSettings.of(epochs=1, train_samples=config.train_samples)
    activity.stage(f"Loading {data.get(settings.data.dataset).title}")
    splits = data.load(config.data_dir, settings.data, activity.stage).to(config.device)
    population = [Job(s, seed, settings) for seed in range(config.seeds) for s in config.schemes]
    # The same models with their hidden layers frozen (transfer's set-up): no gradient or
    # update for them, and no gradient back through the first layer's input.
    frozen = [dataclasses.replace(job, settings=settings.replace(freeze=len(settings.network.hidden)))
              for job in population]
    reference = [Job(s, 0, settings) for s in config.schemes[:2]]
    lesson_loaders = lesson.loaders(config.data_dir, train_samples=config.train_samples)
    cases: dict[str, tuple[int, Callable[[], Any]]] = {  # name: (model-epochs, work)
        "floor": (1, gemm_floor(settings, len(splits.y_train), len(splits.y_val), len(splits.y_test), config.device)),
        "batched": (len(population), lambda: engines.train(population, splits, config.device, "batched")),
        "batched_frozen": (len(frozen), lambda: engines.train(frozen, splits, config.device, "batched")),
        "sequential": (len(reference), lambda: engines.train(reference, splits, config.device, "sequential")),
        # What users would otherwise write (initbench.bench.peers): the same models, each epoch timed.
        "vmap": (len(population), peers.vmap_ensemble(population, splits, config.device)),
        "module_loop": (len(population), peers.module_loop(population, splits, config.device)),
        "lesson": (1, lambda: lesson.train_model(lesson.lesson_model("rule"), *lesson_loaders, epochs=1)),
    }
    if config.device.type != "cpu":
        del cases["lesson"]  # the lesson's pipeline runs on the CPU only
    activity.stage("Benchmark", total=len(cases) * (1 + config.repeats) + 2 * config.repeats * config.whole_process)
    samples = interleaved(cases, config.repeats, config.device, activity)
    per_model_epoch = {name: statistics.median(v) for name, v in samples.items()}
    report: dict[str, Any] = {
        "seconds_per_model_epoch": per_model_epoch,
        "spread": spread(samples),
        "samples": samples,
        "models_in_batched_step": len(population),
        "train_images": len(splits.y_train),  # per model-epoch: one pass over these
        "ratios": {
            "batched_over_floor": per_model_epoch["batched"] / per_model_epoch["floor"],
            "sequential_over_batched": per_model_epoch["sequential"] / per_model_epoch["batched"],
            "batched_over_frozen": per_model_epoch["batched"] / per_model_epoch["batched_frozen"],
            "vmap_over_batched": per_model_epoch["vmap"] / per_model_epoch["batched"],
            "module_loop_over_batched": per_model_epoch["module_loop"] / per_model_epoch["batched"],
        },
    }
    if "lesson" in per_model_epoch:
        report["ratios"]["lesson_over_batched"] = per_model_epoch["lesson"] / per_model_epoch["batched"]
    if config.whole_process:
        report["whole_process"] = whole_process(config, activity)
    return report


def interleaved(cases: Mapping[str, tuple[float, Callable[[], object]]], repeats: int, device: torch.device,
                activity: Activity) -> dict[str, list[float]]:
    """Seconds per model-epoch of each case (name: (model-epochs per call, work)): every
    case once untimed (first-call costs: MKL's start-up, allocations), then ``repeats``
    rounds timing each case in turn, so that a slow moment of the machine is shared.
    Advances ``activity``'s counted stage by one per call."""
    for name, (_, work) in cases.items():
        activity.advance(0, f"Warming up: {name}")
        work()
        activity.advance(1)
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for r in range(repeats):
        for name, (model_epochs, work) in cases.items():
            activity.advance(0, f"Timing {name}, repeat {r + 1} of {repeats}")
            samples[name].append(timed(work, device) / model_epochs)
            activity.advance(1)
    return samples


def scaling(counts: Sequence[int], repeats: int, device: torch.device, activity: Activity) -> dict[str, Any]:
    """How the batched engine's training step scales with the models in it: for each count
    of the lesson's network, seconds per step (the median of ``repeats`` measurements,
    interleaved over the counts), model-epochs per second of training on the whole
    training split, and the memory of the models and their step."""
    settings = TrainSettings()
    n_batches = batches_per_epoch(data.get(settings.data.dataset).train_split, settings.optim.batch_size)
    fits = engines.models_that_fit(settings, device)
    if max(counts) > fits:
        raise InitbenchError(f"--scaling {max(counts):,} models: about {fits:,} fit in half the free memory on "
                             f"{device}. Give counts of at most {fits:,}.")
    samples: dict[int, list[float]] = {m: [] for m in counts}
    memory: dict[int, int] = {}
    activity.stage("Scaling", total=repeats * len(counts))
    for r in range(repeats):
        for m in counts:
            activity.advance(0, f"Timing a step of {m:,} models, repeat {r + 1} of {repeats}")
            seconds, used = engines.step_cost(settings, device, m)
            samples[m].append(seconds)
            memory[m] = max(memory.get(m, 0), used)
            activity.advance(1)
    rows = []
    for m in counts:
        step = statistics.median(samples[m])
        rows.append({"models": m, "seconds_per_step": step, "spread": (min(samples[m]), max(samples[m])),
                     "model_epochs_per_second": m / (step * n_batches), "memory_bytes": memory[m],
                     "bytes_per_model": memory[m] / m})
    return {"scaling": rows, "repeats": repeats, "batches_per_epoch": n_batches}


def whole_process(config: BenchConfig, activity: Activity) -> dict[str, float]:
    """Seconds for two whole processes doing the same model-epochs (the schemes, the lesson's
    epochs, one seed: each command's default), start-up and data loading included: ``initbench compare`` and the
    lesson-style pipeline, each the median of ``repeats`` runs, interleaved."""
    subset = [] if config.train_samples is None else ["--train-samples", str(config.train_samples)]
    with tempfile.TemporaryDirectory() as tmp:
        commands = {
            "compare": [sys.executable, "-m", "initbench", "compare", *config.schemes, "--quiet",
                        "--device", str(config.device), "--data-dir", str(config.data_dir), "--out", tmp + "/out",
                        "--overwrite", *subset],
            "lesson": [sys.executable, "-m", "initbench.bench.lesson", *config.schemes,
                       "--data-dir", str(config.data_dir), *subset],
        }
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for r in range(config.repeats):
            for name, command in commands.items():
                activity.advance(0, f"Timing the whole process of {name}, repeat {r + 1} of {config.repeats}")
                samples[name].append(timed(partial(subprocess.run, command, check=True, capture_output=True),
                                           config.device))
                activity.advance(1)
    seconds = {name: statistics.median(v) for name, v in samples.items()}
    return {"compare_seconds": seconds["compare"], "lesson_seconds": seconds["lesson"], "samples": samples,
            "spread": spread(samples),
            "model_epochs": 2 * len(config.schemes), "speedup": seconds["lesson"] / seconds["compare"]}
