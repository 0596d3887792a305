"""Every setting, declared once: its group, default, parser, help and command-line flags.

A setting is a field of one of the groups below, declared with ``setting(...)``: the
dataclass gives it its type and default, the declaration the rest. From them come the flat
keys (config files, ``--set``, grids, stored settings), the parsers ``config`` applies,
the options of every command (``cli``), the keywords of the Python API (``api``), the
reader of run.json (``storage.runfolder``) and the table in docs/configs.md. A setting
whose values a registry knows (a dataset, a network, a scheme...) leaves ``parse`` out:
``config`` registers the registry's parser for it, and nothing here imports a registry.

The groups: ``DataSettings``, ``NetworkSettings`` and ``OptimSettings`` decide what a model
is and how it trains (a job's identity holds them, as ``TrainSettings``); ``RunSettings``
decide how a run goes (seeds, device, where it writes); ``TransferSettings`` the transfer
experiment's own. A backend's settings live with the backend and are declared the same way
(``executors.raysettings``).

Adding a setting: one field here, and the code that reads it (and its type in ``api.Settings``,
for editors: ``tests/test_settings.py`` holds the two together).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from initbench.parsing import choice, flag, int_list, number, optional, path, whole

LESSON_SCHEMES = ("zeros", "ones", "uniform", "rule", "normal", "default")  # the lesson's six, compare's default
ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu", "selu", "linear")
OPTIMIZERS = ("adam", "sgd")
NORMS = ("layernorm", "rmsnorm", "none")  # a gpt's
NORM_POSITIONS = ("pre", "post")  # before each residual branch (GPT-2), or after each residual add (the original)
DATA_DIR_ENV = "INITBENCH_DATA_DIR"
# Bounds on what is parsed, far beyond any real run, so that an absurd value is refused at once
# rather than built (256x20000000 was 20 million layers) or allocated.
MAX_HIDDEN_LAYERS = 1_000
MAX_UNITS = 1_000_000  # in a hidden layer
MAX_EPOCHS = 100_000  # a weights file records each epoch's accuracy in its header (checkpoint.MAX_HEADER)
MAX_SEEDS = 100_000
MAX_RATES = 1_000  # learning rates a run trains each scheme and seed at
MAX_LOSSES = 10**8  # per model: one loss per batch, kept in memory and written to losses.csv


@dataclass(frozen=True)
class Declaration:
    """One setting as every surface knows it (``declarations`` gives them by key)."""

    key: str
    group: str  # the dataclass that holds it: data, network, optim, run, transfer, ray
    default: Any  # the dataclass's (a default_factory called)
    help: str
    parse: Callable[[Any], Any] | None  # value from a file or the command line -> checked value, or ValueError
    flags: tuple[str, ...]  # the command line's names: --key unless declared otherwise
    metavar: str | None
    shown: str | None  # the default in words, where its value would not say it ("all of them")
    cli: type  # what the command line reads before parsing: str, int, float or bool (a flag)

    @property
    def default_text(self) -> str:
        """The default as help shows it."""
        if self.shown is not None:
            return self.shown
        value = self.default
        if value == ():
            return "none"
        if isinstance(value, tuple):
            return ",".join(map(str, value)) if all(isinstance(v, (int, float)) for v in value) else " ".join(value)
        if isinstance(value, bool) or value is None:
            return {True: "on", False: "off", None: "none"}[value]
        return f"{value:g}" if isinstance(value, float) else str(value)


def setting(default: Any = None, help: str = "", *, factory: Callable[[], Any] | None = None,  # noqa: A002
            parse: Callable[[Any], Any] | None = None, flags: tuple[str, ...] = (), metavar: str | None = None,
            shown: str | None = None, cli: type | None = None) -> Any:
    """A field that declares a setting: its ``default`` (or ``factory``), ``help`` (a sentence;
    help adds the default), ``parse`` (None: a registry's, which config registers), its
    command-line ``flags`` where they are not --key (aliases, or "--key/--no-key" for a
    switch), ``metavar``, ``shown`` (the default in words) and ``cli``, the type typed (by
    default the default's)."""
    meta = {"setting": {"help": help, "parse": parse, "flags": flags, "metavar": metavar, "shown": shown,
                        "cli": cli}}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def declared(cls: type, group: str) -> dict[str, Declaration]:
    """The settings the dataclass ``cls`` declares, by key."""
    found = {}
    for f in dataclasses.fields(cls):
        meta = f.metadata.get("setting")
        if meta is None:
            continue
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]
        names = meta["flags"] or ("--" + f.name.replace("_", "-"),)
        kind = meta["cli"] or (bool if isinstance(default, bool) else int if isinstance(default, int)
                               else float if isinstance(default, float) else str)
        found[f.name] = Declaration(f.name, group, default, meta["help"], meta["parse"], names, meta["metavar"],
                                    meta["shown"], kind)
    return found


# --- parsers of the settings that need no registry


def parse_seeds(value: Any) -> tuple[int, ...]:
    """A count K (seeds 0..K-1) or an explicit list of seeds."""
    if isinstance(value, int) and not isinstance(value, bool):
        return tuple(range(whole(1, MAX_SEEDS)(value)))
    listed = int_list(value)
    if len(listed) > MAX_SEEDS:
        raise ValueError(f"must list at most {MAX_SEEDS:,} seeds")
    found = tuple(whole(0)(s) for s in listed)
    if not found or len(set(found)) != len(found):
        raise ValueError("must be a count, or a list of distinct seeds that are whole numbers ≥ 0")
    return found


def parse_hidden(value: Any) -> tuple[int, ...]:
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
        sizes = int_list(value)
    if not sizes:
        raise ValueError("must name at least one hidden layer")
    if len(sizes) > MAX_HIDDEN_LAYERS:
        raise too_many
    return tuple(whole(1, MAX_UNITS)(s) for s in sizes)


def parse_schemes(value: Any) -> tuple[str, ...]:
    """Scheme names, as written: what they stand for is looked up by config.check_schemes, last
    of all, since a user's scheme runs its code then."""
    names = value.split(",") if isinstance(value, str) else list(value)
    if not names or not all(isinstance(n, str) for n in names):
        raise ValueError("must be a list of scheme names")
    return tuple(names)


def parse_device(value: Any) -> str:
    """auto, cpu, mps, cuda or cuda:N (whether it is there is checked when the run starts)."""
    if not isinstance(value, str) or not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
        raise ValueError("must be auto, cpu, cuda, cuda:N or mps")
    return value


def default_data_dir() -> Path:
    """$INITBENCH_DATA_DIR, else the user's cache (~/.cache/initbench)."""
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV])
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "initbench"


POSITIVE = number(1e-300, float("inf"), "greater than 0")
FRACTION = number(0.0, 1.0, "from 0 up to (not including) 1")


def parse_rates(value: Any) -> float | tuple[float, ...]:
    """A learning rate, or several (a list, or "1e-3,2e-3"): a run trains each scheme and
    seed at each of them, all in one population (``config`` makes them a grid)."""
    listed = value.split(",") if isinstance(value, str) else value if isinstance(value, (list, tuple)) else [value]
    rates = []
    for raw in listed:
        try:
            rates.append(POSITIVE(float(raw) if isinstance(raw, str) else raw))
        except ValueError:
            raise ValueError("must be a number greater than 0, or several separated by commas (1e-3,2e-3)") from None
    if not rates or len(set(rates)) != len(rates):
        raise ValueError("must be one learning rate or several different ones")
    if len(rates) > MAX_RATES:
        raise ValueError(f"must list at most {MAX_RATES} learning rates")
    return rates[0] if len(rates) == 1 else tuple(rates)


def parse_betas(value: Any) -> tuple[float, float]:
    """Adam's two betas: [0.9, 0.999] or "0.9,0.999", each from 0 up to 1."""
    listed = value.split(",") if isinstance(value, str) else value if isinstance(value, (list, tuple)) else [value]
    try:
        betas = tuple(FRACTION(float(raw) if isinstance(raw, str) else raw) for raw in listed)
    except ValueError:
        betas = ()
    if len(betas) != 2:
        raise ValueError('must be two numbers from 0 up to (not including) 1, e.g. "0.9,0.999"')
    return betas  # type: ignore[return-value]


# --- the groups


@dataclass(frozen=True)
class DataSettings:
    """What decides the images a model trains and is scored on."""

    dataset: str = setting(
        "fashion-mnist", "The dataset trained on: {datasets} (idx:DIR: a folder of MNIST's four IDX files, .gz or "
        "not, as MNIST, KMNIST and EMNIST are published).", flags=("--dataset", "--data"), metavar="NAME")
    classes: tuple[int, ...] | None = setting(  # in output order; None: all of the dataset's
        None, 'Train and score on these classes of the dataset only, by number or name, e.g. "5,6" or '
        '"sandal,shirt".', shown="all of the dataset's", metavar="CLASSES")
    train_samples: int | None = setting(
        None, "Train on a seeded subset of N training images.", parse=optional(whole(1)),
        shown="all of the training split", metavar="N", cli=int)
    split_seed: int = setting(0, "Seed of the train/validation split.", parse=whole(0), metavar="SEED")


@dataclass(frozen=True)
class NetworkSettings:
    """What decides the network: its architecture, and how a scheme's start and scoring apply
    to it. ``bias`` and ``head_init`` are here because they say how the network's parts are
    filled (the scheme decides the rest), ``lesson_eval`` because it is the network's dropout
    left on when it is scored: each is read where the network is built, initialized or run."""

    network: str = setting("mlp", "The network trained: {networks} (one registered in initbench.models).",
                           flags=("--network", "--model"), metavar="NAME")
    hidden: tuple[int, ...] = setting(
        (256, 128), 'Hidden layer sizes, e.g. "256,128" or "256x10" (cnn: its fully connected ones, 128 unless '
        'given).', parse=parse_hidden, metavar="SIZES")
    activation: str = setting("relu", "Activation after each hidden layer.", parse=choice(ACTIVATIONS))
    dropout: float = setting(0.2, "Dropout after each hidden layer.", parse=FRACTION, metavar="P")
    bias: str = setting("scheme", "Biases: as the scheme sets them, zeros, or default (PyTorch's "
                        "U(-1/sqrt(n), 1/sqrt(n))).")
    head_init: str = setting("default", "Scheme of an output layer that pretrained:FILE cannot load (other "
                             "classes than the file's).", metavar="SCHEME")
    lesson_eval: bool = setting(
        False, "Score validation and test accuracy with dropout still on, as the lesson's helper does (it never "
        "calls model.eval()); each model's masks come from its seed's stream.", parse=flag)
    parametrization: str = setting(
        "sp", "sp: the scheme's weights and one learning rate; mup: μP (Tensor Programs V, Table 3) relative to "
        "--base-width: the output layer's weights scaled and each layer's Adam or SGD learning rate set by its "
        "width (mlp, resmlp; gpt: also q·k/d_head, its query and readout started at zero); depth-mup, completep: "
        "μP and each residual branch times (base depth / depth)^alpha, alpha 1/2 (depth-μP) or 1 (CompleteP), each "
        "block's Adam rate times (depth / base depth)^(alpha - 1) (resmlp, gpt).")
    # μP's base: the width of every hidden layer of the network whose numbers μP keeps (there μP = SP).
    # A fixed width rather than the network's own, so that one base serves a sweep over widths: the
    # lr tuned at 64 units (cheap) is the one μP transfers to wider networks. Read under mup only.
    base_width: int = setting(64, "With --parametrization mup: the hidden width at which μP's factors are 1 "
                              "(where its lr is tuned): sp's numbers, but for a gpt's zero query and readout.",
                              parse=whole(1, MAX_UNITS), metavar="N")
    # The depth parametrizations' base, as base_width is μP's: a resmlp of this many blocks keeps μP's numbers.
    base_depth: int = setting(2, "With --parametrization depth-mup or completep: the blocks at which each residual "
                              "branch's multiplier is 1 (where lr is tuned).", parse=whole(1, MAX_HIDDEN_LAYERS),
                              metavar="N")
    # A gpt's own (models/gpt.py): its width and depth are ``hidden``'s (128x4: four blocks of width 128).
    heads: int = setting(4, "gpt: attention heads per block (they divide the width).", parse=whole(1, MAX_UNITS),
                         metavar="N")
    context: int = setting(64, "gpt: the tokens it reads at once (a training window's length).",
                           parse=whole(1, MAX_UNITS), metavar="N")
    mlp_ratio: int = setting(4, "gpt: each block's MLP is this many times as wide as the block.",
                             parse=whole(1, 64), metavar="N")
    norm: str = setting("layernorm", "gpt: the norm of each residual branch.", parse=choice(NORMS))
    norm_position: str = setting("pre", "gpt: pre (before each residual branch, as GPT-2) or post (after each "
                                 "residual add, as the original transformer).", parse=choice(NORM_POSITIONS))
    tied: bool = setting(False, "gpt: the head shares the token embedding's weights.", parse=flag)
    residual_scale: float = setting(
        1.0, "gpt: the residual stream is multiplied by this before each branch's output is added (DeepNorm's "
        "alpha, (2L)^1/4 with L blocks).", parse=number(1e-6, 1e6, "from 1e-6 to 1e6"), metavar="ALPHA")

    @property
    def eval_dropout(self) -> bool:
        """Whether models are scored with dropout on (--lesson-eval, and dropout to leave on)."""
        return self.lesson_eval and self.dropout > 0


@dataclass(frozen=True)
class OptimSettings:
    """What decides how a network is trained on its data."""

    optimizer: str = setting("adam", "adam (torch.optim.Adam's defaults, as in the lesson) or sgd (with "
                             "--momentum).", parse=choice(OPTIMIZERS))
    # Several rates make a grid (config.RunConfig.lrs): a job's settings hold one.
    lr: float = setting(1e-3, "Learning rate; several (1e-3,2e-3,4e-3) train each scheme and seed at each, in one "
                        "population.", parse=parse_rates, metavar="RATES", cli=str)
    momentum: float = setting(0.9, "SGD's momentum.", parse=FRACTION, metavar="M")  # Adam has its own moments
    batch_size: int = setting(100, "Images per batch.", parse=whole(1), metavar="N")
    epochs: int = setting(2, "Training epochs per model.", parse=whole(1, MAX_EPOCHS), metavar="N")
    # Text has no passes: its windows are drawn at random, so an epoch of text is a number of steps.
    steps: int = setting(100, "On text: the training steps of an epoch (each a batch of windows drawn at random; "
                         "it is scored after each).", parse=whole(1, MAX_LOSSES), metavar="N")
    freeze: int = setting(0, "Keep the N lowest layers as initialized (not trained).", parse=whole(0), metavar="N")
    unfreeze_after: int | None = setting(
        None, "Train the frozen layers again after E epochs, with fresh Adam moments.", parse=optional(whole(1)),
        metavar="E", cli=int)
    unfreeze_lr: float | None = setting(None, "Their learning rate then.", parse=optional(POSITIVE),
                                        shown="a tenth of --lr", metavar="RATE", cli=float)

    betas: tuple[float, float] = setting((0.9, 0.999), "Adam's betas: the decay of its two moments.",
                                         parse=parse_betas, metavar="B1,B2", cli=str)
    weight_decay: float = setting(0.0, "L2 weight decay, as torch.optim.Adam's and SGD's weight_decay (added to "
                                  "the gradient).", parse=number(0.0, float("inf"), "of at least 0"),
                                  metavar="WD")

    def frozen(self, epoch: int) -> int:
        """How many of the lowest layers are frozen in ``epoch`` (0-based)."""
        return 0 if self.unfreeze_after is not None and epoch >= self.unfreeze_after else self.freeze

    @property
    def lr_unfrozen(self) -> float:
        """The learning rate of layers trained after being frozen."""
        return self.lr / 10 if self.unfreeze_lr is None else self.unfreeze_lr


# What each model of a population may have of its own: models that differ only in these train in one
# batched step (engines.batched), each with its own optimizer's numbers.
HYPERPARAMETERS = ("lr", "momentum", "betas", "weight_decay", "unfreeze_lr")
GPT_SETTINGS = ("heads", "context", "mlp_ratio", "norm", "norm_position", "tied", "residual_scale")  # a gpt's own
GROUPS = {"data": DataSettings, "network": NetworkSettings, "optim": OptimSettings}  # TrainSettings' fields
# The keys every store has held since its first row, in the order files and tables list them (the
# columns of files written before), then those added since, in the order they came.
FIRST = ("hidden", "dropout", "lr", "optimizer", "momentum", "batch_size", "epochs", "activation", "bias",
         "lesson_eval", "classes", "train_samples", "split_seed", "head_init", "freeze", "unfreeze_after",
         "unfreeze_lr")
LATER = ("dataset", "network", "parametrization", "base_width")
# Every flat key of a model's settings and the group that holds it: FIRST, LATER, then any other
# declared since (a new setting needs no line here).
FLAT = {key: group for group, cls in GROUPS.items() for key in cls.__dataclass_fields__}
FLAT = {key: FLAT[key] for key in (*FIRST, *LATER, *FLAT)}
# Settings added after stores were first written: stored (identity, rows, weights files' records) only
# where they differ from their defaults, so that every key and record written before stays valid.
ADDED = {key: getattr(GROUPS[FLAT[key]], key) for key in FLAT if key not in FIRST}


@dataclass(frozen=True)
class TrainSettings:
    """Everything about a model and its training except its scheme and seed: the data, the
    network, the optimization. Files, options and grids set them by flat keys (FLAT)."""

    data: DataSettings = DataSettings()
    network: NetworkSettings = NetworkSettings()
    optim: OptimSettings = OptimSettings()

    @classmethod
    def of(cls, **flat: Any) -> TrainSettings:
        """The default settings with ``flat`` keys (hidden=..., lr=...) changed."""
        return cls().replace(**flat)

    def replace(self, **flat: Any) -> TrainSettings:
        """These settings with ``flat`` keys changed, each in its group."""
        groups: dict[str, dict[str, Any]] = {}
        for key, value in flat.items():
            if key not in FLAT:
                raise TypeError(f"{key!r} is not a setting")
            groups.setdefault(FLAT[key], {})[key] = value
        return dataclasses.replace(self, **{group: dataclasses.replace(getattr(self, group), **changes)
                                            for group, changes in groups.items()})

    def flat(self) -> dict[str, Any]:
        """Every setting by its flat key, in FLAT's order."""
        return {key: getattr(getattr(self, group), key) for key, group in FLAT.items()}

    def plain(self, classes: tuple[int, ...]) -> dict[str, Any]:
        """The settings as stored: JSON-ready (tuples as lists, the classes as numbers:
        ``classes``, the dataset's where the settings name none, as ``data.stored`` gives
        them), an ADDED setting only where it is not its default."""
        flat = self.flat() | {"classes": classes}
        return {key: list(value) if isinstance(value, tuple) else value for key, value in flat.items()
                if key not in ADDED or value != ADDED[key]}

    @classmethod
    def from_plain(cls, plain: dict[str, Any]) -> TrainSettings:
        """Settings as ``plain`` stored them (a missing ADDED setting: its default)."""
        return cls.of(**{key: tuple(value) if isinstance(value, list) else value for key, value in plain.items()})


@dataclass(frozen=True)
class RunSettings:
    """What decides how a run goes, not what its models are: which schemes and seeds, where it
    trains, what it keeps and where. ``config.RunConfig`` adds the models' settings and the
    executor's."""

    schemes: tuple[str, ...] = setting(LESSON_SCHEMES, "Initialization schemes (`initbench schemes` lists "
                                       "them).", parse=parse_schemes, metavar="SCHEME")
    seeds: tuple[int, ...] = setting((0,), "Train each scheme with seeds 0..K-1.", parse=parse_seeds, shown="1",
                                     metavar="K", cli=int)
    expect: tuple[str, ...] = setting(  # judged when the run is written (analysis.expect)
        (), 'A condition on validation accuracy; when one fails, the command exits 1 once its results are written: '
        '"rule > uniform", "default >= 0.80" (or 80%), "kaiming_normal ~ lsuv" (cannot be told apart). With 2+ '
        "seeds judged on the paired 95% t-interval over seeds: > and < need it clear of 0, >= and <= fail only when "
        "it lies wholly on the wrong side; with 1 seed on the point values (~ needs 2+). Repeatable; replaces the "
        "config's expect list.", metavar="CONDITION", cli=list)
    plot_batches: int = setting(100, "Batches shown in loss_curves.png.", parse=whole(1), metavar="N")
    track_stats: bool = setting(False, "Record per-layer statistics at init and after every epoch "
                                "(layer_stats.csv).", parse=flag)
    device: str = setting("auto", "auto, cpu, cuda, cuda:N or mps.", parse=parse_device, metavar="DEVICE")
    engine: str = setting("auto", "batched: all models in one step; sequential: one plain model after another; "
                          "auto: batched where it writes out the network ({batched}), else sequential.")
    max_batch_models: int | None = setting(None, "At most this many models per batched step; more are trained in "
                                           "chunks.", parse=optional(whole(1)),
                                           shown="what fits in half the free memory", metavar="N", cli=int)
    data_dir: Path = setting(help="Where the datasets are kept.", factory=default_data_dir, parse=path,
                             shown=f"${DATA_DIR_ENV} or ~/.cache/initbench", metavar="DIR", cli=str)
    out: Path | None = setting(None, "Output folder.", parse=optional(path), flags=("--out", "-o"),
                               shown="results/<timestamp>-<schemes>", metavar="DIR", cli=str)
    overwrite: bool = setting(False, "Replace an --out folder that already holds files, whole.", parse=flag)
    save_weights: bool = setting(True, "Keep every model's final weights in weights/ (safetensors, with what they "
                                 "are and the accuracy they scored).", parse=flag,
                                 flags=("--save-weights/--no-save-weights",))
    save_init: bool = setting(False, "Also keep every model's initial weights, in weights/init/.", parse=flag)
    executor: str = setting("local", "local: train here; ray: each chunk of models as a task on a Ray cluster "
                            "(pip install 'initbench[ray]').")


TRANSFER_SCRATCH = ("rule", "default", "kaiming_normal", "xavier_normal", "lsuv")


@dataclass(frozen=True)
class TransferSettings:
    """The transfer experiment's own settings: task A and how its source networks are made and
    reused. Task B is a run (``TRANSFER_RUN`` its defaults where they are not compare's)."""

    task_a: tuple[int, ...] | None = setting(None, "Task A's classes.", shown="the others", metavar="CLASSES")
    source_scheme: str = setting("default", "Scheme of the source networks (without --source).", metavar="SCHEME")
    source_epochs: int = setting(OptimSettings.epochs, "Epochs of the source networks on task A (without --source).",
                                 parse=whole(1, MAX_EPOCHS), metavar="N")
    source_dir: Path | None = setting(
        None, "A compare run of task A (one scheme, a network per seed) to take the source networks from, instead "
        "of training them.", parse=optional(path), flags=("--source",), metavar="RUN_DIR", cli=str)
    freeze: int | None = setting(None, "Reused layers kept frozen.", parse=optional(whole(1)),
                                 shown="every layer below the output", metavar="N", cli=int)
    unfreeze_after: int = setting(5, "Epochs frozen before unfreezing, in the frozen-then-unfrozen start.",
                                  parse=whole(1), metavar="E")


# The classic set-up: task B is two classes with 200 training images, task A the other eight.
TRANSFER_RUN: dict[str, Any] = {"schemes": TRANSFER_SCRATCH, "classes": "sandal,shirt", "train_samples": 200,
                                "seeds": 10, "epochs": 20, "batch_size": 20}
SWEEP_RUN: dict[str, Any] = {"save_weights": False}  # a grid's weights can fill a disk: keep them when asked
EVALUATE_RUN: dict[str, Any] = {"device": "cpu"}  # scores are checked to the bit, as they were recorded: on the CPU


def declarations() -> dict[str, Declaration]:
    """Every setting of a run declared here, by key (the data, network, optimization and run
    groups; the transfer's own are ``declared(TransferSettings, "transfer")``)."""
    found: dict[str, Declaration] = {}
    for group, cls in (*GROUPS.items(), ("run", RunSettings)):
        found |= declared(cls, group)
    return found


def shown(key: str, value: Any) -> str:
    """A setting's value as tables and pictures show it: hidden 256x30, classes 5,6."""
    if key == "hidden":
        sizes = list(value)
        return f"{sizes[0]}x{len(sizes)}" if len(set(sizes)) == 1 and len(sizes) > 1 else ",".join(map(str, sizes))
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    if value is None or (isinstance(value, float) and math.isnan(value)):  # pandas reads None as NaN
        return "all" if key == "train_samples" else "none"
    return f"{value:g}" if isinstance(value, float) else str(value)

