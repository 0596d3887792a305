"""The command line: thin Typer commands that parse options and delegate.

An InitbenchError becomes a one-paragraph message on stderr and exit status 1,
with no traceback unless --debug is given.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.text import Text

import initbench
from initbench.errors import InitbenchError, Terminated

app = typer.Typer(
    help="Train the same network from different initial weights on real FashionMNIST and compare how they learn.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

DebugOption = Annotated[bool, typer.Option("--debug", help="Show the full traceback on errors.")]


@contextmanager
def _errors_to_exit(debug: bool) -> Iterator[None]:
    err = Console(stderr=True)
    for signum in (signal.SIGTERM, signal.SIGHUP):  # a batch system's timeout, a closed terminal
        signal.signal(signum, _terminate)
    try:
        yield
    except InitbenchError as e:
        if debug:
            raise
        err.print(Text("Error: ", style="bold red") + Text(str(e)))
        raise typer.Exit(1) from None
    except KeyboardInterrupt as e:
        signum = getattr(e, "signum", signal.SIGINT)
        err.print(f"Interrupted by {signal.Signals(signum).name}: no result files were written.")
        raise typer.Exit(128 + signum) from None
    except Exception as e:
        if debug:
            raise
        err.print(Text("Unexpected error: ", style="bold red") + Text(f"{type(e).__name__}: {e}. "
                  "Run again with --debug for the traceback."))
        raise typer.Exit(1) from None


def _terminate(signum: int, frame: object) -> None:
    raise Terminated(signum)


def _version(value: bool) -> None:
    if value:
        print(f"initbench {initbench.__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                    help="Print the version and exit.")] = None,
) -> None:
    """Train the same network from different initial weights on real FashionMNIST and compare how they learn."""


def _opt(*names: str, help: str, default: str | None = None) -> typer.models.OptionInfo:
    return typer.Option(*names, help=help, show_default=default or False)


HiddenOption = Annotated[Optional[str], _opt(help='Hidden layer sizes, e.g. "256,128" or "256x10".',
                                             default="256,128")]
ActivationOption = Annotated[Optional[str], _opt(help="relu, tanh, sigmoid, gelu or selu.", default="relu")]
BiasOption = Annotated[Optional[str], _opt(
    help="Biases: as the scheme sets them, zeros, or default (PyTorch's U(-1/sqrt(n), 1/sqrt(n))).",
    default="scheme")]
# Paths are taken as text, so that an empty one reaches the parser (and is refused)
# rather than becoming the current folder.
DataDirOption = Annotated[Optional[str], _opt(help="Where FashionMNIST is kept.",
                                              default="$INITBENCH_DATA_DIR or ~/.cache/initbench")]
OverwriteOption = Annotated[Optional[bool], typer.Option(
    "--overwrite", help="Replace an --out folder that already holds files, whole.", show_default=False)]


@app.command()
def compare(
    schemes: Annotated[Optional[list[str]], typer.Argument(
        help="Initialization schemes to compare.", show_default="zeros ones uniform rule normal default")] = None,
    config: Annotated[Optional[Path], _opt("--config", "-c", help="TOML file setting any option below.")] = None,
    epochs: Annotated[Optional[int], _opt(help="Training epochs per model.", default="2")] = None,
    seeds: Annotated[Optional[int], _opt(help="Train each scheme with seeds 0..K-1.", default="1")] = None,
    seed_list: Annotated[Optional[str], _opt(help='Explicit seeds instead, e.g. "0,7,42".')] = None,
    lr: Annotated[Optional[float], _opt(help="Adam learning rate.", default="0.001")] = None,
    batch_size: Annotated[Optional[int], _opt(help="Images per batch.", default="100")] = None,
    hidden: HiddenOption = None,
    dropout: Annotated[Optional[float], _opt(help="Dropout after each hidden layer.", default="0.2")] = None,
    activation: ActivationOption = None,
    bias: BiasOption = None,
    train_samples: Annotated[Optional[int], _opt(help="Train on a seeded subset of N training images.",
                                                 default="all 48,000")] = None,
    split_seed: Annotated[Optional[int], _opt(help="Seed of the train/validation split.", default="0")] = None,
    plot_batches: Annotated[Optional[int], _opt(help="Batches shown in loss_curves.png.", default="100")] = None,
    track_stats: Annotated[Optional[bool], typer.Option(
        "--track-stats", help="Record per-layer statistics at init and after every epoch (layer_stats.csv).",
        show_default=False)] = None,
    lesson_eval: Annotated[Optional[bool], typer.Option(
        "--lesson-eval", help="Score validation and test accuracy with dropout still on, as the lesson's "
        "helper does (it never calls model.eval()); each model's masks come from its own seeded stream.",
        show_default=False)] = None,
    device: Annotated[Optional[str], _opt(help="auto, cpu, cuda, cuda:N or mps.", default="auto")] = None,
    engine: Annotated[Optional[str], _opt(
        help="batched: all models in one step; sequential: one plain model after another.",
        default="batched")] = None,
    max_batch_models: Annotated[Optional[int], _opt(
        help="At most this many models per batched step; more are trained in chunks.",
        default="what fits in half the free memory")] = None,
    data_dir: DataDirOption = None,
    out: Annotated[Optional[str], _opt("--out", "-o", help="Output folder.",
                                       default="results/<timestamp>-<schemes>")] = None,
    overwrite: OverwriteOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or messages; only the table.")] = False,
    debug: DebugOption = False,
) -> None:
    """Train the lesson's MLP once per scheme and seed; write accuracy.csv, runs.csv, losses.csv,
    loss curves and run.json, and print the validation-accuracy table."""
    with _errors_to_exit(debug):
        from initbench import config as config_mod, runner

        if seeds is not None and seed_list is not None:
            raise InitbenchError("Give either --seeds or --seed-list, not both.")
        options = {
            "schemes": schemes or None, "epochs": epochs, "seeds": seed_list if seeds is None else seeds,
            "lr": lr, "batch_size": batch_size, "hidden": hidden, "dropout": dropout,
            "activation": activation, "bias": bias, "track_stats": track_stats, "lesson_eval": lesson_eval,
            "train_samples": train_samples, "split_seed": split_seed, "plot_batches": plot_batches,
            "device": device, "engine": engine, "max_batch_models": max_batch_models,
            "data_dir": data_dir, "out": out, "overwrite": overwrite,
        }
        resolved = config_mod.resolve(config, {k: v for k, v in options.items() if v is not None})
        runner.compare(resolved, Console(), quiet=quiet)


@app.command()
def schemes(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of a table.")] = False,
) -> None:
    """List every initialization scheme and alias with its formula and reference."""
    from initbench import schemes as registry

    rows = registry.catalogue()
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        from initbench import report

        Console().print(report.schemes_table(rows))


@app.command()
def inspect(
    schemes: Annotated[Optional[list[str]], typer.Argument(
        help="Schemes to inspect.", show_default="zeros ones uniform rule normal default")] = None,
    hidden: HiddenOption = None,
    activation: ActivationOption = None,
    bias: BiasOption = None,
    seed: Annotated[int, typer.Option(help="Seed of the initial weights.", min=0)] = 0,
    data_dir: DataDirOption = None,
    out: Annotated[Optional[str], _opt("--out", "-o", help="Output folder.",
                                       default="results/<timestamp>-inspect")] = None,
    overwrite: OverwriteOption = None,
    debug: DebugOption = False,
) -> None:
    """Build each scheme's model, run one forward and backward pass on 500 real images, and
    report per layer: weights, outputs, dead units, gradient norm, distinct units; flag
    symmetry, vanishing and exploding; write inspect.csv, weights_hist.png, activations.png."""
    with _errors_to_exit(debug):
        from initbench import config as config_mod, runner

        options = {"schemes": schemes or None, "hidden": hidden, "activation": activation, "bias": bias,
                   "seeds": [seed], "data_dir": data_dir, "out": out, "overwrite": overwrite}
        runner.inspect(config_mod.resolve(None, {k: v for k, v in options.items() if v is not None}), Console())


@app.command()
def bench(
    seeds: Annotated[int, typer.Option(help="Batched engine: train the lesson's 6 schemes x this many seeds.",
                                       min=1)] = 3,
    repeats: Annotated[int, typer.Option(help="Repeat each measurement; the median is reported.", min=1)] = 3,
    whole_process: Annotated[bool, typer.Option(
        help="Also time whole processes: initbench compare against the lesson's pipeline (a few minutes).")] = True,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "cpu",
    data_dir: DataDirOption = None,
    out: Annotated[Optional[str], _opt("--out", "-o", help="JSON file for the results.",
                                       default="results/<timestamp>-bench.json")] = None,
    debug: DebugOption = False,
) -> None:
    """Time the batched and sequential engines, the lesson's DataLoader pipeline and the bare
    matrix products (the floor) per model-epoch; print the ratios and write them to JSON."""
    with _errors_to_exit(debug):
        from initbench import config as config_mod, runner

        paths = config_mod.resolve(None, {k: v for k, v in (("data_dir", data_dir), ("out", out)) if v is not None})
        runner.bench(seeds, repeats, whole_process, device, paths.data_dir, paths.out, Console())


def main() -> None:
    app()
