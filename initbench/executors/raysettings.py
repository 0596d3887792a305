"""The Ray executor's settings (--executor ray): the cluster's address and what each task
holds, their parsers, and the checks of them against the run's device. Neither Ray nor
torch is imported here: the command line checks these before any work."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from initbench.errors import UsageError, require
from initbench.parsing import number, optional, whole
from initbench.settings import setting

RAY_ADDRESS = "RAY_ADDRESS"  # Ray's own variable


def parse_address(value: Any) -> str:
    """auto (the cluster started on this machine), local (a new runtime), HOST:PORT or ray://HOST:PORT."""
    match = re.fullmatch(r"auto|local|(?:ray://)?[\w.-]+:(\d+)", value) if isinstance(value, str) else None
    if match is None:
        raise ValueError("must be auto, local, HOST:PORT or ray://HOST:PORT")
    if match[1] is not None and not 0 < int(match[1]) < 65536:
        raise ValueError("the port must be from 1 to 65535")
    return value


@dataclass(frozen=True)
class RaySettings:
    """Read with --executor ray; declared as every setting is (``settings.setting``)."""

    ray_address: str | None = setting(  # None: Ray's choice ($RAY_ADDRESS, a cluster started here, or a new one)
        None, "With --executor ray: auto (the cluster started here with ray start), HOST:PORT, ray://HOST:PORT or "
        "local (a new runtime for this run).", parse=optional(parse_address),
        shown="$RAY_ADDRESS, else a cluster started here, else a new runtime", metavar="ADDRESS", cli=str)
    # At most one GPU a task (a chunk trains on one device); a fraction lets tasks share one.
    gpus_per_task: float | None = setting(
        None, "With --executor ray: GPUs per task, at most 1; a fraction (0.25) lets tasks share a GPU.",
        parse=optional(number(0.0, 1.0 + 1e-12, "from 0 to 1 (a task trains on one GPU; 0.25 lets four share one)")),
        shown="1 when training on CUDA, else 0", metavar="G", cli=float)
    cpus_per_task: int = setting(1, "With --executor ray: CPU cores (threads) per task.", parse=whole(1), metavar="N")


def ray_address(option: str | None) -> tuple[str | None, str]:
    """The address a Ray run uses and where it came from (``--ray-address`` or ``RAY_ADDRESS``),
    as ``ray.init`` decides it: the environment variable stands in for no address and for auto.
    None: Ray's choice, the cluster ``ray start`` recorded on this machine, else a new runtime."""
    variable = os.environ.get(RAY_ADDRESS)
    if variable and option in (None, "auto"):
        return variable, RAY_ADDRESS
    return option, "--ray-address"


def check(settings: RaySettings, device: str) -> None:
    """Ray is installed, and the device and GPUs are ones a cluster's tasks can use."""
    require("ray", "--executor ray needs Ray, which is not installed here. Install it with "
            "pip install 'initbench[ray]' (on every machine of the cluster), or use --executor local.")
    address, source = ray_address(settings.ray_address)
    if source == RAY_ADDRESS:  # --ray-address's values are parsed where they are read; the variable's here
        try:
            parse_address(address)
        except ValueError as e:
            raise UsageError(f"The environment variable RAY_ADDRESS ({address!r}), the Ray cluster a run joins when "
                             f"--ray-address is not given (or is auto): {e}. Set it to the cluster's address "
                             "(HEAD:6379, or ray://HEAD:10001; not the dashboard's http:// address), or unset it "
                             "to start a Ray runtime for this run.") from None
    if re.fullmatch(r"cuda:\d+", device):
        raise UsageError(f"--device {device}: on Ray, each task is given its GPU by Ray. Use --device cuda "
                         "(or auto) with --gpus-per-task.")
    if settings.gpus_per_task and device in ("cpu", "mps"):
        raise UsageError(f"--gpus-per-task {settings.gpus_per_task:g} with --device {device}: the tasks would "
                         "hold GPUs and not use them. Use --device cuda (or auto), or leave --gpus-per-task out.")
    if settings.gpus_per_task == 0 and device == "cuda":
        raise UsageError("--device cuda with --gpus-per-task 0: a task without a GPU cannot train on CUDA. Give "
                         "--gpus-per-task (e.g. 1, or 0.25 to share a GPU among four tasks).")
