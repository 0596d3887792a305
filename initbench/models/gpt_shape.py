"""A gpt's shape (``Shape``): what ``models.gpt`` builds, read from its settings and checked
in words without torch, so that the command line refuses a shape that cannot be built before
torch loads (``config.check_text``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from initbench.errors import UsageError
from initbench.settings import NORM_POSITIONS as PLACEMENTS, NORMS, NetworkSettings


@dataclass(frozen=True)
class Shape:
    """A GPT's architecture (the defaults train in minutes on 2 cores)."""

    vocab: int
    context: int = 64
    width: int = 128
    depth: int = 4
    heads: int = 4
    mlp_ratio: int = 4
    placement: str = "pre"
    norm: str = "layernorm"
    tied: bool = False
    dropout: float = 0.0
    alpha: float = 1.0  # DeepNorm's: the residual stream's factor before each branch is added
    base_width: int | None = None  # under μP (and the depth parametrizations), its base width; None under sp

    @property
    def attention_scale(self) -> float | None:
        """What the attention's logits q·k are multiplied by: under sp None, torch's 1/sqrt(d_head)
        (d_head = width / heads); under μP 1/d_head (Tensor Programs V, section 3: q and k grow
        correlated in training, so their product grows as d_head), times sqrt of the base's d_head,
        so that at the base width it is sp's."""
        if self.base_width is None:
            return None
        return math.sqrt(self.base_width / self.heads) / (self.width / self.heads)

    @property
    def logits_scale(self) -> float:
        """The factor the logits q·k are multiplied by, as a number under any parametrization
        (sp's is torch's default, 1/sqrt(d_head)): what a measurement of the logits uses."""
        return self.attention_scale or (self.width / self.heads) ** -0.5

    def check(self) -> None:
        """Refuse, in words, a shape that cannot be built."""
        if self.heads < 1 or self.width % self.heads:
            raise UsageError(f"--heads {self.heads} does not divide the width {self.width}: each head takes an equal "
                             f"share of it. Give heads that divide {self.width} (e.g. {_divisor(self.width, self.heads)}).")
        if self.base_width is not None and self.base_width % self.heads:
            raise UsageError(f"--base-width {self.base_width} is not split evenly by --heads {self.heads}: under μP "
                             "each head's size grows with the width from the base's (base width / heads), which must "
                             f"be a whole number. Give a base width of a multiple of {self.heads} (e.g. "
                             f"{self.heads * max(1, round(self.base_width / self.heads))}), or fewer heads.")
        if self.base_width is not None and self.tied:
            raise UsageError("--tied with μP: μP scales the head (the readout) otherwise than the token embedding, "
                             "so the two cannot share one tensor. Leave --tied out, or give --parametrization sp.")
        if self.norm not in NORMS or self.placement not in PLACEMENTS:
            raise UsageError(f"A GPT's norm is one of {', '.join(NORMS)} and its placement one of "
                             f"{', '.join(PLACEMENTS)}; got {self.norm!r} and {self.placement!r}.")


def _divisor(width: int, near: int) -> int:
    """The divisor of ``width`` nearest ``near`` (the larger of two as near)."""
    return min((d for d in range(1, width + 1) if width % d == 0), key=lambda d: (abs(d - near), -d))


def shape(settings: NetworkSettings, vocab: int) -> Shape:
    """The Shape ``settings`` describe: ``hidden``'s sizes are the blocks (128x4: four blocks
    of width 128), which must be equal: the residual stream has one width."""
    if len(set(settings.hidden)) != 1:
        raise UsageError(f"--hidden {','.join(map(str, settings.hidden))}: a gpt's blocks share one width (the "
                         "residual stream's). Give equal sizes, e.g. --hidden 128x4 for four blocks of width 128.")
    return Shape(vocab, settings.context, settings.hidden[0], len(settings.hidden), settings.heads,
                 settings.mlp_ratio, settings.norm_position, settings.norm, settings.tied, settings.dropout,
                 settings.residual_scale, None if settings.parametrization == "sp" else settings.base_width)
