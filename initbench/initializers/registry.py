"""The scheme registry: one name -> one way to fill a network's initial weights.

Most schemes are plain in-place functions of one Linear layer,
``fn(weight, bias, generator, ...)`` (``layer.py``, named like ``torch.nn.init``'s
functions, with a trailing underscore). A whole-model scheme (``whole.py``: LSUV,
pretrained) is ``fn(model, context, ...)``: it sees every layer at once, may use
real data or a file, and says where each layer's weights came from. Either way
the docstring states the formula and a reference on lines that begin with
``Formula:`` and ``Reference:``; ``register`` reads them from there, so the
docstring is the one place they are written. Adding a scheme is one decorated
function.

Keyword parameters after ``generator`` (or ``context``) are the scheme's own,
set from its name: ``uniform:-0.1,0.1`` calls ``uniform_(..., low=-0.1,
high=0.1)``; a scheme whose one parameter is ``path`` takes the rest of its name
as a file (``pretrained:runs/a/weights/rule-seed0.safetensors``). A parameter
called ``activation_gain`` is not set that way: it receives the gain of the
network's activation (``torch.nn.init.calculate_gain``; GELU, which it does not
know, gets ReLU's); nor is one called ``layer``: it receives the layer's record
(``Layer``: its place in the network, its fans, its residual wiring).

Every name follows one convention (``Scheme.convention``): "lesson" (the
lesson's own baselines), "torch" (``torch.nn.init``'s definition), "keras"
(``keras.initializers``' definition, whatever the activation, with Dense's zero
bias) or "paper" (no framework defines it). A Keras name means Keras's
initializer: ``he_normal``, ``glorot_normal`` and ``lecun_normal`` are their own
schemes (truncated normals, through ``variance_scaling_``, as Keras's
VarianceScaling); where Keras's initializer equals a scheme already here
(``glorot_uniform`` is ``xavier_uniform``), its names are ``ALIASES``.

All randomness comes from the ``generator`` argument, never from torch's
global generator: a fresh generator for each layer, the seed's (``streams.py``),
so a model's initial weights depend only on its seed and its scheme's rule.

A name that is no built-in scheme or alias may be a user's own function
(``path/to/file.py:function``, ``module:function``, a name registered in Python or
by an installed package): ``get`` asks ``user.py`` for it last, through ``extend``.

torch is imported inside the few functions that call it, not at the top: the
command line names and checks schemes before any work, and importing torch
would make every typo cost two seconds.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
from collections.abc import Callable, Container
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from initbench.errors import UsageError
from initbench.settings import DataSettings

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

    from initbench.models.mlp import MLP

InitFn = Callable[..., None]
ModelInitFn = Callable[..., list[str]]
GAIN = {"relu": math.sqrt(2.0), "tanh": 5.0 / 3, "sigmoid": 1.0, "gelu": math.sqrt(2.0), "selu": 0.75,
        "linear": 1.0}
BIAS_POLICIES = ("scheme", "zeros", "default")
CONVENTIONS = ("lesson", "torch", "keras", "paper")
# Keras's names (keras/src/initializers/__init__.py: class names, their snake_case
# and its own aliases) for schemes registered here that equal Keras's initializer
# with its defaults. Every alias follows the "keras" convention. Keras's "uniform"
# and "normal" (RandomUniform, RandomNormal) are not here: those names keep the
# lesson's meaning. An alias takes its scheme's parameters: Constant:0.5.
ALIASES = {
    "zero": "zeros", "Zeros": "zeros",
    "one": "ones", "Ones": "ones",
    "Constant": "constant",
    "random_uniform": "uniform:-0.05,0.05", "RandomUniform": "uniform:-0.05,0.05",  # minval, maxval defaults
    "random_normal": "normal:0.05", "RandomNormal": "normal:0.05",  # stddev default
    "truncated_normal": "trunc_normal:0.05", "TruncatedNormal": "trunc_normal:0.05",  # cut at 2 stddev
    "glorot_uniform": "xavier_uniform", "GlorotUniform": "xavier_uniform",
    "GlorotNormal": "glorot_normal",
    "HeUniform": "he_uniform",
    "HeNormal": "he_normal",
    "LecunUniform": "lecun_uniform",
    "LecunNormal": "lecun_normal",
    "Orthogonal": "orthogonal", "OrthogonalInitializer": "orthogonal", "orthogonal_initializer": "orthogonal",
}
ALIAS_CONVENTION = "keras"
FLOAT32_MAX = 3.4028234663852886e38  # weights are float32: a larger "finite" value would be inf
# Each scheme parameter: the values it may take, what it means and its range in words.
_FLOAT32 = "a finite float32 number (at most 3.4e38 in size)"
PARAMETERS: dict[str, tuple[Callable[[float], bool], str, str]] = {
    "value": (lambda v: abs(v) <= FLOAT32_MAX, "the weight every unit gets", _FLOAT32),
    "low": (lambda v: abs(v) <= FLOAT32_MAX, "the lower end of the range", _FLOAT32),
    "high": (lambda v: abs(v) <= FLOAT32_MAX, "the upper end of the range", _FLOAT32),
    "std": (lambda v: 0 < v <= FLOAT32_MAX, "the standard deviation", "a finite number above 0"),
    "gain": (lambda v: 0 < v <= FLOAT32_MAX, "the factor the weights are scaled by", "a finite number above 0"),
    "sparsity": (lambda v: 0 <= v < 1, "the fraction of each column's weights set to 0",
                 "from 0 up to (not including) 1"),
}
KERAS_TRUNCATED_STD = 0.87962566103423978  # std of a standard normal cut at +-2, as Keras writes it


@dataclass(frozen=True)
class Layer:
    """What a per-layer scheme may know of the layer it fills, beyond its tensors: a
    function with a parameter called ``layer`` receives this record.

    ``index`` counts the network's weighted layers from 0 (the input layer) to ``depth - 1``
    (the output layer); ``fan_in`` and ``fan_out`` follow torch's rules (a convolution's kernel
    counts its window); ``ends_branch``: the layer closes a residual branch (its output is
    added to the branch's input, as the last layer of resmlp's blocks ``x + W2 φ(W1 x)``),
    ``in_branch``: it lies inside one (W1 and W2 both), ``branches``: how many residual
    branches the network has (0 for an MLP). In a transformer (gpt), ``part`` is the tensor's
    role (``models.gpt.ROLES``: "token_embedding", "attention_query", "attention_output",
    "mlp_out", "head"...), ``block`` its block (0-based; None outside the blocks) and
    ``blocks`` the network's depth in blocks: what GPT-2's 1/sqrt(2L) or DeepNet's beta read;
    each block's attention output and MLP out close a residual branch."""

    index: int = 0
    depth: int = 1
    fan_in: int = 1
    fan_out: int = 1
    kind: str = "linear"  # "conv" (a convolution's kernel [out, in, k, k]) or "embedding" ([tokens, width])
    ends_branch: bool = False
    in_branch: bool = False
    branches: int = 0
    part: str = ""  # a transformer's tensor role; "" in a network without roles
    block: int | None = None
    blocks: int = 0

    @property
    def role(self) -> str:
        """"input" (the first layer, where the network has more than one), "output" (the
        last: the logits) or "hidden"."""
        return "output" if self.index == self.depth - 1 else "input" if self.index == 0 else "hidden"

    @property
    def name(self) -> str:
        """How messages name it: its state dict's prefix, or a transformer's role and block."""
        if self.part:
            return self.part + ("" if self.block is None else f" of block {self.block}")
        return f"layers.{self.index}"


def layer_records(model: nn.Module) -> list[Layer]:
    """Each weighted layer of ``model`` as a per-layer scheme sees it (``Layer``), read from
    its ``layers`` and, where it has one, its ``wiring`` (which layers close a residual branch)."""
    wiring = getattr(model, "wiring", ())
    ends = {i: w.skip for i, w in enumerate(wiring) if w.skip is not None}
    inside = {i for end, start in ends.items() for i in range(start, end + 1)}
    depth = len(model.layers)
    parts = getattr(model, "parts", None) or [("", None)] * depth  # a transformer's roles (models.gpt)
    blocks = len({block for _, block in parts if block is not None})
    if parts[0][0]:  # a transformer: each block's attention output and MLP out close a residual branch
        ends = {i: i for i, (part, _) in enumerate(parts) if part in ("attention_output", "mlp_out")}
        inside = {i for i, (_, block) in enumerate(parts) if block is not None}
    return [Layer(i, depth, fan_in(layer.weight), fan_out(layer.weight), _kind(layer), i in ends, i in inside,
                  len(ends), part, block, blocks)
            for i, (layer, (part, block)) in enumerate(zip(model.layers, parts))]


def _kind(layer: nn.Module) -> str:
    from torch import nn

    return "embedding" if isinstance(layer, nn.Embedding) else "conv" if layer.weight.dim() > 2 else "linear"


@dataclass(frozen=True)
class InitContext:
    """What a scheme may use besides the model: the seed's random streams, the network's
    activation and bias policy, real training images (for a data-dependent scheme), the
    data the model is for (its dataset and classes), and the scheme of the layers a
    whole-model scheme does not fill itself (pretrained's new output layer).

    The streams are the seed's, not the scheme's: every scheme of a seed gets the same
    ``generator`` and the same ``layer_generator(i)``, so two schemes differ by their rule
    alone (common random numbers): ``normal`` at twice the std draws exactly twice the
    weights, and one function under two names draws the same ones."""

    generator: torch.Generator  # the seed's stream for a whole-model scheme's own draws
    activation: str = "relu"
    bias: str = "scheme"  # one of BIAS_POLICIES
    batch: Tensor | None = None
    data: DataSettings = DataSettings()
    head_init: str = "default"
    layer_streams: Callable[[int, str], torch.Generator] | None = None  # streams.start gives the seed's

    def layer_generator(self, index: int, part: str = "weights") -> torch.Generator:
        """A generator at the start of layer ``index``'s stream: the numbers every scheme of
        the seed draws that layer from, whatever it drew for the layers before; ``part``
        "bias": --bias default's stream, apart from what the scheme draws (``generator`` itself
        where no per-layer streams were given)."""
        return self.generator if self.layer_streams is None else self.layer_streams(index, part)


@dataclass(frozen=True)
class Scheme:
    name: str  # as it is keyed: "uniform", with its parameters "uniform:-0.1,0.1", "pretrained:<SHA-256>"
    init: InitFn | None  # per layer: fn(weight, bias, generator, activation_gain, layer), its own parameters bound
    summary: str
    formula: str
    reference: str
    params: tuple[str, ...] = ()  # the scheme's own parameters, in the order a name gives them
    data_dependent: bool = False  # fitted on a batch of real data (LSUV)
    convention: str = "paper"  # whose definition the name follows: one of CONVENTIONS, or user.CONVENTION
    init_model: ModelInitFn | None = None  # whole model: fn(model, context) -> each layer's provenance
    origin: str = ""  # a user's scheme (user.py): where its code comes from, in words; "" for a built-in
    check: Callable[[nn.Linear | nn.Conv2d, str], None] | None = None  # a user's scheme: refuses a layer it left wrong
    matrices_only: bool = False  # fills [out, in] matrices, not convolutions' kernels (sparse)
    residual_only: bool = False  # starts residual branches (fixup): a network without them is refused
    roles_only: bool = False  # fills a transformer by its tensors' roles (gpt2): a network without roles is refused
    fn: Callable[..., Any] | None = None  # a registered scheme's function, whose own parameters a name binds
    whole_model: bool = False  # fn(model, context, ...) rather than fn(weight, bias, generator, ...)
    uniform_width: Callable[..., float] | None = None  # drawing U[a, b): the widest b - a, from its parameters

    @property
    def takes_file(self) -> bool:
        """Whether the name's parameter is a file (pretrained:PATH), keyed by its SHA-256."""
        return self.params == (TEXT_PARAM,)

    def initialize(self, model: MLP, context: InitContext) -> list[str]:
        """Fill ``model``'s weights in place; return, per layer, where its weights came from."""
        if self.init_model is not None:
            return self.init_model(model, context)
        for record, layer in zip(layer_records(model), model.layers):
            self.init_layer(layer, context.layer_generator(record.index), context.activation, context.bias, record,
                            context.layer_generator(record.index, "bias"))
        return [f"initialized by {self.name}"] * len(model.layers)

    def init_layer(self, layer: nn.Linear | nn.Conv2d, generator: torch.Generator | None, activation: str = "relu",
                   bias: str = "scheme", record: Layer | None = None,
                   bias_generator: torch.Generator | None = None) -> None:
        """Initialize one layer (``record``: what it is in its network; a lone layer when not
        given); ``bias`` = "zeros" or "default" (PyTorch's U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
        from ``bias_generator``, else after the scheme's draws from ``generator``) overrides the
        scheme's own bias."""
        import torch

        if self.init is None:
            raise UsageError(f"Scheme {self.name!r} initializes whole models, not single layers.")
        if record is None:
            record = Layer(0, 1, fan_in(layer.weight), fan_out(layer.weight), _kind(layer))
        # An embedding has no bias: the scheme gets an empty one, which it fills (or draws) nothing into.
        own_bias = getattr(layer, "bias", None)
        with torch.no_grad():
            self.init(layer.weight, layer.weight.new_empty(0) if own_bias is None else own_bias, generator,
                      GAIN[activation], record)
        if own_bias is not None:
            bias_policy_(layer, bias, bias_generator or generator)
        if self.check is not None:  # after the bias policy: a bias it replaces may be left unset
            self.check(layer, record.name)


def fan_in(weight: Tensor) -> int:
    """A unit's inputs by torch's rule (``torch.nn.init._calculate_fan_in_and_fan_out``): a
    Linear weight [out, in] has ``in``, a convolution's kernel [out, in, k, k] ``in * k * k``."""
    return weight[0].numel()


def fan_out(weight: Tensor) -> int:
    """An input's outputs by torch's rule: ``out`` of a Linear weight, ``out * k * k`` of a kernel."""
    return weight.shape[0] * weight[0, 0].numel()


def bias_policy_(layer: nn.Linear | nn.Conv2d, bias: str, generator: torch.Generator | None) -> None:
    """Apply --bias after a scheme: "zeros", "default" (PyTorch's U(-1/sqrt(fan_in),
    1/sqrt(fan_in)), from ``generator``, as nn.Linear and nn.Conv2d draw it) or "scheme"
    (leave the scheme's own)."""
    import torch

    with torch.no_grad():
        if bias == "zeros":
            layer.bias.zero_()
        elif bias == "default":
            bound = 1.0 / math.sqrt(fan_in(layer.weight))
            layer.bias.uniform_(-bound, bound, generator=generator)


_REGISTRY: dict[str, Scheme] = {}  # by name, as registered (its parameters at their defaults)
TEXT_PARAM = "path"  # a scheme whose one parameter has this name takes the rest of its name as text
# Parameters a name does not set: those a per-layer function receives when it has them (the activation's
# gain, the layer's record: ``Layer``), and a file scheme's SHA-256 (read from the file).
SET_BY_CALLER = ("activation_gain", "layer")
SET_BY_REGISTRY = (*SET_BY_CALLER, "sha256")


def register(name: str, convention: str = "paper", data_dependent: bool = False, whole_model: bool = False,
             uniform_width: Callable[..., float] | None = None,
             matrices_only: bool = False, residual_only: bool = False,
             roles_only: bool = False) -> Callable[[InitFn], InitFn]:
    """Add ``fn`` to the registry under ``name``, with its docstring's formula and reference
    and the convention (one of CONVENTIONS) whose definition it follows; ``whole_model``:
    ``fn(model, context, ...)`` rather than ``fn(weight, bias, generator, ...)``;
    ``matrices_only``: it fills Linear layers only, and a convolutional network is refused;
    ``residual_only``: it starts residual branches, and a network without them is refused;
    ``roles_only``: it reads a transformer's tensor roles (``Layer.part``), and a network
    without them is refused;
    ``uniform_width``: of a scheme that draws U[a, b), the widest b - a from its parameters
    (in any layer), which a name's parameters must keep finite."""

    def add(fn: InitFn) -> InitFn:
        doc = inspect.getdoc(fn) or ""
        fields = doc_fields(doc)
        if name in _REGISTRY or name in ALIASES or set(fields) != {"Formula", "Reference"}:
            raise ValueError(f"scheme {name!r}: duplicate name or docstring without Formula:/Reference:")
        if convention not in CONVENTIONS:
            raise ValueError(f"scheme {name!r}: convention must be one of {', '.join(CONVENTIONS)}")
        own = list(inspect.signature(fn).parameters)[2 if whole_model else 3:]
        params = tuple(p for p in own if p not in SET_BY_REGISTRY)
        _REGISTRY[name] = _bind(Scheme(name, None, doc.splitlines()[0], fields["Formula"], fields["Reference"],
                                       params, data_dependent, convention, matrices_only=matrices_only,
                                       residual_only=residual_only, roles_only=roles_only, fn=fn,
                                       whole_model=whole_model, uniform_width=uniform_width), name)
        return fn

    return add


def doc_fields(doc: str) -> dict[str, str]:
    """A docstring's ``Formula:`` and ``Reference:`` lines, by those names (those present)."""
    return {key: line.split(":", 1)[1].strip() for line in doc.splitlines() for key in ("Formula", "Reference")
            if line.startswith(key + ":")}


def _bind(scheme: Scheme, key: str, **values: float | str) -> Scheme:
    """``scheme`` keyed as ``key``, its function's own parameters set to ``values``."""
    fn = scheme.fn
    assert fn is not None, scheme.name  # a registered scheme's
    if scheme.whole_model:
        return dataclasses.replace(scheme, name=key, init=None,
                                   init_model=lambda model, context: fn(model, context, **values))
    return dataclasses.replace(scheme, name=key, init=_layer_init(fn, **values))


@dataclass(frozen=True)
class Extension:
    """Schemes the registry does not hold itself (user.py: users' own), asked after the
    built-ins: ``resolve`` a name (None: not one of its own), list its ``catalogue`` rows,
    tell a ``whole_model`` name. An extension adds itself with ``extend`` when imported, so
    the registry never imports the modules that extend it (imports run one way)."""

    resolve: Callable[[str], Scheme | None]
    catalogue: Callable[[], list[dict]]
    whole_model: Callable[[str], bool]


_EXTENSIONS: list[Extension] = []


def extend(extension: Extension) -> None:
    _EXTENSIONS.append(extension)


def whole_model(name: str) -> bool:
    """Whether the scheme ``name`` (registered, or a user's by its canonical name without
    parameters) initializes whole models rather than layers."""
    return (name in _REGISTRY and _REGISTRY[name].whole_model) or any(e.whole_model(name) for e in _EXTENSIONS)


def _layer_init(fn: InitFn, **params: float) -> InitFn:
    """fn as (weight, bias, generator, activation_gain, layer), whether or not it uses the
    gain or the layer's record (``callers_values``)."""
    wants = inspect.signature(fn).parameters

    def init(weight: Tensor, bias: Tensor, generator: torch.Generator | None, activation_gain: float,
             layer: Layer | None = None) -> None:
        fn(weight, bias, generator, **params, **callers_values(wants, activation_gain, layer))

    return init


def callers_values(wants: Container[str], activation_gain: float, layer: Layer | None) -> dict[str, Any]:
    """What a per-layer function receives of SET_BY_CALLER, those of its parameters it has."""
    return {k: v for k, v in zip(SET_BY_CALLER, (activation_gain, layer)) if k in wants}


def names() -> list[str]:
    return list(_REGISTRY)


def catalogue() -> list[dict]:
    """Every scheme with how to write it, its convention, its aliases (each with the
    name it equals and its convention), summary, formula, reference and origin: the
    built-in ones, then users' (registered in Python, or by installed packages)."""
    aliases: dict[str, list[dict]] = {}
    for alias, target in ALIASES.items():
        aliases.setdefault(target.partition(":")[0], []).append(
            {"name": alias, "equals": target, "convention": ALIAS_CONVENTION})
    return [{"name": s.name, "usage": usage(s), "convention": s.convention, "aliases": aliases.get(s.name, []),
             "summary": s.summary, "formula": s.formula, "reference": s.reference, "data_dependent": s.data_dependent,
             "origin": "initbench"}
            for s in _REGISTRY.values()] + [row for e in _EXTENSIONS for row in e.catalogue()]


def _required(name: str) -> list[str]:
    return [p.name for p in inspect.signature(_REGISTRY[name].fn).parameters.values()  # type: ignore[arg-type]
            if p.kind == p.KEYWORD_ONLY and p.default is p.empty and p.name not in SET_BY_REGISTRY]


def usage(scheme: Scheme) -> str:
    """How a scheme is written with its parameters: "uniform[:LOW,HIGH]", "constant:VALUE"."""
    name = scheme.name.partition(":")[0]
    if not scheme.params:
        return name
    params = ",".join(p.upper() for p in scheme.params)
    return f"{name}:{params}" if _required(name) else f"{name}[:{params}]"


def get(spec: str) -> Scheme:
    """The scheme a name stands for: a registered name, ``name:p1,p2`` to set its
    parameters, an alias (``Constant:0.5`` sets the parameters of the scheme it names), or
    a user's own (user.py: ``file.py:function``, ``module:function``, a name registered
    in Python or by an installed package), which built-in names and aliases take
    precedence over. An unknown name names the closest match and the valid ones."""
    given = spec
    name, _, args = spec.partition(":")
    if name in ALIASES:
        target = ALIASES[name]
        spec = f"{target.partition(':')[0]}:{args}" if args else target
        name, _, args = spec.partition(":")
    if name not in _REGISTRY:
        for extension in _EXTENSIONS:
            if (own := extension.resolve(given)) is not None:
                return own
        known = [*_REGISTRY, *ALIASES]
        lower = {k.lower(): k for k in reversed(known)}  # HENORMAL -> HeNormal; zeros before Zeros
        close = (difflib.get_close_matches(name, known, n=1, cutoff=0.5)
                 or [lower[k] for k in difflib.get_close_matches(name.lower(), lower, n=1, cutoff=0.5)])
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UsageError(f"Unknown scheme {name!r}.{hint} Valid schemes: {', '.join(_REGISTRY)}. "
                             f"Keras's names are accepted too: {', '.join(ALIASES)}. "
                             "`initbench schemes` lists them all with their formulas. Your own function is "
                             "path/to/file.py:function or module:function.")
    scheme = _REGISTRY[name]
    if scheme.takes_file:
        return _text_scheme(scheme, given, args)
    required = _required(name)
    if not args and not required:
        return scheme
    try:
        values = [float(a) for a in args.split(",")] if args else []
    except ValueError:
        values = []
    if not scheme.params:
        raise UsageError(f"Scheme {name!r} takes no parameters (got {given!r}).")
    if not len(required) <= len(values) <= len(scheme.params) or not values:
        raise UsageError(f"Bad parameters in scheme {given!r}: write {usage(scheme)}, with numbers.")
    params = dict(zip(scheme.params, values))
    defaults = {p.name: p.default for p in inspect.signature(scheme.fn).parameters.values()  # type: ignore[arg-type]
                if p.name in scheme.params and isinstance(p.default, (int, float))}
    _check_parameters(given, name, defaults | params)  # uniform:5 is [5, 1): checked with the default it keeps
    return _bind(scheme, spec, **params)


def _text_scheme(scheme: Scheme, given: str, path: str) -> Scheme:
    """A scheme of a file (pretrained:PATH), keyed by the file's content, not its path: the
    same weights under another name are the same scheme, and changed weights are not."""
    from initbench.models import checkpoint

    if not path:
        raise UsageError(f"Scheme {given!r} needs a file: write {usage(scheme)}.")
    digest = checkpoint.check_source(path, given)
    return _bind(scheme, f"{scheme.name}:{digest}", path=path, sha256=digest)


def _check_parameters(spec: str, name: str, params: dict[str, float]) -> None:
    """Refuse, when the name is parsed, a parameter outside its range (before any training),
    or parameters of scheme ``name`` that torch would refuse to draw from."""
    for param, value in params.items():
        valid, meaning, allowed = PARAMETERS[param]
        if not valid(value):
            raise UsageError(f"Bad parameter in scheme {spec!r}: {param} ({meaning}) must be {allowed}; "
                                 f"got {value:g}.")
    if "low" in params and "high" in params and not params["low"] < params["high"]:
        raise UsageError(f"Bad parameters in scheme {spec!r}: low must be below high "
                             f"(got low {params['low']:g}, high {params['high']:g}).")
    width = _REGISTRY[name].uniform_width
    if width is not None and width(**params) > FLOAT32_MAX:  # torch draws U[a, b) only for a finite b - a
        raise UsageError(f"Bad parameters in scheme {spec!r}: the range its weights are drawn from would be "
                         f"{width(**params):g} wide, more than float32's largest number (3.4e38). Give parameters "
                         "of a finite range.")
