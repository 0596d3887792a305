"""The command line: thin Typer commands that parse options and delegate.

Exit status: 0 done; 1 the work failed (missing or corrupted data, a full disk,
not enough memory) or a gate did, once the results are written (an --expect
condition of compare or sweep, diff --fail-on); 2 the command as typed cannot run (an unknown option, a bad
value, scheme name or config file, an output folder that is taken), found before
any work and before torch is imported; 128 + N stopped by signal N (130 Ctrl-C,
143 SIGTERM; 141 when the reader of the output went away, as in `| head`).
Errors are one paragraph on stderr, with no traceback unless --debug is given.
"""

from __future__ import annotations

import inspect
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn, Optional, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from initbench import api, config as configs, exporters, paths
from initbench.analysis.diff import FAIL_ON, FAIL_ON_HELP, line as diff_line
from initbench.errors import InitbenchError, UsageError, handle_stop_signals, interruption
from initbench.commands import COORD_PARAMETRIZATIONS, COORD_SEEDS, COORD_STEPS, COORD_WIDTHS
from initbench.settings import EVALUATE_RUN, GPT_SETTINGS, TRANSFER_RUN
from initbench.version import VERSION
from initbench.views import listings, progress, tables
from initbench.words import plural

app = typer.Typer(  # its help is _main's docstring
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # Click's plain help and errors: wrapped to the terminal, never cut
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)

F = TypeVar("F", bound=Callable[..., Any])
DebugOption = Annotated[bool, typer.Option("--debug", help="Show the full traceback on errors.")]


@contextmanager
def _errors_to_exit(debug: bool) -> Iterator[None]:
    err = Console(stderr=True)
    handle_stop_signals()  # again: a command may run without the console script (python -m, tests)
    try:
        yield
    except InitbenchError as e:
        if debug:
            raise
        err.print(Text("Error: ", style="bold red") + Text(str(e)))
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt as e:
        _interrupted(err, e)
    except BrokenPipeError:  # `initbench ... | head`: the reader has gone, as for any Unix tool
        _quiet_pipes()
        raise typer.Exit(128 + signal.SIGPIPE) from None
    except Exception as e:
        if (stop := interruption(e)) is not None:
            _interrupted(err, stop)
        if debug:
            raise
        err.print(Text("Unexpected error: ", style="bold red") + Text(f"{type(e).__name__}: {e}. "
                  "Run again with --debug for the traceback."))
        raise typer.Exit(1) from None


def _interrupted(err: Console, e: KeyboardInterrupt) -> NoReturn:
    signum = getattr(e, "signum", signal.SIGINT)
    kept = getattr(e, "kept", 0)  # a sweep's store keeps its committed jobs (set by commands.sweep._resumable)
    err.print(f"Interrupted by {signal.Signals(signum).name}: " + (
        f"the store in {e.folder} keeps {plural(kept, 'job')}; the same command resumes from them."
        if kept else "no result files were written."))
    raise typer.Exit(128 + signum) from None


def _quiet_pipes() -> None:
    """Point stdout and stderr at /dev/null, so that flushing them at exit does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        try:
            os.dup2(devnull, stream.fileno())
        except (OSError, ValueError):  # no file descriptor (a test's captured stream)
            pass


def _version(value: bool) -> None:
    if value:
        print(f"initbench {VERSION}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                    help="Print the version and exit.")] = None,
) -> None:
    """Train the same network from different initial weights on real data and compare how they learn.

    Exit status: 0 done, 1 the work failed (or --expect, diff --fail-on), 2 a bad command line or config file,
    130/143 interrupted (Ctrl-C/SIGTERM), 141 output pipe closed (| head).
    """


def _opt(*names: str, help: str, default: str | None = None, metavar: str | None = None) -> Any:
    """An option of a command's own that defaults to None, with its real default (in words)
    at the end of its help."""
    shown = "" if default is None else f" [default: {default}]"
    return typer.Option(*names, help=help + shown, show_default=False, metavar=metavar)


def _choice(choices: tuple[str, ...]) -> Any:
    """The type of an option that takes one of ``choices``: help and errors list them."""
    return Optional[Literal[choices]]


def _flag(name: str, help: str) -> Any:
    return typer.Option(name, help=help, show_default=False)


def _setting(key: str, help: str | None = None, shown: str | None = None, flags: tuple[str, ...] | None = None,
             metavar: str | None = None, cli: type | None = None, transfer: bool = False) -> tuple[str, Any]:
    """The option of a setting (``config.DECLARED``, or a transfer's), as its declaration says:
    flags, type, metavar, help and the default at its end. A command that says it otherwise
    gives ``help``, ``shown`` (its default in words), ``flags``, ``metavar`` or ``cli``; ``transfer``:
    the transfer's own setting of that name (freeze)."""
    d = (configs.TRANSFER_DECLARED if transfer or key not in configs.DECLARED
         else configs.DECLARED)[key]
    kind = cli or d.cli
    if key in configs.CHOICES and kind is str:
        annotation: Any = _choice(tuple(configs.CHOICES[key]))
    else:
        annotation = Optional[list[str]] if kind is list else Optional[kind]
    unsaid = d.shown is None and (d.default is None or d.default is False or d.default == ())  # a flag off, none
    default = shown if shown is not None else None if unsaid else d.default_text
    said = (help or configs.described(d)) + (f" [default: {default}]" if default else "")
    return key, Annotated[annotation, typer.Option(*(flags or d.flags), help=said, show_default=False,
                                                   metavar=metavar or d.metavar)]


def _takes(*options: str | tuple[str, Any], before: str = "fmt") -> Callable[[F], F]:
    """A command that takes these settings' options (a key, or ``_setting``'s pair where the
    command words one its own way), in its ``**settings``, listed before its option ``before``."""
    def take(command: F) -> F:
        signature = inspect.signature(command, eval_str=True)
        own = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
        added = [inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)
                 for key, annotation in (_setting(o) if isinstance(o, str) else o for o in options)]
        at = next(i for i, p in enumerate(own) if p.name == before)
        command.__signature__ = signature.replace(parameters=[  # type: ignore[attr-defined]
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own[:at] + added + own[at:]])
        return command
    return take


FORMAT_HELP = "How to print the table: table (boxes) in a terminal, markdown when piped, or json or csv."
FormatOption = Annotated[_choice(tuple(tables.FORMATS)), _opt(
    "--format", "-f", help=FORMAT_HELP, default="table in a terminal, markdown otherwise")]


def _gate_format(cases: str) -> Any:
    """--format of compare, sweep and diff (the commands CI gates on), which also write JUnit
    XML (initbench.views.junit): ``cases``, what its test cases are for this command."""
    return Annotated[_choice((*tables.FORMATS, "junit")), _opt(
        "--format", "-f", help=f"{FORMAT_HELP.removesuffix('.')}; or junit: JUnit XML for CI, {cases}.",
        default="table in a terminal, markdown otherwise")]


CompareFormatOption = _gate_format("a test case per --expect condition, failing where it failed (without "
                                   "--expect, a passing one per scheme, its accuracy as its output)")
SweepFormatOption = _gate_format("a test case per --expect condition in each grid cell, failing where it failed "
                                 "(without --expect, a passing one per scheme and cell); not with --dry-run")
DiffFormatOption = _gate_format("a test case per scheme (and cell), failing as --fail-on says; one in one folder "
                                "only is skipped, unless --fail-on change fails it")
SchemesArgument = Annotated[Optional[list[str]], typer.Argument(
    help=f"{configs.DECLARED['schemes'].help} [default: {configs.DECLARED['schemes'].default_text}]",
    show_default=False, metavar="SCHEME")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress or messages; only the table (and "
                                           "failed expectations).")]
EXECUTION = ("executor", *configs.EXECUTOR_DECLARED)  # the executor, and each executor's own settings
ExpectOption = _setting("expect")[1]


def _given(options: dict[str, Any]) -> dict[str, Any]:
    """The options given (None: not given, so that a config file or the default decides)."""
    return {k: v for k, v in options.items() if v is not None}


def _stdout_format(fmt: str | None) -> str:
    return fmt or ("table" if Console().is_terminal else "markdown")


def _show(result: Any, fmt: str | None, fail_on: str | None = None) -> None:
    """A result's tables on stdout (in json or csv, for scripts, one table: ``_show_listings``);
    in junit (compare, sweep, diff: ``fail_on`` its --fail-on), JUnit XML instead."""
    if fmt == "junit":
        from initbench.views import junit

        print(junit.of(result, fail_on))
        return
    _show_listings(result.listings(), fmt)


def _show_listings(listings: list[tables.Listing], fmt: str | None) -> None:
    """Tables on stdout; in json or csv, one table of the first's rows and those of the same
    columns (a best-lr table's rows, of other columns, are best_lr.csv's)."""
    if fmt in ("json", "csv") and len(listings) > 1:
        keys = [list(r) for r in listings[0].records[:1]]
        listings = [tables.Listing("", [], [r for listing in listings if [list(r) for r in listing.records[:1]] == keys
                                            for r in listing.records])]
    for listing in listings:
        tables.show(listing, _stdout_format(fmt), Console())


def _shown_where(result: Any, fmt: str | None) -> None:
    """A run's tables, then where its folder went, on stderr."""
    _show(result, fmt)
    folder, err = result.placed, Console(stderr=True)
    if folder.path != folder.requested:
        err.print(f"{folder.requested} was taken by another run meanwhile.", markup=False)
    where = f"{folder.link} (a link to {folder.path})" if folder.link and folder.path == folder.requested else None
    err.print(f"Results in {paths.shown(where or folder.path)}", markup=False)


def _judged(outcomes: list[Any], quiet: bool) -> bool:
    """Each expectation's line on stderr (a held one unless ``quiet``); whether any failed."""
    err = Console(stderr=True)
    for outcome in outcomes:
        if not outcome.held or not quiet:
            err.print(outcome.line, style=None if outcome.held else "red", markup=False, highlight=False,
                      soft_wrap=True)  # one line each, however narrow the terminal: what CI logs are grepped for
    return any(not outcome.held for outcome in outcomes)


# compare's options in the order its help lists them; a setting declared since comes after these.
COMPARE = ("epochs", "steps", "seeds", "seed_list", "lr", "optimizer", "momentum", "betas", "weight_decay", "batch_size",
           "dataset", "network", "hidden", *GPT_SETTINGS, "dropout", "activation", "parametrization", "base_width",
           "base_depth", "bias", "train_samples", "split_seed",
           "plot_batches", "track_stats", "classes", "head_init", "freeze", "unfreeze_after", "unfreeze_lr",
           "save_weights", "save_init", "lesson_eval", "device", "engine", "max_batch_models", *EXECUTION, "data_dir",
           "out", "overwrite", "expect")
SEED_LIST = Annotated[Optional[str], _opt(help='Explicit seeds instead, e.g. "0,7,42".', metavar="SEEDS")]


@app.command()
@_takes(*(("seed_list", SEED_LIST) if key == "seed_list" else key for key in COMPARE),
        *(key for key in configs.DECLARED if key not in (*COMPARE, "schemes")))
def compare(
    schemes: SchemesArgument = None,
    config: Annotated[Optional[Path], _opt("--config", "-c", help="TOML file setting any option below.",
                                           metavar="FILE")] = None,
    fmt: CompareFormatOption = None,
    quiet: QuietOption = False,
    debug: DebugOption = False,
    **settings: Any,
) -> None:
    """Train the network once per scheme and seed, and compare.

    Writes accuracy.csv, runs.csv, losses.csv, loss curves, run.json,
    config.toml and every model's weights (weights/*.safetensors) into the
    output folder, and prints the validation-accuracy table. Progress and
    messages go to stderr, the table to stdout. Each --expect condition is
    then judged (and recorded in run.json): one line each on stderr, and exit
    status 1 if any failed.
    """
    with _errors_to_exit(debug):
        seed_list = settings.pop("seed_list")
        if settings["seeds"] is not None and seed_list is not None:
            raise UsageError("Give either --seeds or --seed-list, not both.")
        settings["seeds"] = settings["seeds"] if seed_list is None else seed_list
        run = api.compare(schemes or None, config=config, progress=not quiet, **_given(settings))
        _shown_where(run, fmt)
        failed = _judged(run.expectations, quiet)
    if failed:  # the run is complete and in place: only the gate failed
        raise typer.Exit(1)


@app.command("report")
def report_(
    runs: Annotated[list[Path], typer.Argument(help="Run folders written by initbench compare, or a sweep folder.",
                                               show_default=False, metavar="DIR")],
    fmt: FormatOption = None,
    pictures: Annotated[bool, typer.Option(help="Redraw each run's pictures, and its report.html, in its folder. "
                                           "[default: on]", show_default=False)] = True,
    html: Annotated[Optional[Path], typer.Option(
        "--html", help="Also write one self-contained HTML page of them to FILE (of one folder: its report.html).",
        show_default=False, metavar="FILE")] = None,
    all_versions: Annotated[bool, typer.Option(
        "--all-versions", help="Of a sweep folder: show every version of each scheme the store keeps (its code "
        "before an edit, rows of earlier random streams) side by side, not only the current one.")] = False,
    debug: DebugOption = False,
) -> None:
    """Print finished runs' table and redraw their pictures.

    Nothing is trained: the table comes from each run's runs.csv, the pictures
    from its losses.csv (and layer_stats.csv). With several runs, their rows
    share one table, with a column naming the run.

    A sweep folder (of initbench sweep) is reported from its store, every job it
    holds: per grid cell and scheme, mean ± std over seeds and the paired
    difference to the cell's best scheme with its 95% interval and verdict;
    its CSVs and pictures are rewritten. Where the store keeps several
    versions of a scheme (its code edited between sweeps, or rows of earlier
    random streams), the current one is shown and the others named;
    --all-versions shows them side by side.

    Every run and sweep folder holds report.html, one file to share: the
    tables, every picture, the settings and the command that runs them again,
    and where it ran. --html FILE writes such a page of the folders given: of
    several runs, their one table, then each run's pictures and settings.
    """
    with _errors_to_exit(debug):
        from initbench.storage import runfolder
        from initbench.views import htmlpage

        if html is not None:
            htmlpage.check_destination(html)
        chosen = runfolder.reported(runs, pictures)
        err = Console(stderr=True)
        for why in chosen.skipped:
            err.print(f"Not reported: {why}.", style="dim", markup=False)
        from initbench.commands.report import report_runs

        found = report_runs(chosen, pictures, lambda text: err.print(text, style="dim", markup=False), html,
                            all_versions)
        _show_listings(found, fmt)


@app.command()
@_takes(_setting("out", help="The sweep's folder: run again, it resumes or extends.", shown="results/<CONFIG's name>"),
        *EXECUTION, before="dry_run")
def sweep(
    config: Annotated[Path, typer.Argument(help="TOML file: compare's settings, and a [grid] table of settings to "
                                           "vary, each with a list of values.", show_default=False,
                                           metavar="CONFIG")],
    set_: Annotated[Optional[list[str]], typer.Option(
        "--set", "-s", help="KEY=VALUE: fix a setting (taking it out of the grid), e.g. seeds=5; "
        "grid.KEY=[...] to vary one, e.g. 'grid.lr=[0.001, 0.01]'. Repeatable.", show_default=False,
        metavar="KEY=VALUE")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and the jobs, train nothing.")] = False,
    expect: ExpectOption = None,
    fmt: SweepFormatOption = None,
    quiet: QuietOption = False,
    debug: DebugOption = False,
    **settings: Any,
) -> None:
    """Train a grid of settings x schemes x seeds into a resumable store.

    Every combination of the [grid] settings (a cell) is trained for every
    scheme and seed. Jobs are keyed by what they are, and each finished chunk
    is committed to the folder's store.sqlite: running the same command again
    (after an interruption, or with more seeds or values) trains only the jobs
    the store lacks. Prints the plan (jobs, chunks, estimated time and memory)
    and then the report: per cell, each scheme against the cell's best, paired
    over seeds; writes runs.csv, cells.csv, pictures, sweep.toml and sweep.json.
    Each expectation (--expect, or expect in the config) is then judged in
    every cell and recorded in sweep.json: one line each on stderr, and exit
    status 1 if any failed in any cell.
    """
    with _errors_to_exit(debug):
        if dry_run and fmt == "junit":
            raise UsageError("--format junit writes a sweep's results, and --dry-run trains nothing: give --dry-run "
                             "another --format (table, markdown, json or csv).")
        result = api.sweep(config, sets=set_ or (), dry_run=dry_run, progress=not quiet,
                           **_given(settings | {"expect": expect or None}))
        _show(result, fmt)
        if not dry_run and not quiet:
            from initbench.commands.sweep import trained

            err = Console(stderr=True)
            err.print(trained(result))
            err.print(f"Results in {paths.shown(result.folder)}", markup=False)
        failed = not dry_run and _judged(result.expectations, quiet)
    if failed:  # the sweep's views are written: only the gate failed
        raise typer.Exit(1)


@app.command()
def diff(
    a: Annotated[Path, typer.Argument(help="The run or sweep folder compared against (before).", show_default=False,
                                      metavar="A")],
    b: Annotated[Path, typer.Argument(help="The run or sweep folder compared with it (after).", show_default=False,
                                      metavar="B")],
    fail_on: Annotated[_choice(FAIL_ON), typer.Option(
        "--fail-on", help="Exit 1 (once the table is printed) when " + "; or ".join(
            f"{k}: {v}" for k, v in FAIL_ON_HELP.items()) + ".", show_default=False)] = None,
    fmt: DiffFormatOption = None,
    debug: DebugOption = False,
) -> None:
    """Compare two run or sweep folders job by job: B against A (before and after a change).

    Each job of B is paired with A's of the same scheme, seed and settings;
    a setting that holds one value in each folder may differ (B's lr against
    A's), and settings that vary within them (a sweep's grid) name cells.
    Prints per scheme (per cell) both validation accuracies and the change
    B - A in percentage points over the paired seeds, with its 95% t-interval
    and a verdict: unchanged (every paired accuracy the same to the bit),
    better or worse (the interval excludes 0), indistinguishable; with one
    seed, better or worse by the point value. Schemes and seeds in one folder
    only are named. Reads the folders' stores; nothing is trained. Two folders
    that share no job are refused.
    """
    with _errors_to_exit(debug):
        found = api.diff(a, b)
        _show(found, fmt, fail_on)
        failing = found.failing(fail_on)
        err = Console(stderr=True)
        for row in failing:
            err.print(f"Diff failed (--fail-on {fail_on}): {diff_line(row, found.varied, found.task.validation)}", style="red",
                      markup=False, highlight=False, soft_wrap=True)
    if failing:
        raise typer.Exit(1)


@app.command()
def schemes(
    pattern: Annotated[Optional[str], typer.Argument(
        help="Only the schemes whose name, alias or summary holds this (orthogonal), ignoring case; or a "
             "glob of a whole name or alias (kaiming*, '*_uniform').", show_default=False, metavar="PATTERN")] = None,
    names: Annotated[bool, _flag("--names", "Print only the schemes' names, one a line (for scripts).")] = False,
    fmt: FormatOption = None,
) -> None:
    """List the schemes and their aliases, formulas and references.

    Built-in schemes first, then those installed packages add (entry points
    initbench.schemes: importing them runs their code), with their package.
    initbench schemes orthogonal lists the schemes that name it; --names, their
    names alone.
    """
    with _errors_to_exit(False):
        rows = api.catalogue(pattern)
        if names:
            print("\n".join(row["name"] for row in rows))
        else:
            tables.show(listings.schemes_listing(rows), _stdout_format(fmt), Console())


@app.command("inspect")
@_takes(*(key for key in api.INSPECT_OPTIONS if key not in ("data_dir", "out", "overwrite")), before="seed")
@_takes("data_dir", _setting("out", shown="results/<timestamp>-inspect"), "overwrite")
def inspect_(
    schemes: SchemesArgument = None,
    seed: Annotated[int, typer.Option(help="Seed of the initial weights. [default: 0]", min=0, show_default=False,
                                      metavar="SEED")] = 0,
    fmt: FormatOption = None,
    debug: DebugOption = False,
    **settings: Any,
) -> None:
    """Look at each scheme's network before any training.

    Builds each scheme's model, runs one forward and backward pass on 500 real
    images, and reports per layer: where its weights came from (initialized by a
    scheme, or loaded from a file by pretrained:FILE), weights, outputs, dead
    units, gradient norm, distinct units; flags symmetry, vanishing and
    exploding; writes inspect.csv, inspect.json, weights_hist.png and
    activations.png.
    """
    with _errors_to_exit(debug):
        found = api.inspect(schemes or None, seed=seed, progress=True, **_given(settings))
        _shown_where(found, fmt)


@app.command()
@_takes(_setting("seeds", shown=str(COORD_SEEDS)), "network", _setting("hidden", help="Hidden layers: their number "
        "(each takes every width of --widths), e.g. 256,128 for two.", shown="the network's"), "activation",
        "base_width", "base_depth", "bias", *GPT_SETTINGS, "optimizer",
        _setting("lr", help="Learning rate (under mup, at the base width)."),
        "momentum", "batch_size", "dataset", "classes", "split_seed",
        "train_samples", "data_dir", _setting("out", shown="results/<timestamp>-coordcheck"), "overwrite",
        before="fmt")
def coordcheck(
    scheme: Annotated[Optional[str], typer.Argument(help="The scheme that starts every network. [default: default]",
                                                    show_default=False, metavar="SCHEME")] = None,
    widths: Annotated[str, typer.Option(help="The widths every hidden layer takes in turn, rising. [default: "
                                        f"{','.join(map(str, COORD_WIDTHS))}]", metavar="WIDTHS",
                                        show_default=False)] = ",".join(map(str, COORD_WIDTHS)),
    parametrizations: Annotated[str, typer.Option(
        "--parametrization", help="The parametrizations compared. [default: " + ",".join(COORD_PARAMETRIZATIONS)
        + "]", metavar="NAMES", show_default=False)] = ",".join(COORD_PARAMETRIZATIONS),
    coord_steps: Annotated[int, typer.Option(help=f"Steps measured, the start included. [default: {COORD_STEPS}]",
                                             metavar="N", show_default=False)] = COORD_STEPS,
    fmt: FormatOption = None,
    debug: DebugOption = False,
    **settings: Any,
) -> None:
    """Check each layer's coordinates across width (μP's coordinate check).

    Trains the scheme's network at every width, under each parametrization, for
    its first steps, and reports how each layer's output and its change since
    the start grow with width (a slope per width doubling, with its interval
    over seeds); names the layers that grow. Writes coords.csv, slopes.csv,
    coordcheck.json and a picture per parametrization.
    """
    with _errors_to_exit(debug):
        found = api.coordcheck(scheme or "default", widths=widths, parametrizations=parametrizations,
                               steps=coord_steps, progress=True, **_given(settings))
        _shown_where(found, fmt)


def _task_b(key: str, help: str) -> tuple[str, Any]:
    """A setting of task B's run, with the transfer's default."""
    value = TRANSFER_RUN[key]
    return _setting(key, help=help, shown=",".join(map(str, value)) if isinstance(value, tuple) else str(value))


@app.command()
@_takes("source_dir", "dataset", _task_b("classes", "Task B's classes."), "task_a",
        _task_b("train_samples", "Task B's training images."), _task_b("epochs", "Task B's epochs."),
        _task_b("batch_size", "Task B's batch size."),
        _task_b("seeds", "Seeds 0..K-1 (task B is small: the answer is a distribution)."),
        _setting("schemes", help="Schemes trained from scratch on task B.", flags=("--scratch",), metavar="SCHEMES",
                 shown=",".join(TRANSFER_RUN["schemes"])),
        "source_scheme", "source_epochs", "network", "hidden", _setting("freeze", transfer=True),
        _setting("unfreeze_after", transfer=True), "device", "data_dir",
        _setting("out", help="Output folder (the sources go to DIR-source).", shown="results/<timestamp>-transfer"),
        "overwrite")
def transfer(
    config: Annotated[Optional[Path], _opt("--config", "-c", help="TOML file setting any option below, and any "
                                           "compare setting of task B (lr, dropout...).", metavar="FILE")] = None,
    fmt: FormatOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or messages; only the tables.")] = False,
    debug: DebugOption = False,
    **settings: Any,
) -> None:
    """Reuse a trained network on a new task, against training from scratch.

    Task A: source networks (one per seed) learn the dataset's other classes.
    Task B: on a few images of two classes, on the same batches for each seed,
    networks start from scratch under several schemes, or from the seed's
    source network with its hidden layers frozen, frozen for a few epochs then
    unfrozen (at a tenth of the learning rate), or all fine-tuned. Prints each
    start's accuracy and its paired difference to the best scratch scheme with
    a 95% confidence interval; writes what compare writes, plus transfer.csv
    and transfer.png.
    """
    with _errors_to_exit(debug):
        run = api.transfer(config=config, progress=not quiet, **_given(settings))
        if run.source is not None:  # the sources trained for it: a compare run of their own
            _shown_where(run.source, fmt)
        _shown_where(run, fmt)


@app.command()
@_takes(*(_setting(key, shown=EVALUATE_RUN[key]) if key in EVALUATE_RUN else key for key in api.EVALUATE_OPTIONS))
def evaluate(
    paths: Annotated[list[str], typer.Argument(
        help="Weights files (.safetensors from a run, or .pt/.pth state dicts) or run folders.", show_default=False,
        metavar="PATH")],
    fmt: FormatOption = None,
    debug: DebugOption = False,
    **settings: Any,
) -> None:
    """Score trained weights again, and check them against their record.

    A weights file initbench wrote says what it is: the model is rebuilt from
    it and scored on the validation and test images of the split it was trained
    on, and the accuracies must equal those recorded in training (to the last
    bit, on the same machine and device), or it is an error: these are not the
    weights that were trained. A run folder means every file in its weights/.

    A plain PyTorch state dict has no record: it is scored for the model that
    --hidden, --activation and --classes describe (these options apply only
    to such files). Its keys must be layers.<i>.weight and layers.<i>.bias
    (i from 0) or fc<i>.weight and fc<i>.bias (i from 1, the lesson's names),
    weights shaped [out, in]; it is read with torch.load(weights_only=True), so
    a file that would run code is refused and nothing in it runs.
    """
    with _errors_to_exit(debug):
        scored = api.evaluate(*paths, check=False, progress=True, **_given(settings))
        _show(scored, fmt)
        scored.check()


@app.command()
@_takes(*((e.name, Annotated[Optional[str], typer.Option(f"--{e.name}", help=e.help, show_default=False,
                                                        metavar=e.metavar)]) for e in exporters.EXPORTERS.values()),
        before="overwrite")
def export(
    folders: Annotated[list[str], typer.Argument(
        help="Run folders written by initbench compare or transfer, and sweep folders.", show_default=False,
        metavar="DIR")],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a LOGDIR that already holds files, whole.",
                                            show_default=False)] = False,
    fmt: FormatOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or messages; only the table.")] = False,
    debug: DebugOption = False,
    **formats: Any,
) -> None:
    """Write finished runs and sweeps as TensorBoard logs, for its Scalars and HParams dashboards.

    Nothing is trained: every job of each folder's store becomes one TensorBoard
    run, DIR's name/[cell/]scheme/seed-K (cell: a sweep's varied settings, as
    lr=0.01,hidden=64), with its training loss per batch (loss/train, step = the
    batch's number over the whole training), validation accuracy per epoch
    (accuracy/val), test accuracy and last epoch's mean loss at the last step
    (accuracy/test, loss/last_epoch), and its scheme, seed and settings as
    HParams, one row per job in the HParams table. LOGDIR is written whole or not
    at all; one that holds files (an earlier export) is refused unless
    --overwrite replaces it: give every folder to see together to one export.
    Then: tensorboard --logdir LOGDIR.
    """
    with _errors_to_exit(debug):
        given = {name: dest for name, dest in formats.items() if dest is not None}
        if not given:
            raise UsageError("Give the format to write and its folder: --tensorboard LOGDIR (the formats: "
                             f"{', '.join(f'--{name}' for name in exporters.EXPORTERS)}).")
        exported = api.export(*folders, overwrite=overwrite, progress=not quiet, **given)
        _shown_where(exported, fmt)


@app.command()
@_takes(_setting("network", help="mlp: the lesson's network, as above; gpt: instead, the lab's gpt on Shakespeare "
                 "(3 schemes x K seeds): tokens per second per model of the engine, a loop over nn.Modules and the "
                 "torch.func vmap recipe, beside the step's GEMM floor (on the CPU).", metavar="mlp|gpt"),
        _setting("train_samples", help="Time training on a seeded subset of N training images (a quick bench; per "
                 "model-epoch figures are then of N images)."), "data_dir",
        _setting("out", help="JSON file for the results.", metavar="FILE", shown="results/<timestamp>-bench.json"))
def bench(
    seeds: Annotated[int, typer.Option(help="Batched engine: train the lesson's 6 schemes x K seeds. [default: 3]",
                                       min=1, metavar="K", show_default=False)] = 3,
    repeats: Annotated[int, typer.Option(help="Repeat each measurement; the median is reported. [default: 3]",
                                         min=1, metavar="N", show_default=False)] = 3,
    whole_process: Annotated[bool, typer.Option(
        help="Also time whole processes: initbench compare against the lesson's pipeline (a few minutes). "
        "[default: on]", show_default=False)] = True,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps. [default: cpu]", metavar="DEVICE",
                                        show_default=False)] = "cpu",
    scaling: Annotated[Optional[str], _opt(
        help='Instead, time the batched step at each of these numbers of models, e.g. "6,60,600": '
        "model-epochs per second and memory.", metavar="COUNTS")] = None,
    breakdown: Annotated[bool, typer.Option(
        "--breakdown", help="Instead, profile one epoch of the batched engine (torch.profiler, on the CPU): its "
        "time part by part (products, Adam, dropout, activations, loss...), each beside its floor.",
        show_default=False)] = False,
    fmt: FormatOption = None,
    debug: DebugOption = False,
    **settings: Any,
) -> None:
    """Time the engines against the lesson's pipeline.

    Measures seconds per model-epoch of the batched and sequential engines, the
    lesson's DataLoader pipeline and the matrix products alone (the floor);
    prints the ratios and writes them to JSON.
    """
    with _errors_to_exit(debug):
        from initbench.storage import runfolder

        text = {"dataset": "shakespeare"} if settings.get("network") == "gpt" else {}  # the lab's gpt reads Shakespeare
        resolved = configs.resolve(None, _given(settings | {"device": device} | text))
        if resolved.out is not None:
            runfolder.check_file_destination(resolved.out)
        counts = configs.parse_counts(scaling, "--scaling") if scaling is not None else ()
        if counts and breakdown:
            raise UsageError("--scaling and --breakdown are two different measurements: give one of them.")
        network = resolved.train.network.network
        if network not in ("mlp", "gpt"):
            raise UsageError(f"--network {network!r}: bench times the lesson's mlp or the lab's gpt. Give --network "
                             "mlp or --network gpt.")
        if network == "gpt" and (counts or breakdown or device != "cpu"):
            raise UsageError("--network gpt times the lab's gpt on the CPU, alone: leave out --scaling, --breakdown "
                             "and --device.")
        from initbench.commands.bench import bench as run

        err = Console(stderr=True)
        numbers, written = run(seeds, repeats, whole_process, resolved.device, resolved.data_dir, resolved.out,
                               progress.Activity(err), counts, resolved.train.data.train_samples, breakdown, network)
        listing = (listings.lab_bench_listing if network == "gpt" else listings.scaling_listing if counts
                   else listings.breakdown_listing if breakdown else listings.bench_listing)
        tables.show(listing(numbers), _stdout_format(fmt), Console())
        err.print(f"Results in {paths.shown(written)}", markup=False)


# Click cuts a command's first sentence at the width left beside the commands' names
# ("...a resumable..."): given whole, as each command's short help, it wraps there instead.
for _command in app.registered_commands:
    _command.short_help = " ".join((_command.callback.__doc__ or "").split("\n\n")[0].split())


def main() -> None:
    app()
