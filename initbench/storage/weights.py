"""A run's weights as files: their names (safe on any file system), the architecture
and job each records, and their writers (``checkpoint.save``, with the accuracy recorded
when trained)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from initbench import data, initializers
from initbench.jobs import Job, JobResult
from initbench.models import checkpoint
from initbench.storage import store
from initbench.version import VERSION

if TYPE_CHECKING:
    import torch



def weights_names(jobs: Mapping[Job, str]) -> dict[Job, str]:
    """Each job's weights file name, ``<name>-seed<N>.safetensors`` (``jobs`` maps each job to
    its name: its scheme, or a transfer strategy), safe on any file system: characters
    other than letters, digits and ``._+-`` become ``_`` (``uniform_-0.1_0.1``,
    ``pretrained_frozen``), a file scheme is named by its file's SHA-256
    (``pretrained-1a2b3c4d5e6f``), a user's file or module scheme by its file's or module's
    name and its function (``my_inits.scaled_normal_``); distinct names stay distinct."""
    names: dict[Job, str] = {}
    for job, label in jobs.items():
        scheme = initializers.get(job.scheme)
        if label == job.scheme and scheme.takes_file:
            stem = scheme.name.replace(":", "-")[:len("pretrained-") + 12]
        else:
            stem = re.sub(r"[^A-Za-z0-9._+-]+", "_", initializers.stem(label))
        name, n = f"{stem}-seed{job.seed}", 1
        while f"{name}.safetensors" in names.values():
            n += 1
            name = f"{stem}-{n}-seed{job.seed}"
        names[job] = f"{name}.safetensors"
    return names


def architecture(job: Job) -> dict[str, Any]:
    dataset, net = data.get(job.settings.data.dataset), job.settings.network
    classes = data.class_numbers(job.settings.data)
    return {"inputs": dataset.input_size, "hidden": list(net.hidden), "outputs": len(classes),
            "activation": net.activation, "classes": list(classes),
            "class_names": [dataset.class_names[c] for c in classes]}


def weights_writers(trained: Sequence[JobResult], jobs: Mapping[Job, str], about_run: dict[str, Any],
                    names: Mapping[Job, str] | None = None) -> dict[str, Callable[[Path], None]]:
    """``weights/<name>`` (final) and, where kept, ``weights/init/<name>`` (initial) for every
    result, each with its metadata: the architecture, the job and its store key, ``about_run``
    (data identity, engine, device) and, for final weights, the accuracy recorded now.
    ``names``: each job's file name (by default ``weights_names(jobs)``)."""
    files: dict[str, Callable[[Path], None]] = {}
    names = weights_names(jobs) if names is None else names
    for result in trained:
        job, name = result.job, names[result.job]
        meta = {
            "initbench": VERSION,
            "architecture": architecture(job),
            "job": {"scheme": job.scheme, "name": jobs[job], "scheme_key": initializers.get(job.scheme).name,
                    "key": store.key(job), "seed": job.seed,
                    "settings": data.stored(job.settings)},
            **about_run,
        }
        if result.weights is not None:
            files[f"weights/{name}"] = _weights_writer(result.weights, meta | {
                "weights": "final", "file": name,
                "accuracy": {"val": result.val_acc[-1], "test": result.test_acc, "val_per_epoch": result.val_acc},
                "diverged_at_batch": result.diverged_at})
        if result.initial is not None:
            files[f"weights/init/{name}"] = _weights_writer(result.initial, meta | {"weights": "initial", "file": name})
    return files


def _weights_writer(state: dict[str, torch.Tensor], meta: dict[str, Any]) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        from safetensors import SafetensorError

        try:
            checkpoint.save(path, state, meta)
        except SafetensorError as e:  # its own error for what the OS refused: made the OSError it is
            found = re.search(r"os error (\d+)", str(e))
            if found is None:
                raise
            number = int(found[1])
            raise OSError(number, os.strerror(number), str(path)) from None

    return write
