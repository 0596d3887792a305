"""The pictures as a reader sees them, drawn from small hand-made frames and tensors
(no training)."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from initbench.tasks import CLASSIFICATION
from initbench.views import pictures


def losses_frame(schemes: list[str], seeds: int = 1, epochs: int = 1, batches: int = 30,
                 start: float = 2.3, end: float = 0.5) -> pd.DataFrame:
    """Every scheme's loss falling from ``start`` to ``end`` over the run (``zeros`` stays at
    chance), a little apart from seed to seed."""
    rows = []
    for scheme in schemes:
        for seed in range(seeds):
            losses = np.geomspace(start, end, epochs * batches) * (1 + 0.02 * seed)
            if scheme == "zeros":
                losses = np.full_like(losses, math.log(10))
            rows += [{"scheme": scheme, "seed": seed, "epoch": step // batches + 1, "batch": step % batches + 1,
                      "loss": loss} for step, loss in enumerate(losses)]
    return pd.DataFrame(rows)


def lines(fig) -> dict:
    """The loss picture's curves by legend label."""
    return {line.get_label(): line for line in fig.axes[0].get_lines() if not line.get_label().startswith("_")}


def labels(ticks) -> list[str]:
    return [t.get_text() for t in ticks if t.get_text()]


def test_a_scheme_keeps_its_colour_whatever_else_is_drawn(tmp_path: Path) -> None:
    alone = lines(pictures.plot_losses(losses_frame(["rule"]), tmp_path / "a.png", 100, None, 10, CLASSIFICATION))
    among = lines(pictures.plot_losses(losses_frame(["zeros", "ones", "rule"]), tmp_path / "b.png", 100,
                                       None, 10, CLASSIFICATION))
    reversed_ = lines(pictures.plot_losses(losses_frame(["rule", "ones", "zeros"]), tmp_path / "c.png", None,
                                           None, 10, CLASSIFICATION))
    assert alone["rule"].get_color() == among["rule"].get_color() == reversed_["rule"].get_color()
    assert among["zeros"].get_color() == reversed_["zeros"].get_color() != among["rule"].get_color()
    assert pictures.colour("HeNormal") == pictures.colour("he_normal")  # an alias is its scheme
    assert pictures.colour("uniform:-0.1,0.1") == pictures.colour("uniform")
    assert len({pictures.colour(s) for s in ("zeros", "ones", "uniform", "rule", "normal", "default")}) == 6
    assert pictures.colour("not_a_scheme") == pictures.colour("not_a_scheme") in pictures.PALETTE


def test_two_variants_of_one_scheme_share_its_colour_but_not_its_line(tmp_path: Path) -> None:
    names = ["xavier_normal:1", "xavier_normal:2", "rule"]
    first = lines(pictures.plot_losses(losses_frame(names), tmp_path / "a.png", 100, None, 10, CLASSIFICATION))
    again = lines(pictures.plot_losses(losses_frame(names[::-1]), tmp_path / "b.png", 100, None, 10, CLASSIFICATION))
    one, two = first["xavier_normal:1"], first["xavier_normal:2"]
    assert one.get_color() == two.get_color() and one.get_linestyle() != two.get_linestyle()
    assert all(first[n].get_linestyle() == again[n].get_linestyle() for n in names)


@pytest.mark.parametrize("epochs,batches,first,title", [
    (1, 30, 100, "Training loss over all 30 batches (1 epoch)"),
    (2, 60, 100, "Training loss over the first 100 batches"),
    (1, 30, None, "Training loss over 1 epoch (30 batches, log scale)"),
    (2, 60, None, "Training loss over 2 epochs (120 batches, log scale)"),
])
def test_the_title_names_what_is_drawn(tmp_path: Path, epochs: int, batches: int, first: int | None,
                                       title: str) -> None:
    fig = pictures.plot_losses(losses_frame(["rule"], epochs=epochs, batches=batches), tmp_path / "l.png", first,
                               None, 10, CLASSIFICATION)
    assert fig.axes[0].get_title() == title


@pytest.mark.parametrize("first", [100, None])
def test_chance_is_marked_where_zeros_sits(tmp_path: Path, first: int | None) -> None:
    fig = pictures.plot_losses(losses_frame(["zeros", "rule"]), tmp_path / "l.png", first, None, 10, CLASSIFICATION)
    ax = fig.axes[0]
    flat = [line for line in ax.get_lines() if len(set(line.get_ydata())) == 1 and line.get_label().startswith("_")]
    assert [line.get_ydata()[0] for line in flat] == [pytest.approx(math.log(10))]
    assert any("chance: ln 10 = 2.303" in t.get_text() for t in ax.texts)


def test_the_band_is_explained_only_when_there_is_one(tmp_path: Path) -> None:
    fig = pictures.plot_losses(losses_frame(["rule", "normal"], seeds=3), tmp_path / "a.png", 100,
                               None, 10, CLASSIFICATION)
    legend = fig.axes[0].get_legend()
    assert legend.get_title().get_text() == "line: mean over 3 seeds\nband: min to max"
    assert len(fig.axes[0].collections) == 2  # one band per scheme
    fig = pictures.plot_losses(losses_frame(["rule", "normal"]), tmp_path / "b.png", 100, None, 10, CLASSIFICATION)
    assert fig.axes[0].get_legend().get_title().get_text() == "" and not fig.axes[0].collections


def test_a_log_axis_under_a_decade_keeps_its_labels(tmp_path: Path) -> None:
    fig = pictures.plot_losses(losses_frame(["rule"], start=0.9, end=0.3), tmp_path / "l.png", None,
                               None, 10, CLASSIFICATION)
    assert len(labels(fig.axes[0].get_yticklabels(which="both"))) >= 3


def visible(ax, line) -> bool:
    """Whether any finite point of ``line`` lies within its axes' view."""
    (x0, x1), (y0, y1) = sorted(ax.get_xlim()), sorted(ax.get_ylim())
    x, y = np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)
    return bool(np.any(np.isfinite(y) & (x0 <= x) & (x <= x1) & (y0 <= y) & (y <= y1)))


def drawn(fig) -> dict[str, bool]:
    """Per label of a curve in any panel, whether it is seen in one of them."""
    seen: dict[str, bool] = {}
    for ax in fig.axes:
        for line in ax.get_lines():
            if not line.get_label().startswith("_"):
                seen[line.get_label()] = seen.get(line.get_label(), False) or visible(ax, line)
    return seen


def lesson_losses() -> pd.DataFrame:
    """The lesson's seven schemes as they behave: ones and uniform in the thousands, centered
    in the tens (never down to the others' scale), rule and default on top of each other."""
    return pd.concat([losses_frame(["zeros", "rule", "normal"]), losses_frame(["default"]),
                      losses_frame(["ones"], start=2.3, end=5000), losses_frame(["uniform"], start=7e4, end=3e4),
                      losses_frame(["centered"], start=54, end=7)])


def test_a_scheme_that_stays_off_the_axis_is_drawn_above_with_its_peak(tmp_path: Path) -> None:
    losses = pd.concat([losses_frame(["rule"]), losses_frame(["ones"], start=2.3, end=5000)])
    fig = pictures.plot_losses(losses, tmp_path / "l.png", 100, None, 10, CLASSIFICATION)
    assert "ones (peak 5,000, above)" in lines(fig)
    main, above = fig.axes
    assert main.get_ylim()[1] < 3 and above.get_yscale() == "log"  # the linear axis keeps the lesson's view
    assert [line.get_label() for line in above.get_lines()] == ["ones (peak 5,000, above)"]
    assert drawn(fig) == {"rule": True, "ones (peak 5,000, above)": True}


@pytest.mark.parametrize("first", [100, None])
def test_every_scheme_named_is_drawn_where_it_can_be_seen(tmp_path: Path, first: int | None) -> None:
    """centered never comes down to the others' scale: it used to be off the picture, unsaid."""
    fig = pictures.plot_losses(lesson_losses(), tmp_path / "l.png", first, None, 10, CLASSIFICATION)
    seen = drawn(fig)
    for scheme in ("zeros", "ones", "uniform", "rule", "normal", "default", "centered"):
        assert [label for label, shown in seen.items() if label.split(" ")[0] == scheme and shown], (scheme, seen)


def test_curves_that_overlap_stay_visible(tmp_path: Path) -> None:
    """rule and default train alike: their curves differ by line and marker, the broken one over
    the solid one, and their markers at other batches."""
    fig = pictures.plot_losses(lesson_losses(), tmp_path / "l.png", 100, None, 10, CLASSIFICATION)
    rule, default = lines(fig)["rule"], lines(fig)["default"]
    assert rule.get_linestyle() == "-" and default.get_linestyle() == "--" and default.get_zorder() > rule.get_zorder()
    assert rule.get_marker() != default.get_marker() and rule.get_markevery() != default.get_markevery()
    assert rule.get_linewidth() > default.get_linewidth()  # drawn first, underneath: wider


def test_schemes_drawn_together_have_colours_apart() -> None:
    """tab10 and black only (no navy beside black, no lilac beside navy), a colour each for
    the schemes compared together, and every known scheme's look its own."""
    groups = [["zeros", "ones", "uniform", "rule", "normal", "default", "centered"],
              ["rule", "default", "xavier_normal", "kaiming_normal", "lsuv", "orthogonal"],
              ["glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform", "lecun_normal"],
              ["kaiming_normal", "default", "fixup", "skipinit"]]
    for group in groups:
        style = pictures.styles(group)
        assert len({style[s].color for s in group}) == len(group), group
        assert {style[s].color for s in group} <= set(pictures.PALETTE)
    assert len(set(pictures.STYLES.values())) == len(pictures.STYLES)
    # A name the table does not know takes a colour the picture's schemes leave free.
    starts = pictures.styles(["rule", "pretrained, fine-tuned", "pretrained, frozen 1 epoch"])
    assert len({look.color for look in starts.values()}) == 3 and starts["rule"].dash == "-"


def tick_texts(fig, axis) -> list[str]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    low, high = sorted(axis.get_view_interval())
    return [t.get_text() for t in axis.get_ticklabels(which="both")
            if t.get_text() and low <= t.get_position()[1] <= high]


@pytest.mark.parametrize(("start", "end", "notation"), [(7e4, 0.5, False), (3e8, 1e-6, True)])
def test_a_log_axis_labels_its_ticks_in_one_format(tmp_path: Path, start: float, end: float, notation: bool) -> None:
    """loss_full.png read 1e5 beside 10000: one format for a whole axis, powers of ten in
    e-notation only when the axis needs them."""
    fig = pictures.plot_losses(losses_frame(["rule"], start=start, end=end), tmp_path / "l.png", None,
                               None, 10, CLASSIFICATION)
    texts = tick_texts(fig, fig.axes[0].yaxis)
    assert len(texts) >= 3 and all(("e" in t) == notation for t in texts), texts
    if not notation:
        assert "10,000" in texts


def cells_frame(setting: str, values: list[str], schemes: tuple[str, ...] = ("rule", "default", "lsuv"),
                ) -> pd.DataFrame:
    """A sweep's cells.csv as sweep.cells_frame makes it: per value and scheme, two seeds."""
    rows = [{setting: v, "scheme": s, "seeds": 2, "val_acc_mean": 0.5 + 0.05 * i + 0.01 * j, "val_acc_std": 0.02,
             "verdict": "the baseline" if s == schemes[0] else "worse", "chance": 0.1}
            for i, v in enumerate(values) for j, s in enumerate(schemes)]
    return pd.DataFrame(rows)


def test_categories_are_points_and_numbers_are_lines(tmp_path: Path) -> None:
    """Nothing lies between relu and tanh: no line joins them; learning rates lie on a line."""
    by_activation = pictures.plot_sweep_lines(cells_frame("activation", ["relu", "tanh", "sigmoid"]), "activation",
                                              ["activation"], tmp_path / "a.png", CLASSIFICATION)
    ax = by_activation.axes[0]
    assert len(ax.containers) == 3  # an error bar per scheme
    assert all(line.get_linestyle() == "None" for line in ax.get_lines() if len(line.get_xdata()) > 2)
    xs = sorted(x for line in ax.get_lines() if line.get_marker() not in ("", "None", None) for x in line.get_xdata())
    assert len(set(np.round(xs, 6))) == 9  # the schemes side by side in each category
    by_lr = pictures.plot_sweep_lines(cells_frame("lr", ["0.001", "0.01", "0.1"]), "lr", ["lr"], tmp_path / "b.png",
                                      CLASSIFICATION)
    assert {line.get_linestyle() for line in by_lr.axes[0].get_lines() if len(line.get_xdata()) == 3} >= {"-", "--"}


def test_a_sweep_of_one_cell_gets_a_chart_that_reads(tmp_path: Path) -> None:
    """One cell is no grid: a point per scheme on an accuracy axis, best at the top."""
    cells = cells_frame("activation", ["relu"], ("rule", "default", "lsuv", "xavier_normal"))
    fig = pictures.plot_sweep_heatmap(cells.drop(columns="activation"), [], tmp_path / "h.png", CLASSIFICATION)
    ax = fig.axes[0]
    assert not ax.images and len(ax.containers) == 4
    assert labels(ax.get_yticklabels())[-1] == "xavier_normal"  # the best, at the top
    grid = pictures.plot_sweep_heatmap(cells_frame("activation", ["relu", "tanh"]), ["activation"],
                                       tmp_path / "g.png", CLASSIFICATION)
    assert grid.axes[0].images  # two cells: the heatmap


def test_a_diverged_scheme_is_named_and_its_few_points_seen(tmp_path: Path) -> None:
    losses = pd.DataFrame({"scheme": ["rule", "rule"], "seed": 0, "epoch": 1, "batch": [1, 2], "loss": [2.3, np.nan]})
    fig = pictures.plot_losses(losses, tmp_path / "l.png", 100, None, 10, CLASSIFICATION)
    assert fig.axes[0].get_title() == "Training loss over the first 2 batches"  # not "all": the run was cut short
    assert lines(fig)["rule (diverged at batch 2)"].get_marker() == "o"


def stats_frame(schemes: dict[str, float], seeds: int = 1, epochs: list[int] | None = None) -> pd.DataFrame:
    """Three layers per scheme, each statistic ``scale`` times the layer number."""
    rows = [{"scheme": scheme, "seed": seed, "layer": layer, "act_std": scale * layer, "grad_norm": scale / layer}
            for scheme, scale in schemes.items() for seed in range(seeds) for layer in (1, 2, 3)]
    frame = pd.DataFrame(rows)
    if epochs is None:
        return frame.drop(columns="seed")  # as inspect writes it
    return pd.concat([frame.assign(epoch=e) for e in epochs], ignore_index=True)


def test_a_layer_profile_with_a_zero_wastes_no_decade_and_says_where_0_is(tmp_path: Path) -> None:
    fig = pictures.plot_layer_profile(stats_frame({"zeros": 0.0, "rule": 0.05, "ones": 100.0}), tmp_path / "p.png",
                                      "At init")
    for ax in fig.axes:
        assert ax.get_yscale() == "symlog" and "0 at the bottom" in ax.get_ylabel()
        linthresh = ax.yaxis.get_transform().linthresh
        smallest = min(y for line in ax.get_lines() for y in line.get_ydata() if y > 0)
        assert smallest / 4 < linthresh < smallest  # no decade drawn empty
        assert labels(ax.get_xticklabels())[-1] == "3\n(logits)"
        assert ax.get_legend() is None  # the legend is beside the panels, not over the lines
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["zeros", "rule", "ones"]
    assert fig.legends[0].get_title().get_text() == ""  # one seed: no mean to mention


def test_a_layer_profile_without_a_zero_is_plain_log_and_names_its_means(tmp_path: Path) -> None:
    stats = stats_frame({"xavier_normal:1": 0.3, "xavier_normal:2": 0.6}, seeds=2, epochs=[0, 1, 2])
    fig = pictures.plot_layer_profile(stats, tmp_path / "p.png", "Per layer")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and "0" not in ax.get_ylabel()
    assert len(labels(ax.get_yticklabels(which="both"))) >= 3  # 0.3 to 1.8: under a decade
    legend = fig.legends[0]
    assert legend.get_title().get_text() == "lines: means over 2 seeds"
    assert [t.get_text() for t in legend.get_texts()][-2:] == ["at init", "after epoch 2"]
    markers = {line.get_marker() for line in legend.get_lines()[:2]}
    assert len(markers) == 2  # the two variants differ by more than their shared colour


def test_a_layer_profile_names_what_overflowed_instead_of_drawing_it(tmp_path: Path) -> None:
    stats = stats_frame({"rule": 0.05, "constant:3e38": math.inf})
    fig = pictures.plot_layer_profile(stats, tmp_path / "p.png", "At init")
    assert (tmp_path / "p.png").read_bytes().startswith(b"\x89PNG")
    assert "constant:3e38 (non-finite, not drawn: layers 1, 2, 3)" in [t.get_text() for t in fig.legends[0].get_texts()]


def weights(**layers: float | list) -> dict[str, list[torch.Tensor]]:
    """Per scheme, three layers: a constant, or a tensor given by hand."""
    shapes = ((16, 32), (8, 16), (4, 8))
    return {name: [torch.full(shape, value) if isinstance(value, float) else value[i] for i, shape in enumerate(shapes)]
            for name, value in layers.items()}


def overlapping(fig, ticks) -> bool:
    """Whether any two of the labels, as drawn, overlap."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()  # a closed figure has lost its canvas
    boxes = [t.get_window_extent(renderer) for t in ticks if t.get_text()]
    return any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_weight_histograms_share_each_layers_range_and_show_counts(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    rule = [torch.empty(shape).uniform_(-0.0625, 0.0625, generator=g) for shape in ((16, 32), (8, 16), (4, 8))]
    fig = pictures.plot_weight_histograms(weights(zeros=0.0, ones=1.0, rule=rule), tmp_path / "w.png")
    axes = np.array(fig.axes).reshape(3, 3)
    for column in axes.T:
        assert len({ax.get_xlim() for ax in column}) == 1
        low, high = column[0].get_xlim()
        assert low < 0 and high > 1  # zeros' 0 and ones' 1 on one axis
    for ax in axes.flat:
        assert labels(ax.get_yticklabels()) and not overlapping(fig, ax.get_xticklabels())
        assert sum(p.get_width() for p in ax.patches) > 0  # one value still gets a bar
    assert axes[1, 0].get_title() == "ones, layer 1: all 1" and axes[2, 2].get_title().startswith("rule, layer 3: std")


def test_weight_histograms_leave_non_finite_values_out_and_say_so(tmp_path: Path) -> None:
    broken = [torch.tensor([[math.nan, 1.0], [math.inf, -1.0]]), torch.full((2, 2), 3e38), torch.full((2, 2), math.inf)]
    fig = pictures.plot_weight_histograms({"rule": [torch.zeros(2, 2)] * 3, "broken": broken}, tmp_path / "w.png")
    assert (tmp_path / "w.png").read_bytes().startswith(b"\x89PNG")
    titles = [ax.get_title() for ax in fig.axes]
    assert "(2 non-finite left out)" in titles[3] and "nothing finite" in titles[5]
    assert "too narrow to see at this scale" not in titles[1]  # rule's zeros are one value, said as "all 0"
