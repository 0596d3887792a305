"""The batched engine: one step advances every model of a group at once.

The parameters of M models (any schemes and seeds; the same settings but for each
model's learning rate and optimizer's numbers, ``shared``) are stacked
along a leading model axis: weights [M, out, in] (nn.Linear's layout), biases
[M, 1, out], each model's slice aligned as a tensor of its own would be. A step
gathers each seed's batch once (models of one seed share it: with a single seed
it is not even copied per model), runs the layers forward and backward by hand
into buffers made once, and gives Adam each model's slices. Nothing in the step
mixes models, and on the CPU each rounding-sensitive operation is called per
model (see Population), so every model's numbers are exactly those it gets
alone, whichever models share its group. Initial weights, batch orders and
dropout masks come from each seed's generators (see streams.py).

What batching buys on the CPU is one step for all models: the batch gathered
once, the dropout masks, the element-wise work that rounds alike in any kernel
and Adam done in one call each, no autograd, no allocation. On the GPU every
operation is one call for all models, and nothing in the loop waits for the
device: losses go into a preallocated device tensor and come back once per
epoch, and divergence is handled with masks rather than branches.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor
from torch.profiler import record_function

from initbench import data
from initbench.data import Splits
from initbench.errors import InitbenchError
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
from initbench.memory import MEMORY_SHARE, available
from initbench.models import build, get as network_named
from initbench.models.dropout import DRAWING_SCOPE, EVAL_CHUNK, MASK_BLOCK, DropoutMasks
from initbench.models.mlp import MLP
from initbench.settings import OptimSettings, TrainSettings
from initbench.training import diagnostics, parametrization
from initbench.training.engines import shared
from initbench.training.streams import batch_orders, dropout_masks, evaluation_masks, initial_model

SELU = {"alpha": 1.6732632423543772, "scale": 1.0507009873554805, "input_scale": 1.0}
aten = torch.ops.aten


class ActivationOps(NamedTuple):
    """An activation's forward into ``out`` (from z, its input) and its gradient w.r.t. z,
    in place in ``g`` (from g, z and y, its output); ``rounds_alike``: both are
    comparisons and selections, exact in any kernel, so one call may cover all models."""

    forward: Callable[[Tensor, Tensor], object]
    backward: Callable[[Tensor, Tensor, Tensor], object]
    rounds_alike: bool = False


ACTIVATION_OPS = {
    "relu": ActivationOps(lambda z, out: torch.clamp_min(z, 0.0, out=out),
                          lambda g, z, y: aten.threshold_backward.grad_input(g, z, 0, grad_input=g), True),
    "tanh": ActivationOps(lambda z, out: torch.tanh(z, out=out),
                          lambda g, z, y: aten.tanh_backward.grad_input(g, y, grad_input=g)),
    "sigmoid": ActivationOps(lambda z, out: torch.sigmoid(z, out=out),
                             lambda g, z, y: aten.sigmoid_backward.grad_input(g, y, grad_input=g)),
    "gelu": ActivationOps(lambda z, out: aten.gelu.out(z, out=out),
                          lambda g, z, y: aten.gelu_backward.grad_input(g, z, grad_input=g)),
    "selu": ActivationOps(lambda z, out: aten.elu.out(z, **SELU, out=out),
                          lambda g, z, y: aten.elu_backward.grad_input(g, **SELU, is_result=False, self_or_result=z,
                                                                       grad_input=g)),
    # The identity: a copy forward, its gradient left as it is.
    "linear": ActivationOps(lambda z, out: out.copy_(z), lambda g, z, y: None, True),
}
PER_MODEL_DEVICES = ("cpu",)  # where rounding-sensitive ops are called per model (exact)
ALIGN = 64  # floats (256 bytes): every model's slice of a stacked tensor starts this aligned
CALIBRATION_MODELS = 4  # models whose steps step_seconds times
# Profiler scopes of the work outside the training step, where ``initbench bench
# --breakdown`` finds its time (each entered once per run, epoch or block of masks).
SCOPES = {"building": "initbench.building", "evaluation": "initbench.evaluation", "dropout masks": DRAWING_SCOPE}


def stacked(m: int, shape: tuple[int, ...], device: torch.device) -> Tensor:
    """An uninitialized [m, *shape] tensor whose model slices each start ALIGN-aligned,
    as a tensor of their own would (the gap between slices is never read)."""
    size = math.prod(shape)
    stride = -(-size // ALIGN) * ALIGN
    inner = torch.empty(shape, device="meta").stride()
    return torch.empty(m * stride, device=device).as_strided((m, *shape), (stride, *inner))


class Population:
    """M models' parameters stacked along a leading model axis, trained by hand-written
    forward and backward passes into buffers made once and reused every step (no
    autograd), and Adam or SGD over each model's slices, each model with its own learning
    rate, betas, weight decay or momentum.

    How an operation is called decides whether it is exact. On the CPU, MKL and ATen
    pick kernels by a tensor's extent: a batched product of 6 matrices takes other
    kernels than one of 1, and an element-wise op computes the tail of its range (or
    of each thread's share) in scalar code, which rounds transcendental functions
    differently. So on the CPU the products, the reductions and the activations that
    round are called on one model's slice at a time (``_each``), on memory aligned as a
    lone model's would be; only operations that round the same in any kernel (one IEEE
    multiply, a comparison) are called once for all models. A model's numbers are then
    those it gets alone, on any CPU and kernel path. On a GPU every operation is one
    call for all models (a call per model would cost a kernel launch each): there the
    numbers agree to rounding."""

    def __init__(self, jobs: Sequence[Job], models: Sequence[MLP], device: torch.device) -> None:
        s = jobs[0].settings
        self.settings = s
        self.ops = ACTIVATION_OPS[s.network.activation]
        self.wiring = models[0].wiring  # how each layer's output is passed on (the network's, as it runs it)
        layers = [list(group) for group in zip(*(m.layers for m in models))]
        self.m, self.device = len(jobs), device
        self.per_model = device.type in PER_MODEL_DEVICES
        self.seeds = sorted({job.seed for job in jobs})  # the order of train_step's rows of ``idx``
        self.seed_rows = [self.seeds.index(job.seed) for job in jobs]
        self.seed_row = torch.tensor(self.seed_rows, device=device)
        self.weights = [self._stack([layer.weight.detach() for layer in ls]) for ls in layers]
        self.biases = [self._stack([layer.bias.detach()[None] for layer in ls]) for ls in layers]
        self.grads = [self._zeros(p) for p in self.parameters()]
        # The optimizer's state per parameter: Adam's two moments, or SGD's momentum buffer
        # (zeros: its first update, momentum * 0 + grad, is the gradient, as in torch.optim.SGD).
        self.moments = [tuple(self._zeros(p) for _ in range(2 if s.optim.optimizer == "adam" else 1))
                        for p in self.parameters()]
        self.optims = [job.settings.optim for job in jobs]  # each model's learning rate and optimizer's numbers
        self.frozen = s.optim.freeze  # layers below this one are not trained: no gradients, no update
        # Each parameter's factor on the learning rate, in parameters()' order (all 1 under SP).
        scales = parametrization.scales(s)
        self.lr_scales = [scale.weight_lr for scale in scales] + [scale.bias_lr for scale in scales]
        # The optimizer's groups: one call each, over the models that share a learning rate and the
        # optimizer's other numbers, and the parameters of theirs that share a factor on it. Layers
        # unfrozen later get groups of their own, with fresh state and step count, as new param groups
        # would. A model that diverged leaves its groups (on the CPU, where seeing it costs nothing).
        self._groups: list[_Group] = []
        self.dead: set[int] = set()
        self.decays = any(o.weight_decay for o in self.optims)  # then a dead model's zero gradient would still move it
        self._add_group(range(s.optim.freeze, len(layers)), lambda o: o.lr)
        self._buffers: dict[tuple[str, int, tuple[int, ...]], Tensor] = {}
        self._view_cache: dict[int, tuple[Tensor, Sequence[Tensor]]] = {}
        self.transposed = [w.transpose(1, 2) for w in self.weights]  # what the forward products read

    def _add_group(self, layers: range, lr_of: Callable[[OptimSettings], float]) -> None:
        """Groups for ``layers``' weights and biases, each model at the rate ``lr_of`` its settings."""
        n = len(self.weights)
        chosen = [i for i in range(2 * n) if i % n in layers]  # the layers' weights and biases
        by_numbers: dict[tuple[object, ...], list[int]] = {}
        for k, o in enumerate(self.optims):
            by_numbers.setdefault((lr_of(o), *_numbers(o)), []).append(k)
        for models in by_numbers.values():
            lr = lr_of(self.optims[models[0]])
            for rate, members in parametrization.by_rate([lr * self.lr_scales[i] for i in chosen]).items():
                group = _Group([chosen[j] for j in members], models, rate, self.optims[models[0]],
                               torch.zeros((), device=self.device))
                self._fill(group)
                self._groups.append(group)

    def _fill(self, group: _Group) -> None:
        """The tensors the optimizer's kernel is given for ``group``: its living models' pieces."""
        living = [k for k in group.models if k not in self.dead]
        tensors = ([self.parameters()[i] for i in group.params], [self.grads[i] for i in group.params],
                   *zip(*(self.moments[i] for i in group.params)))
        group.lists = [[piece for t in ts for piece in _optimizer_pieces(t, living)] for ts in tensors]

    def start_epoch(self, epoch: int) -> None:
        """Unfreeze the layers the settings train again from ``epoch`` (0-based) on."""
        frozen = self.settings.optim.frozen(epoch)
        if frozen < self.frozen:
            self._add_group(range(frozen, self.frozen), lambda o: o.lr_unfrozen)
            self.frozen = frozen

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
        """Model ``i`` as a plain module of its network on the CPU (a copy of its parameters as they stand)."""
        model = build(self.settings)
        model.load_layers_([(w[i], b[i, 0]) for w, b in zip(self.weights, self.biases)])
        return model

    def _buffer(self, name: str, *shape: int, count: int | None = None) -> Tensor:
        """A preallocated [count (default M), *shape] tensor, made on first use and reused
        by every later step."""
        count = self.m if count is None else count
        if (name, count, shape) not in self._buffers:
            self._buffers[name, count, shape] = stacked(count, shape, self.device)
        return self._buffers[name, count, shape]

    def _each(self, op: Callable[..., object], *tensors: Tensor | list[Tensor], together: bool = False) -> None:
        """``op`` on the stacked ``tensors``: on the CPU once per model, on its slices
        (a list: the models' own tensors), unless ``together`` (an op that rounds the
        same in any kernel)."""
        if together or not self.per_model:
            op(*tensors)
            return
        for slices in zip(*(t if isinstance(t, list) else self._views(t) for t in tensors)):
            op(*slices)

    def _views(self, t: Tensor) -> Sequence[Tensor]:
        """The M model slices of ``t``, a tensor this population keeps (a parameter, a
        gradient, a buffer or a view of one made once), made on first use: a step would
        otherwise spend more time making views than a lone model's small operations take.
        The cache holds ``t``, so no other tensor can take its id."""
        cached = self._view_cache.get(id(t))
        if cached is None or cached[0] is not t:
            cached = self._view_cache[id(t)] = (t, t.unbind(0))
        return cached[1]

    def cross_entropy(self, loss: Tensor, delta: Tensor, logits: Tensor, y: Tensor) -> None:
        """loss = each model's mean cross-entropy of ``logits`` against the labels ``y``
        ([M, B, 1]); delta = its gradient w.r.t. the logits, (softmax - onehot(y)) / B. The
        logarithms, exponentials and the mean round by kernel (per model on the CPU); the
        gather, the sign, the -1 and the division by B are exact operations (together)."""
        self._each(_log_softmax, delta, logits)
        picked = torch.gather(delta, -1, y, out=self._buffer("picked", y.shape[1], 1))
        self._each(_mean, loss, picked)
        loss.neg_()
        self._each(torch.exp_, delta)
        delta.scatter_add_(-1, y, torch.full(y.shape, -1.0, device=y.device)).div_(y.shape[-2])

    def forward(self, x: Tensor | list[Tensor], masks: list[Tensor] | None) -> list[tuple[Tensor, Tensor, Tensor]]:
        """x: [M, B, inputs] (or M tensors [B, inputs]) -> for every layer (z, y, h): its
        linear output, its activation and what it passes on as ``wiring`` says (after
        dropout, plus a residual branch's input: the next layer's input); for the output
        layer, all three are the logits."""
        outputs = []
        inputs = []
        rows = x[0].shape[0]
        for i, (w, b, wiring) in enumerate(zip(self.weights, self.biases, self.wiring)):
            inputs.append(x)
            z = y = self._buffer(f"z{i}", rows, w.shape[1])
            self._each(_matmul, z, x, self.transposed[i])
            x = z.add_(b)  # one IEEE add: rounds the same in any kernel
            if wiring.activated:
                y = x = self._buffer(f"y{i}", rows, w.shape[1])
                self._each(self.ops.forward, z, y, together=self.ops.rounds_alike)
            if masks is not None and wiring.mask is not None:  # one IEEE multiply: rounds the same in any kernel
                x = torch.mul(y, masks[wiring.mask][:, :rows], out=self._buffer(f"h{i}", rows, w.shape[1]))
            if wiring.skip is not None:  # one IEEE add
                x = torch.add(inputs[wiring.skip], x, out=self._buffer(f"s{i}", rows, w.shape[1]))
            outputs.append((z, y, x))
        return outputs

    def train_step(self, x_train: Tensor, y_train: Tensor, idx: Tensor, masks: list[Tensor] | None,
                   alive: Tensor) -> Tensor:
        """One step of every model, each on its seed's rows ``idx`` ([seeds, B]); returns
        the per-model mean cross-entropy [M]. A model whose loss is not finite is marked
        dead in ``alive`` (in place), and dead models are left exactly as they are."""
        n_seeds, rows = idx.shape
        x = self._buffer("x", rows, x_train.shape[1], count=n_seeds)
        for s in range(n_seeds):
            torch.index_select(x_train, 0, idx[s], out=x[s])
        # Every model reads its seed's batch in place where products are called per model;
        # else a stride-0 view when there is one seed, or a copy per model.
        if self.per_model:
            x = [x[s] for s in self.seed_rows]
        elif n_seeds == 1:
            x = x[:1].expand(self.m, -1, -1)
        else:
            x = torch.index_select(x, 0, self.seed_row, out=self._buffer("x_models", rows, x_train.shape[1]))
        y = y_train[idx][self.seed_row].unsqueeze(-1)
        *hidden, (logits, _, _) = self.forward(x, masks)
        loss, delta = self._buffer("loss"), self._buffer("delta", rows, logits.shape[-1])
        self.cross_entropy(loss, delta, logits, y)
        inputs = [x, *(h for _, _, h in hidden)]
        n = len(self.weights)
        skipped: dict[int, Tensor] = {}  # layer -> the gradient its input gets through a residual connection
        for i in reversed(range(self.frozen, n)):  # frozen layers need no gradient, nor the layers' below
            self._each(_weight_and_bias_grad, self.grads[i], self.grads[n + i], delta, inputs[i])
            if i > self.frozen:  # back through layer i's input: what layer i - 1's wiring did to its output
                w = self.weights[i]
                delta_in = self._buffer(f"delta{i}", rows, w.shape[2])
                self._each(_matmul, delta_in, delta, w)
                if i in skipped:  # one IEEE add: the input also reached a residual branch's end
                    delta_in.add_(skipped[i])
                delta = delta_in
                below = self.wiring[i - 1]
                if below.skip is not None:  # neither activated nor masked (Wiring): delta is left as it is
                    skipped[below.skip] = delta
                if masks is not None and below.mask is not None:
                    delta.mul_(masks[below.mask][:, :rows])
                if below.activated:
                    self._each(self.ops.backward, delta, *hidden[i - 1][:2], together=self.ops.rounds_alike)
        loss = loss.clone()
        alive &= torch.isfinite(loss)
        # On the CPU a host check is free: a model that diverged leaves its groups. On a GPU, rather
        # than wait for the device, dead models' gradients and moments are masked every step, which
        # leaves them as they are unless weight decay (added to the gradient) would move them.
        if alive.device.type == "cpu" or self.decays:
            if not bool(alive.all()):
                self._drop(~alive)
        else:
            self._freeze(~alive)
        for group in self._groups:
            self._update(group)
        return loss

    def _update(self, group: _Group) -> None:
        """One optimizer step over a group's pieces. Adam: the fused kernel that
        torch.optim.Adam(fused=True) runs, called directly (it spares the optimizer's
        per-step Python work and its import of torch._dynamo, a second of start-up). SGD:
        torch.optim.SGD's own operations, grad += weight_decay * p, buf = momentum * buf +
        grad, p -= lr * buf."""
        if not group.lists[0]:  # every model of the group diverged
            return
        o = group.optim
        if o.optimizer == "adam":
            params, grads, exp_avgs, exp_avg_sqs = group.lists
            group.step += 1
            torch._fused_adam_(params, grads, exp_avgs, exp_avg_sqs, [], [group.step] * len(params), lr=group.lr,
                               beta1=o.betas[0], beta2=o.betas[1], weight_decay=o.weight_decay, eps=1e-8,
                               amsgrad=False, maximize=False)
        else:
            params, grads, bufs = group.lists
            if o.weight_decay:
                torch._foreach_add_(grads, params, alpha=o.weight_decay)
            torch._foreach_mul_(bufs, o.momentum)
            torch._foreach_add_(bufs, grads)
            torch._foreach_add_(params, bufs, alpha=-group.lr)

    def _drop(self, dead: Tensor) -> None:
        """Take the models newly ``dead`` out of every group: they are left as they are."""
        newly = set(dead.nonzero().flatten().tolist()) - self.dead
        if newly:
            self.dead |= newly
            for group in self._groups:
                self._fill(group)

    @torch.no_grad()
    def _freeze(self, dead: Tensor) -> None:
        """Zero dead models' gradients and optimizer state, so that their update is 0
        (Adam: 0 / (0 + eps); SGD: lr * (momentum * 0 + 0))."""
        for g, moments in zip(self.grads, self.moments):
            mask = dead.view(-1, *(1,) * (g.dim() - 1))
            for t in (g, *moments):
                t.masked_fill_(mask, 0.0)

    @torch.no_grad()
    def accuracy(self, x: Tensor, y: Tensor, masks: DropoutMasks | None = None) -> Tensor:
        """Each model's fraction classified right, [M]; with ``masks``, dropout stays on."""
        hits = 0
        with record_function(SCOPES["evaluation"]):
            for i in range(0, len(y), EVAL_CHUNK):
                chunk = x[i:i + EVAL_CHUNK]
                chunk = [chunk] * self.m if self.per_model else chunk.expand(self.m, -1, -1)
                logits = self.forward(chunk, masks.at(0) if masks else None)[-1][0]
                hits = hits + correct(logits, y[i:i + EVAL_CHUNK])
        return hits.double() / len(y)


@dataclass
class _Group:
    """One optimizer call: the parameters (positions in ``Population.parameters()``) of the
    ``models`` that share a learning rate and the optimizer's other numbers (``optim``'s
    betas, weight decay, momentum), at ``lr`` (times the parameters' common factor), with
    its own step count; ``lists``: what the kernel is given (``Population._fill``)."""

    params: list[int]
    models: list[int]
    lr: float
    optim: OptimSettings
    step: Tensor
    lists: list[list[Tensor]] = field(default_factory=list)


def _numbers(o: OptimSettings) -> tuple[object, ...]:
    """The optimizer's numbers besides the learning rate, as they change its update."""
    return (o.betas, o.weight_decay) if o.optimizer == "adam" else (o.momentum, o.weight_decay)


def _order(o: OptimSettings) -> tuple[float, ...]:
    """Where a model's optimizer numbers sort it in its chunk (the same numbers, neighbours)."""
    return (o.lr, *o.betas, o.weight_decay, o.momentum, o.lr_unfrozen)


def _optimizer_pieces(t: Tensor, models: Sequence[int]) -> list[Tensor]:
    """The tensors the optimizer's kernel is given for ``models``' slices of the stacked
    ``t``: each run of neighbouring models at once where that computes each model's update
    exactly as alone, else each model's slice.

    The fused Adam kernel splits a tensor among threads at multiples of 16 floats (a cache
    line) and runs each share in vectors, leaving a scalar tail that rounds differently. A
    model's slice of a multiple of 16 floats, starting ALIGN-aligned, is then computed in
    vectors alone and in the stack alike (a vector is 16 floats at most, with AVX-512);
    where slices follow one another without a gap, a run of them is one tensor. Other slices
    (the output layer's 10 biases) go one by one. One call instead of one per model spares
    a thread fork and join each."""
    pieces: list[Tensor] = []
    for first, last in _runs(models):
        run = t[first:last + 1]
        if run.is_contiguous() and t[0].numel() % 16 == 0:
            pieces.append(run.view(-1))
        else:
            pieces += run.unbind(0)
    return pieces


def _runs(models: Sequence[int]) -> list[tuple[int, int]]:
    """Increasing model numbers as runs of neighbours, (first, last): [0, 1, 2, 5] -> (0, 2), (5, 5)."""
    runs: list[tuple[int, int]] = []
    for k in models:
        if runs and runs[-1][1] == k - 1:
            runs[-1] = (runs[-1][0], k)
        else:
            runs.append((k, k))
    return runs


# The step's operations, each written once for one model's 2-D slices ([B, units]) or
# for all models' 3-D stacks ([M, B, units]).

def _matmul(out: Tensor, a: Tensor, b: Tensor) -> None:
    torch.matmul(a, b, out=out)


def _log_softmax(out: Tensor, logits: Tensor) -> None:
    torch.log_softmax(logits, dim=-1, out=out)


def _mean(out: Tensor, picked: Tensor) -> None:
    """The mean over a model's batch ([..., B, 1] -> [...])."""
    torch.mean(picked, (-2, -1), out=out)


def _weight_and_bias_grad(weight_grad: Tensor, bias_grad: Tensor, delta: Tensor, x: Tensor) -> None:
    torch.matmul(delta.transpose(-2, -1), x, out=weight_grad)
    torch.sum(delta, -2, keepdim=True, out=bias_grad)


def bytes_per_model(s: TrainSettings) -> int:
    """A generous estimate of one model's memory in a group: its parameters six times
    (stacked, gradients, Adam's two moments; the model as initialized, alive while the
    group is stacked; its weights copied out, initial or final), activations and their
    gradients, a block of dropout masks, the evaluation activations (and masks, under
    --lesson-eval), and what grows with the training's length: every batch's loss (on
    the device, and its copy in the result), an epoch's batch order and each epoch's
    accuracy."""
    net, o = s.network, s.optim
    dataset = data.get(s.data.dataset)
    sizes = (dataset.input_size, *network_named(net.network).widths(net), len(data.class_numbers(s.data)))
    params = 6 * sum(a * b + b for a, b in pairwise(sizes))
    activations = 4 * o.batch_size * sum(sizes)
    masks = MASK_BLOCK * o.batch_size * sum(net.hidden)
    evaluation = 3 * EVAL_CHUNK * sum(sizes[1:]) + (EVAL_CHUNK * sum(net.hidden) if net.eval_dropout else 0)
    n_train = s.data.train_samples or dataset.train_split  # at most: a subset of the classes has fewer images
    record = o.epochs * (2 * 4 * batches_per_epoch(n_train, o.batch_size) + 32) + 8 * n_train
    return 4 * (params + activations + masks + evaluation) + record


def free_memory(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    return available()


def default_max_models(s: TrainSettings, device: torch.device) -> int:
    """As many models as fit in MEMORY_SHARE of the free memory; an error if not even one does."""
    budget, need = int(MEMORY_SHARE * free_memory(device)), bytes_per_model(s)
    if need > budget:
        hidden = s.network.hidden
        raise InitbenchError(f"One model with these settings needs about {need / 2**30:,.1f} GiB ({len(hidden)} "
                             f"hidden layers of up to {max(hidden):,} units, batch size {s.optim.batch_size:,}, "
                             f"{s.optim.epochs:,} epochs), more than half the free memory on {device} "
                             f"({budget / 2**30:.1f} GiB). Use smaller --hidden sizes, a smaller --batch-size or "
                             "fewer --epochs.")
    return budget // need


def chunks(jobs: Sequence[Job], size: Callable[[TrainSettings], int]) -> list[list[Job]]:
    """``jobs`` in groups of the settings they share (``shared``: whatever their learning
    rates and optimizer's numbers), in order of first appearance, each split into chunks of
    at most ``size(settings)`` models (the settings of the group's first job)."""
    by_settings: dict[TrainSettings, list[Job]] = {}
    for job in jobs:
        by_settings.setdefault(shared(job.settings), []).append(job)
    found: list[list[Job]] = []
    for group in by_settings.values():
        # Models of equal optimizer numbers side by side: the optimizer takes each set's slices as one tensor.
        group = sorted(group, key=lambda job: _order(job.settings.optim))
        n = size(group[0].settings)
        found += [group[start:start + n] for start in range(0, len(group), n)]
    return found


def step_seconds(s: TrainSettings, device: torch.device, models: int | None = None) -> StepTime:
    """Seconds per model of one batched training step with these settings, measured here
    (``step_times``) on ``models`` models, by default as many as fit up to a few (a network
    that fits once is timed alone): the median and the quartiles."""
    models = models or min(CALIBRATION_MODELS, default_max_models(s, device))
    return StepTime.of([t / models for t in step_times(s, device, models)[0]])


def step_cost(s: TrainSettings, device: torch.device, models: int) -> tuple[float, int]:
    """Seconds of one batched training step of ``models`` models with these settings (the
    median of ``step_times``), and the memory the models and their step take."""
    times, used = step_times(s, device, models)
    return statistics.median(times), used


def step_times(s: TrainSettings, device: torch.device, models: int) -> tuple[list[float], int]:
    """Seconds of each timed batched training step of ``models`` models with these settings
    (``repeated``: several, after a warm-up), each with its share of drawing a block of
    dropout masks; and the memory the models and their step take: CUDA's peak allocation,
    or on the CPU the growth of the resident memory."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    before = _memory_in_use(device)
    step, dropout = sample_step(s, device, models)
    # A block of masks serves MASK_BLOCK steps: each step's share of drawing one.
    drawing = timed(lambda: dropout.at(0), device) / MASK_BLOCK if dropout is not None else 0.0
    times = repeated(step, device)
    used = (torch.cuda.max_memory_allocated(device) if device.type == "cuda" else _memory_in_use(device)) - before
    return [t + drawing for t in times], used


WARM_UP = 2  # steps run before any is timed: the first allocate what the later ones reuse
TIMED = (5, 25)  # the fewest and the most steps timed ...
TIMED_SECONDS = 1.0  # ... between which timing stops once this long has been timed


def repeated(step: Callable[[], object], device: torch.device) -> list[float]:
    """Seconds of each of several runs of ``step`` after WARM_UP untimed ones: at least
    TIMED[0], then more until TIMED_SECONDS have been timed (at most TIMED[1]). One run
    alone said little on a machine shared with other work, where a step now and then
    waits for a CPU: a sweep's plan reads the median and the spread of them all."""
    for _ in range(WARM_UP):
        timed(step, device)
    times: list[float] = []
    while len(times) < TIMED[0] or (sum(times) < TIMED_SECONDS and len(times) < TIMED[1]):
        times.append(timed(step, device))
    return times


def sample_step(s: TrainSettings, device: torch.device, models: int) -> tuple[Callable[[], None], DropoutMasks | None]:
    """One batched training step of ``models`` models with these settings on a random batch,
    to time or profile (each call another step on the same batch), and the dropout masks it
    uses (a block drawn: the step takes its second step's masks), None without dropout."""
    n = max(s.optim.batch_size, 1)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(n, data.get(s.data.dataset).input_size, generator=gen).to(device)
    y = torch.randint(len(data.class_numbers(s.data)), (n,), generator=gen).to(device)
    jobs = [Job("default", seed, s) for seed in range(models)]
    population = Population(jobs, [initial_model(job, x) for job in jobs], device)
    idx = torch.arange(n, device=device)[None].expand(models, -1)
    alive = torch.ones(models, dtype=torch.bool, device=device)
    dropout = masks = None
    if s.network.dropout:
        dropout = dropout_masks(jobs, device, n, MASK_BLOCK)
        dropout.at(0)
        masks = dropout.at(1)

    def step() -> None:
        population.train_step(x, y, idx, masks, alive)

    return step, dropout


def timed(work: Callable[[], object], device: torch.device) -> float:
    """Seconds ``work`` takes, the device's queued work included (a CUDA call returns early)."""
    tic = time.perf_counter()
    work()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - tic


def _memory_in_use(device: torch.device) -> int:
    """Bytes allocated on a CUDA device, or this process's resident memory."""
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device)
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def train(chunks: Sequence[Sequence[Job]], data: Splits, device: torch.device,
          progress: Progress = lambda tick: None, keep: Keep = Keep()) -> Iterator[list[JobResult]]:
    """Train ``chunks`` (each of equal settings) one after another, yielding each chunk's
    results as it finishes."""
    for k, chunk in enumerate(chunks):
        label = (f"{len(chunk)} model{'s' * (len(chunk) != 1)}"
                 + (f" (group {k + 1} of {len(chunks)})" if len(chunks) > 1 else ""))
        yield _train_chunk(chunk, data, device, progress, label, keep)


def _train_chunk(jobs: Sequence[Job], data: Splits, device: torch.device, progress: Progress, label: str,
                 keep: Keep) -> list[JobResult]:
    s, m = jobs[0].settings, len(jobs)
    o = s.optim
    progress(Tick("building", label))
    with record_function(SCOPES["building"]):
        models = [initial_model(job, data.x_train) for job in jobs]
        initial = [state_dict(model) if keep.initial else None for model in models]
        population = Population(jobs, models, device)
        del models
    orders = [batch_orders(seed, len(data.y_train)) for seed in population.seeds]
    n_batches = batches_per_epoch(len(data.y_train), o.batch_size)
    dropout = dropout_masks(jobs, device, o.batch_size, n_batches)
    eval_masks = evaluation_masks(jobs, device)
    losses = torch.full((m, o.epochs, n_batches), math.nan, device=device)
    alive = torch.ones(m, dtype=torch.bool, device=device)
    val_acc = []
    stats_batch = diagnostics.stats_batch(data.x_val, data.y_val) if keep.layer_stats else None

    def layer_stats(epoch: int) -> list[list[dict[str, float]]]:  # each model copied out only when asked
        return [diagnostics.epoch_rows(population.model(i), stats_batch, epoch) if stats_batch else []
                for i in range(m)]

    stats = layer_stats(0)
    for epoch in range(o.epochs):
        population.start_epoch(epoch)
        order = torch.stack([next(seed_order) for seed_order in orders]).to(device)
        for b in range(n_batches):
            idx = order[:, b * o.batch_size:(b + 1) * o.batch_size]
            loss = population.train_step(data.x_train, data.y_train, idx, dropout.at(b) if dropout else None, alive)
            losses[:, epoch, b] = loss
            progress(Tick("training", label, epoch + 1, o.epochs, b + 1, n_batches, m, loss))
        progress(Tick("evaluating", label, epoch + 1, o.epochs))
        val_acc.append(population.accuracy(data.x_val, data.y_val, eval_masks).tolist())
        for rows, more in zip(stats, layer_stats(epoch + 1)):
            rows += more
    progress(Tick("testing", label, o.epochs, o.epochs))
    test_acc = population.accuracy(data.x_test, data.y_test, eval_masks).tolist()
    # A model diverged at its first non-finite loss (it was frozen from that batch on).
    flat = losses.view(m, -1)
    first_bad = (~torch.isfinite(flat)).int().argmax(1).tolist()
    return [result(job, flat[i].view(o.epochs, -1), [acc[i] for acc in val_acc], test_acc[i],
                   None if bool(alive[i]) else first_bad[i] + 1,
                   state_dict(population.model(i)) if keep.weights else None, initial[i],
                   stats[i] if keep.layer_stats else None)
            for i, job in enumerate(jobs)]


def score(jobs: Sequence[Job], models: Sequence[MLP], x: Tensor, y: Tensor, device: torch.device) -> list[float]:
    """Each model's accuracy on (x, y), computed exactly as training computed it."""
    return Population(jobs, models, device).accuracy(x, y).tolist()
