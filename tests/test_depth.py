"""The depth parametrizations (depth-μP, CompleteP) of the residual MLP: μP at the base
depth, and deeper, the multiplier on each residual branch that the papers write, trained by
Adam at the rates they give."""

import math

import pytest
import torch
import torch.nn.functional as F

from initbench.jobs import Job
from initbench.settings import TrainSettings
from initbench.training import engines, parametrization
from initbench.training.streams import batch_orders, initial_model

CPU = torch.device("cpu")
BASE = TrainSettings.of(network="resmlp", hidden=(64, 64), dropout=0.0, epochs=1)


@pytest.mark.parametrize("name", ["depth-mup", "completep"])
def test_at_the_base_depth_each_is_mup_bit_for_bit(tiny, name: str) -> None:
    mup, depth = (engines.train([Job("kaiming_normal", 0, BASE.replace(parametrization=p))], tiny, CPU)[0]
                  for p in ("mup", name))
    assert torch.equal(mup.losses, depth.losses) and mup.val_acc == depth.val_acc


@pytest.mark.parametrize(("name", "alpha"), [("depth-mup", 0.5), ("completep", 1.0)])
def test_the_factors_are_the_papers(name: str, alpha: float) -> None:
    """8 blocks over a base of 2: each branch's end x 4^-alpha (weights, bias and Adam rate),
    every block layer's Adam rate x 4^(alpha - 1); the input and output layers are μP's."""
    s = BASE.replace(hidden=(128,) * 8, parametrization=name)
    mup = parametrization.scales(s.replace(parametrization="mup"))
    found = parametrization.scales(s)
    m, lr = 4 ** -alpha, 4 ** (alpha - 1)
    assert found[0] == mup[0] and found[-1] == mup[-1]
    for k in range(8):
        w1, w2 = 1 + 2 * k, 2 + 2 * k
        assert found[w1] == parametrization.LayerScale(1.0, mup[w1].weight_lr * lr, 1.0)
        assert math.isclose(found[w2].init, m) and math.isclose(found[w2].bias_init, m)
        assert math.isclose(found[w2].weight_lr, mup[w2].weight_lr * m * lr)
        assert math.isclose(found[w2].bias_lr, m)


@pytest.mark.parametrize("name", ["depth-mup", "completep"])
def test_a_deep_network_trains_as_one_with_the_multiplier_in_its_forward_pass(tiny, name: str) -> None:
    """The reference: μP's network of 8 blocks as drawn, each branch's output multiplied by
    (2/8)^alpha in the forward pass, torch.optim.Adam at μP's rates times (8/2)^(alpha - 1) in
    the blocks. initbench's form (the multiplier folded into W2's start and rate) trains to the
    same losses over every batch, up to Adam's eps and rounding: 2e-6 on the AVX-512 path, 3e-4
    on the AVX2 one (at the last batch, of one image); a 20% change of the block rates is 5e-3 to 7%."""
    alpha = parametrization.DEPTH_ALPHA[name]
    s = BASE.replace(hidden=(64,) * 8, parametrization=name, lr=1e-3)
    ours = engines.train([Job("kaiming_normal", 0, s)], tiny, CPU, "sequential")[0]

    mup = s.replace(parametrization="mup")
    model = initial_model(Job("kaiming_normal", 0, mup), tiny.x_train)
    m, deeper = 0.25 ** alpha, 4.0
    scales = parametrization.scales(mup)
    groups = []
    for i, layer in enumerate(model.layers):
        in_block = 0 < i < len(model.layers) - 1
        factor = deeper ** (alpha - 1) if in_block else 1.0
        groups += [{"params": [layer.weight], "lr": s.optim.lr * scales[i].weight_lr * factor},
                   {"params": [layer.bias], "lr": s.optim.lr * scales[i].bias_lr}]
    opt = torch.optim.Adam(groups)
    act = model.activation

    def forward(x):
        x = act(model.layers[0](x))
        for k in range(8):
            x = x + m * model.layers[2 + 2 * k](act(model.layers[1 + 2 * k](x)))
        return model.layers[-1](x)

    order = next(batch_orders(0, len(tiny.y_train)))
    batch = s.optim.batch_size
    losses = []
    for b in range(ours.losses.shape[1]):
        idx = order[b * batch:(b + 1) * batch]
        loss = F.cross_entropy(forward(tiny.x_train[idx]), tiny.y_train[idx])
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.testing.assert_close(ours.losses[0], torch.tensor(losses), rtol=1e-3, atol=0)


@pytest.mark.parametrize("name", ["depth-mup", "completep"])
def test_a_deep_gpt_trains_as_one_with_the_multiplier_on_each_branch(tmp_path, name: str) -> None:
    """The transformer: μP's gpt of 8 blocks as drawn, each attention and MLP branch's output
    multiplied by (2/8)^alpha in the forward pass, torch.optim.Adam at μP's rates with the
    blocks' matrices times (8/2)^(alpha - 1), on the seed's windows: initbench's form trains to
    the same losses at every step, to 2e-4 (1e-5 found on the AVX-512 and AVX2 paths; a 20% change
    of depth-μP's depth ratio is 7e-3), and at the base depth of 8 is μP's, bit for bit."""
    from initbench import data
    from initbench.training import lm, streams

    path = tmp_path / "rhyme.txt"
    path.write_text("".join(f"the cat sat on the mat {i % 7}\n" for i in range(400)))
    s = TrainSettings.of(dataset=f"text:{path}", network="gpt", hidden=(32,) * 8, heads=2, context=16,
                         batch_size=16, dropout=0.0, epochs=1, steps=30, lr=3e-3, parametrization=name,
                         base_width=16)
    splits = data.load(tmp_path, s.data)
    ours = engines.train([Job("default", 0, s)], splits, CPU, "sequential")[0]
    at_base = [engines.train([Job("default", 0, s.replace(parametrization=p, base_depth=8))], splits, CPU,
                             "sequential")[0]
               for p in (name, "mup")]
    assert torch.equal(at_base[0].losses, at_base[1].losses)

    alpha = parametrization.DEPTH_ALPHA[name]
    mup = s.replace(parametrization="mup")
    model = initial_model(Job("default", 0, mup), splits.x_train)
    m, deeper, scales = 0.25 ** alpha, 4.0, parametrization.scales(mup)
    rates = {id(p): s.optim.lr for p in model.parameters()}  # embeddings, norms: μP's 1
    for i, layer in enumerate(model.layers):
        in_block = 1 < i < len(model.layers) - 1
        rates[id(layer.weight)] = s.optim.lr * scales[i].weight_lr * (deeper ** (alpha - 1) if in_block else 1.0)
    opt = torch.optim.Adam([{"params": [p], "lr": rates[id(p)]} for p in model.parameters()])

    def forward(tokens: torch.Tensor) -> torch.Tensor:
        x = model.token_embedding(tokens) + model.position_embedding(torch.arange(tokens.shape[-1]))
        for block in model.blocks:
            x = x + m * block.attend(block.norm_attention(x))
            x = x + m * block.feed(block.norm_mlp(x))
        return model.head(model.norm_final(x))

    windows = streams.generator(0, "windows")
    losses = []
    for _ in range(s.optim.steps):
        x, y = lm.windows(splits.x_train, 16, 16, windows)
        loss = F.cross_entropy(forward(x).reshape(-1, model.shape.vocab), y.reshape(-1))
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.testing.assert_close(ours.losses[0], torch.tensor(losses), rtol=2e-4, atol=0)
