"""The llm.c question's variant (configs/papers/llmc-2025.toml): GPT-2's start with the
position embedding at std 0.01, as OpenAI's released model.py draws it, instead of 0.02.

A per-layer scheme of one's own: it reads the layer's record (``layer.part``, the tensor's
role; ``layer.blocks``, L) and is keyed by its code.
"""

import math


def gpt2_small_position(weight, bias, generator, layer):
    """gpt2 (nanoGPT's), the position embedding at half its std.

    Formula: N(0, 0.02); output projections N(0, 0.02/sqrt(2L)); the position embedding N(0, 0.01); biases 0
    Reference: openai/gpt-2 src/model.py (wpe stddev 0.01); llm.c PR 832
    """
    if layer.part == "position_embedding":
        std = 0.01
    elif layer.part in ("attention_output", "mlp_out"):
        std = 0.02 / math.sqrt(2 * layer.blocks)
    else:
        std = 0.02
    weight.normal_(0.0, std, generator=generator)
    bias.zero_()
