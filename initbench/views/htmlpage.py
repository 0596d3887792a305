"""A finished run as one HTML file to share: ``report.html`` in every run and sweep folder,
and ``initbench report DIR... --html FILE``.

The page is self-contained and asks nothing of the network: its pictures are inlined as
``data:image/png;base64`` (the PNGs the folder holds, or drawn where one is missing), its
CSS is inline and it has no script; a Content-Security-Policy says so to the browser. It
shows the tables the command line prints (the same ``tables.Listing``s: their columns,
cells and notes), every picture, the settings with the command that runs them again,
where and with what it ran (versions, machine, the data files' SHA-256), and an
``expectations`` record where run.json or sweep.json holds one. It reads on a phone's
width (tables scroll in their own box) and prints (nothing cut, figures kept whole).

Rendered by Jinja2 (imported when a page is made) from ``templates/report.html.j2``, with
autoescaping on. A ``Part`` is one folder's share of a page; ``views.finished`` and ``views.sweep`` make them.
"""

from __future__ import annotations

import base64
import json
import math
import os
import shlex
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from initbench import models, paths
from initbench.analysis import expect
from initbench.errors import UsageError
from initbench.settings import NetworkSettings, OptimSettings, shown
from initbench.storage import runfolder
from initbench.version import VERSION
from initbench.views import tables
from initbench.words import plural

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PAGE = "report.html"  # in every run and sweep folder
Drawing = Callable[[Path | None], "Figure"]  # as views.Drawing: draws a picture, and saves it where a path is given
Writer = Callable[[Path], object]
SETTINGS_LEFT_OUT = ("out", "overwrite")  # as RunConfig.to_toml leaves them out
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass
class Part:
    """One folder's share of a page: a compare, transfer or sweep run."""

    folder: Path  # where its files are read (a staged run: its staging folder)
    name: str  # what the page calls it: the folder's name where it goes
    kind: str  # "compare", "transfer" or "sweep"
    info: Mapping[str, Any]  # its run.json or sweep.json ({} when there is none)
    listings: list[tables.Listing]
    drawings: Mapping[str, Drawing] = field(default_factory=dict)  # its pictures, by file name


def page(parts: list[Part], listings: list[tables.Listing] | None = None, title: str | None = None,
         pictures: Mapping[str, bytes] | None = None) -> str:
    """The HTML page of ``parts``: with ``listings`` (``report`` of several runs: the one
    table it prints), those tables above instead of each part's own. ``pictures``: PNGs
    already at hand, by file name (of a one-part page), before the folder's or new drawings."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("initbench.views", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    shown = [_part(part, own_tables=listings is None, pictures=pictures or {}) for part in parts]
    if title is None:
        title = (f"initbench {parts[0].kind}: {parts[0].name}" if len(parts) == 1
                 else f"initbench report: {plural(len(parts), 'run')}")
    return env.get_template("report.html.j2").render(
        title=title, tables=[_table(listing) for listing in listings or []], parts=shown, several=len(parts) > 1,
        version=VERSION, made=datetime.now().astimezone().isoformat(timespec="seconds"))


def writer(parts: list[Part], listings: list[tables.Listing] | None = None) -> Writer:
    """A ``runfolder.write_files`` writer of the page."""
    return lambda path: path.write_text(paths.shown(page(parts, listings)), encoding="utf-8")


def with_page(writers: Mapping[str, Writer], part: Part) -> dict[str, Writer]:
    """``writers`` (a folder's views, for one ``runfolder.write_files``), and last the
    folder's report.html, made with the PNGs those writers have just written: the page
    is renamed into place with them, never showing pictures of another version."""
    kept: dict[str, bytes] = {}

    def keeping(name: str, write: Writer) -> Writer:
        def keep(path: Path) -> object:
            done = write(path)
            kept[name] = path.read_bytes()
            return done
        return keep

    files = {name: keeping(name, write) if name.endswith(".png") else write for name, write in writers.items()}
    files[PAGE] = lambda path: path.write_text(paths.shown(page([part], pictures=kept)), encoding="utf-8")
    return files


def check_destination(path: Path) -> None:
    """Refuse, before any work, an --html path that is a folder or cannot be written."""
    if path.is_dir():
        raise UsageError(f"--html {path} is a folder; give a file name, e.g. {path / PAGE}.")
    why = paths.problem(path, "file", missing_ok=True)
    if why is not None:
        raise UsageError(f"--html {path} {why}. Give a file name to write the page to.")
    parent = path.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"--html {path}: {parent} is not a folder you can write in. Give another file name.")


def read_info(path: Path) -> dict[str, Any]:
    """A run.json or sweep.json as far as the page needs it: {} when absent or unreadable
    (the page then leaves out where it ran)."""
    if paths.problem(path, "file") is not None:
        return {}
    try:
        found = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


# --- what the template is given: plain text and numbers, escaped by Jinja2


def _lines(text: str) -> list[str]:
    return str(text).split("\n")


def _table(listing: tables.Listing) -> dict[str, Any]:
    """A Listing as the template lays it out: its cells as lines, each column's alignment
    and whether its text may wrap (names and numbers never do), a rule between groups."""
    classes = [("l" if c.left else "n") + (" wrap" if c.wrap else "") for c in listing.columns]
    rows = [{"cells": [(_lines(cell), cls) for cell, cls in zip(cells, classes)], "rule": i - 1 in listing.rules_after}
            for i, cells in enumerate(zip(*(c.cells for c in listing.columns)))]
    return {"title": listing.title, "headers": [(_lines(c.header), cls) for c, cls in zip(listing.columns, classes)],
            "rows": rows, "notes": listing.notes}


def _part(part: Part, own_tables: bool, pictures: Mapping[str, bytes]) -> dict[str, Any]:
    info = part.info
    return {
        "name": part.name, "kind": part.kind, "summary": _summary(part),
        "tables": [_table(listing) for listing in part.listings] if own_tables else [],
        "meaning": _meaning(part),
        "expectations": _expectations(info.get("expectations")),
        "figures": [_figure(name, _png(part, name, pictures)) for name in part.drawings],
        "rerun": _rerun(part),
        "facts": _facts(part),
        "digests": _digests(info),
    }


CONSTANT_STARTS = ("zeros", "ones", "constant")  # built-ins whose every weight of a layer is the same
NEAR_CHANCE = 0.02  # a validation accuracy this close to chance (a fraction): the model learned nothing
NEAR_CHANCE_NATS = 0.1  # a text's validation loss this close to ln V, or above: the model learned next to nothing


def _meaning(part: Part) -> list[str]:
    """What a compare run's table means to a learner, in a few lines: where chance is (1 in
    as many classes), which schemes stayed there and what their losses say, and why a
    constant start cannot learn. None for other runs, or a run.json without its classes."""
    from initbench import initializers

    config = part.info.get("config") if isinstance(part.info.get("config"), dict) else {}
    classes = config.get("classes")
    if part.kind != "compare" or not isinstance(classes, list) or len(classes) < 2:
        return []
    k = len(classes)
    chance, guess = 1 / k, math.log(k)  # a uniform guess over k classes: its accuracy, its cross-entropy
    losses = [r for listing in part.listings for r in listing.records if {"scheme", "val_loss_mean"} <= set(r)]
    if losses:  # a text's: scored by the loss, which an even guess puts at ln k
        near = [r["scheme"] for r in losses if not r["val_loss_mean"] < guess - NEAR_CHANCE_NATS]
        said = [f"Chance is ln {k} = {guess:.3f} nats per character ({guess / math.log(2):.2f} bits): the loss of "
                f"a model that gives each of the {k} characters the same probability."]
        return said + ([f"{_and(near)} ended within {NEAR_CHANCE_NATS:g} nats of it, or above: "
                        f"{'they' if len(near) > 1 else 'it'} learned next to nothing."] if near else
                       ["Every scheme ended well below it: each learned something of the text."])
    rows = [r for listing in part.listings for r in listing.records if {"scheme", "val_acc_mean"} <= set(r)]
    stalled = {r["scheme"]: r.get("last_batch_loss_mean", math.nan) for r in rows
               if r["val_acc_mean"] < chance + NEAR_CHANCE}
    said = [f"Chance is {chance:.0%}: with {k} classes, a network that has learned nothing is right about 1 time "
            f"in {k} (it answers one class, or guesses)."]
    if not stalled:
        return said + ["Every scheme scored above chance: each learned something."]
    said.append(f"{_and(list(stalled))} stayed at chance (within {100 * NEAR_CHANCE:.0f} points of it).")
    even = [name for name, loss in stalled.items() if abs(loss - guess) < 0.01 * guess]
    above = {name: loss for name, loss in stalled.items() if loss > 10 * guess}
    if even:
        said.append(f"A loss of ln {k} = {guess:.3f} is a network giving every class the same probability: "
                    f"{_and(even)} ended there.")
    if above:
        said.append(f"{_and(list(above))} ended far above ln {k} = {guess:.3f} (last loss "
                    f"{_and([f'{loss:,.0f}' for loss in above.values()])}): outputs that large are confidently wrong.")
    known = {name: initializers.get(name) for name in stalled if expect.built_in(name)}  # a user's: never run to say it
    constant = [name for name, scheme in known.items() if scheme.name.partition(":")[0] in CONSTANT_STARTS]
    if constant:
        said.append(f"{_and(constant)} {'start' if len(constant) > 1 else 'starts'} every unit of a layer with the "
                    "same weights: each unit computes the same output and gets the same gradient, so the units "
                    "stay copies of one another and a layer learns no more than one unit could (the symmetry "
                    "problem); with weights of 0, the layers below the last get no gradient at all.")
    said += [f"{name}: {scheme.summary}" for name, scheme in known.items() if name not in constant]
    return said


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _summary(part: Part) -> str:
    """What was run, in a line: the network, the data and how long, from its settings."""
    info = part.info
    config = info.get("config") if isinstance(info.get("config"), dict) else {}
    finished = info.get("finished")
    when = f"Finished {finished.replace('T', ' ')[:16]}." if isinstance(finished, str) else ""
    if part.kind == "sweep" or not config:
        return when
    sizes = info.get("data") if isinstance(info.get("data"), dict) else {}
    identity = info.get("data_identity") if isinstance(info.get("data_identity"), dict) else {}
    hidden = shown("hidden", config["hidden"]) if isinstance(config.get("hidden"), list) else None
    dataset, epochs = identity.get("dataset") or config.get("dataset"), config.get("epochs")
    network = models.NETWORKS.get(str(config.get("network", NetworkSettings.network)))
    text = network is not None and network.reads == "text"
    how = (f"({config.get('heads')} heads, context {config.get('context')})" if text else
           config.get("activation") and f"({config['activation']})")
    trained = " ".join(str(v) for v in (config.get("network", NetworkSettings.network), hidden, how) if v)
    trained += f" on {dataset}" if dataset else ""
    examples = "characters" if text else "images"
    trained += f", {sizes['train']:,} training {examples}" if isinstance(sizes.get("train"), int) else ""
    steps = config.get("steps", OptimSettings.steps)
    if isinstance(epochs, int):
        trained += f", {plural(epochs * steps, 'step')}" if text and isinstance(steps, int) else \
            f", {plural(epochs, 'epoch')}"
    counted = ""
    if part.kind == "compare" and isinstance(config.get("schemes"), list) and isinstance(config.get("seeds"), list):
        counted = (f"; {plural(len(config['schemes']), 'scheme')} x "
                   f"{plural(len(config['seeds']), 'seed')}")
    return f"{trained}{counted}. {when}".strip()


def _png(part: Part, name: str, pictures: Mapping[str, bytes]) -> bytes:
    """A picture's PNG: just written, or the folder's, or drawn now where it has none."""
    if name in pictures:
        return pictures[name]
    path = part.folder / name
    if paths.problem(path, "file") is None:
        content = path.read_bytes()
        if content.startswith(PNG_SIGNATURE):
            return content
    return part.drawings[name](None)._repr_png_()  # pictures' Figures draw their PNG as the files hold it


def _figure(name: str, png: bytes) -> dict[str, Any]:
    """An inlined picture, with its size in pixels (from the PNG's header) so the page does not move as it loads."""
    width, height = struct.unpack(">II", png[16:24]) if png[12:16] == b"IHDR" else (None, None)
    return {"name": name, "src": "data:image/png;base64," + base64.b64encode(png).decode("ascii"),
            "width": width, "height": height, "alt": name.removesuffix(".png").replace("_", " ")}


def _rerun(part: Part) -> dict[str, Any]:
    """The settings file and the command that runs them again, and the command line as typed."""
    info, folder = part.info, part.folder
    typed = _typed(info.get("command"))
    if part.kind == "sweep":
        text = _read_text(folder / "sweep.toml") or info.get("config")
        return {"file": "sweep.toml", "text": text, "command": "initbench sweep sweep.toml" if text else None,
                "typed": typed, "in_folder": True,
                "note": "A sweep folder's store keeps every grid swept into it; these settings are the last one's. "
                        "A sweep run again into a folder (--out) trains only what its store lacks."}
    if part.kind == "transfer":
        text = (info.get("transfer") or {}).get("config")
        if isinstance(text, str):
            return {"file": "transfer.toml", "text": text, "command": "initbench transfer --config transfer.toml",
                    "typed": typed, "note": None, "in_folder": False}  # run.json keeps it, not a file
        return {"file": "config.toml", "text": _read_text(folder / "config.toml") or _toml(info.get("config")),
                "command": None, "typed": typed, "in_folder": True,
                "note": "These are task B's settings. This run.json does not record the transfer's own settings "
                        "(an earlier initbench): the command line it ran with is below."}
    text = _read_text(folder / "config.toml") or _toml(info.get("config"))
    return {"file": "config.toml", "text": text, "command": "initbench compare --config config.toml" if text else None,
            "typed": typed, "note": None, "in_folder": True}


def _read_text(path: Path) -> str | None:
    if paths.problem(path, "file") is not None:
        return None
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, ValueError):
        return None


def _toml(config: Any) -> str | None:
    """run.json's settings as config.toml writes them (RunConfig.to_toml): for a folder without one."""
    if not isinstance(config, dict):
        return None
    return "".join(f"{key} = {json.dumps(value)}\n" for key, value in config.items()
                   if key not in SETTINGS_LEFT_OUT and value is not None)


def _typed(argv: Any) -> str | None:
    """The command line a run was started with, when it was initbench's (not Python's: a
    script, a notebook or a test run it through the API)."""
    if not (isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv)):
        return None
    program = Path(argv[0])
    if program.name == "initbench" or (program.name == "__main__.py" and program.parent.name == "initbench"):
        return shlex.join(["initbench", *argv[1:]])
    return None


def _facts(part: Part) -> list[dict[str, Any]]:
    """Where and with what it ran, as label and value (``code``: a hash or a path)."""
    info = part.info
    facts: list[dict[str, Any]] = []

    def add(label: str, value: Any, code: bool = False) -> None:
        if value not in (None, "", [], {}):
            facts.append({"label": label, "value": str(value), "code": code})

    versions = info.get("versions") if isinstance(info.get("versions"), dict) else {}
    add("initbench", versions.get("initbench"))
    add("torch", versions.get("torch"))
    add("Other versions", ", ".join(f"{name} {version}" for name, version in versions.items()
                                    if name not in ("initbench", "torch")))
    add("Device", " ".join(str(v) for v in (info.get("device"), info.get("device_name") and
                                            f"({info['device_name']})") if v))
    add("Executor", info.get("executor"))
    add("Platform", info.get("platform"))
    add("Started", info.get("started"))
    add("Finished", info.get("finished"))
    if isinstance(info.get("train_seconds"), (int, float)):
        add("Training", f"{info['train_seconds']:,.1f} s")
    figures = info.get("figures") if isinstance(info.get("figures"), dict) else {}
    if figures.get("jobs") is not None:
        add("Jobs", f"{figures['jobs']:,} in this grid, {figures.get('trained_now', 0):,} trained in its last run"
            + (f" ({figures['train_seconds']:,.1f} s)" if figures.get("train_seconds") else ""))
    sizes = info.get("data") if isinstance(info.get("data"), dict) else {}
    if sizes:
        add("Images", ", ".join(f"{v:,} {k}" for k, v in sizes.items() if isinstance(v, int)))
    identity = info.get("data_identity")
    for found in identity if isinstance(identity, list) else [identity] if isinstance(identity, dict) else []:
        if not isinstance(found, dict):
            continue
        add("Dataset", found.get("dataset"))
        if "split_seed" in found:
            add("Split seed", found["split_seed"])
    transfer = info.get("transfer") if isinstance(info.get("transfer"), dict) else {}
    add("Source networks", transfer.get("source_dir"), code=True)
    add("Folder", part.name, code=True)
    return facts


def _digests(info: Mapping[str, Any]) -> list[dict[str, str]]:
    """The data files' SHA-256 (what a reader checks a copy of the data by), folded below
    where it ran: each file's name and digest."""
    identity = info.get("data_identity")
    found = identity if isinstance(identity, list) else [identity] if isinstance(identity, dict) else []
    return [{"file": str(file), "digest": str(digest)} for one in found if isinstance(one, dict)
            for file, digest in (one.get("files_sha256") or {}).items()]


def _expectations(found: Any) -> dict[str, Any] | None:
    """An ``expectations`` record as a table: initbench.analysis.expect's (each outcome as the command
    line words it); another list of records (or a mapping of name -> record or value), its
    keys as columns; any other value as a line of text."""
    if found in (None, [], {}):
        return None
    if isinstance(found, list) and all(isinstance(r, dict) and {"condition", "held"} <= set(r) for r in found):
        try:  # as initbench.analysis.expect records them: each line as the command line prints it
            outcomes = [expect.Outcome.from_record(r) for r in found]
        except (KeyError, TypeError):
            outcomes = None
        if outcomes is not None:
            held = sum(o.held for o in outcomes)
            return {"columns": ["Outcome", "Expectation"],
                    "summary": [f"{held} of {plural(len(outcomes), 'expectation')} held."],
                    "rows": [[(["held" if o.held else "failed"], "pass" if o.held else "fail"), (_lines(str(o)), "")]
                             for o in outcomes]}
    if isinstance(found, dict):
        found = [{"expectation": k, **v} if isinstance(v, dict) else {"expectation": k, "outcome": v}
                 for k, v in found.items()]
    if not isinstance(found, list):
        return {"columns": [], "rows": [], "summary": [_value(found)]}
    records = [r if isinstance(r, dict) else {"expectation": r} for r in found]
    columns = list(dict.fromkeys(k for r in records for k in r))
    return {"columns": [c.replace("_", " ").capitalize() for c in columns], "summary": [],
            "rows": [[(_lines(_value(r.get(c))), _tone(r.get(c))) for c in columns] for r in records]}


def _value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


PASSED = {"held", "met", "pass", "passed", "ok", "yes"}
FAILED = {"failed", "missed", "not met", "fail", "no"}


def _tone(value: Any) -> str:
    """A cell's colour class: an outcome that passed or failed (by its words), else none."""
    words = _value(value).strip().lower()
    return "pass" if words in PASSED else "fail" if words in FAILED else ""


def write_page(path: Path, parts: list[Part], listings: list[tables.Listing] | None = None) -> None:
    """The page at ``path`` (``report --html``), renamed into place when complete."""
    runfolder.write_files(path.parent, {path.name: writer(parts, listings)})


def folder_name(folder: Path) -> str:
    """What a page calls a folder: its name ("." as the folder it stands for)."""
    return Path(os.path.abspath(folder)).name or str(folder)
