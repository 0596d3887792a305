"""Whole-model schemes for residual networks (``resmlp``): they find the residual branches
by the network's ``wiring`` (a layer whose output adds an earlier layer's input closes the
branch that began there) and start each branch near zero, so a deep stack of blocks
starts close to the identity instead of growing with depth.

Without normalization, a block ``x + W2 φ(W1 x)`` adds its branch's variance to the
stream's, so with a plain He start the stream's variance grows with every block. Fixup
scales the branches down by the depth and zeroes their last layers; SkipInit only
zeroes their last layers. A network without residual branches (mlp) is refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from initbench.errors import UsageError
from initbench.initializers.registry import InitContext, get, layer_records, register

if TYPE_CHECKING:
    from torch import nn

HE = "kaiming_normal"  # the branches' and other layers' start: N(0, gain^2 / fan_in), b = 0
ZERO = "zeros"


def branches(model: nn.Module, scheme: str) -> list[range]:
    """The layers of each residual branch of ``model``, first to last; an error in words if
    it has none."""
    # A network of one's own may keep only the interface (layers, activation, forward): no
    # wiring, so no branches these schemes know of.
    wiring = getattr(model, "wiring", ())
    found = [range(w.skip, i + 1) for i, w in enumerate(wiring) if w.skip is not None]
    if not found:
        raise refusal(scheme, type(model).__name__)
    return found


def refusal(scheme: str, network: str) -> UsageError:
    """The error for ``scheme`` on a network without residual branches (config.check_schemes
    says it before torch loads; ``branches`` of a network of one's own)."""
    return UsageError(f"Scheme {scheme!r} initializes residual networks: it starts each residual branch near "
                      f"zero, and this network ({network}) has no residual branches. Give "
                      "--network resmlp (e.g. --hidden 64x20: width 64, 20 blocks), or another scheme.")


def _fill(model: nn.Module, context: InitContext, scheme: str, zero: dict[int, str],
          scale: dict[int, float]) -> list[str]:
    """Every layer He-initialized (``HE``) and scaled by ``scale`` (1 where not given), but
    the layers ``zero`` names (with why), which start at 0; --bias applies to every layer.
    Returns each layer's provenance."""
    import torch

    he, zeros, sources = get(HE), get(ZERO), []
    for record, layer in zip(layer_records(model), model.layers):
        i = record.index
        drawn = (context.layer_generator(i), context.activation, context.bias, record,
                 context.layer_generator(i, "bias"))
        if i in zero:
            zeros.init_layer(layer, *drawn)
            sources.append(f"initialized by {scheme}: zero ({zero[i]})")
            continue
        he.init_layer(layer, *drawn)
        if i in scale:
            with torch.no_grad():
                layer.weight.mul_(scale[i])
            sources.append(f"initialized by {scheme}: {HE} x {scale[i]:.4g} (a residual branch)")
        else:
            sources.append(f"initialized by {scheme}: {HE}")
    return sources


@register("fixup", "paper", whole_model=True, residual_only=True)
def fixup(model: nn.Module, context: InitContext) -> list[str]:
    """Fixup: residual branches He-initialized and scaled down by the depth; each branch's last layer and the output layer zero.

    For L residual branches of m layers each, every branch layer but the last is
    He-initialized and multiplied by L^(-1/(2m-2)) (resmlp's blocks: m = 2, so
    L^(-1/2)); each branch's last layer and the output layer start at 0, as do all
    biases; the input layer is He-initialized. Fixup's scalar multipliers and biases
    are not added: the network's own biases (zero) stand for its scalar biases.

    Formula: branch layers W ~ N(0, gain^2/fan_in) * L^(-1/(2m-2)) (L branches of m layers: L^(-1/2) for m = 2); each branch's last layer W = 0; output layer W = 0; input layer W ~ N(0, gain^2/fan_in); b = 0
    Reference: Zhang, Dauphin & Ma 2019, "Fixup Initialization: Residual Learning Without Normalization"
    """
    found = branches(model, "fixup")
    zero = {b[-1]: "a residual branch's last layer" for b in found} | {len(model.layers) - 1: "the output layer"}
    scale = {i: len(found) ** (-1 / (2 * len(b) - 2)) for b in found for i in b[:-1]}
    return _fill(model, context, "fixup", zero, scale)


@register("skipinit", "paper", whole_model=True, residual_only=True)
def skipinit(model: nn.Module, context: InitContext) -> list[str]:
    """SkipInit: every layer He-initialized, each residual branch's last layer zero, so every block starts as the identity.

    SkipInit multiplies each residual branch by a learnable scalar that starts at 0
    (as zero-γ starts a branch's last batch-norm scale at 0); without scalars, its last
    layer's weights start at 0. Every other layer: kaiming_normal (N(0, gain^2/fan_in),
    gain from --activation), biases 0.

    Formula: W ~ N(0, gain^2/fan_in), b = 0 (kaiming_normal); each residual branch's last layer W = 0
    Reference: De & Smith 2020, "Batch Normalization Biases Residual Blocks Towards the Identity Function in Deep Networks"; Goyal et al. 2017 (zero-γ)
    """
    zero = {b[-1]: "a residual branch's last layer" for b in branches(model, "skipinit")}
    return _fill(model, context, "skipinit", zero, {})
