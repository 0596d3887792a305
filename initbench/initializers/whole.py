"""Whole-model schemes: they see every layer at once, and say where each layer came from.

LSUV fits each layer on real images in turn; ``pretrained`` copies a trained
network's layers from a file and leaves to another scheme (``--head-init``) only
the layer the file cannot supply: an output layer for other classes. Nothing runs
after a scheme, so what it loaded is what training starts from.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from initbench import data
from initbench.initializers.registry import InitContext, bias_policy_, get, layer_records, register

if TYPE_CHECKING:
    from torch import Tensor, nn

    from initbench.models.mlp import MLP


@register("lsuv", "paper", data_dependent=True, whole_model=True)
def lsuv(model: MLP, context: InitContext) -> list[str]:
    """Layer-sequential unit variance: orthogonal, then each layer rescaled on a real batch.

    The only data-dependent scheme: after an orthogonal start, each layer's
    weights are divided by the std of its output on 500 training images until
    that variance is 1 +- 0.1 (at most 10 times), first layer first.

    Formula: W = Q (orthogonal), then W <- W / sqrt(Var(W x + b)) layer by layer on a batch; b = 0
    Reference: Mishkin & Matas 2016, "All you need is a good init"
    """
    import torch
    from torch.nn import init

    if context.batch is None:
        raise ValueError("lsuv needs a batch of training images (InitContext.batch)")
    for i, layer in enumerate(model.layers):  # each from its layer's stream: orthogonal's own start
        with torch.no_grad():
            init.orthogonal_(layer.weight, generator=context.layer_generator(i))
            layer.bias.zero_()
        bias_policy_(layer, context.bias, context.layer_generator(i, "bias"))
    lsuv_(model, context.batch)
    return ["initialized by lsuv"] * len(model.layers)


def lsuv_(model: nn.Module, x: Tensor, tolerance: float = 0.1, max_iterations: int = 10) -> None:
    """Layer after layer, rescale the weights until the layer's output on the batch ``x``
    has variance 1 (within ``tolerance``); the second step of LSUV. A layer's output is
    read as the model's own forward (no dropout) computes it, so any network's layers are
    fitted: an MLP's, a CNN's convolutions (their output maps) and Linear layers."""
    import torch

    with torch.no_grad():
        for layer in model.layers:
            for _ in range(max_iterations):
                var = _output(model, layer, x).var()
                if not torch.isfinite(var) or var == 0 or abs(var - 1) < tolerance:
                    break
                layer.weight.div_(var.sqrt())


def _output(model: nn.Module, layer: nn.Module, x: Tensor) -> Tensor:
    """``layer``'s output in ``model``'s forward pass on ``x``, caught by a forward hook."""
    seen: list[Tensor] = []
    hook = layer.register_forward_hook(lambda module, inputs, output: seen.append(output))
    try:
        model(x)
    finally:
        hook.remove()
    return seen[0]


@register("pretrained", "paper", whole_model=True)
def pretrained(model: MLP, context: InitContext, *, path: str, sha256: str) -> list[str]:
    """A trained network's weights: every layer copied from a file, the output layer too if it fits.

    The file is a weights file initbench wrote (a run folder's weights/) or a
    PyTorch state dict. Every layer is copied as it is, bit for bit; an output
    layer for other classes than the file's (--classes) is initialized by
    --head-init instead (PyTorch's default unless given). A hidden layer whose
    shape differs from the file's is an error. The scheme is keyed by the file's
    SHA-256, not its path.

    Formula: W, b = the file's, layer by layer; a new output layer: --head-init
    Reference: Yosinski et al. 2014, "How transferable are features in deep neural networks?"
    """
    from initbench.models import checkpoint

    weights = checkpoint.load(Path(path).expanduser(), expect_sha256=sha256)
    checkpoint.check_shapes(weights, checkpoint.shapes(model), head=False)
    head, file_head = model.layers[-1], weights.layers[-1]
    same_classes = weights.classes in (None, data.class_numbers(context.data))
    if head.weight.shape == file_head[0].shape and same_classes:
        model.load_layers_(weights.layers)
        return [f"loaded from {path}"] * len(model.layers)
    model.load_layers_(weights.layers[:-1])
    sources = [f"loaded from {path}"] * (len(model.layers) - 1)
    scheme = get(context.head_init)
    record = layer_records(model)[-1]
    scheme.init_layer(head, context.layer_generator(record.index), context.activation, context.bias, record,
                      context.layer_generator(record.index, "bias"))
    why = (f"is for other classes: {data.get(context.data.dataset).describe(weights.classes)}" if not same_classes
           else f"has {file_head[0].shape[0]} outputs")
    return [*sources, f"initialized by {scheme.name} (--head-init: the file's output layer {why})"]
