"""The network registry: one name -> one ``Network``, which builds the ``nn.Module``.

A network is a module with a builder, ``build(settings, inputs, classes) -> nn.Module``
(``NetworkSettings``, the dataset's values per image, the classes told apart), and a
line here that registers it. The module it builds keeps the interface schemes, engines
and statistics use: ``layers``, its weighted layers (``nn.Linear``), input first, output
last (schemes fill them, ``--freeze`` counts them, statistics are per layer);
``activation``, the function between them; and ``forward(x, masks=None)``, where
``masks`` are dropout masks, one per hidden width of the settings (``dropout.py``), to
multiply after each hidden layer's activation (a network without hidden layers has
none to apply). A network's weighted layers may be convolutions (``nn.Conv2d``, cnn):
schemes fill their kernels by torch's fan rules, and ``hidden`` still names its fully
connected hidden widths, the ones masks apply to. An MLP-shaped network also says how each
layer's output is passed on (``wiring``: ``mlp.py``; resmlp's residual blocks), which the batched engine
and the residual schemes read. The builder is named as ``module:function`` and imported when a
network is built, so the registry, like the command line's checks, does not import torch.
The entry also says what the network supports: the engines that train it (``engines``: the
sequential one trains any; the batched one those it writes out) and the parametrizations
written for it (μP: mlp, resmlp, gpt), with what they read: each weighted layer's fan-in and
fan-out (``fans``: None where a dimension does not grow with width, as the inputs and the
classes), its residual branches (``branches``) and the layers μP starts at zero (``zeroed``).
A network of one's own::

    # linear.py
    from torch import nn

    class Linear(nn.Module):
        def __init__(self, inputs, classes):
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(inputs, classes)])
            self.activation = nn.Identity()

        def forward(self, x, masks=None):
            return self.layers[0](x)

    def build(settings, inputs, classes):
        return Linear(inputs, classes)

    # at start-up (a sitecustomize, a notebook's first cell)
    models.register(models.Network("linear", "linear:build", depth=lambda settings: 1))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from initbench import data
from initbench.choices import Registry, loaded
from initbench.errors import UsageError

if TYPE_CHECKING:
    from torch import nn

    from initbench.settings import NetworkSettings, TrainSettings


Fans = tuple[int | None, int | None]  # a weighted layer's fan-in and fan-out; None: does not grow with width


@dataclass(frozen=True)
class Network:
    """A network: how to build it, and how many weighted layers it has (known before torch loads)."""

    name: str  # as settings name it: network = "mlp"
    builder: str  # "module:function", the function build(settings, inputs, classes) -> nn.Module
    depth: Callable[[NetworkSettings], int]  # its weighted layers with these settings (checked before torch loads)
    # The outputs (units, or channels) of its layers below the output layer: what a weights file's record is checked by.
    widths: Callable[[NetworkSettings], tuple[int, ...]] = lambda s: s.hidden
    # Its own defaults of settings a run does not give (cnn: hidden 128; gpt: its blocks, batch and dropout).
    defaults: Mapping[str, Any] = field(default_factory=dict)
    check: Callable[[data.Dataset], None] = lambda dataset: None  # refuses, before torch loads, a dataset it can't take
    kernels: bool = False  # some of its layers are convolutions (a scheme for matrices only cannot fill them)
    residual: bool = False  # it has residual branches (what fixup and skipinit start)
    engines: tuple[str, ...] = ("sequential",)  # the engines that train it (training.engines), auto's choice first
    parametrizations: tuple[str, ...] = ("sp",)  # those written for it (training.parametrization)
    reads: str = "images"  # the data it takes: "images" (rows of values), or "text" (token windows: gpt)
    roles: bool = False  # its layers carry a transformer's tensor roles (Layer.part): what gpt2's rule reads
    # Each weighted layer's (fan_in, fan_out), None for a dimension that does not grow with width (the
    # inputs, the classes, a text's positions): what μP reads; unset, a chain (each layer reads the last).
    fans: Callable[[NetworkSettings], list[Fans]] | None = None
    # Its residual branches, each as its first and last weighted layer: what the depth parametrizations scale.
    branches: Callable[[NetworkSettings], list[tuple[int, int]]] = lambda s: []
    zeroed: Callable[[NetworkSettings], tuple[int, ...]] = lambda s: ()  # layers μP starts at zero (gpt's query, head)
    sequential_why: str = ""  # why no exact batched engine trains it, in words (said when auto chooses sequential)

    def build(self, settings: NetworkSettings, inputs: int, classes: int) -> nn.Module:
        return loaded(self.builder)(settings, inputs, classes)

    def layer_fans(self, settings: NetworkSettings) -> list[Fans]:
        """Each weighted layer's fan-in and fan-out (``fans``; a chain of ``widths`` by default)."""
        if self.fans is not None:
            return self.fans(settings)
        ends = [None, *self.widths(settings), None]
        return list(zip(ends[:-1], ends[1:]))


NETWORKS: Registry[Network] = Registry("network")
register = NETWORKS.register
get = NETWORKS.find


CNN_CHANNELS = (16, 32)  # the cnn's two convolutions' output channels (models/cnn.py)
MIN_IMAGE_SIDE = 4  # two 2x2 poolings of a smaller image would leave nothing
GPT_BLOCKS = (128,) * 4  # gpt's default: four blocks of width 128, which train in minutes on 2 cores


def square_images(dataset: data.Dataset) -> None:
    """Refuse a dataset a convolutional network cannot take: its images (rows of
    ``input_size`` values) must be square and single-channel, of side at least MIN_IMAGE_SIDE."""
    side = math.isqrt(dataset.input_size)
    if side * side != dataset.input_size or side < MIN_IMAGE_SIDE:
        raise UsageError(f"The cnn network takes square single-channel images of at least {MIN_IMAGE_SIDE}x"
                         f"{MIN_IMAGE_SIDE} pixels; {dataset.title}'s images have {dataset.input_size:,} values each, "
                         "which is not such an image. Train it with --network mlp.")


def residual_widths(s: NetworkSettings) -> tuple[int, ...]:
    """resmlp's layers' outputs below its output layer: one block per ``hidden`` size, the
    size its inner width, the residual stream as wide as the first (``64x20``: width 64, 20
    blocks): the input layer's, then each block's two (inner, stream)."""
    return (s.hidden[0], *(width for inner in s.hidden for width in (inner, s.hidden[0])))


def residual_blocks(s: NetworkSettings) -> list[tuple[int, int]]:
    """resmlp's blocks as their first and last layers (W1 and W2; the input layer is layer 0):
    the last is the residual branch's end, which adds the block's input."""
    return [(1 + 2 * k, 2 + 2 * k) for k in range(len(s.hidden))]


GPT_BLOCK = 6  # a gpt block's weighted layers: query, key, value, attention output, MLP in, MLP out


def gpt_fans(s: NetworkSettings) -> list[Fans]:
    """gpt's layers' fan-in and fan-out (``gpt_widths``' order): the embeddings read a token or a
    position (which do not grow with width), the head writes the vocabulary's logits."""
    d, inner = s.hidden[0], s.mlp_ratio * s.hidden[0]
    block = [(d, d)] * 4 + [(d, inner), (inner, d)]
    return [(None, d), (None, d), *block * len(s.hidden), *([] if s.tied else [(d, None)])]


def gpt_branches(s: NetworkSettings) -> list[tuple[int, int]]:
    """gpt's residual branches: per block, attention (query to its output) and the MLP (in to out)."""
    first = [2 + GPT_BLOCK * k for k in range(len(s.hidden))]
    return [branch for f in first for branch in ((f, f + 3), (f + 4, f + 5))]


def gpt_zeroed(s: NetworkSettings) -> tuple[int, ...]:
    """The layers gpt's μP starts at zero (Tensor Programs V, appendix D.2): each block's query
    (the attention starts uniform, whatever the width) and the head (the readout: its logits start
    at zero, and grow by training alone)."""
    return (*(2 + GPT_BLOCK * k for k in range(len(s.hidden))), *([] if s.tied else [gpt_depth(s) - 1]))


def gpt_depth(s: NetworkSettings) -> int:
    return 2 + GPT_BLOCK * len(s.hidden) + (not s.tied)


def gpt_widths(s: NetworkSettings) -> tuple[int, ...]:
    """gpt's layers' outputs below its output layer (the head; tied: the last MLP out): the
    embeddings', then each block's query, key, value, attention output, MLP in and MLP out."""
    d = s.hidden[0]
    outputs = (d, d, *(d, d, d, d, s.mlp_ratio * d, d) * len(s.hidden))
    return outputs[:-1] if s.tied else outputs


register(Network("mlp", "initbench.models.mlp:build", depth=lambda s: len(s.hidden) + 1,
                 engines=("batched", "sequential"), parametrizations=("sp", "mup")))
register(Network("cnn", "initbench.models.cnn:build", depth=lambda s: len(CNN_CHANNELS) + len(s.hidden) + 1,
                 widths=lambda s: (*CNN_CHANNELS, *s.hidden), defaults={"hidden": (128,)}, check=square_images,
                 kernels=True, sequential_why="a grouped convolution over several models rounds otherwise than one "
                 "model's"))
register(Network("resmlp", "initbench.models.resmlp:build", depth=lambda s: len(residual_widths(s)) + 1,
                 widths=residual_widths, residual=True, engines=("batched", "sequential"),
                 parametrizations=("sp", "mup", "depth-mup", "completep"), branches=residual_blocks))
register(Network("gpt", "initbench.models.gpt:build", depth=gpt_depth, widths=gpt_widths, fans=gpt_fans,
                 parametrizations=("sp", "mup", "depth-mup", "completep"), branches=gpt_branches, zeroed=gpt_zeroed,
                 defaults={"hidden": GPT_BLOCKS, "batch_size": 32, "dropout": 0.0}, reads="text", roles=True,
                 sequential_why="on the CPU a batched product of several models' matrices, and an element-wise exp, "
                 "GELU or rsqrt over several models, round otherwise than one model's; an exact batched step calls "
                 "each per model, which is the sequential engine's work"))


def depth(settings: NetworkSettings) -> int:
    """How many weighted layers the network ``settings`` describe has (what --freeze counts)."""
    return get(settings.network).depth(settings)


def build(settings: TrainSettings) -> nn.Module:
    """The network ``settings`` describe, for its dataset's inputs and classes, as its
    builder initialized it (a scheme fills it: ``streams.start``)."""
    return get(settings.network.network).build(settings.network, data.get(settings.data.dataset).input_size,
                                               len(data.class_numbers(settings.data)))
