"""``initbench coordcheck``: a coordinate check of one scheme's network at several widths,
under each parametrization asked for (``training.coordcheck`` measures, ``analysis.coords``
judges), into a run folder: coords.csv, slopes.csv, coordcheck.json and a picture per
parametrization."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pandas as pd
import torch

from initbench import data
from initbench.analysis import coords
from initbench.commands import stamped
from initbench.config import RunConfig
from initbench.storage import machine, runfolder
from initbench.training import coordcheck as measure
from initbench.views import finished, pictures, progress
from initbench.words import plural


def coordcheck(config: RunConfig, widths: Sequence[int], parametrizations: Sequence[str], steps: int,
               activity: progress.Activity) -> finished.CoordCheck:
    """Measure ``config``'s first scheme's network at every width (each hidden layer that wide)
    under each parametrization, ``config.seeds`` seeds, ``steps`` steps; write the folder."""
    started = datetime.now().astimezone()
    scheme, train = config.schemes[0], config.train
    with runfolder.run_folder(config.out or stamped(started, "coordcheck"), config.overwrite, activity.note) as folder, \
            activity.running():
        activity.stage(f"Loading {data.get(train.data.dataset).title}")
        splits = data.load(config.data_dir, train.data, activity.stage)
        batch = measure.measured_batch(splits, train)
        rows: list[dict] = []
        activity.stage(f"Measuring {plural(len(widths) * len(parametrizations) * len(config.seeds), 'model')} "
                       f"over {plural(steps, 'step')}", total=len(widths) * len(parametrizations))
        for p in parametrizations:
            for width in widths:
                activity.advance(0, f"Measuring {p} at width {width:,}")
                s = train.replace(hidden=(width,) * len(train.network.hidden), parametrization=p, dropout=0.0)
                rows += [{"parametrization": p, "width": width, **row}
                         for row in measure.coordinates(s, scheme, config.seeds, steps, splits, batch)]
                activity.advance(1)
        frame = pd.DataFrame(rows)
        judged = coords.slopes(frame)
        activity.stage("Drawing the pictures")
        runfolder.write_files(folder.staging, {
            "coords.csv": runfolder.csv_writer(frame),
            "slopes.csv": runfolder.csv_writer(judged),
            "coordcheck.json": runfolder.json_writer({
                "config": {"scheme": scheme, "widths": list(widths), "parametrizations": list(parametrizations),
                           "steps": steps} | {k: v for k, v in config.to_dict().items()
                                              if k not in ("schemes", "hidden", "parametrization", "out")},
                "growing": coords.growing(judged), **machine.environment(torch.device("cpu"))}),
            **{f"coordcheck_{p}.png": (lambda path, p=p: pictures.plot_coords(frame, p, path)) for p in parametrizations},
        })
    return finished.CoordCheck(folder.path, folder)
