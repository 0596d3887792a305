"""A gpt's shape (``Shape``): what ``models.gpt`` builds, read from its settings and checked
in words without torch, so that the command line refuses a shape that cannot be built before
torch loads (``config.check_text``)."""

from __future__ import annotations

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

    def check(self) -> None:
        """Refuse, in words, a shape that cannot be built."""
        if self.heads < 1 or self.width % self.heads:
            raise UsageError(f"--heads {self.heads} does not divide the width {self.width}: each head takes an equal "
                             f"share of it. Give heads that divide {self.width} (e.g. {_divisor(self.width, self.heads)}).")
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
                 settings.residual_scale)
