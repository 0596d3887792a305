"""A decoder-only transformer (GPT) for next-token prediction over characters.

``Shape`` says what it is: its vocabulary and context, width, depth (blocks), heads, the
MLP's ratio, where its norms sit (``pre``: before each branch, as GPT-2; ``post``: after
each residual add, as the original transformer), which norm (LayerNorm, RMSNorm or none),
whether the head shares the token embedding's weights, dropout, and DeepNorm's ``alpha``
(the residual stream is multiplied by it before each branch's output is added).

Every weighted tensor carries its ``Role`` (``roles``): token or position embedding,
attention query, key, value or output, MLP in or out, norm gain, head; with its block's
index and the network's depth, so that a scheme can scale by role and depth (GPT-2's
residual projections by 1/sqrt(2L), DeepNet's by its beta). Query, key and value are
separate Linear layers so that each has a role of its own (mimetic initialization reads
W_q W_k^T). torch is imported by this module: the registry names it, and imports it when a
network is built.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from initbench.models.gpt_shape import Shape, shape
from initbench.settings import NetworkSettings

ROLES = ("token_embedding", "position_embedding", "attention_query", "attention_key", "attention_value",
         "attention_output", "mlp_in", "mlp_out", "norm_gain", "norm_bias", "head")
WEIGHTED = ("query", "key", "value", "attention_output", "mlp_in", "mlp_out")  # a block's, in its layers' order


@dataclass(frozen=True)
class Role:
    """What a parameter is: its name in the state dict, its role (one of ROLES), whether it
    is a ``weight`` or a ``bias``, its block's index (None outside the blocks) and the
    network's depth in blocks."""

    name: str
    role: str
    part: str
    block: int | None
    depth: int


class RMSNorm(nn.Module):
    def __init__(self, width: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def _norm(shape: Shape) -> nn.Module:
    if shape.norm == "layernorm":
        return nn.LayerNorm(shape.width)
    return RMSNorm(shape.width) if shape.norm == "rmsnorm" else nn.Identity()


class Block(nn.Module):
    """Causal self-attention, then an MLP, each a residual branch."""

    def __init__(self, shape: Shape) -> None:
        super().__init__()
        w, self.shape = shape.width, shape
        self.query, self.key, self.value = (nn.Linear(w, w) for _ in range(3))
        self.attention_output = nn.Linear(w, w)
        self.mlp_in, self.mlp_out = nn.Linear(w, shape.mlp_ratio * w), nn.Linear(shape.mlp_ratio * w, w)
        self.norm_attention, self.norm_mlp = _norm(shape), _norm(shape)
        self.dropout = nn.Dropout(shape.dropout)

    def attend(self, x: Tensor) -> Tensor:
        batch, length, width = x.shape
        heads = self.shape.heads

        def split(t: Tensor) -> Tensor:
            return t.view(batch, length, heads, width // heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(split(self.query(x)), split(self.key(x)), split(self.value(x)),
                                             is_causal=True, scale=self.shape.attention_scale)
        return self.dropout(self.attention_output(out.transpose(1, 2).reshape(batch, length, width)))

    def feed(self, x: Tensor) -> Tensor:
        return self.dropout(self.mlp_out(F.gelu(self.mlp_in(x))))

    def forward(self, x: Tensor) -> Tensor:
        alpha = self.shape.alpha
        if self.shape.placement == "pre":
            x = alpha * x + self.attend(self.norm_attention(x))
            return alpha * x + self.feed(self.norm_mlp(x))
        x = self.norm_attention(alpha * x + self.attend(x))
        return self.norm_mlp(alpha * x + self.feed(x))


class GPT(nn.Module):
    """Token and learned position embeddings, ``depth`` blocks, a final norm (pre-LN only),
    and a head to the vocabulary's logits."""

    def __init__(self, shape: Shape) -> None:
        super().__init__()
        shape.check()
        self.shape = shape
        self.token_embedding = nn.Embedding(shape.vocab, shape.width)
        self.position_embedding = nn.Embedding(shape.context, shape.width)
        self.blocks = nn.ModuleList(Block(shape) for _ in range(shape.depth))
        self.norm_final = _norm(shape) if shape.placement == "pre" else nn.Identity()
        self.head = nn.Linear(shape.width, shape.vocab, bias=False)
        if shape.tied:
            self.head.weight = self.token_embedding.weight
        self.dropout = nn.Dropout(shape.dropout)

    @property
    def layers(self) -> list[nn.Module]:
        """Its weighted layers in order, as schemes fill them and --freeze would count them:
        the token and position embeddings, each block's query, key, value, attention output,
        MLP in and MLP out, and the head (unless tied: then it is the token embedding)."""
        blocks = [getattr(block, name) for block in self.blocks for name in WEIGHTED]
        return [self.token_embedding, self.position_embedding, *blocks, *([] if self.shape.tied else [self.head])]

    @property
    def parts(self) -> list[tuple[str, int | None]]:
        """Each of ``layers``' role (``ROLES``) and block (None outside the blocks): what a
        scheme's ``Layer`` record tells it."""
        blocks = [(f"attention_{name}" if name in ("query", "key", "value") else name, i)
                  for i in range(self.shape.depth) for name in WEIGHTED]
        return [("token_embedding", None), ("position_embedding", None), *blocks,
                *([] if self.shape.tied else [("head", None)])]

    def forward(self, tokens: Tensor, masks: object = None) -> Tensor:
        """Logits [batch, length, vocab] for tokens [batch, length] (length at most the context);
        ``masks`` is the networks' contract's, which a GPT does not take (its dropout is its own)."""
        length = tokens.shape[-1]
        if length > self.shape.context:
            raise ValueError(f"{length} tokens are more than the context of {self.shape.context}")
        positions = torch.arange(length, device=tokens.device)
        x = self.dropout(self.token_embedding(tokens) + self.position_embedding(positions))
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm_final(x))

    def loss(self, tokens: Tensor, targets: Tensor) -> Tensor:
        """The mean cross-entropy per token, in nats."""
        logits = self(tokens)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def roles(model: GPT) -> list[Role]:
    """Every weighted tensor's role, in the state dict's order, each once (a tied head is the
    token embedding's weight, listed once, as the token embedding)."""
    depth, found, seen = model.shape.depth, [], set()
    for name, parameter in model.named_parameters():  # named_parameters lists a shared tensor once
        if id(parameter) in seen:
            continue
        seen.add(id(parameter))
        parts = name.split(".")
        block = int(parts[1]) if parts[0] == "blocks" else None
        module = parts[2] if block is not None else parts[0]
        if module.startswith("norm"):
            role = "norm_gain" if parts[-1] == "weight" else "norm_bias"
        elif module in ("query", "key", "value"):
            role = f"attention_{module}"
        else:
            role = module
        found.append(Role(name, role, parts[-1], block, depth))
    return found


def bits_per_character(nats: float) -> float:
    """A loss per character in nats, in bits."""
    return nats / math.log(2)


def build(settings: NetworkSettings, inputs: int, classes: int) -> GPT:
    """The registry's builder: ``inputs`` and ``classes`` are both the vocabulary's size (its
    shape checked in words: ``gpt_shape``)."""
    return GPT(shape(settings, classes))
