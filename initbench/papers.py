"""Five papers' claims about initialization, checked on real data.

Each claim is a sweep config under ``configs/papers/`` and a measure that turns the
sweep's store into the claim's numbers: what initbench measured per scheme (mean ±
std over seeds), one paired difference over seeds (the same batches for every scheme
of a seed) with its 95% t-interval, and whether the claim holds at this scale, with
the criterion written in words. ``reproduce`` runs one (it resumes, as any sweep);
``scripts/papers.py`` runs them all and writes the README's rows and pictures.
A claim's ``smoke`` settings make a run of seconds through the same machinery (the
test suite's check), whose verdict means nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from initbench import pictures, stats, store
from initbench.jobs import JobResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "papers"


@dataclass(frozen=True)
class Trained:
    """A sweep's jobs as a claim reads them: ``frame`` one row per job (the store's
    columns, ``depth`` and ``width`` of its hidden layers), ``results`` by key (losses
    per batch, layer statistics)."""

    frame: pd.DataFrame
    results: dict[str, JobResult]

    def where(self, **values: object) -> pd.DataFrame:
        rows = self.frame
        for column, value in values.items():
            rows = rows[rows[column] == value]
        return rows


@dataclass(frozen=True)
class Finding:
    """What a claim's sweep measured, and whether the claim holds."""

    measured: str  # per scheme (and cell), mean ± std over seeds, in words
    difference: str  # what ``paired`` is the difference of
    paired: stats.Paired  # over seeds
    holds: bool
    why: str  # the criterion, and by how much it was met or missed
    figure: Figure | None = None

    @property
    def verdict(self) -> str:
        interval = ("" if math.isnan(self.paired.low) else
                    f" [95% CI {self.paired.low:+.3g}, {self.paired.high:+.3g}]")
        return (f"{'reproduces' if self.holds else 'does not reproduce at this scale'}: {self.difference} "
                f"{self.paired.mean:+.3g}{interval} over {stats_seeds(self.paired)}; {self.why}")


def stats_seeds(p: stats.Paired) -> str:
    return f"{p.seeds} seed{'s' * (p.seeds != 1)}"


@dataclass(frozen=True)
class Claim:
    name: str  # configs/papers/<name>.toml
    paper: str
    claim: str  # in one sentence
    measure: Callable[[Trained], Finding]
    smoke: tuple[str, ...]  # --set values for a seconds-long run of the same machinery

    @property
    def config(self) -> Path:
        return CONFIGS / f"{self.name}.toml"


def spread(values: Sequence[float] | pd.Series, digits: int = 3) -> str:
    """'0.812 ± 0.013' (mean ± std over seeds; the mean alone for one seed)."""
    values = np.asarray(values, dtype=float)
    mean = f"{values.mean():.{digits}g}"
    return mean if len(values) < 2 else f"{mean} ± {values.std(ddof=1):.2g}"


def paired_by_seed(a: pd.Series, b: pd.Series) -> stats.Paired:
    """a - b over the seeds both have (Series indexed by seed), finite differences only."""
    common = a.index.intersection(b.index)
    differences = [float(a[s] - b[s]) for s in common if math.isfinite(float(a[s] - b[s]))]
    return stats.paired(differences)


def read(folder: Path) -> Trained:
    """A sweep folder's jobs (each scheme's current version: ``Store.versions``), with their
    losses and layer statistics."""
    with store.open_store(folder, write=False) as st:
        frame = st.versions()[0]
        results = dict(zip(frame["key"], st.results(list(frame["key"]))))
    frame = frame.assign(depth=[len(h) for h in frame["hidden"]], width=[h[0] for h in frame["hidden"]])
    return Trained(frame.drop(columns="scheme").rename(columns={"name": "scheme"}), results)  # as given


def reproduce(claim: Claim, out: Path, sets: Sequence[str] = (), progress: bool | None = False) -> Finding:
    """Run (or resume) ``claim``'s sweep into ``out`` and measure it."""
    from initbench import api

    api.sweep(claim.config, sets=sets, out=str(out), progress=progress)
    return claim.measure(read(out))


# --- 1. Glorot & Bengio 2010 -------------------------------------------------------------


def _activation_ratio(trained: Trained, scheme: str, epoch: int) -> pd.Series:
    """Per seed: the last hidden layer's activation std over the first's, at ``epoch`` (0: init)."""
    ratios = {}
    for _, row in trained.where(scheme=scheme).iterrows():
        layers = pd.DataFrame(trained.results[row["key"]].layer_stats)
        hidden = layers[(layers["epoch"] == epoch) & (layers["layer"] < layers["layer"].max())]
        ratios[row["seed"]] = hidden["act_std"].iloc[-1] / hidden["act_std"].iloc[0]
    return pd.Series(ratios)


def _glorot(trained: Trained) -> Finding:
    standard, normalized = "rule", "xavier_uniform"
    at_init = {s: _activation_ratio(trained, s, 0) for s in (standard, normalized)}
    trained_once = {s: _activation_ratio(trained, s, 1) for s in (standard, normalized)}
    depth = int(trained.frame["depth"].iloc[0])
    measured = "; ".join(f"{s}: {spread(at_init[s])} at init, {spread(trained_once[s])} after an epoch"
                         for s in (standard, normalized))
    paired = paired_by_seed(at_init[normalized], at_init[standard])
    holds = at_init[standard].mean() < 0.5 <= at_init[normalized].mean() and paired.low > 0
    stats_rows = pd.concat(
        [pd.DataFrame(trained.results[key].layer_stats).assign(scheme=scheme, seed=seed)
         for key, scheme, seed in trained.frame[["key", "scheme", "seed"]].itertuples(index=False)])
    figure = pictures.plot_layer_profile(
        stats_rows, None, f"tanh, {depth} hidden layers: at init (dashed) and after an epoch (solid)")
    return Finding(
        f"std of layer {depth}'s activations over layer 1's: {measured}",
        f"{normalized} - {standard} (that ratio, at init)", paired, holds,
        "holds when the standard start's ratio is under 0.5 (shrinking) while the normalized start's is not, "
        "and the interval excludes 0", figure)


# --- 2. Saxe, McClelland & Ganguli 2014 ------------------------------------------------------

SAXE_LOSS = 0.6  # the training loss both starts reach at every depth (a linear model's is about 0.45)
SAXE_WINDOW = 0.1  # of an epoch: losses are averaged over windows this long before the threshold is looked for


def epochs_to_loss(losses: np.ndarray, threshold: float, window: int) -> float:
    """Epochs of training until the mean loss of a window of ``window`` batches first falls under
    ``threshold``; inf if it never does (or the model diverged first)."""
    flat = losses.reshape(-1)
    n_batches = losses.shape[1]
    for end in range(window, len(flat) + 1, window):
        part = flat[end - window:end]
        if not np.isfinite(part).all():
            return math.inf
        if part.mean() < threshold:
            return end / n_batches
    return math.inf


def _saxe_epochs(trained: Trained) -> pd.DataFrame:
    rows = []
    for key, scheme, seed, depth in trained.frame[["key", "scheme", "seed", "depth"]].itertuples(index=False):
        losses = trained.results[key].losses.numpy()
        window = max(1, round(losses.shape[1] * SAXE_WINDOW))
        rows.append({"scheme": scheme, "seed": seed, "depth": depth,
                     "epochs": epochs_to_loss(losses, SAXE_LOSS, window)})
    return pd.DataFrame(rows)


def _saxe(trained: Trained) -> Finding:
    orthogonal, gaussian = "orthogonal", "normal"
    epochs = _saxe_epochs(trained)
    most = int(trained.frame["epochs"].max())
    depths = sorted(epochs["depth"].unique())
    shallow, deep = depths[0], depths[-1]

    def series(scheme: str, depth: int) -> pd.Series:
        return epochs[(epochs["scheme"] == scheme) & (epochs["depth"] == depth)].set_index("seed")["epochs"]

    def shown(values: pd.Series) -> str:
        reached = values[np.isfinite(values)]
        missed = len(values) - len(reached)
        return (spread(reached, 2) if len(reached) else "") + (
            f"{', ' if len(reached) else ''}{missed} of {len(values)} not within {most}" if missed else "")

    measured = "; ".join(f"{s}: " + ", ".join(f"depth {d} {shown(series(s, d))}" for d in depths)
                         for s in (orthogonal, gaussian))
    # A start that never reaches the loss is counted at the epochs trained: its slowness is understated.
    capped = {s: series(s, deep).clip(upper=most) for s in (orthogonal, gaussian)}
    paired = paired_by_seed(capped[gaussian], capped[orthogonal])
    slowdown = {s: series(s, deep).clip(upper=most).mean() / series(s, shallow).clip(upper=most).mean()
                for s in (orthogonal, gaussian)}
    holds = slowdown[orthogonal] < 2 and slowdown[gaussian] > 2 * slowdown[orthogonal] and paired.low > 0
    figure = pictures.plot_lines(
        {"": {s: epochs[epochs["scheme"] == s].groupby("depth")["epochs"].apply(
            lambda v: v.clip(upper=most).tolist()).to_dict() for s in (orthogonal, gaussian)}},
        xlabel="Hidden layers (linear)", ylabel=f"Epochs to a training loss under {SAXE_LOSS:g} ({most}: never)",
        title="Deep linear networks: how long each start takes to learn")
    return Finding(
        f"epochs until the training loss falls under {SAXE_LOSS:g}: {measured}",
        f"{gaussian} - {orthogonal} (epochs, at depth {deep}, capped at {most})", paired, holds,
        f"holds when orthogonal's time grows less than 2 times from depth {shallow} to {deep} (measured "
        f"{slowdown[orthogonal]:.2f}x) and the Gaussian's grows more than twice as much ({slowdown[gaussian]:.2f}x), "
        "and the interval excludes 0", figure)


# --- 3. He, Zhang, Ren & Sun 2015; 4. Fixup / SkipInit: accuracy after training ------------


def _loss_figure(trained: Trained, title: str) -> Figure:
    """Training loss averaged over each tenth of an epoch, a line per scheme (each seed a dot)."""
    curves: dict[str, dict[float, list[float]]] = {}
    for key, scheme in trained.frame[["key", "scheme"]].itertuples(index=False):
        losses = trained.results[key].losses.numpy()
        window = max(1, losses.shape[1] // 10)
        flat = losses.reshape(-1)
        for end in range(window, len(flat) + 1, window):
            curves.setdefault(scheme, {}).setdefault(end / losses.shape[1], []).append(
                float(flat[end - window:end].mean()))  # NaN once diverged: not drawn
    return pictures.plot_lines({"": curves}, xlabel="Epoch", ylabel="Training loss (mean of a tenth of an epoch)",
                               title=title, logy=True)


def _accuracy(trained: Trained, scheme: str) -> pd.Series:
    return trained.where(scheme=scheme).set_index("seed")["val_acc"] * 100


def _diverged(trained: Trained, scheme: str) -> str:
    rows = trained.where(scheme=scheme)
    n = int(rows["diverged_at"].notna().sum())
    return f", {n} of {len(rows)} diverged" if n else ""


def _accuracy_claim(trained: Trained, better: Sequence[str], usual: str, title: str) -> Finding:
    schemes = list(dict.fromkeys(trained.frame["scheme"]))
    measured = "; ".join(f"{s}: {spread(_accuracy(trained, s))}%{_diverged(trained, s)}" for s in schemes)
    pairs = {s: paired_by_seed(_accuracy(trained, s), _accuracy(trained, usual)) for s in better}
    worst = min(pairs, key=lambda s: pairs[s].low if not math.isnan(pairs[s].low) else -math.inf)
    holds = all(p.low > 0 for p in pairs.values())
    others = "".join(f"; {s} - {usual}: {p.mean:+.3g} [{p.low:+.3g}, {p.high:+.3g}]"
                     for s, p in pairs.items() if s != worst)
    return Finding(f"validation accuracy: {measured}", f"{worst} - {usual} (points of accuracy)", pairs[worst],
                   holds, f"holds when every interval of {', '.join(better)} against {usual} is above 0{others}",
                   _loss_figure(trained, title))


def _he(trained: Trained) -> Finding:
    depth = int(trained.frame["depth"].iloc[0])
    return _accuracy_claim(trained, ["kaiming_normal"], "xavier_normal", f"{depth} ReLU layers: training loss")


def _fixup(trained: Trained) -> Finding:
    blocks = int(trained.frame["depth"].iloc[0])
    return _accuracy_claim(trained, ["fixup", "skipinit"], "kaiming_normal",
                           f"Residual MLP of {blocks} blocks, no normalization: training loss")


# --- 5. Yang et al. 2022: the best learning rate across widths ------------------------------


def _best_lr(rows: pd.DataFrame) -> pd.Series:
    """Per seed, the learning rate whose last epoch's training loss is lowest (diverged: inf)."""
    loss = rows["last_epoch_loss"].fillna(math.inf)
    return rows.assign(loss=loss).sort_values("loss").groupby("seed")["lr"].first()


def _mup(trained: Trained) -> Finding:
    frame = trained.frame
    widths = sorted(frame["width"].unique())
    narrow, wide = widths[0], widths[-1]
    shift, panels, measured = {}, {}, []
    for p in ("sp", "mup"):
        rows = frame[frame["parametrization"] == p]
        best = {w: _best_lr(rows[rows["width"] == w]) for w in widths}
        shift[p] = np.log2(best[wide]) - np.log2(best[narrow])
        measured.append(f"{p}: best lr " + ", ".join(
            f"{spread(best[w], 2)} at width {w}" for w in widths))
        panels["standard parametrization" if p == "sp" else "μP"] = {
            f"width {w}": rows[rows["width"] == w].groupby("lr")["last_epoch_loss"].apply(list).to_dict()
            for w in widths}
    paired = paired_by_seed(shift["sp"].abs(), shift["mup"].abs())
    holds = abs(shift["mup"].mean()) <= 1 < abs(shift["sp"].mean())
    figure = pictures.plot_lines(panels, xlabel="Learning rate (Adam)", ylabel="Last epoch's training loss",
                                 title="The best learning rate as width grows", logx=True, logy=True)
    return Finding(
        "; ".join(measured), f"|shift| under sp - |shift| under μP (log2 of the best lr, width {wide} vs {narrow})",
        paired, holds,
        f"holds when μP's best lr moves by at most a factor 2 from width {narrow} to {wide} (measured "
        f"{2 ** abs(shift['mup'].mean()):.2g}x) while the standard parametrization's moves more "
        f"({2 ** abs(shift['sp'].mean()):.2g}x)", figure)


CLAIMS = {claim.name: claim for claim in (
    Claim("glorot-2010", "Glorot & Bengio 2010",
          "With tanh and 5 hidden layers, the standard U[-1/√n, 1/√n] start shrinks activations from layer to "
          "layer; the normalized (Xavier) start keeps them.",
          _glorot, ("seeds=2", "train_samples=1000", "classes=5,6")),
    Claim("saxe-2014", "Saxe, McClelland & Ganguli 2014",
          "In deep linear networks, orthogonal starts learn in a number of epochs nearly independent of depth, "
          "while scaled Gaussian starts slow down with depth.",
          _saxe, ("seeds=2", "train_samples=1000", "classes=5,6", "epochs=1", "grid.hidden=['32x2', '32x4']")),
    Claim("he-2015", "He, Zhang, Ren & Sun 2015",
          "A 30-layer ReLU network trains from Kaiming's start and stalls from Xavier's.",
          _he, ("seeds=2", "train_samples=1000", "classes=5,6", "hidden=32x4")),
    Claim("fixup-2019", "Zhang, Dauphin & Ma 2019 (Fixup); De & Smith 2020 (SkipInit)",
          "A residual MLP of 50 blocks without normalization stalls or diverges from He's start at the usual "
          "learning rate, and trains from Fixup's and zero-branch starts.",
          _fixup, ("seeds=2", "train_samples=1000", "classes=5,6", "hidden=16x3")),
    Claim("mup-2022", "Yang et al. 2022 (μP)",
          "Under the standard parametrization the best learning rate shifts as width grows; under μP it stays put.",
          _mup, ("seeds=2", "train_samples=1000", "classes=5,6", "grid.hidden=['16x2', '64x2']",
                 "grid.lr=[0.001, 0.01]")),
)}
