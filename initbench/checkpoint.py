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
them. A dict holding the state dict under ``state_dict`` or ``model_state_dict``
(a training checkpoint) is accepted too.

Only the header check (``check_source``) runs before torch is imported: a bad file
named on the command line is refused at once.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from initbench.errors import InitbenchError, UsageError

if TYPE_CHECKING:
    from torch import Tensor

FORMAT = "initbench-weights/1"
METADATA_KEY = "initbench"
SUFFIXES = (".safetensors", ".pt", ".pth")
MAX_HEADER = 100_000_000  # bytes: safetensors' own limit on a header
STATE_DICT_KEYS = ("state_dict", "model_state_dict")  # where training checkpoints keep the weights
_KEY = re.compile(r"(?:layers\.(\d+)|fc(\d+))\.(weight|bias)")
KEYS_HELP = ("initbench expects the keys layers.<i>.weight and layers.<i>.bias (i from 0) or fc<i>.weight and "
             "fc<i>.bias (i from 1, as the lesson names them), weights shaped [out, in] as nn.Linear holds them")


def sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _not_weights(path: Path, why: str) -> InitbenchError:
    return UsageError(f"{path} is not a weights file ({why}). Give a .safetensors file written by initbench "
                      "compare (in a run folder's weights/), or a PyTorch state dict saved as .pt or .pth.")


def _corrupted(path: Path, why: str) -> InitbenchError:
    return InitbenchError(f"{path} is truncated or corrupted ({why}). Copy it again from where it was made, "
                          "or train it again.")


def read_header(path: Path) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """A safetensors file's tensors (name -> dtype, shape, offsets) and metadata, read and
    checked without torch: its header is 8 bytes of length, then that much JSON."""
    size = path.stat().st_size
    with path.open("rb") as f:
        start = f.read(9)
        if len(start) < 9 or start[8:9] != b"{":
            raise _not_weights(path, "it does not start as a safetensors file does")
        (length,) = struct.unpack("<Q", start[:8])
        if length > MAX_HEADER:
            raise _not_weights(path, "its header length is impossible")
        if 8 + length > size:
            raise _corrupted(path, f"its header says {length:,} bytes, the file has {size - 8:,} after the length")
        f.seek(8)
        raw = f.read(length)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _corrupted(path, "its header is not valid JSON") from None
    if not isinstance(header, dict):
        raise _corrupted(path, "its header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    ends = [info.get("data_offsets", [0, 0])[1] for info in header.values() if isinstance(info, dict)]
    if len(ends) != len(header) or not all(isinstance(e, int) for e in ends):
        raise _corrupted(path, "its header does not describe tensors")
    if max(ends, default=0) > size - 8 - length:
        raise _corrupted(path, f"its tensors need {max(ends):,} bytes after the header, the file has "
                               f"{size - 8 - length:,}")
    return header, metadata


def check_kind(path: Path) -> None:
    """Refuse, from the first bytes, a file that is none of the kinds initbench reads."""
    if path.suffix == ".safetensors":
        read_header(path)
    elif path.suffix in (".pt", ".pth"):
        with path.open("rb") as f:
            start = f.read(4)
        if not (start.startswith(b"PK\x03\x04") or start[:1] == b"\x80"):  # torch.save's zip, or a bare pickle
            raise _not_weights(path, "it is neither a zip archive nor a pickle, as torch.save writes")
    else:
        raise _not_weights(path, f"its name ends in {path.suffix or 'nothing'}, not one of {', '.join(SUFFIXES)}")


@lru_cache(maxsize=64)
def _checked_digest(path: Path, mtime_ns: int, size: int) -> str:
    check_kind(path)
    return sha256(path)


def check_source(path_text: str, spelled: str) -> str:
    """The SHA-256 of the weights file a scheme names (``pretrained:PATH``), after checking
    that it exists and is of a kind initbench reads; no torch import."""
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise UsageError(f"Scheme {spelled!r}: {path} " + ("is not a file." if path.exists() else "does not exist.")
                         + " Give a weights file, e.g. pretrained:RUN_DIR/weights/rule-seed0.safetensors.")
    stat = path.stat()
    return _checked_digest(path.resolve(), stat.st_mtime_ns, stat.st_size)


@dataclass(frozen=True)
class Weights:
    """A weights file read back: its layers in order (weight [out, in], bias [out]) and,
    for a file initbench wrote, its metadata."""

    path: Path
    sha256: str
    layers: list[tuple[Tensor, Tensor]]
    meta: dict[str, Any] | None

    @property
    def sizes(self) -> tuple[int, ...]:
        """The layer sizes, inputs first: (784, 256, 128, 10)."""
        return (self.layers[0][0].shape[1], *(w.shape[0] for w, _ in self.layers))

    @property
    def classes(self) -> tuple[int, ...] | None:
        """The classes the output layer is for, when the file says."""
        return tuple(self.meta["architecture"]["classes"]) if self.meta else None


def load(path: Path, expect_sha256: str | None = None) -> Weights:
    """Read a weights file (safetensors, or a .pt/.pth state dict), checking that it is
    whole, holds only tensors, and names a chain of Linear layers."""
    if not path.is_file():
        raise UsageError(f"{path} " + ("is not a file." if path.exists() else "does not exist."))
    check_kind(path)
    digest = sha256(path)
    if expect_sha256 is not None and digest != expect_sha256:
        raise InitbenchError(f"{path} changed while the run was starting (its SHA-256 is not the one it had when "
                             "the command was checked). Run again once nothing writes to it.")
    meta = None
    if path.suffix == ".safetensors":
        state, meta = _read_safetensors(path)
    else:
        state = _read_state_dict(path)
    return Weights(path, digest, _layers(state, path), meta)


def _read_safetensors(path: Path) -> tuple[dict[str, Tensor], dict[str, Any] | None]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    _, metadata = read_header(path)
    try:
        state = load_file(path)
    except SafetensorError as e:
        raise _corrupted(path, str(e)) from None
    if METADATA_KEY not in metadata:
        return state, None
    try:
        meta = json.loads(metadata[METADATA_KEY])
    except json.JSONDecodeError:
        raise _corrupted(path, "its initbench metadata is not valid JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else meta
        raise InitbenchError(f"{path} was written in another weights format ({found!r}); "
                             f"this initbench reads {FORMAT}. Use the initbench version that wrote it.")
    if meta.get("tensors_sha256") != tensors_digest(state):
        raise InitbenchError(f"These are not the weights that were trained: the tensors in {path} do not match "
                             "the digest recorded with them when they were written (the file was altered, or its "
                             "weights replaced). Train them again, or take the file from its run folder.")
    return state, meta


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
        if w.dim() != 2 or b.shape != (w.shape[0],):
            raise InitbenchError(f"{path}: {names[i]} is not a Linear layer (weight {list(w.shape)}, bias "
                                 f"{list(b.shape)}; a layer of n outputs has weight [n, inputs] and bias [n]).")
        if i and w.shape[1] != layers[i - 1][0].shape[0]:
            raise InitbenchError(f"{path}: {names[i]}.weight takes {w.shape[1]} inputs, but {names[i - 1]} gives "
                                 f"{layers[i - 1][0].shape[0]} outputs.")
    return [(w.float(), b.float()) for w, b in layers]


def _name(state: dict[str, Tensor], i: int) -> str:
    return f"fc{i + 1}" if any(k.startswith("fc") for k in state) else f"layers.{i}"


def check_shapes(weights: Weights, sizes: tuple[int, ...], *, head: bool = True) -> None:
    """Refuse weights that do not fit a model of layer ``sizes`` (inputs first), naming the
    layer and the expected and found shapes, as load_state_dict does. ``head=False``
    leaves the output layer's size unchecked (a new task may need other classes)."""
    expected = [(b, a) for a, b in zip(sizes, sizes[1:])]
    if len(weights.layers) != len(expected):
        raise InitbenchError(
            f"{weights.path} holds {len(weights.layers)} layers ({_arrow(weights.sizes)}), the model has "
            f"{len(expected)} ({_arrow(sizes)}): " + ("unexpected layers" if len(weights.layers) > len(expected)
                                                     else "missing layers")
            + ". Give --hidden the file's hidden sizes.")
    for i, ((w, _), shape) in enumerate(zip(weights.layers, expected)):
        if tuple(w.shape) != shape and (head or i < len(expected) - 1):
            raise InitbenchError(f"Size mismatch for layers.{i}.weight in {weights.path}: the model expects "
                                 f"{list(shape)}, the file has {list(w.shape)} (the file's layers are "
                                 f"{_arrow(weights.sizes)}, the model's {_arrow(sizes)}).")


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
