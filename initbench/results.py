"""From job results to tables: the frames a run's CSVs hold, and the machine it ran on."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

import initbench
from initbench import checkpoint, data, schemes, stats, store
from initbench.jobs import Job, JobResult

if TYPE_CHECKING:
    import torch


def runs_frame(results: Sequence[JobResult], names: Mapping[Job, str] | None = None) -> pd.DataFrame:
    """One row per (scheme, seed): accuracy after the last epoch, the training loss of the
    last batch and its mean over the last epoch (NaN/inf for a run that diverged: its loss
    is undefined), whether it diverged and at which batch. ``names``: what the scheme
    column calls each job (a transfer strategy), when not its scheme."""
    rows = []
    for r in results:
        last_epoch = r.losses[-1]
        rows.append({
            "scheme": _named(r.job, names),
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


def paired_frame(runs: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Per scheme (or strategy): validation accuracy over seeds, and its paired difference to
    ``baseline`` on the same seeds (mean, 95% t-interval, verdict), best first."""
    val = runs.pivot(index="seed", columns="scheme", values="val_acc")
    rows = []
    for name in val.columns:
        diff = stats.paired((val[name] - val[baseline]).dropna().tolist())
        rows.append({"scheme": name, "seeds": int(val[name].notna().sum()), "val_acc_mean": val[name].mean(),
                     "val_acc_std": val[name].std(), "baseline": baseline, "diff_mean": diff.mean,
                     "diff_low": diff.low, "diff_high": diff.high,
                     "verdict": "the baseline" if name == baseline else diff.verdict})
    return pd.DataFrame(rows).sort_values("val_acc_mean", ascending=False, kind="stable").reset_index(drop=True)


def _named(job: Job, names: Mapping[Job, str] | None) -> str:
    return names[job] if names else job.scheme


def losses_frame(results: Sequence[JobResult], names: Mapping[Job, str] | None = None) -> pd.DataFrame:
    """Long format: one row per trained batch (epoch and batch numbered from 1)."""
    frames = []
    for r in results:
        n_batches = r.losses.shape[1]
        flat = r.losses.flatten().numpy()
        step = np.arange(r.diverged_at or len(flat))
        frames.append(pd.DataFrame({
            "scheme": _named(r.job, names),
            "seed": r.job.seed,
            "epoch": step // n_batches + 1,
            "batch": step % n_batches + 1,
            "loss": flat[step],
        }))
    return pd.concat(frames, ignore_index=True)


def environment(device: torch.device) -> dict[str, Any]:
    """The versions and hardware a run ran with."""
    import torch  # here alone: the frames are made, and report reads a run's, without torch

    if device.type == "cuda":
        device_name = torch.cuda.get_device_name(device)
    elif device.type == "mps":
        device_name = "Apple MPS"
    else:
        # The kernel path (AVX512, AVX2...) decides the speed and how products round.
        device_name = (f"{cpu_model()}, {torch.backends.cpu.get_cpu_capability()} "
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


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def weights_names(jobs: Mapping[Job, str]) -> dict[Job, str]:
    """Each job's weights file name, ``<name>-seed<N>.safetensors`` (``jobs`` maps each job to
    its name: its scheme, or a transfer strategy), safe on any file system: characters
    other than letters, digits and ``._+-`` become ``_`` (``uniform_-0.1_0.1``,
    ``pretrained_frozen``), a file scheme is named by its file's SHA-256
    (``pretrained-1a2b3c4d5e6f``), a user's file or module scheme by its file's or module's
    name and its function (``my_inits.scaled_normal_``); distinct names stay distinct."""
    names: dict[Job, str] = {}
    for job, label in jobs.items():
        scheme = schemes.get(job.scheme)
        if label == job.scheme and scheme.takes_file:
            stem = scheme.name.replace(":", "-")[:len("pretrained-") + 12]
        else:
            stem = re.sub(r"[^A-Za-z0-9._+-]+", "_", schemes.stem(label))
        name, n = f"{stem}-seed{job.seed}", 1
        while f"{name}.safetensors" in names.values():
            n += 1
            name = f"{stem}-{n}-seed{job.seed}"
        names[job] = f"{name}.safetensors"
    return names


def architecture(job: Job) -> dict[str, Any]:
    dataset, classes, net = data.get(job.settings.data.dataset), job.settings.data.class_numbers, job.settings.network
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
            "initbench": initbench.__version__,
            "architecture": architecture(job),
            "job": {"scheme": job.scheme, "name": jobs[job], "scheme_key": schemes.get(job.scheme).name,
                    "key": store.key(job), "seed": job.seed,
                    "settings": job.settings.plain()},
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

