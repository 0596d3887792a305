"""Training. A run is a list of jobs (scheme, seed, settings); an engine trains
them and returns one JobResult per job.

Each model draws from its own generators, never from torch's global one:
initial weights and dropout masks from streams keyed by (seed, scheme), the
batch order from a stream keyed by the seed alone, so that within a seed every
scheme sees the same batches in the same order and a model's numbers do not
depend on which other models run beside it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from initbench import schemes
from initbench.data import Splits
from initbench.errors import InitbenchError
from initbench.model import build

EVAL_CHUNK = 10_000


@dataclass(frozen=True)
class TrainSettings:
    """Everything about a model and its training except its scheme and seed."""

    hidden: tuple[int, ...] = (256, 128)
    dropout: float = 0.2
    lr: float = 1e-3
    batch_size: int = 100
    epochs: int = 2


@dataclass(frozen=True)
class Job:
    scheme: str
    seed: int
    settings: TrainSettings


@dataclass
class JobResult:
    job: Job
    losses: Tensor  # [epochs, batches per epoch], float32 on the CPU; NaN where no batch was trained
    val_acc: list[float]  # after each epoch
    test_acc: float
    diverged_at: int | None  # 1-based number of the batch whose loss was NaN/inf, if any


def stream_seed(seed: int, purpose: str, scheme: str = "") -> int:
    """A 63-bit seed for one purpose of one model, stable across runs, machines and versions."""
    digest = hashlib.sha256(f"initbench/{purpose}/{seed}/{scheme}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def generator(seed: int, purpose: str, scheme: str = "", device: torch.device | str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(stream_seed(seed, purpose, scheme))


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then MPS, then the CPU; a named device must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if torch.backends.mps.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InitbenchError(f"Unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps.") from None
    if device.type == "cuda" and not (
        torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count()
    ):
        raise InitbenchError(f"Device {name!r} is not available here: this machine has "
                             f"{torch.cuda.device_count()} usable CUDA device(s). Use --device cpu or auto.")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise InitbenchError(f"Device {name!r} is not available here. Use --device cpu or auto.")
    if device.type not in ("cpu", "cuda", "mps"):
        raise InitbenchError(f"Unsupported device {name!r}: use auto, cpu, cuda, cuda:N or mps.")
    return device


def batches_per_epoch(n_train: int, batch_size: int) -> int:
    return math.ceil(n_train / batch_size)


@torch.no_grad()
def accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """Fraction classified correctly; a row with a non-finite output counts as wrong."""
    model.eval()
    correct = 0
    for start in range(0, len(y), EVAL_CHUNK):
        logits = model(x[start:start + EVAL_CHUNK])
        ok = (logits.argmax(1) == y[start:start + EVAL_CHUNK]) & torch.isfinite(logits).all(1)
        correct += int(ok.sum())
    return correct / len(y)


def train_sequential(jobs: Sequence[Job], data: Splits, device: torch.device,
                     advance: Callable[[int], None] = lambda n: None) -> list[JobResult]:
    """The reference engine: one plain nn.Module and torch.optim.Adam per job, one after another."""
    return [_train_one(job, data, device, advance) for job in jobs]


def _train_one(job: Job, data: Splits, device: torch.device, advance: Callable[[int], None]) -> JobResult:
    s = job.settings
    model = build(s.hidden, s.dropout, schemes.get(job.scheme), generator(job.seed, "init", job.scheme)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=s.lr)
    dropout_gen = generator(job.seed, "dropout", job.scheme, device)
    order_gen = generator(job.seed, "order")
    n = len(data.y_train)
    n_batches = batches_per_epoch(n, s.batch_size)
    losses = torch.full((s.epochs, n_batches), math.nan, device=device)
    val_acc: list[float] = []
    diverged_at = None
    for epoch in range(s.epochs):
        if diverged_at is None:
            model.train()
            order = torch.randperm(n, generator=order_gen).to(device)
            for b in range(n_batches):
                idx = order[b * s.batch_size:(b + 1) * s.batch_size]
                loss = F.cross_entropy(model(data.x_train[idx], dropout_gen), data.y_train[idx])
                losses[epoch, b] = loss.detach()
                if not torch.isfinite(loss):
                    # Divergence is a result: keep the model as it stands and stop training it.
                    diverged_at = epoch * n_batches + b + 1
                    advance((s.epochs - epoch) * n_batches - b)
                    break
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                advance(1)
        val_acc.append(accuracy(model, data.x_val, data.y_val))
    return JobResult(job, losses.cpu(), val_acc, accuracy(model, data.x_test, data.y_test), diverged_at)
