"""How a network's initial weights and learning rates scale with its width: the standard
parametrization ("sp": the scheme's weights, one learning rate) or μP ("mup"), relative to a
base width, the one place both are written.

μP is taken in the form of Tensor Programs V's Table 3 (initial variances and per-layer
learning rates; no output multiplier), relative to a base network whose hidden layers are all
``base_width`` wide, as the ``mup`` package's base shapes make it: a dimension is "infinite"
(it grows with width) if it is a hidden layer's width, finite if it is the inputs or the
classes, and each factor is a ratio of fan-ins or fan-outs to the base's. At the base width
every factor is exactly 1, so μP's numbers there are SP's, bit for bit. The scheme still draws
its usual weights; μP then scales the output layer's (a layer loaded from a file, as
``pretrained`` loads one, is left as loaded) and sets each tensor's learning rate:

- input weights and all biases: initial weights as drawn; Adam's lr × 1; SGD's lr × fan_out / base
  (a hidden width's ratio; the output layer's bias, of the classes, × 1)
- hidden weights: as drawn; Adam's lr × base / fan_in; SGD's × (fan_out / base) / (fan_in / base)
  (1 where the widths grow alike, Table 3's 1; ``mup.MuSGD``'s ratio where they do not)
- output weights: × sqrt(base / fan_in) (variance 1/fan_in² for a scheme of variance 1/fan_in);
  Adam's and SGD's lr × base / fan_in

This is ``mup.MuAdam``/``mup.MuSGD``'s rule written for initbench's MLP. ``mup.MuReadout`` puts
the output layer's factor in the forward pass instead (an output multiplier 1/width_mult, its
weights scaled up to match): the same functions and updates (up to Adam's eps), while Table
3's form keeps plain nn.Linear layers, their state dicts and the batched engine's step as
they are. Biases keep whatever the scheme (or --bias) gave them. In the formula, b is the base
width and a finite dimension (the inputs, the classes) counts as b.

Formula: W_out *= sqrt(b/n_in); Adam: lr_W *= b/n_in, lr_b *= 1; SGD: lr_W *= (n_out/b)/(n_in/b), lr_b *= n_out/b
Reference: Yang et al. 2022, "Tensor Programs V: Tuning Large Neural Networks via Zero-Shot HP Transfer", Table 3

No torch here at module level: the command line checks these settings before torch loads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from initbench import models
from initbench.errors import UsageError

if TYPE_CHECKING:
    from torch import nn

    from initbench.settings import NetworkSettings, TrainSettings

PARAMETRIZATIONS = ("sp", "mup")
LOADED = "loaded from"  # how a layer's provenance begins when pretrained copied it from a file


@dataclass(frozen=True)
class LayerScale:
    """One weighted layer's factors: on the weights its scheme drew, and on the learning rate
    of its weight and of its bias."""

    init: float = 1.0
    weight_lr: float = 1.0
    bias_lr: float = 1.0


def check(network: NetworkSettings) -> None:
    """Refuse a parametrization a network's entry does not name (μP: its layers' roles are not known)."""
    if network.parametrization not in models.get(network.network).parametrizations:
        written = [name for name, entry in models.NETWORKS.items() if network.parametrization in entry.parametrizations]
        raise UsageError(f"--parametrization {network.parametrization} is written for {', '.join(written)} networks "
                         "only, not "
                         f"{network.network!r}: μP scales each layer by whether it is an input, hidden or output "
                         "layer, and which of its dimensions grow with width, which initbench knows for those "
                         "alone. Give --parametrization sp for this network.")


def scales(settings: TrainSettings) -> list[LayerScale]:
    """Each weighted layer's factors, input layer first (all 1 under SP); see the module's docstring."""
    network = settings.network
    layers = models.depth(network)
    if network.parametrization == "sp":  # any network's layers, as its registry line counts them
        return [LayerScale()] * layers
    base = network.base_width
    # How much wider than the base each layer boundary is: the inputs and classes are finite.
    wider = [1.0, *(width / base for width in network.hidden), 1.0]
    found = []
    for i in range(layers):
        fan_in, fan_out = wider[i], wider[i + 1]
        init = 1 / math.sqrt(fan_in) if i == layers - 1 else 1.0  # the output layer's alone
        if settings.optim.optimizer == "adam":
            found.append(LayerScale(init, 1 / fan_in, 1.0))
        else:
            found.append(LayerScale(init, fan_out / fan_in, fan_out))
    return found


def rescale_(model: nn.Module, settings: TrainSettings, sources: list[str]) -> list[str]:
    """Scale the weights ``model``'s scheme drew in place by their layers' init factors, and
    return each layer's provenance (``sources``) with what was scaled said."""
    import torch

    network, found = settings.network, []
    if network.parametrization == "sp":  # whatever the network's layers (μP's are an MLP's: check)
        return sources
    for layer, scale, source in zip(model.layers, scales(settings), sources):
        if scale.init != 1.0 and not source.startswith(LOADED):
            with torch.no_grad():
                layer.weight.mul_(scale.init)
            source += f"; weights × {scale.init:.4g} (μP output layer, base width {network.base_width})"
        found.append(source)
    return found


def by_rate(rates: Sequence[float]) -> dict[float, list[int]]:
    """The positions of ``rates`` grouped by rate, in order of first appearance: one optimizer
    group per distinct learning rate (under SP, a single group, as before μP existed)."""
    groups: dict[float, list[int]] = {}
    for i, rate in enumerate(rates):
        groups.setdefault(rate, []).append(i)
    return groups
