"""The documentation keeps its promises: README.md stays short, every link and anchor in
README.md and docs/ leads somewhere, every option the docs give a command is one it has,
and every command of the README's code blocks runs, at a small size, through the real CLI.

How a README command is run (``test_readme_command_runs``):

- Which: every line of the README's fenced ```bash blocks, and the ```python blocks of its
  "Recipes" section (each block as one script). Lines run in order, per section (the
  nearest heading above), each section in a fresh temporary folder that holds links to
  the repository's configs/, examples/ and scripts/, with $INITBENCH_DATA_DIR the
  session's data folder, the network unreachable, and $GITHUB_STEP_SUMMARY a file there.
- ``initbench ...`` lines run in this process through the CLI (Typer's runner), with the
  size-reducing options of ``SMALL`` for their command appended after the line's own (a
  later option wins), except where the line runs a config listed in ``AS_WRITTEN``.
  A trailing ``> FILE`` or ``>> FILE`` writes the command's stdout to FILE.
- ``python3 scripts/NAME.py ...`` lines run in this process too (``runpy``, with
  ``sys.argv`` set), as written: only those whose arguments ``RUN_SCRIPTS`` allows.
- Lines that need what this machine lacks, or take minutes, are skipped with the reason
  in ``SKIP`` (the test reports it); a line that is in neither fails, so that each new
  README line is a decision.
- Expected exit status: 0, or N where the line's comment says ``exits N``.
"""

from __future__ import annotations

import os
import re
import runpy
import shlex
import sys
import unicodedata
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from .conftest import NO_NETWORK, ROOT

README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.rglob("*.md"))]
MAX_README_LINES = 250

# ---------------------------------------------------------------------------------------
# Markdown, read as GitHub reads it (enough of it for links and headings)

FENCE = re.compile(r"^ {0,3}(```|~~~)(.*)$")
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_LINK = re.compile(r"<(?:a|img)\b[^>]*?\b(?:href|src)=\"([^\"]+)\"", re.IGNORECASE)
HTML_ANCHOR = re.compile(r"<a\b[^>]*?\b(?:name|id)=\"([^\"]+)\"", re.IGNORECASE)
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)


@dataclass(frozen=True)
class Block:
    """A fenced code block: its language, text, and the heading it sits under."""

    language: str
    text: str
    heading: str
    section: str  # the level-2 heading above it


def prose_and_blocks(text: str) -> tuple[list[str], list[Block]]:
    """The lines outside fenced code blocks, and the blocks (with their headings)."""
    prose: list[str] = []
    blocks: list[Block] = []
    fence: str | None = None
    language = ""
    body: list[str] = []
    heading = section = ""
    for line in text.splitlines():
        match = FENCE.match(line)
        if fence is None:
            if match:
                fence, language, body = match.group(1), match.group(2).strip().split(" ")[0], []
                continue
            prose.append(line)
            found = HEADING.match(line)
            if found:
                heading = found.group(2)
                if len(found.group(1)) <= 2:
                    section = heading
        elif match and match.group(1) == fence and not match.group(2).strip():
            blocks.append(Block(language, "\n".join(body), heading, section))
            fence = None
        else:
            body.append(line)
    return prose, blocks


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text: the rendered text (code spans' content, links'
    text, no tags), lower-cased, every character but letters, digits, marks, spaces, '-'
    and '_' dropped, each space a '-'."""
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = CODE_SPAN.sub(lambda m: m.group(2), text)
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LNM")
    return kept.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every anchor a page has: its headings' slugs (a repeated one gets -1, -2...) and its
    explicit HTML anchors."""
    prose, _ = prose_and_blocks(page.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    found: set[str] = set()
    for line in prose:
        match = HEADING.match(line)
        if match:
            base = slug(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
        found.update(HTML_ANCHOR.findall(line))
    return found


def links(page: Path) -> Iterator[tuple[int, str]]:
    """(line number, target) of every link and image outside code."""
    prose, _ = prose_and_blocks(page.read_text(encoding="utf-8"))
    # Prose keeps its line numbers only roughly (code blocks are left out); enough to find one.
    for number, line in enumerate(prose, 1):
        line = CODE_SPAN.sub("", line)
        for target in [*LINK.findall(line), *HTML_LINK.findall(line)]:
            yield number, target


def test_slug_follows_githubs_rules() -> None:
    assert slug("Sweeps on a Ray cluster: `--executor ray`") == "sweeps-on-a-ray-cluster---executor-ray"
    assert slug("The lesson's own table (`--lesson-eval`)") == "the-lessons-own-table---lesson-eval"
    assert slug("The store: `store.sqlite`") == "the-store-storesqlite"
    assert slug("`initbench compare [SCHEMES]...`") == "initbench-compare-schemes"
    assert slug("Sweeps at scale: `configs/sweep-bench.toml`") == "sweeps-at-scale-configssweep-benchtoml"
    assert slug("Yang et al. 2022 (μP) and [a link](x.md)") == "yang-et-al-2022-μp-and-a-link"
    assert slug("snake_case and **bold**") == "snake_case-and-bold"


def test_repeated_headings_get_numbered_anchors(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Notes\n\n## Notes\n\n```\n# Notes\n```\n\n## Notes\n", encoding="utf-8")
    assert anchors(page) == {"notes", "notes-1", "notes-2"}


# ---------------------------------------------------------------------------------------
# 1. The README stays short


def test_readme_is_at_most_250_lines() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, (
        f"README.md has {len(lines)} lines; at most {MAX_README_LINES}. Move reference material into docs/.")


# ---------------------------------------------------------------------------------------
# 2. Links and anchors resolve


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_and_anchor_resolves(page: Path) -> None:
    broken = []
    for number, target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # https:, mailto:...
            continue
        path_part, _, anchor = target.partition("#")
        path_part = urllib.parse.unquote(path_part)
        destination = (page.parent / path_part).resolve() if path_part else page
        if not destination.exists():
            broken.append(f"line ~{number}: {target}: no file {destination.relative_to(ROOT.resolve())}"
                          if destination.is_relative_to(ROOT.resolve()) else f"line ~{number}: {target}: no file")
            continue
        if anchor and destination.suffix == ".md" and urllib.parse.unquote(anchor) not in anchors(destination):
            broken.append(f"line ~{number}: {target}: no heading with the anchor #{anchor} in "
                          f"{destination.relative_to(ROOT.resolve())}")
    assert not broken, f"{page.relative_to(ROOT)}:\n" + "\n".join(broken)


def test_every_docs_page_says_first_what_it_covers() -> None:
    """Every page under docs/ starts with its title, then a sentence of prose (not a list,
    table, picture or code)."""
    bad = []
    for page in sorted(DOCS.rglob("*.md")):
        lines = [line for line in page.read_text(encoding="utf-8").splitlines() if line.strip()]
        if len(lines) < 2 or not lines[0].startswith("# ") or re.match(r"^\s*([-*|>!#]|```|\d+\.)", lines[1]):
            bad.append(str(page.relative_to(ROOT)))
    assert not bad, f"pages that do not open with a title and a sentence: {bad}"


# ---------------------------------------------------------------------------------------
# 3a. Every option the docs give a command is one the command has


def _cli_options() -> dict[str, set[str]]:
    """Each command's option names (and the top level's, under ""), from the real CLI."""
    import typer.main

    from initbench.cli import app

    group = typer.main.get_command(app)
    names: dict[str, set[str]] = {"": {o for p in group.params for o in (*p.opts, *p.secondary_opts)}}
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        names[name] = {o for p in command.params for o in (*p.opts, *p.secondary_opts)} | {"--help", "-h"}
    names[""] |= {"--help", "-h"}
    return names


def _commands_in(page: Path) -> Iterator[str]:
    """Every ``initbench ...`` command line the page shows: in code blocks (a ``$ `` prompt
    dropped, continued lines joined) and in code spans."""
    text = page.read_text(encoding="utf-8")
    prose, blocks = prose_and_blocks(text)
    for block in blocks:
        for line in block.text.replace("\\\n", " ").splitlines():
            line = line.strip().removeprefix("$ ")
            if line.startswith("initbench "):
                yield line
    for span in CODE_SPAN.finditer("\n".join(prose)):
        content = " ".join(span.group(2).split())
        if content.startswith("initbench "):
            yield content


def test_every_option_in_the_docs_exists() -> None:
    """``initbench schemes --json``, say, is a lie: the option is ``-f json``."""
    options = _cli_options()
    wrong = []
    for page in PAGES:
        for line in _commands_in(page):
            try:
                words = shlex.split(line, comments=True)
            except ValueError:  # an unbalanced quote in a span cut short: the words up to it
                words = line.split()
            command = words[1] if len(words) > 1 and not words[1].startswith("-") else ""
            if command and command not in options:
                if command.isupper():  # initbench COMMAND --help
                    continue
                wrong.append(f"{page.relative_to(ROOT)}: {line}: no command {command!r}")
                continue
            for word in words[1:]:
                if word in ("|", ">", ">>", "&&", ";"):
                    break
                name = word.split("=", 1)[0]
                if name.startswith("-") and len(name) > 1 and not re.fullmatch(r"-?\d.*", name) \
                        and name not in options[command]:
                    wrong.append(f"{page.relative_to(ROOT)}: {line}: {command or 'initbench'} has no option {name}")
    assert not wrong, "\n".join(wrong)


# ---------------------------------------------------------------------------------------
# 3b. Every command of the README's code blocks runs, at a small size

# Appended to an `initbench COMMAND` line (after its own options: the last one counts).
# configs/smoke.toml's runs too: one epoch on 2,000 images instead of 6,000, three seeds (so the
# README's expectations on them must hold at both sizes: after 20 steps rule's seeds still lie
# up to 10 points apart, too far for an interval of two seeds, with its t of 12.7, to clear 0).
SMALL: dict[str, list[str]] = {
    "compare": ["--epochs", "1", "--train-samples", "2000", "--seeds", "3"],
    "sweep": ["--set", "seeds=2", "--set", "epochs=1", "--set", "train_samples=500", "--set", "hidden=32x2",
              "--set", "activation=relu"],
    "transfer": ["--seeds", "2", "--epochs", "1", "--train-samples", "100", "--source-epochs", "1"],
    "bench": ["--no-whole-process", "--repeats", "1", "--seeds", "1"],
}
# A gpt's line (the transformer lab): its own small settings instead (a text has no images to subset).
SMALL_TEXT: dict[str, list[str]] = {
    "compare": ["--epochs", "1", "--steps", "5", "--hidden", "32x2", "--context", "16", "--seeds", "2"],
}
# A line that runs one of these configs is already small: it runs as written.
AS_WRITTEN = ("configs/sweep-smoke.toml",)
# python3 scripts/... lines that run (as written): script and arguments.
RUN_SCRIPTS = {("scripts/papers.py", ("he-2015", "--smoke"))}
# Lines skipped, by how they start (or what they hold), with the reason.
SKIP: list[tuple[str, str]] = [
    ("bash scripts/setup.sh", "installs system and pip packages; this session is set up already"),
    ("python3 -m pytest", "the test suite, which this test is part of"),
    ("bash .ci/run", "CI's whole run: set-up and the test suite"),
    ("python3 scripts/papers.py", "all ten claims, about two hours in all; the --smoke line runs the same machinery"),
    ("pip install", "installs packages"),
    ("ray ", "starts or stops a Ray cluster"),
    ("tensorboard ", "starts TensorBoard's server"),
]
SKIP_IF_HOLDS: list[tuple[str, str]] = [
    ("--executor ray", ("needs a Ray cluster (--ray-address auto); tests/test_ray.py runs the Ray executor on a "
                        "local runtime")),
]


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@dataclass(frozen=True)
class Command:
    section: str  # the heading above it
    index: int
    kind: str  # "shell" or "python"
    text: str

    @property
    def id(self) -> str:
        return f"{slug(self.section)}-{self.index}"


def readme_commands() -> list[Command]:
    """The README's runnable lines, in order: each line of a ```bash block (continued lines
    joined), and each ```python block of the Recipes section as one."""
    _, blocks = prose_and_blocks(README.read_text(encoding="utf-8"))
    found: list[Command] = []
    counts: dict[str, int] = {}
    for block in blocks:
        if block.language == "bash":
            pieces = [line for line in block.text.replace("\\\n", " ").splitlines() if line.strip()]
            kind = "shell"
        elif block.language == "python" and block.section == "Recipes":
            pieces, kind = [block.text], "python"
        else:
            continue
        for piece in pieces:
            counts[block.heading] = counts.get(block.heading, 0) + 1
            found.append(Command(block.heading, counts[block.heading], kind, piece.strip()))
    return found


COMMANDS = readme_commands()


def why_skipped(command: Command) -> str | None:
    if command.kind == "python":
        return None
    line = command.text
    for start, reason in SKIP:
        if line.startswith(start) and not _script_runs(line):
            return reason
    for held, reason in SKIP_IF_HOLDS:
        if held in line:
            return reason
    if "--device cuda" in line and not _cuda():
        return "needs a CUDA GPU, and this machine has none"
    if line.startswith("initbench ") or _script_runs(line):
        return None
    pytest.fail(f"README line {line!r} is neither run nor skipped by tests/test_docs.py: add it to SKIP, with the "
                "reason, or make it an initbench command")


def _script_runs(line: str) -> bool:
    words = shlex.split(line, comments=True)
    return len(words) >= 2 and words[0] == "python3" and (words[1], tuple(words[2:])) in RUN_SCRIPTS


@dataclass
class Outcome:
    status: int | None  # None: skipped
    output: str
    expected: int = 0
    skipped: str | None = None


@pytest.fixture(scope="module")
def readme_run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Outcome]]:
    """Runs the README's commands a section at a time, as the tests ask for them; each
    outcome by its command's id."""
    outcomes: dict[str, Outcome] = {}
    done: set[str] = set()

    def run_section(section: str) -> None:
        folder = tmp_path_factory.mktemp(slug(section) or "readme")
        for name in ("configs", "examples", "scripts"):
            (folder / name).symlink_to(ROOT / name)
        env = {**NO_NETWORK, "INITBENCH_DATA_DIR": str(data_dir), "GITHUB_STEP_SUMMARY": str(folder / "summary.md"),
               "COLUMNS": "120"}
        with pytest.MonkeyPatch.context() as patch:
            patch.chdir(folder)
            for key, value in env.items():
                patch.setenv(key, value)
            for command in COMMANDS:
                if command.section != section:
                    continue
                reason = why_skipped(command)
                expected = int(m.group(1)) if (m := re.search(r"#.*\bexits? (\d+)", command.text)) else 0
                if reason is not None:
                    outcomes[command.id] = Outcome(None, "", expected, reason)
                    continue
                run = _python if command.kind == "python" else _script if command.text.startswith("python3 ") \
                    else _initbench
                try:
                    outcomes[command.id] = run(command.text, expected)
                except Exception as e:  # noqa: BLE001  (reported by the command's test; the next ones run)
                    import traceback

                    outcomes[command.id] = Outcome(1, "".join(traceback.format_exception(e)), expected)

    class Lazy(dict):
        def __missing__(self, key: str) -> Outcome:
            command = next(c for c in COMMANDS if c.id == key)
            if command.section not in done:
                done.add(command.section)
                run_section(command.section)
            return outcomes[key]

    yield Lazy()


def _initbench(line: str, expected: int) -> Outcome:
    from initbench.cli import app

    words = shlex.split(line, comments=True)
    redirect = None
    if len(words) >= 3 and words[-2] in (">", ">>"):
        redirect, words = (words[-2], os.path.expandvars(words[-1])), words[:-2]
    assert not any(w in ("|", ">", ">>", "&&", ";", "<") for w in words), f"shell syntax the test cannot run: {line}"
    args = words[1:]
    if args and not any(config in line for config in AS_WRITTEN):
        args += (SMALL_TEXT if "--network gpt" in line else SMALL).get(args[0], [])
    result = CliRunner().invoke(app, args)
    if redirect is not None:
        with open(redirect[1], "a" if redirect[0] == ">>" else "w", encoding="utf-8") as file:
            file.write(result.stdout)
    output = f"$ initbench {shlex.join(args)}\n{result.output}"
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        import traceback

        output += "".join(traceback.format_exception(result.exception))
    return Outcome(result.exit_code, output, expected)


def _script(line: str, expected: int) -> Outcome:
    words = shlex.split(line, comments=True)
    argv = sys.argv
    sys.argv = words[1:]
    try:
        runpy.run_path(str(ROOT / words[1]), run_name="__main__")
        status = 0
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = argv
    return Outcome(status, f"$ {line}", expected)


def _python(code: str, expected: int) -> Outcome:
    try:
        exec(compile(code, "README.md (a Recipes python block)", "exec"), {"__name__": "__readme__"})  # noqa: S102
        return Outcome(0, code, expected)
    except Exception as e:  # noqa: BLE001  (reported by the test)
        import traceback

        return Outcome(1, code + "\n" + "".join(traceback.format_exception(e)), expected)


@pytest.mark.parametrize("command", COMMANDS, ids=[c.id for c in COMMANDS])
def test_readme_command_runs(command: Command, readme_run: dict[str, Outcome]) -> None:
    outcome = readme_run[command.id]
    if outcome.skipped is not None:
        pytest.skip(f"{command.text!r}: {outcome.skipped}")
    assert outcome.status == outcome.expected, (
        f"README ({command.section}): {command.text}\nexit {outcome.status}, expected {outcome.expected}\n"
        f"{outcome.output[-4000:]}")


def test_the_readme_has_runnable_recipes() -> None:
    """The recipes are found: the README's sections this test runs are there, each with a
    command (a renamed heading or a dropped fence would silently run nothing)."""
    sections = {c.section for c in COMMANDS}
    for expected in ("Set up and run", "Your own scheme", "In a notebook: the Python API", "A sweep",
                     "CI: fail the build when a finding breaks", "A GPU box or a Ray cluster",
                     "The papers' claims"):
        assert expected in sections, f"no runnable code block under the README's heading {expected!r}"
    assert any(c.kind == "python" for c in COMMANDS)


# ---------------------------------------------------------------------------------------
# 4. The scheme contracts' examples (docs/your-own-scheme.md) do what the page says


def test_the_scheme_contracts_examples_do_what_the_page_says(data_dir: Path, tmp_path: Path) -> None:
    """Each ```python block of the page saved as a file named after its function, then used as
    the page says: ZerO's residual rule zeroes exactly the layers that end a residual branch;
    the whole-model example's logits on context.batch have the std it is given; and
    context.batch holds min(500, training images) images (all 300 under train_samples 300)."""
    import torch

    from initbench import data
    from initbench.initializers.registry import layer_records
    from initbench.jobs import Job
    from initbench.settings import DataSettings, TrainSettings
    from initbench.training import streams

    _, blocks = prose_and_blocks((DOCS / "your-own-scheme.md").read_text(encoding="utf-8"))
    files = {}
    for block in blocks:
        if block.language == "python" and (defined := re.search(r"^def (\w+)\(", block.text, re.MULTILINE)):
            files[defined[1]] = tmp_path / f"{defined[1]}.py"
            files[defined[1]].write_text(block.text + "\n")
    assert {"zero_", "calibrated"} <= set(files), files
    (tmp_path / "probe.py").write_text("def probe(model, context):\n"
                                       "    for layer in model.layers:\n        layer.weight.zero_()\n"
                                       "        layer.bias.zero_()\n"
                                       "    return [f'{len(context.batch)} images'] * len(model.layers)\n")
    x_train = data.load(data_dir, DataSettings(train_samples=300)).x_train

    resmlp = TrainSettings.of(network="resmlp", hidden=(64, 64), train_samples=300)
    model, _ = streams.start(Job(f"{files['zero_']}:zero_", 0, resmlp), x_train)
    ends = [record.ends_branch for record in layer_records(model)]
    assert ends == [False, False, True, False, True, False]  # input, two blocks of (W1, W2), output
    assert [bool((layer.weight == 0).all()) for layer in model.layers] == ends

    mlp = TrainSettings.of(train_samples=300)
    for spec, std in ((f"{files['calibrated']}:calibrated", 1.0), (f"{files['calibrated']}:calibrated:0.1", 0.1)):
        model, provenance = streams.start(Job(spec, 0, mlp), x_train)
        with torch.no_grad():
            assert float(model(x_train).std()) == pytest.approx(std, rel=1e-4)  # the batch is all 300 images
        assert provenance[-1] == f"He normal, logits scaled to std {std:g}"
    assert streams.start(Job(f"{tmp_path / 'probe.py'}:probe", 0, mlp), x_train)[1][0] == "300 images"
    assert streams.start(Job(f"{tmp_path / 'probe.py'}:probe", 0, TrainSettings.of(train_samples=600)),
                              data.load(data_dir, DataSettings(train_samples=600)).x_train)[1][0] == "500 images"


# A time a text states ("about 6 s", "4 minutes", "a minute or two"), and the machines times are measured on.
TIME = re.compile(r"\b\d+(?:\.\d+)?(?:(?: to |-)\d+)? (?:s|seconds?|min|minutes?|h|hours?)\b|\ba minute\b|\bminutes\b")
MACHINE = re.compile(r"Xeon|EPYC|GPU")


def test_configs_and_the_notebook_say_where_their_times_were_measured() -> None:
    """"Well under a minute on 2 CPU cores", "a minute or two on a laptop's CPU": times that
    did not hold on a 2-core AMD EPYC under load. A config's comment, or a text cell of the
    lesson notebook, that states a time names the machine it was measured on."""
    import json

    texts = {str(path.relative_to(ROOT)): "\n".join(line for line in path.read_text().splitlines()
                                                    if line.lstrip().startswith("#"))
             for path in sorted((ROOT / "configs").glob("**/*.toml"))}
    cells = json.loads((ROOT / "examples" / "lesson.ipynb").read_text())["cells"]
    texts |= {f"examples/lesson.ipynb, cell {i}": "".join(cell["source"]) for i, cell in enumerate(cells)
              if cell["cell_type"] == "markdown"}
    unsaid = [where for where, text in texts.items() if TIME.search(text) and not MACHINE.search(text)]
    assert not unsaid, f"a time without the machine it was measured on: {unsaid}"
    assert any(TIME.search(text) for text in texts.values())  # the times are there, named

