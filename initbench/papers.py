"""The papers' claims about initialization, judged on real data: six on images, four on a
text with the lab's gpt.

Each claim is a sweep config under ``configs/papers/``, whose ``[claim]`` table states the
claim, what differs from the paper's setup, and the criterion it is judged by, written
before any run (its thresholds are fields of the table, read here; its words are checked
against them by the tests). A measure turns the sweep's store into per-seed numbers and
judges each part of the criterion (a ``Test``) on the 95% interval of their mean:

- *holds* when the whole interval lies on the claim's side of the threshold, *fails* when
  it lies wholly on the other side, and is *inconclusive* otherwise: an interval that holds
  the threshold, one seed (no interval), or a measure that was capped (a time the run never
  reached, a best learning rate at the edge of its grid): a capped value never counts as
  evidence. Seeds that all give the same value (a network stuck at chance) give an
  interval of zero width, which is said as such: no spread, not certainty.
- A claim *reproduces* when every test holds, *does not reproduce* when any fails, and is
  *inconclusive* otherwise.

Divergence is a result and is named: a run whose loss became non-finite (the engine stops
it) or grew to a thousand times its first batches' (``blew_up``: an unnormalized residual
network's 1e10 is no training) counts as diverged in the verdicts and the pictures.

``reproduce`` runs one claim (it resumes, as any sweep); ``scripts/papers.py`` runs them all
and writes the README's rows and the pictures. A claim's ``smoke`` settings make a run of
seconds through the same machinery (the test suite's check), whose verdict means nothing.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from initbench import initializers
from initbench.analysis import stats
from initbench.jobs import JobResult
from initbench.storage import store
from initbench.views import pictures

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "papers"
VERDICTS = ("reproduces", "does not reproduce", "inconclusive")
BLOW_UP = 1000.0  # a loss this many times its first tenth of an epoch's: diverged
WINDOW = 0.1  # of an epoch: losses are averaged over windows this long (a time to a loss, a final loss)


@dataclass(frozen=True)
class Trained:
    """A sweep's jobs as a claim reads them: ``frame`` one row per job (the store's
    columns, ``depth`` and ``width`` of its hidden layers, ``blew_up``), ``results`` by key
    (losses per batch, layer statistics)."""

    frame: pd.DataFrame
    results: dict[str, JobResult]

    def where(self, **values: object) -> pd.DataFrame:
        rows = self.frame
        for column, value in values.items():
            rows = rows[rows[column] == value]
        return rows


# --- judging


@dataclass(frozen=True)
class Test:
    """One part of a claim's criterion, judged: what it asks, "holds", "fails" or
    "inconclusive", and the numbers it was judged on, in words."""

    asks: str
    result: str
    measured: str

    def __str__(self) -> str:
        return f"{self.asks}: {self.result} ({self.measured})"


def judged(asks: str, values: Sequence[float], side: str, threshold: float | tuple[float, float],
           shown: Callable[[float], str] = lambda v: f"{v:.3g}", capped: Sequence[bool] = (),
           why_capped: str = "") -> Test:
    """``values`` (one per seed) judged on the 95% t-interval of their mean: ``side`` "above"
    or "below" ``threshold``, or "within" a (low, high) range. ``capped``: which values are
    bounds, not measurements (``why_capped`` says how): any makes the test inconclusive."""
    values = [float(v) for v in values]
    n = len(values)
    if n == 0:
        return Test(asks, "inconclusive", "no seed measured it")
    p = stats.paired(values)
    if n == 1:
        numbers, low, high = f"{shown(p.mean)} (1 seed: no interval)", None, None
    elif p.low == p.high:
        numbers, low, high = f"all {n} seeds tied at {shown(p.mean)} (an interval of zero width: no spread, not " \
                             "certainty)", p.mean, p.high
    else:
        numbers, low, high = f"{shown(p.mean)} [95% CI {shown(p.low)}, {shown(p.high)}] over {n} seeds", p.low, p.high
    if any(capped):
        return Test(asks, "inconclusive", f"{numbers}; {sum(map(bool, capped))} of {n} {why_capped}: a bound, "
                                          "not a measurement")
    if low is None or high is None:
        return Test(asks, "inconclusive", numbers)
    if side == "within":
        a, b = threshold  # type: ignore[misc]
        result = "holds" if a < low and high < b else "fails" if high < a or low > b else "inconclusive"
    else:
        t = float(threshold)  # type: ignore[arg-type]
        on, off = (low > t, high < t) if side == "above" else (high < t, low > t)
        result = "holds" if on else "fails" if off else "inconclusive"
    return Test(asks, result, numbers)


def verdict(tests: Sequence[Test]) -> str:
    """reproduces (every test holds), does not reproduce (one fails), or inconclusive."""
    results = {t.result for t in tests}
    return "does not reproduce" if "fails" in results else "reproduces" if results == {"holds"} else "inconclusive"


@dataclass(frozen=True)
class Finding:
    """What a claim's sweep measured, and the verdict on its criterion."""

    measured: str  # per scheme (and cell), mean ± std over seeds, in words (divergence named)
    tests: tuple[Test, ...]
    criterion: str  # the config's words
    figure: Figure | None = None

    @property
    def verdict(self) -> str:
        """One of VERDICTS."""
        return verdict(self.tests)


@dataclass(frozen=True)
class Claim:
    name: str  # configs/papers/<name>.toml
    measure: Callable[[Trained, Mapping[str, Any]], Finding]  # (the sweep, the config's [claim] table)
    smoke: tuple[str, ...]  # --set values for a seconds-long run of the same machinery

    @property
    def config(self) -> Path:
        return CONFIGS / f"{self.name}.toml"

    @cached_property
    def statement(self) -> dict[str, Any]:
        """The config's [claim] table: paper, claim, setup (what differs from the paper's),
        criterion (in words), and the criterion's thresholds."""
        return tomllib.loads(self.config.read_text())["claim"]

    @property
    def paper(self) -> str:
        return self.statement["paper"]

    @property
    def claim(self) -> str:
        return self.statement["claim"]


def spread(values: Sequence[float] | pd.Series, digits: int = 3) -> str:
    """'0.812 ± 0.013' (mean ± std over seeds; the mean alone for one seed)."""
    values = np.asarray(values, dtype=float)
    mean = f"{values.mean():.{digits}g}"
    return mean if len(values) < 2 else f"{mean} ± {values.std(ddof=1):.2g}"


def windows(losses: np.ndarray) -> np.ndarray:
    """The training loss averaged over each window of WINDOW of an epoch, in order (NaN once
    the run diverged)."""
    window = max(1, round(losses.shape[1] * WINDOW))
    flat = losses.reshape(-1)
    usable = len(flat) // window * window
    return flat[:usable].reshape(-1, window).mean(axis=1)


def blew_up(losses: np.ndarray) -> bool:
    """Whether a run diverged: a non-finite loss (the engine stopped it there), or a window's
    loss BLOW_UP times its first window's or more."""
    means = windows(losses)
    return not np.isfinite(means).all() or bool(means.max() >= BLOW_UP * means[0])


def final_loss(losses: np.ndarray) -> float:
    """The training loss at the end: its mean over the last window (inf where it diverged)."""
    means = windows(losses)
    return float(means[-1]) if np.isfinite(means).all() else math.inf


def read(folder: Path) -> Trained:
    """A sweep folder's jobs (each scheme's current version: ``Store.versions``), with their
    losses and layer statistics, and whether each diverged (``blew_up``)."""
    with store.open_store(folder, write=False) as st:
        frame = st.versions()[0]
        results = dict(zip(frame["key"], st.results(list(frame["key"]))))
    frame = frame.assign(depth=[len(h) for h in frame["hidden"]], width=[h[0] for h in frame["hidden"]],
                         blew_up=[blew_up(results[k].losses.numpy()) for k in frame["key"]])
    return Trained(frame.drop(columns="scheme").rename(columns={"name": "scheme"}), results)  # as given


def reproduce(claim: Claim, out: Path, sets: Sequence[str] = (), progress: bool | None = False) -> Finding:
    """Run (or resume) ``claim``'s sweep into ``out`` and judge it."""
    from initbench import api

    api.sweep(claim.config, sets=sets, out=str(out), progress=progress)
    return claim.measure(read(out), claim.statement)


def _diverged(rows: pd.DataFrame) -> str:
    n = int(rows["blew_up"].sum())
    return "" if not n else f", {n} of {len(rows)} diverged"


def _labelled(trained: Trained, scheme: str) -> str:
    """A scheme as a picture's legend names it: with how many of its seeds diverged."""
    rows = trained.where(scheme=scheme)
    n = int(rows["blew_up"].sum())
    return scheme if not n else f"{scheme} ({n} of {len(rows)} seeds diverged)"


def _percent(v: float) -> str:
    return f"{v:.2f}%"


# --- 1. Glorot & Bengio 2010 -------------------------------------------------------------


def _per_layer(trained: Trained, scheme: str, column: str, downwards: bool) -> pd.Series:
    """Per seed, at init: the factor by which ``column`` changes from one hidden layer to the
    next, the geometric mean over the hidden layers (upwards: activations; downwards:
    back-propagated gradients, from the last hidden layer to the first)."""
    factors = {}
    for _, row in trained.where(scheme=scheme).iterrows():
        layers = pd.DataFrame(trained.results[row["key"]].layer_stats)
        hidden = layers[(layers["epoch"] == 0) & (layers["layer"] < layers["layer"].max())][column].to_numpy()
        first, last = (hidden[-1], hidden[0]) if downwards else (hidden[0], hidden[-1])
        factors[row["seed"]] = (last / first) ** (1 / (len(hidden) - 1))
    return pd.Series(factors)


def _glorot(trained: Trained, spec: Mapping[str, Any]) -> Finding:
    standard, normalized = spec["standard"], spec["normalized"]
    shrinks, keeps = spec["shrinks_below"], tuple(spec["keeps_within"])
    measures = {("act_std", False): ("the activations' std", "a layer up"),
                ("backprop_std", True): ("the back-propagated gradients' std", "a layer down")}
    tests, measured = [], []
    for (column, downwards), (quantity, direction) in measures.items():
        for scheme in (standard, normalized):
            factor = _per_layer(trained, scheme, column, downwards)
            measured.append(f"{scheme}: {quantity} x{spread(factor)} {direction}")
            if scheme == standard:
                tests.append(judged(f"under {scheme} {quantity} shrinks {direction}: factor below {shrinks:g}",
                                    factor, "below", shrinks))
            else:
                tests.append(judged(f"under {scheme} it keeps: factor within {keeps[0]:g} to {keeps[1]:g}", factor,
                                    "within", keeps))
    depth = int(trained.frame["depth"].iloc[0])
    stats_rows = pd.concat(
        [pd.DataFrame(trained.results[key].layer_stats).assign(scheme=scheme, seed=seed)
         for key, scheme, seed in trained.frame[["key", "scheme", "seed"]].itertuples(index=False)])
    figure = pictures.plot_layer_profile(
        stats_rows, None, f"tanh, {depth} hidden layers: at init (dashed) and after an epoch (solid)",
        columns=("act_std", "backprop_std"))
    return Finding(f"at init, per hidden layer (geometric mean of {depth - 1} steps): " + "; ".join(measured),
                   tuple(tests), spec["criterion"], figure)


# --- 2. Saxe, McClelland & Ganguli 2014 ------------------------------------------------------


def epochs_to_loss(losses: np.ndarray, threshold: float) -> float:
    """Epochs of training until the loss averaged over a window (``windows``) first falls
    under ``threshold``; inf if it never does (or the model diverged first)."""
    means = windows(losses)
    per_epoch = len(means) / losses.shape[0]
    for i, mean in enumerate(means):
        if not math.isfinite(mean):
            return math.inf
        if mean < threshold:
            return (i + 1) / per_epoch
    return math.inf


def best_lr(rows: pd.DataFrame, trained: Trained) -> tuple[float | None, str]:
    """The rule fixed in advance for a learning rate suited to a depth: of the grid's rates,
    the one whose final loss (``final_loss``), averaged over seeds, is lowest, among those at
    which no seed diverged; None where every rate diverged. And the rates left out, in words."""
    finals, out = {}, []
    for lr, at in rows.groupby("lr"):
        if at["blew_up"].any():
            out.append(f"{lr:g} ({int(at['blew_up'].sum())} of {len(at)} seeds diverged)")
            continue
        finals[lr] = np.mean([final_loss(trained.results[k].losses.numpy()) for k in at["key"]])
    return (min(finals, key=finals.get) if finals else None), ", ".join(out)


def _saxe(trained: Trained, spec: Mapping[str, Any]) -> Finding:
    orthogonal, gaussian, loss, most = spec["orthogonal"], spec["gaussian"], spec["loss"], spec["slowdown"]
    epochs_trained = int(trained.frame["epochs"].max())
    depths = sorted(trained.frame["depth"].unique())
    shallow, deep = depths[0], depths[-1]
    times: dict[tuple[str, int], pd.Series] = {}
    measured = []
    for scheme in (orthogonal, gaussian):
        parts = []
        for depth in depths:
            rows = trained.where(scheme=scheme, depth=depth)
            lr, dropped = best_lr(rows, trained)
            if lr is None:
                times[scheme, depth] = pd.Series(dtype=float)
                parts.append(f"depth {depth}: every rate diverged ({dropped})")
                continue
            at = rows[rows["lr"] == lr]
            times[scheme, depth] = pd.Series({seed: epochs_to_loss(trained.results[k].losses.numpy(), loss)
                                              for k, seed in zip(at["key"], at["seed"])})
            t = times[scheme, depth]
            reached = t[np.isfinite(t)]
            parts.append(f"depth {depth} at lr {lr:g}: " + (f"{spread(reached, 2)} epochs" if len(reached) else "")
                         + (f"{', ' if len(reached) else ''}{len(t) - len(reached)} of {len(t)} not within "
                            f"{epochs_trained}" if len(reached) < len(t) else "")
                         + (f"; diverged at {dropped}" if dropped else ""))
        measured.append(f"{scheme}: " + "; ".join(parts))

    def slowdown(scheme: str) -> tuple[pd.Series, list[bool]]:
        """Per seed: its time at the deepest depth over its time at the shallowest; capped where
        either was never reached (the ratio is then a bound)."""
        a, b = times[scheme, deep], times[scheme, shallow]
        common = a.index.intersection(b.index)
        ratio = pd.Series({s: min(a[s], epochs_trained) / min(b[s], epochs_trained) for s in common})
        return ratio, [not (math.isfinite(a[s]) and math.isfinite(b[s])) for s in common]

    why = f"never reached the loss within {epochs_trained} epochs at one depth (counted at {epochs_trained})"
    ortho_ratio, ortho_capped = slowdown(orthogonal)
    gauss_ratio, gauss_capped = slowdown(gaussian)
    common = ortho_ratio.index.intersection(gauss_ratio.index)
    tests = (
        judged(f"{orthogonal}'s time to a loss of {loss:g} grows less than {most:g} times from depth {shallow} to "
               f"{deep}", ortho_ratio, "below", most, lambda v: f"x{v:.2f}", ortho_capped, why),
        judged(f"{gaussian}'s grows more than {most:g} times", gauss_ratio, "above", most, lambda v: f"x{v:.2f}",
               gauss_capped, why),
        judged(f"{gaussian}'s grows more than {orthogonal}'s (difference of the factors)",
               (gauss_ratio[common] - ortho_ratio[common]).tolist(), "above", 0.0, lambda v: f"{v:+.2f}",
               [a or b for a, b in zip(gauss_capped, ortho_capped)], why))
    figure = pictures.plot_lines(
        {"": {s: {d: times[s, d].clip(upper=epochs_trained).tolist() for d in depths} for s in (orthogonal, gaussian)}},
        xlabel="Hidden layers (linear)", ylabel=f"Epochs to a training loss under {loss:g} ({epochs_trained}: never)",
        title="Deep linear nets, each depth's best rate")  # none diverged at it (the rule); at others, see measured
    return Finding(f"epochs until the training loss falls under {loss:g}, at each depth's best rate "
                   f"(lowest final loss, none diverged): " + " | ".join(measured), tests, spec["criterion"], figure)


# --- 3. He, Zhang, Ren & Sun 2015; 4. Fixup / SkipInit: accuracy after training ------------


def _loss_figure(trained: Trained, title: str) -> Figure:
    """Training loss averaged over each tenth of an epoch, a line per scheme (each seed a dot),
    diverged seeds named in the legend."""
    curves: dict[str, dict[float, list[float]]] = {}
    for key, scheme in trained.frame[["key", "scheme"]].itertuples(index=False):
        losses = trained.results[key].losses.numpy()
        means = windows(losses)
        for i, mean in enumerate(means):  # NaN once diverged: not drawn
            curves.setdefault(_labelled(trained, scheme), {}).setdefault((i + 1) * losses.shape[0] / len(means),
                                                                        []).append(float(mean))
    return pictures.plot_lines({"": curves}, xlabel="Epoch", ylabel="Training loss (mean of a tenth of an epoch)",
                               title=title, logy=True)


def _accuracy(trained: Trained, scheme: str) -> pd.Series:
    return trained.where(scheme=scheme).set_index("seed")["val_acc"] * 100


def _trains_and_stalls(trained: Trained, spec: Mapping[str, Any], title: str) -> Finding:
    """Schemes that train (accuracy above ``trains_above``) and schemes that stall (every seed
    diverged, or accuracy below ``stalls_below``), judged each on its own; every scheme the
    sweep trained is measured."""
    above, below = spec["trains_above"], spec["stalls_below"]
    schemes = list(dict.fromkeys(trained.frame["scheme"]))
    measured = "; ".join(f"{s}: {spread(_accuracy(trained, s))}%{_diverged(trained.where(scheme=s))}"
                         for s in schemes)
    tests = [judged(f"{s} trains: accuracy above {above:g}%", _accuracy(trained, s), "above", above, _percent)
             for s in spec["trains"]]
    for s in spec["stalls"]:
        rows = trained.where(scheme=s)
        asks = f"{s} stalls: diverged, or accuracy below {below:g}%"
        tests.append(Test(asks, "holds", f"all {len(rows)} seeds diverged") if rows["blew_up"].all() and len(rows)
                     else judged(asks, _accuracy(trained, s), "below", below, _percent))
    return Finding(f"validation accuracy: {measured}", tuple(tests), spec["criterion"], _loss_figure(trained, title))


def _he(trained: Trained, spec: Mapping[str, Any]) -> Finding:
    depth = int(trained.frame["depth"].iloc[0])
    return _trains_and_stalls(trained, spec, f"{depth} ReLU layers: training loss")


def _fixup(trained: Trained, spec: Mapping[str, Any]) -> Finding:
    blocks = int(trained.frame["depth"].iloc[0])
    return _trains_and_stalls(trained, spec, f"{blocks} residual blocks: training loss")


# --- 5. Yang et al. 2022: the best learning rate across widths ------------------------------


LOSS_AXIS_TOP = 10.0  # a transfer picture's loss axis: above it a rate only diverges (up to 1e32 at 32 blocks)
PARAMETRIZATION_NAMES = {"sp": "the standard parametrization", "mup": "μP", "depth-mup": "depth-μP",
                         "completep": "CompleteP"}


def _transfer(trained: Trained, spec: Mapping[str, Any]) -> Finding:
    """The best learning rate along ``spec["along"]`` (width, by default, or depth): per seed
    and size, the rate of the lowest final training loss, and the slope of log2(best rate)
    over log2(size); its absolute value's bootstrap interval lies below ``drift`` for each of
    ``spec["transfers"]`` (μP), above it for each of ``spec["shifts"]`` (sp)."""
    frame, along = trained.frame, spec.get("along", "width")
    sizes = sorted(frame[along].unique())
    rates = sorted(frame["lr"].unique())
    drift = spec["drift"]
    tests, panels, measured = [], {}, []
    for p, side in [*((p, "below") for p in spec.get("transfers", ["mup"])),
                    *((p, "above") for p in spec.get("shifts", ["sp"]))]:
        named = PARAMETRIZATION_NAMES[p]
        rows = frame[frame["parametrization"] == p]
        finals = rows.assign(final=[final_loss(trained.results[k].losses.numpy()) for k in rows["key"]])
        best = finals.sort_values("final").groupby(["seed", along])["lr"].first().unstack(along)
        edge = best.isin([rates[0], rates[-1]]).any(axis=1)  # the optimum may lie beyond the grid
        slopes = pd.Series({seed: abs(np.polyfit(np.log2(sizes), np.log2(best.loc[seed, sizes].astype(float)), 1)[0])
                            for seed in best.index})
        measured.append(f"{named}: best lr " + ", ".join(f"{spread(best[w], 2)} at {along} {w}" for w in sizes))
        low, high = stats.bootstrap_mean(slopes.tolist())
        asks = (f"under {named} the best lr drifts by less than a factor 2^{drift:g} per {along} doubling"
                if side == "below" else f"under {named} it drifts by more")
        tests.append(_bootstrapped(asks, slopes, low, high, side, drift, edge.tolist()))
        panels[named] = {f"{along} {w}": finals[finals[along] == w].groupby("lr")["final"].apply(list).to_dict()
                         for w in sizes}
    figure = pictures.plot_lines(panels, xlabel="Learning rate (Adam)", ylabel="Final training loss",
                                 title=f"The best learning rate as {along} grows", logx=True, logy=True,
                                 top=LOSS_AXIS_TOP)
    return Finding("; ".join(measured), tuple(tests), spec["criterion"], figure)


def _bootstrapped(asks: str, values: pd.Series, low: float, high: float, side: str, threshold: float,
                  capped: list[bool]) -> Test:
    """A test judged on a bootstrap interval of the mean (``stats.bootstrap_mean``)."""
    n, mean = len(values), float(values.mean())
    numbers = (f"all {n} seeds tied at {mean:.2f} (an interval of zero width: no spread, not certainty)"
               if low == high else f"{mean:.2f} [95% bootstrap CI {low:.2f}, {high:.2f}] over {n} seeds")
    if any(capped):
        return Test(asks, "inconclusive", f"{numbers}; {sum(capped)} of {n} seeds had a best lr at the grid's edge "
                                          "(the optimum may lie beyond it): a bound, not a measurement")
    on, off = (high < threshold, low > threshold) if side == "below" else (low > threshold, high < threshold)
    return Test(asks, "holds" if on else "fails" if off else "inconclusive", numbers)


# --- 6-9. Transformers on a text (the lab's gpt): validation loss and the first step ------


def _val_loss(trained: Trained, scheme: str, residual_scale: float | None = None) -> pd.Series:
    """Per seed, a scheme's validation loss in nats (the store's val_acc column holds a text's
    task metric), inf where the run diverged; at ``residual_scale`` where given (DeepNorm's alpha)."""
    rows = trained.where(scheme=scheme)
    if residual_scale is not None:
        rows = rows[np.isclose(rows["residual_scale"].astype(float), residual_scale)]
    return rows.set_index("seed")["val_acc"].where(~rows.set_index("seed")["blew_up"], math.inf).astype(float)


def _nats(v: float) -> str:
    return f"{v:+.3f} nats"


def _named_at(scheme: str, alphas: Mapping[str, float]) -> str:
    return scheme + (f" (alpha {alphas[scheme]:g})" if scheme in alphas else "")


def _lower_loss(trained: Trained, spec: Mapping[str, Any]) -> Finding:
    """Each of ``better`` against ``baseline``: the paired difference of validation loss
    (``better`` minus ``baseline``, seed by seed: the same windows) below 0. A run that
    diverged counts as an infinite loss: a diverged baseline against a finite loss is a seed
    the claim holds on, and the test is judged on the seeds where both are finite when any
    remain (the diverged named)."""
    alphas = dict(spec.get("residual_scale", {}))
    baseline = spec["baseline"]
    base = _val_loss(trained, baseline, alphas.get(baseline))
    measured = [f"{_named_at(s, alphas)}: {spread(v[np.isfinite(v)])} nats"
                + (f", {int((~np.isfinite(v)).sum())} of {len(v)} diverged" if not np.isfinite(v).all() else "")
                for s in (baseline, *spec["better"]) for v in [_val_loss(trained, s, alphas.get(s))]]
    tests = []
    for s in spec["better"]:
        v = _val_loss(trained, s, alphas.get(s))
        common = v.index.intersection(base.index)
        asks = f"{_named_at(s, alphas)}'s validation loss is lower than {_named_at(baseline, alphas)}'s (paired)"
        finite = [seed for seed in common if np.isfinite(v[seed]) and np.isfinite(base[seed])]
        if len(common) and not np.isfinite(base[common]).any() and np.isfinite(v[common]).all():
            tests.append(Test(asks, "holds", f"{baseline} diverged on all {len(common)} seeds, {s} on none"))
        else:
            tests.append(judged(asks, (v[finite] - base[finite]).tolist(), "below", 0.0, _nats))
    cells = [(s, alphas.get(s)) for s in (baseline, *spec["better"])]
    shown = [trained.where(scheme=s) if a is None else
             trained.where(scheme=s)[np.isclose(trained.where(scheme=s)["residual_scale"].astype(float), a)]
             for s, a in cells]  # each scheme in its cell: the curves of the pairs judged, no other cell's
    picked = pd.concat(shown).assign(scheme=[_named_at(s, alphas) for (s, _), rows in zip(cells, shown)
                                             for _ in range(len(rows))])
    return Finding("validation loss: " + "; ".join(measured), tuple(tests), spec["criterion"],
                   _loss_figure(Trained(picked, trained.results), spec["title"]))


def _step_zero(trained: Trained, spec: Mapping[str, Any]) -> Finding:
    """The loss of each start on its first batch, before any step, against ln V (the loss of
    an even guess over the V characters): within ``near`` nats of it for the schemes of
    ``uniform``, more than ``above`` nats over it for those of ``confident``."""
    vocab = len(trained.frame["classes"].iloc[0])
    chance = math.log(vocab)
    excess = {s: pd.Series({seed: float(trained.results[k].losses[0, 0]) - chance
                            for k, seed in trained.where(scheme=s)[["key", "seed"]].itertuples(index=False)})
              for s in dict.fromkeys(trained.frame["scheme"])}
    near, above = spec["near"], spec["above"]
    tests = [judged(f"{s} starts within {near:g} nats of ln {vocab}", excess[s], "within", (-near, near), _nats)
             for s in spec["uniform"]]
    tests += [judged(f"{s} starts more than {above:g} nats over ln {vocab}", excess[s], "above", above, _nats)
              for s in spec["confident"]]
    measured = "; ".join(f"{s}: {spread(v, 2)}" for s, v in excess.items())
    figure = pictures.plot_strip({s: v.tolist() for s, v in excess.items()},
                                 ylabel=f"Loss of the first batch - ln {vocab} (nats)",
                                 title="Each start's loss before any step, over chance", line=0.0)
    return Finding(f"loss at step 0 minus ln {vocab} = {chance:.3f}, in nats: {measured}", tuple(tests),
                   spec["criterion"], figure)


def _differs(trained: Trained, spec: Mapping[str, Any]) -> Finding:
    """The llm.c question: does ``other`` give another validation loss than ``baseline``?
    The paired difference over seeds, its 95% t-interval and the two-sided paired t-test's
    p-value: it holds that they differ when the interval excludes 0, fails never (an interval
    about 0 says only that this many seeds cannot tell them apart: inconclusive)."""
    from scipy.stats import ttest_rel

    baseline, other = spec["baseline"], spec["other"]
    a, b = _val_loss(trained, baseline), _val_loss(trained, other)
    common = [seed for seed in a.index.intersection(b.index) if np.isfinite(a[seed]) and np.isfinite(b[seed])]
    diff = (b[common] - a[common]).tolist()
    p = stats.paired(diff)
    p_value = float(ttest_rel(b[common], a[common]).pvalue) if len(common) > 1 else math.nan
    asks = f"{other}'s validation loss differs from {baseline}'s (paired)"
    if len(common) < 2:
        test = Test(asks, "inconclusive", f"{len(common)} seed(s) with both finite: no interval")
    else:
        numbers = (f"{_nats(p.mean)} [95% CI {_nats(p.low)}, {_nats(p.high)}], paired t-test p = {p_value:.3g}, "
                   f"over {len(common)} seeds")
        test = Test(asks, "holds" if p.low > 0 or p.high < 0 else "inconclusive", numbers)
    measured = f"validation loss: {baseline}: {spread(a, 4)} nats; {other}: {spread(b, 4)} nats"
    named = trained.frame.assign(scheme=[initializers.stem(s) for s in trained.frame["scheme"]])  # a file by its stem
    return Finding(measured, (test,), spec["criterion"], _loss_figure(Trained(named, trained.results), spec["title"]))


CLAIMS = {claim.name: claim for claim in (
    Claim("glorot-2010", _glorot, ("seeds=2", "train_samples=1000", "classes=5,6")),
    Claim("saxe-2014", _saxe, ("seeds=2", "train_samples=1000", "classes=5,6", "epochs=1",
                               "grid.hidden=['32x2', '32x4']", "grid.lr=[0.001, 0.01]")),
    Claim("he-2015", _he, ("seeds=2", "train_samples=1000", "classes=5,6", "hidden=32x4")),
    Claim("fixup-2019", _fixup, ("seeds=2", "train_samples=1000", "classes=5,6", "hidden=16x3")),
    Claim("mup-2022", _transfer, ("seeds=2", "train_samples=1000", "classes=5,6", "grid.hidden=['16x2', '64x2']",
                                  "grid.lr=[0.001, 0.004, 0.016]")),
    Claim("depth-2023", _transfer, ("seeds=2", "train_samples=1000", "classes=5,6", "grid.hidden=['16x2', '16x4']",
                                    "grid.lr=[0.001, 0.004, 0.016]")),
    Claim("gpt2-2019", _lower_loss, ("seeds=2", "hidden=32x2", "context=16", "steps=5", "epochs=1")),
    Claim("deepnet-2022", _lower_loss, ("seeds=2", "hidden=32x2", "context=16", "steps=5", "epochs=1")),
    Claim("step-zero", _step_zero, ("seeds=2", "hidden=32x2", "context=16")),
    Claim("llmc-2025", _differs, ("seeds=2", "hidden=32x2", "context=16", "steps=5", "epochs=1")),
)}
