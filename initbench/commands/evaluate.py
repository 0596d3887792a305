"""``initbench evaluate``: trained weights scored again, and checked against their record."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from initbench import data, models
from initbench.config import RunConfig
from initbench.errors import InitbenchError
from initbench.jobs import Job
from initbench.models import checkpoint
from initbench.settings import TrainSettings
from initbench.storage import store
from initbench.training import engines
from initbench.views import finished, progress


def evaluate(files: list[tuple[Path, bool]], config: RunConfig, activity: progress.Activity) -> finished.Evaluation:
    """Score every weights file named (``runfolder.weights_files``: each with whether it is in
    a run folder's weights/) on the split it was trained on, against the scores recorded
    when it was trained. ``config`` describes plain state dicts (hidden, activation, classes,
    split seed), and gives the device and data folder."""
    device = engines.resolve_device(config.device)
    rows, wrong, loaded_splits = [], [], {}
    with activity.running():
        activity.stage("Scoring", total=len(files))
        for i, (path, in_run) in enumerate(files):
            activity.advance(0, f"Scoring {path.name} ({i + 1} of {len(files)})")
            weights = checkpoint.load(path)
            origin = store.check_weights_file(path, weights.sha256)  # before scoring: an edit may score the same
            if origin.problem:
                wrong.append(f"{path}: {origin.problem}")
            job, engine, recorded, why_not = _evaluated_job(weights, config, in_run, device)
            model = models.build(job.settings)
            checkpoint.check_shapes(weights, checkpoint.shapes(model), from_record=weights.meta is not None)
            model.load_layers_(weights.layers)
            # A plain state dict is scored on the whole split config describes.
            key = job.settings.data if weights.meta else dataclasses.replace(job.settings.data, train_samples=None)
            dataset = data.get(key.dataset)
            if key not in loaded_splits:
                activity.stage(f"Loading {dataset.title}")
                loaded_splits[key] = data.load(config.data_dir, key, activity.stage).to(device)
                activity.stage("Scoring", total=len(files))
                activity.advance(i)
            val, test = engines.score(job, model, loaded_splits[key], device, engine)
            if recorded is None:
                check = why_not
            elif (val, test) == recorded:
                check = "reproduced"
            else:
                check = "DIFFERENT"
                wrong.append(f"{path}: recorded val {recorded[0]:.4%} and test {recorded[1]:.4%} in training, "
                             f"scored {val:.4%} and {test:.4%} now" + (f" ({why_not})" if why_not else ""))
            rows.append({"file": str(path), "scheme": job.scheme, "seed": job.seed if weights.meta else None,
                         "classes": dataset.describe(data.class_numbers(key)), "val_acc": val, "test_acc": test,
                         "recorded_val_acc": recorded[0] if recorded else None,
                         "recorded_test_acc": recorded[1] if recorded else None, "check": check,
                         "integrity": origin.checked})
            activity.advance(1)
    return finished.Evaluation(rows, wrong)


def _evaluated_job(weights: checkpoint.Weights, config: RunConfig, in_run: bool,
                   device: torch.device) -> tuple[Job, str, tuple[float, float] | None, str]:
    """The job the weights came from (rebuilt from their record, or described by ``config``
    for a plain state dict), the engine that trained them, the accuracies recorded in
    training (None when there is nothing to compare), and why not or what to know."""
    meta = weights.meta
    if meta is None:
        engine = engines.choose(config.engine, [config.train.network.network])
        return Job(weights.path.name, 0, config.train), engine, None, "no record (a plain state dict)"
    job = Job(meta["job"]["scheme"], meta["job"]["seed"], TrainSettings.from_plain(meta["job"]["settings"]))
    dataset = data.get(job.settings.data.dataset)
    if meta["data"]["files_sha256"] != dataset.files_sha256:
        raise InitbenchError(
            f"{weights.path} was trained on other data than this initbench verifies as {dataset.title} (the SHA-256 "
            "of the data files in its record differ), so the split it was trained on cannot be rebuilt and its "
            "accuracy cannot be checked. Evaluate it with the initbench version and data that trained it.")
    if in_run and meta.get("file") != weights.path.name:
        raise InitbenchError(f"These are not the weights that were trained: {weights.path} holds the weights of "
                             f"{meta['job']['scheme']}, seed {meta['job']['seed']} (written as {meta.get('file')}). "
                             "Files in this run folder were swapped or renamed: take them from the run that wrote "
                             "them.")
    trained = meta["trained_with"]
    if meta["weights"] != "final":
        return job, trained["engine"], None, "initial weights: no accuracy recorded"
    if job.settings.network.eval_dropout:
        return job, trained["engine"], None, "trained with --lesson-eval: recorded with random dropout masks"
    note = "" if torch.device(trained["device"]).type == device.type else (
        f"trained on {trained['device']}, scored on {device}: rounding differs between devices")
    return job, trained["engine"], (meta["accuracy"]["val"], meta["accuracy"]["test"]), note
