"""What a command made, as objects that read its folder.

Each object is a view of the files (and the store) a run wrote, as ``initbench
report`` reads them, so a finished run can be reopened later, in another process:
``open(path)``. It shows as its table: HTML in a notebook, Markdown elsewhere
(``str``), the same table the command line prints. ``.table`` holds that table's
numbers as printed: accuracies in percent (``_pct`` columns) to 2 decimals, losses to
3 (``in_percent``); the frames it is made from (``.summary``, ``.comparison``,
``.rows``, ``.cells``) and the CSV frames (``.runs``, ``.losses``) keep the fractions the
files hold, unrounded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from initbench import data, paths, tasks
from initbench.analysis import diff as diffs, expect, frames, rates
from initbench.analysis.cells import cells_frame
from initbench.errors import InitbenchError, UsageError
from initbench.jobs import batches_per_epoch
from initbench.settings import DataSettings, OptimSettings
from initbench.storage import runfolder, store
from initbench.views import htmlpage, listings, pictures, sweep, tables
from initbench.words import plural

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Drawing = Callable[[Path | None], "Figure"]  # draws a picture, and saves it where a path is given
SAMPLES = "samples.csv"  # a text's run: what each trained model wrote
SIGNAL = "signal.csv"  # a gpt's inspection: its residual stream at init, block by block
RUNS_COLUMNS = {"scheme": False, "seed": True, "last_batch_loss": True, "last_epoch_loss": True,
                "diverged": False}  # runs.csv's columns a view reads (numeric?), and its task's two metrics


class Shown:
    """A result shown as its tables: HTML in a notebook, Markdown elsewhere."""

    def listings(self) -> list[tables.Listing]:
        raise NotImplementedError

    def __str__(self) -> str:
        return "\n\n".join(tables.markdown(listing) for listing in self.listings())

    def _repr_markdown_(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        return "\n".join(tables.html(listing) for listing in self.listings())


@dataclass(eq=False)
class Diff(diffs.Pairing, Shown):
    """B against A, job by job (``initbench diff``), shown as its table."""

    def listings(self) -> list[tables.Listing]:
        return [listings.diff(self, self.task)]


def open(path: str | os.PathLike[str],  # noqa: A001  (initbench.open)
         all_versions: bool = False) -> Run | TransferRun | Inspection | CoordCheck | Sweep:
    """The finished run in folder ``path``, of whichever command wrote it (a sweep's with
    ``all_versions``: every version of each scheme its store keeps, side by side)."""
    folder = Path(path)
    if paths.problem(folder, "folder") is None:
        if store.kind(folder) == "sweep":
            return Sweep(folder, all_versions=all_versions)
        if os.path.lexists(folder / "inspect.json"):
            return Inspection(folder)
        if os.path.lexists(folder / "coordcheck.json"):
            return CoordCheck(folder)
        if os.path.lexists(folder / "transfer.csv"):
            return TransferRun(folder)
    return Run(folder)  # or the error that says why it is not one


@dataclass(eq=False)
class Run(Shown):
    """A finished compare run, read from its folder: ``Run(path)`` reopens one.

    ``table``: per scheme, best validation accuracy first (accuracies in percent);
    ``summary``: the same as accuracy.csv holds it; ``runs``: per model (runs.csv);
    ``losses``: per batch (losses.csv); ``layer_stats``: per layer at init and after
    each epoch (layer_stats.csv, None unless trained with ``track_stats=True``);
    ``config``: the settings it ran with; ``figures()``: its pictures."""

    folder: Path
    placed: runfolder.RunFolder | None = field(default=None, repr=False)  # where it was asked to go, when made now
    info: dict[str, Any] = field(init=False, repr=False)  # run.json
    command = "compare"  # the command that made it

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        self.info = runfolder.finished_run(self.folder).info

    @property
    def config(self) -> dict[str, Any]:
        return self.info["config"]

    @cached_property
    def runs(self) -> pd.DataFrame:
        return runs_table(self.folder, self.task)

    @cached_property
    def losses(self) -> pd.DataFrame:
        return read_csv(self.folder / "losses.csv")

    @cached_property
    def layer_stats(self) -> pd.DataFrame | None:
        path = self.folder / "layer_stats.csv"
        return read_csv(path) if os.path.lexists(path) else None

    @cached_property
    def summary(self) -> pd.DataFrame:
        return frames.summary_frame(self.runs, self.task)

    @property
    def table(self) -> pd.DataFrame:
        return in_percent(self.summary.set_index("scheme"), self.task)

    @property
    def steps(self) -> int | None:
        """The training steps of an epoch on a text (None on images: an epoch is a pass over them)."""
        return self.config.get("steps", OptimSettings.steps) if self.task is tasks.NEXT_TOKEN else None

    @property
    def batches(self) -> int:
        """Its batches (steps) per epoch."""
        return self.steps or batches_per_epoch(self.info["data"]["train"], self.config["batch_size"])

    @cached_property
    def samples(self) -> pd.DataFrame | None:
        """What each trained model wrote (samples.csv: a text's runs), None otherwise."""
        path = self.folder / SAMPLES
        if not os.path.lexists(path):
            return None
        samples = read_csv(path)  # a diverged model's sample is empty, which pandas reads as NaN
        return samples.assign(sample=samples["sample"].astype(object).where(samples["sample"].notna(), ""))

    @property
    def expectations(self) -> list[expect.Outcome]:
        """Each condition it was asked to meet (``expect``) as judged when it was written
        (``.held``, the numbers, ``str()``: its line); empty when none was given."""
        return [expect.Outcome.from_record(r) for r in self.info.get("expectations", [])]

    @property
    def eval_dropout(self) -> bool:
        """Whether it was scored with dropout on (--lesson-eval), which its table says."""
        return self.config.get("lesson_eval", False) and self.config["dropout"] > 0

    @property
    def task(self) -> tasks.Task:
        """What its models learned, and are scored by (its dataset's task)."""
        return data.task(self.config.get("dataset", DataSettings.dataset))

    @cached_property
    def best_rates(self) -> pd.DataFrame | None:
        """Each scheme's best learning rate of the run's grid (best_lr.csv), None without a grid."""
        path = self.folder / rates.BEST_FILE
        return read_csv(path) if os.path.lexists(path) else None

    def listings(self) -> list[tables.Listing]:
        found = [listings.accuracy_listing(self.summary, self.config["epochs"], self.task, self.eval_dropout,
                                           self.steps, len(self.config["classes"]))]
        if self.best_rates is not None:
            found.append(listings.best_rate_listing(self.best_rates, ["scheme"], self.task))
        return found

    def drawings(self) -> dict[str, Drawing]:
        """Its pictures, by file name."""
        config = self.config
        drawn = loss_pictures(self.losses, config["plot_batches"], self.batches, len(config["classes"]), self.task)
        if self.layer_stats is not None:
            drawn["layer_stats.png"] = stats_picture(self.layer_stats)
        return drawn

    def figures(self) -> dict[str, Figure]:
        """Its pictures as matplotlib Figures, by name (loss_curves, loss_full...), drawn from its files."""
        return {name.removesuffix(".png"): draw(None) for name, draw in self.drawings().items()}

    def page_part(self, name: str | None = None) -> htmlpage.Part:
        """Its share of an HTML page (its report.html): ``name``, what the page calls it (its folder's name)."""
        shown = self.listings()
        if self.samples is not None:
            shown.append(listings.samples_listing(self.samples))
        return htmlpage.Part(self.folder, name or htmlpage.folder_name(self.folder), self.command, self.info,
                             shown, self.drawings())


@dataclass(eq=False)
class TransferRun(Run):
    """A finished transfer run: a compare run whose rows are task B's starts, and
    ``table`` each start's paired difference to the best scratch scheme (percentage
    points). ``source``: the compare run of the source networks, when trained for it."""

    source: Run | None = field(default=None, repr=False)
    command = "transfer"

    @cached_property
    def comparison(self) -> pd.DataFrame:
        return read_csv(self.folder / "transfer.csv")

    @property
    def table(self) -> pd.DataFrame:
        return in_percent(self.comparison.set_index("scheme"))

    @property
    def title(self) -> str:
        config = self.config
        return transfer_title(config.get("dataset", DataSettings.dataset), config["classes"], config["train_samples"],
                              config["epochs"], self.info["transfer"]["task_a"])

    def listings(self) -> list[tables.Listing]:
        return [listings.transfer_listing(self.comparison, self.title, self.task)]

    def drawings(self) -> dict[str, Drawing]:
        return super().drawings() | {"transfer.png": lambda p: pictures.plot_transfer(self.runs, self.comparison, p,
                                                                                      self.title, self.task)}


def transfer_title(dataset: str, classes: list[int] | tuple[int, ...], train_samples: int | None, epochs: int,
                   task_a: list[int] | tuple[int, ...]) -> str:
    """A transfer table's title: task B (classes of ``dataset``), and what the sources learned."""
    names = data.get(dataset).class_names
    others = len(names) - len(classes)
    task_a_named = f"the other {others} classes" if len(task_a) == others else data.get(dataset).describe(tuple(task_a))
    return (f"Task B: {' vs '.join(names[c].lower() for c in classes)}, "
            f"{train_samples or 'all'} training images, {plural(epochs, 'epoch')}; "
            f"sources trained on {task_a_named}")


@dataclass(eq=False)
class Inspection(Shown):
    """A finished inspect run: ``table`` per scheme and layer at init (inspect.csv), with
    where each layer's weights came from; ``flags`` per scheme, what was found wrong."""

    folder: Path
    placed: runfolder.RunFolder | None = field(default=None, repr=False)
    info: dict[str, Any] = field(init=False, repr=False)  # inspect.json

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        self.info = _read_json(self.folder / "inspect.json")

    @cached_property
    def table(self) -> pd.DataFrame:
        return read_csv(self.folder / "inspect.csv")

    @property
    def flags(self) -> dict[str, list[str]]:
        return self.info["flags"]

    @cached_property
    def signal(self) -> pd.DataFrame | None:
        """A gpt's signal propagation at init, per scheme and block (signal.csv); None for other networks."""
        path = self.folder / SIGNAL
        return read_csv(path) if os.path.lexists(path) else None

    def listings(self) -> list[tables.Listing]:
        signal = dict(tuple(self.signal.groupby("scheme", sort=False))) if self.signal is not None else {}
        shown = []
        for scheme, rows in self.table.groupby("scheme", sort=False):
            shown.append(listings.inspect_listing(scheme, rows.drop(columns="scheme").to_dict("records"),
                                                  self.flags[scheme]))
            if scheme in signal:
                shown.append(listings.signal_listing(scheme, signal[scheme].to_dict("records")))
        return shown

    def figures(self) -> dict[str, Figure]:
        """The per-layer profile (activations), and a gpt's signal; the weights' histograms are in weights_hist.png."""
        found = {"activations": activations_picture(self.table, self.info["config"].get("activation", "relu"))(None)}
        if self.signal is not None:
            found["signal"] = pictures.plot_signal(self.signal, None)
        return found


@dataclass(eq=False)
class CoordCheck(Shown):
    """A finished coordinate check (``initbench coordcheck``): ``coords`` per parametrization,
    width, seed, step and layer (coords.csv), ``slopes`` each layer's growth with width
    (slopes.csv), ``growing`` the layers whose change grows, per parametrization."""

    folder: Path
    placed: runfolder.RunFolder | None = field(default=None, repr=False)
    info: dict[str, Any] = field(init=False, repr=False)  # coordcheck.json

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        self.info = _read_json(self.folder / "coordcheck.json")

    @cached_property
    def coords(self) -> pd.DataFrame:
        return read_csv(self.folder / "coords.csv")

    @cached_property
    def slopes(self) -> pd.DataFrame:
        return read_csv(self.folder / "slopes.csv")

    @property
    def table(self) -> pd.DataFrame:
        return self.slopes

    @property
    def growing(self) -> dict[str, list[int]]:
        return self.info["growing"]

    def listings(self) -> list[tables.Listing]:
        return [listings.coordcheck_listing(self.slopes, self.growing)]

    def figures(self) -> dict[str, Figure]:
        return {f"coordcheck_{p}": pictures.plot_coords(self.coords, p, None)
                for p in self.info["config"]["parametrizations"]}


@dataclass(eq=False)
class Evaluation(Shown):
    """Weights scored again: ``table`` per file, its accuracies now and as recorded in
    training (percent) and the verdict; ``problems``, where they differ (``check()`` raises)."""

    rows: list[dict[str, Any]]
    problems: list[str] = field(default_factory=list)

    @property
    def table(self) -> pd.DataFrame:
        return in_percent(pd.DataFrame(self.rows).set_index("file"))

    def listings(self) -> list[tables.Listing]:
        return [listings.evaluate_listing(self.rows)]

    def check(self) -> None:
        """Raise if any file's scores differ from those recorded when it was trained."""
        if self.problems:
            raise InitbenchError("These are not the weights that were trained: " + "; ".join(self.problems) + ". The "
                                 "files were changed after training, or belong to another run. Train them again "
                                 "(initbench compare) or take them from the run folder that wrote them.")


@dataclass(eq=False)
class Sweep(Shown):
    """A sweep folder's store: ``runs`` one row per job; ``table`` per grid cell and scheme,
    the paired difference to the cell's best scheme (percent). A scheme whose code changed
    between sweeps, or rows trained under earlier random streams, leave several versions of
    its rows in the store: each scheme's current version is shown (its code as last swept,
    this initbench's streams), and ``older`` names the others; ``all_versions=True`` shows
    them side by side, each named apart."""

    folder: Path
    runs: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)  # its rows, read from the store if not given
    all_versions: bool = False
    older: list[store.Version] = field(default_factory=list, repr=False)  # the versions not in ``runs``

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        if self.runs.empty:
            with store.open_store(self.folder, write=False) as st:
                self.runs, self.older = st.versions(self.all_versions)
        if self.runs.empty:
            raise UsageError(f"The store in {self.folder} holds no finished job yet. Run the sweep first (it resumes).")

    @cached_property
    def _cells(self) -> tuple[pd.DataFrame, list[str]]:
        return cells_frame(self.runs, self.task)

    @cached_property
    def _rated(self) -> sweep.RateViews | None:
        """What its grid over lr says (None without one), worked out once for its tables, pictures and page."""
        return sweep.rate_frames(self.runs, self._cells[1])

    @property
    def task(self) -> tasks.Task:
        """What its jobs learned, and are scored by."""
        return sweep.task_of(self.runs)

    @property
    def cells(self) -> pd.DataFrame:
        """Per cell and scheme (cells.csv): accuracies and paired differences, fractions unrounded."""
        return self._cells[0]

    @property
    def table(self) -> pd.DataFrame:
        return in_percent(self.cells, self.task)

    @property
    def info(self) -> dict[str, Any] | None:
        """sweep.json: the last run's configuration, machine and figures (None before one finished)."""
        path = self.folder / "sweep.json"
        return _read_json(path) if os.path.lexists(path) else None

    @property
    def expectations(self) -> list[expect.Outcome]:
        """Each condition of the last run of the sweep (``expect``) judged in each grid cell
        (``.cell``), as sweep.json records them; empty when none was given."""
        return [expect.Outcome.from_record(r) for r in (self.info or {}).get("expectations", [])]

    def listings(self) -> list[tables.Listing]:
        return sweep.listings_of(self.runs, *self._cells, self._rated, self.older)

    def figures(self) -> dict[str, Figure]:
        return {name.removesuffix(".png"): draw(None) for name, draw in sweep.pictures_of(
            *self._cells, sweep.task_of(self.runs), self._rated).items()}

    def page_part(self) -> htmlpage.Part:
        """Its share of an HTML page (its report.html)."""
        return sweep.page_part(self.folder, self.runs, *self._cells, self._rated, older=self.older)


@dataclass(eq=False)
class SweepPlan(Shown):
    """A sweep's dry run: ``table`` one row per job of the grid, and whether the store holds it."""

    folder: Path
    rows: list[dict[str, Any]]

    @property
    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)

    def listings(self) -> list[tables.Listing]:
        return [listings.jobs_listing(self.rows)]


def in_percent(frame: pd.DataFrame, task: tasks.Task = tasks.CLASSIFICATION) -> pd.DataFrame:
    """The numbers as the printed table shows them: accuracies, their stds and differences in
    percent (val_acc_mean -> val_acc_pct) rounded to 2 decimals, losses (a text's metrics and
    their differences too) to 3. The frame given keeps them unrounded, in fractions (a view's
    ``summary``, ``comparison``, ``rows``, ``cells``)."""
    percent = task.validation.unit == "%"
    scaled = [c for c in frame.columns if "acc" in c or (percent and c.startswith("diff_")) or c == "chance"]
    losses = [c for c in frame.columns if "loss" in c or (not percent and c.startswith("diff_"))]

    def rounded(column: pd.Series, digits: int) -> pd.Series:
        # Python's round, as the table's format rounds (numpy's would give 9.48 for the 9.47 printed of 9.475).
        return column.map(lambda v: round(v, digits), na_action="ignore").astype(float)

    return frame.assign(**{c: rounded(frame[c] * 100, 2) for c in scaled}, **{c: rounded(frame[c], 3) for c in losses}
                        ).rename(columns={c: c.removesuffix("_mean") + "_pct" for c in scaled})


def loss_pictures(losses: pd.DataFrame, plot_batches: int, n_batches: int, classes: int,
                  task: tasks.Task) -> dict[str, Drawing]:
    return {"loss_curves.png": lambda p: pictures.plot_losses(losses, p, plot_batches, n_batches, classes, task),
            "loss_full.png": lambda p: pictures.plot_losses(losses, p, None, n_batches, classes, task)}


def stats_picture(stats: pd.DataFrame) -> Drawing:
    title = "Per layer at init (dashed) and after the last epoch (solid)"
    return lambda p: pictures.plot_layer_profile(stats, p, title)


def activations_picture(layers: pd.DataFrame, activation: str) -> Drawing:
    from initbench.training import diagnostics  # which imports torch: inspect's alone of the views, which read files

    title = f"At init, on {diagnostics.STATS_BATCH} validation images ({activation})"
    return lambda p: pictures.plot_layer_profile(layers, p, title)


def runs_table(folder: Path, task: tasks.Task) -> pd.DataFrame:
    """A finished run's runs.csv, with the columns a view reads (its ``task``'s metrics among
    them), numbers where numbers belong."""
    runs = read_csv(folder / "runs.csv")
    columns = RUNS_COLUMNS | {task.validation.key: True, task.test.key: True}
    lacking = sorted(set(columns) - set(runs.columns))
    not_numbers = [c for c, numeric in columns.items()
                   if numeric and c in runs.columns and not pd.api.types.is_numeric_dtype(runs[c])]
    if lacking or not_numbers:
        wrong = ([f"it lacks {', '.join(lacking)}"] if lacking else []) + (
            [f"its {', '.join(not_numbers)} are not numbers"] if not_numbers else [])
        raise InitbenchError(f"{folder / 'runs.csv'} is not laid out as this initbench writes it ({'; '.join(wrong)}): "
                             "it was written by another version of initbench, or edited. Run the run again to report "
                             "on it.")
    return runs


def read_csv(path: Path) -> pd.DataFrame:
    """A CSV file initbench wrote (pandas reads its floats back exactly as written)."""
    why = paths.problem(path, "file")  # never opened otherwise: reading a FIFO would wait for ever
    if why is not None:
        raise UsageError(f"{path} {why}: initbench reads only the regular files it wrote. Run the run again.")
    try:
        return pd.read_csv(path)
    except (OSError, ValueError) as e:  # pandas' parser errors are ValueErrors
        raise InitbenchError(f"Cannot read {path}: {e}.") from None


def _read_json(path: Path) -> dict[str, Any]:
    why = paths.problem(path, "file")
    if why is not None:
        raise UsageError(f"{path} {why}: initbench reads only the regular files it wrote. Run the run again.")
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError) as e:
        raise InitbenchError(f"Cannot read {path}: {getattr(e, 'strerror', None) or e}. Run the run again.") from None
