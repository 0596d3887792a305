"""Training a GPT for next-token prediction (initbench.training.lm): it learns a text, its
start sits at ln V, the windows are the seed's, and a blow-up is divergence."""

import math

import torch

from initbench.data import text
from initbench.initializers import transformer
from initbench.models import gpt
from initbench.training import lm


def corpus(tmp_path) -> text.Corpus:
    path = tmp_path / "rhyme.txt"
    path.write_text("".join(f"the cat sat on the mat {i % 7}\n" for i in range(400)))
    return text.from_path(str(path))


def model(vocab: int, scheme: str = "gpt2", seed: int = 0) -> gpt.GPT:
    built = gpt.GPT(gpt.Shape(vocab=vocab, context=16, width=32, depth=2, heads=2))
    transformer.initialize_(built, scheme, torch.Generator().manual_seed(seed))
    return built


def test_a_gpt_learns_a_text_from_ln_v(tmp_path) -> None:
    found = corpus(tmp_path)
    train, val = (torch.tensor(found.encoded(part)) for part in ("train", "val"))
    vocab = len(found.vocabulary)
    run = lm.train(model(vocab), train, val, steps=150, batch=16, lr=3e-3, generator=torch.Generator().manual_seed(1))
    assert abs(run.losses[0] - math.log(vocab)) < 0.1  # a gpt2 start knows nothing: about ln V
    assert run.diverged_at is None and run.val_loss < 0.5 * math.log(vocab) and run.val_bits < run.val_loss * 1.45
    assert run.steps_to(1.0) is not None and len(run.losses) == 151
    words = "".join(found.vocabulary[t] for t in lm.sample(model(vocab), [0], 20, torch.Generator().manual_seed(0)))
    assert len(words) == 20


def test_every_scheme_of_a_seed_sees_the_same_windows(tmp_path) -> None:
    tokens = torch.tensor(corpus(tmp_path).encoded("train"))
    a = lm.windows(tokens, 16, 8, torch.Generator().manual_seed(5))
    b = lm.windows(tokens, 16, 8, torch.Generator().manual_seed(5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[0][:, 1:], a[1][:, :-1])


def test_a_blow_up_is_divergence(tmp_path) -> None:
    found = corpus(tmp_path)
    train, val = (torch.tensor(found.encoded(part)) for part in ("train", "val"))
    run = lm.train(model(len(found.vocabulary)), train, val, steps=20, batch=8, lr=1e4,
                   generator=torch.Generator().manual_seed(1))
    assert run.diverged_at is not None and math.isnan(run.val_loss) and math.isnan(run.losses[-1])
