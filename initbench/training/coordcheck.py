"""A coordinate check (Tensor Programs V; the ``mup`` package's ``get_coord_data``): how big
each layer's output is, and how far it has moved from its start, after each of a network's
first training steps, at several widths. Under a parametrization that transfers across width
(μP) neither grows with width; under the standard one, a layer trained by Adam at one
learning rate moves more the wider it is.

Every model of a seed starts from the seed's streams and trains on the seed's batches (as
compare's engines: ``streams``), with the parametrization's per-layer learning rates
(``parametrization.scales``, as the sequential engine applies them), dropout off. Its
coordinates are measured on one fixed batch of training images (the same at every step,
width and seed), so that the change since step 0 is a change of the network, not of the
batch: step 0 is the start, step t the network after t updates.
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
from initbench.training.streams import batch_orders, generator, initial_model

BATCH = 256  # training images the coordinates are measured on


def measured_batch(splits: Splits) -> torch.Tensor:
    """The fixed batch the coordinates are measured on (the same for every model)."""
    rows = torch.randperm(len(splits.y_train), generator=generator(0, "coord-batch"))[:BATCH]
    return splits.x_train[rows.to(splits.x_train.device)]


def coordinates(settings: TrainSettings, scheme: str, seeds: Iterable[int], steps: int,
                splits: Splits, batch: torch.Tensor) -> list[dict[str, Any]]:
    """Per seed, step (0..steps-1) and weighted layer (1-based): the mean absolute value of the
    layer's output on ``batch`` (``coord``) and of its change since step 0 (``change``)."""
    rows = []
    o = settings.optim
    for seed in seeds:
        model = initial_model(Job(scheme, seed, settings), splits.x_train).to(batch.device)
        opt = optimizer(param_groups(model, range(len(model.layers)), o.lr, settings), o)
        order = next(batch_orders(seed, len(splits.y_train))).to(batch.device)
        start: list[torch.Tensor] = []
        for step in range(steps):
            outputs = _outputs(model, batch)
            if step == 0:
                start = outputs
            rows += [{"seed": seed, "step": step, "layer": i + 1, "coord": out.abs().mean().item(),
                      "change": (out - start[i]).abs().mean().item()} for i, out in enumerate(outputs)]
            if step < steps - 1:
                idx = order[step * o.batch_size:(step + 1) * o.batch_size]
                loss = F.cross_entropy(model(splits.x_train[idx]), splits.y_train[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    return rows


@torch.no_grad()
def _outputs(model: torch.nn.Module, batch: torch.Tensor) -> list[torch.Tensor]:
    """Each weighted layer's output on ``batch`` (before its activation), dropout off."""
    found: dict[int, torch.Tensor] = {}
    hooks = [layer.register_forward_hook(lambda _, args, out, i=i: found.__setitem__(i, out.detach().clone()))
             for i, layer in enumerate(model.layers)]
    try:
        model.eval()(batch)
    finally:
        for hook in hooks:
            hook.remove()
        model.train()
    return [found[i] for i in range(len(model.layers))]
