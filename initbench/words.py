"""How counts read in messages, tables and progress lines, at every layer."""


def plural(n: int, word: str, words: str = "") -> str:
    """"1 epoch", "2 epochs"; "1 batch", "100 batches" with ``words`` given."""
    return f"{n:,} {word if n == 1 else words or word + 's'}"
