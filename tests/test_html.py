"""report.html, the page to share, as a reader meets it: opened in a real browser (headless
Chromium driven over the DevTools protocol, tests/chromium.py) from a real compare run's and
a real sweep's folder. Nothing is fetched from the network, nothing is logged as an error,
the table shows what the command line printed, every picture decodes, a phone's width does
not scroll sideways, a screenshot is not blank and the page prints to PDF. The browser tests
are skipped where Debian's chromium is not installed (scripts/setup.sh installs it)."""

from __future__ import annotations

import csv
import io
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image  # matplotlib's own dependency
from typer.testing import CliRunner

from initbench import config
from initbench.analysis import expect
from initbench.cli import app
from initbench.views import htmlpage, tables

from . import chromium

runner = CliRunner()
PHONE, DESKTOP = 390, 1200  # CSS pixels: an iPhone 12-15's width, a laptop's


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    """One headless Chromium for the module, its tab reporting console, log, network and page events."""
    program = chromium.executable()
    if program is None:
        pytest.skip("Debian's chromium is not installed (scripts/setup.sh installs it): report.html is not opened "
                    "in a browser here")
    pytest.importorskip("websocket", reason="websocket-client (the test extra) drives the browser")
    tab = chromium.Browser(program, tmp_path_factory.mktemp("chromium-profile"))
    for domain in ("Runtime", "Log", "Network", "Page"):
        tab.send(f"{domain}.enable")
    yield tab
    tab.close()


@pytest.fixture(scope="module")
def compared(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A small real compare run (three schemes, two seeds, one epoch on 600 images) and the table it printed."""
    out = tmp_path_factory.mktemp("html") / "run"
    result = runner.invoke(app, ["compare", "rule", "zeros", "default", "--seeds", "2", "--epochs", "1",
                                 "--train-samples", "600", "--data-dir", str(data_dir), "--out", str(out), "--quiet",
                                 "--format", "markdown"])
    assert result.exit_code == 0, result.output
    return out, result.stdout


@pytest.fixture(scope="module")
def swept(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A tiny real sweep (two learning rates x two schemes x two seeds) and the table it printed."""
    tmp = tmp_path_factory.mktemp("html-sweep")
    grid = tmp / "grid.toml"
    grid.write_text(f'schemes = ["rule", "default"]\nseeds = 2\nepochs = 1\ntrain_samples = 600\nhidden = "32"\n'
                    f'data_dir = "{data_dir}"\n\n[grid]\nlr = [0.001, 0.01]\n')
    result = runner.invoke(app, ["sweep", str(grid), "--out", str(tmp / "sweep"), "--quiet", "--format", "markdown"])
    assert result.exit_code == 0, result.output
    return tmp / "sweep", result.stdout


def printed_rows(markdown: str) -> list[list[str]]:
    """The cells of a Markdown table's rows, as the command line printed them."""
    lines = [line for line in markdown.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines[2:]]


def visit(tab: chromium.Browser, page: Path, width: int) -> list[dict]:
    """Open ``page`` at ``width`` CSS pixels (a phone's: as a phone lays it out); the events it caused."""
    start = len(tab.events)
    tab.send("Emulation.setDeviceMetricsOverride", width=width, height=900, deviceScaleFactor=1, mobile=width < 600)
    tab.open(page.resolve().as_uri())
    return tab.events[start:]


def trouble(events: list[dict]) -> list[str]:
    """What a page must not cause: console errors, uncaught exceptions, errors in the log, or a
    request for anything but the file itself and its data: URLs."""
    found = []
    for event in events:
        method, params = event["method"], event["params"]
        if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            found.append(f"console error: {params['args']}")
        elif method == "Runtime.exceptionThrown":
            found.append(f"exception: {params['exceptionDetails']}")
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            found.append(f"log error: {params['entry']['text']}")
        elif method == "Network.requestWillBeSent" and not params["request"]["url"].startswith(("file:", "data:")):
            found.append(f"request: {params['request']['url']}")
    return found


def check_page(tab: chromium.Browser, page: Path, texts: list[str], pictures: int, shots: Path) -> None:
    """The page at a laptop's and at a phone's width, as the module's docstring says; screenshots in ``shots``."""
    html = page.read_text(encoding="utf-8")
    assert "<script" not in html and not re.search(r'(?:src|href)="(?!data:)', html)  # nothing to run or fetch
    assert trouble(visit(tab, page, DESKTOP)) == []
    shown = tab.evaluate("document.body.innerText")
    missing = [text for text in texts if text not in shown]
    assert not missing, f"not on the page: {missing}"
    images = tab.evaluate("Array.from(document.images, i => [i.complete, i.naturalWidth, i.naturalHeight])")
    assert len(images) == pictures and all(done and w > 0 and h > 0 for done, w, h in images), images
    (shots / "desktop.png").write_bytes(tab.screenshot(captureBeyondViewport=True))

    assert trouble(visit(tab, page, PHONE)) == []
    assert tab.evaluate("document.documentElement.scrollWidth") <= PHONE  # tables scroll in their own boxes
    boxes = tab.evaluate("Array.from(document.querySelectorAll('.scroll, pre, img, h1'), "
                         "e => e.getBoundingClientRect().right)")
    assert boxes and max(boxes) <= PHONE, boxes
    assert min(tab.evaluate("Array.from(document.images, i => i.getBoundingClientRect().width)")) > PHONE / 2
    screenshot = tab.screenshot()
    (shots / "phone.png").write_bytes(screenshot)
    pixels = np.asarray(Image.open(io.BytesIO(screenshot)).convert("L"), dtype=float)
    assert pixels.shape == (900, PHONE) and pixels.std() > 20  # text and lines on white: not a blank page

    pdf = tab.pdf()
    pages = re.findall(rb"/Type\s*/Page\b(?!s)", pdf)
    assert pdf.startswith(b"%PDF-") and len(pages) >= 2 and len(pdf) > 50_000  # its text, tables and pictures


def test_a_compare_runs_page_in_a_browser(browser: chromium.Browser, compared: tuple[Path, str],
                                          tmp_path: Path) -> None:
    out, printed = compared
    rows = printed_rows(printed)
    assert [row[0] for row in rows] == ["rule", "default", "zeros"]
    texts = [cell for row in rows for cell in row] + ["initbench compare --config config.toml", 'schemes = ["rule", '
             '"zeros", "default"]', "FashionMNIST", "The data files' SHA-256"]
    check_page(browser, out / htmlpage.PAGE, texts, pictures=2, shots=tmp_path)
    # The data files' digests, folded below where it ran: there for a reader who checks a copy, not in the way.
    folded = browser.evaluate("[document.querySelector('details.digests').open, "
                              "document.querySelector('details.digests').textContent]")
    assert folded[0] is False and "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888" in folded[1]


@pytest.fixture(scope="module")
def lesson(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lesson's six schemes with two expectations (one seed, one epoch on 600 images): a
    run whose settings hold long lines (schemes = [...], expect = [...])."""
    out = tmp_path_factory.mktemp("html-lesson") / "lesson"
    result = runner.invoke(app, ["compare", "--epochs", "1", "--train-samples", "600", "--data-dir", str(data_dir),
                                 "--expect", "rule > zeros", "--expect", "default >= 0.3", "--out", str(out),
                                 "--quiet", "--format", "csv"])
    assert result.exit_code == 0, result.output
    return out


# Each line of the settings (a text rect of the pre's contents) against the column it is laid out in:
# the columns' widths as CSS multi-column lays them out (column-width the least, gaps between).
OVERFLOWING = """(() => {
  const pre = document.querySelector('pre.settings'), style = getComputedStyle(pre), box = pre.getBoundingClientRect();
  const left = box.left + parseFloat(style.paddingLeft) + parseFloat(style.borderLeftWidth);
  const inner = pre.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
  const gap = parseFloat(style.columnGap), least = parseFloat(style.columnWidth);
  const n = Math.max(1, Math.floor((inner + gap) / (least + gap))), width = (inner - (n - 1) * gap) / n;
  const range = document.createRange();
  range.selectNodeContents(pre);
  return [n, Array.from(range.getClientRects()).filter(r => r.width > 0).filter(r => {
    const column = Math.min(n - 1, Math.max(0, Math.floor((r.left - left + 1) / (width + gap))));
    return r.right > left + column * (width + gap) + width + 1;
  }).map(r => [r.left, r.right])];
})()"""


@pytest.mark.parametrize("width", [900, 1200, 1600])
def test_long_settings_stay_in_their_column(browser: chromium.Browser, lesson: Path, width: int) -> None:
    """schemes = [...] and expect = [...] ran over the next column of the Settings block at a
    laptop's width: each line now wraps inside its own column."""
    page = lesson / htmlpage.PAGE
    assert trouble(visit(browser, page, width)) == []
    columns, over = browser.evaluate(OVERFLOWING)
    assert columns >= 2 and over == [], (columns, over)
    shown = browser.evaluate("document.querySelector('pre.settings').innerText").splitlines()
    assert shown == (lesson / "config.toml").read_text().splitlines()  # wrapped on screen, copied as written
    assert 'schemes = ["zeros", "ones", "uniform", "rule", "normal", "default"]' in shown
    assert 'expect = ["rule > zeros", "default >= 0.3"]' in shown


def test_the_page_says_what_chance_is_and_why_constant_starts_stall(browser: chromium.Browser, lesson: Path) -> None:
    """10% is chance (1 of 10 classes); which schemes stayed there; why a constant start cannot
    learn: beside the table, above the pictures and the SHA-256 lines."""
    assert trouble(visit(browser, lesson / htmlpage.PAGE, DESKTOP)) == []
    said = " ".join(browser.evaluate("document.querySelector('.meaning').innerText").split())
    assert "Chance is 10%: with 10 classes" in said
    with open(lesson / "accuracy.csv", newline="") as file:
        stalled = [row["scheme"] for row in csv.DictReader(file) if float(row["val_acc_mean"]) < 0.12]
    assert {"zeros", "ones"} <= set(stalled)  # constant starts, at chance on any CPU
    assert "stayed at chance (within 2 points of it)" in said and all(name in said for name in stalled)
    assert "start every unit of a layer with the same weights" in said and "symmetry problem" in said
    assert "ln 10 = 2.303" in said and "zeros ended there" in said  # zeros' loss: every class alike
    order = browser.evaluate("Array.from(document.querySelectorAll('.listing, .meaning, .figures, details.digests'),"
                             " e => e.className)")
    assert order == ["listing", "meaning", "figures", "digests"], order


def test_a_sweeps_page_in_a_browser(browser: chromium.Browser, swept: tuple[Path, str], tmp_path: Path) -> None:
    folder, printed = swept
    cells, best = printed.split("**Best learning rate by scheme**")  # a grid over lr: its best rate's table too
    rows = printed_rows(cells)
    assert len(rows) == 4 and {row[-1] for row in rows} & {"the baseline"}
    assert {row[0] for row in printed_rows(best)} == {"rule", "default"}
    texts = [cell for row in rows + printed_rows(best) for cell in row] + ["initbench sweep sweep.toml",
                                                                           "lr = [0.001, 0.01]"]
    check_page(browser, folder / htmlpage.PAGE, texts, pictures=3, shots=tmp_path)


def test_report_writes_one_page_of_several_runs(compared: tuple[Path, str], tmp_path: Path) -> None:
    """--html FILE: the table report prints (a Run column), then each run's pictures and settings;
    the folders' own report.html written again with their pictures, not with --no-pictures."""
    out, _ = compared
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / htmlpage.PAGE).unlink()
    page = tmp_path / "shared" / "both.html"
    page.parent.mkdir()
    result = runner.invoke(app, ["report", str(out), str(copy), "--html", str(page), "--no-pictures", "-f", "csv"])
    assert result.exit_code == 0, result.output
    html = page.read_text(encoding="utf-8")
    assert "initbench report: 2 runs" in html and html.count("data:image/png;base64,") == 4
    assert html.count("<table>") == 1 and ">Run</th>" in html and "<h2>run</h2>" in html and "<h2>copy</h2>" in html
    assert not (copy / htmlpage.PAGE).exists()  # --no-pictures writes nothing in the folders
    result = runner.invoke(app, ["report", str(copy), "-f", "csv"])
    assert result.exit_code == 0, result.output
    assert (copy / htmlpage.PAGE).read_text(encoding="utf-8").count("data:image/png;base64,") == 2
    assert not list(copy.glob(".*.tmp"))
    refused = runner.invoke(app, ["report", str(out), "--html", str(tmp_path)])
    assert refused.exit_code == 2 and "is a folder" in " ".join(refused.output.split())


def test_a_sweep_folders_page_is_rewritten_by_report(swept: tuple[Path, str]) -> None:
    folder, _ = swept
    (folder / htmlpage.PAGE).unlink()
    result = runner.invoke(app, ["report", str(folder), "-f", "csv"])
    assert result.exit_code == 0, result.output
    html = (folder / htmlpage.PAGE).read_text(encoding="utf-8")
    assert "initbench sweep: sweep" in html and "the baseline" in html and html.count("data:image/png") == 3


def test_expectations_and_odd_text_are_shown_escaped(tmp_path: Path) -> None:
    """An ``expectations`` record, where run.json holds one, as a table with its outcomes; a
    name with markup in it is text on the page, never markup."""
    listing = tables.Listing("<b>title</b>", [tables.Column("Scheme", ["<script>x</script>"], left=True)], [])
    outcomes = [expect.Outcome("rule > zeros", True, 3, 0.6, 0.5, 0.7), expect.Outcome("zeros >= 50%", False, 3,
                                                                                      0.1, 0.1, 0.1, 0.5)]
    info = {"expectations": [o.record() for o in outcomes]}
    html = htmlpage.page([htmlpage.Part(tmp_path, "run", "compare", info, [listing])])
    assert "<script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html and "&lt;b&gt;title" in html
    assert "1 of 2 expectations held." in html and html.index('pass">held<') < html.index('fail">failed<')
    assert "rule &gt; zeros: +60.00 points [+50.00, +70.00] over 3 seeds (better)" in html
    other = {"expectations": {"rule beats zeros": "met", "zeros learns": "missed"}}  # another layout: its keys shown
    html = htmlpage.page([htmlpage.Part(tmp_path, "run", "compare", other, [listing])])
    assert 'pass">met<' in html and 'fail">missed<' in html and "rule beats zeros" in html


def test_a_transfers_settings_run_it_again(tmp_path: Path) -> None:
    """The transfer's settings as its page shows them (TransferConfig.to_toml, in run.json) are a
    config file that `initbench transfer --config` reads back to the same experiment."""
    made = config.resolve_transfer(None, {"classes": "sandal,shirt", "seeds": 3, "epochs": 4, "unfreeze_after": 2,
                                          "freeze": 1, "source_epochs": 3, "lr": 0.01, "data_dir": str(tmp_path)})
    path = tmp_path / "transfer.toml"
    path.write_text(made.to_toml())
    assert config.resolve_transfer(path) == made
