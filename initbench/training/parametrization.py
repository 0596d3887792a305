"""How a network's initial weights and learning rates scale with its width: the standard
parametrization ("sp": the scheme's weights, one learning rate) or μP ("mup"), relative to a
base width, the one place both are written.

μP is taken in the form of Tensor Programs V's Table 3 (initial variances and per-layer
learning rates; no output multiplier), relative to a base network whose hidden layers (or
blocks) are all ``base_width`` wide, as the ``mup`` package's base shapes make it: each
weighted layer's fan-in and fan-out come from the network's entry (``Network.layer_fans``); a
dimension is "infinite" (it grows with width) if it is a hidden layer's width, finite if it
is the inputs, the classes, a vocabulary or a text's positions, and each factor is a ratio of
fan-ins or fan-outs to the base network's. At the base width
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

The transformer (gpt) is μP as Tensor Programs V writes it for attention, and as the ``mup``
package's transformer example starts it: its embeddings are input layers (Adam × 1), each
block's six matrices hidden ones (Adam × base / fan_in), the head the output layer; its
norms' gains and biases are vectors, as biases are (``others_lr``); the attention's logits are
q·k/d_head rather than q·k/sqrt(d_head), times sqrt of the base's d_head so that the base width
keeps sp's scale (``models.gpt_shape.Shape.attention_scale``); and each block's query and the
head start at zero (``Network.zeroed``: the attention starts uniform and the logits at zero at
every width; appendix D.2). So at its base width a gpt's μP is sp but for those zeros.

The depth parametrizations (resmlp: blocks x + W2 φ(W1 x); gpt: an attention and an MLP
branch per block, ``Network.branches``) add to μP a multiplier on each residual branch,
(L0/L)^alpha with L blocks and a base of L0 (``base_depth``), and set the Adam rates of each
branch's weights × (L/L0)^(alpha - 1): alpha 1/2 is depth-μP (Tensor Programs VI, Yang et al.
2023: multiplier 1/sqrt(L), Adam's rate 1/sqrt(L)), alpha 1 CompleteP (Dey et al. 2025:
multiplier 1/L, rate unchanged). The multiplier is written as Table 3 writes μP's output
multiplier: the branch's last layer (W2; a gpt's attention output and MLP out) draws its
weights and bias times it and takes an Adam rate times it, which is the same function and the
same updates (up to Adam's eps) as multiplying its output. At the base depth every factor is
1: the numbers are μP's.

Formula: W_out *= sqrt(b/n_in); Adam: lr_W *= b/n_in, lr_b *= 1; SGD: lr_W *= (n_out/b)/(n_in/b), lr_b *= n_out/b
Formula: depth: W2, b2 *= (L0/L)^a; Adam lr of W1 x (L/L0)^(a-1), of W2 x (L0/L)^a (L/L0)^(a-1), of b2 x (L0/L)^a
Reference: Yang et al. 2022, "Tensor Programs V: Tuning Large Neural Networks via Zero-Shot HP Transfer", Table 3
Reference: Yang et al. 2023, "Tensor Programs VI: Feature Learning in Infinite-Depth Neural Networks"
Reference: Dey et al. 2025, "Don't be lazy: CompleteP enables compute-efficient deep transformers"

No torch here at module level: the command line checks these settings before torch loads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from initbench import models
from initbench.errors import UsageError

if TYPE_CHECKING:
    from torch import nn

    from initbench.settings import NetworkSettings, TrainSettings

PARAMETRIZATIONS = ("sp", "mup", "depth-mup", "completep")
# The depth parametrizations: μP in width, and each residual branch times (base_depth / L)^alpha.
DEPTH_ALPHA = {"depth-mup": 0.5, "completep": 1.0}
LOADED = "loaded from"  # how a layer's provenance begins when pretrained copied it from a file


@dataclass(frozen=True)
class LayerScale:
    """One weighted layer's factors: on the weights (and biases) its scheme drew, and on the
    learning rate of its weight and of its bias."""

    init: float = 1.0
    weight_lr: float = 1.0
    bias_lr: float = 1.0
    bias_init: float = 1.0
    why: str = field(default="", compare=False)  # what a layer's provenance says of its init factor


def check(network: NetworkSettings, optimizer: str = "adam") -> None:
    """Refuse a parametrization a network's entry does not name (μP: its layers' roles are
    not known; a depth parametrization: it has no residual blocks), and a depth
    parametrization under SGD (written for Adam, as CompleteP's table is)."""
    if network.parametrization not in models.get(network.network).parametrizations:
        written = [name for name, entry in models.NETWORKS.items() if network.parametrization in entry.parametrizations]
        why = ("scales each residual branch by the network's depth, and needs its blocks"
               if network.parametrization in DEPTH_ALPHA else
               "scales each layer by whether it is an input, hidden or output layer, and which of its dimensions "
               "grow with width, which initbench knows for those alone")
        raise UsageError(f"--parametrization {network.parametrization} is written for {', '.join(written)} networks "
                         f"only, not {network.network!r}: it {why}. Give --parametrization sp for this network.")
    if network.parametrization in DEPTH_ALPHA and optimizer != "adam":
        raise UsageError(f"--parametrization {network.parametrization} is written for Adam (its learning rates per "
                         "depth are Adam's, as in CompleteP's table). Give --optimizer adam, or --parametrization mup "
                         "for SGD.")


def scales(settings: TrainSettings) -> list[LayerScale]:
    """Each weighted layer's factors, input layer first (all 1 under SP); see the module's docstring."""
    network = settings.network
    layers = models.depth(network)
    if network.parametrization == "sp":  # any network's layers, as its registry line counts them
        return [LayerScale()] * layers
    entry = models.get(network.network)
    # How much wider than the base network's (every block or hidden layer base_width wide) each
    # layer's fan-in and fan-out are, as the mup package's base shapes say: 1 where it is finite.
    base = replace(network, hidden=(network.base_width,) * len(network.hidden))
    fans = entry.layer_fans(network)
    ratios = [[1.0 if n is None else n / b for n, b in zip(layer, base_layer)]
              for layer, base_layer in zip(fans, entry.layer_fans(base))]
    zeroed, found = entry.zeroed(network), []
    for i, (fan_in, fan_out) in enumerate(ratios):
        readout = fans[i][1] is None  # it writes the classes (or a vocabulary's logits)
        init, why = 1.0, ""
        if i in zeroed:
            init, why = 0.0, "weights × 0 (μP starts the query and the readout at zero)"
        elif readout and fan_in != 1.0:
            init, why = 1 / math.sqrt(fan_in), f"weights × {1 / math.sqrt(fan_in):.4g} (μP output layer, base width " \
                                               f"{network.base_width})"
        if settings.optim.optimizer == "adam":
            found.append(LayerScale(init, 1 / fan_in, 1.0, why=why))
        else:
            found.append(LayerScale(init, fan_out / fan_in, fan_out, why=why))
    alpha = DEPTH_ALPHA.get(network.parametrization)
    if alpha is None:
        return found
    # Deeper than the base by ``deeper``: every branch's layers' Adam rate x deeper^(alpha - 1), and each
    # branch's end times the multiplier deeper^-alpha, written as Table 3 writes μP's output multiplier:
    # its weights and bias drawn times it and their Adam rate times it (the same function and updates,
    # up to Adam's eps, as a multiplier in the forward pass).
    deeper = len(network.hidden) / network.base_depth
    branch = deeper ** -alpha
    for first, last in entry.branches(network):
        for i in range(first, last + 1):
            f = found[i]
            m = branch if i == last else 1.0
            why = f.why or (f"weights and bias × {m:.4g} (the residual branch's multiplier, base depth "
                            f"{network.base_depth})" if m != 1.0 else "")
            found[i] = LayerScale(f.init * m, f.weight_lr * m * deeper ** (alpha - 1), f.bias_lr * m, m, why)
    return found


def others_lr(settings: TrainSettings) -> float:
    """The learning-rate factor of a parameter outside the weighted layers (a gpt's norms' gains
    and biases: vectors as wide as its residual stream): 1 under Adam (as a bias's), the stream's
    width over the base's under SGD (``mup.MuSGD``'s for a vector)."""
    network = settings.network
    if network.parametrization == "sp" or settings.optim.optimizer == "adam":
        return 1.0
    return network.hidden[0] / network.base_width


def rescale_(model: nn.Module, settings: TrainSettings, sources: list[str]) -> list[str]:
    """Scale the weights ``model``'s scheme drew in place by their layers' init factors, and
    return each layer's provenance (``sources``) with what was scaled said."""
    import torch

    if settings.network.parametrization == "sp":  # whatever the network's layers
        return sources
    found = []
    for layer, scale, source in zip(model.layers, scales(settings), sources):
        if scale.init != 1.0 and not source.startswith(LOADED):
            with torch.no_grad():
                layer.weight.mul_(scale.init)
                if getattr(layer, "bias", None) is not None:
                    layer.bias.mul_(scale.bias_init)
            source += f"; {scale.why}"
        found.append(source)
    return found


def by_rate(rates: Sequence[float]) -> dict[float, list[int]]:
    """The positions of ``rates`` grouped by rate, in order of first appearance: one optimizer
    group per distinct learning rate (under SP, a single group, as before μP existed)."""
    groups: dict[float, list[int]] = {}
    for i, rate in enumerate(rates):
        groups.setdefault(rate, []).append(i)
    return groups
