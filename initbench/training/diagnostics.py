"""Per-layer diagnostics: what a model's weights, activations and gradients look like on
a batch of real images, and plain-word flags for the ways a start goes wrong.

Used by ``initbench inspect`` (at init) and ``initbench compare --track-stats``
(at init and after every epoch); a gpt's (``gpt_stats``: per tensor, and the signal through
its residual stream, forward and backward) by ``inspect`` at init.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from initbench.models.gpt import GPT
from initbench.models.mlp import MLP
from initbench.training.streams import generator

STATS_BATCH = 500  # validation images the statistics are computed on
STATS_WINDOWS = 32  # a gpt's: validation windows
SHRINK = 0.1  # activation std of the last hidden layer below this share of the first's: vanishing
GROW = 10.0  # ... above this multiple: exploding
GRAD_RATIO = 100.0  # first layer's gradient norm this many times below/above the last's
DEAD = 0.5  # share of a layer's units that output 0 on every image


def stats_batch(x: Tensor, y: Tensor, n: int = STATS_BATCH) -> tuple[Tensor, Tensor]:
    """A fixed batch of ``n`` images (the same for every scheme, seed and epoch)."""
    rows = torch.randperm(len(y), generator=generator(0, "stats-batch"))[:n].to(x.device)
    return x[rows].cpu(), y[rows].cpu()


def layer_stats(model: MLP, x: Tensor, y: Tensor) -> list[dict[str, float]]:
    """One forward and backward pass (no dropout) on ``x``; per layer: weight mean and std,
    output mean and std (as the next layer receives it: after the activation, or a residual
    block's sum, or a CNN's pooling; logits for the last layer), the share of units (a
    convolution's: channels) that output 0 on every image, the weight gradient's norm, the
    std of the gradient back-propagated to the layer's own output (before its activation:
    what Glorot & Bengio's Figure 7 draws), and how many distinct units the layer has
    (identical units get identical gradients: they never separate)."""
    model = copy.deepcopy(model).cpu().requires_grad_(True)  # frozen layers too: what their gradient would be
    outputs: list[Tensor] = []
    backprop: dict[int, Tensor] = {}
    # Each layer's output is what the next one is called with: read there, whatever the network does between them.
    hooks = [layer.register_forward_pre_hook(lambda _, args: outputs.append(args[0])) for layer in model.layers[1:]]

    def keep_backprop(i: int) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any, out: Tensor) -> None:  # None: the output is left as it is
            out.register_hook(lambda grad: backprop.__setitem__(i, grad))
        return hook

    hooks += [layer.register_forward_hook(keep_backprop(i)) for i, layer in enumerate(model.layers)]
    logits = model(x)
    for hook in hooks:
        hook.remove()
    outputs.append(logits)
    F.cross_entropy(logits, y).backward()
    rows = []
    with torch.no_grad():
        for i, (layer, out) in enumerate(zip(model.layers, outputs)):
            units = torch.cat([layer.weight.flatten(1), layer.bias[:, None]], dim=1)
            # Per unit: an output feature, or a convolution's channel over every position (a CNN's
            # pooled maps, flattened or not, keep their channels first).
            per_unit = out.reshape(len(out), layer.weight.shape[0], -1)
            rows.append({
                "layer": i + 1,
                "units": layer.weight.shape[0],
                "weight_mean": layer.weight.mean().item(),
                "weight_std": layer.weight.std().item(),
                "act_mean": out.mean().item(),
                "act_std": out.std().item(),
                "dead_fraction": (per_unit == 0).all(2).all(0).float().mean().item(),
                "grad_norm": layer.weight.grad.norm().item() if layer.weight.grad is not None else 0.0,
                "backprop_std": backprop[i].std().item() if i in backprop else 0.0,
                "distinct_units": len(torch.unique(units, dim=0)),
            })
    return rows


def epoch_rows(model: MLP, batch: tuple[Tensor, Tensor] | None, epoch: int) -> list[dict[str, float]]:
    """``layer_stats`` on ``batch`` (a ``stats_batch``), each row with its ``epoch`` (0: at
    init); none without a batch (statistics not asked for)."""
    return [] if batch is None else [{"epoch": epoch, **row} for row in layer_stats(model, *batch)]


def flags(rows: list[dict[str, float]]) -> list[str]:
    """What the statistics of one model say, in plain words (empty if nothing is wrong)."""
    found = []
    overflowed = [r["layer"] for r in rows
                  if not all(math.isfinite(r[k]) for k in ("weight_mean", "weight_std", "act_std", "grad_norm"))]
    if overflowed:
        found.append(f"non-finite values: layer(s) {', '.join(map(str, overflowed))} have weights, outputs or "
                     "gradients that overflow float32 (inf or NaN); such a model cannot train")
    hidden = rows[:-1]
    symmetric = [r for r in hidden if r["units"] > 1 and r["distinct_units"] == 1]
    if symmetric:
        layers = ", ".join(str(r["layer"]) for r in symmetric)
        found.append(f"symmetry: every unit of layer(s) {layers} is identical, so each gets the same gradient "
                     "and they can never learn different features")
    if len(hidden) > 1:
        first, last = hidden[0]["act_std"], hidden[-1]["act_std"]
        if first > 0 and last < SHRINK * first:
            found.append(f"vanishing activations: their std shrinks from {first:.3g} (layer 1) "
                         f"to {last:.3g} (layer {hidden[-1]['layer']})")
        elif first > 0 and last > GROW * first:
            found.append(f"exploding activations: their std grows from {first:.3g} (layer 1) "
                         f"to {last:.3g} (layer {hidden[-1]['layer']})")
    g_first, g_last = rows[0]["grad_norm"], rows[-1]["grad_norm"]
    if g_last > 0 and g_first < g_last / GRAD_RATIO:
        found.append(f"vanishing gradients: the weight gradient's norm falls from {g_last:.3g} (last layer) "
                     f"to {g_first:.3g} (first layer)")
    elif g_last > 0 and g_first > g_last * GRAD_RATIO:
        found.append(f"exploding gradients: the weight gradient's norm grows from {g_last:.3g} (last layer) "
                     f"to {g_first:.3g} (first layer)")
    dead = [r for r in hidden if r["dead_fraction"] > DEAD]
    if dead:
        found.append("dead units: " + ", ".join(f"{100 * r['dead_fraction']:.0f}% of layer {r['layer']}"
                                                 for r in dead) + " output 0 for every image")
    return found


# --- a transformer's (gpt): per tensor, and the signal through its residual stream


def windows_batch(tokens: Tensor, context: int, n: int = STATS_WINDOWS) -> tuple[Tensor, Tensor]:
    """A fixed batch of ``n`` windows of a held-out text and their next tokens (the same for
    every scheme and seed)."""
    starts = torch.randint(len(tokens) - context, (n,), generator=generator(0, "stats-batch"))
    chunk = tokens.cpu()[starts[:, None] + torch.arange(context + 1)]
    return chunk[:, :-1], chunk[:, 1:]


def gpt_stats(model: GPT, x: Tensor, y: Tensor) -> tuple[list[dict[str, Any]], list[dict[str, float]]]:
    """One forward and backward pass (no dropout) of a gpt on windows ``x`` (targets ``y``):
    per weighted layer (``model.layers``, its role in ``part``), ``layer_stats``' columns (its
    own output's mean and std; no unit is dead in a gpt's sense: 0); and per block, the signal's
    propagation: the residual stream's std after it, its attention and MLP branches' output
    std, and the std of the loss's gradient with respect to the stream after it (backward). A
    start that forgets to scale its residual branches by depth shows a stream whose std grows
    block after block."""
    model = copy.deepcopy(model).cpu().eval().requires_grad_(True)
    outputs: dict[int, Tensor] = {}
    stream: list[Tensor] = []
    hooks = [layer.register_forward_hook(lambda _, args, out, i=i: outputs.__setitem__(i, out))
             for i, layer in enumerate(model.layers)]
    branch: dict[tuple[int, str], Tensor] = {}

    def keep_stream(module: nn.Module, args: Any, out: Tensor) -> None:  # None: the output is left as it is
        out.retain_grad()
        stream.append(out)

    for b, block in enumerate(model.blocks):
        hooks.append(block.register_forward_hook(keep_stream))
        hooks.append(block.attention_output.register_forward_hook(
            lambda _, args, out, b=b: branch.__setitem__((b, "attention"), out)))
        hooks.append(block.mlp_out.register_forward_hook(lambda _, args, out, b=b: branch.__setitem__((b, "mlp"), out)))
    loss = model.loss(x, y)
    for hook in hooks:
        hook.remove()
    loss.backward()
    layers = []
    with torch.no_grad():
        for i, ((part, block), layer) in enumerate(zip(model.parts, model.layers)):
            out = outputs[i] if i in outputs else layer.weight  # an embedding's rows are its output
            bias = getattr(layer, "bias", None)
            units = layer.weight if bias is None else torch.cat([layer.weight, bias[:, None]], dim=1)
            layers.append({
                "layer": i + 1, "part": part + ("" if block is None else f".{block}"),
                "units": layer.weight.shape[0],
                "weight_mean": layer.weight.mean().item(), "weight_std": layer.weight.std().item(),
                "act_mean": out.float().mean().item(), "act_std": out.float().std().item(),
                "dead_fraction": 0.0,
                "grad_norm": layer.weight.grad.norm().item() if layer.weight.grad is not None else 0.0,
                "backprop_std": 0.0, "distinct_units": len(torch.unique(units, dim=0)),
            })
        blocks = [{"block": b + 1, "residual_std": s.std().item(),
                   "attention_std": branch[b, "attention"].std().item(), "mlp_std": branch[b, "mlp"].std().item(),
                   "grad_std": s.grad.std().item() if s.grad is not None else 0.0}
                  for b, s in enumerate(stream)]
    return layers, blocks


def signal_flags(blocks: list[dict[str, float]]) -> list[str]:
    """What a gpt's signal propagation says, in plain words (empty if nothing is wrong)."""
    if len(blocks) < 2:
        return []
    first, last = blocks[0]["residual_std"], blocks[-1]["residual_std"]
    found = []
    if not all(math.isfinite(b[k]) for b in blocks for k in ("residual_std", "grad_std")):
        found.append("non-finite values in the residual stream or its gradient: such a model cannot train")
    elif first > 0 and last > GROW * first:
        found.append(f"a growing residual stream: its std grows from {first:.3g} (block 1) to {last:.3g} (block "
                     f"{blocks[-1]['block']}); branches not scaled by depth add up")
    g_first, g_last = blocks[0]["grad_std"], blocks[-1]["grad_std"]
    if g_last > 0 and g_first > GRAD_RATIO * g_last:
        found.append(f"exploding gradients: the stream's gradient std grows from {g_last:.3g} (last block) to "
                     f"{g_first:.3g} (first block)")
    return found
