"""Hostile and absurd inputs: weights files whose headers lie, files that are not regular
files, archives that inflate, sizes no machine can hold, grids too large to plan, scheme
parameters whose weights overflow. Each is refused in one paragraph with its documented
exit status, before the work it would have cost: the children run under a memory limit
and a timeout, and what they took is measured."""

import json
import os
import socket
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from initbench import data, initializers
from initbench.cli import app
from initbench.errors import UsageError
from initbench.models import checkpoint
from initbench.models.mlp import MLP
from initbench.settings import TrainSettings
from initbench.training.engines import batched

# Runs a command as its child, under an address-space limit and a timeout (a hang is exit
# 124), and reports on stderr the child's peak resident memory and seconds.
MEASURE = """
import resource, subprocess, sys, time
limit = lambda: resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))
tic = time.perf_counter()
try:
    code = subprocess.run(sys.argv[2:], preexec_fn=limit, timeout=float(sys.argv[1])).returncode
except subprocess.TimeoutExpired:
    code = 124
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
print(f"MEASURED {peak} {time.perf_counter() - tic:.2f}", file=sys.stderr)
sys.exit(code)
"""
PRE_TORCH_BYTES = 300 << 20  # a refusal before torch is imported (importing it alone takes more)


class Measured:
    def __init__(self, done: subprocess.CompletedProcess) -> None:
        self.code = done.returncode
        said, _, figures = done.stderr.rpartition("MEASURED ")
        self.said = " ".join(said.split())
        peak, seconds = figures.split()
        self.peak, self.seconds = int(peak), float(seconds)


def initbench(*args: str, timeout: float = 60) -> Measured:
    return Measured(subprocess.run([sys.executable, "-c", MEASURE, str(timeout), sys.executable, "-m", "initbench",
                                    *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   timeout=timeout + 30))


def refused(done: Measured, code: int, *fragments: str) -> None:
    """One paragraph (after any progress lines), no traceback nor exception name, the exit
    status, the words."""
    assert done.code == code, done.said
    assert "Traceback" not in done.said and "Unexpected error" not in done.said, done.said
    assert done.said.count("Error: ") == 1, done.said
    for fragment in fragments:
        assert fragment in done.said.partition("Error: ")[2], done.said


def safetensors_file(path: Path, header: dict | bytes, data: bytes = bytes(64)) -> Path:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def tensor(offsets: object, dtype: object = "F32", shape: object = (4, 2)) -> dict:
    return {"dtype": dtype, "shape": list(shape) if isinstance(shape, tuple) else shape, "data_offsets": offsets}


HOSTILE_HEADERS = {
    "offsets []": {"layers.0.weight": tensor([])},
    "offsets 5": {"layers.0.weight": tensor(5)},
    "offsets [1]": {"layers.0.weight": tensor([1])},
    "offsets as strings": {"layers.0.weight": tensor(["0", "32"])},
    "offsets as booleans": {"layers.0.weight": tensor([False, True])},
    "negative offsets": {"layers.0.weight": tensor([-8, 24])},
    "reversed offsets": {"layers.0.weight": tensor([32, 0])},
    "no data_offsets": {"layers.0.weight": {"dtype": "F32", "shape": [4, 2]}},
    "an entry that is a number": {"layers.0.weight": 5},
    "unknown dtype": {"layers.0.weight": tensor([0, 32], dtype="NOPE")},
    "dtype as a list": {"layers.0.weight": tensor([0, 32], dtype=["F32"])},
    "shape as text": {"layers.0.weight": tensor([0, 32], shape="x")},
    "negative shape": {"layers.0.weight": tensor([0, 32], shape=(-4, -2))},
    "shape and bytes disagree": {"layers.0.weight": tensor([0, 64], shape=(4, 2))},
    "overlapping tensors": {"layers.0.weight": tensor([0, 32]), "layers.0.bias": tensor([16, 32], shape=(4,))},
    "a gap before a tensor": {"layers.0.weight": tensor([8, 40]), "layers.0.bias": tensor([40, 56], shape=(4,))},
    "metadata that is a list": {"__metadata__": [1], "layers.0.weight": tensor([0, 32])},
    "metadata of numbers": {"__metadata__": {"initbench": 5}, "layers.0.weight": tensor([0, 32])},
    "deep nesting": b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
}


@pytest.mark.parametrize("case", HOSTILE_HEADERS)
def test_a_hostile_safetensors_header_is_one_usage_error(case: str, tmp_path: Path) -> None:
    """Named to evaluate or through pretrained:, each is refused from its header, before
    torch loads: exit 2, "not a weights file", with what is wrong in it (it was exit 1, an
    "Unexpected error" IndexError, TypeError or RecursionError, or safetensors' own words)."""
    path = safetensors_file(tmp_path / "w.safetensors", HOSTILE_HEADERS[case])
    result = CliRunner().invoke(app, ["evaluate", str(path)])
    assert result.exit_code == 2 and "Unexpected" not in result.output, result.output
    assert "is not a weights file" in " ".join(result.output.split()), result.output
    with pytest.raises(UsageError, match="is not a weights file"):  # what pretrained:PATH's parser raises
        initializers.get(f"pretrained:{path}")


def test_a_hostile_header_costs_neither_time_nor_memory(tmp_path: Path) -> None:
    path = safetensors_file(tmp_path / "w.safetensors", HOSTILE_HEADERS["deep nesting"])
    done = initbench("compare", f"pretrained:{path}", "--out", str(tmp_path / "run"))
    refused(done, 2, "nests deeper than a safetensors header does")
    assert done.peak < PRE_TORCH_BYTES, done.peak
    assert not (tmp_path / "run").exists()


def test_the_header_check_reads_what_initbench_writes(tmp_path: Path) -> None:
    """The checks refuse nothing that initbench (or safetensors) writes: tensors of several
    dtypes, an empty one, and a record."""
    state = {"layers.0.weight": torch.ones(3, 784), "layers.0.bias": torch.zeros(3, dtype=torch.float64),
             "extra": torch.zeros(0, 5, dtype=torch.bfloat16)}
    save_file(state, tmp_path / "w.safetensors", metadata={"note": "text"})
    header, metadata = checkpoint.read_header(tmp_path / "w.safetensors")
    assert metadata == {"note": "text"} and set(header) == set(state)
    checkpoint.check_kind(tmp_path / "w.safetensors")


def test_a_record_that_does_not_describe_its_tensors_is_refused(tmp_path: Path) -> None:
    """A record with a valid tensors digest but missing fields, settings of another kind, or
    nested without end: exit 2 before torch, not a KeyError; one of other layers than the
    tensors': exit 1 (the file was changed), before a model of its sizes is built."""
    state = {"layers.0.weight": torch.ones(16, 784), "layers.0.bias": torch.zeros(16),
             "layers.1.weight": torch.ones(10, 16), "layers.1.bias": torch.zeros(10)}
    settings = data.stored(TrainSettings.of(hidden=(16,)))
    good = {"format": checkpoint.FORMAT, "weights": "final", "file": "w.safetensors",
            "architecture": {"classes": list(range(10))},
            "job": {"scheme": "rule", "seed": 0, "settings": settings},
            "data": {"files_sha256": {}, "split_seed": 0, "train_samples": None},
            "trained_with": {"engine": "batched", "device": "cpu"}, "accuracy": {"val": 0.5, "test": 0.5},
            "tensors_sha256": checkpoint.tensors_digest(state)}
    path = tmp_path / "w.safetensors"
    save_file(state, path, metadata={"initbench": json.dumps(good)})
    checkpoint.check_kind(path)  # the well-formed record passes
    no_job = {k: v for k, v in good.items() if k != "job"}
    other_layers = good | {"job": good["job"] | {"settings": settings | {"hidden": [100_000]}}}
    text_seed = good | {"job": good["job"] | {"seed": "0"}}
    unknown_setting = good | {"job": good["job"] | {"settings": settings | {"layers": 3}}}
    for meta, words in ((no_job, "has no job.scheme"), (text_seed, "has no job.seed"),
                        (unknown_setting, "a setting 'layers'")):
        save_file(state, path, metadata={"initbench": json.dumps(meta)})
        refused(initbench("evaluate", str(path)), 2, "is not a weights file", words)
    save_file(state, path, metadata={"initbench": json.dumps(other_layers)})
    done = initbench("evaluate", str(path))  # refused before a model of 100,000 units is built
    refused(done, 1, "its record gives its layers [100000, 10] outputs, its tensors [16, 10]",
            "changed after initbench wrote it")
    assert done.peak < PRE_TORCH_BYTES, done.peak
    save_file(state, path, metadata={"initbench": '{"a":' + "[" * 100_000 + "]" * 100_000 + "}"})
    refused(initbench("evaluate", str(path)), 2, "nests deeper")


def test_special_files_are_refused_without_being_opened(data_dir: Path, tmp_path: Path) -> None:
    """A FIFO (opening one waits for a writer for ever) or a socket given as weights, as a
    config or as a sweep's config, or found in a run folder's weights/: exit 2, at once."""
    for name in ("w.safetensors", "w.pt", "c.toml"):
        os.mkfifo(tmp_path / name)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / "s.safetensors"))
        run = tmp_path / "run"
        (run / "weights").mkdir(parents=True)
        os.mkfifo(run / "weights" / "rule-seed0.safetensors")
        (run / "run.json").write_text("{}")
        cases = [("evaluate", str(tmp_path / "w.safetensors")), ("evaluate", str(tmp_path / "w.pt")),
                 ("evaluate", str(tmp_path / "s.safetensors")), ("evaluate", str(run)),
                 ("compare", f"pretrained:{tmp_path / 'w.pt'}", "--out", str(tmp_path / "o")),
                 ("compare", "--config", str(tmp_path / "c.toml"), "--out", str(tmp_path / "o")),
                 ("sweep", str(tmp_path / "c.toml"), "--out", str(tmp_path / "o"))]
        for args in cases:
            done = initbench(*args, timeout=30)
            refused(done, 2, "not a regular file")
            assert done.peak < PRE_TORCH_BYTES, (args, done.peak)
    assert not (tmp_path / "o").exists()


def write_zip(path: Path, records: list[tuple[str, int, bytes, int, int]]) -> None:
    """A zip archive of (name, method, bytes as stored, size unpacked, CRC-32) records."""
    body, directory = b"", b""
    for name, method, stored, size, crc in records:
        raw = name.encode()
        fields = struct.pack("<HHHHHIII", 20, 0, method, 0, 0, crc, len(stored), size)
        directory += (b"PK\x01\x02" + struct.pack("<H", 20) + fields
                      + struct.pack("<HHHHHII", len(raw), 0, 0, 0, 0, 0, len(body)) + raw)
        body += b"PK\x03\x04" + fields + struct.pack("<HH", len(raw), 0) + raw + stored
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(records), len(records), len(directory), len(body), 0)
    path.write_bytes(body + directory + end)


def zip_bomb(path: Path, inflated: int = 2 << 30) -> None:
    """torch.save's archive of a small state dict, its data record replaced by ``inflated``
    bytes of zeros, deflated (about a thousandth of that on disk: 2 GiB in 2 MB)."""
    saved = path.with_name("small.pt")
    torch.save({"layers.0.weight": torch.zeros(4, 784), "layers.0.bias": torch.zeros(4)}, saved)
    chunk = bytes(16 << 20)
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = packer.compress(chunk) + packer.flush(zlib.Z_FULL_FLUSH)  # the same bytes for every chunk
    stream = block * (inflated // len(chunk)) + zlib.compressobj(9, zlib.DEFLATED, -15).flush()
    crc = 0
    for _ in range(inflated // len(chunk)):
        crc = zlib.crc32(chunk, crc)
    records = []
    with zipfile.ZipFile(saved) as archive:
        for info in archive.infolist():
            if info.filename.endswith("/data/0"):
                records.append((info.filename, zipfile.ZIP_DEFLATED, stream, inflated, crc))
            else:
                stored = archive.read(info)
                records.append((info.filename, zipfile.ZIP_STORED, stored, len(stored), zlib.crc32(stored)))
    write_zip(path, records)


def test_a_pt_archive_that_would_inflate_is_refused_unread(tmp_path: Path) -> None:
    """2 MB that unpack to 2 GiB took 2.6 GB of memory: torch.save stores its records
    whole, so a compressed one is refused from the zip's directory, before torch loads."""
    bomb = tmp_path / "bomb.pt"
    zip_bomb(bomb)
    assert bomb.stat().st_size < 4 << 20
    with zipfile.ZipFile(bomb) as archive:  # a real archive: it inflates to 2 GiB
        assert sum(info.file_size for info in archive.infolist()) > 2 << 30
    done = initbench("compare", f"pretrained:{bomb}", "--hidden", "4", "--out", str(tmp_path / "run"))
    refused(done, 2, "is compressed, which torch.save never does", "so none was read")
    assert done.peak < PRE_TORCH_BYTES, done.peak
    refused(initbench("evaluate", str(bomb)), 2, "is compressed")
    assert not (tmp_path / "run").exists()


def test_a_pt_archive_whose_directory_lies_is_refused(tmp_path: Path) -> None:
    """Stored records that claim more bytes than the file holds: corrupted, exit 1."""
    stored = b"\x80\x02}q\x00."
    write_zip(tmp_path / "w.pt", [("w/data.pkl", zipfile.ZIP_STORED, stored, 2 << 30, zlib.crc32(stored))])
    refused(initbench("evaluate", str(tmp_path / "w.pt")), 1, "truncated or corrupted", "claims")


def test_weights_larger_than_memory_are_refused_unread(tmp_path: Path) -> None:
    """A bare pickle (torch.save's old format, its tensors after it) larger than a model may
    take here: refused by its size, unread (a sparse file: it takes no disk)."""
    path = tmp_path / "big.pt"
    path.write_bytes(b"\x80\x02")
    os.truncate(path, 4 * batched.free_memory(torch.device("cpu")))  # the child's budget: half what is free then
    refused(initbench("evaluate", str(path)), 1, "GiB of tensors, more than a model may take here")


ABSURD = {
    "20 million layers": ["compare", "rule", "--hidden", "256x20000000"],
    "a layer of 20 million units": ["compare", "rule", "--hidden", "20000000"],
    "a billion epochs": ["compare", "rule", "--epochs", "1000000000", "--train-samples", "600"],
    "10^8 losses per model": ["compare", "rule", "--epochs", "50000", "--batch-size", "10"],
    "10^12 seeds": ["compare", "rule", "--seeds", "1000000000000"],
}


@pytest.mark.parametrize("case", ABSURD)
def test_absurd_sizes_are_refused_at_once(case: str, tmp_path: Path) -> None:
    """Each was built or allocated before (38 s and 2.4 GB, 40 GB for the loss record, a
    MemoryError): now refused when parsed, before torch, in a short message."""
    done = initbench(*ABSURD[case], "--out", str(tmp_path / "run"))
    refused(done, 2)
    assert len(done.said) < 400 and done.peak < PRE_TORCH_BYTES, (len(done.said), done.peak)
    assert not (tmp_path / "run").exists()


def test_a_config_file_is_bounded_and_quoted_briefly(tmp_path: Path) -> None:
    """A config file larger than 1 MiB is refused by its size, unread (1 GiB took 9 s and
    2 GB); a wrong value of 900 KB is quoted in 80 characters, not echoed whole."""
    big = tmp_path / "big.toml"
    big.write_text("epochs = 1\n# " + "x" * (2 << 20) + "\n")
    done = initbench("compare", "--config", str(big), "--out", str(tmp_path / "run"))
    refused(done, 2, "reads at most 1,048,576")
    assert done.peak < PRE_TORCH_BYTES
    long = tmp_path / "long.toml"
    long.write_text('lr = "' + "x" * 900_000 + '"\n')
    done = initbench("compare", "--config", str(long), "--out", str(tmp_path / "run"))
    refused(done, 2, "'lr' in", "(899,922 more characters)")
    assert len(done.said) < 400
    grid = tmp_path / "grid.toml"  # a million cells: refused from the grid's size, before any is made
    grid.write_text(f"[grid]\nlr = {[i / 1e4 + 1e-5 for i in range(1000)]}\nsplit_seed = {list(range(1000))}\n")
    done = initbench("sweep", str(grid), "--out", str(tmp_path / "sweep"))
    refused(done, 2, "1,000,000 cells", "plans at most 200,000")
    assert done.peak < PRE_TORCH_BYTES and not (tmp_path / "sweep").exists()


def test_inspect_refuses_a_model_too_large_like_compare(data_dir: Path, tmp_path: Path) -> None:
    """inspect built the model whatever its size (4096x50 reached 9.5 GB; this one failed in
    torch's allocator): it is checked as compare is, by the same estimate and words."""
    refused(initbench("inspect", "rule", "--hidden", "16,1000000,1000000", "--data-dir", str(data_dir), "--out",
                      str(tmp_path / "inspect")), 1, "One model with these settings needs about")
    assert not list(tmp_path.iterdir())


def test_the_loss_record_is_in_the_memory_estimate() -> None:
    """A model's losses, one per batch of every epoch (and their copy in its result), are
    part of what it needs: --epochs 10^9 was an attempt to allocate 40 GB."""
    one, many = TrainSettings.of(epochs=1), TrainSettings.of(epochs=10_000)
    assert batched.bytes_per_model(many) - batched.bytes_per_model(one) >= 9_999 * 480 * 4 * 2


# A machine where one model of 784-4096-4096-10 fits (half its free memory), and the growth of
# resident memory while a sweep's plan times a step of it.
TIMED_ON_WHAT_FITS = """
import resource, sys, torch
from initbench.training import engines
from initbench.training.engines import batched
from initbench.settings import TrainSettings
settings = TrainSettings.of(hidden=(4096, 4096), dropout=0.0)
budget = int(1.25 * batched.bytes_per_model(settings))
batched.free_memory = lambda device: 2 * budget
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
engines.step_seconds(settings, torch.device("cpu"))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before, budget)
"""


def test_a_step_is_timed_on_no_more_models_than_fit() -> None:
    """Timing a step built 4 models whatever fitted (9.4 GB for hidden=4096x25, where one
    fits): it stays within what one chunk may take."""
    grown, budget = map(int, subprocess.run([sys.executable, "-c", TIMED_ON_WHAT_FITS], capture_output=True,
                                            text=True, timeout=300, check=True).stdout.split())
    assert grown <= budget, (grown, budget)


def test_a_sweep_times_each_shape_once_and_says_so(data_dir: Path, tmp_path: Path) -> None:
    """12 cells of 2 shapes (lr and momentum do not change a step's cost; hidden does):
    2 steps timed, with a stage saying so, where each cell's step was timed (1,000 cells:
    524 s)."""
    config = tmp_path / "grid.toml"
    config.write_text(f'schemes = ["rule"]\nseeds = 1\nepochs = 1\ntrain_samples = 600\noptimizer = "sgd"\n'
                      f'data_dir = "{data_dir}"\n[grid]\nlr = [0.001, 0.01, 0.1]\nmomentum = [0.5, 0.9]\n'
                      'hidden = [[16], [32]]\n')
    done = subprocess.run([sys.executable, "-m", "initbench", "sweep", str(config), "--dry-run", "--out",
                           str(tmp_path / "sweep")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stderr.split())
    assert "Timing a training step of each of 2 network shapes" in said and "12 cells" in said, said


@pytest.mark.parametrize("spec", ["uniform:-3e38,3e38", "RandomUniform:-3e38,3e38", "uniform:5",
                                  "xavier_uniform:1e38", "GlorotUniform:1e38"])
def test_scheme_parameters_torch_cannot_draw_from_are_refused(spec: str) -> None:
    """uniform:-3e38,3e38 passed the bounds check, and torch refused its range (wider than
    float32's largest number) with a raw exception; xavier_uniform's range is its gain times
    up to 2 sqrt(3); uniform:5 is [5, 1), with the default high."""
    with pytest.raises(UsageError, match="Bad parameters"):
        initializers.get(spec)


@pytest.mark.parametrize("spec", ["uniform:-1.7e38,1.7e38", "uniform:-3.4e38", "xavier_uniform:9.8e37",
                                  "constant:-3.4e38"])
def test_the_widest_ranges_allowed_draw_finite_weights(spec: str) -> None:
    model = MLP(784, (1, 1, 300), "relu", 2)  # a 1 -> 1 layer: xavier's widest range
    generator = torch.Generator().manual_seed(0)
    scheme = initializers.get(spec)
    for layer in model.layers:
        scheme.init_layer(layer, generator)
        assert torch.isfinite(layer.weight).all(), spec


def test_scheme_overflow_is_one_paragraph_on_the_command_line(tmp_path: Path) -> None:
    refused(initbench("compare", "uniform:-3e38,3e38", "--out", str(tmp_path / "run")), 2,
            "more than float32's largest number")


def test_the_measuring_child_runs_a_real_command() -> None:
    """The children above run under an 8 GiB address-space limit, which a real command
    (torch imported) runs under."""
    done = initbench("schemes", "--format", "csv", timeout=120)
    assert done.code == 0 and done.peak > 0, done.said


def test_a_checked_file_still_loads(tmp_path: Path) -> None:
    """torch.save's own archive and its old bare pickle pass the checks and load."""
    state = {"layers.0.weight": torch.ones(3, 784), "layers.0.bias": torch.zeros(3),
             "layers.1.weight": torch.ones(10, 3), "layers.1.bias": torch.zeros(10)}
    for name, legacy in (("new.pt", False), ("old.pt", True)):
        torch.save(state, tmp_path / name, _use_new_zipfile_serialization=not legacy)
        assert checkpoint.load(tmp_path / name).sizes == (784, 3, 10)
    save_file(state, tmp_path / "w.safetensors")
    assert checkpoint.load(tmp_path / "w.safetensors").sizes == (784, 3, 10)
    assert set(load_file(tmp_path / "w.safetensors")) == set(state)
