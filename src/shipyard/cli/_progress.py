"""The progress bar of a local batch run: share of the file read, rows, rejected, rows/s,
and the llm calls made so far when the pipeline calls a language model.

The batch engine reports a ``shipyard.batch.Progress`` after every chunk (and, for llm
calls, while a chunk is scored, from another thread); drawing it is the command line's
business.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress

if TYPE_CHECKING:
    from ..batch import Progress


@contextmanager
def progress_bar(console: Console, label: str) -> Iterator[Callable[[Progress], None]]:
    """A rich progress bar on ``console``, fed by the ``on_progress`` callback it yields.

    The bar disappears when the run ends (the caller prints the summary); on a console
    that is not a terminal nothing is drawn.
    """
    bar = RichProgress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rows]:,} rows · {task.fields[rejected]:,} rejected"),
        TextColumn("· {task.fields[rate]:,.0f} rows/s"),
        TextColumn("{task.fields[calls]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
    with bar:
        task = bar.add_task(label, total=1.0, rows=0, rejected=0, rate=0.0, calls="")

        def update(progress: Progress) -> None:
            rate = progress.rows / progress.seconds if progress.seconds > 0 else 0.0
            done = progress.fraction
            bar.update(
                task,
                completed=done if done is not None else 0.0,
                total=1.0 if done is not None else None,
                rows=progress.rows,
                rejected=progress.rejected,
                rate=rate,
                calls=f"· {progress.llm_calls:,} llm calls" if progress.llm_calls else "",
            )

        yield update
