"""The two ways a user would otherwise train many small models, as ``initbench bench``'s peers:

- ``vmap_ensemble``: PyTorch's model-ensembling recipe (``torch.func.stack_module_state``,
  ``functional_call``, ``vmap``), trained: per batch one vmapped forward of every model
  (dropout drawn per model: ``randomness="different"``), the losses summed, autograd on the
  stacked parameters, one ``torch.optim.Adam`` over them.
- ``module_loop``: a Python loop over plain ``nn.Module``s, each with its own
  ``torch.optim.Adam``, the data already in tensors (no DataLoader).

Both train the models initbench's engines train: the same initial weights
(``streams.initial_model``) and, per seed, the same batch order (``streams.batch_orders``:
models of one seed see the same batches). Their dropout masks are torch's own
(``F.dropout``, the global generator), so their numbers are not the engines' to the bit:
they are timed, and checked to train, not compared. Set-up happens once, outside the
returned callable; each call trains the same models one more epoch, then scores the
validation set, as the engines do per epoch. Like user code, they check no loss for
divergence (a check would wait for a GPU every batch).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call, stack_module_state, vmap

from initbench.data import Splits
from initbench.jobs import Job, correct
from initbench.models.dropout import EVAL_CHUNK
from initbench.settings import TrainSettings
from initbench.training.streams import batch_orders, initial_model


@dataclass(frozen=True)
class Peer:
    """One epoch of training per call, then each model's validation accuracy (in ``jobs``' order)."""

    epoch: Callable[[], list[float]]
    state: Callable[[], dict[str, Tensor]]  # the models' parameters as they stand: state-dict key -> [M, ...]

    def __call__(self) -> list[float]:
        return self.epoch()


def vmap_ensemble(jobs: Sequence[Job], splits: Splits, device: torch.device) -> Peer:
    """The jobs' models trained as PyTorch's model-ensembling recipe would train them."""
    s = _settings(jobs)
    models = [initial_model(job, splits.x_train).to(device) for job in jobs]
    params, _ = stack_module_state(models)  # leaves [M, ...] that require grad; initbench's networks have no buffers
    base = copy.deepcopy(models[0]).to("meta")  # the network's code, without storage: functional_call fills it
    del models
    opt = torch.optim.Adam(params.values(), lr=s.optim.lr)  # elementwise, so each model's slice steps as alone

    def loss(p: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(functional_call(base, p, (x, _masks(x, s))), y)

    def logits(p: dict[str, Tensor], x: Tensor) -> Tensor:
        return functional_call(base, p, (x,))  # no masks: evaluated without dropout

    losses = vmap(loss, randomness="different")  # every model its own dropout masks
    scores = vmap(logits, in_dims=(0, None))  # every model the same validation images
    next_order, row = _orders(jobs, splits, device)

    def epoch() -> list[float]:
        order = next_order()[row]  # every model its seed's order, [M, n]
        for start in range(0, order.shape[1], s.optim.batch_size):
            idx = order[:, start:start + s.optim.batch_size]  # [M, B]: one gather of every model's batch
            # The sum's gradient w.r.t. a model's slice is that model's own loss's gradient.
            total = losses(params, splits.x_train[idx], splits.y_train[idx]).sum()
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
        return _accuracy(lambda x: scores(params, x), splits)

    return Peer(epoch, lambda: {key: p.detach().clone() for key, p in params.items()})


def module_loop(jobs: Sequence[Job], splits: Splits, device: torch.device) -> Peer:
    """The jobs' models trained one after another within each batch: a Python loop over
    plain nn.Modules, each with its own Adam, the data already in tensors."""
    s = _settings(jobs)
    models = [initial_model(job, splits.x_train).to(device) for job in jobs]
    opts = [torch.optim.Adam(model.parameters(), lr=s.optim.lr) for model in models]
    next_order, seed_row = _orders(jobs, splits, device)
    row = seed_row.tolist()

    def epoch() -> list[float]:
        order = next_order()
        for start in range(0, order.shape[1], s.optim.batch_size):
            # Each seed's batch gathered once, shared by the models of that seed.
            batches = [(splits.x_train[idx], splits.y_train[idx]) for idx in order[:, start:start + s.optim.batch_size]]
            for model, opt, k in zip(models, opts, row):
                x, y = batches[k]
                loss = F.cross_entropy(model(x, _masks(x, s)), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        return _accuracy(lambda x: torch.stack([model(x) for model in models]), splits)

    def state() -> dict[str, Tensor]:
        return {key: torch.stack([model.state_dict()[key] for model in models]) for key in models[0].state_dict()}

    return Peer(epoch, state)


def _settings(jobs: Sequence[Job]) -> TrainSettings:
    """The jobs' one settings, refused where a peer would not train them as the engines do:
    the peers are the plain recipes (Adam at one lr, every layer trained)."""
    settings = {job.settings for job in jobs}
    if len(settings) != 1:
        raise ValueError(f"a peer trains jobs of one settings, not {len(settings)}")
    s = settings.pop()
    if s.optim.optimizer != "adam" or s.optim.freeze or s.network.parametrization != "sp":
        raise ValueError("the peers train with Adam at one learning rate, every layer (optimizer adam, freeze 0, "
                         "parametrization sp)")
    return s


def _orders(jobs: Sequence[Job], splits: Splits, device: torch.device) -> tuple[Callable[[], Tensor], Tensor]:
    """A call of the first gives the next epoch's batch order of each seed, [seeds, n], as the
    engines draw it; the second says which of those rows is each job's, [M]."""
    seeds = sorted({job.seed for job in jobs})
    orders = [batch_orders(seed, len(splits.y_train)) for seed in seeds]
    row = torch.tensor([seeds.index(job.seed) for job in jobs], device=device)
    return lambda: torch.stack([next(order) for order in orders]).to(device), row


def _masks(x: Tensor, s: TrainSettings) -> list[Tensor] | None:
    """The training dropout masks the network's forward multiplies by, one per hidden
    layer: F.dropout of ones is the mask nn.Dropout would apply (0 or 1/(1-p))."""
    p = s.network.dropout
    return [F.dropout(x.new_ones(len(x), width), p) for width in s.network.hidden] if p else None


@torch.no_grad()
def _accuracy(logits: Callable[[Tensor], Tensor], splits: Splits) -> list[float]:
    """Each model's validation accuracy, from ``logits``: a chunk of images -> [M, chunk, classes]."""
    x, y = splits.x_val, splits.y_val
    hits = torch.stack([correct(logits(x[i:i + EVAL_CHUNK]), y[i:i + EVAL_CHUNK])
                        for i in range(0, len(y), EVAL_CHUNK)]).sum(0)
    return (hits.double() / len(y)).tolist()

