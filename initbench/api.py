"""initbench from Python: the commands as functions that return what they made.

Each function takes the command line's settings as keywords named as in a config file
(``train_samples=1000``, ``seeds=3``), with the same defaults, and checks them with the
same parsers, so a bad value raises the same ``UsageError`` before any work. Nothing is
printed: ``progress=None`` shows a bar in a notebook and nothing elsewhere, ``True`` the
command line's progress on stderr, ``False`` nothing.

This module imports no torch: the command line calls it to check what was typed first.
"""

from __future__ import annotations

import inspect as pyinspect
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar, Unpack

from rich.console import Console

from initbench import config as configs
from initbench.commands import (
    COORD_KEYS,
    COORD_PARAMETRIZATIONS,
    COORD_SEEDS,
    COORD_STEPS,
    COORD_WIDTHS,
    INSPECT_KEYS,
    stamped,
)
from initbench.errors import InitbenchError, UsageError
from initbench.settings import EVALUATE_RUN, MAX_UNITS, SWEEP_RUN, TRANSFER_RUN
from initbench.storage import runfolder, store
from initbench.views.progress import Activity, NotebookActivity

if TYPE_CHECKING:
    import pandas as pd

    from initbench.commands.export import Export
    from initbench.views.finished import CoordCheck, Diff, Evaluation, Inspection, Run, Sweep, SweepPlan, TransferRun

PathLike = str | os.PathLike[str]
Scheme = str | Callable[..., Any]  # a scheme's name, or a function, registered as a scheme when named
F = TypeVar("F", bound=Callable[..., Any])
_REGISTERED: dict[Callable[..., Any], str] = {}  # functions registered here, with the name each was given



# The keywords each function takes, typed as a caller may give them, for type checkers and editors
# (``**settings: Unpack[...]``); settings.py declares each, with its default and parser, which
# check what is given. tests/test_settings.py holds these to the declarations.


class InspectSettings(TypedDict, total=False):
    """``inspect``'s settings: the network and the data, no training."""

    dataset: str
    classes: str | Sequence[int | str] | None
    split_seed: int
    network: str
    hidden: str | Sequence[int]
    activation: str
    bias: str
    head_init: str
    parametrization: str
    base_width: int
    base_depth: int
    heads: int
    context: int
    mlp_ratio: int
    norm: str
    norm_position: str
    tied: bool
    residual_scale: float
    data_dir: PathLike
    out: PathLike | None
    overwrite: bool


class EvaluateSettings(TypedDict, total=False):
    """``evaluate``'s settings: what a plain state dict is, and where it is scored."""

    hidden: str | Sequence[int]
    activation: str
    classes: str | Sequence[int | str] | None
    split_seed: int
    device: str
    data_dir: PathLike


class SweepSettings(TypedDict, total=False):
    """``sweep``'s settings beside its config: where it goes and where it trains."""

    out: PathLike | None
    executor: str
    ray_address: str | None
    gpus_per_task: float | None
    cpus_per_task: int
    expect: Sequence[str]


class Settings(InspectSettings, SweepSettings, total=False):
    """``compare``'s settings: every setting of a run."""

    train_samples: int | None
    dropout: float
    lesson_eval: bool
    optimizer: str
    lr: float | Sequence[float]
    momentum: float
    betas: tuple[float, float] | Sequence[float]
    weight_decay: float
    batch_size: int
    epochs: int
    steps: int
    freeze: int
    unfreeze_after: int | None
    unfreeze_lr: float | None
    seeds: int | Sequence[int]
    plot_batches: int
    track_stats: bool
    device: str
    engine: str
    max_batch_models: int | None
    save_weights: bool
    save_init: bool


class TransferKeywords(Settings, total=False):
    """``transfer``'s settings: task B's run (its schemes those trained from scratch), and the
    transfer's own (``freeze`` and ``unfreeze_after`` are the transfer's: of its pretrained starts)."""

    schemes: str | Sequence[str]
    task_a: str | Sequence[int | str]
    source_scheme: str
    source_epochs: int
    source_dir: PathLike | None


INSPECT_OPTIONS = (*(k for k in INSPECT_KEYS if k not in ("schemes", "seeds")), "out", "overwrite")
EVALUATE_OPTIONS = tuple(EvaluateSettings.__annotations__)
SWEEP_OPTIONS = ("out", "executor", *configs.EXECUTOR_DECLARED, "expect")  # the rest: the config's


def scheme(name: str | F | None = None) -> Callable[[F], F] | F:
    """Register a function as a scheme for this process (``@ib.scheme("name")``, or
    ``@ib.scheme`` to use its own name), to be named like any scheme. A per-layer scheme is
    ``fn(weight, bias, generator, ...)`` and fills one layer in place; a whole-model one is
    ``fn(model, context, ...)`` (see ``initbench.initializers.user``)."""
    if callable(name):
        _register(name)
        return name

    def register(fn: F) -> F:
        _register(fn, name)
        return fn

    return register


def _register(fn: Callable[..., Any], name: str | None = None) -> str:
    from initbench.initializers import user

    _REGISTERED[fn] = user.register_function(fn, name)
    return _REGISTERED[fn]


def _scheme_names(schemes: str | Scheme | Iterable[Scheme], command: str) -> str | list[str]:
    """Names as the parsers take them: each function registered (again: a notebook may have
    registered another under its name since) under the name it was given, or its own."""
    if isinstance(schemes, str):
        return schemes
    given = [schemes] if callable(schemes) else list(schemes) if isinstance(schemes, Iterable) else None
    if given is None or not all(isinstance(s, str) or callable(s) for s in given):
        keyword = f"seeds={schemes}" if command == "compare" and isinstance(schemes, int) else 'hidden=[64]'
        raise UsageError(f"{command}() takes its schemes first: a name ({command}(\"rule\")), a function, or a list "
                         f"of them ({command}([\"rule\", \"default\"])); got {_shown(schemes)}. Settings are keywords, "
                         f"as {command}({keyword}); without schemes, the lesson's six are trained.")
    functions: dict[str, Callable[..., Any]] = {}
    names = []
    for s in given:
        names.append(s if isinstance(s, str) else _register(s, _REGISTERED.get(s)))
        if not isinstance(s, str) and functions.setdefault(names[-1], s) is not s:
            raise UsageError(f"{command}() was given two functions named {names[-1]!r}, and a scheme is shown and "
                             "stored by its name. Give each a name of its own: ib.scheme(\"half\")(fn) registers fn as "
                             "half (ib.scheme(\"half\")(lambda weight, bias, generator: ...) for a lambda), or define "
                             "each with def under a name of its own.")
    return names


def _shown(value: object) -> str:
    """A value a caller passed, in a message: its repr, cut short, and its type."""
    text, kind = repr(value), type(value).__name__
    return f"{text if len(text) <= 60 else text[:57] + '...'} (of type {kind})"


def _in_notebook() -> bool:
    ipython = sys.modules.get("IPython")  # never imported here: a script has none
    return ipython is not None and hasattr(ipython.get_ipython(), "kernel")


def _activity(progress: bool | None) -> Activity:
    if progress is None and _in_notebook():
        return NotebookActivity()
    return Activity(Console(stderr=True), quiet=not progress)


def _only(settings: Mapping[str, Any], allowed: Iterable[str], command: str) -> None:
    unknown = sorted(set(settings) - set(allowed))
    if unknown:
        raise UsageError(f"{command}() takes no setting {', '.join(map(repr, unknown))}. It takes "
                         f"{', '.join(allowed)}.")


def _run_config(config: PathLike | None, settings: Mapping[str, Any]) -> configs.RunConfig:
    """Defaults < the config file < ``settings``, checked, and the output folder checked."""
    resolved = configs.resolve(None if config is None else Path(config), settings)
    if resolved.out is not None:
        runfolder.check_destination(resolved.out, resolved.overwrite)
    return resolved


def compare(schemes: str | Sequence[Scheme] | None = None, *, config: PathLike | None = None,
            progress: bool | None = None, **settings: Unpack[Settings]) -> Run:
    """Train the network once per scheme and seed, and compare (``initbench compare``).

    ``schemes``: names (``"rule"``, ``"uniform:-0.1,0.1"``) or functions; by default the
    lesson's six. ``config``: a TOML file of settings, which keywords override. Writes the
    run folder (``out``, by default results/<timestamp>-<schemes>) and returns it, read.
    ``expect``: conditions such as ``["rule > uniform", "default >= 0.80"]`` (see
    ``initbench.analysis.expect``), judged once the run is written: ``.expectations`` on the result
    says which held (nothing is raised when one fails; the command line exits 1)."""
    options = settings if schemes is None else {"schemes": _scheme_names(schemes, "compare"), **settings}
    resolved = _run_config(config, options)
    from initbench.commands.compare import compare as run

    return run(resolved, _activity(progress))


def sweep(config: PathLike | Mapping[str, Any], *, sets: Sequence[str] = (), dry_run: bool = False,
          progress: bool | None = None, **options: Unpack[SweepSettings]) -> Sweep | SweepPlan:
    """Train a grid of settings x schemes x seeds into a resumable store (``initbench sweep``).

    ``config``: a TOML file, or its settings as a dict (a ``"grid"`` dict of settings, each
    with a list of values); ``sets``: ``"KEY=VALUE"`` as ``--set`` (fixes a setting, taking
    it out of the grid; ``"grid.KEY=[...]"`` varies one). Called again, it trains only the
    jobs the store lacks. ``dry_run``: the plan, nothing trained. ``expect``: conditions,
    as for ``compare``, each judged in every cell (``.expectations``), replacing the config's."""
    _only(options, SWEEP_OPTIONS, "sweep")
    if not isinstance(config, (str, os.PathLike, Mapping)):
        raise UsageError(f"sweep() takes its config first: a TOML file's path (sweep(\"configs/sweep-lesson.toml\")) "
                         f"or its settings as a dict (sweep({{\"schemes\": [\"rule\", \"default\"], \"grid\": "
                         f"{{\"lr\": [0.001, 0.01]}}}})); got {_shown(config)}.")
    file = None if isinstance(config, Mapping) else Path(config)
    default_out = Path("results") / file.stem if file else stamped(datetime.now(), "sweep")
    resolved = configs.resolve_sweep(file or config, list(sets), options, default_out)
    assert resolved.run.out is not None
    if not dry_run:  # which writes nothing: a read-only sweep's plan can be shown
        runfolder.destination(resolved.run.out, staged=False)  # a sweep writes in its folder
    store.check_folder(resolved.run.out, "sweep")
    from initbench.commands.sweep import run

    return run(resolved, str(file) if file else "of the settings given", _activity(progress), dry_run)


def transfer(*, config: PathLike | None = None, progress: bool | None = None,
             **settings: Unpack[TransferKeywords]) -> TransferRun:
    """Reuse networks trained on task A on task B, against training from scratch
    (``initbench transfer``); any compare setting sets task B's run."""
    resolved = configs.resolve_transfer(None if config is None else Path(config), settings)
    if resolved.run.out is not None:
        runfolder.check_destination(resolved.run.out, resolved.run.overwrite)
        if resolved.source_dir is None:
            runfolder.check_destination(resolved.source_run().out, resolved.run.overwrite)
    if resolved.source_dir is not None:
        runfolder.source_run(resolved.source_dir, resolved.run.train.data)
    from initbench.commands.transfer import transfer as run

    return run(resolved, _activity(progress))


def inspect(schemes: str | Sequence[Scheme] | None = None, *, seed: int = 0, progress: bool | None = None,
            **settings: Unpack[InspectSettings]) -> Inspection:
    """Each scheme's network before any training, per layer, on 500 real images (``initbench inspect``)."""
    _only(settings, INSPECT_OPTIONS, "inspect")
    named = {} if schemes is None else {"schemes": _scheme_names(schemes, "inspect")}
    options = {**settings, "seeds": [seed]} | named
    resolved = _run_config(None, options)
    from initbench.commands.inspect import inspect as run

    return run(resolved, _activity(progress))


def coordcheck(scheme: str | Scheme = "default", *, widths: Sequence[int] = COORD_WIDTHS,
               parametrizations: Sequence[str] = COORD_PARAMETRIZATIONS, steps: int = COORD_STEPS,
               progress: bool | None = None, **settings: Any) -> CoordCheck:
    """A coordinate check (``initbench coordcheck``): ``scheme``'s network with every hidden
    layer at each of ``widths``, under each of ``parametrizations``, its first ``steps`` steps
    (0: the start) over ``seeds`` seeds (5 unless given); each layer's output size and its
    change since the start against width, and the layers whose change grows with width."""
    _only(settings, COORD_KEYS, "coordcheck")
    widths, parametrizations = coord_check(widths, parametrizations, steps)
    options = {"seeds": COORD_SEEDS, **settings, "schemes": _scheme_names([scheme], "coordcheck")}
    resolved = _run_config(None, options)
    configs.check_one_rate(resolved, "coordcheck")
    for p in parametrizations:  # every width's network, as it will be built (a gpt's heads divide each)
        for width in widths:
            configs.check_settings(resolved.train.replace(parametrization=p, hidden=(width,) * len(
                resolved.train.network.hidden)), resolved.engine)
    from initbench.commands.coordcheck import coordcheck as run

    return run(resolved, widths, parametrizations, steps, _activity(progress))


def coord_check(widths: Sequence[int] | str, parametrizations: Sequence[str] | str,
                steps: int) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """A coordinate check's own options, checked in words (before torch loads): two widths or
    more, each a whole number from 1, in rising order; known parametrizations; 2 to 100 steps."""
    from initbench.parsing import int_list
    from initbench.training.parametrization import PARAMETRIZATIONS

    try:
        found = tuple(int(w) for w in (int_list(widths) if isinstance(widths, str) else widths))
    except (TypeError, ValueError):
        found = ()
    if len(found) < 2 or any(w < 1 or w > MAX_UNITS for w in found) or list(found) != sorted(set(found)):
        raise UsageError(f"--widths {widths!r}: give two widths or more, rising, each a whole number from 1 to "
                         f"{MAX_UNITS:,}, e.g. 64,128,256,512,1024 (a slope against width needs two).")
    named = tuple(p.strip() for p in (parametrizations.split(",") if isinstance(parametrizations, str)
                                      else parametrizations))
    unknown = [p for p in named if p not in PARAMETRIZATIONS]
    if not named or unknown or len(set(named)) != len(named):
        raise UsageError(f"--parametrization {','.join(named)!r}: name each of {', '.join(PARAMETRIZATIONS)} at most "
                         "once, e.g. sp,mup.")
    if not isinstance(steps, int) or not 2 <= steps <= 100:
        raise UsageError(f"--coord-steps {steps!r}: give 2 to 100 steps (step 0 is the start; a change needs a "
                         "step after it).")
    return found, named


def evaluate(*paths: PathLike, check: bool = True, progress: bool | None = None,
             **settings: Unpack[EvaluateSettings]) -> Evaluation:
    """Score weights files (or every file of run folders) again, against their record
    (``initbench evaluate``); ``check``: raise if any scores differ from those recorded in
    training. The settings describe plain state dicts, which have no record."""
    _only(settings, EVALUATE_OPTIONS, "evaluate")
    if not paths:  # else an empty result, which check=True would pass
        raise UsageError("evaluate() needs what to score: weights files or run folders, as "
                         "evaluate(\"results/my-run\") or evaluate(\"a.safetensors\", \"b.safetensors\").")
    resolved = _run_config(None, EVALUATE_RUN | dict(settings))
    files = runfolder.weights_files([Path(p) for p in paths])
    from initbench.commands.evaluate import evaluate as run

    result = run(files, resolved, _activity(progress))
    if check:
        result.check()
    return result


def export(*paths: PathLike, tensorboard: PathLike | None = None, overwrite: bool = False,
           progress: bool | None = None, **formats: PathLike) -> Export:
    """Write finished runs and sweeps in another tool's format (``initbench export``): one
    keyword, the format's name, gives the folder to write (made whole, or not at all; one that
    holds files only with ``overwrite``, which replaces it). ``tensorboard``: TensorBoard's
    logs, each job of the run or sweep folders ``paths`` one TensorBoard run
    (``<folder>[/<cell>]/<scheme>/seed-<k>``): its loss per batch, validation accuracy per
    epoch, test accuracy, and settings as HParams (needs ``pip install
    'initbench[tensorboard]'``). Another registered format (``initbench.exporters``) by its
    name. Nothing is trained."""
    from initbench import exporters

    given = {name: dest for name, dest in ({"tensorboard": tensorboard} | formats).items() if dest is not None}
    unknown = sorted(set(given) - set(exporters.EXPORTERS))
    if unknown:
        raise UsageError(f"export() takes no format {', '.join(map(repr, unknown))}. Its formats: "
                         f"{', '.join(exporters.EXPORTERS)} (e.g. export(\"results/run\", tensorboard=\"logs\")).")
    if not given:
        raise UsageError("export() needs tensorboard=LOGDIR, the folder to write TensorBoard's logs in, or another "
                         f"format's keyword with its folder (the formats: {', '.join(exporters.EXPORTERS)}).")
    if len(given) > 1:
        raise UsageError(f"export() writes one format at a time; it was given {', '.join(given)}. Export each in a "
                         "call of its own.")
    (name, dest), = given.items()
    exporter = exporters.EXPORTERS[name]
    exporter.code.check_installed()
    found = exporters.sources(paths)
    folder = exporters.check_destination(exporter, dest, overwrite, found)
    from initbench.commands.export import export as run

    return run(exporter, found, folder, overwrite, _activity(progress))


def diff(a: PathLike, b: PathLike) -> Diff:
    """Two run or sweep folders compared job by job, B against A (``initbench diff``): per
    scheme (and grid cell), the change in validation accuracy over the paired seeds, its 95%
    interval and verdict (``.table``, ``.rows``; ``.failing("worse")`` or ``"change"``: the
    rows ``--fail-on`` fails). Reads the folders' stores; nothing is trained."""
    from initbench.analysis import diff as diffs
    from initbench.views import finished

    return finished.Diff(**vars(diffs.diff(Path(a), Path(b))))


def schemes(pattern: str | None = None) -> pd.DataFrame:
    """Every scheme, by name: how to write it, its convention, aliases, formula and reference
    (``initbench schemes``); with ``pattern``, those ``catalogue`` finds by it."""
    import pandas as pd

    return pd.DataFrame(catalogue(pattern)).set_index("name")


def catalogue(pattern: str | None = None) -> list[dict[str, Any]]:
    """The schemes' rows (``initializers.catalogue``), or with ``pattern`` those whose name, usage,
    alias or summary it finds, ignoring case: a glob (``kaiming*``, ``*_uniform``) matches a
    whole name or alias, or any part of a summary; other text, any part of any of them
    (``orthogonal``, ``glorot``). A pattern that finds nothing is an error (exit 1, as grep's)."""
    from fnmatch import fnmatchcase

    from initbench import initializers as registry

    rows = registry.catalogue()
    if pattern is None:
        return rows
    glob = pattern.lower() if any(c in pattern for c in "*?[") else f"*{pattern.lower()}*"

    def found(row: dict[str, Any]) -> bool:
        names = [row["name"], row["usage"], *(a["name"] for a in row["aliases"])]
        return (any(fnmatchcase(name.lower(), glob) for name in names)
                or fnmatchcase((row["summary"] or "").lower(), f"*{glob}*"))

    matched = [row for row in rows if found(row)]
    if not matched:
        raise InitbenchError(f"No scheme's name, alias or summary matches {pattern!r}. `initbench schemes` lists "
                         "them all; a pattern is any part of one (orthogonal), or a glob of a whole name (kaiming*).")
    return matched


def _keywords(fn: F, keys: Iterable[str], run: Mapping[str, Any] | None = None, transfer: bool = False) -> F:
    """``fn``'s ``**settings`` shown by help() as the keywords they are, in the order settings.py
    declares them, with their declared defaults (``run``: this command's own, where they differ;
    ``transfer``: the transfer's own settings over the run's of the same name)."""
    declared = configs.DECLARED | configs.TRANSFER_DECLARED if transfer else configs.DECLARED
    signature = pyinspect.signature(fn)
    own = [p for p in signature.parameters.values() if p.kind != p.VAR_KEYWORD]
    wanted = set(keys)
    given = [pyinspect.Parameter(k, pyinspect.Parameter.KEYWORD_ONLY, default=(run or {}).get(k, d.default))
             for k, d in declared.items() if k in wanted and k not in signature.parameters]
    fn.__signature__ = signature.replace(parameters=own + given)  # type: ignore[attr-defined]
    return fn


_keywords(compare, (key for key in configs.DECLARED if key != "schemes"))
_keywords(inspect, INSPECT_OPTIONS)
_keywords(evaluate, EVALUATE_OPTIONS, EVALUATE_RUN)
_keywords(sweep, SWEEP_OPTIONS, SWEEP_RUN)
_keywords(transfer, [*configs.DECLARED, *configs.TRANSFER_DECLARED], TRANSFER_RUN, transfer=True)
