"""From job results to tables: the frames a run's CSVs hold, and the machine it ran on."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import platform
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

import initbench
from initbench import checkpoint, schemes
from initbench.data import CLASS_NAMES
from initbench.jobs import Job, JobResult
from initbench.model import N_INPUTS


def runs_frame(results: Sequence[JobResult]) -> pd.DataFrame:
    """One row per (scheme, seed): accuracy after the last epoch, the training loss of the
    last batch and its mean over the last epoch (NaN/inf for a run that diverged: its loss
    is undefined), whether it diverged and at which batch."""
    rows = []
    for r in results:
        last_epoch = r.losses[-1]
        rows.append({
            "scheme": r.job.scheme,
            "seed": r.job.seed,
            "val_acc": r.val_acc[-1],
            "test_acc": r.test_acc,
            "last_batch_loss": float(last_epoch[-1]),
            "last_epoch_loss": float(last_epoch.mean()),
            "diverged": r.diverged_at is not None,
            "diverged_at_batch": r.diverged_at,
        })
    runs = pd.DataFrame(rows)
    runs["diverged_at_batch"] = runs["diverged_at_batch"].astype("Int64")
    return runs


def summary_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per scheme, best validation accuracy first: means and sample stds over seeds
    (std empty with one seed), and how many seeds diverged; a loss mean is NaN when any of
    its runs diverged."""
    def mean(s: pd.Series) -> float:
        return s.mean(skipna=False)

    summary = runs.groupby("scheme", sort=False).agg(
        seeds=("seed", "size"),
        val_acc_mean=("val_acc", "mean"),
        val_acc_std=("val_acc", "std"),
        test_acc_mean=("test_acc", "mean"),
        test_acc_std=("test_acc", "std"),
        last_batch_loss_mean=("last_batch_loss", mean),
        last_epoch_loss_mean=("last_epoch_loss", mean),
        diverged_seeds=("diverged", "sum"),
    )
    return summary.sort_values("val_acc_mean", ascending=False, kind="stable").reset_index()


def losses_frame(results: Sequence[JobResult]) -> pd.DataFrame:
    """Long format: one row per trained batch (epoch and batch numbered from 1)."""
    frames = []
    for r in results:
        n_batches = r.losses.shape[1]
        flat = r.losses.flatten().numpy()
        step = np.arange(r.diverged_at or len(flat))
        frames.append(pd.DataFrame({
            "scheme": r.job.scheme,
            "seed": r.job.seed,
            "epoch": step // n_batches + 1,
            "batch": step % n_batches + 1,
            "loss": flat[step],
        }))
    return pd.concat(frames, ignore_index=True)


def environment(device: torch.device) -> dict[str, Any]:
    """The versions and hardware a run ran with."""
    if device.type == "cuda":
        device_name = torch.cuda.get_device_name(device)
    elif device.type == "mps":
        device_name = "Apple MPS"
    else:
        # The kernel path (AVX512, AVX2...) decides the speed and how products round.
        device_name = (f"{_cpu_model()}, {torch.backends.cpu.get_cpu_capability()} "
                       f"({torch.get_num_threads()} threads)")
    return {
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torchvision": importlib.metadata.version("torchvision"),
            "initbench": initbench.__version__,
            "numpy": np.__version__,
            "pandas": pd.__version__,
        },
        "platform": platform.platform(),
        "device": str(device),
        "device_name": device_name,
        "command": sys.argv,
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def weights_names(jobs: Sequence[Job]) -> dict[Job, str]:
    """Each job's weights file name, ``<scheme>-seed<N>.safetensors``, safe on any file
    system: parameters' ``:`` and ``,`` become ``_`` (``uniform_-0.1_0.1``), a file scheme
    is named by its file's SHA-256 (``pretrained-1a2b3c4d5e6f``); distinct names stay distinct."""
    names: dict[Job, str] = {}
    for job in jobs:
        scheme = schemes.get(job.scheme)
        if scheme.params == (schemes.registry.TEXT_PARAM,):
            stem = scheme.name.replace(":", "-")[:len("pretrained-") + 12]
        else:
            stem = re.sub(r"[^A-Za-z0-9._+-]", "_", job.scheme)
        name, n = f"{stem}-seed{job.seed}", 1
        while f"{name}.safetensors" in names.values():
            n += 1
            name = f"{stem}-{n}-seed{job.seed}"
        names[job] = f"{name}.safetensors"
    return names


def architecture(job: Job) -> dict[str, Any]:
    s = job.settings
    return {"inputs": N_INPUTS, "hidden": list(s.hidden), "outputs": len(s.classes), "activation": s.activation,
            "classes": list(s.classes), "class_names": [CLASS_NAMES[c] for c in s.classes]}


def weights_writers(trained: Sequence[JobResult], about_run: dict[str, Any]) -> dict[str, Callable[[Path], None]]:
    """``weights/<name>`` (final) and, where kept, ``weights/init/<name>`` (initial) for every
    result, each with its metadata: the architecture, the job, ``about_run`` (data identity,
    engine, device) and, for final weights, the accuracy recorded now."""
    files: dict[str, Callable[[Path], None]] = {}
    for result, name in zip(trained, weights_names([r.job for r in trained]).values()):
        job = result.job
        meta = {
            "initbench": initbench.__version__,
            "architecture": architecture(job),
            "job": {"scheme": job.scheme, "scheme_key": schemes.get(job.scheme).name, "seed": job.seed,
                    "settings": _jsonable(dataclasses.asdict(job.settings))},
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
    return lambda path: checkpoint.save(path, state, meta)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return list(value) if isinstance(value, tuple) else value
