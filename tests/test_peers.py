"""bench's peers (initbench/bench/peers.py): they start from the weights initbench's engines
start from, see the same batches, and really train."""

import pytest
import torch

from initbench.bench import peers
from initbench.jobs import Job
from initbench.settings import TrainSettings
from initbench.training import engines
from initbench.training.streams import initial_model

DEVICES = [pytest.param(torch.device("cpu"), id="cpu"),
           pytest.param(torch.device("cuda"), id="cuda",
                        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here"))]
PEERS = [pytest.param(peers.vmap_ensemble, id="vmap"), pytest.param(peers.module_loop, id="module_loop")]
SETTINGS = TrainSettings.of(epochs=1, train_samples=2000)  # the ``small`` fixture's data: 20 batches of 100


@pytest.mark.parametrize("peer", PEERS)
@pytest.mark.parametrize("device", DEVICES)
def test_peer_starts_from_initbench_weights_and_trains(small, peer, device: torch.device) -> None:
    # Two seeds (two batch orders), and one job twice: the same start and batches, other dropout masks.
    jobs = [Job("rule", 0, SETTINGS), Job("default", 1, SETTINGS), Job("rule", 0, SETTINGS)]
    train = peer(jobs, small.to(device), device)
    start = train.state()
    for i, job in enumerate(jobs):
        for key, value in initial_model(job, small.x_train).state_dict().items():
            assert torch.equal(start[key][i].cpu(), value), (job, key)
    accuracies = train()
    assert len(accuracies) == len(jobs) and min(accuracies) > 0.4, accuracies  # chance: 0.1; about 0.55 measured
    after = train.state()
    # Each model draws its own dropout masks (vmap: randomness="different"), so the twins part.
    assert not torch.equal(after["layers.0.weight"][0], after["layers.0.weight"][2])


@pytest.mark.parametrize("device", DEVICES)
def test_without_dropout_peers_train_what_the_sequential_engine_trains(small, device: torch.device) -> None:
    """Dropout is the one thing a peer draws its own way: without it, a peer's models are the
    engines' (the same start, batches and Adam), to rounding."""
    settings = SETTINGS.replace(dropout=0.0)
    jobs = [Job("rule", 0, settings), Job("default", 1, settings)]
    splits = small.to(device)
    reference = [r.val_acc[0] for r in engines.train(jobs, splits, device, "sequential")]
    for peer in (peers.vmap_ensemble, peers.module_loop):
        assert peer(jobs, splits, device)() == pytest.approx(reference, abs=2e-3), peer.__name__  # 24 images
