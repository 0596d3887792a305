"""The random streams: every random number a model uses, common to all schemes of a seed.

A model never draws from torch's global generator. Its numbers come from streams keyed by
its seed and their purpose alone, never by its scheme: the batch order, the dropout masks
(of training, and of --lesson-eval's scoring), LSUV's batch of images, and the initial
draws, one stream per layer, which each scheme's rule transforms (``normal`` at twice the
std draws exactly twice the weights). So two schemes of a seed differ by their rule alone,
the same function under two names trains to the same numbers, and paired comparisons over
seeds compare starts and nothing else (the method of common random numbers). A model's
numbers do not depend on which other models are trained beside it. A user's scheme that
draws from torch's global generator finds it seeded from the layer's own stream
(``initializers.user``).

``VERSION`` names this design in every job's identity (``store.identity``): version 1 keyed
the initial draws and dropout masks by (seed, scheme) as well, so its numbers differ, and a
store keeps its rows apart from version 2's. torch is imported inside the functions: the
store keys jobs without it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from initbench import initializers, models
from initbench.jobs import Job
from initbench.training import parametrization

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

    from initbench.models.dropout import DropoutMasks

VERSION = 2  # of the streams' design; 1: initial draws and dropout masks keyed by (seed, scheme)
INIT_BATCH = 500  # training images a data-dependent scheme (LSUV) is fitted on, at most (all, when fewer)


def stream_seed(seed: int, purpose: str) -> int:
    """A 63-bit seed for one purpose of one seed, stable across runs, machines and versions."""
    digest = hashlib.sha256(f"initbench/{purpose}/{seed}/".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def generator(seed: int, purpose: str, device: torch.device | str = "cpu") -> torch.Generator:
    import torch

    return torch.Generator(device=device).manual_seed(stream_seed(seed, purpose))


def layer_streams(seed: int) -> Callable[[int, str], torch.Generator]:
    """Layer ``i``'s initial draws (``part`` "weights": the scheme's own, its bias after its
    weight; "bias": --bias default's), a fresh generator each time it is asked: what a scheme
    drew for the layers before, or for the weight, never shifts another's numbers."""
    return lambda i, part: generator(seed, f"init/layer-{i}" + ("" if part == "weights" else f"/{part}"))


def start(job: Job, x_train: Tensor) -> tuple[nn.Module, list[str]]:
    """The job's model as initialized, and where each layer's weights came from: its scheme
    (an alias gives the same numbers) drawing from the seed's streams; LSUV fitted on
    INIT_BATCH training images drawn from the seed; then, under μP, the drawn output layer
    scaled (``parametrization.rescale_``). Drawn on the CPU, so the initial weights are the
    same whatever the training device."""
    import torch

    s, scheme = job.settings, initializers.get(job.scheme)
    batch = None
    if scheme.data_dependent:
        rows = torch.randperm(len(x_train), generator=generator(job.seed, "init-batch"))[:INIT_BATCH]
        batch = x_train[rows.to(x_train.device)].cpu()
    model, net = models.build(s), s.network
    context = initializers.InitContext(generator(job.seed, "init"), net.activation, net.bias, batch, s.data,
                                  net.head_init, layer_streams(job.seed))
    return model, parametrization.rescale_(model, s, scheme.initialize(model, context))


def initial_model(job: Job, x_train: Tensor) -> nn.Module:
    return start(job, x_train)[0]


def dropout_streams(jobs: Sequence[Job], device: torch.device,
                    purpose: str = "dropout") -> tuple[list[torch.Generator], list[int]]:
    """The streams of the models' training dropout masks, one per seed (every scheme of a seed
    drops the same units at the same step), and which of them each model's is; with
    purpose="eval-dropout", of the masks they are scored with under --lesson-eval."""
    seeds = list(dict.fromkeys(job.seed for job in jobs))
    return [generator(seed, purpose, device) for seed in seeds], [seeds.index(job.seed) for job in jobs]


def dropout_masks(jobs: Sequence[Job], device: torch.device, batch_size: int, n_batches: int) -> DropoutMasks | None:
    """The models' training dropout masks (None without dropout)."""
    from initbench.models.dropout import DropoutMasks

    net = jobs[0].settings.network
    if not net.dropout:
        return None
    generators, rows = dropout_streams(jobs, device)
    return DropoutMasks(net.dropout, net.hidden, batch_size, n_batches, generators, device, rows=rows)


def evaluation_masks(jobs: Sequence[Job], device: torch.device) -> DropoutMasks | None:
    """Under --lesson-eval (and dropout), the models' evaluation masks from their seeds' streams."""
    from initbench.models.dropout import DropoutMasks

    s = jobs[0].settings.network
    if not s.eval_dropout:
        return None
    generators, rows = dropout_streams(jobs, device, "eval-dropout")
    return DropoutMasks.for_evaluation(s.dropout, s.hidden, generators, device, rows)


def batch_orders(seed: int, n: int) -> Iterator[Tensor]:
    """Each epoch's order of the ``n`` training images for ``seed`` (on the CPU)."""
    import torch

    order_gen = generator(seed, "order")
    while True:
        yield torch.randperm(n, generator=order_gen)
