"""Training a GPT for next-token prediction, one model at a time (the reference the batched
engine will be held to): context windows drawn from the seed's stream, shared by every
scheme of the seed, Adam, and what the lab reports of a run: the loss at step 0 (beside ln
V), the training loss per step, the validation loss in nats and bits per character, the
steps to a target loss, loss spikes (a step whose loss exceeds twice the running median of
the steps before it) and divergence (a loss non-finite or a thousand times the first).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import torch
from torch import Tensor

from initbench.models.gpt import GPT, bits_per_character

SPIKE = 2.0  # a step's loss over this many times the running median of the steps before it is a spike
BLOW_UP = 1000.0  # a loss this many times the first is divergence
EVAL_WINDOWS = 64  # validation windows, evenly spaced over the held-out text


def windows(tokens: Tensor, context: int, batch: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``batch`` windows of ``context`` tokens at offsets drawn from ``generator``, and the
    tokens that follow each position (the targets)."""
    starts = torch.randint(len(tokens) - context, (batch,), generator=generator)
    rows = starts[:, None] + torch.arange(context + 1)
    chunk = tokens[rows]
    return chunk[:, :-1], chunk[:, 1:]


@dataclass(frozen=True)
class Trained:
    """What one model's run says."""

    losses: list[float]  # per step, from step 0 (the loss of the model as it started); NaN after divergence
    val_loss: float  # in nats per token, after the last step
    diverged_at: int | None  # the step whose loss blew up (non-finite, or BLOW_UP times the first)
    spikes: list[int]  # the steps whose loss exceeded SPIKE times the running median before them

    @property
    def val_bits(self) -> float:
        return bits_per_character(self.val_loss)

    def steps_to(self, target: float) -> int | None:
        """The first step whose training loss is at or below ``target`` (None: never)."""
        return next((step for step, loss in enumerate(self.losses) if loss <= target), None)


def evaluate(model: GPT, tokens: Tensor) -> float:
    """The mean loss per token, in nats, over EVAL_WINDOWS windows evenly spaced over ``tokens``."""
    context = model.shape.context
    starts = torch.linspace(0, len(tokens) - context - 1, min(EVAL_WINDOWS, len(tokens) - context)).long()
    rows = starts[:, None] + torch.arange(context + 1)
    chunk = tokens[rows]
    model.eval()
    with torch.no_grad():
        loss = float(model.loss(chunk[:, :-1], chunk[:, 1:]))
    model.train()
    return loss


def train(model: GPT, train_tokens: Tensor, val_tokens: Tensor, steps: int, batch: int, lr: float,
          generator: torch.Generator) -> Trained:
    """Train ``model`` for ``steps`` steps of ``batch`` windows drawn from ``generator``
    (the seed's: every scheme of a seed sees the same windows), with Adam at ``lr``."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses: list[float] = []
    diverged_at = None
    model.train()
    for step in range(steps + 1):  # step 0 measures the start; steps 1..steps train
        x, y = windows(train_tokens, model.shape.context, batch, generator)
        loss = model.loss(x, y)
        value = float(loss.detach())
        if not math.isfinite(value) or (losses and value > BLOW_UP * losses[0]):
            diverged_at = step
            losses += [math.nan] * (steps + 1 - step)
            break
        losses.append(value)
        if step < steps:
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    spikes = [step for step in range(2, len(losses)) if math.isfinite(losses[step])
              and losses[step] > SPIKE * statistics.median(losses[:step])]
    val = math.nan if diverged_at is not None else evaluate(model, val_tokens)
    return Trained(losses, val, diverged_at, spikes)


def sample(model: GPT, prompt: list[int], length: int, generator: torch.Generator) -> list[int]:
    """``length`` tokens drawn after ``prompt`` from the model's next-token distribution."""
    tokens = torch.tensor([prompt], dtype=torch.long)
    model.eval()
    with torch.no_grad():
        for _ in range(length):
            logits = model(tokens[:, -model.shape.context:])[0, -1]
            following = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)
            tokens = torch.cat([tokens, following[None]], dim=1)
    model.train()
    return tokens[0, len(prompt):].tolist()
