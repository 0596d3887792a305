"""Each command's table, as a ``tables.Listing``: what the compare, inspect, evaluate,
transfer, sweep, bench and schemes commands print (and report.html and a notebook show)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from initbench.analysis import diff as diffs
from initbench.analysis.expect import ONE_SEED
from initbench.tasks import CLASSIFICATION, Metric, Task
from initbench.views.tables import Column, Listing
from initbench.words import plural

if TYPE_CHECKING:
    import pandas as pd


def _loss(value: float) -> str:
    return "diverged" if not math.isfinite(value) else f"{value:,.3f}"


def accuracy_listing(summary: pd.DataFrame, epochs: int, task: Task, lesson_eval: bool = False,
                     steps: int | None = None, outputs: int | None = None) -> Listing:
    """The lesson's "After 2 Epochs" table, best on the task's validation metric first (the
    validation accuracy; a text's loss, with its bits per character, "After 200 steps" of
    ``steps`` an epoch); with several seeds, each scheme's paired difference to the best; with
    a ``run`` column (``initbench report`` of several runs), a column naming each row's run."""
    val, test = task.validation, task.test
    seeds = int(summary["seeds"].max())
    trained = plural(epochs, "epoch") if steps is None else plural(epochs * steps, "step")
    title = (f"After {trained}" + (f", mean ± std over {seeds} seeds" if seeds > 1 else "")
             + (", scored with dropout on (--lesson-eval)" if lesson_eval else ""))
    rows = list(summary.itertuples())
    names = run_names(str(r.run) for r in rows) if "run" in summary else {}
    columns = [Column("Run", [names[str(r.run)] for r in rows], left=True, path=True)] if names else []
    columns += [
        Column("Scheme", [r.scheme for r in rows], left=True),
        Column(val.header, [val.shown(getattr(r, f"{val.key}_mean"), getattr(r, f"{val.key}_std")) for r in rows]),
    ]
    if val.also is not None:
        header, _, factor = val.also
        columns.append(Column(header, [_loss(factor * getattr(r, f"{val.key}_mean")) for r in rows], drop=3))
    paired = "diff_mean" in summary and not names
    if paired:
        columns.append(Column("Difference to\nthe best [95% CI]", [_difference(r._asdict(), val) for r in rows],
                              drop=2))  # the paired statistics: kept longer than the test metric and the losses
    columns += [
        Column(test.header, [test.shown(getattr(r, f"{test.key}_mean"), getattr(r, f"{test.key}_std"))
                             for r in rows], drop=5),
        Column("Last batch\nloss", [_loss(r.last_batch_loss_mean) for r in rows], drop=4),
        Column("Last epoch\nloss", [_loss(r.last_epoch_loss_mean) for r in rows], drop=6),
    ]
    if "first_loss_mean" in summary:  # a text's: where each start began, and its spikes
        columns += [Column("Loss at\nstep 0", [_loss(r.first_loss_mean) for r in rows], drop=7),
                    Column("Spikes", [f"{r.spikes_mean:.1f}".removesuffix(".0") for r in rows], drop=8)]
    if summary["diverged_seeds"].any():
        columns.append(Column("Diverged\nseeds", [f"{r.diverged_seeds}/{r.seeds}" for r in rows], drop=1))
    epoch = "epoch" if steps is None else f"epoch ({plural(steps, 'step')})"
    notes = [f"Loss: training {task.loss} on the last batch (the lesson's \"training loss\"), "
             f"and its mean over the last {epoch}."]
    if val.also is not None:
        notes.append(f"{val.title} in nats per character, and in {val.also[1]} (nats / ln 2).")
    if "first_loss_mean" in summary:
        chance = "" if outputs is None else f" (an even guess over {outputs} characters: ln {outputs} = " \
                                            f"{task.chance_loss(outputs):.3f})"
        notes.append(f"Loss at step 0: of the first batch, before any step{chance}. Spikes: steps whose loss was "
                     "over twice the median of the steps before (mean over seeds).")
    if paired:
        notes.append(f"Difference: to {rows[0].scheme}, the best, in {val.difference_unit}, paired by seed (the same "
                     "batches), with a t-interval over seeds.")
    if names:
        notes.append("Run: the run's folder (its whole path with --format json or csv).")
    ends = tuple(i for i in range(len(rows) - 1) if names and rows[i].run != rows[i + 1].run)
    return Listing(title, columns, summary.to_dict("records"), notes, ends)


def samples_listing(samples: pd.DataFrame) -> Listing:
    """What each model trained on a text wrote after the same prompt (report.html shows it)."""
    rows = samples.to_dict("records")
    columns = [Column("Scheme", [str(r["scheme"]) for r in rows], left=True),
               Column("Seed", [str(r["seed"]) for r in rows]),
               Column("Sample", [str(r["sample"]) or "(diverged: no sample)" for r in rows], left=True, wrap=True)]
    return Listing("What each model wrote", columns, rows,
                   ["Each model continues the validation text's first characters, drawing each next character "
                    "from its predicted distribution with its seed's random stream (the same numbers for every "
                    "scheme of a seed)."])


def run_names(paths: Iterable[str]) -> dict[str, str]:
    """Each run folder's short name: its own name, with as many of its parents as tell it
    apart from another run's (results/a/lesson and results/b/lesson: a/lesson, b/lesson)."""
    parts = {path: PurePath(path).parts or (path,) for path in dict.fromkeys(paths)}
    depth = dict.fromkeys(parts, 1)
    while True:
        names = {path: str(PurePath(*p[-depth[path]:])) for path, p in parts.items()}
        taken = Counter(names.values())
        longer = [path for path, name in names.items() if taken[name] > 1 and depth[path] < len(parts[path])]
        if not longer:
            return names
        for path in longer:
            depth[path] += 1


def provenance(sources: list[str]) -> list[str]:
    """Where each layer's weights came from, runs of equal layers joined: "Layers 1-2: loaded from FILE"."""
    lines, start = [], 0
    for i in range(1, len(sources) + 1):
        if i == len(sources) or sources[i] != sources[start]:
            layers = f"Layer {start + 1}" if i - start == 1 else f"Layers {start + 1}-{i}"
            lines.append(f"{layers}: {sources[start]}")
            start = i
    return lines


def inspect_listing(scheme: str, rows: list[dict[str, Any]], found: list[str]) -> Listing:
    """One scheme's per-layer statistics at init (each row's ``source`` says where its
    weights came from), with what was found under it."""
    def g(key: str) -> list[str]:
        return [f"{r[key]:.3g}" for r in rows]

    n = len(rows)
    named = "part" in rows[0] if rows else False  # a gpt's layers: by role and block
    columns = [
        Column("Layer", [f"{r['layer']} {r['part']}" if named else
                         f"{r['layer']}" + (" (logits)" if r["layer"] == n else "") for r in rows], left=True),
        Column("Units", [str(r["units"]) for r in rows], drop=5),
        Column("Weight\nmean", g("weight_mean"), drop=1),  # ones' 1, beside its std of 0
        Column("Weight\nstd", g("weight_std")),
        Column("Output\nmean", g("act_mean"), drop=4),
        Column("Output\nstd", g("act_std")),
        Column("Dead\nunits", [f"{100 * r['dead_fraction']:.0f}%" for r in rows], drop=3),
        Column("Gradient\nnorm", g("grad_norm")),
        Column("Distinct\nunits", [str(r["distinct_units"]) for r in rows], drop=2),
    ]
    return Listing(f"{scheme} at init", columns, [{"scheme": scheme, **r} for r in rows],
                   provenance([r["source"] for r in rows]) + (found or ["nothing wrong found"]))


def signal_listing(scheme: str, rows: list[dict[str, Any]]) -> Listing:
    """A gpt's residual stream at init under ``scheme``, block by block: forward and backward."""
    def g(key: str) -> list[str]:
        return [f"{r[key]:.3g}" for r in rows]

    columns = [Column("Block", [str(r["block"]) for r in rows]),
               Column("Residual\nstream std", g("residual_std")),
               Column("Attention\noutput std", g("attention_std"), drop=2),
               Column("MLP\noutput std", g("mlp_std"), drop=1),
               Column("Gradient std\n(backward)", g("grad_std"))]
    return Listing(f"{scheme}: the signal through the blocks at init", columns, [{"scheme": scheme, **r} for r in rows],
                   ["Residual stream: after each block, on validation windows; its gradient: of the loss with "
                    "respect to it. A stream that grows block after block is a start whose residual branches are "
                    "not scaled by depth."])


def coordcheck_listing(slopes: pd.DataFrame, growing: dict[str, list[int]]) -> Listing:
    """A coordinate check's verdicts at its last step: per parametrization and layer, the slope
    of its output's size and of its change since step 0 against width (log-log), with the
    change's 95% interval over seeds and its verdict."""
    from initbench.analysis.coords import GROWS

    last = slopes[slopes["step"] == slopes["step"].max()]
    rows = last.to_dict("records")

    def interval(r: dict[str, Any]) -> str:
        shown = f"{r['change_slope']:+.2f}"
        return shown if math.isnan(r["change_low"]) else f"{shown} [{r['change_low']:+.2f}, {r['change_high']:+.2f}]"

    columns = [Column("Parametrization", [str(r["parametrization"]) for r in rows], left=True),
               Column("Layer", [_layer(r) for r in rows], left=True),
               Column("Output size\nslope", [f"{r['coord_slope']:+.2f}" for r in rows], drop=1),
               Column("Change slope\n[95% CI]", [interval(r) for r in rows]),
               Column("Verdict", [str(r["verdict"]) for r in rows], left=True, wrap=True)]
    step, seeds = int(last["step"].max()), int(last["seeds"].max())
    notes = [f"After {plural(step, 'step')}, over {plural(seeds, 'seed')}: each slope is log2 of the growth per width "
             f"doubling (0: the same size at every width; 1: twice as big at twice the width); a layer grows with "
             f"width when its change's 95% interval lies above {GROWS:g}."]
    notes += [f"Under {p}, " + (f"layer {layers[0]} grows" if len(layers) == 1 else
                                f"layers {', '.join(map(str, layers))} grow" if layers else "no layer grows")
              + " with width." for p, layers in growing.items()]
    ends = tuple(i for i in range(len(rows) - 1) if rows[i]["parametrization"] != rows[i + 1]["parametrization"])
    return Listing("Coordinate check: how each layer's output and its change grow with width", columns, rows, notes,
                   ends)


def _layer(row: dict[str, Any]) -> str:
    """A coordinate check's layer: its number, and its role (and block) where it was measured."""
    role, block = row.get("role"), row.get("block")
    if not isinstance(role, str):  # a check written before roles were
        return str(row["layer"])
    short = {"attention_query": "query", "attention_key": "key", "attention_value": "value",
             "token_embedding": "token emb.", "position_embedding": "position emb."}  # the table fits 80 columns
    role = short.get(role, role.replace("attention_", "attn ").replace("_", " "))
    return f"{row['layer']} {role}" + ("" if block is None or math.isnan(block) else f" {int(block)}")


def evaluate_listing(rows: list[dict[str, Any]]) -> Listing:
    """Each weights file's accuracies now and as recorded in training, and the verdict."""
    def pct(key: str) -> list[str]:
        return ["" if r[key] is None else f"{100 * r[key]:.2f}%" for r in rows]

    folders = {str(PurePath(r["file"]).parent) for r in rows}
    shared = next(iter(folders)) if len(folders) == 1 else None  # then the files by name, and the folder in a note
    columns = [
        Column("File", [PurePath(r["file"]).name if shared else r["file"] for r in rows], left=True, path=True),
        Column("Scheme", [r["scheme"] for r in rows], left=True, drop=2),
        Column("Seed", ["" if r["seed"] is None else str(r["seed"]) for r in rows], drop=3),
        Column("Classes", [r["classes"] for r in rows], left=True, wrap=True, drop=4),
        Column("Val\nacc", pct("val_acc")),
        Column("Test\nacc", pct("test_acc"), drop=1),
        # What Check says already: the first columns left out.
        Column("Recorded\nval acc", pct("recorded_val_acc"), drop=5),
        Column("Recorded\ntest acc", pct("recorded_test_acc"), drop=6),
        Column("Check", [r["check"] for r in rows], left=True, wrap=True),
    ]
    integrity = {r["integrity"] for r in rows}
    if len(integrity) > 1:
        columns.append(Column("File checked against", [r["integrity"] for r in rows], left=True, wrap=True))
    reproduced = sum(r["check"] == "reproduced" for r in rows)
    notes = [f"{reproduced} of {plural(len(rows), 'file')} scored exactly what was recorded in training."
             if reproduced else "No file had a recorded accuracy to check."]
    if shared not in (None, "."):
        notes.insert(0, f"Files in {shared}")
    if len(integrity) == 1:
        notes.append(f"Every file: {next(iter(integrity))}.")
    return Listing("Weights scored on the validation and test images of their split", columns, rows, notes)


def transfer_listing(comparison: pd.DataFrame, title: str, task: Task) -> Listing:
    """Each start's validation metric (accuracy) and its paired difference to the best scratch scheme."""
    rows, val = comparison.to_dict("records"), task.validation
    baseline = rows[0]["baseline"]
    columns = [
        Column("Start", [r["scheme"] for r in rows], left=True, wrap=True),  # "pretrained, frozen 2 epochs"
        Column(val.header, [val.shown(r[f"{val.key}_mean"], r[f"{val.key}_std"]) for r in rows]),
        Column("Difference to\nbest scratch [95% CI]", [_difference(r) for r in rows], drop=2),
        Column("Verdict", [r["verdict"] for r in rows], left=True, wrap=True, drop=1),
    ]
    seeds = int(comparison["seeds"].max())
    notes = [f"Mean ± std over {plural(seeds, 'seed')}; differences in percentage points against {baseline} on the "
             "same seeds (same batches), with a t-interval over seeds."]
    return Listing(title, columns, rows, notes)


def _difference(r: dict[str, Any], metric: Metric = CLASSIFICATION.validation) -> str:
    """A paired difference (in points of an accuracy, in its unit otherwise), with its 95%
    interval when there is one; none for the baseline itself."""
    if r["scheme"] == r.get("baseline") or r.get("verdict") == "the baseline" or math.isnan(r["diff_mean"]):
        return ""
    interval = "" if math.isnan(r["diff_low"]) else f" [{metric.difference(r['diff_low'])}, " \
                                                    f"{metric.difference(r['diff_high'])}]"
    return f"{metric.difference(r['diff_mean'])}{interval}"


def sweep_listing(cells: pd.DataFrame, varied: list[str], title: str, task: Task) -> Listing:
    """Per grid cell (its varied settings) and scheme: the task's metrics (validation and test
    accuracy), and the paired difference to the cell's best scheme with its verdict; a line
    between cells."""
    rows, val, test = cells.to_dict("records"), task.validation, task.test
    columns = [Column(k.replace("_", " ").capitalize(), [str(r[k]) for r in rows], left=True) for k in varied]
    columns += [
        Column("Scheme", [r["scheme"] for r in rows], left=True),
        Column(val.header, [val.shown(r[f"{val.key}_mean"], r[f"{val.key}_std"]) for r in rows]),
        Column(test.header, [test.shown(r[f"{test.key}_mean"]) for r in rows], drop=3),
        Column("Difference to the\ncell's best [95% CI]", [_difference(r, val) for r in rows], drop=2),
        Column("Verdict", [r["verdict"] for r in rows], left=True, wrap=True, drop=1),
    ]
    ends = [i for i in range(len(rows) - 1) if any(rows[i][k] != rows[i + 1][k] for k in varied)]
    notes = [f"Differences in {val.difference_unit} against the best scheme of the same cell, paired by seed "
             "(the same batches), with a t-interval over seeds; \"better\" or \"worse\" when the interval "
             "excludes 0." if int(cells["seeds"].max()) > 1 else
             f"Differences in {val.difference_unit} against the best scheme of the same cell, at one seed: point "
             "values with no interval, so whether a difference is real cannot be tested. Train two or more "
             "seeds (--set seeds=3) to test it."]
    return Listing(title, columns, rows, notes, tuple(ends))


def jobs_listing(rows: list[dict[str, Any]]) -> Listing:
    """A sweep's jobs (``--dry-run``): varied settings, scheme, seed, key, and whether the
    store already holds it."""
    headers = [k for k in rows[0] if k not in ("scheme", "seed", "key", "status")] if rows else []
    columns = [Column(k.replace("_", " ").capitalize(), [str(r[k]) for r in rows], left=True) for k in headers]
    columns += [Column("Scheme", [r["scheme"] for r in rows], left=True),
                Column("Seed", [str(r["seed"]) for r in rows]),
                Column("Key", [r["key"][:16] for r in rows], left=True, drop=1),
                Column("Status", [r["status"] for r in rows], left=True)]
    todo = sum(r["status"] == "to train" for r in rows)
    return Listing(f"{plural(len(rows), 'job')}, {todo:,} to train", columns, rows,
                   ["Key: the first 16 hex digits of the job's SHA-256 key (all 64 with --format json or csv)."])


def _range(low_high: tuple[float, float], fmt: str) -> str:
    return f"{fmt.format(low_high[0])}-{fmt.format(low_high[1])}"


def bench_listing(numbers: dict) -> Listing:
    """Seconds per model-epoch of each way of training, the spread over the repeats, and
    the ratios the targets use."""
    per, spread = numbers["seconds_per_model_epoch"], numbers["spread"]
    notes = [f"Medians of {len(numbers['samples']['floor'])} interleaved repeats."]
    models = numbers["models_in_batched_step"]
    names = {"floor": "GEMM floor", "batched": f"batched, {models} models",
             "batched_frozen": f"batched, {models} models, hidden layers frozen", "sequential": "sequential",
             "vmap": f"torch.func vmap recipe, {models} models", "module_loop": f"loop over {models} nn.Modules",
             "lesson": "lesson pipeline"}
    rows = []
    for key, label in names.items():
        if key in per:
            rows.append({"training": label, "seconds": f"{per[key]:.3f}", "min_max": _range(spread[key], "{:.3f}"),
                         "x_floor": f"{per[key] / per['floor']:.2f}",
                         "vs_lesson": f"{per['lesson'] / per[key]:.1f}x" if "lesson" in per else ""})
    rules = (len(rows) - 1,)
    if whole := numbers.get("whole_process"):
        notes.append(f"Whole process: {whole['model_epochs']} model-epochs, start-up and data loading included.")
        for name, speedup in (("compare", f"{whole['speedup']:.1f}x"), ("lesson", "1.0x")):
            rows.append({"training": f"{name}, whole process", "seconds": f"{whole[name + '_seconds']:.1f} s",
                         "min_max": _range(whole["spread"][name], "{:.1f}"), "x_floor": "", "vs_lesson": speedup})
    headers = {"training": "Training", "seconds": "s/model-\nepoch", "min_max": "min-max", "x_floor": "x floor",
               "vs_lesson": "vs\nlesson"}
    drops = {"min_max": 2, "x_floor": 1}  # the spread, then the ratio to the floor, before the speed-up
    columns = [Column(h, [r[k] for r in rows], drop=drops.get(k, 0), wrap=k == "training", left=k == "training")
               for k, h in headers.items()]
    return Listing(f"Benchmark: one epoch, batch 100, {numbers['device_name']}", columns, rows, notes, rules)


def lab_bench_listing(numbers: dict) -> Listing:
    """A gpt's training step, each way (``initbench bench --network gpt``): seconds and tokens
    per second per model, the spread over the repeats, and how far above the floor."""
    per, spread, models = numbers["seconds_per_model_step"], numbers["spread"], numbers["models"]
    names = {"floor": "GEMM floor", "sequential": "sequential engine (one model after another)",
             "vmap": f"torch.func vmap recipe, {models} models", "module_loop": f"loop over {models} nn.Modules"}
    rows = [{"training": label, "seconds": f"{per[key] * 1000:,.1f}",
             "min_max": _range([s * 1000 for s in spread[key]], "{:,.1f}"),
             "tokens": f"{numbers['tokens_per_second_per_model'][key]:,.0f}",
             "x_floor": f"{per[key] / per['floor']:.2f}"} for key, label in names.items() if key in per]
    headers = {"training": "Training", "seconds": "ms/model-\nstep", "min_max": "min-max",
               "tokens": "tokens/s\nper model", "x_floor": "x floor"}
    columns = [Column(h, [r[k] for r in rows], drop={"min_max": 2, "x_floor": 1}.get(k, 0), wrap=k == "training",
                      left=k == "training") for k, h in headers.items()]
    s = numbers["settings"]
    notes = [f"Medians of {len(numbers['samples']['floor'])} interleaved repeats; a step is {s['batch_size']} "
             f"windows of {s['context']} characters ({numbers['tokens_per_step']:,} tokens), hidden "
             f"{s['hidden'][0]}x{len(s['hidden'])}, {s['heads']} heads.",
             "No batched row: the batched engine writes out the MLP's step by hand, not a gpt's attention, norms "
             "and embeddings; compare trains a gpt on the sequential engine."]
    return Listing(f"Benchmark: a gpt's training step, {numbers['device_name']}", columns, rows, notes)


def breakdown_listing(numbers: dict) -> Listing:
    """One batched model-epoch part by part (``initbench bench --breakdown``): each part's
    seconds under the profiler, its share, its floor and how far above it."""
    total = numbers["profiled_seconds"]
    rows = [{"part": p["name"], "seconds": f"{p['seconds']:.3f}", "share": f"{p['seconds'] / total:.0%}",
             "floor": "" if p["floor"] is None else f"{p['floor']:.3f}",
             "x_floor": "" if not p["floor"] else f"{p['seconds'] / p['floor']:.1f}",
             "what": p["what"]} for p in numbers["breakdown"]]
    floors = sum(p["floor"] or 0.0 for p in numbers["breakdown"])
    rows.append({"part": "total", "seconds": f"{total:.3f}", "share": "100%", "floor": f"{floors:.3f}",
                 "x_floor": f"{total / floors:.1f}", "what": "under the profiler"})
    headers = {"part": "Part", "seconds": "s/model-\nepoch", "share": "share", "floor": "floor",
               "x_floor": "x floor", "what": "What it is"}
    drops = {"what": 2, "share": 1}
    columns = [Column(h, [r[k] for r in rows], drop=drops.get(k, 0), wrap=k == "what", left=k in ("part", "what"))
               for k, h in headers.items()]
    notes = [f"One epoch of {numbers['models']} models in one batched group on {numbers['train_images']:,} images, "
             f"profiled with torch.profiler: {total:.3f} s per model-epoch under the profiler, "
             f"{numbers['unprofiled_seconds']:.3f} s without it (median of {numbers['repeats']}).",
             "Floor: the part's work for all models in one call per step, no Python between (products and "
             "evaluation: the GEMM floor's); medians."]
    return Listing(f"Where a batched model-epoch goes, {numbers['device_name']}", columns, rows, notes,
                   (len(rows) - 2,))


def scaling_listing(numbers: dict) -> Listing:
    """The batched step at each model count: seconds, model-epochs per second, memory."""
    rows = [{"models": f"{r['models']:,}", "step": f"{r['seconds_per_step'] * 1000:,.1f}",
             "min_max": _range([s * 1000 for s in r["spread"]], "{:,.1f}"),
             "rate": f"{r['model_epochs_per_second']:,.2f}", "memory": f"{r['memory_bytes'] / 2**20:,.0f}",
             "per_model": f"{r['bytes_per_model'] / 2**20:.1f}"} for r in numbers["scaling"]]
    headers = {"models": "Models", "step": "ms/step", "min_max": "min-max", "rate": "model-\nepochs/s",
               "memory": "MiB", "per_model": "MiB/\nmodel"}
    drops = {"min_max": 3, "per_model": 2, "memory": 1}
    columns = [Column(h, [r[k] for r in rows], drop=drops.get(k, 0)) for k, h in headers.items()]
    notes = [f"Medians of {numbers['repeats']} interleaved repeats of one training step of the lesson's network "
             f"(batch 100); model-epochs/s = models / (step x {numbers['batches_per_epoch']} steps), evaluation "
             "not included. Memory: the models, gradients, Adam's moments and a step's buffers "
             + ("(CUDA's peak allocation)." if numbers["device"].startswith("cuda")
                else "(growth of resident memory).")]
    return Listing(f"Batched step by models per step, {numbers['device_name']}", columns, rows, notes)


def schemes_listing(rows: list[dict]) -> Listing:
    """One row per scheme: its name and, indented below it, its aliases (followed by "= what
    they equal" where that is more than the scheme itself), each name's convention beside it,
    and the formula over the reference. Names never wrap; the formulas take the width left."""
    names, conventions = [], []
    for row in rows:
        lines, follows = [row["usage"]], [row["convention"]]
        aliases = row["aliases"]
        for i, alias in enumerate(aliases):
            lines.append(f"  {alias['name']}")
            follows.append(alias["convention"])
            last_of_group = i + 1 == len(aliases) or aliases[i + 1]["equals"] != alias["equals"]
            if alias["equals"] != row["name"] and last_of_group:
                lines.append(f"    = {alias['equals']}")
                follows.append("")
        names.append("\n".join(lines))
        conventions.append("\n".join(follows))
    columns = [Column("Name", names, left=True), Column("Convention", conventions, left=True),
               Column("Formula / reference", [_described(r) for r in rows], wrap=True, left=True)]
    return Listing("Initialization schemes (aliases indented)", columns, rows)


def _described(row: dict) -> str:
    """The formula over the reference; a user's scheme (initializers.user) also says where it comes
    from, after its summary where its docstring has no Formula:/Reference: lines."""
    if row["origin"] == "initbench":
        return f"{row['formula']}\n{row['reference']}"
    return "\n".join([*([text for text in (row["formula"], row["reference"]) if text] or [row["summary"]]),
                      f"from {row['origin']}"])


# --- progress


def diff(d: diffs.Pairing, task: Task) -> Listing:
    """The diff's table: per cell and scheme, A's and B's validation metric (accuracy, or a
    text's loss) and the change with its verdict."""
    rows, val = d.rows, task.validation

    def pct(key: str) -> list[str]:
        return ["" if math.isnan(r[key]) else val.shown(r[key]) for r in rows]

    def change(r: dict[str, Any]) -> str:
        if not r["seeds"]:
            return ""
        interval = ("" if math.isnan(r["diff_low"]) else
                    f" [{val.difference(r['diff_low'])}, {val.difference(r['diff_high'])}]")
        return f"{val.difference(r['diff_mean'])}{interval}"

    columns = [Column(k.replace("_", " ").capitalize(), [str(r[k]) for r in rows], left=True)
               for k in d.varied]
    columns += [
        Column("Scheme", [r["scheme"] for r in rows], left=True),
        Column("Seeds", [str(r["seeds"]) if r["seeds"] else f"{len(r['only_in_a'] or r['only_in_b'])} "
                                f"({'A' if r['only_in_a'] else 'B'} only)" for r in rows], drop=1),
        Column("A", pct(f"a_{task.validation.key}_mean")),
        Column("B", pct(f"b_{task.validation.key}_mean")),
        Column("Change B - A\n[95% CI]", [change(r) for r in rows]),
        Column("Verdict", [r["verdict"] for r in rows], left=True, wrap=True),
    ]
    notes = [f"A: {d.a}; B: {d.b}."]
    if d.changed:
        notes.append("B differs from A in " + ", ".join(f"{k} {va} -> {vb}" if k != diffs.DATA_FILES
                                                        else "its data files"
                                                        for k, (va, vb) in d.changed.items())
                     + "; jobs are paired on everything else.")
    notes.append(f"{task.validation.title} (mean over the paired seeds), and its change in {val.difference_unit}, "
                 "paired by job "
                 "(the same scheme, seed and settings: the same batches), with a 95% t-interval over seeds; "
                 f"\"unchanged\": every paired {task.validation.quantity} the same to the bit.")
    if any(r["seeds"] == 1 for r in rows):
        notes.append(f"{ONE_SEED} (\"better\" or \"worse\" by its sign).")
    notes += [diffs.line(r, d.varied, task.validation) for r in rows
              if r["seeds"] and (r["only_in_a"] or r["only_in_b"])]
    notes += [f"The code of {diffs.name(r, d.varied)} changed ({r['code_changed']}): its jobs are paired by its "
              "name and "
              "seed, and the change judged as any other." for r in rows if r["code_changed"]]
    ends = [i for i in range(len(rows) - 1) if any(rows[i][k] != rows[i + 1][k] for k in d.varied)]
    return Listing(f"{task.validation.title}, B against A, paired by job", columns, rows, notes, tuple(ends))


def settings_listing() -> Listing:
    """Every setting as settings.py declares it (docs/configs.md holds this table): its key,
    group, default, command-line option and what it does."""
    from initbench import config

    declared = [*config.DECLARED.values(), *config.TRANSFER_DECLARED.values()]
    columns = [Column("Key", [f"`{d.key}`" for d in declared], left=True),
               Column("Group", [d.group for d in declared], left=True),
               Column("Default", [d.default_text for d in declared], left=True),
               Column("Option", [" ".join(f"`{f}`" for f in d.flags) for d in declared], left=True),
               Column("What", [config.described(d) for d in declared], left=True, wrap=True)]
    records = [{"key": d.key, "group": d.group, "default": d.default_text, "option": " ".join(d.flags),
                "what": config.described(d)} for d in declared]
    return Listing("Every setting", columns, records, [
        "Groups: data, network and optim decide what a model is and how it trains (a job's identity holds them); "
        "run, how a run goes; ray, the Ray executor's; transfer, initbench transfer's own (its freeze and "
        "unfreeze_after are those of its pretrained starts). Written from initbench/settings.py "
        "(python scripts/settings_table.py)."])


def best_rate_listing(best: pd.DataFrame, groups: list[str], task: Task, drift: pd.DataFrame | None = None) -> Listing:
    """Per group (a scheme; a sweep's width or depth and parametrization): the best learning
    rate of the grid, its 95% bootstrap interval over seeds, how often the resamples picked
    it, and the validation metric there; with ``drift``, how the best rate moves per
    doubling of the width or depth (analysis.rates)."""
    from initbench.analysis.rates import RESAMPLES  # numpy and pandas: after a run's first line

    rows, val = best.to_dict("records"), task.validation
    columns = [Column(_header(k), [str(r[k]) for r in rows], left=True) for k in groups]
    columns += [
        Column("Best lr", [f"{r['best_lr']:.3g}" + (" (edge)" if r["edge"] else "") for r in rows]),
        Column("95% CI\n(bootstrap)", [f"{r['low']:.3g} to {r['high']:.3g}" if r["seeds"] > 1 else "" for r in rows]),
        Column("Picked", [f"{r['picked']:.0%}" if r["seeds"] > 1 else "" for r in rows], drop=2),
        Column(f"{val.header}\nat the best", [val.shown(r[f"{val.key}_mean"], r[f"{val.key}_std"]) for r in rows],
               drop=1),
    ]
    seeds = int(best["seeds"].max())
    notes = [f"Best lr: the grid's rate of the best mean {val.name} over {plural(seeds, 'seed')}"
             + (f"; its interval, and how often it was picked, from {RESAMPLES:,} resamples of the seeds."
                if seeds > 1 else ".")]
    if best["edge"].any():
        notes.append("(edge): the best rate is the grid's smallest or largest; the best may lie beyond it. Widen "
                     "the grid.")
    for r in (drift.to_dict("records") if drift is not None else []):
        where = ", ".join(f"{k} {r[k]}" for k in r if k not in DRIFT_KEYS)
        slope, low, high = (round(r[k], 2) + 0.0 for k in ("slope", "low", "high"))  # no "-0.00"
        notes.append(f"{(where + ': ') if where else ''}the best lr {r['verdict']} with {r['along']} "
                     f"({r['from']} to {r['to']}): x{2 ** r['slope']:.2f} per doubling (slope of log2 lr "
                     f"{slope:+.2f}, 95% CI [{low:+.2f}, {high:+.2f}]).")
    named = [_header(k).lower() if k != "hidden" else "hidden sizes" for k in groups]
    return Listing(f"Best learning rate by {', '.join(named[:-1]) + ' and ' if len(named) > 1 else ''}{named[-1]}",
                   columns, rows, notes)


DRIFT_KEYS = ("along", "from", "to", "slope", "low", "high", "verdict")


def _header(key: str) -> str:
    return key.replace("_", " ").capitalize()
