"""The network registry: one name -> one ``Network``, which builds the ``nn.Module``.

A network is a module with a builder, ``build(settings, inputs, classes) -> nn.Module``
(``NetworkSettings``, the dataset's values per image, the classes told apart), and a
line here that registers it. The module it builds keeps the interface schemes, engines
and statistics use: ``layers``, its weighted layers (``nn.Linear``), input first, output
last (schemes fill them, ``--freeze`` counts them, statistics are per layer);
``activation``, the function between them; and ``forward(x, masks=None)``, where
``masks`` are dropout masks, one per hidden width of the settings (``dropout.py``), to
multiply after each hidden layer's activation (a network without hidden layers has
none to apply). The builder is named as ``module:function`` and imported when a
network is built, so the registry, like the command line's checks, does not import torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from initbench import data
from initbench.choices import Registry

if TYPE_CHECKING:
    from torch import nn

    from initbench.jobs import NetworkSettings, TrainSettings


@dataclass(frozen=True)
class Network:
    """A network: how to build it, and how many weighted layers it has (known before torch loads)."""

    name: str  # as settings name it: network = "mlp"
    builder: str  # "module:function", the function build(settings, inputs, classes) -> nn.Module
    depth: Callable[[NetworkSettings], int]  # its weighted layers with these settings (checked before torch loads)

    def build(self, settings: NetworkSettings, inputs: int, classes: int) -> nn.Module:
        module, _, function = self.builder.partition(":")
        return getattr(importlib.import_module(module), function)(settings, inputs, classes)


NETWORKS: Registry[Network] = Registry("network")
register = NETWORKS.register
get = NETWORKS.find


register(Network("mlp", "initbench.models.mlp:build", depth=lambda s: len(s.hidden) + 1))


def build(settings: TrainSettings) -> nn.Module:
    """The network ``settings`` describe, for its dataset's inputs and classes, as its
    builder initialized it (a scheme fills it: ``streams.initialize``)."""
    return get(settings.network.network).build(settings.network, data.get(settings.data.dataset).input_size,
                                               len(settings.data.class_numbers))
