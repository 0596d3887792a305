"""``initbench inspect``: each scheme's network before any training, one forward and
backward pass on real images, per layer."""

from __future__ import annotations

import dataclasses
from datetime import datetime

import pandas as pd
import torch

from initbench import data, models
from initbench.commands import INSPECT_KEYS, stamped
from initbench.config import RunConfig
from initbench.jobs import Job
from initbench.settings import GPT_SETTINGS
from initbench.storage import machine, runfolder
from initbench.training import diagnostics, engines
from initbench.training.streams import start
from initbench.views import finished, pictures, progress


def inspect(config: RunConfig, activity: progress.Activity) -> finished.Inspection:
    """Build each scheme's model (seed ``config.seeds[0]``), run one forward and backward
    pass on real images, write its per-layer statistics, flags and pictures."""
    started = datetime.now().astimezone()
    engines.models_that_fit(config.train, torch.device("cpu"))  # as compare: a model too large refused before any
    with runfolder.run_folder(config.out or stamped(started, "inspect"), config.overwrite, activity.note) as folder, \
            activity.running():
        activity.stage(f"Loading {data.get(config.train.data.dataset).title}")  # the whole split: its statistics
        splits = data.load(config.data_dir, dataclasses.replace(config.train.data, train_samples=None), activity.stage)
        text = models.get(config.train.network.network).roles  # a gpt, on windows of a text
        x_stats, y_stats = (diagnostics.windows_batch(splits.x_val, config.train.network.context) if text
                            else diagnostics.stats_batch(splits.x_val, splits.y_val))
        rows, found, weights, signal = [], {}, {}, []
        activity.stage("Inspecting", total=len(config.schemes))
        for i, scheme in enumerate(config.schemes):
            activity.advance(0, f"Inspecting {scheme} ({i + 1} of {len(config.schemes)})")
            model, sources = start(Job(scheme, config.seeds[0], config.train), splits.x_train)
            if text:
                stats, blocks = diagnostics.gpt_stats(model, x_stats, y_stats)
                signal += [{"scheme": scheme, **row} for row in blocks]
            else:
                stats, blocks = diagnostics.layer_stats(model, x_stats, y_stats), []
            layer_rows = [row | {"source": source} for row, source in zip(stats, sources)]
            found[scheme] = diagnostics.flags(layer_rows) + diagnostics.signal_flags(blocks)
            weights[scheme] = [layer.weight.detach() for layer in model.layers]
            rows += [{"scheme": scheme, **row} for row in layer_rows]
            activity.advance(1)
        activity.stage("Drawing the pictures")
        frame = pd.DataFrame(rows)
        applies = {k: v for k, v in config.to_dict().items() if k in INSPECT_KEYS and (text or k not in GPT_SETTINGS)}
        runfolder.write_files(folder.staging, {
            **({finished.SIGNAL: runfolder.csv_writer(pd.DataFrame(signal)),
                "signal.png": lambda p: pictures.plot_signal(pd.DataFrame(signal), p)} if text else {}),
            "inspect.csv": runfolder.csv_writer(frame),
            "inspect.json": runfolder.json_writer({"config": applies | {"out": str(folder.path)}, "flags": found,
                                                   **machine.environment(torch.device("cpu"))}),
            "weights_hist.png": lambda p: pictures.plot_weight_histograms(weights, p),
            "activations.png": finished.activations_picture(frame, config.train.network.activation),
        })
    return finished.Inspection(folder.path, folder)
