"""What this machine's memory can hold, read without torch: the command line bounds a
weights file's tensors by it before loading anything, and the batched engine sizes its
chunks of models by it."""

from __future__ import annotations

from pathlib import Path

MEMORY_SHARE = 0.5  # of the free memory that a chunk of models (or a weights file read for one) may take
UNKNOWN = 4 << 30  # bytes assumed free where the system does not say (no /proc/meminfo)


def available() -> int:
    """Bytes of this machine's memory available to a new allocation (Linux's MemAvailable)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return UNKNOWN


def budget() -> int:
    """Bytes that one chunk of models may take in this machine's memory."""
    return int(MEMORY_SHARE * available())
