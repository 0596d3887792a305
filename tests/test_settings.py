"""Each setting declared once (initbench/settings.py): the command line, the Python API,
config files, run.json's reader and docs/configs.md all take it from its declaration, and
no default of the lesson's is written anywhere else in the package."""

import inspect
import os
import re
import shutil
import subprocess
import sys
from typing import Any, get_type_hints

import typer.main

import initbench as ib
from initbench import api, cli, config, settings
from initbench.storage import runfolder
from initbench.views import listings, tables

from .conftest import ROOT


def test_every_setting_has_its_parser_and_no_other() -> None:
    """A setting's parser is its declaration's, or a registry's that config registers."""
    assert set(config.PARSERS) == set(config.DECLARED)
    assert set(config.TRANSFER_PARSERS) == set(config.TRANSFER_DECLARED)
    for key, d in config.DECLARED.items():
        assert d.parse is None or config.PARSERS[key] is d.parse, key


def _options(command: str) -> dict[str, Any]:
    """A command's options as Click builds them from its signature, by name."""
    click_command = typer.main.get_command(cli.app).commands[command]  # type: ignore[attr-defined]
    return {p.name: p for p in click_command.params if p.param_type_name == "option"}


def test_the_command_lines_options_come_from_the_declarations() -> None:
    """Each command's option of a setting has the declared flags, metavar and help, and its
    help ends with the declared default (or the command's own, where it has one)."""
    own_defaults = {"transfer": {k: v for k, v in settings.TRANSFER_RUN.items()},
                    "evaluate": settings.EVALUATE_RUN, "coordcheck": {"seeds": 5, "hidden": "the network's"}}
    checked = 0
    for command in ("compare", "inspect", "coordcheck", "transfer", "evaluate", "sweep", "bench"):
        for name, option in _options(command).items():
            declared = config.DECLARED | (config.TRANSFER_DECLARED if command == "transfer" else {})
            d = declared.get(name)
            if d is None or (command, name) in (("bench", "seeds"), ("bench", "device")):  # bench's own
                continue
            checked += 1
            assert option.default is None, (command, name)  # unset: a config file or the default decides
            if name in own_defaults.get(command, {}) or name in ("out", "schemes"):
                continue  # the command says its own default
            help_text = " ".join((option.help or "").split())
            if d.shown is not None or not (d.default is None or d.default is False or d.default == ()):
                assert help_text.endswith(f"[default: {d.default_text}]"), (command, name, help_text)
            if command == "compare":
                assert tuple(option.opts + option.secondary_opts) == tuple(
                    part for flag in d.flags for part in flag.split("/")), name
                assert help_text.startswith(" ".join(config.described(d).split())), name
    assert checked > 60


def test_compare_takes_every_setting_of_a_run() -> None:
    """compare's options: every declared setting but its schemes (an argument there)."""
    assert set(_options("compare")) - {"config", "seed_list", "fmt", "quiet", "debug", "help"} == \
        set(config.DECLARED) - {"schemes"}


def test_the_apis_keywords_are_the_declarations() -> None:
    """help(ib.compare) shows each setting with its declared default; the typed keywords
    (``Unpack[Settings]``, what editors and type checkers read) name declared settings only,
    compare's every one of them."""
    for fn, run in ((ib.compare, {}), (ib.inspect, {}), (ib.evaluate, settings.EVALUATE_RUN),
                    (ib.sweep, settings.SWEEP_RUN)):
        keywords = {p.name: p.default for p in inspect.signature(fn).parameters.values()
                    if p.name in config.DECLARED and p.kind is p.KEYWORD_ONLY}
        assert keywords and keywords == {k: run.get(k, config.DECLARED[k].default) for k in keywords}, fn
    transfer = {p.name: p.default for p in inspect.signature(ib.transfer).parameters.values()}
    assert transfer["epochs"] == settings.TRANSFER_RUN["epochs"] and transfer["freeze"] is None  # the transfer's
    assert set(get_type_hints(api.Settings)) == set(config.DECLARED) - {"schemes"}
    for typed, keys in ((api.InspectSettings, api.INSPECT_OPTIONS), (api.EvaluateSettings, api.EVALUATE_OPTIONS),
                        (api.SweepSettings, api.SWEEP_OPTIONS)):
        assert set(get_type_hints(typed)) == set(keys) and set(keys) <= set(config.DECLARED)
    assert set(get_type_hints(api.TransferKeywords)) == set(config.DECLARED) | set(config.TRANSFER_DECLARED)
    assert "Unpack[Settings]" in str(inspect.get_annotations(api.compare.__wrapped__ if hasattr(
        api.compare, "__wrapped__") else api.compare)["settings"])


def test_run_json_is_read_by_the_declared_parsers() -> None:
    """What a run writes in run.json, each declared parser reads back to the same; a value
    of another kind is named by what its parser says."""
    written = config.resolve(None, {}).to_dict()
    for (section, key), (problem, _) in runfolder.RUN_INFO.items():
        if section == "config":
            assert problem(written[key]) is None, key
    epochs = runfolder.RUN_INFO[("config", "epochs")][0]
    assert epochs(0) == "must be at least 1" and epochs("2") == "must be a whole number"
    assert runfolder.RUN_INFO[("config", "schemes")][0]("rule") == "must be a list"


def test_docs_list_every_setting_as_declared() -> None:
    """docs/configs.md's table is the declarations' (scripts/settings_table.py writes it)."""
    text = (ROOT / "docs" / "configs.md").read_text()
    assert tables.markdown(listings.settings_listing()) in text
    assert all(f"| `{key}` |" in text for key in config.DECLARED)


# The lesson's defaults as code writes them (and the literal forms of FashionMNIST's training split).
LITERALS = [r"epochs\s*(:\s*int\s*)?=\s*2\b", r'"--epochs",\s*"2"', r"\blr\s*(:\s*float\s*)?=\s*(1e-3|0\.001)\b",
            r"batch_size\s*(:\s*int\s*)?=\s*100\b", r"dropout\s*(:\s*float\s*)?=\s*0\.2\b",
            r"\(256,\s*128\)", r"hidden_1:\s*int\s*=\s*256", r'get\("network",\s*"mlp"\)',
            r'get\("dataset",\s*"fashion-mnist"\)', r"48,000", r'"zeros",\s*"ones",\s*"uniform"']


def test_no_default_is_written_twice() -> None:
    """No literal copy of the lesson's defaults in the package outside settings.py: every
    other module reads them from the declarations."""
    found = []
    for path in (ROOT / "initbench").rglob("*.py"):
        if path.name == "settings.py" and path.parent.name == "initbench":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if any(re.search(pattern, code) for pattern in LITERALS) and not code.strip().startswith(('"', "'")):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert found == []


def test_the_finder_finds_a_copy(tmp_path) -> None:
    assert any(re.search(p, "    epochs: int = 2") for p in LITERALS)
    assert any(re.search(p, 'cmd = ["--epochs", "2"]') for p in LITERALS)


WARMUP = '''    unfreeze_lr: float | None = setting(None, "Their learning rate then.", parse=optional(POSITIVE),
                                        shown="a tenth of --lr", metavar="RATE", cli=float)
    warmup: int = setting(0, "Batches of linear learning-rate warm-up.", parse=whole(0), metavar="N")
'''
NEW_SETTING = '''
import inspect, sys
import typer.main
import initbench as ib
from initbench import cli, config
from initbench.errors import UsageError
from initbench.jobs import Job
from initbench.settings import TrainSettings
from initbench.storage import store

assert config.resolve(None, {"warmup": 3}).train.optim.warmup == 3  # a config key, parsed
try:
    config.resolve(None, {"warmup": -1})
except UsageError as e:
    print(e)
command = typer.main.get_command(cli.app).commands["compare"]
option = next(p for p in command.params if p.name == "warmup")
print(option.opts, option.help)
print(inspect.signature(ib.compare).parameters["warmup"])
print(store.key(Job("rule", 0, TrainSettings())), store.key(Job("rule", 0, TrainSettings.of(warmup=3))))
'''


def test_a_new_setting_is_one_declaration(tmp_path) -> None:
    """One field declared on OptimSettings (in a copy of the package) is at once a config key
    with its parser and its message, an option of compare with its help and default, and a
    keyword of ib.compare; a job at its default keeps its stored key, one that sets it has
    its own."""
    copy = tmp_path / "initbench"
    shutil.copytree(ROOT / "initbench", copy, ignore=shutil.ignore_patterns("__pycache__"))
    text = (copy / "settings.py").read_text()
    first = WARMUP.split("\n    warmup")[0] + "\n"
    assert first in text
    (copy / "settings.py").write_text(text.replace(first, WARMUP))
    done = subprocess.run([sys.executable, "-c", NEW_SETTING], capture_output=True, text=True, timeout=120,
                          env=os.environ | {"PYTHONPATH": str(tmp_path)}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    said = done.stdout.splitlines()
    assert said[0] == "Invalid --warmup: must be at least 0; got -1."
    assert said[1] == "['--warmup'] Batches of linear learning-rate warm-up. [default: 0]"
    assert said[2] == "warmup=0"
    default_key, warmup_key = said[3].split()
    assert default_key == "3d3f045181f92e02af6255b0e860660e15c455146b9a9620710d7583552caf95" != warmup_key
