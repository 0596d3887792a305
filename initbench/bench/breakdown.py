"""``initbench bench --breakdown``: where one batched model-epoch's time goes, part by part,
and what each part would cost at its floor.

One epoch of the lesson's models is trained by the batched engine under ``torch.profiler``.
Every operation called from Python (an event with no operation above it) is put into the
part its name says (a product, the optimizer, an activation, the loss...); the engine's
scopes (``batched.SCOPES``) claim everything inside them (building the models, drawing
dropout masks, evaluation). What the operations do not account for is the Python between
them, with the dispatch of views. Beside each part, its floor: the same work for all
models in one call per step, no Python between (the products: the GEMM floor).
"""

from __future__ import annotations

import os
import statistics
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from itertools import pairwise
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

from initbench import data
from initbench.bench.timing import BenchConfig, gemm_floor, interleaved
from initbench.data import Splits
from initbench.errors import UsageError
from initbench.jobs import Job, batches_per_epoch
from initbench.models.dropout import DropoutMasks
from initbench.settings import TrainSettings
from initbench.training import engines
from initbench.training.engines.batched import ACTIVATION_OPS, SCOPES, Population, timed
from initbench.training.streams import initial_model
from initbench.views.progress import Activity

# Parts, in the order shown, and the operations (called from Python) that make them up.
OPS = {
    "products": {"aten::matmul", "aten::mm", "aten::bmm", "aten::addmm"},
    "optimizer": {"aten::_fused_adam_", "aten::_foreach_mul_", "aten::_foreach_add_"},
    "dropout masks": set(),  # a scope
    "activations": {f"aten::{name}" for name in ("clamp_min", "threshold_backward", "tanh", "tanh_backward",
                                                 "sigmoid", "sigmoid_backward", "gelu", "gelu_backward",
                                                 "elu", "elu_backward")},
    "loss": {"aten::log_softmax", "aten::gather", "aten::mean", "aten::neg_", "aten::exp_", "aten::scatter_add_",
             "aten::div_", "aten::full"},
    "batches": {"aten::index_select", "aten::index", "aten::randperm", "aten::stack"},
    "element-wise": {"aten::add_", "aten::add", "aten::mul", "aten::mul_", "aten::sum", "aten::isfinite",
                     "aten::bitwise_and_", "aten::__iand__", "aten::clone", "aten::copy_", "aten::all",
                     "aten::bitwise_not", "aten::masked_fill_", "aten::fill_"},
    "evaluation": set(),  # a scope
    "building": set(),  # a scope
}
# Operations that make views or read metadata: their whole cost is dispatch.
VIEWS = {f"aten::{name}" for name in ("select", "slice", "unbind", "transpose", "t", "expand", "as_strided", "view",
                                      "unsqueeze", "squeeze", "item", "_local_scalar_dense", "empty",
                                      "empty_strided", "resolve_conj", "resolve_neg", "alias", "detach",
                                      "is_nonzero", "lift_fresh", "_to_copy", "to")}
PYTHON = "Python and dispatch"
STEPS = 32  # steps a per-step floor is timed over
SCOPE_PART = {name: part for part, name in SCOPES.items()}
WHAT = {
    "products": "the matrix products of training",
    "optimizer": "Adam's update (the fused kernel)",
    "dropout masks": "dropout's random numbers",
    "activations": "ReLU (or the activation) and its gradient",
    "loss": "cross-entropy and its gradient",
    "batches": "batch orders and gathering each batch",
    "element-wise": "biases, dropout's multiplies, loss bookkeeping",
    "evaluation": "the validation (and test) passes",
    "building": "models, initial weights, stacking",
    PYTHON: "the Python between operations, views",
    "other": "operations in no part (the JSON names them)",
}


@dataclass(frozen=True)
class Part:
    name: str
    what: str
    seconds: float  # per model-epoch, under the profiler
    floor: float | None  # per model-epoch; None: no floor measured (building)


def run(config: BenchConfig, activity: Activity) -> dict[str, Any]:
    """The breakdown of one epoch of the bench's batched models (the lesson's schemes x
    ``config.seeds``), as the bench command prints and writes it."""
    if config.device.type != "cpu":
        raise UsageError(f"--breakdown profiles the CPU's operations; it cannot run on {config.device}. Leave "
                         "out --device, or use --scaling to time the batched step on a GPU.")
    settings = TrainSettings.of(epochs=1, train_samples=config.train_samples)
    activity.stage(f"Loading {data.get(settings.data.dataset).title}")
    splits = data.load(config.data_dir, settings.data, activity.stage).to(config.device)
    jobs = [Job(s, seed, settings) for seed in range(config.seeds) for s in config.schemes]
    return breakdown(settings, jobs, splits, config.device, config.repeats, activity)


def breakdown(settings: TrainSettings, jobs: list[Job], splits: Splits, device: torch.device,
              repeats: int, activity: Activity) -> dict[str, Any]:
    """Profile one epoch of ``jobs`` in one batched group, and measure each part's floor."""
    m = len(jobs)

    def epoch() -> object:
        return engines.train(jobs, splits, device, "batched", max_models=m)

    activity.stage(f"Timing one epoch of {m} models, {repeats + 1} times")
    epoch()  # warm-up: first-call costs
    unprofiled = statistics.median(timed(epoch, device) for _ in range(repeats)) / m
    activity.stage("Profiling one epoch")
    # Kineto, the profiler's library, logs its start and stop (and, without a GPU, an
    # ERROR line) on stderr; 6 silences it. Read when profiling starts; a user's own level stays.
    os.environ.setdefault("KINETO_LOG_LEVEL", "6")
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        profiled = timed(epoch, device) / m
    seconds: dict[str, float] = defaultdict(float)
    other: dict[str, float] = defaultdict(float)
    for event in prof.events():
        part = _part(event)
        if part is None:
            continue
        seconds[part] += event.cpu_time_total / 1e6 / m
        if part == "other":
            other[event.name] += event.cpu_time_total / 1e6 / m
    seconds[PYTHON] += profiled - sum(seconds.values())
    floors = part_floors(settings, jobs, splits, device, repeats, activity)
    names = [*OPS, PYTHON, *(["other"] if other else [])]
    parts = [Part(name, WHAT[name], seconds.get(name, 0.0), floors.get(name)) for name in names]
    return {"breakdown": [vars(p) for p in parts], "models": m, "profiled_seconds": profiled,
            "unprofiled_seconds": unprofiled, "other_operations": dict(other),
            "train_images": len(splits.y_train), "repeats": repeats}


def _part(event: Any) -> str | None:
    """The part an event's time counts to, or None where an event above it counts it."""
    parent = event.cpu_parent
    if event.name in SCOPE_PART:
        return None if _in_scope(parent) else SCOPE_PART[event.name]
    if parent is not None:  # called by an operation or inside a scope: counted there
        return None
    if event.name in VIEWS:
        return PYTHON
    return next((part for part, names in OPS.items() if event.name in names), "other")


def _in_scope(event: Any) -> bool:
    while event is not None:
        if event.name in SCOPE_PART:
            return True
        event = event.cpu_parent
    return False


def _repeat(work: Callable[[], object]) -> None:
    for _ in range(STEPS):
        work()


def part_floors(s: TrainSettings, jobs: list[Job], splits: Splits, device: torch.device,
                repeats: int, activity: Activity) -> dict[str, float]:
    """Seconds per model-epoch of each part's work done for all ``jobs``' models in one call
    per step (the products and evaluation: the GEMM floor's)."""
    m, seeds = len(jobs), len({job.seed for job in jobs})
    n_batches = batches_per_epoch(len(splits.y_train), s.optim.batch_size)
    b = s.optim.batch_size
    sizes = (data.get(s.data.dataset).input_size, *s.network.hidden, len(data.class_numbers(s.data)))
    hidden = s.network.hidden
    gen = torch.Generator(device=device).manual_seed(0)

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, device=device, generator=gen)

    params = sum(i * o + o for i, o in pairwise(sizes))
    adam = [[rand(m * params)] for _ in range(4)]
    step = [torch.zeros((), device=device)]

    def optimizer() -> None:
        torch._fused_adam_(*adam, [], step, lr=s.optim.lr, beta1=0.9, beta2=0.999, weight_decay=0.0, eps=1e-8,
                           amsgrad=False, maximize=False)

    masks = DropoutMasks(s.network.dropout, hidden, b * m, 1, [gen], device, block=1)
    ops = ACTIVATION_OPS[s.network.activation]
    z = [rand(m, b, h) for h in hidden]
    y_act = [torch.empty_like(t) for t in z]

    def activations() -> None:
        for zi, yi in zip(z, y_act):
            ops.forward(zi, yi)
            ops.backward(torch.empty_like(zi).copy_(zi), zi, yi)

    # The engine's own loss with its per-model calls off: each operation once for all models.
    stacked = Population(jobs, [initial_model(job, splits.x_train) for job in jobs], device)
    stacked.per_model = False
    logits, labels = rand(m, b, sizes[-1]), torch.randint(sizes[-1], (m, b, 1), device=device)
    loss, delta = torch.empty(m, device=device), torch.empty_like(logits)
    order = torch.randperm(len(splits.y_train), device=device)[:b]
    outs = [rand(m, b, o) for o in sizes[1:]]
    biases = [rand(m, 1, o) for o in sizes[1:]]
    bias_grads = [torch.empty_like(t) for t in biases]
    mask_like = [rand(m, b, h) for h in hidden]

    def batches() -> None:
        for _ in range(seeds):
            splits.x_train.index_select(0, order)
            splits.y_train[order]

    def elementwise() -> None:
        for out, bias, grad in zip(outs, biases, bias_grads):
            out.add_(bias)
            torch.sum(out, -2, keepdim=True, out=grad)
        for h, mask in zip(y_act, mask_like):
            torch.mul(h, mask, out=h)
            h.mul_(mask)
        torch.isfinite(loss.clone())

    per_step = {"optimizer": optimizer, "activations": activations, "batches": batches,
                "loss": lambda: stacked.cross_entropy(loss, delta, logits, labels),
                "element-wise": elementwise}
    if s.network.dropout:
        per_step["dropout masks"] = lambda: masks.at(0)
    n = (len(splits.y_train), len(splits.y_val), len(splits.y_test))
    whole: dict[str, tuple[float, Callable[[], None]]] = {  # name: (model-epochs per call, work)
        "products": (1, gemm_floor(s, *n, device, evaluation=False)),
        "evaluation": (1, gemm_floor(s, *n, device, training=False)),
        **{name: (m * STEPS / n_batches, partial(_repeat, work)) for name, work in per_step.items()},
    }
    activity.stage("Timing each part's floor", total=len(whole) * (1 + repeats))
    samples = interleaved(whole, repeats, device, activity)
    return {name: statistics.median(v) for name, v in samples.items()}
