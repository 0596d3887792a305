"""``initbench bench --network gpt``: a gpt's training step, tokens per second per model,
four ways: the engine's (sequential: one model after another, as compare trains a gpt), a
Python loop over plain nn.Modules stepping every model each step (what a user writes for an
ensemble), PyTorch's torch.func recipe (``stack_module_state``, ``functional_call``,
``vmap``: every model's forward in one vmapped call, autograd on the stacked parameters,
one Adam; torch 2.14 has no vmap rule for the CPU's attention kernel, so it runs
model by model inside), and the floor: the matrix products the step must do (forward, and the two
gradients of each), timed alone at their shapes.

Every model of a seed reads the same windows (``training.lm.windows`` from the seed's
stream). The batched engine has no row: it writes out the MLP's step by hand, and a gpt's
attention, norms and embeddings are not written there (a gpt trains on the sequential engine).
"""

from __future__ import annotations

import copy
import statistics
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.func import functional_call, stack_module_state, vmap

from initbench import data
from initbench.bench.timing import interleaved, spread
from initbench.jobs import Job
from initbench.settings import TrainSettings
from initbench.training import lm, streams
from initbench.training.engines.sequential import optimizer
from initbench.training.streams import initial_model
from initbench.views.progress import Activity

SCHEMES = ("gpt2", "small_init", "default")  # the lab's first comparison
STEPS = 5  # training steps per timed call


def settings() -> TrainSettings:
    """The lab's default gpt (4 blocks of 128, context 64, batch 32) on Shakespeare."""
    from initbench import models

    return TrainSettings.of(dataset="shakespeare", network="gpt", **models.get("gpt").defaults)


def _windows(jobs: Sequence[Job], tokens: Tensor,
             s: TrainSettings) -> tuple[Callable[[], tuple[Tensor, Tensor]], list[int]]:
    """A call of the first gives the next step's windows of every seed, [seeds, B, T] twice
    (inputs, targets); the second says which of those rows is each job's."""
    seeds = sorted({job.seed for job in jobs})
    streams_of = [streams.generator(seed, "windows") for seed in seeds]

    def draw() -> tuple[Tensor, Tensor]:
        drawn = [lm.windows(tokens, s.network.context, s.optim.batch_size, g) for g in streams_of]
        return torch.stack([x for x, _ in drawn]), torch.stack([y for _, y in drawn])

    return draw, [seeds.index(job.seed) for job in jobs]


def sequential(jobs: Sequence[Job], tokens: Tensor, s: TrainSettings) -> Callable[[], None]:
    """STEPS steps of one model, as the engine trains it (``training.lm``)."""
    model = initial_model(jobs[0], tokens).train()
    opt = optimizer(list(model.parameters()), s.optim)
    draw, _ = _windows(jobs[:1], tokens, s)

    def run() -> None:
        for _ in range(STEPS):
            x, y = draw()
            loss = model.loss(x[0], y[0])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    return run


def module_loop(jobs: Sequence[Job], tokens: Tensor, s: TrainSettings) -> Callable[[], None]:
    """STEPS steps of every model, a Python loop over plain nn.Modules within each step."""
    models = [initial_model(job, tokens).train() for job in jobs]
    opts = [optimizer(list(model.parameters()), s.optim) for model in models]
    draw, row = _windows(jobs, tokens, s)

    def run() -> None:
        for _ in range(STEPS):
            x, y = draw()
            for model, opt, k in zip(models, opts, row):
                loss = model.loss(x[k], y[k])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

    return run


def vmap_recipe(jobs: Sequence[Job], tokens: Tensor, s: TrainSettings) -> Callable[[], None]:
    """STEPS steps of every model through torch.func: one vmapped forward, the losses summed,
    autograd on the stacked parameters, one Adam (elementwise: each model's slice as alone)."""
    models = [initial_model(job, tokens) for job in jobs]
    params, _ = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    opt = torch.optim.Adam(params.values(), lr=s.optim.lr)
    draw, rows = _windows(jobs, tokens, s)
    row = torch.tensor(rows)

    def loss(p: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        logits = functional_call(base, p, (x,))
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))

    losses = vmap(loss)

    def run() -> None:
        for _ in range(STEPS):
            x, y = draw()
            with warnings.catch_warnings():  # vmap runs the CPU's attention kernel model by model, and says so
                warnings.filterwarnings("ignore", "There is a performance drop", UserWarning)
                total = losses(params, x[row], y[row]).sum()
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()

    return run


def gemm_floor(s: TrainSettings, vocab: int) -> Callable[[], None]:
    """STEPS steps' matrix products of one model, alone: per step, each linear layer's forward
    product and its two gradients (input and weight; the embeddings are gathers), and per
    block and head the attention's two products (scores and mixing) forward and their four
    backward, at the step's shapes."""
    net, b = s.network, s.optim.batch_size
    tokens, width, heads = b * net.context, net.hidden[0], net.heads
    shapes = [(width, width)] * 4 + [(width, net.mlp_ratio * width), (net.mlp_ratio * width, width)]
    layers = [(i, o) for _ in net.hidden for i, o in shapes] + [(width, vocab)]

    def rand(*shape: int) -> Tensor:
        return torch.rand(*shape)

    linear = [(rand(tokens, i), rand(i, o), rand(tokens, o), rand(tokens, i), rand(i, o)) for i, o in layers]
    t, d = net.context, width // heads
    q, k, scores = rand(b * heads, t, d), rand(b * heads, d, t), rand(b * heads, t, t)
    out = rand(b * heads, t, d)

    def run() -> None:
        for _ in range(STEPS):
            for x, w, y, dx, dw in linear:
                torch.mm(x, w, out=y)
                torch.mm(y, w.t(), out=dx)
                torch.mm(x.t(), y, out=dw)
            for _ in net.hidden:
                for _ in range(3):  # forward, and the two gradients: of each of the attention's two products
                    torch.bmm(q, k, out=scores)
                    torch.bmm(scores, q, out=out)

    return run


def run(seeds: int, repeats: int, data_dir: Any, activity: Activity, s: TrainSettings | None = None) -> dict[str, Any]:
    """Tokens per second per model of each way, with the spread over ``repeats`` interleaved
    repeats, on Shakespeare's training text with the lab's default gpt (or ``s``'s text and gpt)."""
    s = s or settings()
    activity.stage(f"Loading {data.get(s.data.dataset).title}")
    tokens = data.load(data_dir, s.data, activity.stage).x_train
    population = [Job(scheme, seed, s) for seed in range(seeds) for scheme in SCHEMES]
    vocab = data.get(s.data.dataset).input_size
    cases = {  # name: (model-steps per call, work)
        "floor": (STEPS, gemm_floor(s, vocab)),
        "sequential": (STEPS, sequential(population, tokens, s)),
        "vmap": (STEPS * len(population), vmap_recipe(population, tokens, s)),
        "module_loop": (STEPS * len(population), module_loop(population, tokens, s)),
    }
    activity.stage("Benchmark", total=len(cases) * (1 + repeats))
    samples = interleaved(cases, repeats, torch.device("cpu"), activity)
    per_step = {name: statistics.median(v) for name, v in samples.items()}
    tokens_per_step = s.optim.batch_size * s.network.context
    return {
        "network": "gpt", "settings": {"hidden": list(s.network.hidden), "context": s.network.context,
                                       "heads": s.network.heads, "batch_size": s.optim.batch_size},
        "seconds_per_model_step": per_step, "spread": spread(samples), "samples": samples,
        "models": len(population), "tokens_per_step": tokens_per_step,
        "tokens_per_second_per_model": {name: tokens_per_step / t for name, t in per_step.items()},
        "ratios": {f"{name}_over_floor": per_step[name] / per_step["floor"] for name in per_step if name != "floor"}
        | {"vmap_over_sequential": per_step["vmap"] / per_step["sequential"]},
    }
