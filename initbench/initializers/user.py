"""Users' own schemes: functions initbench did not write, anywhere a scheme name goes.

A scheme is written as
  - ``path/to/my_inits.py:scaled_normal_``: a function in a Python file (a name that ends
    in ``.py`` or holds a ``/``);
  - ``package.module:scaled_normal_``: a function in a module Python can import;
  - a name given to ``register_function(fn, name)`` in this process (the API's
    ``@ib.scheme``), or by an installed package under the entry-point group
    ``initbench.schemes`` (``initbench schemes`` lists those, with their package);
each with numbers after a further colon for the function's own keyword parameters, in
order (``my_inits.py:scaled_normal_:0.5``), as built-ins take theirs. Built-in names and
aliases come first; then registered names and entry points; then files and modules.

The contract is the built-ins': ``fn(weight, bias, generator, ...)`` fills one layer in
place (a parameter ``activation_gain`` receives the activation's gain, one called
``layer`` the layer's record, ``registry.Layer``: its place, fans, residual wiring), and a function
whose first parameter is called ``model`` is ``fn(model, context, ...)``, fills the whole
model (under ``torch.no_grad()``, with a batch of real images in ``context.batch``) and may
return each layer's provenance. Its docstring's ``Formula:`` and ``Reference:`` lines are
shown when present.

Importing user code runs it: a file or module is executed when its scheme is first named.

Identity follows the code, not where it lies: the canonical name, which keys a job (its
random streams are its seed's alone), is ``function@<SHA-256>[:parameters]``, of the
file's bytes for a file scheme, of the function's source otherwise (``inspect.getsource``;
its compiled code when there is none). So editing the function trains its jobs anew, and
a moved file does not.

Careless code stays reproducible and checked: before it runs, torch's global generator is
seeded from the layer's own stream, the seed's (and restored after), so a function that ignores
``generator`` still draws its seed's numbers, whatever is trained beside it; the
tensors it gets hold NaN until it fills them, and a layer left NaN or infinite, of another
shape or dtype, is refused. Errors in user code are one paragraph naming it.

User code cannot end, hang or bend a run (``_user_code``, wherever it runs): SystemExit, a
KeyboardInterrupt it raises itself and GeneratorExit are errors naming it too; a stop signal
stays an interruption whatever it does with it (a second one ends a scheme that swallowed the
first); torch's global settings (default dtype and device, threads, determinism, grad mode...)
are set back after it, or it is refused; what it prints goes to stderr.

Ray workers do not read the user's files: a task carries a ``Shipment`` (each file's
content by SHA-256, registered functions, the canonical name each spec had here), and
the worker resolves specs from it; importable code must be the same on every machine.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import linecache
import marshal
import math
import re
import sys
import traceback
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout, suppress
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from initbench import errors, paths
from initbench.errors import InitbenchError, UsageError
from initbench.initializers.registry import (
    ALIASES,
    SET_BY_CALLER,
    Extension,
    InitContext,
    Layer,
    Scheme,
    callers_values,
    doc_fields,
    extend,
    names,
)

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

    from initbench.models.mlp import MLP

GROUP = "initbench.schemes"  # the entry-point group installed packages register schemes in
CONVENTION = "user"  # a user's scheme follows its own definition
_MODULE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
_OWN_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
WHOLE_MODEL: set[str] = set()  # canonical names (without parameters) of users' whole-model schemes
_INITBENCH = str(Path(__file__).resolve().parent.parent)  # initbench's own files: not where user code failed


@dataclass(frozen=True)
class Code:
    """A user's function, the SHA-256 that identifies it, and where it comes from, in words."""

    fn: Callable[..., Any]
    digest: str
    origin: str


@dataclass(frozen=True)
class Source:
    """A scheme file's content as read, and the path it was read at (tracebacks name it)."""

    filename: str
    data: bytes


@dataclass(frozen=True)
class Shipment:
    """What a Ray task carries so that its worker runs the code this process keyed."""

    sources: dict[str, Source]  # by SHA-256
    paths: dict[str, str]  # a file as specs write it -> its SHA-256
    functions: dict[str, Code]  # registered in Python, by name (Ray pickles a notebook's by value)
    names: dict[str, str]  # each spec resolved here -> its canonical name


_REGISTERED: dict[str, Code] = {}
_READ: dict[str, tuple[str, Source]] = {}  # a file as specs write it -> (SHA-256, content) when last read
_SHIPPED: dict[str, tuple[str, Source]] = {}  # on a Ray worker: the same, from the task
_EXPECTED: dict[str, str] = {}  # on a Ray worker: spec -> the canonical name it had where the run started
_RESOLVED: dict[str, str] = {}  # spec -> canonical name, as resolved in this process
_MODULES: dict[tuple[str, str], types.ModuleType] = {}  # a file's module, by (SHA-256, path)
_DIGESTS: dict[Callable[..., Any], str] = {}  # a function's source digest, when first seen


def register_function(fn: Callable[..., Any], name: str | None = None) -> str:
    """Make ``fn`` a scheme called ``name`` (by default its ``__name__``) in this process,
    replacing one registered before under that name; returns the name, to use as a scheme
    (with parameters: ``name:0.5``). A built-in scheme's name or alias is refused."""
    name = name or getattr(fn, "__name__", "")
    if not callable(fn):
        raise UsageError(f"A scheme must be a function; got {type(fn).__name__} {fn!r}.")
    if not name or ":" in name or "," in name:
        raise UsageError(f"Give the scheme a name without ':' or ',' (register_function(fn, name=...)); got {name!r}.")
    if name in names() or name in ALIASES:
        raise UsageError(f"{name!r} is a built-in scheme's name, which keeps its meaning. Register the function "
                         "under another name (register_function(fn, name=...)).")
    code = Code(fn, _source_digest(fn, name), f"registered in Python ({_qualified(fn)})")
    _parameters(name, code)  # its signature checked now, not when it trains
    _REGISTERED[name] = code
    return name


def scheme(spec: str) -> Scheme | None:
    """The user's scheme ``spec`` names (its code loaded and checked), or None when ``spec``
    is not written as one (registry.get then says it is unknown)."""
    found = _code(spec)
    if found is None:
        return None
    label, code, args = found
    built = _scheme(label, code, args)
    expected = _EXPECTED.get(spec)
    if expected is not None and built.name != expected:
        raise InitbenchError(f"On this Ray worker, {label} is other code than where the run started ({code.origin} "
                             "differs): install the same version of it on every machine of the cluster, or give the "
                             "function as a file (path/to/file.py:function), which travels with the tasks.")
    _RESOLVED[spec] = built.name
    return built


def stem(spec: str) -> str:
    """``spec`` as a file or folder name may hold it: a user's file or module scheme by its
    file's or module's last name and its function (``my_inits.scaled_normal_-0.5``); any
    other name as it is. Read from the text alone, nothing loaded."""
    name, (head, attr, args) = spec.partition(":")[0], _parts(spec)  # a name of its own holds no colon
    if name in names() or name in ALIASES or name in _REGISTERED or not attr.isidentifier() or not (
            _is_file(head) or _MODULE.fullmatch(head)):
        return spec
    base = Path(head).stem if _is_file(head) else head.rpartition(".")[2]
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", f"{base}.{attr}" + (f"-{args}" if args else ""))


def catalogue() -> list[dict]:
    """The schemes registered in Python and by installed packages, as registry.catalogue
    lists them; one that cannot be loaded is listed with why, not skipped."""
    rows = []
    for name in dict.fromkeys([*_REGISTERED, *_entry_points()]):
        row = {"name": name, "usage": name, "convention": CONVENTION, "aliases": [], "summary": "", "formula": "",
               "reference": "", "data_dependent": False, "origin": _entry_origin(name)}
        try:
            if name in names() or name in ALIASES:
                raise UsageError("a built-in scheme has this name, which keeps its meaning; rename the entry point.")
            code = _REGISTERED.get(name) or _entry_code(name)
            own, required, whole = _parameters(name, code)
            doc = inspect.getdoc(code.fn) or ""
            fields = doc_fields(doc)
            row |= {"usage": _usage(name, own, required), "summary": doc.partition("\n")[0],
                    "formula": fields.get("Formula", ""), "reference": fields.get("Reference", ""),
                    "data_dependent": whole, "origin": code.origin}
        except InitbenchError as e:
            row["summary"] = f"cannot be used: {e}"
        rows.append(row)
    return rows


def shipment() -> Shipment:
    """The user code this process has resolved, for a Ray task to carry."""
    return Shipment({digest: source for digest, source in _READ.values()},
                    {path: digest for path, (digest, _) in _READ.items()}, dict(_REGISTERED), dict(_RESOLVED))


def receive(shipped: Shipment) -> None:
    """On a Ray worker: resolve specs from what the task carries, not from this machine's files."""
    _SHIPPED.update({path: (digest, shipped.sources[digest]) for path, digest in shipped.paths.items()})
    _REGISTERED.update(shipped.functions)
    _EXPECTED.update(shipped.names)


# --- finding the code


def _is_file(head: str) -> bool:
    return head.endswith(".py") or "/" in head or "\\" in head


def _parts(spec: str) -> tuple[str, str, str]:
    """``spec`` as (file or module, function, parameters): a file's name may hold colons
    (``my:inits.py:f``), so a head that is a .py file runs to the first ".py:"; any other to
    the first colon (a module's name, or a file's without .py, holds none)."""
    found = spec.find(".py:")
    head, _, rest = (spec[:found + 3], ":", spec[found + 4:]) if found >= 0 else spec.partition(":")
    attr, _, args = rest.partition(":")
    return head, attr, args


def _code(spec: str) -> tuple[str, Code, str] | None:
    """(what errors call it, its code, the text of its parameters), or None."""
    name, _, rest = spec.partition(":")  # registered names hold no colon
    if name in _REGISTERED:
        return name, _REGISTERED[name], rest
    if name in _entry_points():
        return name, _entry_code(name), rest
    head, attr, args = _parts(spec)
    label = f"{head}:{attr}"
    if _is_file(head):
        if not attr.isidentifier():
            raise UsageError(f"Scheme {spec!r}: after the file, name its function: path/to/file.py:function "
                             "(and :numbers for its parameters).")
        return label, _file_code(head, attr, spec), args
    if _MODULE.fullmatch(head) and attr.isidentifier():
        return label, _module_code(head, attr, spec), args
    return None


def _file_code(path: str, attr: str, spec: str) -> Code:
    """The function ``attr`` of the file ``path`` (as shipped to a Ray worker, or read),
    keyed by the file's bytes. Read every time: an edited file is another scheme."""
    if path in _SHIPPED:
        digest, source = _SHIPPED[path]
    else:
        file = Path(path).expanduser()
        if (why := paths.problem(file, "file")) is not None:
            raise UsageError(f"Scheme {spec!r}: the file {path} {why}. Give the path of a Python file that defines "
                             "the function, as path/to/file.py:function.")
        try:
            source = Source(str(file.resolve()), file.read_bytes())
        except OSError as e:
            raise UsageError(f"Scheme {spec!r}: the file {path} cannot be read: {e.strerror}.") from None
        digest = hashlib.sha256(source.data).hexdigest()
        _READ[path] = digest, source
    module = _MODULES.get((digest, source.filename)) or _run_file(digest, source, spec)
    return Code(_attribute(module, attr, spec, f"the file {path}"), digest, f"file {source.filename}")


def _run_file(digest: str, source: Source, spec: str) -> types.ModuleType:
    """The module a file's content makes, run once per content and path."""
    try:
        compiled = compile(source.data, source.filename, "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as e:  # ValueError: null bytes
        where = f" line {e.lineno}" if getattr(e, "lineno", None) else ""
        raise UsageError(f"Scheme {spec!r}: {source.filename}{where} is not valid Python: "
                         f"{getattr(e, 'msg', e)}. Fix the file.") from None
    name = f"initbench_user_{digest[:16]}"
    module = types.ModuleType(name)
    module.__file__ = source.filename
    sys.modules[name] = module  # a module's own code (dataclasses, pickling) may look itself up there
    # Tracebacks show its lines even where the file is not (a Ray worker), or was edited since.
    text = source.data.decode(errors="replace")
    linecache.cache[source.filename] = (len(text), None, text.splitlines(keepends=True), source.filename)
    try:
        with _user_code(f"the file {source.filename}", lambda e: UsageError(
                f"Scheme {spec!r}: running {source.filename} failed: {_raised(e, source.filename)}. Fix the file "
                "(its code runs when the scheme is named).")):
            exec(compiled, module.__dict__)
    except BaseException:
        del sys.modules[name]
        raise
    _MODULES[digest, source.filename] = module
    return module


def _module_code(module_name: str, attr: str, spec: str) -> Code:
    def failed(e: BaseException) -> UsageError:
        if isinstance(e, ModuleNotFoundError) and e.name and f"{module_name}.".startswith(f"{e.name}."):
            close = difflib.get_close_matches(module_name, [*names(), *ALIASES], n=1)
            return UsageError(f"Unknown scheme {spec!r}: no built-in scheme is called {module_name!r}"
                              + (f" (did you mean {close[0]!r}?)" if close else "")
                              + f", and Python cannot import a module {e.name!r} for module:function. "
                              "`initbench schemes` lists the schemes; your own function in a file is "
                              "path/to/file.py:function.")
        return UsageError(f"Scheme {spec!r}: importing {module_name} failed: {_raised(e)}. Fix the module (its code "
                          "runs when the scheme is named).")

    top = module_name.partition(".")[0]
    if top not in sys.modules and importlib.util.find_spec(top) is None:  # a typo: said before torch loads
        raise failed(ModuleNotFoundError(name=top))
    with _user_code(f"the module {module_name}", failed):
        module = importlib.import_module(module_name)
    fn = _attribute(module, attr, spec, f"the module {module_name}")
    return Code(fn, _source_digest(fn, spec), f"module {module_name}")


@cache
def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    """Installed packages' schemes by name (read once a process: installing one needs a new process)."""
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=GROUP)}


def _entry_origin(name: str) -> str:
    ep = _entry_points().get(name)
    if ep is None or name in _REGISTERED:
        return "registered in Python"
    dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist is not None else "an installed package"
    return f"package {dist} (entry point {ep.value})"


def _entry_code(name: str) -> Code:
    ep = _entry_points()[name]
    with _user_code(f"the package of scheme {name}", lambda e: UsageError(
            f"Scheme {name!r} of {_entry_origin(name)} cannot be loaded: {_raised(e)}. Reinstall that package, or "
            "fix it.")):
        fn = ep.load()
    if not callable(fn):
        raise UsageError(f"Scheme {name!r} of {_entry_origin(name)} is {type(fn).__name__}, not a function.")
    return Code(fn, _source_digest(fn, name), _entry_origin(name))


def _attribute(module: types.ModuleType, attr: str, spec: str, where: str) -> Callable[..., Any]:
    if not hasattr(module, attr):
        functions = [n for n, v in vars(module).items() if inspect.isfunction(v) and not n.startswith("_")]
        raise UsageError(f"Scheme {spec!r}: {where} has no function {attr!r}"
                         + (f"; it defines {', '.join(functions)}." if functions else ".")
                         + " Name one it defines after the colon.")
    fn = getattr(module, attr)
    if not callable(fn):
        raise UsageError(f"Scheme {spec!r}: {attr} in {where} is {type(fn).__name__}, not a function.")
    return fn


def _source_digest(fn: Callable[..., Any], label: str) -> str:
    """SHA-256 of a function's source as first seen in this process (the code it runs),
    or of its compiled code (without its file name) when there is no source."""
    if fn in _DIGESTS:
        return _DIGESTS[fn]
    try:
        data = inspect.getsource(fn).encode()
    except (OSError, TypeError):
        code = getattr(fn, "__code__", None) or getattr(getattr(fn, "__call__", None), "__code__", None)
        if code is None:
            raise UsageError(f"Scheme {label!r}: initbench cannot read the code of {fn!r} to key its results by. Give "
                             "a function defined with def.") from None
        data = marshal.dumps(code.replace(co_filename=""))
    _DIGESTS[fn] = hashlib.sha256(data).hexdigest()
    return _DIGESTS[fn]


def _qualified(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


# --- the scheme


def _parameters(label: str, code: Code) -> tuple[list[inspect.Parameter], list[str], bool]:
    """The function's own parameters (set by a name's numbers), the required ones, and
    whether it fills whole models (its first parameter is called ``model``)."""
    try:
        signature = inspect.signature(code.fn)
    except (TypeError, ValueError):
        raise UsageError(f"Scheme {label!r}: initbench cannot read the parameters of {code.fn!r}.") from None
    listed = list(signature.parameters.values())
    positional = [p for p in listed if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    whole = bool(positional) and positional[0].name == "model"
    taken = 2 if whole else 3
    if len(positional) < taken and not any(p.kind == p.VAR_POSITIONAL for p in listed):
        raise UsageError(f"Scheme {label!r}: {_qualified(code.fn)}{signature} cannot be a scheme: a scheme is "
                         "fn(weight, bias, generator, ...), filling one layer in place, or fn(model, context, ...), "
                         "filling the whole model (its first parameter called model).")
    own = [p for p in listed[taken:] if p.kind in _OWN_KINDS and p.name not in SET_BY_CALLER]
    return own, [p.name for p in own if p.default is p.empty], whole


def _usage(label: str, own: list[inspect.Parameter], required: list[str]) -> str:
    params = ",".join(p.name.upper() for p in own)
    return label if not own else f"{label}:{params}" if required else f"{label}[:{params}]"


@cache
def _scheme(label: str, code: Code, args: str) -> Scheme:
    """The Scheme of ``code`` with its parameters set from ``args``, named canonically."""
    own, required, whole = _parameters(label, code)
    try:
        numbers = [float(a) for a in args.split(",")] if args else []
    except ValueError:
        numbers = [math.nan]
    if not len(required) <= len(numbers) <= len(own) or not all(math.isfinite(n) for n in numbers):
        raise UsageError(f"Bad parameters in scheme {label + (':' + args if args else '')!r}: write "
                         f"{_usage(label, own, required)}, with finite numbers.")
    # A number for a parameter whose default is a whole number is passed as one where it is whole.
    values = {p.name: int(n) if type(p.default) is int and n.is_integer() else n for p, n in zip(own, numbers)}
    base = f"{getattr(code.fn, '__name__', 'scheme')}@{code.digest}"
    doc = inspect.getdoc(code.fn) or ""
    fields = doc_fields(doc)
    if whole:
        WHOLE_MODEL.add(base)
    wants = set(inspect.signature(code.fn).parameters) & set(SET_BY_CALLER)
    return Scheme(base + (":" + ",".join(map(repr, values.values())) if values else ""),
                  None if whole else _per_layer(label, code, values, wants), doc.partition("\n")[0],
                  fields.get("Formula", ""), fields.get("Reference", ""), tuple(p.name for p in own), whole, CONVENTION,
                  _whole_model(label, code, values) if whole else None, code.origin,
                  lambda layer, where: _check_layer(label, layer, where))


def _per_layer(label: str, code: Code, values: dict[str, float], wants: set[str]) -> Callable[..., None]:
    def init(weight: Tensor, bias: Tensor, generator: torch.Generator | None, activation_gain: float,
             layer: Layer | None = None) -> None:
        weight.fill_(math.nan)  # what it does not fill stays NaN, and is refused (Scheme.init_layer)
        bias.fill_(math.nan)
        with _seeded(generator):
            _call(label, code, weight, bias, generator, **values, **callers_values(wants, activation_gain, layer))
    return init


def _whole_model(label: str, code: Code, values: dict[str, float]) -> Callable[[MLP, InitContext], list[str]]:
    def init_model(model: MLP, context: InitContext) -> list[str]:
        import torch

        with torch.no_grad(), _seeded(context.generator):
            for layer in model.layers:
                layer.weight.fill_(math.nan)
                layer.bias.fill_(math.nan)
            sources = _call(label, code, model, context, **values)
        for i, layer in enumerate(model.layers):
            _check_layer(label, layer, f"layers.{i}")
        if sources is None:
            return [f"initialized by {label}"] * len(model.layers)
        if not (isinstance(sources, (list, tuple)) and len(sources) == len(model.layers)
                and all(isinstance(s, str) for s in sources)):
            raise InitbenchError(f"The scheme {label} returned {type(sources).__name__}, not where each of the "
                                 f"model's {len(model.layers)} layers came from: return a list of that many strings, "
                                 "or nothing.")
        return list(sources)
    return init_model


@contextmanager
def _seeded(generator: torch.Generator | None) -> Iterator[None]:
    """torch's global CPU generator seeded from ``generator`` (the layer's or the model's own
    stream: the seed's, not the scheme's) while user code runs, and as it was afterwards: a
    function that ignores ``generator`` draws the same numbers for every scheme of a seed,
    whatever else is trained beside it. Seeded apart from ``generator`` itself (a digest of
    its seed), so that a function drawing from both gets numbers independent of each other;
    only the CPU's generator is seeded (``torch.manual_seed`` would reseed CUDA's too, which
    ``fork_rng(devices=[])`` does not set back)."""
    import torch

    with torch.random.fork_rng(devices=[]):
        if generator is not None:
            digest = hashlib.sha256(f"initbench/global/{generator.initial_seed()}".encode()).digest()
            torch.default_generator.manual_seed(int.from_bytes(digest[:8], "little") >> 1)
        yield


def _call(label: str, code: Code, *args: Any, **kwargs: Any) -> Any:
    with _user_code(f"the scheme {label}", lambda e: InitbenchError(
            f"The scheme {label} failed: {getattr(code.fn, '__qualname__', label)} raised "
            f"{_raised(e, getattr(getattr(code.fn, '__code__', None), 'co_filename', None))}. Fix the function (run "
            "again with --debug for the whole traceback).")):
        return code.fn(*args, **kwargs)


@contextmanager
def _user_code(what: str, failed: Callable[[BaseException], InitbenchError]) -> Iterator[None]:
    """Where user code runs (a file executed, a module imported, a scheme called; ``what`` it
    is, in words), it cannot end, hang or bend the command. Whatever it raises is ``failed(e)``,
    one paragraph naming it: SystemExit, GeneratorExit and a KeyboardInterrupt of its own too,
    which would otherwise end the command quietly (exit status 0, nothing written, an --expect
    gate passed unjudged). A stop signal that arrives meanwhile stays an interruption, whatever
    the code does with it (errors.foreign). What it prints goes to stderr: stdout holds the
    command's table (-f csv > out.csv). torch's global settings are as they were (_torch_kept)."""
    with errors.foreign(what), redirect_stdout(sys.stderr), _torch_kept(what):
        try:
            yield
        except BaseException as e:
            if errors.received() is not None:
                raise  # errors.foreign makes it the interruption it is
            raise failed(e) from e


@cache
def _torch_settings() -> dict[str, tuple[Callable[[], Any], Callable[[Any], Any] | None]]:
    """torch's process-wide settings that change what a model computes, or how fast: each
    name, how it is read, and how it is set back (None: it cannot be, once changed). The
    global generator is _seeded's."""
    import torch
    from torch.backends import cudnn, mkldnn
    from torch.utils import deterministic

    def flushes_denormals() -> bool:  # set_flush_denormal has no getter: a subnormal float32 read back
        return float(torch.tensor([1e-39], dtype=torch.float32, device="cpu").mul(1)) == 0

    def set_deterministic(flags: tuple[bool, bool, bool]) -> None:
        torch.use_deterministic_algorithms(flags[0], warn_only=flags[1])
        deterministic.fill_uninitialized_memory = flags[2]

    def set_autocast(flags: tuple[bool, bool]) -> None:
        for device, enabled in zip(("cpu", "cuda"), flags):
            torch.set_autocast_enabled(device, enabled)

    def set_backends(flags: tuple[bool, ...]) -> None:
        cudnn.enabled, cudnn.benchmark, cudnn.deterministic, cudnn.allow_tf32, mkldnn.enabled = flags

    return {
        "default dtype": (torch.get_default_dtype, torch.set_default_dtype),
        # None, not "cpu": setting a default device makes every torch call slower
        "default device": (torch.get_default_device,
                           lambda d: torch.set_default_device(None if d == torch.device("cpu") else d)),
        "number of threads": (torch.get_num_threads, torch.set_num_threads),
        "number of inter-op threads": (torch.get_num_interop_threads, None),  # set once per process
        "deterministic algorithms": (lambda: (torch.are_deterministic_algorithms_enabled(),
                                              torch.is_deterministic_algorithms_warn_only_enabled(),
                                              deterministic.fill_uninitialized_memory), set_deterministic),
        "gradient mode": (torch.is_grad_enabled, torch.set_grad_enabled),
        "inference mode": (torch.is_inference_mode_enabled, None),  # a with block's, entered and never left
        "anomaly detection": (lambda: (torch.is_anomaly_enabled(), torch.is_anomaly_check_nan_enabled()),
                              lambda flags: torch.set_anomaly_enabled(*flags)),
        "autocast": (lambda: (torch.is_autocast_enabled("cpu"), torch.is_autocast_enabled("cuda")), set_autocast),
        "float32 matmul precision": (torch.get_float32_matmul_precision, torch.set_float32_matmul_precision),
        "flushing of denormals": (flushes_denormals, torch.set_flush_denormal),
        "cuDNN and oneDNN flags": (lambda: (cudnn.enabled, cudnn.benchmark, cudnn.deterministic, cudnn.allow_tf32,
                                            mkldnn.enabled), set_backends),
    }


@contextmanager
def _torch_kept(what: str) -> Iterator[None]:
    """torch's global settings (_torch_settings) set back after user code as they were before
    it: a scheme that sets the default dtype or device, the threads or determinism would
    otherwise change every model trained after it in this process, or make training fail, and
    in Python the caller's next call too. One that cannot be set back is refused, named."""
    settings = _torch_settings()
    before = {name: get() for name, (get, _) in settings.items()}
    try:
        yield
    finally:
        lost = [name for name, (get, put) in settings.items() if not _set_back(get, put, before[name])]
    if lost:
        raise InitbenchError(f"{what[0].upper()}{what[1:]} changed torch's {' and '.join(lost)} for the whole "
                             "process, which initbench cannot set back. Fix it so that it leaves torch's global "
                             "settings as they were (a with block that ends: with torch.device(...):, with "
                             "torch.inference_mode():).")


def _set_back(get: Callable[[], Any], put: Callable[[Any], Any] | None, value: Any) -> bool:
    """Whether a setting holds ``value`` again (set back where it was changed)."""
    if get() == value:
        return True
    if put is not None:
        with suppress(RuntimeError):  # torch refuses some values once work has started
            put(value)
    return get() == value


def _raised(e: BaseException, filename: str | None = None) -> str:
    """An exception in words: its type, where it was raised (the last line in ``filename``
    when it passed there, else the last outside initbench and Python's import machinery) and
    its message, on one line."""
    frames = traceback.extract_tb(e.__traceback__)
    inside = [f for f in frames if f.filename == filename] or [
        f for f in frames if "importlib" not in f.filename and not f.filename.startswith(_INITBENCH)]
    where = f" at {inside[-1].filename}:{inside[-1].lineno}" if inside else ""
    return f"{type(e).__name__}{where}: {' '.join(str(e).split()) or '(no message)'}"


def _check_layer(label: str, layer: nn.Linear | nn.Conv2d | nn.Embedding, where: str) -> None:
    """Refuse a layer the user's scheme left of another shape or dtype, or not finite."""
    import torch
    from torch import nn

    if isinstance(layer, nn.Conv2d):
        weight_shape = (layer.out_channels, layer.in_channels // layer.groups, *layer.kernel_size)
        what = f"{layer.in_channels} -> {layer.out_channels} channels, {'x'.join(map(str, layer.kernel_size))} kernel"
    elif isinstance(layer, nn.Embedding):  # a gpt's: no bias
        weight_shape = (layer.num_embeddings, layer.embedding_dim)
        what = f"{layer.num_embeddings} tokens x {layer.embedding_dim}"
    else:
        weight_shape = (layer.out_features, layer.in_features)
        what = f"{layer.in_features} -> {layer.out_features} units"
    for part, tensor, shape in (("weight", layer.weight, weight_shape),
                                ("bias", getattr(layer, "bias", None), weight_shape[:1])):
        if tensor is None:
            continue
        if tuple(tensor.shape) != shape:
            wrong = f"of shape {list(tensor.shape)}, not {list(shape)}"
        elif tensor.dtype != torch.float32:
            wrong = f"of dtype {tensor.dtype}, not torch.float32"
        elif not bool(torch.isfinite(tensor).all()):
            wrong = ("with NaN or infinite values (the tensors a scheme gets hold NaN until it fills them: fill them "
                     "in place, weight.normal_(...) or weight.copy_(...), not weight = ...)")
        else:
            continue
        raise InitbenchError(f"The scheme {label} left the {part} of {where} ({what}) {wrong}. Fix the function so "
                             "that it fills every layer's weight and bias in place, as float32 numbers.")


extend(Extension(scheme, catalogue, WHOLE_MODEL.__contains__))  # the registry asks here after its built-ins
