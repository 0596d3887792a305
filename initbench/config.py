"""The run configuration: defaults, then a TOML file, then command-line options.

Both sources use the same flat keys (``epochs``, ``batch_size``, ...) and go
through the same parsers, so a bad value gets the same message whether it was
typed or read from a file; only the place named in the message differs.

``expect`` (``--expect``, repeatable; ``expect=`` in Python) is a list of conditions
on the results, judged when the run or sweep is written (``initbench.expect``), e.g.
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
import re
import tomllib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from initbench import data, expect, models, parametrization, paths, schemes as scheme_registry
from initbench.data import default_data_dir
from initbench.engines import ENGINE_CHOICES, check_network, choose
from initbench.errors import UsageError
from initbench.executors import EXECUTORS, Placement, raysettings
from initbench.executors.raysettings import RaySettings
from initbench.jobs import (
    ACTIVATIONS,
    FLAT,
    OPTIMIZERS,
    DataSettings,
    Job,
    NetworkSettings,
    OptimSettings,
    TrainSettings,
    batches_per_epoch,
    check_batch_size,
)
from initbench.parsing import number, optional, whole
from initbench.schemes import BIAS_POLICIES, residual

LESSON_SCHEMES = ("zeros", "ones", "uniform", "rule", "normal", "default")
# Bounds on what is parsed, far beyond any real run, so that an absurd value is refused at once
# rather than built (256x20000000 was 20 million layers) or allocated.
MAX_HIDDEN_LAYERS = 1_000
MAX_UNITS = 1_000_000  # in a hidden layer
MAX_EPOCHS = 100_000  # a weights file records each epoch's accuracy in its header (checkpoint.MAX_HEADER)
MAX_LOSSES = 10**8  # per model: one loss per batch, kept in memory and written to losses.csv
MAX_SEEDS = 100_000
MAX_SWEEP_JOBS = 200_000  # cells x schemes x seeds: planning takes about 0.3 ms a job (100,000 jobs: 6.7 s to 30 s)
MAX_CONFIG_BYTES = 1 << 20  # a config file's size; one takes a few hundred bytes
SHOWN_CHARS = 80  # of a value quoted in a message (a wrong value may be megabytes)


@dataclass(frozen=True)
class RunConfig:
    schemes: tuple[str, ...] = LESSON_SCHEMES
    seeds: tuple[int, ...] = (0,)
    expect: tuple[str, ...] = ()  # conditions on the results (expect.py), judged when the run is written
    train: TrainSettings = TrainSettings()
    plot_batches: int = 100
    track_stats: bool = False  # per-layer statistics after every epoch (layer_stats.csv)
    device: str = "auto"
    engine: str = "auto"  # auto: batched where it writes out the network, else sequential (engines.choose)
    max_batch_models: int | None = None  # None: as many as fit in half the free memory
    data_dir: Path = field(default_factory=default_data_dir)
    out: Path | None = None  # None: results/<timestamp>-<schemes>
    overwrite: bool = False  # replace an --out folder that already holds files, whole
    save_weights: bool = True  # every model's final weights in weights/ (safetensors)
    save_init: bool = False  # and its initial weights in weights/init/
    executor: str = "local"  # local: this process trains; ray: chunks as tasks on a Ray cluster
    ray: RaySettings = RaySettings()  # read with --executor ray

    @property
    def placement(self) -> Placement:
        """Where and how the run's chunks train (what an executor is given)."""
        return Placement(self.executor, choose(self.engine, [self.train.network.network]), self.device, self.ray)

    def jobs(self) -> list[Job]:
        """One job per (scheme, seed), grouped by seed: the models that share a batch order."""
        return [Job(scheme, seed, self.train) for seed in self.seeds for scheme in self.schemes]

    def to_toml(self) -> str:
        """This configuration as a config file: ``compare --config RUN/config.toml`` repeats
        the run, into a new folder (``out`` and ``overwrite`` are left out, as are
        settings left unset and an empty ``expect``)."""
        return "".join(f"{key} = {json.dumps(value)}\n" for key, value in self._flat().items()
                       if key not in ("out", "overwrite") and value not in (None, []))

    def to_dict(self) -> dict[str, Any]:
        """The flat, JSON-ready form: the same keys a config file uses, the classes as the
        numbers trained on (what readers of run.json take)."""
        return self._flat() | {"classes": list(self.train.data.class_numbers)}

    def _flat(self) -> dict[str, Any]:
        flat = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("train", "ray")}
        flat.update(dataclasses.asdict(self.ray))
        flat.update(self.train.flat())
        return {k: _plain(v) for k, v in flat.items()}


def _plain(value: Any) -> Any:
    """A setting's value as JSON and TOML write it."""
    return str(value) if isinstance(value, Path) else list(value) if isinstance(value, tuple) else value


# --- parsers: each takes a raw value (from TOML or the CLI) and returns it checked, or raises ValueError
# (the generic ones, whole, number and optional, are initbench.parsing's)


def _int_list(value: Any) -> list[Any]:
    if isinstance(value, str):
        try:
            return [int(part) for part in value.split(",")]
        except ValueError:
            raise ValueError("must be whole numbers separated by commas") from None
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _seeds(value: Any) -> tuple[int, ...]:
    """A count K (seeds 0..K-1) or an explicit list of seeds."""
    if isinstance(value, int) and not isinstance(value, bool):
        return tuple(range(whole(1, MAX_SEEDS)(value)))
    listed = _int_list(value)
    if len(listed) > MAX_SEEDS:
        raise ValueError(f"must list at most {MAX_SEEDS:,} seeds")
    seeds = tuple(whole(0)(s) for s in listed)
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError("must be a count, or a list of distinct seeds that are whole numbers ≥ 0")
    return seeds


def _hidden(value: Any) -> tuple[int, ...]:
    """Hidden layer sizes: [256, 128], "256,128", or "256x10" for ten layers of 256."""
    too_many = ValueError(f"must name at most {MAX_HIDDEN_LAYERS:,} hidden layers")
    if isinstance(value, str):
        sizes: list[Any] = []
        for part in value.split(","):
            size, _, count = part.strip().partition("x")
            try:
                width, repeats = int(size), int(count) if count else 1
            except ValueError:
                repeats = 0
            if repeats < 1:
                raise ValueError('must be sizes like "256,128" or "256x10"')
            if len(sizes) + repeats > MAX_HIDDEN_LAYERS:  # before the list is made
                raise too_many
            sizes += [width] * repeats
    else:
        sizes = _int_list(value)
    if not sizes:
        raise ValueError("must name at least one hidden layer")
    if len(sizes) > MAX_HIDDEN_LAYERS:
        raise too_many
    return tuple(whole(1, MAX_UNITS)(s) for s in sizes)


def _schemes(value: Any) -> tuple[str, ...]:
    """Scheme names, as written: what they stand for is looked up by check_schemes, last of
    all, since a user's scheme runs its code then."""
    names = value.split(",") if isinstance(value, str) else list(value)
    if not names or not all(isinstance(n, str) for n in names):
        raise ValueError("must be a list of scheme names")
    return tuple(names)


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
    name = _text(value)
    base = scheme_registry.get(name).name.partition(":")[0]
    if scheme_registry.whole_model(base):
        raise ValueError(f"must be a scheme that initializes one layer ({base} initializes whole models)")
    return name


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("must be a non-empty string")
    return value


def _dataset(value: Any) -> str:
    """A dataset's name as its entry has it: idx:DIR resolved (its files read and checked, the
    folder made absolute, so that the settings name it from anywhere)."""
    if not data.DATASETS.holds(_text(value)):
        raise ValueError(f"must be one of {', '.join(data.DATASETS.choices)}")
    return data.get(value).name


def _choice(choices: Collection[str]) -> Callable[[Any], str]:
    """One of ``choices`` (looked in when parsing: a registry's, with what was registered since)."""
    def parse(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value
    return parse


def _device(value: Any) -> str:
    """auto, cpu, mps, cuda or cuda:N (whether it is there is checked when the run starts)."""
    if not isinstance(value, str) or not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
        raise ValueError("must be auto, cpu, cuda, cuda:N or mps")
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _path(value: Any) -> Path:
    return Path(value if isinstance(value, Path) else _text(value)).expanduser()


PARSERS: dict[str, Callable[..., Any]] = {
    "schemes": _schemes,
    "seeds": _seeds,
    "expect": expect.parse_all,  # the schemes it names are checked against the run's: _run_config
    "epochs": whole(1, MAX_EPOCHS),
    "lr": number(1e-300, float("inf"), "greater than 0"),
    "optimizer": _choice(OPTIMIZERS),
    "momentum": number(0.0, 1.0, "from 0 up to (not including) 1"),
    "batch_size": whole(1),
    "dataset": _dataset,
    "network": _choice(models.NETWORKS),
    "parametrization": _choice(parametrization.PARAMETRIZATIONS),
    "base_width": whole(1, MAX_UNITS),
    "hidden": _hidden,
    "dropout": number(0.0, 1.0, "from 0 up to (not including) 1"),
    "train_samples": optional(whole(1)),  # at most the dataset's training split: check_settings
    "split_seed": whole(0),
    "plot_batches": whole(1),
    "activation": _choice(ACTIVATIONS),
    "bias": _choice(BIAS_POLICIES),
    "track_stats": _flag,
    "lesson_eval": _flag,
    "classes": _classes,  # given the dataset too (see _apply)
    "head_init": _layer_scheme,
    "freeze": whole(0),
    "unfreeze_after": optional(whole(1)),
    "unfreeze_lr": optional(number(1e-300, float("inf"), "greater than 0")),
    "device": _device,
    "engine": _choice(ENGINE_CHOICES),
    "max_batch_models": optional(whole(1)),
    "data_dir": _path,
    "out": optional(_path),
    "overwrite": _flag,
    "save_weights": _flag,
    "save_init": _flag,
    "executor": _choice(EXECUTORS),
    **raysettings.PARSERS,
}
CLI_NAMES = {"schemes": "SCHEMES", "seeds": "--seeds/--seed-list"}
TRAIN_KEYS = tuple(FLAT)  # in their order


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
    return CLI_NAMES.get(key, "--" + key.replace("_", "-"))


def _run_config(values: dict[str, Any]) -> RunConfig:
    """A RunConfig of parsed flat ``values``, checked as a whole."""
    if values.get("classes") == data.get(values.get("dataset", DataSettings.dataset)).all_classes:
        values["classes"] = None  # every class in order is the default: the same data (and keys), as run.json has it
    network = models.get(values.get("network", NetworkSettings.network))
    if "hidden" not in values and network.hidden is not None:  # the network's own default (cnn: 128)
        values["hidden"] = network.hidden
    train = TrainSettings.of(**{k: values.pop(k) for k in TRAIN_KEYS if k in values})
    ray = RaySettings(**{k: values.pop(k) for k in raysettings.PARSERS if k in values})
    config = RunConfig(**values, train=train, ray=ray)
    check_settings(config.train, config.engine)
    expect.check(config.expect, config.schemes, len(config.seeds))
    if config.executor == "ray":
        raysettings.check(config.ray, config.device)
    check_schemes(config.schemes, config.train)  # last: resolving a user's scheme runs its code
    return config


def check_settings(s: TrainSettings, engine: str) -> None:
    """What no single value's parser can see: the classes and training images against the
    dataset, the batch against the training set, freezing, and the network against the engine
    and its parametrization."""
    dataset, o = data.get(s.data.dataset), s.optim
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
    parametrization.check(s.network)


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
    o, layers = s.optim, s.network.layers
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
class TransferConfig:
    """Stage B (``run``: task B's classes, images, epochs, seeds and scratch schemes) and how
    its pretrained starts are made: sources trained on ``task_a`` (or taken from the run
    folder ``source_dir``), ``freeze`` lowest layers frozen, unfrozen after ``unfreeze_after``."""

    run: RunConfig
    task_a: tuple[int, ...]
    source_scheme: str = "default"
    source_epochs: int = 2
    source_dir: Path | None = None
    freeze: int | None = None  # None: every hidden layer
    unfreeze_after: int = 5

    @property
    def frozen_layers(self) -> int:
        return self.run.train.network.layers - 1 if self.freeze is None else self.freeze

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
        extra = {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self) if f.name != "run"}
        return run + "".join(f"{k} = {json.dumps(v)}\n" for k, v in extra.items() if v is not None)


TRANSFER_SCRATCH = ("rule", "default", "kaiming_normal", "xavier_normal", "lsuv")
# The classic set-up: task B is two classes with 200 training images, task A the other eight.
TRANSFER_DEFAULTS: dict[str, Any] = {"schemes": TRANSFER_SCRATCH, "classes": "sandal,shirt", "train_samples": 200,
                                     "seeds": 10, "epochs": 20, "batch_size": 20}
TRANSFER_PARSERS: dict[str, Callable[[Any], Any]] = {
    "task_a": _classes,
    "source_scheme": _layer_scheme,
    "source_epochs": whole(1, MAX_EPOCHS),
    "source_dir": optional(_path),
    "freeze": optional(whole(1)),
    "unfreeze_after": whole(1),
}


def resolve_transfer(config_file: Path | None = None, options: Mapping[str, Any] | None = None) -> TransferConfig:
    """TRANSFER_DEFAULTS, overridden by ``config_file``, overridden by command-line ``options``;
    the transfer keys (TRANSFER_PARSERS) set the experiment, the others stage B's run."""
    layers: list[tuple[Mapping[str, Any], Callable[[str], str]]] = [(TRANSFER_DEFAULTS, lambda key: key)]
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
    dataset, task_b = data.get(run.train.data.dataset), run.train.data.class_numbers
    task_a = extra.pop("task_a", tuple(c for c in dataset.all_classes if c not in task_b))
    if len(task_a) < 2:  # derived from task B's classes: what is left of the dataset's
        raise UsageError(f"Task B takes {dataset.describe(task_b)} of {dataset.title}'s classes, which leaves "
                         f"{dataset.describe(task_a) if task_a else 'none'} for task A, and the source networks need "
                         "at least two classes to learn. Give task B fewer classes with --classes (e.g. sandal,shirt).")
    config = TransferConfig(run, task_a, **extra)
    check_schemes((config.source_scheme,), run.train)
    if set(task_a) & set(task_b):
        raise UsageError(f"Task A ({dataset.describe(task_a)}) and task B ({dataset.describe(task_b)}) share classes: "
                         "the source networks would have seen task B. Give tasks without a class in common.")
    hidden = run.train.network.layers - 1
    if config.frozen_layers > hidden:
        raise UsageError(f"--freeze {config.freeze}: the network has {hidden} hidden layers to reuse "
                         "(the output layer is new for task B). Freeze at most that many.")
    if config.unfreeze_after >= run.train.optim.epochs:
        raise UsageError(f"--unfreeze-after {config.unfreeze_after} is not before the last epoch (--epochs "
                         f"{run.train.optim.epochs}): give fewer epochs frozen, or more epochs.")
    return config


# --- sweeps: a grid of settings, every combination trained for every scheme and seed


SWEEP_DEFAULTS: dict[str, Any] = {"save_weights": False}  # a grid's weights can fill a disk: keep them when asked


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
        counts = tuple(sorted(whole(1)(n) for n in _int_list(text)))
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
    """SWEEP_DEFAULTS, overridden by ``config_file`` (a TOML file, or its settings as a
    mapping), overridden by ``sets`` (--set KEY=VALUE fixes a setting, taking it out of the
    grid; grid.KEY=[...] makes it vary), overridden by command-line ``options`` (--out);
    ``default_out`` where none of them sets ``out``. Every cell is checked here, before any work."""
    values = dict(SWEEP_DEFAULTS)
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
    except UsageError as e:
        lists = [k for k, v in fixed.items() if k in TRAIN_KEYS and isinstance(v, list)]
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
        if key not in TRAIN_KEYS:
            allowed = "" if key in PARSERS else f" Valid keys: {', '.join(sorted(TRAIN_KEYS))}."
            raise UsageError(f"{where} cannot vary in a sweep: a grid varies training settings (schemes and seeds "
                             f"are set at the top, and every cell trains them all).{allowed}")
        if not isinstance(alternatives, list) or not alternatives:
            raise UsageError(f"Invalid {where}: must be a list of values to try, e.g. {key} = [...]; got "
                             f"{alternatives!r}.")
        parsed: list[Any] = []
        for raw in alternatives:
            one: dict[str, Any] = {}
            _apply(one, {key: raw}, lambda k: where, known=values)
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
    for cell in sweep.cells():
        try:
            check_settings(cell, sweep.run.engine)
            check_schemes(sweep.run.schemes, cell)
        except UsageError as e:
            raise UsageError(f"In the grid's cell {sweep.cell_name(cell)}: {e}") from None
    return sweep
