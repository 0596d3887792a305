"""The random streams that make each model's numbers its own.

Each model draws from its own generators, never from torch's global one:
initial weights and dropout masks from streams keyed by (seed, scheme), the
batch order from a stream keyed by the seed alone, so that within a seed every
scheme sees the same batches in the same order, and a model's numbers do not
depend on which other models are trained beside it. A user's scheme that draws from
torch's global generator finds it seeded from the model's init stream (``schemes.user``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from initbench import models, parametrization, schemes
from initbench.jobs import Job
from initbench.models.dropout import DropoutMasks


def stream_seed(seed: int, purpose: str, scheme: str = "") -> int:
    """A 63-bit seed for one purpose of one model, stable across runs, machines and versions."""
    digest = hashlib.sha256(f"initbench/{purpose}/{seed}/{scheme}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def generator(seed: int, purpose: str, scheme: str = "", device: torch.device | str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(stream_seed(seed, purpose, scheme))


INIT_BATCH = 500  # training images a data-dependent scheme (LSUV) is fitted on


def initialize(job: Job, x_train: Tensor) -> tuple[nn.Module, list[str]]:
    """The job's model as initialized, and where each layer's weights came from: its scheme
    under its canonical name (so an alias gives the same numbers), from its own generator;
    LSUV fitted on INIT_BATCH training images drawn from the seed; then, under μP, the drawn
    output layer scaled (``parametrization.rescale_``). Drawn on the CPU, so the initial
    weights are the same whatever the training device."""
    s, scheme = job.settings, schemes.get(job.scheme)
    batch = None
    if scheme.data_dependent:
        rows = torch.randperm(len(x_train), generator=generator(job.seed, "init-batch"))[:INIT_BATCH]
        batch = x_train[rows.to(x_train.device)].cpu()
    model, net = models.build(s), s.network
    context = schemes.InitContext(generator(job.seed, "init", scheme.name), net.activation, net.bias, batch, s.data,
                                  net.head_init)
    return model, parametrization.rescale_(model, s, scheme.initialize(model, context))


def initial_model(job: Job, x_train: Tensor) -> nn.Module:
    return initialize(job, x_train)[0]


def dropout_generator(job: Job, device: torch.device, purpose: str = "dropout") -> torch.Generator:
    """The stream of a model's training dropout masks, or with purpose="eval-dropout",
    of the masks it is scored with under --lesson-eval."""
    return generator(job.seed, purpose, schemes.get(job.scheme).name, device)


def evaluation_masks(jobs: Sequence[Job], device: torch.device) -> DropoutMasks | None:
    """Under --lesson-eval (and dropout), each model's evaluation masks from its own stream."""
    s = jobs[0].settings.network
    if not s.eval_dropout:
        return None
    return DropoutMasks.for_evaluation(s.dropout, s.hidden, [dropout_generator(job, device, "eval-dropout")
                                                             for job in jobs], device)


def batch_orders(seed: int, n: int) -> Iterator[Tensor]:
    """Each epoch's order of the ``n`` training images for ``seed`` (on the CPU)."""
    order_gen = generator(seed, "order")
    while True:
        yield torch.randperm(n, generator=order_gen)
