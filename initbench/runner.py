"""The commands' work: from a resolved configuration to result files and a table
(``compare``, ``inspect``, ``bench``)."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from rich.console import Console

from initbench import data, diagnostics, engine, pictures, report, results
from initbench.config import RunConfig
from initbench.jobs import Job, batches_per_epoch, initial_model
from initbench.model import MLP

MAX_NAME_CHARS = 120  # of the scheme names in a default folder name (file systems allow 255 bytes)


def _stamped(now: datetime, name: str) -> Path:
    """results/<timestamp>-<name>, e.g. results/20261123-181500-zeros-ones-rule."""
    return Path("results") / f"{now:%Y%m%d-%H%M%S}-{name}"


def _logger(console: Console, quiet: bool = False):
    return (lambda _: None) if quiet else (lambda msg: console.print(msg, style="dim"))


def compare(config: RunConfig, console: Console, quiet: bool = False) -> Path:
    """Train every (scheme, seed) job of ``config``, write the run's files, print its table."""
    started = datetime.now().astimezone()
    device = engine.resolve_device(config.device)
    log = _logger(console, quiet)
    names = "-".join(config.schemes)
    names = names if len(names) <= MAX_NAME_CHARS else names[:MAX_NAME_CHARS].rsplit("-", 1)[0] + "-etc"
    with results.run_folder(config.out or _stamped(started, names), config.overwrite) as folder:
        out = folder.staging
        splits = data.load(config.data_dir, config.split_seed, config.train_samples, log).to(device)
        jobs = config.jobs()
        n_batches = batches_per_epoch(len(splits.y_train), config.train.batch_size)
        log(f"Training {report.plural(len(jobs), 'model')} ({report.plural(len(config.schemes), 'scheme')} x "
            f"{report.plural(len(config.seeds), 'seed')}) on {len(splits.y_train)} images, "
            f"{report.plural(config.train.epochs, 'epoch')}, {config.engine} engine on {device}")
        stats: list[dict] = []
        if config.track_stats:
            x_stats, y_stats = diagnostics.stats_batch(splits.x_val, splits.y_val)

            def track(job: Job, epoch: int, model: MLP) -> None:
                stats.extend({"scheme": job.scheme, "seed": job.seed, "epoch": epoch, **row}
                             for row in diagnostics.layer_stats(model, x_stats, y_stats))

        tic = time.perf_counter()
        show_bar = not quiet and console.is_terminal
        with report.progress(len(jobs) * config.train.epochs * n_batches, "Training", console, show_bar) as advance:
            trained = engine.train(jobs, splits, device, config.engine, config.max_batch_models, advance,
                                   track if config.track_stats else None)
        train_seconds = time.perf_counter() - tic

        runs = results.runs_frame(trained)
        summary = results.summary_frame(runs)
        losses = results.losses_frame(trained)
        run_info = {
            "config": config.to_dict() | {"out": str(folder.path)},
            **results.environment(device),
            "data": splits.sizes(),
            "started": started.isoformat(timespec="seconds"),
            "finished": datetime.now().astimezone().isoformat(timespec="seconds"),
            "train_seconds": round(train_seconds, 3),
        }
        if stats:
            stats_frame = pd.DataFrame(stats)
            extra = {"layer_stats.csv": results.csv_writer(stats_frame),
                     "layer_stats.png": lambda p: pictures.plot_layer_profile(
                         stats_frame, p, "Per layer at init (dashed) and after the last epoch (solid)")}
        else:
            extra = {}
        results.write_files(out, {
            "accuracy.csv": results.csv_writer(summary),
            "runs.csv": results.csv_writer(runs),
            "losses.csv": results.csv_writer(losses),
            "loss_curves.png": lambda p: pictures.plot_losses(losses, p, config.plot_batches),
            "loss_full.png": lambda p: pictures.plot_losses(losses, p, None),
            "run.json": results.json_writer(run_info),
            "config.toml": lambda p: p.write_text(config.to_toml()),
            **extra,
        })
    console.print(report.table(summary, config.train.epochs, config.train.eval_dropout))
    _print_where(console, folder)
    return folder.path


def _print_where(console: Console, folder: results.RunFolder) -> None:
    if folder.path != folder.requested:
        console.print(f"{folder.requested} was taken by another run meanwhile.")
    console.print(f"Results in {folder.path}")


def bench(seeds: int, repeats: int, whole_process: bool, device_name: str, data_dir: Path | None,
          out: Path | None, console: Console) -> dict[str, Any]:
    """Run the benchmark, print its table, write its JSON (with the machine it ran on)."""
    from initbench import bench as benchmark

    started = datetime.now().astimezone()
    device = engine.resolve_device(device_name)
    out = out or _stamped(started, "bench.json")
    results.check_file_destination(out)
    config = benchmark.BenchConfig(seeds=seeds, repeats=repeats, whole_process=whole_process, device=device,
                                   data_dir=data_dir or data.default_data_dir())
    numbers = benchmark.run(config, _logger(console))
    numbers |= results.environment(device) | {"started": started.isoformat(timespec="seconds")}
    results.write_files(out.parent, {out.name: results.json_writer(numbers)})
    console.print(report.bench_table(numbers))
    console.print(f"Results in {out}")
    return numbers


def inspect(config: RunConfig, console: Console) -> Path:
    """Build each scheme's model (seed ``config.seeds[0]``), run one forward and backward
    pass on real images, print and write its per-layer statistics, flags and pictures."""
    started = datetime.now().astimezone()
    with results.run_folder(config.out or _stamped(started, "inspect"), config.overwrite) as folder:
        out = folder.staging
        splits = data.load(config.data_dir, config.split_seed, log=_logger(console))
        x_stats, y_stats = diagnostics.stats_batch(splits.x_val, splits.y_val)
        rows, found, weights = [], {}, {}
        for scheme in config.schemes:
            model = initial_model(Job(scheme, config.seeds[0], config.train), splits.x_train)
            layer_rows = diagnostics.layer_stats(model, x_stats, y_stats)
            found[scheme] = diagnostics.flags(layer_rows)
            weights[scheme] = [layer.weight.detach() for layer in model.layers]
            rows += [{"scheme": scheme, **row} for row in layer_rows]
            console.print(report.inspect_table(scheme, layer_rows, found[scheme]))
        frame = pd.DataFrame(rows)
        results.write_files(out, {
            "inspect.csv": results.csv_writer(frame),
            "inspect.json": results.json_writer({"config": config.to_dict() | {"out": str(folder.path)}, "flags": found,
                                                 **results.environment(torch.device("cpu"))}),
            "weights_hist.png": lambda p: pictures.plot_weight_histograms(weights, p),
            "activations.png": lambda p: pictures.plot_layer_profile(
                frame, p, f"At init, on {diagnostics.STATS_BATCH} validation images ({config.train.activation})"),
        })
    _print_where(console, folder)
    return folder.path
