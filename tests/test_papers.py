"""The papers' claims (initbench.papers, configs/papers/): each config runs through its
claim's measure on real data in seconds with its smoke settings. What is asserted is the
machinery (the numbers are there, finite, paired by seed, drawn), not the verdict, which
takes the full configs (scripts/papers.py)."""

import math
import tomllib
from pathlib import Path

import numpy as np
import pytest

from initbench import config, papers


@pytest.mark.parametrize("name", list(papers.CLAIMS))
def test_each_claim_runs_through_its_measure(name: str, tmp_path: Path, data_dir: Path) -> None:
    claim = papers.CLAIMS[name]
    finding = papers.reproduce(claim, tmp_path / name, (*claim.smoke, f"data_dir={data_dir}"))
    assert finding.paired.seeds == 2 and math.isfinite(finding.paired.mean)
    assert finding.measured and finding.verdict.startswith(("reproduces", "does not reproduce"))
    assert finding.figure is not None and any(ax.lines for ax in finding.figure.axes)
    # Resumed, nothing is trained again and the same numbers come out.
    again = papers.reproduce(claim, tmp_path / name, (*claim.smoke, f"data_dir={data_dir}"))
    assert again.paired == finding.paired


def test_every_config_is_a_sweep_of_its_claim() -> None:
    files = {path.stem for path in papers.CONFIGS.glob("*.toml")}
    assert files == set(papers.CLAIMS)
    for claim in papers.CLAIMS.values():
        sweep = config.resolve_sweep(claim.config, [], {}, Path("unused"))
        assert sweep.size() <= 400, claim.name  # minutes on 2 cores, not hours
        assert "seeds" in tomllib.loads(claim.config.read_text()), claim.name


def test_epochs_to_a_loss_is_the_first_window_under_it() -> None:
    losses = np.array([[2.0, 1.0, 0.8, 0.5], [0.4, 0.3, 0.3, 0.2]])  # 2 epochs of 4 batches
    assert papers.epochs_to_loss(losses, 0.7, 2) == 1.0  # windows: 1.5, 0.65
    assert papers.epochs_to_loss(losses, 0.3, 2) == 2.0  # 0.35, then 0.25
    assert papers.epochs_to_loss(losses, 0.1, 2) == math.inf
    diverged = losses.copy()
    diverged[0, 2:] = np.nan
    assert papers.epochs_to_loss(diverged, 0.3, 2) == math.inf
