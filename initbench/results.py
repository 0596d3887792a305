"""From job results to tables: the frames a run's CSVs hold, and the machine it ran on."""

from __future__ import annotations

import importlib.metadata
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

import initbench
from initbench.jobs import JobResult


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
