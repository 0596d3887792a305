"""Progress on stderr: a live line in a terminal (what is happening, a bar and the time
left, the current loss), a line per stage and per epoch in a log, one output updated in
place in a notebook."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from contextlib import contextmanager
from html import escape
from typing import TYPE_CHECKING, Any

from rich.cells import cell_len
from rich.console import Console, RenderableType
from rich.progress import BarColumn, Progress, ProgressColumn, SpinnerColumn, Task, TextColumn
from rich.table import Column as RichColumn
from rich.text import Text

if TYPE_CHECKING:

    from initbench.jobs import Tick




BAR_WIDTH = 10  # so that, at 80 columns, a training line keeps its batch and its loss
COUNTED_WIDTH = len("42% eta 4:12")  # room kept for a counted stage's share and time left, at least


def shortened(text: str, width: int, kept: str = "") -> str:
    """``text``, and ``kept`` after it, in at most ``width`` characters. Parts go first, last
    first: those of ``text`` after ", " (the batch), then those in parentheses (which group
    of models), then ``kept`` (a training line's current loss, which the line promises),
    then those after ": " (the epoch); what is still too long is cut with "…"."""
    parts = _parts_of(text)
    for kind in (",", "(", None, ":"):  # None: ``kept``
        if kind is None:
            kept = kept if cell_len("".join(parts) + kept) <= width else ""
            continue
        for i in reversed(range(1, len(parts))):
            if cell_len("".join(parts) + kept) <= width:
                break
            if parts[i].lstrip().startswith(kind) or kind == ":" and parts[i].startswith(";"):
                del parts[i]
    text = "".join(parts) + kept
    return text if cell_len(text) <= width else text[:max(width - 1, 0)] + "…"


def _parts_of(text: str) -> list[str]:
    """``text`` cut before each ", ", ": ", "; " and " (" outside parentheses."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if depth == 0 and i > start and (text[i:i + 2] in (", ", ": ", "; ") or text[i:i + 2] == " ("):
            parts.append(text[start:i])
            start = i
        depth += (char == "(") - (char == ")")
    return parts + [text[start:]]


def counted(done: float, total: int, elapsed: float | None) -> str:
    """A counted stage's share done and the time left at its pace so far: "42% eta 4:12".
    The pace of the whole stage (evaluations and chunks' building included), not of the
    last seconds: an engine's steps come between pauses to evaluate."""
    share = f"{min(done / total, 1.0):.0%}" if total else "100%"
    if not done or not elapsed or done >= total:
        return share
    left = round(elapsed * (total - done) / done)
    hours, rest = divmod(left, 3600)
    return f"{share} eta " + (f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}")


class _Counted(ProgressColumn):
    """"42% eta 4:12" of a counted stage."""

    def render(self, task: Task) -> RenderableType:
        return Text("" if task.total is None else counted(task.completed, int(task.total), task.elapsed),
                    style="progress.remaining")


class Activity:
    """What a command is doing, on stderr: in a terminal, one line that updates (stage,
    models, epoch, batch, current loss, a bar and an ETA) and disappears when done;
    otherwise (logs, CI) one line per stage, and in training one per epoch with the share
    of the stage done and its ETA. ``quiet``: nothing."""

    def __init__(self, console: Console, quiet: bool = False) -> None:
        self.console, self.quiet, self.live = console, quiet, console.is_terminal and not quiet
        self.bar: Progress | None = None
        self.total: int | None = None  # of the stage shown
        self.done, self.started = 0, 0.0  # its steps so far, and when it began (a log's ETA)
        self.last_line, self.loss_shown_at, self.loss = "", 0.0, ""

    @contextmanager
    def running(self) -> Iterator[Activity]:
        if not self.live:
            yield self
            return
        with Progress(*self._columns(), console=self.console, transient=True, expand=True) as self.bar:
            self.task = self.bar.add_task("", total=None)
            yield self
        self.bar = None

    def _columns(self) -> tuple[ProgressColumn, ...]:
        """The live line, as wide as the terminal: a spinner and what is being done, and for a
        counted stage a bar and "42% eta 4:12". Every column but the description has a fixed
        width, so that only the description gives way (rich would otherwise shrink every
        column, the time left too, when a line is too long)."""
        described = (SpinnerColumn(table_column=RichColumn(width=1, no_wrap=True)),
                     TextColumn("{task.description}", table_column=RichColumn(ratio=1, no_wrap=True,
                                                                             overflow="ellipsis")))
        if self.total is None:
            return described
        return (*described, BarColumn(bar_width=BAR_WIDTH, table_column=RichColumn(width=BAR_WIDTH, no_wrap=True)),
                _Counted(table_column=RichColumn(no_wrap=True)))

    def _line(self, text: str, kept: str = "") -> str:
        """``text`` as the live line has room for it: shortened by its last parts first, and
        ``kept`` (the current loss) after it (``shortened``)."""
        fixed = 2  # the spinner, and a space after it
        if self.bar is not None and self.total is not None:
            task = self.bar.tasks[0]
            now = counted(task.completed, self.total, task.elapsed)
            fixed += BAR_WIDTH + 1 + max(len(now) + 1, COUNTED_WIDTH) + 1  # room for the time left to grow a little
        return shortened(text, self.console.width - fixed, kept)

    def note(self, text: str) -> None:
        """A line that stays (above the progress line, in a terminal)."""
        if not self.quiet:
            self.console.print(text, style="dim", soft_wrap=True)

    def say(self, text: str) -> None:
        """A message that stays, as it is (a sweep's plan)."""
        if not self.quiet:
            self.console.print(text)

    def stage(self, text: str, total: int | None = None) -> None:
        """A new stage (``total``: its steps, for a bar and an ETA; None: a spinner)."""
        self.total, self.done, self.started = total, 0, time.monotonic()
        if self.bar is not None:
            self.bar.columns = self._columns()
            self.bar.reset(self.task, total=total)
            self.bar.update(self.task, description=self._line(text))
        elif total is None and text != self.last_line:  # a counted stage is told by its steps
            self.note(text)
        self.last_line = text

    def advance(self, steps: int = 1, text: str | None = None, kept: str = "") -> None:
        """``steps`` more of the stage done, and what is being done now: ``text`` (in a
        terminal, shortened to fit; in a log, a line where it changed, with the share done
        and the ETA), ``kept`` after it (the current loss: in a terminal only)."""
        if self.bar is not None:
            self.bar.update(self.task, advance=steps)
            if text is not None:
                self.bar.update(self.task, description=self._line(text, kept))
        elif text is not None and text != self.last_line:  # counted before ``steps``: where an epoch begins
            self.note(text if not self.done or not self.total else
                      f"{text} ({counted(self.done, self.total, time.monotonic() - self.started)})")
            self.last_line = text
        self.done += steps

    def tick(self, tick: Tick) -> None:
        """An engine's report: steps trained (model-batches), or a stage of its own."""
        where = f"Training {tick.models}: epoch {tick.epoch}/{tick.epochs}"
        if tick.stage == "training":
            now = time.monotonic()
            if tick.losses is not None and now - self.loss_shown_at > 0.5:  # reading a loss may wait on a GPU
                finite = tick.losses[tick.losses.isfinite()]
                self.loss = f", loss {finite.mean():.3f}" if len(finite) else ", diverged"
                self.loss_shown_at = now
            self.advance(tick.steps, f"{where}, batch {tick.batch}/{tick.batches}" if self.live else where, self.loss)
        else:
            self.advance(0, f"{tick.stage.capitalize()} {tick.models}"
                         + (f" after epoch {tick.epoch}/{tick.epochs}" if tick.epoch else ""))


class NotebookActivity(Activity):
    """Progress in a Jupyter notebook: one output updated in place (at most five times a
    second): the notes, and the current stage with a bar and an ETA, which goes when done."""

    def __init__(self) -> None:
        super().__init__(Console(file=io.StringIO()))  # never printed to: shown through IPython's display
        self.live = True  # an engine's ticks then say the batch and the loss
        self.lines: list[str] = []
        self.shown_at = 0.0
        self.handle: Any = None

    @contextmanager
    def running(self) -> Iterator[Activity]:
        from IPython.display import display

        self.handle = display(self._bundle(), raw=True, display_id=True)
        try:
            yield self
        finally:
            self.last_line = ""
            self._show(force=True)
            self.handle, self.lines = None, []  # the notes stay in this output, not in the next

    def note(self, text: str) -> None:
        self.lines.append(text)
        self._show(force=True)

    def say(self, text: str) -> None:
        self.note(text)

    def stage(self, text: str, total: int | None = None) -> None:
        self.last_line, self.total, self.done, self.started = text, total, 0, time.monotonic()
        self._show(force=True)

    def advance(self, steps: int = 1, text: str | None = None, kept: str = "") -> None:
        self.done += steps
        self.last_line = text + kept if text else self.last_line
        self._show()

    def _show(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.handle is not None and (force or now - self.shown_at > 0.2):
            self.shown_at = now
            self.handle.update(self._bundle(), raw=True)

    def _bundle(self) -> dict[str, str]:
        """What the output shows, as text and as HTML (a <progress> bar)."""
        text, shown = list(self.lines), [escape(line) for line in self.lines]
        if self.last_line:
            bar, count = "", ""
            if self.total:
                count = " " + counted(self.done, self.total, time.monotonic() - self.started)
                bar = f'<progress value="{self.done}" max="{self.total}"></progress> '
            text.append(self.last_line + count)
            shown.append(bar + escape(self.last_line + count))
        return {"text/plain": "\n".join(text), "text/html": "<br>".join(shown)}
