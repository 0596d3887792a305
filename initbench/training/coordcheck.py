"""A coordinate check (Tensor Programs V; the ``mup`` package's ``get_coord_data``): how big
each layer's output is, and how far it has moved from its start, after each of a network's
first training steps, at several widths. Under a parametrization that transfers across width
(μP) neither grows with width; under the standard one, a layer trained by Adam at one
learning rate moves more the wider it is.

Every model of a seed starts from the seed's streams (as compare's: ``streams``) and trains,
with its parametrization's per-layer learning rates (``parametrization.scales``, as the
sequential engine applies them) and dropout off, on one fixed batch of training images, the
same for every width, seed and step, on which its coordinates are measured in the same
forward pass (the ``mup`` package's ``get_coord_data`` with its ``fix_data``): step 0 is the
start, step t the network after t updates, and the change since step 0 is a change of the
network, not of the batch.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F

from initbench.data import Splits
from initbench.jobs import Job
from initbench.settings import TrainSettings
from initbench.training.engines.sequential import optimizer, param_groups
from initbench.training.streams import generator, initial_model

BATCH = 256  # training images the coordinates are measured on


def measured_batch(splits: Splits) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed batch every model trains on and is measured on: BATCH training images
    (drawn once, the same for every model) and their labels."""
    rows = torch.randperm(len(splits.y_train), generator=generator(0, "coord-batch"))[:BATCH]
    rows = rows.to(splits.x_train.device)
    return splits.x_train[rows], splits.y_train[rows]


def coordinates(settings: TrainSettings, scheme: str, seeds: Iterable[int], steps: int,
                splits: Splits, batch: tuple[torch.Tensor, torch.Tensor]) -> list[dict[str, Any]]:
    """Per seed, step (0..steps-1) and weighted layer (1-based): the mean absolute value of the
    layer's output on ``batch`` (``coord``: what ``get_coord_data`` calls l1) and of its change
    since step 0 (``change``), each step's forward pass then one update on that batch."""
    rows = []
    o, (x, y) = settings.optim, batch
    for seed in seeds:
        model = initial_model(Job(scheme, seed, settings), splits.x_train).to(x.device).train()
        opt = optimizer(param_groups(model, range(len(model.layers)), o.lr, settings), o)
        start: list[torch.Tensor] = []
        for step in range(steps):
            found: dict[int, torch.Tensor] = {}
            hooks = [layer.register_forward_hook(lambda _, args, out, i=i: found.__setitem__(i, out.detach().clone()))
                     for i, layer in enumerate(model.layers)]
            try:
                loss = F.cross_entropy(model(x), y)  # no masks: dropout off
            finally:
                for hook in hooks:
                    hook.remove()
            outputs = [found[i] for i in range(len(model.layers))]
            start = start or outputs
            rows += [{"seed": seed, "step": step, "layer": i + 1, "coord": out.abs().mean().item(),
                      "change": (out - start[i]).abs().mean().item()} for i, out in enumerate(outputs)]
            if step < steps - 1:
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    return rows
