"""The run configuration: defaults, then a TOML file, then command-line options.

Both sources use the same flat keys (``epochs``, ``batch_size``, ...) and go
through the same parsers, so a bad value gets the same message whether it was
typed or read from a file; only the place named in the message differs.

``expect`` (``--expect``, repeatable; ``expect=`` in Python) is a list of conditions
on the results, judged when the run or sweep is written (``initbench.analysis.expect``), e.g.
``expect = ["rule > uniform", "default >= 0.80"]`` at the top of the file (before a
sweep's ``[grid]``), or an ``[expect]`` table with ``conditions = [...]`` anywhere; given on
the command line, it replaces the file's. The schemes it names are checked against the run's here, before
any work. A sweep's file may also hold a ``[claim]`` table, a paper's claim and the criterion it
is judged by (``configs/papers/``, read by ``initbench.papers``), which the sweep leaves aside.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import itertools
import json
import math
import tomllib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from initbench import data, initializers as scheme_registry, models, paths, settings, tasks
from initbench.models import gpt_shape
from initbench.analysis import expect
from initbench.errors import UsageError
from initbench.executors import EXECUTORS, Placement
from initbench.initializers import BIAS_POLICIES, residual
from initbench.jobs import Job, batches_per_epoch, check_batch_size
from initbench.parsing import choice, int_list, text, whole
from initbench.settings import (
    ACTIVATIONS,
    FLAT,
    MAX_LOSSES,
    NORM_POSITIONS,
    NORMS,
    OPTIMIZERS,
    SWEEP_RUN,
    TRANSFER_RUN,
    DataSettings,
    NetworkSettings,
    OptimSettings,
    RunSettings,
    TrainSettings,
    TransferSettings,
)
from initbench.training import parametrization
from initbench.training.engines import ENGINE_CHOICES, check_network, choose, trains

MAX_SWEEP_JOBS = 200_000  # cells x schemes x seeds: planning takes about 0.3 ms a job (100,000 jobs: 6.7 s to 30 s)
MAX_CONFIG_BYTES = 1 << 20  # a config file's size; one takes a few hundred bytes
SHOWN_CHARS = 80  # of a value quoted in a message (a wrong value may be megabytes)


@dataclass(frozen=True)
class RunConfig(RunSettings):
    """A run resolved: how it goes (``RunSettings``), its models' settings, and every
    executor's own settings (the chosen one's go to ``placement.settings``)."""

    train: TrainSettings = TrainSettings()
    # Several learning rates (lr = [...], --lr 1e-3,2e-3): each scheme and seed trains at each, in one
    # population (train.optim.lr is the first). Empty: train.optim.lr alone.
    lrs: tuple[float, ...] = ()
    # Every executor's own settings, by its name (those of executors that have any): each is kept,
    # whichever executor runs, as config.toml and run.json have always written Ray's.
    backends: tuple[tuple[str, Any], ...] = field(default_factory=lambda: tuple(
        (backend.name, backend.settings()) for backend in EXECUTORS.values() if backend.settings is not None))

    @property
    def placement(self) -> Placement:
        """Where and how the run's chunks train (what an executor is given: its own settings)."""
        return Placement(self.executor, choose(self.engine, [self.train.network.network]), self.device,
                         dict(self.backends).get(self.executor))

    def jobs(self) -> list[Job]:
        """One job per (scheme, seed), and learning rate where there are several, grouped by
        seed: the models that share a batch order."""
        return [Job(scheme, seed, self.train.replace(lr=lr)) for seed in self.seeds for scheme in self.schemes
                for lr in self.lrs or (self.train.optim.lr,)]

    def names(self) -> dict[Job, str]:
        """What tables call each job: its scheme, and its learning rate where there are several
        ("rule lr=0.002")."""
        return {job: f"{job.scheme} lr={job.settings.optim.lr:g}" if self.lrs else job.scheme for job in self.jobs()}

    def to_toml(self) -> str:
        """This configuration as a config file: ``compare --config RUN/config.toml`` repeats
        the run, into a new folder (``out`` and ``overwrite`` are left out, as are
        settings left unset and an empty ``expect``)."""
        return "".join(f"{key} = {json.dumps(value)}\n" for key, value in self._flat().items()
                       if key not in ("out", "overwrite") and value not in (None, []))

    def to_dict(self) -> dict[str, Any]:
        """The flat, JSON-ready form: the same keys a config file uses, the classes as the
        numbers trained on (what readers of run.json take)."""
        return self._flat() | {"classes": list(data.class_numbers(self.train.data))}

    def _flat(self) -> dict[str, Any]:
        flat = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("train", "backends", "lrs")}
        for _, own in self.backends:
            flat.update(dataclasses.asdict(own))
        flat.update(self.train.flat())
        if self.lrs:
            flat["lr"] = self.lrs
        return {k: _plain(v) for k, v in flat.items()}


def _plain(value: Any) -> Any:
    """A setting's value as JSON and TOML write it."""
    return str(value) if isinstance(value, Path) else list(value) if isinstance(value, tuple) else value


# --- parsers of the settings whose values a registry knows (``settings`` declares the others' parsers)


def _classes(value: Any, dataset: data.Dataset) -> tuple[int, ...]:
    """The dataset's classes by number or name: [5, 6], "5,6", "sandal,shirt"."""
    parts = value.split(",") if isinstance(value, str) else value if isinstance(value, (list, tuple)) else [value]
    classes = tuple(c if isinstance(c, int) and not isinstance(c, bool) else dataset.class_number(str(c).strip())
                    for c in parts)
    if not all(0 <= c < len(dataset.class_names) for c in classes):
        raise ValueError(f"must be class numbers from 0 to {len(dataset.class_names) - 1}, or class names")
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise ValueError("must name at least two different classes")
    return classes


def _layer_scheme(value: Any) -> str:
    """A scheme that initializes one layer (pretrained's new output layer)."""
    name = text(value)
    base = scheme_registry.get(name).name.partition(":")[0]
    if scheme_registry.whole_model(base):
        raise ValueError(f"must be a scheme that initializes one layer ({base} initializes whole models)")
    return name


def _dataset(value: Any) -> str:
    """A dataset's name as its entry has it: idx:DIR resolved (its files read and checked, the
    folder made absolute, so that the settings name it from anywhere)."""
    if not data.DATASETS.holds(text(value)):
        raise ValueError(f"must be one of {', '.join(data.DATASETS.choices)}")
    return data.get(value).name


# The settings that take one of a fixed list of words: the command line lists them in its help and
# errors. (A network or a dataset is a name in a registry that a user's code may extend at start-up.)
CHOICES: dict[str, Collection[str]] = {"activation": ACTIVATIONS, "optimizer": OPTIMIZERS,
                                       "parametrization": parametrization.PARAMETRIZATIONS, "bias": BIAS_POLICIES,
                                       "engine": ENGINE_CHOICES, "executor": EXECUTORS, "norm": NORMS,
                                       "norm_position": NORM_POSITIONS}
# Every executor's own settings, by key (each executor's declared in its settings dataclass).
EXECUTOR_DECLARED = {key: d for backend in EXECUTORS.values() if backend.settings is not None
                     for key, d in settings.declared(backend.settings, backend.name).items()}
DECLARED = settings.declarations() | EXECUTOR_DECLARED  # every setting of a run, by key
TRANSFER_DECLARED = settings.declared(TransferSettings, "transfer")
REGISTRIES: dict[str, Callable[..., Any]] = {  # the parsers of the settings whose values a registry knows
    "dataset": _dataset,
    "network": choice(models.NETWORKS),
    "classes": _classes,  # given the dataset too (see _apply)
    "head_init": _layer_scheme,
    "expect": expect.parse_all,  # the schemes it names are checked against the run's: _run_config
    **{key: choice(CHOICES[key]) for key in ("parametrization", "bias", "engine", "executor")},
}
# Every setting's parser, in the order settings.py declares them (as "Valid keys" lists them).
PARSERS: dict[str, Callable[..., Any]] = {key: REGISTRIES[key] if d.parse is None else d.parse
                                          for key, d in DECLARED.items()}


def described(declaration: settings.Declaration) -> str:
    """A setting's help, with the names its registries hold now (the datasets, networks...)."""
    return declaration.help.format(datasets=", ".join(data.DATASETS.choices), networks=", ".join(models.NETWORKS),
                                   batched=", ".join(trains("batched")))


TRANSFER_PARSERS: dict[str, Callable[..., Any]] = {
    key: d.parse for key, d in TRANSFER_DECLARED.items() if d.parse is not None} | {
    "task_a": _classes, "source_scheme": _layer_scheme}
CLI_NAMES = {"schemes": "SCHEMES", "seeds": "--seeds/--seed-list"}  # where the declared flag is not the name


def read_toml(path: Path) -> dict[str, Any]:
    """A config file's settings; a missing, special (a FIFO would block), unreadable,
    binary or malformed file is an error. A UTF-8 byte-order mark is allowed."""
    why = paths.problem(path, "file")
    if why is not None:
        raise UsageError(f"Config file {path} {why}. Give a TOML file with --config.")
    if (size := path.stat().st_size) > MAX_CONFIG_BYTES:  # before reading: parsing 1 GiB took 9 s and 2 GB
        raise UsageError(f"Config file {path} takes {size:,} bytes; a config file is a few settings, and initbench "
                         f"reads at most {MAX_CONFIG_BYTES:,}. Give a TOML file with --config.")
    try:
        return tomllib.loads(path.read_bytes().decode("utf-8-sig"))
    except OSError as e:
        raise UsageError(f"Cannot read config file {path}: {e.strerror}.") from None
    except UnicodeDecodeError:
        raise UsageError(f"Config file {path} is not text (not UTF-8). Give a TOML file with --config.") from None
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"Config file {path} is not valid TOML: {e}.") from None


def _apply(values: dict[str, Any], source: Mapping[str, Any], where: Callable[[str], str],
           parsers: Mapping[str, Callable[..., Any]] = PARSERS, known: Mapping[str, Any] | None = None) -> None:
    """Parse ``source`` into ``values``. Classes are read as the dataset in ``known`` (by
    default ``values``, where ``source``'s own dataset is parsed first) names them."""
    known = values if known is None else known
    for key, raw in sorted(source.items(), key=lambda item: item[0] != "dataset"):
        if key not in parsers:
            close = difflib.get_close_matches(key, parsers, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UsageError(f"Unknown setting {where(_short(key))}.{hint} Valid keys: {', '.join(parsers)}.")
        try:
            parse = parsers[key]
            values[key] = (parse(raw, data.get(known.get("dataset", DataSettings.dataset))) if parse is _classes
                           else parse(raw))
        except ValueError as e:
            raise UsageError(f"Invalid {where(key)}: {e}; got {_short(repr(raw))}.") from None


def _short(text: str) -> str:
    """``text`` cut to SHOWN_CHARS characters, saying how much more there was."""
    if len(text) <= SHOWN_CHARS:
        return text
    return f"{text[:SHOWN_CHARS]}... ({len(text) - SHOWN_CHARS:,} more characters)"


def resolve(config_file: Path | None = None, options: Mapping[str, Any] | None = None) -> RunConfig:
    """Defaults, overridden by ``config_file``, overridden by command-line ``options``."""
    values: dict[str, Any] = {}
    if config_file is not None:
        _apply(values, read_toml(config_file), lambda key: f"{key!r} in {config_file}")
    _apply(values, options or {}, _cli_name)
    return _run_config(values)


def _cli_name(key: str) -> str:
    """What a message calls a setting given as an option: its declared flag (--source for source_dir)."""
    declared = DECLARED.get(key) or TRANSFER_DECLARED.get(key)
    return CLI_NAMES.get(key) or (declared.flags[0].partition("/")[0] if declared else "--" + key.replace("_", "-"))


def _run_config(values: dict[str, Any]) -> RunConfig:
    """A RunConfig of parsed flat ``values``, checked as a whole."""
    if values.get("classes") == data.get(values.get("dataset", DataSettings.dataset)).all_classes:
        values["classes"] = None  # every class in order is the default: the same data (and keys), as run.json has it
    network = models.get(values.get("network", NetworkSettings.network))
    for key, value in network.defaults.items():  # the network's own defaults (cnn: hidden 128)
        values.setdefault(key, value)
    lrs = values.get("lr")
    if isinstance(lrs, tuple):  # several: a grid, trained from its first
        values["lr"] = lrs[0]
    else:
        lrs = ()
    train = TrainSettings.of(**{k: values.pop(k) for k in FLAT if k in values})
    backends = tuple((backend.name, backend.settings(**{k: values.pop(k) for k in settings.declared(
        backend.settings, backend.name) if k in values})) for backend in EXECUTORS.values() if backend.settings)
    config = RunConfig(**values, train=train, lrs=lrs, backends=backends)
    check_settings(config.train, config.engine)
    if config.track_stats and data.get(config.train.data.dataset).corpus is not None:
        raise UsageError("--track-stats records the image networks' per-layer statistics after every epoch, not a "
                         "gpt's: `initbench inspect --network gpt` shows each of its tensors and the signal through "
                         "its blocks at init. Leave --track-stats out.")
    expect.check(config.expect, list(dict.fromkeys(config.names().values())), len(config.seeds))
    EXECUTORS[config.executor].check(config.placement)
    check_schemes(config.schemes, config.train)  # last: resolving a user's scheme runs its code
    return config


def check_one_rate(config: RunConfig, command: str) -> None:
    """Refuse several learning rates where a command trains at one."""
    if config.lrs:
        raise UsageError(f"{command} trains at one learning rate, and lr names {len(config.lrs)} "
                         f"({','.join(f'{lr:g}' for lr in config.lrs)}). Give one; compare trains each scheme and "
                         "seed at several (--lr 1e-3,2e-3), and a sweep's grid varies lr with other settings.")


def check_settings(s: TrainSettings, engine: str) -> None:
    """What no single value's parser can see: the classes and training images against the
    dataset, the batch against the training set, freezing, and the network against the engine
    and its parametrization."""
    dataset, o = data.get(s.data.dataset), s.optim
    network = models.get(s.network.network)
    if dataset.kind != network.reads:
        takes = [name for name, n in models.NETWORKS.items() if n.reads == dataset.kind]
        raise UsageError(f"The {network.name} network reads {network.reads}, and {dataset.title} is {dataset.kind}. "
                         f"Train {dataset.title} with --network {' or '.join(takes) or '(none registered)'}, or "
                         f"give {network.name} a dataset of {network.reads}.")
    if dataset.corpus is not None:
        check_text(s, dataset)
        check_network(engine, s.network.network)
        parametrization.check(s.network, s.optim.optimizer)
        return
    if s.data.classes is not None and max(s.data.classes) >= len(dataset.class_names):  # a dataset set after them
        raise UsageError(f"--classes {','.join(map(str, s.data.classes))}: {dataset.title}'s classes are numbered 0 "
                         f"to {len(dataset.class_names) - 1}. Give classes of the dataset trained on.")
    if (s.data.train_samples or 0) > dataset.train_split:
        raise UsageError(f"--train-samples {s.data.train_samples:,} is more than the {dataset.train_split:,} images "
                         f"of {dataset.title}'s training split. Ask for fewer.")
    n_train = s.data.train_samples or dataset.train_split
    check_batch_size(o.batch_size, n_train)
    batches = batches_per_epoch(n_train, o.batch_size)
    if o.epochs * batches > MAX_LOSSES:
        raise UsageError(f"{o.epochs:,} epochs of {batches:,} batches would record {o.epochs * batches:,} losses per "
                         f"model (one per batch, kept in memory and written to losses.csv); initbench records at most "
                         f"{MAX_LOSSES:,}. Train for fewer epochs, or with larger batches.")
    check_freezing(s)
    check_network(engine, s.network.network)
    models.get(s.network.network).check(dataset)
    parametrization.check(s.network, s.optim.optimizer)


def check_text(s: TrainSettings, dataset: data.Dataset) -> None:
    """A text's settings: no classes or subsets of images; windows the text can give; a
    gpt's heads that divide its width and blocks of one width; no layers frozen."""
    o, net = s.optim, s.network
    for key, value in (("classes", s.data.classes), ("train_samples", s.data.train_samples),
                       ("freeze", o.freeze or None), ("lesson_eval", net.lesson_eval or None)):
        if value is not None:
            raise UsageError(f"{_cli_name(key)} applies to images, not to a text ({dataset.title}): a gpt reads "
                             "windows of the whole training text, and is scored with its dropout off. Leave it out.")
    gpt_shape.shape(net, len(dataset.class_names)).check()
    if net.context >= dataset.train_images:
        raise UsageError(f"--context {net.context:,} is longer than {dataset.title}'s training text "
                         f"({dataset.train_images:,} characters): no window fits in it. Give a context of at most "
                         f"{max(1, dataset.train_images // 2):,}, or a longer text.")
    if net.context >= dataset.test_images:  # the validation text's is checked when it is read (lm.score)
        raise UsageError(f"--context {net.context:,} is longer than {dataset.title}'s test text "
                         f"({dataset.test_images:,} characters), which it is scored on. Give a shorter context, or "
                         "a longer text.")
    if o.epochs * o.steps > MAX_LOSSES:
        raise UsageError(f"{o.epochs:,} epochs of {o.steps:,} steps would record {o.epochs * o.steps:,} losses per "
                         f"model; initbench records at most {MAX_LOSSES:,}. Train for fewer epochs or steps.")


def check_schemes(names: Collection[str], s: TrainSettings) -> None:
    """Refuse an unknown scheme, one named twice (also as two names of one scheme), and one
    that cannot fill the network's layers: one for matrices only (sparse) on a network with
    convolutions, one for residual branches (fixup) on a network without."""
    network = models.get(s.network.network)
    canonical: dict[str, str] = {}
    for name in names:
        scheme = scheme_registry.get(name)  # raises with the valid names and the closest match
        if scheme.name in canonical:
            first = canonical[scheme.name]
            same = "twice" if first == name else f"twice ({first} and {name} are the same scheme)"
            raise UsageError(f"Invalid schemes: names a scheme {same}: {', '.join(names)}. Name each scheme once.")
        canonical[scheme.name] = name
        if scheme.roles_only and not network.roles:
            raise UsageError(f"Scheme {name!r} starts a transformer by its tensors' roles (attention outputs, "
                             f"embeddings, blocks), and the {network.name} network has none. Train {name} with "
                             "--network gpt, or give the network another scheme.")
        if network.roles and scheme.whole_model and not scheme.roles_only:
            raise UsageError(f"Scheme {name!r} has no rule for the {network.name} network's roles (token and "
                             "position embeddings, attention query, key, value and output, MLP in and out, head): "
                             "it starts a whole MLP. Give the gpt a transformer scheme (`initbench schemes` lists "
                             "them) or a per-layer one, which fills each of its matrices.")
        if scheme.residual_only and not network.residual:
            raise residual.refusal(name, network.name)
        if scheme.matrices_only and network.kernels:
            raise UsageError(f"Scheme {name!r} fills matrices (Linear layers) only, and the {network.name} network's "
                             "lowest layers are convolutions, whose kernels it cannot fill (torch.nn.init's refuses "
                             f"them too). Give the {network.name} network other schemes, or train {name} with "
                             "--network mlp.")


def check_freezing(s: TrainSettings) -> None:
    """--freeze leaves something to train; --unfreeze-after and --unfreeze-lr have a frozen
    layer to act on, within the run's epochs."""
    o, layers = s.optim, models.depth(s.network)
    if o.freeze >= layers:
        raise UsageError(f"--freeze {o.freeze} would freeze every layer of this {layers}-layer network, and "
                         f"nothing would train. Freeze at most {layers - 1} (the output layer always trains).")
    if o.unfreeze_after is not None and not o.freeze:
        raise UsageError("--unfreeze-after needs frozen layers: give --freeze N too.")
    if o.unfreeze_after is not None and o.unfreeze_after >= o.epochs:
        raise UsageError(f"--unfreeze-after {o.unfreeze_after} is not before the last epoch (--epochs {o.epochs}), "
                         "so the frozen layers would never train again. Give a number of epochs below --epochs.")
    if o.unfreeze_lr is not None and o.unfreeze_after is None:
        raise UsageError("--unfreeze-lr sets the learning rate of layers unfrozen by --unfreeze-after: give that too.")


# --- the transfer experiment: task A trains source networks, task B compares starts


@dataclass(frozen=True)
class TransferConfig(TransferSettings):
    """Stage B (``run``: task B's classes, images, epochs, seeds and scratch schemes) and how
    its pretrained starts are made (``TransferSettings``): sources trained on ``task_a`` (or
    taken from the run folder ``source_dir``), ``freeze`` lowest layers frozen, unfrozen after
    ``unfreeze_after``."""

    run: RunConfig = field(kw_only=True)

    @property
    def frozen_layers(self) -> int:
        return models.depth(self.run.train.network) - 1 if self.freeze is None else self.freeze

    def source_run(self) -> RunConfig:
        """Stage A as a compare run: the source scheme, one network per seed, on task A's
        classes, into ``<out>-source``: task B's dataset, split, network and optimizer,
        everything else at its default (all of task A's images, the lesson's batch size)."""
        out = None if self.run.out is None else self.run.out.with_name(self.run.out.name + "-source")
        d, n, o = self.run.train.data, self.run.train.network, self.run.train.optim
        train = TrainSettings(DataSettings(d.dataset, self.task_a, split_seed=d.split_seed),
                              NetworkSettings(n.network, n.hidden, n.activation, n.dropout),
                              OptimSettings(o.optimizer, o.lr, o.momentum, epochs=self.source_epochs))
        return dataclasses.replace(self.run, schemes=(self.source_scheme,), train=train, out=out, save_init=False)

    def to_toml(self) -> str:
        """This transfer as a config file: ``transfer --config FILE`` repeats it (task B's
        settings, less the freezing its starts set themselves, then the transfer's own)."""
        run = "".join(line for line in self.run.to_toml().splitlines(keepends=True)
                      if line.partition(" = ")[0] not in TRANSFER_PARSERS)
        extra = {key: _plain(getattr(self, key)) for key in TRANSFER_DECLARED}
        return run + "".join(f"{k} = {json.dumps(v)}\n" for k, v in extra.items() if v is not None)


def resolve_transfer(config_file: Path | None = None, options: Mapping[str, Any] | None = None) -> TransferConfig:
    """TRANSFER_RUN, overridden by ``config_file``, overridden by command-line ``options``;
    the transfer keys (TRANSFER_PARSERS) set the experiment, the others stage B's run."""
    layers: list[tuple[Mapping[str, Any], Callable[[str], str]]] = [(TRANSFER_RUN, lambda key: key)]
    if config_file is not None:
        layers.append((read_toml(config_file), lambda key: f"{key!r} in {config_file}"))
    layers.append(({k: v for k, v in (options or {}).items() if v is not None}, _cli_name))
    run_values: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for source, where in layers:  # the run's first: task A's classes are read as its dataset names them
        _apply(run_values, {k: v for k, v in source.items() if k not in TRANSFER_PARSERS}, where)
        _apply(extra, {k: v for k, v in source.items() if k in TRANSFER_PARSERS}, where, TRANSFER_PARSERS, run_values)
    if run_values.get("expect"):  # its rows are starts, not schemes: nothing judges them
        raise UsageError("'expect' is for compare and sweep: transfer does not judge expectations. Leave it out of "
                         "the transfer's config, or check its schemes with initbench compare --expect.")
    run = _run_config(run_values)
    check_one_rate(run, "transfer")
    dataset, task_b = data.get(run.train.data.dataset), data.class_numbers(run.train.data)
    task_a = extra.pop("task_a", tuple(c for c in dataset.all_classes if c not in task_b))
    if len(task_a) < 2:  # derived from task B's classes: what is left of the dataset's
        raise UsageError(f"Task B takes {dataset.describe(task_b)} of {dataset.title}'s classes, which leaves "
                         f"{dataset.describe(task_a) if task_a else 'none'} for task A, and the source networks need "
                         "at least two classes to learn. Give task B fewer classes with --classes (e.g. sandal,shirt).")
    config = TransferConfig(run=run, task_a=task_a, **extra)
    check_schemes((config.source_scheme,), run.train)
    if set(task_a) & set(task_b):
        raise UsageError(f"Task A ({dataset.describe(task_a)}) and task B ({dataset.describe(task_b)}) share classes: "
                         "the source networks would have seen task B. Give tasks without a class in common.")
    hidden = models.depth(run.train.network) - 1
    if config.frozen_layers > hidden:
        raise UsageError(f"--freeze {config.freeze}: the network has {hidden} hidden layers to reuse "
                         "(the output layer is new for task B). Freeze at most that many.")
    if config.unfreeze_after >= run.train.optim.epochs:
        raise UsageError(f"--unfreeze-after {config.unfreeze_after} is not before the last epoch (--epochs "
                         f"{run.train.optim.epochs}): give fewer epochs frozen, or more epochs.")
    return config


# --- sweeps: a grid of settings, every combination trained for every scheme and seed


@dataclass(frozen=True)
class SweepConfig:
    """``run``'s settings, with each ``grid`` setting taking each of its values in turn:
    the sweep is every combination (a cell), each trained for every scheme and seed."""

    run: RunConfig
    grid: tuple[tuple[str, tuple[Any, ...]], ...] = ()  # (setting, its values), in the order given

    @property
    def placement(self) -> Placement:
        """Where and how the sweep's chunks train: one engine for every cell (a store's numbers do
        not mix engines), ``auto`` choosing it by every network of the grid."""
        networks = {cell.network.network for cell in self.cells()}
        return dataclasses.replace(self.run.placement, engine=choose(self.run.engine, networks))

    def cells(self) -> list[TrainSettings]:
        keys = [k for k, _ in self.grid]
        return [self.run.train.replace(**dict(zip(keys, combo)))
                for combo in itertools.product(*(values for _, values in self.grid))]

    def counts(self) -> dict[str, int]:
        """How many cells, schemes and seeds, counted without making a cell."""
        return {"cell": math.prod(len(values) for _, values in self.grid), "scheme": len(self.run.schemes),
                "seed": len(self.run.seeds)}

    def size(self) -> int:
        """How many jobs: cells x schemes x seeds."""
        return math.prod(self.counts().values())

    def cell_name(self, cell: TrainSettings) -> str:
        """What errors call a cell: its grid values, e.g. "lr = 0.01, hidden = (256, 128)"."""
        flat = cell.flat()
        return ", ".join(f"{k} = {flat[k]!r}" for k, _ in self.grid)

    def jobs(self) -> list[Job]:
        """One job per (cell, seed, scheme), cell by cell."""
        return [Job(scheme, seed, cell) for cell in self.cells() for seed in self.run.seeds
                for scheme in self.run.schemes]

    def to_toml(self) -> str:
        """This sweep as a config file (its grid under [grid])."""
        return self.run.to_toml() + "\n[grid]\n" + "".join(
            f"{k} = {json.dumps([_plain(v) for v in values])}\n" for k, values in self.grid)


def parse_counts(text: str, option: str) -> tuple[int, ...]:
    """Counts like "6,60,600": whole numbers of at least 1, each once, in increasing order."""
    try:
        counts = tuple(sorted(whole(1)(n) for n in int_list(text)))
    except ValueError:
        counts = ()
    if not counts or len(set(counts)) != len(counts):
        raise UsageError(f'Invalid {option}: must be different whole numbers of at least 1, e.g. "6,60,600"; '
                         f"got {text!r}.")
    return counts


def parse_set(assignment: str) -> tuple[str, Any]:
    """--set KEY=VALUE: VALUE as a TOML value (5, 0.01, true, ["relu", "tanh"]) or, when it
    is not one, as text (256x30, sandal,shirt)."""
    name, sep, raw = assignment.partition("=")
    if not sep or not name.strip():
        raise UsageError(f"--set takes KEY=VALUE, e.g. --set seeds=5 or --set 'grid.lr=[0.001, 0.01]'; got "
                         f"{assignment!r}.")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return name.strip(), value


def resolve_sweep(config_file: Path | Mapping[str, Any], sets: list[str] | None = None,
                  options: Mapping[str, Any] | None = None, default_out: Path | None = None) -> SweepConfig:
    """SWEEP_RUN, overridden by ``config_file`` (a TOML file, or its settings as a
    mapping), overridden by ``sets`` (--set KEY=VALUE fixes a setting, taking it out of the
    grid; grid.KEY=[...] makes it vary), overridden by command-line ``options`` (--out);
    ``default_out`` where none of them sets ``out``. Every cell is checked here, before any work."""
    values = dict(SWEEP_RUN)
    if isinstance(config_file, Path):
        settings = read_toml(config_file)
    else:  # a copy (its grid is changed below), and what messages call it
        settings, config_file = copy.deepcopy(dict(config_file)), "the sweep's settings"
    grid_raw = settings.pop("grid", {})
    # A papers' config states its claim in a [claim] table (initbench.papers reads it): not a setting.
    if not isinstance(settings.pop("claim", {}), dict):
        raise UsageError(f"'claim' in {config_file} must be a table ([claim]): a paper's claim, as initbench.papers "
                         "reads it.")
    if not isinstance(grid_raw, dict):
        raise UsageError(f"'grid' in {config_file} must be a table ([grid]) of settings, each with a list of values.")
    where_file = lambda key: f"{key!r} in {config_file}"  # noqa: E731
    fixed = dict(settings)
    for name, value in (parse_set(s) for s in sets or []):
        if name.startswith("grid."):
            grid_raw[name.removeprefix("grid.")] = value
            fixed.pop(name.removeprefix("grid."), None)
        else:
            fixed[name] = value
            grid_raw.pop(name, None)
    try:
        _apply(values, fixed, lambda key: f"{key!r} ({config_file} or --set)")
        if isinstance(values.get("lr"), tuple):  # several rates at the top: the grid's (one population per cell)
            grid_raw["lr"] = list(values.pop("lr"))
    except UsageError as e:
        lists = [k for k, v in fixed.items() if k in FLAT and isinstance(v, list)]
        raise UsageError(f"{e} To try several values of a setting, list them under [grid] in the file (or "
                         "--set 'grid.KEY=[...]').") if lists else e from None
    _apply(values, options or {}, _cli_name)
    grid: list[tuple[str, tuple[Any, ...]]] = []
    for key, alternatives in grid_raw.items():
        where = where_file(f"grid.{key}")
        if key == "expect":  # TOML puts every key written after [grid] in the grid
            raise UsageError(f"{where}: expect is not a grid setting. Write expect = [...] at the top of the file, "
                             "before [grid], or an [expect] table with conditions = [...]: each condition is judged "
                             "in every cell.")
        if key not in FLAT:
            allowed = "" if key in PARSERS else f" Valid keys: {', '.join(sorted(FLAT))}."
            raise UsageError(f"{where} cannot vary in a sweep: a grid varies training settings (schemes and seeds "
                             f"are set at the top, and every cell trains them all).{allowed}")
        if not isinstance(alternatives, list) or not alternatives:
            raise UsageError(f"Invalid {where}: must be a list of values to try, e.g. {key} = [...]; got "
                             f"{alternatives!r}.")
        parsed: list[Any] = []
        for raw in alternatives:
            one: dict[str, Any] = {}
            _apply(one, {key: raw}, lambda k: where, known=values)
            if key == "lr" and isinstance(one[key], tuple):
                raise UsageError(f"Invalid {where}: each of its values is one learning rate; got {raw!r}.")
            if one[key] in parsed:
                raise UsageError(f"Invalid {where}: {raw!r} is given twice.")
            parsed.append(one[key])
        grid.append((key, tuple(parsed)))
    if values.pop("overwrite", False):  # a sweep's folder is a store it resumes: nothing there to replace
        raise UsageError(f"'overwrite' ({config_file} or --set): a sweep resumes and extends its folder's store "
                         "instead of replacing it. To start afresh, remove the folder or give another --out; "
                         "leave 'overwrite' out of a sweep's config.")
    if default_out is not None and values.get("out") is None:
        values["out"] = default_out
    sweep = SweepConfig(_run_config(values), tuple(grid))
    if sweep.size() > MAX_SWEEP_JOBS:  # counted before a cell is made
        counts = sweep.counts()
        raise UsageError(f"The sweep has {' x '.join(f'{n:,} {what}' + 's' * (n != 1) for what, n in counts.items())}"
                         f" = {sweep.size():,} jobs; initbench plans at most {MAX_SWEEP_JOBS:,} "
                         "at once (planning takes about a minute per 200,000). Sweep the grid in parts into the same "
                         "--out (its store keeps every part), or give fewer values, schemes or seeds.")
    # The cells' table ranks schemes by one metric: the grid's datasets share a task.
    tasks.one((data.task(cell.data.dataset) for cell in sweep.cells()), "The grid's cells would train",
              "One sweep's table cannot hold them: sweep each task's datasets apart.")
    for cell in sweep.cells():
        try:
            check_settings(cell, sweep.run.engine)
            check_schemes(sweep.run.schemes, cell)
        except UsageError as e:
            raise UsageError(f"In the grid's cell {sweep.cell_name(cell)}: {e}") from None
    return sweep
