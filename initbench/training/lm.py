"""Next-token prediction, one model at a time (the sequential engine's way with a text):
context windows drawn from the seed's stream (every scheme of a seed reads the same windows
at the same step), Adam or SGD, a score after every epoch (``--steps`` steps: windows are
drawn, not passed over), and a sample of what the model learned to write.

What a run reports of each model: every step's training loss (the first is the loss of the
start, beside ln V), the validation and test loss in nats per character (``score``; in bits
in the tables), divergence (a loss non-finite or BLOW_UP times the first: the model is kept
as it stands); ``analysis.frames`` reads the first loss and the spikes from the losses. A gpt's
dropout (off by default) draws from torch's generator seeded by the seed's own stream, in a
fork that leaves the caller's generator as it was.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from initbench import data
from initbench.errors import InitbenchError
from initbench.jobs import Job, JobResult, Keep, Progress, Tick, result, state_dict
from initbench.models.gpt import GPT
from initbench.training import streams

BLOW_UP = 1000.0  # a loss this many times the first is divergence
# A diverged model's validation and test loss as recorded: the largest float32, worse than any
# loss a model scores (a store keeps finite numbers only); its run says it diverged, and the
# tables and paired statistics leave it out (analysis.frames).
DIVERGED = 3.4028234663852886e38
EVAL_WINDOWS = 256  # scored windows, evenly spaced over a held-out text (the same for every model)
EVAL_CHUNK = 64  # windows per forward pass when scoring
SAMPLE_CHARS = 200  # of each model's sample
PROMPT_CHARS = 32  # the sample's prompt: the validation text's first characters


def windows(tokens: Tensor, context: int, batch: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``batch`` windows of ``context`` tokens at offsets drawn from ``generator``, and the
    tokens that follow each position (the targets)."""
    starts = torch.randint(len(tokens) - context, (batch,), generator=generator)
    rows = (starts[:, None] + torch.arange(context + 1)).to(tokens.device)
    chunk = tokens[rows]
    return chunk[:, :-1], chunk[:, 1:]


@torch.no_grad()
def score(model: GPT, tokens: Tensor) -> float:
    """The mean loss per character, in nats, over EVAL_WINDOWS windows evenly spaced over
    ``tokens`` (every position of each predicted); DIVERGED for a model whose loss is not finite."""
    context = model.shape.context
    if len(tokens) <= context:
        raise InitbenchError(f"A held-out text of {len(tokens):,} characters is shorter than the gpt's context "
                             f"({context:,}): no window fits in it. Give a shorter --context, or a longer text.")
    starts = torch.linspace(0, len(tokens) - context - 1, min(EVAL_WINDOWS, len(tokens) - context)).long()
    rows = (starts[:, None] + torch.arange(context + 1)).to(tokens.device)
    was_training = model.training
    model.eval()
    total = 0.0
    for i in range(0, len(rows), EVAL_CHUNK):
        chunk = tokens[rows[i:i + EVAL_CHUNK]]
        total += float(model.loss(chunk[:, :-1], chunk[:, 1:])) * len(chunk)
    model.train(was_training)
    return total / len(rows) if math.isfinite(total) else DIVERGED


def train_job(job: Job, model: GPT, opt: torch.optim.Optimizer, splits: data.Splits, device: torch.device,
              progress: Progress, label: str, keep: Keep, initial: dict[str, Tensor] | None) -> JobResult:
    """Train ``model`` (the job's, as initialized, on ``device``) with ``opt`` (the engine's
    optimizer over its parameters) on the text's windows; its result holds the validation
    loss after each epoch in ``val_acc`` (the task's validation metric) and the test loss in
    ``test_acc``, and a sample of its writing."""
    o = job.settings.optim
    model = model.train()
    windows_from = streams.generator(job.seed, "windows")
    losses = torch.full((o.epochs, o.steps), math.nan)
    val: list[float] = []
    diverged_at, first = None, math.nan
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(streams.stream_seed(job.seed, "dropout"))  # a gpt's dropout: the seed's, as all else
        for epoch in range(o.epochs):
            for step in range(o.steps if diverged_at is None else 0):
                x, y = windows(splits.x_train, model.shape.context, o.batch_size, windows_from)
                loss = model.loss(x, y)
                value = float(loss.detach())
                first = value if math.isnan(first) else first
                losses[epoch, step] = value
                progress(Tick("training", label, epoch + 1, o.epochs, step + 1, o.steps, 1, loss.detach()))
                if not math.isfinite(value) or value > BLOW_UP * first:
                    diverged_at = epoch * o.steps + step + 1  # kept as it stands: divergence is a result
                    break
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            progress(Tick("evaluating", label, epoch + 1, o.epochs))
            val.append(DIVERGED if diverged_at is not None else score(model, splits.x_val))
    progress(Tick("testing", label, o.epochs, o.epochs))
    test = DIVERGED if diverged_at is not None else score(model, splits.x_test)
    found = result(job, losses, val, test, diverged_at, state_dict(model) if keep.weights else None, initial)
    found.sample = None if diverged_at is not None else written(job, model, splits.x_val)
    return found


@torch.no_grad()
def sample(model: GPT, prompt: Tensor, length: int, generator: torch.Generator) -> list[int]:
    """``length`` tokens drawn after ``prompt`` from the model's next-token distribution
    (``generator`` on the CPU: the same draws on any device)."""
    was_training = model.training
    model.eval()
    tokens = prompt[None]
    for _ in range(length):
        logits = model(tokens[:, -model.shape.context:])[0, -1].float().cpu()
        following = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)
        tokens = torch.cat([tokens, following[None].to(tokens.device)], dim=1)
    model.train(was_training)
    return tokens[0, len(prompt):].tolist()


def written(job: Job, model: GPT, held_out: Tensor) -> str:
    """The job's sample: SAMPLE_CHARS characters after the held-out text's first PROMPT_CHARS,
    drawn from the seed's stream (every scheme of a seed draws the same numbers)."""
    vocabulary = data.get(job.settings.data.dataset).class_names
    drawn = sample(model, held_out[:min(PROMPT_CHARS, model.shape.context)], SAMPLE_CHARS,
                   streams.generator(job.seed, "sample"))
    return "".join(vocabulary[t] for t in drawn)
