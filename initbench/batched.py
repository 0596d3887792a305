"""The batched engine: one step advances every model of a group at once.

The parameters of M models (same settings, any schemes and seeds) are stacked
along a leading model axis: weights [M, out, in] (nn.Linear's layout, which is
also the faster one for these products), biases [M, 1, out]. A step gathers each
seed's batch once (models of one seed share it: with a single seed it is not even
copied per model), runs the layers as batched matrix products, and backpropagates
the sum of the per-model mean losses, so every model receives exactly its own
gradient. Adam is element-wise, so one Adam over the stacked tensors would equal
one Adam per model but for rounding: the fused kernel takes vector or scalar
paths by an element's position in the tensor. So the optimizer is given each
model's slices (views into the stacked parameters, gradients and moments) as
tensors of their own, and every model's update is computed exactly as if it were
alone. Initial weights, batch orders and dropout masks come from each model's own
generators (see jobs.py), so a model's numbers do not depend on the others in its
group.

On the GPU nothing in the loop waits for the device: losses go into a
preallocated device tensor and come back once per epoch, and divergence is
handled with masks rather than branches.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from itertools import pairwise
from pathlib import Path

import torch
from torch import Tensor

from initbench.data import Splits
from initbench.jobs import (EpochHook, Job, JobResult, TrainSettings, batch_orders, batches_per_epoch, correct,
                            dropout_generator, evaluation_masks, initial_model, result)
from initbench.model import EVAL_CHUNK, MASK_BLOCK, MLP, N_CLASSES, N_INPUTS, DropoutMasks

SELU = {"alpha": 1.6732632423543772, "scale": 1.0507009873554805, "input_scale": 1.0}
aten = torch.ops.aten
# Each activation as (forward into `out`, gradient w.r.t. its input from the gradient
# w.r.t. its output, in place), from z = its input and y = its output.
ACTIVATION_OPS = {
    "relu": (lambda z, out: torch.clamp_min(z, 0.0, out=out),
             lambda g, z, y: aten.threshold_backward.grad_input(g, z, 0, grad_input=g)),
    "tanh": (lambda z, out: torch.tanh(z, out=out),
             lambda g, z, y: aten.tanh_backward.grad_input(g, y, grad_input=g)),
    "sigmoid": (lambda z, out: torch.sigmoid(z, out=out),
                lambda g, z, y: aten.sigmoid_backward.grad_input(g, y, grad_input=g)),
    "gelu": (lambda z, out: aten.gelu.out(z, out=out),
             lambda g, z, y: aten.gelu_backward.grad_input(g, z, grad_input=g)),
    "selu": (lambda z, out: aten.elu.out(z, **SELU, out=out),
             lambda g, z, y: aten.elu_backward.grad_input(g, **SELU, is_result=False, self_or_result=z,
                                                          grad_input=g)),
}
ALIGN = 64  # floats (256 bytes): every model's slice of a stacked tensor starts this aligned
MEMORY_SHARE = 0.5  # of the free memory that a group may take by default


def stacked(m: int, shape: tuple[int, ...], device: torch.device) -> Tensor:
    """An uninitialized [m, *shape] tensor whose model slices each start ALIGN-aligned,
    as a tensor of their own would (the gap between slices is never read)."""
    size = math.prod(shape)
    stride = -(-size // ALIGN) * ALIGN
    inner = torch.empty(shape, device="meta").stride()
    return torch.empty(m * stride + ALIGN, device=device).as_strided((m, *shape), (stride, *inner))


class Population:
    """M models' parameters stacked along a leading model axis, trained by hand-written
    forward and backward passes into buffers made once and reused every step (no
    autograd), and Adam (torch.optim.Adam's defaults) over each model's slices.

    How the step is called decides whether it is exact. On the CPU, MKL and ATen pick
    kernels by a tensor's extent (a batched product of 6 matrices takes other kernels
    than one of 1; an element-wise op rounds the tail of its range, or of each thread's
    share, in scalar code), so a stacked call rounds a model's numbers differently with
    other companions. So on the CPU every operation of the step is called on one model's
    slice at a time, on memory aligned as a lone model's would be: a model's numbers are
    then those it gets alone, on any CPU and kernel path. On a GPU one call covers all
    models (per-model calls would cost a kernel launch each), which agrees to rounding."""

    def __init__(self, jobs: Sequence[Job], x_train: Tensor, device: torch.device) -> None:
        models = [initial_model(job, x_train) for job in jobs]
        self.activation_name = jobs[0].settings.activation
        self.activation, self.activation_grad = ACTIVATION_OPS[self.activation_name]
        layers = [list(group) for group in zip(*(m.layers for m in models))]
        self.m, self.device = len(jobs), device
        # One model's slice at a time on the CPU (exact), all models at once elsewhere.
        self.parts: list[int | slice] = list(range(self.m)) if device.type == "cpu" else [slice(None)]
        self.seeds = sorted({job.seed for job in jobs})  # the order of train_step's rows of ``idx``
        self.seed_row = torch.tensor([self.seeds.index(job.seed) for job in jobs], device=device)
        self.weights = [self._stack([l.weight.detach() for l in ls]) for ls in layers]
        self.biases = [self._stack([l.bias.detach()[None] for l in ls]) for ls in layers]
        self.grads = [self._zeros(p) for p in self.parameters()]
        self.moments = [(self._zeros(p), self._zeros(p)) for p in self.parameters()]
        # Adam's fused kernel (the one torch.optim.Adam(fused=True) runs) is given every
        # model's slice of each tensor as a tensor of its own: it takes vector or scalar
        # paths by an element's position, so only then is each update computed exactly as
        # if the model were alone. Calling it directly also spares the optimizer's per-step
        # Python work and its import of torch._dynamo (a second of start-up).
        tensors = (self.parameters(), self.grads, *zip(*self.moments))
        self._adam_lists = [[t[i] for t in group for i in range(self.m)] for group in tensors]
        self.lr = jobs[0].settings.lr
        self.step = torch.zeros((), device=device)
        self._buffers: dict[tuple[str, tuple[int, ...]], Tensor] = {}

    def _stack(self, tensors: list[Tensor]) -> Tensor:
        out = stacked(len(tensors), tuple(tensors[0].shape), self.device)
        for slot, t in zip(out, tensors):
            slot.copy_(t)
        return out

    def _zeros(self, like: Tensor) -> Tensor:
        return stacked(self.m, tuple(like.shape[1:]), self.device).zero_()

    def parameters(self) -> list[Tensor]:
        return [*self.weights, *self.biases]

    def model(self, i: int) -> MLP:
        """Model ``i`` as a plain MLP on the CPU (a copy of its parameters as they stand)."""
        model = MLP(tuple(w.shape[1] for w in self.weights[:-1]), self.activation_name)
        with torch.no_grad():
            for layer, w, b in zip(model.layers, self.weights, self.biases):
                layer.weight.copy_(w[i])
                layer.bias.copy_(b[i, 0])
        return model

    def _buffer(self, name: str, *shape: int) -> Tensor:
        """A preallocated [M, *shape] tensor, made on first use and reused by every later step."""
        if (name, shape) not in self._buffers:
            self._buffers[name, shape] = stacked(self.m, shape, self.device)
        return self._buffers[name, shape]

    def forward(self, x: Tensor, masks: list[Tensor] | None) -> list[tuple[Tensor, Tensor, Tensor]]:
        """x: [M, B, 784] -> for every layer (z, y, h): its linear output, its activation
        and that after dropout (the next layer's input); for the last, all three are the logits."""
        rows, last = x.shape[1], len(self.weights) - 1
        outputs = [(self._buffer(f"z{i}", rows, w.shape[1]), self._buffer(f"y{i}", rows, w.shape[1]),
                    self._buffer(f"h{i}", rows, w.shape[1])) for i, w in enumerate(self.weights)]
        for p in self.parts:
            h = x[p]
            for i, (w, b) in enumerate(zip(self.weights, self.biases)):
                z, y, h_out = (t[p] for t in outputs[i])
                _affine(z, b[p], h, w[p].transpose(-2, -1))
                if i < last:
                    self.activation(z, y)
                    h = torch.mul(y, masks[i][p][..., :rows, :], out=h_out) if masks is not None else y
        # Without dropout a layer's output is its activation; the last layer's, its logits.
        return [(z, z if i == last else y, z if i == last else h if masks is not None else y)
                for i, (z, y, h) in enumerate(outputs)]

    def train_step(self, x_train: Tensor, y_train: Tensor, idx: Tensor, masks: list[Tensor] | None,
                   alive: Tensor) -> Tensor:
        """One step of every model, each on its seed's rows ``idx`` ([seeds, B]); returns
        the per-model mean cross-entropy [M]. A model whose loss is not finite is marked
        dead in ``alive`` (in place), and dead models are left exactly as they are."""
        n_seeds, rows = idx.shape
        x = self._buffer("x", rows, x_train.shape[1])[:n_seeds]
        for s in range(n_seeds):
            torch.index_select(x_train, 0, idx[s], out=x[s])
        # Every model reads its seed's batch: a stride-0 view when there is one seed.
        if n_seeds == 1:
            x = x[:1].expand(self.m, -1, -1)
        else:
            x = torch.index_select(x, 0, self.seed_row, out=self._buffer("x_models", rows, x_train.shape[1]))
        y = y_train[idx][self.seed_row].unsqueeze(-1)
        layers = self.forward(x, masks)
        loss = self._buffer("loss")
        n = len(self.weights)
        for p in self.parts:
            logp = torch.log_softmax(layers[-1][0][p], dim=-1)
            torch.mean(logp.gather(-1, y[p]), (-2, -1), out=loss[p]).neg_()
            # d(mean cross-entropy)/d(logits) = (softmax - onehot(y)) / B
            delta = logp.exp_().scatter_add_(-1, y[p], torch.full(y[p].shape, -1.0, device=y.device)).div_(rows)
            for i in reversed(range(n)):
                h = x[p] if i == 0 else layers[i - 1][2][p]
                torch.matmul(delta.transpose(-2, -1), h, out=self.grads[i][p])
                torch.sum(delta, -2, keepdim=True, out=self.grads[n + i][p])
                if i:  # back through layer i's input: the dropout and activation of layer i - 1
                    delta = torch.matmul(delta, self.weights[i][p], out=self._buffer(f"delta{i}", rows, h.shape[-1])[p])
                    if masks is not None:
                        delta.mul_(masks[i - 1][p][..., :rows, :])
                    z, y_act, _ = layers[i - 1]
                    self.activation_grad(delta, z[p], y_act[p])
        loss = loss.clone()
        alive &= torch.isfinite(loss)
        # On the CPU a host check is free; on a GPU, mask every step rather than wait for the device.
        if alive.device.type != "cpu" or not bool(alive.all()):
            self._freeze(~alive)
        self.step += 1
        params, grads, exp_avgs, exp_avg_sqs = self._adam_lists
        torch._fused_adam_(params, grads, exp_avgs, exp_avg_sqs, [], [self.step] * len(params), lr=self.lr,
                           beta1=0.9, beta2=0.999, weight_decay=0.0, eps=1e-8, amsgrad=False, maximize=False)
        return loss

    @torch.no_grad()
    def _freeze(self, dead: Tensor) -> None:
        """Zero dead models' gradients and moments, so that their update is 0 / (0 + eps) = 0."""
        for g, moments in zip(self.grads, self.moments):
            mask = dead.view(-1, *(1,) * (g.dim() - 1))
            for t in (g, *moments):
                t.masked_fill_(mask, 0.0)

    @torch.no_grad()
    def accuracy(self, x: Tensor, y: Tensor, masks: DropoutMasks | None = None) -> Tensor:
        """Each model's fraction classified right, [M]; with ``masks``, dropout stays on."""
        hits = sum(correct(self.forward(x[i:i + EVAL_CHUNK].expand(self.m, -1, -1), masks.at(0) if masks else None)[-1][0],
                           y[i:i + EVAL_CHUNK])
                   for i in range(0, len(y), EVAL_CHUNK))
        return hits.double() / len(y)


def _affine(out: Tensor, bias: Tensor, x: Tensor, weight_t: Tensor) -> None:
    """out = bias + x @ weight_t, for one model's 2-D slices or all models' 3-D stacks."""
    (torch.addmm if out.dim() == 2 else torch.baddbmm)(bias, x, weight_t, out=out)


def bytes_per_model(s: TrainSettings) -> int:
    """A generous estimate of one model's memory in a group: parameters, gradients and
    Adam's two moments, activations and their gradients, a block of dropout masks,
    the evaluation activations (and masks, under --lesson-eval)."""
    sizes = (N_INPUTS, *s.hidden, N_CLASSES)
    params = sum(a * b + b for a, b in pairwise(sizes))
    activations = 4 * s.batch_size * sum(sizes)
    masks = MASK_BLOCK * s.batch_size * sum(s.hidden)
    evaluation = 3 * EVAL_CHUNK * sum(sizes[1:]) + (EVAL_CHUNK * sum(s.hidden) if s.lesson_eval else 0)
    return 4 * (4 * params + activations + masks + evaluation)


def free_memory(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30  # unknown: assume 4 GiB


def default_max_models(s: TrainSettings, device: torch.device) -> int:
    return max(1, int(MEMORY_SHARE * free_memory(device)) // bytes_per_model(s))


def train(jobs: Sequence[Job], data: Splits, device: torch.device,
          advance: Callable[[int], None] = lambda n: None, max_models: int | None = None,
          on_epoch: EpochHook | None = None) -> list[JobResult]:
    """Train ``jobs`` in groups of equal settings, each split into chunks of at most
    ``max_models`` (default: what fits in half the free memory)."""
    done: dict[Job, JobResult] = {}
    by_settings: dict[TrainSettings, list[Job]] = {}
    for job in jobs:
        by_settings.setdefault(job.settings, []).append(job)
    for settings, group in by_settings.items():
        size = max_models or default_max_models(settings, device)
        for start in range(0, len(group), size):
            chunk = group[start:start + size]
            done.update(zip(chunk, _train_chunk(chunk, data, device, advance, on_epoch)))
    return [done[job] for job in jobs]


def _train_chunk(jobs: Sequence[Job], data: Splits, device: torch.device, advance: Callable[[int], None],
                 on_epoch: EpochHook | None) -> list[JobResult]:
    s, m = jobs[0].settings, len(jobs)
    population = Population(jobs, data.x_train, device)
    orders = [batch_orders(seed, len(data.y_train)) for seed in population.seeds]
    n_batches = batches_per_epoch(len(data.y_train), s.batch_size)
    dropout = DropoutMasks(s.dropout, s.hidden, s.batch_size, n_batches,
                           [dropout_generator(job, device) for job in jobs], device) if s.dropout else None
    eval_masks = evaluation_masks(jobs, device)
    losses = torch.full((m, s.epochs, n_batches), math.nan, device=device)
    alive = torch.ones(m, dtype=torch.bool, device=device)
    val_acc = []

    def report(epoch: int) -> None:
        if on_epoch is not None:
            for i, job in enumerate(jobs):
                on_epoch(job, epoch, population.model(i))

    report(0)
    for epoch in range(s.epochs):
        order = torch.stack([next(o) for o in orders]).to(device)
        for b in range(n_batches):
            idx = order[:, b * s.batch_size:(b + 1) * s.batch_size]
            loss = population.train_step(data.x_train, data.y_train, idx, dropout.at(b) if dropout else None, alive)
            losses[:, epoch, b] = loss
            advance(m)
        val_acc.append(population.accuracy(data.x_val, data.y_val, eval_masks).tolist())
        report(epoch + 1)
    test_acc = population.accuracy(data.x_test, data.y_test, eval_masks).tolist()
    # A model diverged at its first non-finite loss (it was frozen from that batch on).
    flat = losses.view(m, -1)
    first_bad = (~torch.isfinite(flat)).int().argmax(1).tolist()
    return [result(job, flat[i].view(s.epochs, -1), [acc[i] for acc in val_acc], test_acc[i],
                   None if bool(alive[i]) else first_bad[i] + 1)
            for i, job in enumerate(jobs)]
