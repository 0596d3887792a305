"""The best learning rate of a grid and its drift with width (analysis.rates), on numbers
made to have a known answer, and a sweep over widths and rates end to end."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from initbench import tasks
from initbench.analysis import rates

RATES = [2.0 ** -k for k in range(12, 4, -1)]  # 2^-12 ... 2^-5


def curve(best: float, lr: float, seed: int) -> float:
    """An accuracy peaked at ``best`` (a parabola in log2 lr), with a little noise per seed."""
    noise = np.random.default_rng(seed * 1000 + int(-math.log2(lr))).normal(0, 0.002)
    return 0.8 - 0.01 * (math.log2(lr) - math.log2(best)) ** 2 + noise


def grid(best_at: dict[int, float], seeds: int = 6) -> pd.DataFrame:
    return pd.DataFrame([{"width": w, "scheme": "rule", "seed": s, "lr": lr, "val_acc": curve(best, lr, s)}
                         for w, best in best_at.items() for s in range(seeds) for lr in RATES])


def test_the_best_rate_is_the_peak_and_its_interval_holds_it() -> None:
    found = rates.best_rates(grid({64: 2.0 ** -8}), tasks.CLASSIFICATION, ["width", "scheme"]).iloc[0]
    assert found["best_lr"] == 2.0 ** -8 and found["low"] <= found["best_lr"] <= found["high"]
    assert found["picked"] > 0.5 and found["seeds"] == 6 and found["rates"] == 8 and not found["edge"]
    edge = rates.best_rates(grid({64: 2.0 ** -3}), tasks.CLASSIFICATION, ["width"]).iloc[0]
    assert edge["best_lr"] == RATES[-1] and edge["edge"]


def test_a_rate_that_diverges_on_a_seed_is_not_picked() -> None:
    """A loss (lower better): the best rate's loss is NaN on one seed (it diverged), so it
    is the worst there, and the next rate is picked."""
    frame = grid({64: 2.0 ** -8}).assign(val_loss=lambda f: 1 - f["val_acc"])
    frame.loc[(frame["lr"] == 2.0 ** -8) & (frame["seed"] == 0), "val_loss"] = math.nan
    found = rates.best_rates(frame, tasks.NEXT_TOKEN, ["width"]).iloc[0]
    assert found["best_lr"] in (2.0 ** -9, 2.0 ** -7)


@pytest.mark.parametrize(("halving", "verdict"), [(True, "falls"), (False, "holds")])
def test_the_drift_per_width_doubling(halving: bool, verdict: str) -> None:
    """The best rate halving per width doubling is a slope of -1; a fixed one, 0."""
    frame = grid({w: 2.0 ** -6 * (64 / w if halving else 1) for w in (64, 128, 256, 512)})
    drift = rates.drift(frame, tasks.CLASSIFICATION, "width", ["scheme"]).iloc[0]
    assert drift["slope"] == pytest.approx(-1.0 if halving else 0.0)
    assert drift["low"] <= drift["slope"] <= drift["high"] and drift["verdict"] == verdict
    assert (drift["from"], drift["to"]) == (64, 512)


def test_a_sweep_over_widths_and_rates_tables_the_best_rate_and_its_drift(data_dir: Path, tmp_path: Path) -> None:
    """configs/lr-transfer.toml, cut down: each width's rates and seeds train as one population;
    the sweep writes best_lr.csv, lr_drift.csv and lr_curves.png, and prints the best rates."""
    import initbench as ib
    from initbench.config import resolve_sweep
    from initbench.training import engines

    from .conftest import ROOT

    sets = ["seeds=2", "train_samples=600", "grid.hidden=['16x2', '32x2']", "grid.lr=[0.002, 0.008, 0.032]",
            f"data_dir='{data_dir}'"]
    sweep = resolve_sweep(ROOT / "configs" / "lr-transfer.toml", sets)
    assert len(engines.plan(sweep.jobs(), "batched", lambda s: 1_000)) == 4  # 2 parametrizations x 2 widths
    found = ib.sweep(ROOT / "configs" / "lr-transfer.toml", sets=sets, out=tmp_path / "sweep", progress=False)
    best = pd.read_csv(tmp_path / "sweep" / rates.BEST_FILE)
    assert len(best) == 4 and set(best["best_lr"]) <= {0.002, 0.008, 0.032}
    drift = pd.read_csv(tmp_path / "sweep" / "lr_drift.csv")
    assert list(drift["parametrization"]) == ["sp", "mup"] and set(drift["along"]) == {"width"}
    assert (tmp_path / "sweep" / "lr_curves.png").stat().st_size > 10_000
    titles = [listing.title for listing in found.listings()]
    assert titles[1] == "Best learning rate by hidden sizes, parametrization and scheme"
    assert any("per doubling" in note for note in found.listings()[1].notes)
