"""What ``engage`` shows on a terminal: rich tables on stdout, progress bars on stderr.

Only on a terminal: redirected to a file, a pipe or a CI log, the commands print the plain text
they always printed (scripts and tests read it), and no progress bar is drawn. The consoles are
made when something is printed, on the ``sys.stdout`` and ``sys.stderr`` of that moment, so a
redirection set up by the caller (pytest's capture, ``contextlib.redirect_stdout``) is followed.
rich itself is imported only when a table or a bar is drawn.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID


def is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or stand-in stream
        return False


def rich_stdout() -> bool:
    """True when stdout is a terminal: tables are drawn with rich."""
    return is_terminal(sys.stdout)


def print_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    title: str | None = None,
    left: Iterable[str] = (),
) -> None:
    """A rich table on stdout; ``left`` names the text columns, the others are right-aligned.

    Cells are shown as text, never read as rich markup: they hold the input's own values
    (a handle like ``[bold]x`` stays as it is).
    """
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    aligned_left = set(left)
    table = Table(title=title, title_justify="left", title_style="bold", header_style="bold")
    for column in columns:
        table.add_column(column, justify="left" if column in aligned_left else "right")
    for row in rows:
        table.add_row(*(Text(str(cell)) for cell in row))
    Console(file=sys.stdout, highlight=False).print(table)


def print_text(text: str, style: str | None = None) -> None:
    """A line (or lines) on stdout through rich, as text: no markup is read from it."""
    from rich.console import Console
    from rich.text import Text

    # soft_wrap: long lines are left to the terminal to wrap, not cut into rich's width
    Console(file=sys.stdout, highlight=False).print(Text(text, style=style or ""), soft_wrap=True)


class ProgressBars:
    """The progress hook the commands hand to training and serving: ``step(task, done, total)``
    moves the bar of ``task`` (one per kind of step: folds, scored candidates, Dask parts).

    Drawn on stderr when stderr is a terminal; elsewhere every call does nothing, so logs and
    captured output stay as they were.
    """

    def __init__(self, progress: Progress | None):
        self._progress = progress
        self._tasks: dict[str, TaskID] = {}

    @property
    def drawn(self) -> bool:
        return self._progress is not None

    def counter(self, task: str) -> Callable[[int, int], None] | None:
        """``counter(done, total)`` for the bar of ``task``; None when nothing is drawn, so the
        library takes its usual path."""
        if self._progress is None:
            return None
        return lambda done, total: self(task, done, total)

    def __call__(self, task: str, done: int, total: int) -> None:
        if self._progress is None:
            return
        if task not in self._tasks:
            self._tasks[task] = self._progress.add_task(task, total=total)
        self._progress.update(self._tasks[task], completed=done, total=total)


@contextmanager
def progress_bars() -> Iterator[ProgressBars]:
    """:class:`ProgressBars` for the time of a command; the bars are removed at the end."""
    if not is_terminal(sys.stderr):
        yield ProgressBars(None)
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(file=sys.stderr),
        transient=True,
        # Messages on stderr (training's step lines) print above the bars; stdout is left as
        # it is, so what a command prints there never moves to stderr.
        redirect_stdout=False,
    )
    with progress:
        yield ProgressBars(progress)
