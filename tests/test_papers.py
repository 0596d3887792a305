"""The papers' claims (initbench.papers, configs/papers/): each config runs through its
claim's measure on real data in seconds with its smoke settings. What is asserted is the
machinery (a verdict of three, each test judged on numbers that are there, the config's
criterion, divergence and capped measures named), not the verdict, which takes the full
configs (scripts/papers.py)."""

import math
import re
import tomllib
from pathlib import Path

import numpy as np
import pytest

from initbench import config, papers
from initbench.analysis import stats


@pytest.mark.parametrize("name", list(papers.CLAIMS))
def test_each_claim_runs_through_its_measure(name: str, tmp_path: Path, data_dir: Path) -> None:
    claim = papers.CLAIMS[name]
    finding = papers.reproduce(claim, tmp_path / name, (*claim.smoke, f"data_dir={data_dir}"))
    assert finding.verdict in papers.VERDICTS and finding.tests
    assert all(t.result in ("holds", "fails", "inconclusive") and t.measured for t in finding.tests)
    assert finding.criterion == claim.statement["criterion"] and finding.measured
    assert finding.figure is not None and any(ax.lines for ax in finding.figure.axes)
    # Resumed, nothing is trained again and the same numbers come out.
    again = papers.reproduce(claim, tmp_path / name, (*claim.smoke, f"data_dir={data_dir}"))
    assert again.tests == finding.tests


def test_every_config_is_a_sweep_of_its_claim_and_states_its_criterion() -> None:
    """Each config sweeps (its [claim] table left aside), at 10 seeds, and its criterion's words
    name every threshold the measure reads from the table."""
    files = {path.stem for path in papers.CONFIGS.glob("*.toml")}
    assert files == set(papers.CLAIMS)
    for claim in papers.CLAIMS.values():
        sweep = config.resolve_sweep(claim.config, [], {}, Path("unused"))
        # Minutes on 2 cores, not hours: an lr grid's rates train as one population, so a grid over rates
        # counts a population per other cell (mup-2022: 12 populations of 130 models).
        populations = sweep.size() / math.prod(len(v) for k, v in sweep.grid if k == "lr")
        assert populations <= 700, claim.name
        assert tomllib.loads(claim.config.read_text())["seeds"] == 10, claim.name
        statement = claim.statement
        assert {"paper", "claim", "setup", "criterion"} <= set(statement), claim.name
        words = statement["criterion"]
        numbers = [v for k, v in statement.items() if isinstance(v, (int, float)) and k not in ("paper",)]
        numbers += [x for v in statement.values() if isinstance(v, list) for x in v if isinstance(x, (int, float))]
        for number in numbers:
            assert re.search(rf"(?<![\d.]){number:g}(?![\d])", words), (claim.name, number)
        names = [v for k, v in statement.items() if isinstance(v, str) and k in (
            "standard", "normalized", "orthogonal", "gaussian")]
        names += [x for k in ("trains", "stalls") for x in statement.get(k, [])]
        assert all(n in words for n in names), claim.name
        assert set(names) <= set(sweep.run.schemes), claim.name


def test_a_capped_measure_is_inconclusive_and_says_so(tmp_path: Path, data_dir: Path) -> None:
    """Saxe's time to a loss, after a single step: never reached at any depth, so every time is
    a bound (the epochs trained), and no test may count it as evidence."""
    claim = papers.CLAIMS["saxe-2014"]
    finding = papers.reproduce(claim, tmp_path / "saxe", (*claim.smoke, "train_samples=100", "epochs=1",
                                                          f"data_dir={data_dir}"))
    assert finding.verdict == "inconclusive"
    assert all(t.result == "inconclusive" and "a bound, not a measurement" in t.measured for t in finding.tests)
    assert "2 of 2 not within 1" in finding.measured


def test_divergence_is_named_in_the_verdict_and_the_picture(tmp_path: Path, data_dir: Path) -> None:
    """Fixup's claim at a learning rate far too high: He's start blows up on every seed, which
    counts as its stalling, in words, and the picture's legend says so."""
    claim = papers.CLAIMS["fixup-2019"]
    finding = papers.reproduce(claim, tmp_path / "fixup", (*claim.smoke, "lr=10", f"data_dir={data_dir}"))
    [stalled] = [t for t in finding.tests if t.asks.startswith("kaiming_normal stalls")]
    assert stalled.result == "holds" and stalled.measured == "all 2 seeds diverged"
    assert "kaiming_normal: 0 ± 0%, 2 of 2 diverged" in finding.measured
    labels = [text.get_text() for ax in finding.figure.axes for legend in [ax.get_legend()] if legend
              for text in legend.get_texts()] + [text.get_text() for legend in finding.figure.legends
                                                 for text in legend.get_texts()]
    assert "kaiming_normal (2 of 2 seeds diverged)" in labels


def test_a_test_holds_fails_or_is_inconclusive_on_its_interval() -> None:
    assert papers.judged("x", [0.5, 0.6, 0.55], "below", 0.8).result == "holds"
    assert papers.judged("x", [0.9, 0.95, 0.92], "below", 0.8).result == "fails"
    assert papers.judged("x", [0.5, 1.1], "below", 0.8).result == "inconclusive"  # the interval holds 0.8
    assert papers.judged("x", [0.9, 1.0, 0.95], "within", (0.8, 1.25)).result == "holds"
    assert papers.judged("x", [0.5, 0.55, 0.6], "within", (0.8, 1.25)).result == "fails"
    assert papers.judged("x", [0.5], "below", 0.8).result == "inconclusive"  # one seed: no interval
    tied = papers.judged("x", [9.98, 9.98, 9.98], "below", 15.0, papers._percent)
    assert tied.result == "holds" and "all 3 seeds tied at 9.98%" in tied.measured and "zero width" in tied.measured
    capped = papers.judged("x", [1.0, 4.0], "above", 2.0, capped=[False, True], why_capped="never reached")
    assert capped.result == "inconclusive" and "1 of 2 never reached: a bound" in capped.measured
    tests = [papers.Test("a", "holds", ""), papers.Test("b", "inconclusive", "")]
    assert papers.verdict(tests) == "inconclusive"
    assert papers.verdict([*tests, papers.Test("c", "fails", "")]) == "does not reproduce"
    assert papers.verdict(tests[:1]) == "reproduces"


def test_divergence_and_times_are_read_from_windows_of_the_loss() -> None:
    losses = np.array([[2.0] * 10 + [1.0] * 10, [0.5] * 20])  # 2 epochs of 20 batches: windows of 2 batches
    assert papers.epochs_to_loss(losses, 0.7) == 1.1  # the first window of the second epoch
    assert papers.epochs_to_loss(losses, 0.1) == math.inf
    assert not papers.blew_up(losses) and papers.final_loss(losses) == 0.5
    grows = losses.copy()
    grows[1, :] = 2_000.0  # a thousand times the first window's loss
    assert papers.blew_up(grows)
    diverged = losses.copy()
    diverged[1, 4:] = np.nan
    assert papers.blew_up(diverged) and papers.final_loss(diverged) == math.inf
    assert papers.epochs_to_loss(diverged, 0.3) == math.inf


def test_the_bootstrap_interval_is_reproducible_and_holds_the_mean() -> None:
    values = [0.1, 0.9, 0.4, 0.6]
    low, high = stats.bootstrap_mean(values)
    assert (low, high) == stats.bootstrap_mean(values) and low < np.mean(values) < high
    assert stats.bootstrap_mean([0.3, 0.3]) == (0.3, 0.3)
