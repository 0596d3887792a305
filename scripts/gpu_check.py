"""The GPU check's driver: ``scripts/gpu-check.sh`` calls it (docs/benchmarks.md, "GPU check").

One prepared command measures initbench on a lent GPU within a fixed time: each step
runs in a process of its own (``gpu_check.py step NAME``) under a timeout, writes what
it measured as it goes, and a step that fails or hangs is recorded and killed without
costing the steps after it. At the end the driver writes every number into one JSON
file and a Markdown table of the figures against the targets, and prints the table last.

Subcommands (the shell script is the interface; these are its parts):

- ``env``: torch, the device (CUDA required unless ``--device cpu``), the data verified;
  one line on stderr and exit 3 when something is missing.
- ``verify-data DIR``: the four FashionMNIST .gz files in DIR decompress to the real data.
- ``run``: the steps, then bench-gpu.json and gpu-summary.md.
- ``step NAME``: one step (run starts these).

The driver itself imports no torch; the steps import it where they measure.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import math
import os
import platform
import signal
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "gpu-check:"
LESSON_SCHEMES = ("zeros", "ones", "uniform", "rule", "normal", "default")  # the lesson's six, as compare takes them
# The resume check's schemes: the lesson's less `ones` and `uniform`, whose logits are in the millions,
# where their losses are float32 rounding noise (tests/test_engine.py), so that a difference it finds is
# a difference. `kaiming_normal` and `xavier_normal` keep it at six.
RESUME_SCHEMES = ("zeros", "rule", "normal", "default", "kaiming_normal", "xavier_normal")
LAYERS = (784, 256, 128, 10)  # the lesson's network
BATCH = 100
PEAK_FP32 = 67e12  # FLOP/s: the datasheet's FP32 (non-tensor) peak of an H100 or H200 SXM
TF32_NOTE = "TF32 off (torch.backends.cuda.matmul.allow_tf32 = False)"
ACC_TOLERANCE = 1e-6  # accuracies: equal, or within this
LOSS_RTOL = 1e-5  # losses: allclose with this relative tolerance


def step_flops(models: int = 1) -> float:
    """The FLOPs of one batched step's matrix products: per layer forward 2*B*in*out, the
    weight gradient the same, the input gradient the same for every layer but the first."""
    pairs = list(zip(LAYERS, LAYERS[1:]))
    forward = sum(2 * BATCH * i * o for i, o in pairs)
    return models * (2 * forward + sum(2 * BATCH * i * o for i, o in pairs[1:]))


@dataclass(frozen=True)
class Sizes:
    """How big each step is: the device's sizes, or the dry run's tiny ones."""

    label: str
    lesson_seeds: int = 5
    lesson_epochs: int = 2
    train_samples: int | None = None  # None: all 48,000 training images
    compare_warmups: int = 1
    compare_repeats: int = 2
    train_warmups: int = 1
    train_repeats: int = 3
    sweep_seeds: int = 50  # x 6 schemes: 300 jobs of 2 epochs on 48,000 images
    sweep_chunk: int = 100  # max_batch_models: 3 chunks, so that a SIGINT lands between commits
    sweep_schemes: tuple[str, ...] = RESUME_SCHEMES
    sweep_extra: tuple[str, ...] = ()  # more --set KEY=VALUE
    scaling: tuple[int, ...] = (6, 60, 250, 1000, 2000, 4000)
    scaling_repeats: int = 2
    gemm_n: int = 8192
    gemm_iters: int = 10
    profile_models: int = 1000
    profile_steps: int = 3
    bench_args: tuple[str, ...] = ("--repeats", "2")
    # Seconds each step may take; time a step leaves is passed on to the later ones.
    caps: dict[str, int] = field(default_factory=lambda: {
        "pytest": 70, "lesson": 70, "sweep": 90, "kernels": 110, "bench": 100})


GPU = Sizes("device")
DRY = Sizes("dry run", lesson_seeds=1, lesson_epochs=1, train_samples=100, compare_warmups=0, compare_repeats=1,
            train_warmups=1, train_repeats=1, sweep_seeds=2, sweep_chunk=1,
            sweep_schemes=RESUME_SCHEMES[:3], sweep_extra=("epochs=1", "train_samples=100"),
            scaling=(2, 4), scaling_repeats=1, gemm_n=256, gemm_iters=2, profile_models=4, profile_steps=1,
            bench_args=("--repeats", "1", "--seeds", "1", "--train-samples", "100"),
            caps={"pytest": 0, "lesson": 60, "sweep": 90, "kernels": 60, "bench": 90})
STEPS = ("pytest", "lesson", "sweep", "kernels", "bench")
_PRINTING = threading.Lock()


def say(line: str) -> None:
    with _PRINTING:  # steps run two at a time in a dry run
        sys.stdout.write(f"{PREFIX} {line}\n")
        sys.stdout.flush()


def fail(line: str, code: int = 3) -> None:
    print(f"{PREFIX} {line}", file=sys.stderr, flush=True)
    raise SystemExit(code)


def clean(value: Any) -> Any:
    """``value`` for JSON: a float that is not finite as None (not a file strict readers refuse)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


def write_json(path: Path, value: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(clean(value), indent=2, allow_nan=False, default=str) + "\n")
    tmp.replace(path)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def echo(output: bytes | str | None) -> None:
    """A command's output into this process's own (the step's log)."""
    if output:
        sys.stdout.write(output.decode(errors="replace") if isinstance(output, bytes) else output)
        sys.stdout.flush()


def tail(output: bytes | str | None, lines: int = 3) -> str:
    """A command's last lines, as one line (an initbench error is a short paragraph)."""
    text = output.decode(errors="replace") if isinstance(output, bytes) else output or ""
    return " ".join(" ".join(line.split()) for line in text.splitlines()[-lines:] if line.strip())[-300:]


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


# --- env and data checks


def cmd_env(args: argparse.Namespace) -> None:
    """What the measurements run on; one line and exit 3 if it cannot run them."""
    from initbench.storage.machine import cpu_model  # the CPU's name as bench records it
    info: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform(),
                            "host": platform.node(), "cpu": cpu_model(), "cpu_count": os.cpu_count()}
    if args.device == "cuda":
        info |= cuda_info()
    else:  # the dry run: torch's version without the seconds of importing it (its steps import it)
        from importlib.metadata import PackageNotFoundError, version

        try:
            info |= {"torch": version("torch"), "device": "cpu", "device_name": cpu_model()}
        except PackageNotFoundError:
            fail(f"python3 ({sys.executable}) has no torch installed")
    from initbench.data import fashion_mnist
    from initbench.errors import InitbenchError
    from initbench.settings import default_data_dir

    try:
        info["data"] = str(fashion_mnist.ensure(default_data_dir()))
    except InitbenchError as e:
        fail(f"FashionMNIST is not usable: {' '.join(str(e).split())}")
    info["git"] = git_state()
    write_json(Path(args.write), info)
    say(f"{info['device_name']}, torch {info['torch']}, data in {info['data']}")


def cuda_info() -> dict[str, Any]:
    """torch, its CUDA and the first GPU, which must run a kernel; else one line and exit 3."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            import torch
        except Exception as e:  # noqa: BLE001 - any import failure is the same answer
            fail(f"python3 ({sys.executable}) cannot import torch: {type(e).__name__}: {e}")
        if not torch.cuda.is_available():
            why = "; ".join(str(w.message).splitlines()[0] for w in caught)[:300]
            fail(f"CUDA is not available to torch {torch.__version__} (built for CUDA {torch.version.cuda}): "
                 f"{why or 'no CUDA device or driver seen'}. Nothing measured.")
        try:
            props = torch.cuda.get_device_properties(0)
            probe = torch.ones(1 << 20, device="cuda")
            if float(probe.sum()) != float(1 << 20):
                raise RuntimeError("a sum on the GPU came out wrong")
        except Exception as e:  # noqa: BLE001
            fail(f"CUDA is seen but does not work: {type(e).__name__}: {str(e).splitlines()[0]}")
    return {"torch": torch.__version__, "cuda_build": torch.version.cuda, "device": "cuda", "device_name": props.name,
            "capability": f"{props.major}.{props.minor}", "memory_bytes": props.total_memory,
            "multiprocessors": props.multi_processor_count, "devices": torch.cuda.device_count()}


def git_state() -> dict[str, Any] | None:
    """The commit the tree is at and whether it has changes (None where git or .git is absent)."""
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10)
        changed = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                                 capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if head.returncode:
        return None
    return {"commit": head.stdout.strip(), "changed_files": len(changed.stdout.splitlines())}


def cmd_verify_data(args: argparse.Namespace) -> None:
    """The .gz files decompress to FashionMNIST's real files (their SHA-256)."""
    from initbench.data.fashion_mnist import SHA256

    folder = Path(args.folder)
    for name, expected in SHA256.items():
        path = folder / f"{name}.gz"
        try:
            with gzip.open(path, "rb") as f:
                digest = hashlib.file_digest(f, "sha256").hexdigest()
        except (OSError, EOFError) as e:
            fail(f"{path}: cannot be read ({e})", 2)
        if digest != expected:
            fail(f"{path} is not FashionMNIST's file (its decompressed SHA-256 differs)", 2)


# --- steps: each in its own process, saving what it measured as it goes


class Step:
    """One step's process: its sizes, device, deadline, folders and the result it saves."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.name, self.device, self.deadline = args.name, args.device, args.deadline
        self.dry = args.dry_run
        self.sizes = DRY if self.dry else GPU
        self.work, self.out = Path(args.work), Path(args.out)
        self.result: dict[str, Any] = {"errors": []}
        self.path = self.work / f"{self.name}.json"

    def save(self, **values: Any) -> None:
        self.result.update(values)
        write_json(self.path, self.result)

    def error(self, part: str, e: BaseException) -> None:
        detail = str(e).strip() or type(e).__name__
        if isinstance(e, subprocess.TimeoutExpired):
            detail = f"ran past its {e.timeout:.0f} s"
        self.result["errors"].append(f"{part}: {detail.splitlines()[0][:300]}")
        say(f"{self.name}: {part} failed: {detail.splitlines()[0][:300]}")
        self.save()

    def left(self, keep: float = 0.0) -> float:
        """Seconds a part may take: what is left of the step's time, less the share ``keep``
        that the parts after it need."""
        return max(1.0, (self.deadline - time.time()) * (1 - keep))

    def call(self, command: list[str], keep: float = 0.0) -> float:
        """Run a command and return its wall seconds; its output goes into this step's log,
        and an error names its last lines if it fails, or its time (``left(keep)``) if it
        runs past it."""
        say(f"{self.name}: {' '.join(command[1:] if command[0] == sys.executable else command)}")
        tic = time.perf_counter()
        try:
            done = subprocess.run(command, timeout=self.left(keep), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT)
        except subprocess.TimeoutExpired as e:
            echo(e.output)
            raise
        echo(done.stdout)
        if done.returncode:
            raise RuntimeError(f"exit status {done.returncode}: {tail(done.stdout)}")
        return time.perf_counter() - tic

    def part(self, name: str, work: Callable[[], None]) -> None:
        """A part of the step: its failure recorded, the next part run."""
        try:
            work()
        except Exception as e:  # noqa: BLE001 - recorded, and the step goes on
            self.error(name, e)


def initbench(*args: str) -> list[str]:
    return [sys.executable, "-m", "initbench", *args]


def step_pytest(step: Step) -> None:
    """The CUDA-parametrized engine tests (-k cuda: agreement, exactness alone, freezing, SGD)."""
    xml = step.out / "pytest-cuda.xml"
    command = [sys.executable, "-m", "pytest", "tests/test_engine.py", "-k", "cuda", "-q", "-p", "no:cacheprovider",
               f"--junitxml={xml}"]
    try:
        step.save(seconds=step.call(command))
    except RuntimeError as e:  # tests failed; the counts below say which
        step.error("pytest", e)
    step.save(**junit_counts(xml))
    if step.result.get("tests", 0) == 0:
        step.error("pytest", RuntimeError("no test ran (did -k cuda select none?)"))
    elif step.result.get("skipped", 0) == step.result["tests"] and step.device == "cuda":
        step.error("pytest", RuntimeError("every CUDA test skipped: the tests saw no CUDA"))


def junit_counts(path: Path) -> dict[str, Any]:
    """Tests, failures, errors and skips from pytest's JUnit XML, and the failed tests' names."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return {"tests": 0, "junit": None}
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    counts = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    failed = []
    for case in (case for s in suites for case in s.iter("testcase")):
        bad = case.find("failure") if case.find("failure") is not None else case.find("error")
        if bad is not None:
            failed.append(f"{case.get('name')}: {last_line(bad.get('message') or '')[:200]}")
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return counts | {"failed": failed, "junit": path.name}


def step_lesson(step: Step) -> None:
    """The lesson's compare (6 schemes x seeds x epochs): the whole `initbench compare`
    process, after a warm-up run; then its training alone, timed in this process after a
    warm-up (what engines.train does for compare: batched, validation each epoch, the test pass)."""
    import torch

    from initbench import data
    from initbench.jobs import Job
    from initbench.settings import TrainSettings, default_data_dir
    from initbench.training import engines
    from initbench.training.engines.batched import timed

    s = step.sizes
    device = torch.device(step.device)
    step.save(models=len(LESSON_SCHEMES) * s.lesson_seeds, seeds=s.lesson_seeds, epochs=s.lesson_epochs,
              train_samples=s.train_samples)

    def training() -> None:
        settings = TrainSettings.of(epochs=s.lesson_epochs, train_samples=s.train_samples)
        splits = data.load(default_data_dir(), settings.data).to(device)
        jobs = [Job(scheme, seed, settings) for seed in range(s.lesson_seeds) for scheme in LESSON_SCHEMES]
        results: list[Any] = []

        def train() -> None:
            results[:] = engines.train(jobs, splits, device, "batched")

        for _ in range(s.train_warmups):
            train()
        samples = [timed(train, device) for _ in range(s.train_repeats)]
        accuracy = {scheme: statistics.mean(r.val_acc[-1] for r in results if r.job.scheme == scheme)
                    for scheme in LESSON_SCHEMES}
        step.save(train_seconds=statistics.median(samples), train_samples_seconds=samples,
                  val_acc_by_scheme=accuracy, train_images=len(splits.y_train))
        if device.type == "cuda":
            torch.cuda.empty_cache()

    def whole_process() -> None:
        subset = [] if s.train_samples is None else ["--train-samples", str(s.train_samples)]
        command = initbench("compare", *LESSON_SCHEMES, "--seeds", str(s.lesson_seeds), "--epochs",
                            str(s.lesson_epochs), "--device", step.device, "-o", str(step.work / "compare"),
                            "--overwrite", "--quiet", *subset)
        for _ in range(s.compare_warmups):
            step.save(compare_cold_seconds=step.call(command, keep=0.6))
        samples = []
        for _ in range(s.compare_repeats):
            samples.append(step.call(command, keep=0.4))
            step.save(compare_seconds=statistics.median(samples), compare_samples_seconds=samples)

    step.part("compare, whole process", whole_process)  # first: its commands have timeouts, training has none
    step.part("training alone", training)


def store_rows(folder: Path) -> dict[str, dict[str, Any]]:
    """A store's rows by key: the numbers, and when each was committed."""
    import numpy as np

    db = sqlite3.connect(f"file:{folder / 'store.sqlite'}?mode=ro", uri=True, timeout=5)
    try:
        rows = db.execute("SELECT key, val_acc, test_acc, val_acc_per_epoch, last_batch_loss, last_epoch_loss, "
                          "diverged_at, losses, finished FROM jobs").fetchall()
    finally:
        db.close()
    return {key: {"acc": [val, test, *json.loads(per_epoch)], "loss": [np.nan if v is None else v for v in (lb, le)],
                  "diverged_at": div, "losses": np.frombuffer(blob, dtype="<f4"), "finished": finished}
            for key, val, test, per_epoch, lb, le, div, blob, finished in rows}


def count_rows(folder: Path) -> int:
    try:
        db = sqlite3.connect(f"file:{folder / 'store.sqlite'}?mode=ro", uri=True, timeout=1)
        try:
            return db.execute("SELECT count(*) FROM jobs").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:  # not made yet, or its table not yet
        return 0


def compare_stores(a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The largest differences between two stores' numbers, job by job (keys must match)."""
    import numpy as np

    common = sorted(set(a) & set(b))
    acc_diff, loss_rel, close, differing = 0.0, 0.0, True, 0
    for key in common:
        x, y = a[key], b[key]
        d = float(np.max(np.abs(np.subtract(x["acc"], y["acc"]))))
        lx, ly = np.concatenate([x["losses"], x["loss"]]), np.concatenate([y["losses"], y["loss"]])
        fx, fy = np.isfinite(lx), np.isfinite(ly)  # NaN after divergence, inf where it diverged
        same_rest = np.array_equal(fx, fy) and np.array_equal(lx[~fx], ly[~fy], equal_nan=True)
        both = fx & fy
        rel = np.abs(lx[both] - ly[both]) / np.maximum(np.abs(ly[both]), 1e-30)
        r = float(rel.max()) if rel.size else 0.0
        ok = (d <= ACC_TOLERANCE and same_rest and x["diverged_at"] == y["diverged_at"]
              and bool(np.allclose(lx[both], ly[both], rtol=LOSS_RTOL, atol=0.0)))
        acc_diff, loss_rel = max(acc_diff, d), max(loss_rel, r)
        close &= ok
        differing += not ok
    bitwise = all(np.array_equal(a[k]["losses"], b[k]["losses"], equal_nan=True) and a[k]["acc"] == b[k]["acc"]
                  for k in common)
    return {"jobs_compared": len(common), "only_in_one": len(set(a) ^ set(b)), "max_abs_accuracy_difference": acc_diff,
            "max_relative_loss_difference": loss_rel, "jobs_differing": differing, "bitwise_equal": bitwise,
            "equal": close and not set(a) ^ set(b) and bool(common)}


def step_sweep(step: Step) -> None:
    """A sweep of the lesson's network, timed uninterrupted (its sweep.json's figures); the
    same sweep again, interrupted with SIGINT once its store holds a chunk, then resumed; the
    resumed store's numbers against the uninterrupted one's."""
    s = step.sizes
    sets = [f"seeds={s.sweep_seeds}", f"max_batch_models={s.sweep_chunk}", f"device={step.device}",
            f"schemes={json.dumps(list(s.sweep_schemes))}", *s.sweep_extra]
    command = initbench("sweep", str(ROOT / "configs" / "sweep-lesson.toml"), *(a for x in sets for a in ("--set", x)),
                        "--quiet")
    full, cut = step.work / "sweep-full", step.work / "sweep-cut"

    wall = step.call([*command, "-o", str(full)], keep=0.55)
    figures = (read_json(full / "sweep.json") or {}).get("figures", {})
    jobs, seconds = figures.get("jobs"), figures.get("train_seconds")
    step.save(sweep={"command_sets": sets, "wall_seconds": wall, "figures": figures,
                     "jobs_per_second": jobs / seconds if jobs and seconds else None})

    say(f"{step.name}: the same sweep into {cut.name}, SIGINT once a chunk is committed")
    process = subprocess.Popen([*command, "-o", str(cut)], stdin=subprocess.DEVNULL)
    until = time.time() + step.left(keep=0.45)
    rows = 0
    while process.poll() is None and time.time() < until:
        rows = count_rows(cut)
        if rows:
            process.send_signal(signal.SIGINT)
            break
        time.sleep(0.02)
    signalled = process.poll() is None and rows > 0
    if not signalled:
        process.kill()
    try:
        code = process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        code = process.wait()
    survived = store_rows(cut) if (cut / "store.sqlite").exists() else {}
    resume: dict[str, Any] = {"signal": "SIGINT", "rows_when_signalled": rows, "exit_status": code,
                              "survived": len(survived), "jobs": jobs,
                              "interrupted": bool(signalled and jobs and 0 < len(survived) < jobs)}
    step.save(resume=resume)
    if not resume["interrupted"]:
        raise RuntimeError(f"the sweep was not interrupted between commits ({len(survived)} of {jobs} rows, "
                           f"exit status {code})")

    resume["resume_wall_seconds"] = step.call([*command, "-o", str(cut)])
    again = (read_json(cut / "sweep.json") or {}).get("figures", {})
    after = store_rows(cut)
    resume |= {"in_store_before": again.get("in_store_before"), "trained_now": again.get("trained_now"),
               "kept_untouched": all(after.get(k, {}).get("finished") == v["finished"] for k, v in survived.items()),
               **compare_stores(after, store_rows(full))}
    resume["equal"] = bool(resume["equal"] and resume["kept_untouched"] and resume["in_store_before"] == len(survived)
                           and resume["trained_now"] == jobs - len(survived))
    step.save(resume=resume)
    if not resume["equal"]:
        raise RuntimeError("the resumed sweep's numbers are not the uninterrupted sweep's (see resume in the JSON)")


def step_kernels(step: Step) -> None:
    """The batched step by models per step (`initbench bench --scaling`), a large fp32
    sgemm (TF32 off), and a torch.profiler profile of a batched step."""
    import torch

    from initbench.settings import TrainSettings
    from initbench.training import engines

    s = step.sizes
    device = torch.device(step.device)

    def scaling() -> None:
        # bench refuses counts beyond what fits in half the free memory; keep those that fit
        # (with a margin: this process's own CUDA context), and the most that fits in their place.
        fits = int(engines.models_that_fit(TrainSettings(), device) * 0.95)
        counts = [m for m in s.scaling if m <= fits]
        most = fits // 100 * 100 or fits
        if len(counts) < len(s.scaling) and most > max(counts, default=0):
            counts.append(most)
        step.save(scaling_requested=list(s.scaling), scaling_counts=counts, models_that_fit=fits)
        path = step.out / "bench-scaling.json"
        step.call(initbench("bench", "--device", step.device, "--scaling", ",".join(map(str, counts)), "--repeats",
                            str(s.scaling_repeats), "-o", str(path), "-f", "json"), keep=0.25)
        step.save(scaling=(read_json(path) or {}).get("scaling"), scaling_file=path.name)

    def sgemm() -> None:
        n = s.gemm_n
        saved = torch.backends.cuda.matmul.allow_tf32  # as the engines run: initbench never turns TF32 on
        torch.backends.cuda.matmul.allow_tf32 = False
        try:
            a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
            c = torch.empty(n, n, device=device)
            for _ in range(3):
                torch.mm(a, b, out=c)
            seconds = timed_iterations(lambda: torch.mm(a, b, out=c), s.gemm_iters, device)
        finally:
            torch.backends.cuda.matmul.allow_tf32 = saved
        step.save(sgemm={"n": n, "iterations": s.gemm_iters, "seconds_per_product": seconds,
                         "flops_per_second": 2 * n**3 / seconds, "note": TF32_NOTE,
                         "engines_allow_tf32": saved, "float32_matmul_precision": torch.get_float32_matmul_precision()})

    def profiled() -> None:
        table, seconds = profile_step(s.profile_models, s.profile_steps, device)
        path = step.out / "profile.txt"
        path.write_text(f"torch.profiler: {s.profile_steps} batched training steps of {s.profile_models} models "
                        f"(the lesson's network, batch {BATCH}) on {step.device}, after 2 warm-up steps; "
                        f"top 25 by {'CUDA' if device.type == 'cuda' else 'CPU'} time\n\n{table}\n")
        step.save(profile={"models": s.profile_models, "steps": s.profile_steps, "seconds_per_step": seconds,
                           "file": path.name})

    step.part("scaling", scaling)
    step.part("sgemm", sgemm)
    step.part("profile", profiled)


def timed_iterations(work: Callable[[], object], iterations: int, device: Any) -> float:
    """Seconds per call of ``work``: CUDA events around the calls on a GPU, the clock elsewhere."""
    import torch

    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(device)
        start.record()
        for _ in range(iterations):
            work()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000 / iterations
    tic = time.perf_counter()
    for _ in range(iterations):
        work()
    return (time.perf_counter() - tic) / iterations


def profile_step(models: int, steps: int, device: Any) -> tuple[str, float]:
    """A torch.profiler table of ``steps`` batched training steps of ``models`` lesson
    networks, the step the batched engine's step_cost times (``sample_step``: a random
    batch, dropout masks drawn), and the seconds per step under the profiler."""
    from torch.profiler import ProfilerActivity, profile

    from initbench.settings import TrainSettings
    from initbench.training.engines.batched import sample_step, timed

    train_step, _ = sample_step(TrainSettings(), device, models)
    for _ in range(2):
        timed(train_step, device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        seconds = statistics.median(timed(train_step, device) for _ in range(steps))
    averages = prof.key_averages()
    keys = ("device_time_total", "cuda_time_total") if device.type == "cuda" else ("cpu_time_total",)
    for key in keys:
        try:
            return averages.table(sort_by=key, row_limit=25), seconds
        except (AttributeError, KeyError):
            continue
    return averages.table(row_limit=25), seconds


def step_bench(step: Step) -> None:
    """`initbench bench --no-whole-process`: seconds per model-epoch of the GEMM floor and the
    engines, the vmap recipe and a loop over modules."""
    path = step.out / "bench.json"
    step.call(initbench("bench", "--device", step.device, "--no-whole-process", *step.sizes.bench_args, "-o",
                        str(path), "-f", "json"))
    report = read_json(path) or {}
    per = report.get("seconds_per_model_epoch", {})
    step.save(seconds_per_model_epoch=per, ratios=report.get("ratios"), spread=report.get("spread"),
              models_in_batched_step=report.get("models_in_batched_step"), train_images=report.get("train_images"),
              bench_file=path.name)


STEP_FUNCTIONS: dict[str, Callable[[Step], None]] = {
    "pytest": step_pytest, "lesson": step_lesson, "sweep": step_sweep, "kernels": step_kernels, "bench": step_bench}


def cmd_step(args: argparse.Namespace) -> None:
    step = Step(args)
    step.save()
    try:
        STEP_FUNCTIONS[args.name](step)
    except Exception as e:  # noqa: BLE001 - recorded; the driver reads the step's JSON
        step.error(args.name, e)
    raise SystemExit(1 if step.result["errors"] else 0)


# --- the driver


@dataclass
class Outcome:
    status: str  # ok, failed, timeout, skipped
    seconds: float = 0.0
    timeout: float = 0.0
    error: str = ""


def timeout_for(step: str, caps: dict[str, int], later: list[str], left: float) -> float:
    """A step's time: its cap plus what earlier steps left unused, so long as the later steps
    keep their caps; when even that is short, its share of what is left."""
    rest = sum(caps[s] for s in later)
    return max(left - rest, left * caps[step] / max(caps[step] + rest, 1), 1.0)


def run_step(name: str, args: argparse.Namespace, timeout: float, work: Path) -> Outcome:
    log = work / f"{name}.log"
    command = [sys.executable, str(Path(__file__).resolve()), "step", name, "--work", str(work), "--out", args.out,
               "--device", args.device, "--deadline", str(time.time() + timeout), *(["--dry-run"] * args.dry_run)]
    say(f"{name}: started, {timeout:.0f} s at most")
    tic = time.perf_counter()
    with log.open("w") as f:
        process = subprocess.Popen(command, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True, cwd=ROOT)
        try:
            code = process.wait(timeout=timeout + 5)  # the step's own deadline comes first
            outcome = Outcome("ok" if code == 0 else "failed")
        except subprocess.TimeoutExpired:
            outcome = Outcome("timeout", error=f"killed after {timeout:.0f} s")
        finally:
            try:  # the step and anything it started (a sweep, a bench)
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            process.wait()
    outcome.seconds, outcome.timeout = time.perf_counter() - tic, timeout
    result = read_json(work / f"{name}.json") or {}
    if outcome.status == "failed":
        outcome.error = "; ".join(result.get("errors", [])) or last_line(log.read_text(errors="replace"))
    say(f"{name}: {outcome.status} in {outcome.seconds:.1f} s" + (f" ({outcome.error})" if outcome.error else ""))
    return outcome


def cmd_run(args: argparse.Namespace) -> None:
    sizes = DRY if args.dry_run else GPU
    work, out = Path(args.work), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    outcomes: dict[str, Outcome] = {}
    if args.dry_run:
        # Two steps at a time, longest first: on the device they run one after another (timings),
        # here the sizes are tiny and what takes the time is starting Python and torch.
        outcomes["pytest"] = Outcome("skipped", error="dry run: the CUDA tests skip without CUDA")
        steps = sorted((s for s in STEPS if sizes.caps[s]), key=lambda s: -sizes.caps[s])
        with ThreadPoolExecutor(2) as pool:
            done = {name: pool.submit(run_step, name, args, sizes.caps[name], work) for name in steps}
        outcomes |= {name: done[name].result() for name in steps}
    for i, name in enumerate(STEPS if not args.dry_run else ()):
        left = args.deadline - time.time()
        if left < 10:
            outcomes[name] = Outcome("skipped", error="out of time")
            say(f"{name}: skipped, out of time")
            continue
        outcomes[name] = run_step(name, args, timeout_for(name, sizes.caps, list(STEPS[i + 1:]), left), work)
    outcomes = {name: outcomes[name] for name in STEPS}
    results = {name: read_json(work / f"{name}.json") or {} for name in STEPS}
    env = read_json(work / "env.json") or {}
    install = (work / "install.txt").read_text().strip() if (work / "install.txt").exists() else "not attempted"
    broken = False
    try:
        report = assemble(results, outcomes, env, install, sizes, time.time() - started)
        summary = markdown(report)
    except Exception as e:  # noqa: BLE001 - the numbers still come back, unjudged
        broken = True
        report = {"error": f"{type(e).__name__}: {e}", "environment": env, "install": install,
                  "steps": {name: asdict(o) for name, o in outcomes.items()}, "results": results}
        summary = (f"# initbench GPU check: the summary failed ({type(e).__name__}: {e})\n\n"
                   + "".join(f"- {name}: {o.status} {o.error}\n" for name, o in outcomes.items())
                   + "\nEvery number is in bench-gpu.json under results.\n")
    write_json(out / "bench-gpu.json", report)
    if not args.dry_run:
        write_json(ROOT / "docs" / "bench-gpu.json", report)
    logs = [f"===== {name}: {outcomes[name].status}\n{(work / f'{name}.log').read_text(errors='replace')}"
            for name in STEPS if (work / f"{name}.log").exists()]
    (out / "gpu-check.log").write_text("\n".join(logs))
    (out / "gpu-summary.md").write_text(summary)
    print(f"\n{summary}", flush=True)
    bad = [name for name, o in outcomes.items() if o.status != "ok" and not (args.dry_run and name == "pytest")]
    raise SystemExit(1 if bad or broken else 0)


# --- the figures against the targets


def share_row(rows: list[dict[str, Any]], at_least: int = 1000) -> dict[str, Any] | None:
    """The scaling row the targets read: the fastest (model-epochs/s) of those with at least
    ``at_least`` models, or the largest count where none has that many."""
    if not rows:
        return None
    big = [r for r in rows if r["models"] >= at_least]
    return max(big, key=lambda r: r["model_epochs_per_second"]) if big else max(rows, key=lambda r: r["models"])


def assemble(results: dict[str, dict[str, Any]], outcomes: dict[str, Outcome], env: dict[str, Any], install: str,
             sizes: Sizes, seconds: float) -> dict[str, Any]:
    """Every number, the figures against the targets, and where they come from."""
    lesson, sweep, kernels, bench = (results[k] for k in ("lesson", "sweep", "kernels", "bench"))
    rows = kernels.get("scaling") or []
    for r in rows:
        r["products_flops_per_second"] = step_flops(r["models"]) / r["seconds_per_step"]
        r["share_of_fp32_peak"] = r["products_flops_per_second"] / PEAK_FP32
    sgemm = kernels.get("sgemm") or {}
    row = share_row(rows)
    per_minute = row["model_epochs_per_second"] * 60 if row else None
    share = row["share_of_fp32_peak"] if row else None
    at_scale = bool(row) and row["models"] >= 1000  # a step of fewer models is not judged: it misses by definition
    per = bench.get("seconds_per_model_epoch") or {}
    vmap = per["vmap"] / per["batched"] if per.get("vmap") and per.get("batched") else None
    shape = f"{len(LESSON_SCHEMES)}x{sizes.lesson_seeds}x{sizes.lesson_epochs}"
    on = "" if sizes is GPU else f" on {sizes.train_samples} images"
    against_sgemm = ""
    if row and sgemm.get("flops_per_second"):
        against_sgemm = (f"; {row['products_flops_per_second'] / sgemm['flops_per_second']:.0%} of the measured "
                         f"sgemm, {sgemm['flops_per_second'] / 1e12:.1f} TFLOP/s")
    targets = [
        {"name": "lesson", "what": f"the lesson's {shape}{on}, training alone", "goal": "<= 3 s",
         "value": lesson.get("train_seconds"), "unit": "s", "met": _met(lesson.get("train_seconds"), 3.0, below=True),
         "detail": f"whole process {lesson['compare_seconds']:.1f} s" if lesson.get("compare_seconds") else ""},
        {"name": "throughput", "what": "model-epochs per minute at >= 1,000 models per step", "goal": ">= 100,000",
         "value": per_minute, "unit": "model-epochs/min",
         "met": _met(per_minute, 1e5) if at_scale else (False if row else None),
         "detail": f"at {row['models']:,} models, {row['seconds_per_step'] * 1e3:.2f} ms/step" if row else ""},
        {"name": "peak", "what": "the step's matrix products, share of fp32 peak", "goal": ">= 40%",
         "value": share, "unit": "of 67 TFLOP/s", "met": _met(share, 0.4) if at_scale else (False if row else None),
         "detail": (f"{row['products_flops_per_second'] / 1e12:.2f} TFLOP/s at {row['models']:,} models"
                    + against_sgemm) if row else ""},
        {"name": "vmap", "what": "batched engine vs. PyTorch's vmap recipe, per model-epoch", "goal": ">= 10x",
         "value": vmap, "unit": "x", "met": _met(vmap, 10.0),
         "detail": "" if vmap else "bench has no vmap measurement" if per else "bench did not finish"},
    ]
    resume = sweep.get("resume") or {}
    return {
        "what": "initbench's GPU check (scripts/gpu-check.sh)", "mode": sizes.label,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "seconds": seconds,
        "device": env.get("device_name"), "environment": env, "install": install,
        "steps": {name: asdict(o) for name, o in outcomes.items()},
        "targets": targets,
        "fp32_peak": {"datasheet_flops_per_second": PEAK_FP32, "sgemm": sgemm or None,
                      "step_flops_per_model": step_flops()},
        "pytest": results["pytest"], "lesson": lesson, "sweep": sweep.get("sweep"), "resume": resume,
        "scaling": rows, "scaling_counts": kernels.get("scaling_counts"), "profile": kernels.get("profile"),
        "bench": bench,
    }


def _met(value: float | None, goal: float, below: bool = False) -> bool | None:
    if value is None or not math.isfinite(value):
        return None
    return value <= goal if below else value >= goal


def _value(t: dict[str, Any]) -> str:
    v = t["value"]
    if v is None:
        return "not measured"
    if t["unit"] == "of 67 TFLOP/s":
        return f"{v:.1%} of 67 TFLOP/s"
    if t["unit"] == "model-epochs/min":
        return f"{v:,.0f}"
    return f"{v:.2f} {t['unit']}" if t["unit"] == "s" else f"{v:.1f}x"


def markdown(r: dict[str, Any]) -> str:
    env, resume, pytest_ = r["environment"], r["resume"], r["pytest"]
    git = env.get("git") or {}
    lines = [f"# initbench GPU check: {r['device'] or 'no device'} ({r['mode']})", "",
             f"{r['date']}; torch {env.get('torch')}" + (f", CUDA {env['cuda_build']}" if env.get("cuda_build") else "")
             + f", Python {env.get('python')}; "
             f"commit {str(git.get('commit', 'unknown'))[:12]}"
             + (f" with {git['changed_files']} changed files" if git.get("changed_files") else "")
             + f"; {r['seconds']:.0f} s of steps.", "",
             "| target | goal | measured | met | detail |", "| --- | --- | --- | --- | --- |"]
    for t in r["targets"]:
        met = {True: "yes", False: "no", None: "-"}[t["met"]]
        lines.append(f"| {t['what']} | {t['goal']} | {_value(t)} | {met} | {t['detail'] or ''} |")
    lines += ["", "| check | result |", "| --- | --- |"]
    if resume.get("jobs_compared"):
        verdict = "equal" if resume.get("equal") else "NOT equal"
        verdict += " (bit for bit)" if resume.get("bitwise_equal") else ""
        lines.append(f"| resumed sweep = uninterrupted | {verdict}"
                     f": {resume['jobs_compared']} jobs, {resume['survived']} kept from before the SIGINT; "
                     f"max accuracy difference {resume['max_abs_accuracy_difference']:.2g}, "
                     f"max relative loss difference {resume['max_relative_loss_difference']:.2g} |")
    else:
        lines.append(f"| resumed sweep = uninterrupted | not checked: {r['steps']['sweep']['error'] or 'no result'} |")
    if pytest_.get("tests"):
        failed = f"; failed: {', '.join(pytest_['failed'][:3])}" if pytest_.get("failed") else ""
        lines.append(f"| CUDA engine tests | {pytest_['passed']} passed, {pytest_['failures'] + pytest_['errors']} "
                     f"failed, {pytest_['skipped']} skipped of {pytest_['tests']}{failed} |")
    else:
        lines.append(f"| CUDA engine tests | {r['steps']['pytest']['status']}: {r['steps']['pytest']['error']} |")
    sweep = r.get("sweep") or {}
    if sweep.get("figures"):
        f = sweep["figures"]
        lines.append(f"| sweep of the lesson's network | {f['jobs']} jobs, {f['train_seconds']:.1f} s of training "
                     f"({sweep['jobs_per_second']:.1f} jobs/s, {f['model_epochs_per_second']:.1f} model-epochs/s), "
                     f"{sweep['wall_seconds']:.1f} s whole |")
    sgemm = r["fp32_peak"]["sgemm"]
    if sgemm:
        tflops = sgemm["flops_per_second"] / 1e12
        lines.append(f"| fp32 sgemm {sgemm['n']}^3 ({sgemm['note']}) | {tflops:.2f} TFLOP/s |")
    per = r["bench"].get("seconds_per_model_epoch") or {}
    if per:
        lines.append("| bench, s per model-epoch | " + ", ".join(f"{k} {v:.4g}" for k, v in per.items()) + " |")
    for row in r["scaling"]:
        lines.append(f"| step of {row['models']:,} models | {row['seconds_per_step'] * 1e3:.2f} ms, "
                     f"{row['model_epochs_per_second'] * 60:,.0f} model-epochs/min, "
                     f"{row['memory_bytes'] / 2**20:,.0f} MiB, {row['share_of_fp32_peak']:.1%} of fp32 peak |")
    lines += ["", "| step | status | seconds | note |", "| --- | --- | --- | --- |"]
    for name, o in r["steps"].items():
        lines.append(f"| {name} | {o['status']} | {o['seconds']:.1f} of {o['timeout']:.0f} | {o['error']} |")
    lines.append(f"| install | {r['install']} | | |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    env = sub.add_parser("env")
    env.add_argument("--device", choices=("cuda", "cpu"), required=True)
    env.add_argument("--write", required=True)
    verify = sub.add_parser("verify-data")
    verify.add_argument("folder")
    for name in ("run", "step"):
        p = sub.add_parser(name)
        if name == "step":
            p.add_argument("name", choices=STEPS)
        p.add_argument("--work", required=True)
        p.add_argument("--out", required=True)
        p.add_argument("--device", choices=("cuda", "cpu"), required=True)
        p.add_argument("--deadline", type=float, required=True, help="seconds since the epoch")
        p.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    {"env": cmd_env, "verify-data": cmd_verify_data, "run": cmd_run, "step": cmd_step}[args.command](args)


if __name__ == "__main__":
    main()
