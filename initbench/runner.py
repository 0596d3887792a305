"""The commands' work: from a resolved configuration to result files and a table
(``compare``, ``inspect``, ``bench``)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from rich.console import Console

from initbench import (
    checkpoint,
    data,
    diagnostics,
    engines,
    executors,
    paths,
    pictures,
    report,
    results,
    runfolder,
    store,
    sweep,
)
from initbench.config import RunConfig, TransferConfig
from initbench.errors import InitbenchError, UsageError
from initbench.jobs import Job, TrainSettings, batches_per_epoch
from initbench.model import MLP
from initbench.streams import initialize

MAX_NAME_CHARS = 120  # of the scheme names in a default folder name (file systems allow 255 bytes)


def _stamped(now: datetime, name: str) -> Path:
    """results/<timestamp>-<name>, e.g. results/20261123-181500-zeros-ones-rule."""
    return Path("results") / f"{now:%Y%m%d-%H%M%S}-{name}"


def compare(config: RunConfig, fmt: str = "table", quiet: bool = False) -> Path:
    """Train every (scheme, seed) job of ``config``, write the run's files, print its table
    on stdout in ``fmt`` (progress and messages go to stderr)."""
    names = "-".join(config.schemes)
    names = names if len(names) <= MAX_NAME_CHARS else names[:MAX_NAME_CHARS].rsplit("-", 1)[0] + "-etc"
    return _train_run(config, {job: job.scheme for job in config.jobs()}, names, fmt, quiet)


Finish = Callable[[pd.DataFrame, pd.DataFrame], tuple[dict[str, Callable[[Path], object]], report.Listing]]


def _train_run(config: RunConfig, jobs: dict[Job, str], name: str, fmt: str, quiet: bool,
               finish: Finish | None = None, kind: str = "scheme") -> Path:
    """Train ``jobs`` (each with the name its rows get: its scheme, or a transfer strategy)
    on ``config``'s data with its engine into the run folder's store, write the views of the
    store (CSVs, pictures) and the weights, print its table. ``finish`` (runs, summary) adds
    files and gives the table to print instead of the accuracy table."""
    started = datetime.now().astimezone()
    err = Console(stderr=True)
    activity = report.Activity(err, quiet)
    train = config.train
    with runfolder.run_folder(config.out or _stamped(started, name), config.overwrite, activity.note) as folder, \
            activity.running(), executors.connect(config, activity) as executor:
        device = executor.data_device
        activity.stage("Loading FashionMNIST")
        splits = data.load(config.data_dir, train.split_seed, train.train_samples, train.classes,
                           activity.stage).to(device)
        n_batches = batches_per_epoch(len(splits.y_train), train.batch_size)
        of_classes = "" if train.classes == data.ALL_CLASSES else f" of classes {data.describe(train.classes)}"
        activity.note(f"Training {report.plural(len(jobs), 'model')} ({report.plural(len(set(jobs.values())), kind)}"
                      f" x {report.plural(len(config.seeds), 'seed')}) on {len(splits.y_train):,} images"
                      f"{of_classes}, {report.plural(train.epochs, 'epoch')} of {n_batches:,} batches, "
                      f"{executor.description}")
        epochs = max(job.settings.epochs for job in jobs)
        activity.stage("Training", total=len(jobs) * epochs * n_batches)
        keys = [store.key(job) for job in jobs]
        with store.open_store(folder.staging, "run") as st:
            tally = sweep.train_into(st, jobs, sweep.chunked(list(jobs), config, executor), executor, config,
                                     activity, folder.staging,
                                     results.weights_names(jobs) if config.save_weights else None,
                                     {train.data: splits})
            # Everything below is a view of the store.
            stored = st.results(keys)
        activity.stage("Writing the results and drawing the pictures")
        names = {r.job: jobs[job] for r, job in zip(stored, jobs)}
        runs = results.runs_frame(stored, names)
        summary = results.summary_frame(runs)
        losses = results.losses_frame(stored, names)
        environment = results.environment(device) | {"executor": executor.description}
        run_info = {
            "config": config.to_dict() | {"out": str(folder.path)},
            **environment,
            "data": splits.sizes(),
            "data_identity": data.identity(train.split_seed, train.train_samples, train.classes),
            "started": started.isoformat(timespec="seconds"),
            "finished": datetime.now().astimezone().isoformat(timespec="seconds"),
            "train_seconds": round(tally.train_seconds, 3),
        }
        stats_frame = pd.DataFrame([{"scheme": names[r.job], "seed": r.job.seed, **row}
                                    for r in stored for row in r.layer_stats or []])
        stats_files = ({"layer_stats.csv": runfolder.csv_writer(stats_frame),
                        "layer_stats.png": _stats_picture(stats_frame)} if config.track_stats else {})
        extra, listing = finish(runs, summary) if finish else (
            {}, report.accuracy_listing(summary, train.epochs, train.eval_dropout))
        runfolder.write_files(folder.staging, {
            "accuracy.csv": runfolder.csv_writer(summary),
            "runs.csv": runfolder.csv_writer(runs),
            "losses.csv": runfolder.csv_writer(losses),
            **_loss_pictures(losses, config.plot_batches, n_batches, len(train.classes)),
            "run.json": runfolder.json_writer(run_info),
            "config.toml": lambda p: p.write_text(config.to_toml()),
            **stats_files,
            **extra,
        })
    report.show(listing, fmt, Console())
    _print_where(err, folder)
    return folder.path


def _loss_pictures(losses: pd.DataFrame, plot_batches: int, n_batches: int,
                   classes: int) -> dict[str, Callable[[Path], object]]:
    return {"loss_curves.png": lambda p: pictures.plot_losses(losses, p, plot_batches, n_batches, classes),
            "loss_full.png": lambda p: pictures.plot_losses(losses, p, None, n_batches, classes)}


def _stats_picture(stats: pd.DataFrame) -> Callable[[Path], object]:
    title = "Per layer at init (dashed) and after the last epoch (solid)"
    return lambda p: pictures.plot_layer_profile(stats, p, title)


def _print_where(console: Console, folder: runfolder.RunFolder) -> None:
    if folder.path != folder.requested:
        console.print(f"{folder.requested} was taken by another run meanwhile.", markup=False)
    where = f"{folder.link} (a link to {folder.path})" if folder.link and folder.path == folder.requested else None
    console.print(f"Results in {where or folder.path}", markup=False)


def report_runs(chosen: runfolder.Reported, fmt: str, redraw: bool) -> None:
    """Print the table of finished compare runs (one table; a column names each row's run
    when there are several) and, with ``redraw``, draw their pictures again in their folders.
    A sweep folder is reported alone, from its store. ``chosen`` is checked before torch
    loads (``runfolder.reported``); what it skipped is said on stderr."""
    err = Console(stderr=True)
    for why in chosen.skipped:
        err.print(f"Not reported: {why}.", style="dim", markup=False)
    if chosen.sweep is not None:
        sweep.report_folder(chosen.sweep, fmt, redraw)
        return
    finished = [(run.folder, run.info, _runs_table(run.folder)) for run in chosen.runs]  # all read before drawing
    frames = []
    for folder, info, runs in finished:
        summary = results.summary_frame(runs)
        if len(finished) > 1:
            summary.insert(0, "run", str(folder))
        frames.append(summary)
    configs = [info["config"] for _, info, _ in finished]
    epochs = {c["epochs"] for c in configs}
    eval_dropout = {c.get("lesson_eval", False) and c["dropout"] > 0 for c in configs}
    summary = pd.concat(frames, ignore_index=True)
    listing = report.accuracy_listing(summary, max(epochs), eval_dropout == {True})
    if len(epochs) > 1:
        listing.title = "Runs trained for different numbers of epochs"
    if redraw:
        for folder, info, _ in finished:
            config = info["config"]
            n_batches = batches_per_epoch(info["data"]["train"], config["batch_size"])
            files = _loss_pictures(_read_csv(folder / "losses.csv"), config["plot_batches"], n_batches,
                                   len(config.get("classes", data.ALL_CLASSES)))
            if os.path.lexists(folder / "layer_stats.csv"):
                files["layer_stats.png"] = _stats_picture(_read_csv(folder / "layer_stats.csv"))
            runfolder.write_files(folder, files)
            err.print(f"Pictures redrawn in {folder}: {', '.join(files)}", style="dim", markup=False)
    report.show(listing, fmt, Console())


RUNS_COLUMNS = {"scheme": False, "seed": True, "val_acc": True, "test_acc": True, "last_batch_loss": True,
                "last_epoch_loss": True, "diverged": False}  # runs.csv's columns report reads: numeric?


def _runs_table(folder: Path) -> pd.DataFrame:
    """A finished run's runs.csv, with the columns report reads, numbers where numbers belong."""
    runs = _read_csv(folder / "runs.csv")
    lacking = sorted(set(RUNS_COLUMNS) - set(runs.columns))
    not_numbers = [c for c, numeric in RUNS_COLUMNS.items()
                   if numeric and c in runs.columns and not pd.api.types.is_numeric_dtype(runs[c])]
    if lacking or not_numbers:
        wrong = ([f"it lacks {', '.join(lacking)}"] if lacking else []) + (
            [f"its {', '.join(not_numbers)} are not numbers"] if not_numbers else [])
        raise InitbenchError(f"{folder / 'runs.csv'} is not laid out as this initbench writes it ({'; '.join(wrong)}): "
                             "it was written by another version of initbench, or edited. Run the run again to report "
                             "on it.")
    return runs


def _read_csv(path: Path) -> pd.DataFrame:
    why = paths.problem(path, "file")  # never opened otherwise: reading a FIFO would wait for ever
    if why is not None:
        raise UsageError(f"{path} {why}: initbench reads only the regular files it wrote. Run the run again.")
    try:
        return pd.read_csv(path)
    except (OSError, ValueError) as e:  # pandas' parser errors are ValueErrors
        raise InitbenchError(f"Cannot read {path}: {e}.") from None


def bench(seeds: int, repeats: int, whole_process: bool, device_name: str, data_dir: Path | None,
          out: Path | None, fmt: str = "table", scaling: tuple[int, ...] = ()) -> dict[str, Any]:
    """Run the benchmark (or with ``scaling``, the scaling curve at those model counts),
    print its table, write its JSON (with the machine it ran on)."""
    from initbench import bench as benchmark

    started = datetime.now().astimezone()
    err = Console(stderr=True)
    device = engines.resolve_device(device_name)
    out = out or _stamped(started, "bench.json")
    runfolder.check_file_destination(out)
    config = benchmark.BenchConfig(seeds=seeds, repeats=repeats, whole_process=whole_process, device=device,
                                   data_dir=data_dir or data.default_data_dir())
    activity = report.Activity(err)
    with activity.running():
        numbers = benchmark.scaling(scaling, repeats, device, activity) if scaling else benchmark.run(config, activity)
    numbers |= results.environment(device) | {"started": started.isoformat(timespec="seconds")}
    runfolder.write_files(out.parent, {out.name: runfolder.json_writer(numbers)})
    listing = report.scaling_listing(numbers) if scaling else report.bench_listing(numbers)
    report.show(listing, fmt, Console())
    err.print(f"Results in {out}")
    return numbers


INSPECT_KEYS = ("schemes", "seeds", "hidden", "activation", "bias", "classes", "head_init", "split_seed", "data_dir")


def inspect(config: RunConfig, fmt: str = "table") -> Path:
    """Build each scheme's model (seed ``config.seeds[0]``), run one forward and backward
    pass on real images, print and write its per-layer statistics, flags and pictures."""
    started = datetime.now().astimezone()
    err = Console(stderr=True)
    activity = report.Activity(err)
    engines.models_that_fit(config.train, torch.device("cpu"))  # as compare: a model too large refused before any
    with runfolder.run_folder(config.out or _stamped(started, "inspect"), config.overwrite, activity.note) as folder, \
            activity.running():
        activity.stage("Loading FashionMNIST")
        splits = data.load(config.data_dir, config.train.split_seed, classes=config.train.classes,
                           log=activity.stage)
        x_stats, y_stats = diagnostics.stats_batch(splits.x_val, splits.y_val)
        rows, found, weights, listings = [], {}, {}, []
        activity.stage("Inspecting", total=len(config.schemes))
        for i, scheme in enumerate(config.schemes):
            activity.advance(0, f"Inspecting {scheme} ({i + 1} of {len(config.schemes)})")
            model, sources = initialize(Job(scheme, config.seeds[0], config.train), splits.x_train)
            layer_rows = [row | {"source": source}
                          for row, source in zip(diagnostics.layer_stats(model, x_stats, y_stats), sources)]
            found[scheme] = diagnostics.flags(layer_rows)
            weights[scheme] = [layer.weight.detach() for layer in model.layers]
            rows += [{"scheme": scheme, **row} for row in layer_rows]
            listings.append(report.inspect_listing(scheme, layer_rows, found[scheme]))
            activity.advance(1)
        activity.stage("Drawing the pictures")
        frame = pd.DataFrame(rows)
        applies = {k: v for k, v in config.to_dict().items() if k in INSPECT_KEYS}
        runfolder.write_files(folder.staging, {
            "inspect.csv": runfolder.csv_writer(frame),
            "inspect.json": runfolder.json_writer({"config": applies | {"out": str(folder.path)}, "flags": found,
                                                   **results.environment(torch.device("cpu"))}),
            "weights_hist.png": lambda p: pictures.plot_weight_histograms(weights, p),
            "activations.png": lambda p: pictures.plot_layer_profile(
                frame, p, f"At init, on {diagnostics.STATS_BATCH} validation images ({config.train.activation})"),
        })
    stdout = Console()
    if fmt in ("json", "csv"):  # one table of every scheme's rows, for scripts
        report.show(report.Listing("", [], [r for listing in listings for r in listing.records]), fmt, stdout)
    else:
        for listing in listings:
            report.show(listing, fmt, stdout)
    _print_where(err, folder)
    return folder.path


def evaluate(files: list[tuple[Path, bool]], config: RunConfig, fmt: str) -> None:
    """Score every weights file named (``runfolder.weights_files``: each with whether it is in
    a run folder's weights/) on the split it was trained on, print the table, and fail if
    any file's scores differ from those recorded when it was trained. ``config`` describes
    plain state dicts (hidden, activation, classes, split seed), and gives the device and
    data folder."""
    device = engines.resolve_device(config.device)
    err = Console(stderr=True)
    activity = report.Activity(err)
    rows, wrong, loaded_splits = [], [], {}
    with activity.running():
        activity.stage("Scoring", total=len(files))
        for i, (path, in_run) in enumerate(files):
            activity.advance(0, f"Scoring {path.name} ({i + 1} of {len(files)})")
            weights = checkpoint.load(path)
            origin = store.check_weights_file(path, weights.sha256)  # before scoring: an edit may score the same
            if origin.problem:
                wrong.append(f"{path}: {origin.problem}")
            job, engine, recorded, why_not = _evaluated_job(weights, config, in_run, device)
            model = MLP(job.settings.hidden, job.settings.activation, len(job.settings.classes))
            checkpoint.check_shapes(weights, model.sizes, from_record=weights.meta is not None)
            model.load_layers_(weights.layers)
            key = (job.settings.classes,
                   weights.meta["data"]["split_seed"] if weights.meta else config.train.split_seed,
                   weights.meta["data"]["train_samples"] if weights.meta else None)
            if key not in loaded_splits:
                activity.stage("Loading FashionMNIST")
                loaded_splits[key] = data.load(config.data_dir, key[1], key[2], key[0], activity.stage).to(device)
                activity.stage("Scoring", total=len(files))
                activity.advance(i)
            val, test = engines.score(job, model, loaded_splits[key], device, engine)
            if recorded is None:
                check = why_not
            elif (val, test) == recorded:
                check = "reproduced"
            else:
                check = "DIFFERENT"
                wrong.append(f"{path}: recorded val {recorded[0]:.4%} and test {recorded[1]:.4%} in training, "
                             f"scored {val:.4%} and {test:.4%} now" + (f" ({why_not})" if why_not else ""))
            rows.append({"file": str(path), "scheme": job.scheme, "seed": job.seed if weights.meta else None,
                         "classes": data.describe(job.settings.classes), "val_acc": val, "test_acc": test,
                         "recorded_val_acc": recorded[0] if recorded else None,
                         "recorded_test_acc": recorded[1] if recorded else None, "check": check,
                         "integrity": origin.checked})
            activity.advance(1)
    report.show(report.evaluate_listing(rows), fmt, Console())
    if wrong:
        raise InitbenchError("These are not the weights that were trained: " + "; ".join(wrong) + ". The files were "
                             "changed after training, or belong to another run. Train them again (initbench compare) "
                             "or take them from the run folder that wrote them.")


def _evaluated_job(weights: checkpoint.Weights, config: RunConfig, in_run: bool,
                   device: torch.device) -> tuple[Job, str, tuple[float, float] | None, str]:
    """The job the weights came from (rebuilt from their record, or described by ``config``
    for a plain state dict), the engine that trained them, the accuracies recorded in
    training (None when there is nothing to compare), and why not or what to know."""
    meta = weights.meta
    if meta is None:
        return Job(weights.path.name, 0, config.train), "batched", None, "no record (a plain state dict)"
    if meta["data"]["files_sha256"] != data.SHA256:
        raise InitbenchError(
            f"{weights.path} was trained on other data than this initbench verifies as FashionMNIST (the SHA-256 "
            "of the data files in its record differ), so the split it was trained on cannot be rebuilt and its "
            "accuracy cannot be checked. Evaluate it with the initbench version and data that trained it.")
    if in_run and meta.get("file") != weights.path.name:
        raise InitbenchError(f"These are not the weights that were trained: {weights.path} holds the weights of "
                             f"{meta['job']['scheme']}, seed {meta['job']['seed']} (written as {meta.get('file')}). "
                             "Files in this run folder were swapped or renamed: take them from the run that wrote "
                             "them.")
    settings = {k: tuple(v) if isinstance(v, list) else v for k, v in meta["job"]["settings"].items()}
    job = Job(meta["job"]["scheme"], meta["job"]["seed"], TrainSettings(**settings))
    trained = meta["trained_with"]
    if meta["weights"] != "final":
        return job, trained["engine"], None, "initial weights: no accuracy recorded"
    if job.settings.eval_dropout:
        return job, trained["engine"], None, "trained with --lesson-eval: recorded with random dropout masks"
    note = "" if torch.device(trained["device"]).type == device.type else (
        f"trained on {trained['device']}, scored on {device}: rounding differs between devices")
    return job, trained["engine"], (meta["accuracy"]["val"], meta["accuracy"]["test"]), note


def transfer(config: TransferConfig, fmt: str, quiet: bool = False) -> Path:
    """The transfer experiment: source networks trained on task A (a compare run of their
    own, or ``config.source_dir``), then on task B, for every seed on the same batches,
    networks from scratch under each scheme and from the seed's source network frozen,
    frozen then unfrozen, and fine-tuned whole; each against the best scratch scheme."""
    run, frozen = config.run, config.frozen_layers
    source_scheme, task_a = config.source_scheme, config.task_a
    if config.source_dir is None:
        source_dir = compare(config.source_run(), fmt, quiet)
    else:  # task A is what the given sources learned
        source_dir = config.source_dir
        source_scheme, task_a = runfolder.source_run(source_dir, run.train.classes)
    names = results.weights_names({Job(source_scheme, seed, run.train): source_scheme for seed in run.seeds})
    sources = {job.seed: source_dir / "weights" / name for job, name in names.items()}
    missing = [str(path) for path in sources.values() if not path.is_file()]
    if missing:
        raise UsageError(f"The source run {source_dir} has no weights for seeds of this run: {', '.join(missing)}. "
                         "Give as many --seeds as the source run has, or train the sources here (no --source).")
    strategies = {
        f"pretrained, {report.plural(frozen, 'layer')} frozen": {"freeze": frozen},
        f"pretrained, frozen {report.plural(config.unfreeze_after, 'epoch')}": {
            "freeze": frozen, "unfreeze_after": config.unfreeze_after},
        "pretrained, fine-tuned": {},
    }
    jobs = {job: job.scheme for job in run.jobs()}
    for seed, path in sources.items():
        for label, changes in strategies.items():
            jobs[Job(f"pretrained:{path}", seed, dataclasses.replace(run.train, **changes))] = label

    def finish(runs: pd.DataFrame, summary: pd.DataFrame) -> tuple[dict[str, Callable[[Path], object]],
                                                                  report.Listing]:
        best = summary[summary["scheme"].isin(run.schemes)].iloc[0]["scheme"]
        comparison = results.paired_frame(runs, best)
        others = len(data.CLASS_NAMES) - len(run.train.classes)
        task_a_named = f"the other {others} classes" if len(task_a) == others else data.describe(task_a)
        title = (f"Task B: {' vs '.join(data.CLASS_NAMES[c].lower() for c in run.train.classes)}, "
                 f"{run.train.train_samples or 'all'} training images, {report.plural(run.train.epochs, 'epoch')}; "
                 f"sources trained on {task_a_named}")
        return ({"transfer.csv": runfolder.csv_writer(comparison),
                 "transfer.png": lambda p: pictures.plot_transfer(runs, comparison, p, title)},
                report.transfer_listing(comparison, title))

    return _train_run(run, jobs, "transfer", fmt, quiet, finish, kind="start")

