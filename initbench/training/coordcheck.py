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
network, not of the batch. A gpt is measured on a fixed batch of windows of its training
text, and beside its weighted layers on each block's attention logits (q·k times the
attention's scale, over the positions a token attends to): what μP's 1/d_head keeps in size.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F

from initbench.data import Splits
from initbench.jobs import Job
from initbench.settings import TrainSettings
from initbench.training import lm
from initbench.training.engines.sequential import optimizer, param_groups, reads_text
from initbench.training.streams import generator, initial_model

BATCH = 256  # training images the coordinates are measured on
WINDOWS = 32  # or a text's windows


def measured_batch(splits: Splits, settings: TrainSettings) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed batch every model trains on and is measured on, drawn once (the same for every
    model): BATCH training images and their labels, or WINDOWS windows of a text and the tokens
    that follow each position."""
    if reads_text(settings):
        return lm.windows(splits.x_train, settings.network.context, WINDOWS, generator(0, "coord-batch"))
    rows = torch.randperm(len(splits.y_train), generator=generator(0, "coord-batch"))[:BATCH]
    rows = rows.to(splits.x_train.device)
    return splits.x_train[rows], splits.y_train[rows]


def names(model: torch.nn.Module) -> list[tuple[str, int | None]]:
    """Each weighted layer's role and block (1-based; None outside the blocks): a transformer's
    roles as its layers carry them (``models.gpt.ROLES``), or an image network's input, hidden
    and output layers."""
    if hasattr(model, "parts"):  # a gpt: query, key, ... per block
        return [(role, None if block is None else block + 1) for role, block in model.parts]
    last = len(model.layers) - 1
    return [("input" if i == 0 else "output" if i == last else "hidden", None) for i in range(last + 1)]


def attention_logits(model: torch.nn.Module, outputs: list[torch.Tensor]) -> list[torch.Tensor]:
    """A gpt's attention logits per block, from its query's and key's outputs: q·k per head times
    the attention's scale, over the positions each token attends to (itself and those before)."""
    shape, found = model.shape, []
    for block in range(shape.depth):
        q, k = (outputs[model.parts.index((f"attention_{r}", block))].unflatten(-1, (shape.heads, -1)).transpose(1, 2)
                for r in ("query", "key"))
        logits = q @ k.transpose(-1, -2) * shape.logits_scale
        rows, columns = torch.tril_indices(*logits.shape[-2:], device=logits.device)
        found.append(logits[..., rows, columns])
    return found


def coordinates(settings: TrainSettings, scheme: str, seeds: Iterable[int], steps: int,
                splits: Splits, batch: tuple[torch.Tensor, torch.Tensor]) -> list[dict[str, Any]]:
    """Per seed, step (0..steps-1) and weighted layer (1-based; a gpt's attention logits after
    them, a block each), with its ``role`` and ``block``: the mean absolute value of the layer's
    output on ``batch`` (``coord``: what ``get_coord_data`` calls l1) and of its change since
    step 0 (``change``), each step's forward pass then one update on that batch."""
    rows = []
    o, (x, y) = settings.optim, batch
    text = reads_text(settings)
    for seed in seeds:
        model = initial_model(Job(scheme, seed, settings), splits.x_train).to(x.device).train()
        opt = optimizer(param_groups(model, range(len(model.layers)), o.lr, settings, others=True), o)
        named = names(model)
        if text:
            named += [("attention_logits", block + 1) for block in range(model.shape.depth)]
        start: list[torch.Tensor] = []
        for step in range(steps):
            found: dict[int, torch.Tensor] = {}
            hooks = [layer.register_forward_hook(lambda _, args, out, i=i: found.__setitem__(i, out.detach().clone()))
                     for i, layer in enumerate(model.layers)]
            try:
                loss = model.loss(x, y) if text else F.cross_entropy(model(x), y)  # no masks: dropout off
            finally:
                for hook in hooks:
                    hook.remove()
            outputs = [found[i] for i in range(len(model.layers))]
            if text:
                outputs += attention_logits(model, outputs)
            start = start or outputs
            rows += [{"seed": seed, "step": step, "layer": i + 1, "role": role, "block": block,
                      "coord": out.abs().mean().item(), "change": (out - start[i]).abs().mean().item()}
                     for i, (out, (role, block)) in enumerate(zip(outputs, named))]
            if step < steps - 1:
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    return rows
