"""What a run records of where it ran: versions, platform, device and the CPU's name."""

from __future__ import annotations

import importlib.metadata
import platform
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from initbench.version import VERSION

if TYPE_CHECKING:
    import torch



def environment(device: torch.device) -> dict[str, Any]:
    """The versions and hardware a run ran with."""
    import torch  # here alone: the frames are made, and report reads a run's, without torch

    if device.type == "cuda":
        device_name = torch.cuda.get_device_name(device)
    elif device.type == "mps":
        device_name = "Apple MPS"
    else:
        # The kernel path (AVX512, AVX2...) decides the speed and how products round.
        device_name = (f"{cpu_model()}, {torch.backends.cpu.get_cpu_capability()} "
                       f"({torch.get_num_threads()} threads)")
    return {
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torchvision": importlib.metadata.version("torchvision"),
            "initbench": VERSION,
            "numpy": np.__version__,
            "pandas": pd.__version__,
        },
        "platform": platform.platform(),
        "device": str(device),
        "device_name": device_name,
        "command": sys.argv,
    }


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
