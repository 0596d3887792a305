"""The commands' work, one module per command: each takes a resolved configuration and
a progress display (``views.progress.Activity``), writes its files, and returns what it made as
an object of ``initbench.views.finished``. Nothing here prints: the API returns the object, the
command line renders it.

This package's own module keeps to what the command line may import before torch loads.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from initbench.settings import GPT_SETTINGS

# The settings inspect uses (and records in inspect.json): the network and the data, no training.
INSPECT_KEYS = ("schemes", "seeds", "network", "hidden", "activation", "parametrization", "base_width", "base_depth",
                "bias",
                "dataset", "classes", "head_init", "split_seed", "data_dir", *GPT_SETTINGS)


# A coordinate check's own defaults (``initbench coordcheck``): the widths every hidden layer takes
# (64 to 1,024, a factor 2 apart), the parametrizations compared, the steps measured (0: the start),
# its seeds, and the settings it takes besides.
COORD_WIDTHS = (64, 128, 256, 512, 1024)
COORD_PARAMETRIZATIONS = ("sp", "mup")
COORD_STEPS = 3
COORD_SEEDS = 5
COORD_KEYS = ("network", "hidden", "activation", "base_width", "base_depth", "bias", "dataset", "classes", "split_seed",
              "train_samples", "optimizer", "lr", "momentum", "batch_size", "seeds", "data_dir", "out", "overwrite",
              *GPT_SETTINGS)


def stamped(now: datetime, name: str) -> Path:
    """results/<timestamp>-<name>, e.g. results/20261123-181500-zeros-ones-rule: a run's default folder."""
    return Path("results") / f"{now:%Y%m%d-%H%M%S}-{name}"
