"""The reference engine: one plain nn.Module and torch.optim.Adam per job, trained
one after another, the way a person would write it. It trains any registered network
(the batched engine, MLPs only), on images or, for next-token prediction, on a text's
windows (``training.lm``)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from initbench import data, tasks
from initbench.data import Splits, get as dataset_named
from initbench.jobs import (
    Job,
    JobResult,
    Keep,
    Progress,
    StepTime,
    Tick,
    batches_per_epoch,
    correct,
    result,
    state_dict,
)
from initbench.models.dropout import EVAL_CHUNK, DropoutMasks
from initbench.settings import OptimSettings, TrainSettings
from initbench.training import diagnostics, lm, parametrization
from initbench.training.streams import batch_orders, dropout_masks, evaluation_masks, initial_model


@torch.no_grad()
def accuracy(model: nn.Module, x: Tensor, y: Tensor, masks: DropoutMasks | None = None) -> float:
    """The fraction classified right; with ``masks`` (one model's), dropout stays on."""
    model.eval()
    hits = 0
    for i in range(0, len(y), EVAL_CHUNK):
        x_chunk = x[i:i + EVAL_CHUNK]
        logits = model(x_chunk) if masks is None else model(x_chunk, [m[0] for m in masks.at(0)])
        hits += int(correct(logits, y[i:i + EVAL_CHUNK]))
    return hits / len(y)


def chunks(jobs: Sequence[Job], size: Callable[[TrainSettings], int]) -> list[list[Job]]:
    """One job a chunk: models train one after another, whatever fits."""
    return [[job] for job in jobs]


def train(chunks: Sequence[Sequence[Job]], data: Splits, device: torch.device, progress: Progress = lambda tick: None,
          keep: Keep = Keep()) -> Iterator[list[JobResult]]:
    """Each job's result, alone in a chunk of one, as it is trained."""
    jobs = [job for chunk in chunks for job in chunk]
    for i, job in enumerate(jobs):
        yield [_train_one(job, data, device, progress, f"{job.scheme}, seed {job.seed} ({i + 1} of {len(jobs)})",
                          keep)]


def optimizer(params: list[Tensor] | list[dict[str, Any]], s: OptimSettings) -> torch.optim.Optimizer:
    """Adam or SGD over ``params``, or over param groups (``param_groups``), each at its own lr."""
    if s.optimizer == "sgd":
        return torch.optim.SGD(params, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)
    return torch.optim.Adam(params, lr=s.lr, betas=s.betas, weight_decay=s.weight_decay)


def param_groups(model: nn.Module, layers: range, lr: float, s: TrainSettings,
                 others: bool = False) -> list[dict[str, Any]]:
    """The weights and biases of ``model``'s ``layers`` (with ``others``, and every parameter
    outside its weighted layers: a gpt's norms) as param groups, one per distinct learning rate:
    ``lr`` times each tensor's factor (``parametrization.scales``, ``others_lr``; under SP one
    group, every parameter at ``lr``, in the layers' order)."""
    scales = parametrization.scales(s)
    params = [(p, scales[i].weight_lr if p is model.layers[i].weight else scales[i].bias_lr)
              for i in layers for p in model.layers[i].parameters()]
    if others:
        weighted = {id(p) for layer in model.layers for p in layer.parameters()}
        params += [(p, parametrization.others_lr(s)) for p in model.parameters() if id(p) not in weighted]
    return [{"params": [params[j][0] for j in members], "lr": rate}
            for rate, members in parametrization.by_rate([lr * scale for _, scale in params]).items()]


def score(jobs: Sequence[Job], models: Sequence[nn.Module], x: Tensor, y: Tensor, device: torch.device) -> list[float]:
    """Each model's validation metric on (x, y), computed exactly as training computed it:
    its accuracy, or on a text its loss."""
    return [lm.score(model.to(device), x) if reads_text(job.settings) else accuracy(model.to(device), x, y)
            for job, model in zip(jobs, models)]


def reads_text(s: TrainSettings) -> bool:
    """Whether these settings' task is next-token prediction on a text (a gpt's)."""
    return data.task(s.data.dataset) is tasks.NEXT_TOKEN


def _train_one(job: Job, data: Splits, device: torch.device, progress: Progress, label: str,
               keep: Keep) -> JobResult:
    o = job.settings.optim
    progress(Tick("building", label))
    model = initial_model(job, data.x_train)
    initial = state_dict(model) if keep.initial else None
    model = model.to(device)
    if reads_text(job.settings):
        opt = optimizer(param_groups(model, range(len(model.layers)), o.lr, job.settings, others=True), o)
        return lm.train_job(job, model, opt, data, device, progress, label, keep, initial)
    # Frozen layers take no gradient; when they are unfrozen they join the optimizer as
    # param groups of their own, with fresh moments and their own learning rate (under μP,
    # times each tensor's factor, as the layers trained from the start).
    frozen = [p for layer in model.layers[:o.freeze] for p in layer.parameters()]
    for p in frozen:
        p.requires_grad_(False)
    opt = optimizer(param_groups(model, range(o.freeze, len(model.layers)), o.lr, job.settings), o)
    orders = batch_orders(job.seed, len(data.y_train))
    n_batches = batches_per_epoch(len(data.y_train), o.batch_size)
    dropout = dropout_masks([job], device, o.batch_size, n_batches)
    eval_masks = evaluation_masks([job], device)
    losses = torch.full((o.epochs, n_batches), math.nan, device=device)
    val_acc: list[float] = []
    diverged_at = None
    stats_batch = diagnostics.stats_batch(data.x_val, data.y_val) if keep.layer_stats else None
    stats = diagnostics.epoch_rows(model, stats_batch, 0)
    for epoch in range(o.epochs):
        if frozen and o.frozen(epoch) == 0:
            for p in frozen:
                p.requires_grad_(True)
            for group in param_groups(model, range(o.freeze), o.lr_unfrozen, job.settings):
                opt.add_param_group(group)
            frozen = []
        if diverged_at is None:
            model.train()
            order = next(orders).to(device)
            for b in range(n_batches):
                idx = order[b * o.batch_size:(b + 1) * o.batch_size]
                masks = [m[0] for m in dropout.at(b)] if dropout else None
                loss = F.cross_entropy(model(data.x_train[idx], masks), data.y_train[idx])
                losses[epoch, b] = loss.detach()
                if not torch.isfinite(loss):
                    # Divergence is a result: keep the model as it stands and stop training it.
                    diverged_at = epoch * n_batches + b + 1
                    progress(Tick("training", label, epoch + 1, o.epochs, b + 1, n_batches,
                                  (o.epochs - epoch) * n_batches - b, loss.detach()))
                    break
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                progress(Tick("training", label, epoch + 1, o.epochs, b + 1, n_batches, 1, loss.detach()))
        progress(Tick("evaluating", label, epoch + 1, o.epochs))
        val_acc.append(accuracy(model, data.x_val, data.y_val, eval_masks))
        stats += diagnostics.epoch_rows(model, stats_batch, epoch + 1)
    progress(Tick("testing", label, o.epochs, o.epochs))
    return result(job, losses, val_acc, accuracy(model, data.x_test, data.y_test, eval_masks), diverged_at,
                  state_dict(model) if keep.weights else None, initial, stats if keep.layer_stats else None)


def step_seconds(s: TrainSettings, device: torch.device) -> StepTime:
    """Seconds of one training step of one model with these settings, measured here on random
    images (``batched.repeated``: several, after a warm-up): what a sweep plans this engine by."""
    from initbench.training.engines.batched import repeated

    gen = torch.Generator().manual_seed(0)
    classes = len(data.class_numbers(s.data))
    if reads_text(s):  # random characters, a batch of windows
        x = torch.randint(classes, (s.optim.batch_size, s.network.context + 1), generator=gen).to(device)
        model = initial_model(Job("default", 0, s), x).to(device).train()

        def loss() -> Tensor:
            return model.loss(x[:, :-1], x[:, 1:])
    else:
        x = torch.rand(s.optim.batch_size, dataset_named(s.data.dataset).input_size, generator=gen).to(device)
        y = torch.randint(classes, (s.optim.batch_size,), generator=gen).to(device)
        model = initial_model(Job("default", 0, s), x).to(device).train()

        def loss() -> Tensor:
            return F.cross_entropy(model(x), y)

    opt = optimizer(list(model.parameters()), s.optim)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss().backward()
        opt.step()

    return StepTime.of(repeated(step, device))
