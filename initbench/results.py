"""From job results to tables and files.

A run's files are all written under temporary names first and renamed into
place only once every one of them is complete, so an interrupted or failed run
never leaves a half-written result behind.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

import initbench
from initbench.jobs import JobResult
from initbench.errors import InitbenchError


def runs_frame(results: Sequence[JobResult]) -> pd.DataFrame:
    """One row per (scheme, seed). Losses of a diverged run are NaN/inf: its loss is undefined."""
    rows = []
    for r in results:
        last_epoch = r.losses[-1]
        rows.append({
            "scheme": r.job.scheme,
            "seed": r.job.seed,
            "val_acc": r.val_acc[-1],
            "test_acc": r.test_acc,
            "train_loss": float(last_epoch.mean()),
            "final_batch_loss": float(last_epoch[-1]),
            "diverged": r.diverged_at is not None,
            "diverged_at_batch": r.diverged_at,
        })
    runs = pd.DataFrame(rows)
    runs["diverged_at_batch"] = runs["diverged_at_batch"].astype("Int64")
    return runs


def summary_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per scheme, best validation accuracy first. Std is the sample std over seeds
    (empty with one seed); a loss mean is NaN when any of its runs diverged."""
    def mean(s: pd.Series) -> float:
        return s.mean(skipna=False)

    summary = runs.groupby("scheme", sort=False).agg(
        seeds=("seed", "size"),
        val_acc_mean=("val_acc", "mean"),
        val_acc_std=("val_acc", "std"),
        test_acc_mean=("test_acc", "mean"),
        train_loss_mean=("train_loss", mean),
        final_batch_loss_mean=("final_batch_loss", mean),
        diverged=("diverged", "sum"),
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


@contextmanager
def output_dir(path: Path) -> Iterator[Path]:
    """Create ``path`` and check it is writable before any work starts; if the run then
    fails, remove the folder again when this call created it and it is still empty."""
    existed = path.is_dir()
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".initbench-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise InitbenchError(
            f"Cannot write to the output folder {path}: {e.strerror or e}. Choose another with --out."
        ) from None
    try:
        yield path
    except BaseException:
        if not existed and not any(path.iterdir()):
            path.rmdir()
        raise


def write_files(out: Path, writers: Mapping[str, Callable[[Path], None]]) -> None:
    """Call each writer on a temporary path in ``out``, then rename all into place."""
    staged: list[tuple[Path, Path]] = []
    try:
        for name, write in writers.items():
            staged.append((out / f".{name}.tmp", out / name))
            write(staged[-1][0])
        for tmp, final in staged:
            tmp.replace(final)
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)


def csv_writer(frame: pd.DataFrame) -> Callable[[Path], None]:
    return lambda path: frame.to_csv(path, index=False, float_format="%.6g")


def json_writer(data: Mapping[str, Any]) -> Callable[[Path], None]:
    return lambda path: path.write_text(json.dumps(data, indent=2) + "\n")
