"""Trained weights on disk: writing them with what they are, reading them back safely.

initbench writes safetensors files (a JSON header, then raw tensor bytes: loading
one cannot run code). Each file's metadata holds one JSON document under the key
``initbench`` (see ``save``): the format version, the architecture, the job that
made the weights, the data's identity and, for final weights, the accuracy
recorded at training time, so that ``initbench evaluate`` can rebuild the model
and check it.

A plain PyTorch state dict (``.pt``/``.pth``, e.g. from ``torch.save(model.state_dict(), ...)``)
is read with ``torch.load(..., weights_only=True)``, which refuses a pickle that
would run code. Its keys must be ``layers.<i>.weight`` / ``layers.<i>.bias`` (i from
0, as initbench's MLP names them) or ``fc<i>.weight`` / ``fc<i>.bias`` (i from 1,
as the lesson's network names them); weights are [out, in], as ``nn.Linear`` holds
them, or, below the Linear layers, convolutions' kernels [out, in, k, k] (``nn.Conv2d``'s,
the cnn's). A dict holding the state dict under ``state_dict`` or ``model_state_dict``
(a training checkpoint) is accepted too.

Only the header check (``check_source``) runs before torch is imported: a bad file
named on the command line is refused at once.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import reprlib
import struct
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from initbench import data, memory, models, paths
from initbench.errors import InitbenchError, UsageError
from initbench.settings import ADDED, TrainSettings

if TYPE_CHECKING:
    from torch import Tensor, nn

FORMAT = "initbench-weights/1"
METADATA_KEY = "initbench"
SUFFIXES = (".safetensors", ".pt", ".pth")
# Bytes of a safetensors header: initbench's take a few KB (a 1,000-layer network's, with the
# accuracy of 100,000 epochs, about 2.5 MB); safetensors' own limit, 100 MB, is JSON that
# would take gigabytes to parse.
MAX_HEADER = 8 << 20
MAX_DIMENSIONS = 8  # of a tensor's shape (weights have 2, biases 1)
DTYPES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2}  # safetensors' floating-point types: bytes per number
TENSOR_FIELDS = ("dtype", "shape", "data_offsets")  # what safetensors' header says of each tensor
SHOWN_CHARS = 60  # of a value from the file shown in a message (a hostile one may be megabytes)
_MISSING = object()
_NUMBER = (int, float)
# The fields of initbench's record that evaluate reads, and their JSON kinds (FINAL_FIELDS: of final weights).
RECORD_FIELDS: dict[tuple[str, ...], tuple[type, ...]] = {
    ("weights",): (str,), ("architecture", "classes"): (list,), ("job", "scheme"): (str,), ("job", "seed"): (int,),
    ("job", "settings"): (dict,), ("data", "files_sha256"): (dict,), ("data", "split_seed"): (int,),
    ("data", "train_samples"): (int, type(None)), ("trained_with", "engine"): (str,),
    ("trained_with", "device"): (str,)}
FINAL_FIELDS = {("accuracy", "val"): _NUMBER, ("accuracy", "test"): _NUMBER}
STATE_DICT_KEYS = ("state_dict", "model_state_dict")  # where training checkpoints keep the weights
_KEY = re.compile(r"(?:layers\.(\d+)|fc(\d+))\.(weight|bias)")
RECORD_CONTRADICTED = ("The file's record (its initbench metadata) describes other layers than its tensors hold: "
                       "it was changed after initbench wrote it. --hidden does not apply to it (its record says what "
                       "network it is): take the file from the run folder that wrote it, or train it again.")
KEYS_HELP = ("initbench expects the keys layers.<i>.weight and layers.<i>.bias (i from 0) or fc<i>.weight and "
             "fc<i>.bias (i from 1, as the lesson names them), weights shaped [out, in] as nn.Linear holds them "
             "(or [out, in, k, k], a convolution's kernel, below them)")


def sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _not_weights(path: Path, why: str) -> InitbenchError:
    return UsageError(f"{path} is not a weights file ({why}). Give a .safetensors file written by initbench "
                      "compare (in a run folder's weights/), or a PyTorch state dict saved as .pt or .pth.")


def _corrupted(path: Path, why: str) -> InitbenchError:
    return InitbenchError(f"{path} is truncated or corrupted ({why}). Copy it again from where it was made, "
                          "or train it again.")


def _size(path: Path) -> int:
    """The size of the weights file ``path``, refused unless it is a regular file: found with
    stat alone, as opening a FIFO would wait for a writer for ever and a device never ends."""
    why = paths.problem(path, "file")
    if why is not None:
        raise UsageError(f"{path} {why}. Give a weights file: a .safetensors file written by initbench compare (in "
                         "a run folder's weights/), or a PyTorch state dict saved as .pt or .pth.")
    return path.stat().st_size


def _shown(value: object) -> str:
    """A value from a file as a message shows it: a few levels and characters of it."""
    shown = reprlib.Repr()
    shown.maxlevel, shown.maxstring, shown.maxother = 2, SHOWN_CHARS, SHOWN_CHARS
    return shown.repr(value)


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**64


def read_header(path: Path) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """A safetensors file's tensors (name -> dtype, shape, offsets) and metadata, read and
    checked without torch for all that safetensors' loader relies on: 8 bytes of length,
    then that much JSON, an object whose entries each give a tensor's floating-point dtype,
    shape and [begin, end) offsets into the data after the header, which they tile exactly;
    ``__metadata__``, if there, maps names to texts."""
    size = _size(path)
    with path.open("rb") as f:
        start = f.read(9)
        if len(start) < 9 or start[8:9] != b"{":
            raise _not_weights(path, "it does not start as a safetensors file does")
        (length,) = struct.unpack("<Q", start[:8])
        if length > MAX_HEADER:
            raise _not_weights(path, f"its header would take {length:,} bytes; initbench reads headers of up to "
                                     f"{MAX_HEADER:,}")
        if 8 + length > size:
            raise _corrupted(path, f"its header says {length:,} bytes, the file has {size - 8:,} after the length")
        f.seek(8)
        raw = f.read(length)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _corrupted(path, "its header is not valid JSON") from None
    except RecursionError:  # json's parser recurses once per level of nesting
        raise _not_weights(path, "its header nests deeper than a safetensors header does") from None
    if not isinstance(header, dict):
        raise _not_weights(path, "its header is not a JSON object")
    metadata = header.pop("__metadata__", None)
    metadata = {} if metadata is None else metadata
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise _not_weights(path, "its __metadata__ is not a table of texts")
    spans = []
    for name, info in header.items():
        why = _tensor_problem(info)
        if why is not None:
            raise _not_weights(path, f"its header's entry {_shown(name)} {why}")
        spans.append((*info["data_offsets"], name))
    end = 0
    for begin, stop, name in sorted(spans):
        if begin != end:
            raise _not_weights(path, f"its tensors overlap or leave a gap: {_shown(name)} starts at byte {begin:,} "
                                     f"of the data, not at byte {end:,}")
        end = stop
    if end != size - 8 - length:
        raise _corrupted(path, f"its tensors take {end:,} bytes after the header, the file has {size - 8 - length:,}")
    return header, metadata


def _tensor_problem(info: object) -> str | None:
    """Why a safetensors header's entry does not describe a tensor of weights (None if it does)."""
    if not isinstance(info, dict) or sorted(info) != sorted(TENSOR_FIELDS):
        return f"does not give just a tensor's dtype, shape and data_offsets (it is {_shown(info)})"
    dtype, shape, offsets = (info[field] for field in TENSOR_FIELDS)
    if not isinstance(dtype, str) or dtype not in DTYPES:
        return f"has dtype {_shown(dtype)}: weights are floating-point numbers ({', '.join(DTYPES)})"
    if not isinstance(shape, list) or len(shape) > MAX_DIMENSIONS or not all(_whole(n) for n in shape):
        return f"has shape {_shown(shape)}, not a list of at most {MAX_DIMENSIONS} whole numbers"
    if (not isinstance(offsets, list) or len(offsets) != 2 or not all(_whole(n) for n in offsets)
            or offsets[0] > offsets[1]):
        return f"has data_offsets {_shown(offsets)}, not [begin, end]: whole numbers, begin not after end"
    need = math.prod(shape) * DTYPES[dtype]
    if offsets[1] - offsets[0] != need:
        return f"spans {offsets[1] - offsets[0]:,} bytes, but shape {shape} of {dtype} takes {need:,}"
    return None


def record(path: Path, header: dict[str, dict[str, Any]], metadata: dict[str, str]) -> dict[str, Any] | None:
    """initbench's record in a safetensors file's metadata (None in a file without one),
    checked without torch: of this format, with every field evaluate rebuilds the model
    by, and describing the layers that the file's tensors hold (a record edited to other
    sizes would have a model of those sizes built)."""
    if METADATA_KEY not in metadata:
        return None
    try:
        meta = json.loads(metadata[METADATA_KEY])
    except json.JSONDecodeError:
        raise _corrupted(path, "its initbench metadata is not valid JSON") from None
    except RecursionError:
        raise _not_weights(path, "its initbench metadata nests deeper than initbench writes it") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else meta
        raise InitbenchError(f"{path} was written in another weights format ({_shown(found)}); "
                             f"this initbench reads {FORMAT}. Use the initbench version that wrote it.")
    why = _record_problem(meta)
    if why is not None:
        raise _not_weights(path, f"its initbench record {why}")
    settings = TrainSettings.from_plain(meta["job"]["settings"])  # checked before a model of its sizes is built
    if models.get(settings.network.network).reads != "images":
        raise UsageError(f"{path} holds a {settings.network.network}'s weights (trained on a text). evaluate and "
                         "pretrained:FILE read the image networks' weights only; load a gpt's with safetensors "
                         "(safetensors.torch.load_file: its tensors by their state-dict names) into "
                         "initbench.models.gpt.GPT.")
    outputs = [*models.get(settings.network.network).widths(settings.network), len(data.class_numbers(settings.data))]
    held = [header.get(f"layers.{i}.weight", {}).get("shape", [None])[0] for i in range(len(outputs) + 1)]
    if held != [*outputs, None]:
        raise InitbenchError(f"{path}: its record gives its layers {_shown(outputs)} outputs, its tensors "
                             f"{_shown([n for n in held if n is not None])}. {RECORD_CONTRADICTED}")
    return meta


def _record_problem(meta: dict[str, Any]) -> str | None:
    """Why an initbench record is not one initbench wrote: a field evaluate reads missing or
    of another kind, a setting unknown or of another kind (None if it is)."""
    fields = RECORD_FIELDS | (FINAL_FIELDS if meta.get("weights") == "final" else {})
    for where, kinds in fields.items():
        value: Any = meta
        for key in where:
            value = value.get(key, _MISSING) if isinstance(value, dict) else _MISSING
        if value is _MISSING:
            return f"has no {'.'.join(where)} (the field is missing)"
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            return f"has no {'.'.join(where)} of the kind initbench writes (found {_shown(value)})"
    settings = meta["job"]["settings"]
    defaults = ADDED | data.stored(TrainSettings())  # every setting initbench writes, as it writes it
    for key, value in settings.items():
        if key not in defaults or not _like(value, defaults[key]):
            return f"has a setting {_shown(key)} of {_shown(value)}, which is not one initbench writes"
    return None


def _like(value: object, default: object) -> bool:
    """Whether a setting read from JSON has the kind of its default as stored."""
    if isinstance(default, list):
        return isinstance(value, list) and all(_whole(v) for v in value)
    if default is None:
        return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, type(default)) and (isinstance(default, bool) or not isinstance(value, bool))


def _check_memory(path: Path, nbytes: int) -> None:
    """Refuse, before reading them, tensors larger than a model may take in this machine's
    memory: no model that large could be trained or scored here."""
    if nbytes > (budget := memory.budget()):
        raise InitbenchError(f"{path} holds {nbytes / 2**30:,.1f} GiB of tensors, more than a model may take here "
                             f"(half the free memory: {budget / 2**30:,.1f} GiB), so it was not read. Use it on a "
                             "machine with more memory.")


def _check_archive(path: Path, size: int) -> None:
    """A .pt zip archive, from its directory alone: every record stored whole, as torch.save
    writes them (a compressed one could unpack to any size: 2 MB to 2 GiB), the records
    within the file, and together within what a model may take here."""
    try:
        with zipfile.ZipFile(path) as archive:
            records = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise _corrupted(path, f"its zip directory cannot be read: {_shown(str(e))}") from None
    packed = [r for r in records if r.compress_type != zipfile.ZIP_STORED]
    if packed:
        raise _not_weights(path, f"its record {_shown(packed[0].filename)} is compressed, which torch.save never "
                                 f"does; unpacked, its records would take {sum(r.file_size for r in records):,} "
                                 "bytes, so none was read")
    held = sum(r.compress_size for r in records)
    if held > size or any(r.file_size != r.compress_size or r.header_offset + r.compress_size > size
                          for r in records):
        raise _corrupted(path, f"its zip directory claims {held:,} bytes of records, the file has {size:,}")
    _check_memory(path, held)


def check_kind(path: Path) -> dict[str, Any] | None:
    """Refuse, from its header (a zip archive's directory) and without torch, a file that is
    none of the kinds initbench reads, or whose tensors could not be held here; returns a
    safetensors file's initbench record (None without one, and for a .pt/.pth file)."""
    size = _size(path)
    if path.suffix == ".safetensors":
        meta = record(path, *read_header(path))
        _check_memory(path, size)  # the data after the header is the tensors' bytes
        return meta
    elif path.suffix in (".pt", ".pth"):
        with path.open("rb") as f:
            start = f.read(4)
        if start.startswith(b"PK\x03\x04"):  # torch.save's zip archive
            _check_archive(path, size)
        elif start[:1] == b"\x80":  # a bare pickle (torch.save's legacy format): its tensors' bytes follow it
            _check_memory(path, size)
        else:
            raise _not_weights(path, "it is neither a zip archive nor a pickle, as torch.save writes")
    else:
        raise _not_weights(path, f"its name ends in {path.suffix or 'nothing'}, not one of {', '.join(SUFFIXES)}")
    return None


@lru_cache(maxsize=64)
def _checked_digest(path: Path, mtime_ns: int, size: int) -> str:
    check_kind(path)
    return sha256(path)


def check_source(path_text: str, spelled: str) -> str:
    """The SHA-256 of the weights file a scheme names (``pretrained:PATH``), after checking
    that it is a regular file of a kind initbench reads; no torch import."""
    path = Path(path_text).expanduser()
    why = paths.problem(path, "file")
    if why is not None:
        raise UsageError(f"Scheme {spelled!r}: {path} {why}. Give a weights file, e.g. "
                         "pretrained:RUN_DIR/weights/rule-seed0.safetensors.")
    stat = path.stat()
    return _checked_digest(path.resolve(), stat.st_mtime_ns, stat.st_size)


@dataclass(frozen=True)
class Weights:
    """A weights file read back: its layers in order (weight [out, in], or a kernel [out, in, k,
    k]; bias [out]) and, for a file initbench wrote, its metadata."""

    path: Path
    sha256: str
    layers: list[tuple[Tensor, Tensor]]
    meta: dict[str, Any] | None

    @property
    def sizes(self) -> tuple[int, ...]:
        """The layer sizes, inputs first: (784, 256, 128, 10); a CNN's from its input channels: (1, 16, 32, 128, 10)."""
        return _sizes([tuple(w.shape) for w, _ in self.layers])

    @property
    def classes(self) -> tuple[int, ...] | None:
        """The classes the output layer is for, when the file says."""
        return tuple(self.meta["architecture"]["classes"]) if self.meta else None


def load(path: Path, expect_sha256: str | None = None) -> Weights:
    """Read a weights file (safetensors, or a .pt/.pth state dict), checking that it is
    whole, holds only tensors, and names a chain of layers (convolutions, then Linear layers)."""
    meta = check_kind(path)
    digest = sha256(path)
    if expect_sha256 is not None and digest != expect_sha256:
        raise InitbenchError(f"{path} changed while the run was starting (its SHA-256 is not the one it had when "
                             "the command was checked). Run again once nothing writes to it.")
    state = _read_safetensors(path, meta) if path.suffix == ".safetensors" else _read_state_dict(path)
    return Weights(path, digest, _layers(state, path), meta)


def _read_safetensors(path: Path, meta: dict[str, Any] | None) -> dict[str, Tensor]:
    """The tensors of a safetensors file whose header check_kind read (``meta``: its record),
    held to the tensors' digest in the record."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(path)
    except SafetensorError as e:
        raise _corrupted(path, str(e)) from None
    if meta is not None and meta.get("tensors_sha256") != tensors_digest(state):
        raise InitbenchError(f"These are not the weights that were trained: the tensors in {path} do not match "
                             "the digest recorded with them when they were written (the file was altered, or its "
                             "weights replaced). Train them again, or take the file from its run folder.")
    return state


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    import pickle
    import zipfile

    import torch

    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Weights only load failed" in str(e) or "weights_only" in str(e):
            raise InitbenchError(
                f"{path} was refused: it holds Python objects that unpickling would run code to build "
                f"({_unpickler_reason(str(e))}), and initbench loads only tensors "
                "(torch.load with weights_only=True), so nothing in it was run. Save just the weights: "
                "torch.save(model.state_dict(), path).") from None
        raise _corrupted(path, str(e).splitlines()[0]) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError) as e:
        raise _corrupted(path, str(e).splitlines()[0] if str(e) else type(e).__name__) from None
    if isinstance(loaded, dict):
        for key in STATE_DICT_KEYS:
            if isinstance(loaded.get(key), dict):
                loaded = loaded[key]
                break
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise _not_weights(path, "it does not hold a state dict (a dict of tensors)")
    return loaded


def _unpickler_reason(message: str) -> str:
    """What torch's weights-only unpickler objected to: "Unsupported global: GLOBAL posix.system"."""
    lines = message.splitlines()
    for i, line in enumerate(lines):
        if "WeightsUnpickler error:" in line:
            reason = line.split("WeightsUnpickler error:", 1)[1].strip() or (lines[i + 1] if i + 1 < len(lines) else "")
            return reason.strip().rstrip(".") or "not tensors"
    return "not tensors"


def _layers(state: dict[str, Tensor], path: Path) -> list[tuple[Tensor, Tensor]]:
    """The Linear layers of a state dict, in order; a clear error for a key that is not a
    layer's, a layer missing its weight or bias, a gap in the layers, or a broken chain."""
    found: dict[int, dict[str, Tensor]] = {}
    for key, tensor in state.items():
        match = _KEY.fullmatch(key)
        if match is None:
            raise InitbenchError(f"{path} has an unexpected key {key!r}: {KEYS_HELP}.")
        i = int(match[1]) if match[1] is not None else int(match[2]) - 1
        found.setdefault(i, {})[match[3]] = tensor
    if not found:
        raise InitbenchError(f"{path} holds no layers: {KEYS_HELP}.")
    names = [_name(state, i) for i in range(max(found) + 1)]
    missing = [f"{names[i]}.{part}" for i in range(len(names)) for part in ("weight", "bias")
               if part not in found.get(i, {})]
    if missing:
        raise InitbenchError(f"{path} is missing {', '.join(missing)}: every layer needs a weight and a bias.")
    layers = [(found[i]["weight"], found[i]["bias"]) for i in range(len(names))]
    for i, (w, b) in enumerate(layers):
        kernel = w.dim() == 4 and w.shape[2] == w.shape[3]
        if not (w.dim() == 2 or kernel) or b.shape != (w.shape[0],):
            raise InitbenchError(f"{path}: {names[i]} is not a Linear layer nor a convolution (weight "
                                 f"{list(w.shape)}, bias {list(b.shape)}; a layer of n outputs has weight [n, inputs] "
                                 "or a kernel [n, channels, k, k], and bias [n]).")
        if not i:
            continue
        below = layers[i - 1][0]
        if kernel and below.dim() != 4:
            raise InitbenchError(f"{path}: {names[i]} is a convolution above a Linear layer ({names[i - 1]}); "
                                 "initbench's networks have their convolutions lowest.")
        # A Linear layer above a convolution takes its output maps flattened: channels x positions.
        flattened = w.dim() == 2 and below.dim() == 4
        fits = w.shape[1] % below.shape[0] == 0 if flattened else w.shape[1] == below.shape[0]
        if not fits:
            raise InitbenchError(f"{path}: {names[i]}.weight takes {w.shape[1]} inputs, but {names[i - 1]} gives "
                                 f"{below.shape[0]} {'channels' if flattened else 'outputs'}.")
    return [(w.float(), b.float()) for w, b in layers]


def _name(state: dict[str, Tensor], i: int) -> str:
    return f"fc{i + 1}" if any(k.startswith("fc") for k in state) else f"layers.{i}"


def shapes(model: nn.Module) -> list[tuple[int, ...]]:
    """The shapes of a model's layers' weights, input first: what ``check_shapes`` holds a file to."""
    return [tuple(layer.weight.shape) for layer in model.layers]


def _sizes(shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
    """Layers' sizes, inputs first, from their weights' shapes: (784, 256, 128, 10)."""
    return (shapes[0][1], *(shape[0] for shape in shapes))


def check_shapes(weights: Weights, expected: list[tuple[int, ...]], *, head: bool = True,
                 from_record: bool = False) -> None:
    """Refuse weights that do not fit a model of weights shaped ``expected`` (``shapes``), naming
    the layer and the expected and found shapes, as load_state_dict does. ``head=False``
    leaves the output layer's size unchecked (a new task may need other classes).
    ``from_record``: the model was built from the file's own initbench metadata (evaluate),
    so a mismatch is the record contradicting the tensors, which no option can mend."""
    fix = " " + RECORD_CONTRADICTED if from_record else " Give --hidden the file's hidden sizes."
    sizes = _sizes(expected)
    if len(weights.layers) != len(expected):
        raise InitbenchError(
            f"{weights.path} holds {len(weights.layers)} layers ({_arrow(weights.sizes)}), the model has "
            f"{len(expected)} ({_arrow(sizes)}): " + ("unexpected layers" if len(weights.layers) > len(expected)
                                                     else "missing layers") + "." + fix)
    for i, ((w, _), shape) in enumerate(zip(weights.layers, expected)):
        if tuple(w.shape) != shape and (head or i < len(expected) - 1):
            raise InitbenchError(f"Size mismatch for layers.{i}.weight in {weights.path}: the model expects "
                                 f"{list(shape)}, the file has {list(w.shape)} (the file's layers are "
                                 f"{_arrow(weights.sizes)}, the model's {_arrow(sizes)})."
                                 + (fix if from_record else ""))


def _arrow(sizes: tuple[int, ...]) -> str:
    return " -> ".join(map(str, sizes))


def tensors_digest(state: dict[str, Tensor]) -> str:
    """SHA-256 over the tensors' names, shapes and float32 bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().float().contiguous().cpu()
        digest.update(f"{name}{list(tensor.shape)}".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def save(path: Path, state: dict[str, Tensor], meta: dict[str, Any]) -> None:
    """Write ``state`` as safetensors, with ``meta`` (format and tensors' digest added)."""
    from safetensors.torch import save_file

    meta = {"format": FORMAT, **meta, "tensors_sha256": tensors_digest(state)}
    save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, path,
              metadata={METADATA_KEY: json.dumps(meta)})
