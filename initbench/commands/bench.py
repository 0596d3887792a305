"""``initbench bench``: the engines timed against the lesson's pipeline (``initbench.bench.timing``)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from initbench.bench import breakdown as parts, lab, timing as benchmark
from initbench.commands import stamped
from initbench.settings import default_data_dir
from initbench.storage import machine, runfolder
from initbench.training import engines
from initbench.views import progress


def bench(seeds: int, repeats: int, whole_process: bool, device_name: str, data_dir: Path | None,
          out: Path | None, activity: progress.Activity, scaling: tuple[int, ...] = (),
          train_samples: int | None = None, breakdown: bool = False,
          network: str = "mlp") -> tuple[dict[str, Any], Path]:
    """Run the benchmark (or with ``scaling``, the scaling curve at those model counts; with
    ``breakdown``, one batched model-epoch part by part; with ``network`` gpt, the lab's
    gpt step, ``bench.lab``), write its JSON (with the machine it ran on); its numbers, and
    where they were written."""
    started = datetime.now().astimezone()
    device = engines.resolve_device(device_name)
    out = out or stamped(started, "bench.json")
    runfolder.check_file_destination(out)
    config = benchmark.BenchConfig(seeds=seeds, repeats=repeats, whole_process=whole_process, device=device,
                                   data_dir=data_dir or default_data_dir(), train_samples=train_samples)
    with activity.running():
        if network == "gpt":
            numbers = lab.run(seeds, repeats, config.data_dir, activity)
        elif scaling:
            numbers = benchmark.scaling(scaling, repeats, device, activity)
        else:
            numbers = (parts.run if breakdown else benchmark.run)(config, activity)
    numbers |= machine.environment(device) | {"started": started.isoformat(timespec="seconds")}
    runfolder.write_files(out.parent, {out.name: runfolder.json_writer(numbers)})
    return numbers, out
