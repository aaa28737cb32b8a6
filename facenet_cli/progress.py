"""The one place that builds Rich progress bars (and plain periodic lines off a terminal)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

# Off a terminal (logs, pipes, CI) a line is never wrapped: a warning naming a long path stays
# one line that grep and log readers can match.
console = Console(stderr=True, soft_wrap=not sys.stderr.isatty())


class PlainProgress:
    """Progress for logs and pipes: one line per task every ``interval`` seconds, and at the end."""

    def __init__(self, interval: float = 10.0, stream: Any = None) -> None:
        self.interval = interval
        self.stream = stream or sys.stderr
        self.tasks: dict[int, dict[str, Any]] = {}
        self._next_id = 0

    def add_task(self, description: str, total: float | None = None, **fields: Any) -> int:
        task_id = self._next_id
        self._next_id += 1
        self.tasks[task_id] = {
            "description": description,
            "total": total,
            "completed": 0.0,
            "fields": fields,
            "start": time.monotonic(),
            "last": 0.0,
        }
        return task_id

    def update(
        self,
        task_id: int,
        *,
        advance: float = 0.0,
        completed: float | None = None,
        total: float | None = None,
        description: str | None = None,
        **fields: Any,
    ) -> None:
        task = self.tasks[task_id]
        task["completed"] = completed if completed is not None else task["completed"] + advance
        if total is not None:
            task["total"] = total
        if description is not None:
            task["description"] = description
        task["fields"].update(fields)
        now = time.monotonic()
        finished = task["total"] is not None and task["completed"] >= task["total"]
        if now - task["last"] >= self.interval or finished:
            task["last"] = now
            self._print(task)

    def advance(self, task_id: int, advance: float = 1.0) -> None:
        self.update(task_id, advance=advance)

    def _print(self, task: dict[str, Any]) -> None:
        total = task["total"]
        done = task["completed"]
        head = f"{done:g}/{total:g}" if total is not None else f"{done:g}"
        extra = " ".join(f"{k}={v}" for k, v in task["fields"].items() if v != "")
        elapsed = time.monotonic() - task["start"]
        print(
            f"{task['description']}: {head} {extra} [{elapsed:.0f}s]".rstrip(),
            file=self.stream,
            flush=True,
        )


@contextmanager
def progress_bars(*extra_columns: str, transient: bool = False) -> Iterator[Any]:
    """A Rich ``Progress`` on a terminal, ``PlainProgress`` otherwise.

    Args:
        extra_columns: names of task fields shown after the bar, e.g. ``"loss"`` renders
            ``task.fields['loss']``.
        transient: remove the bars when done.
    """
    if not console.is_terminal:
        yield PlainProgress()
        return
    columns = [
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(bar_width=None),
        MofNCompleteColumn(),
        *[TextColumn(f"{{task.fields[{name}]}}") for name in extra_columns],
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=console, transient=transient) as progress:
        yield progress


__all__ = ["PlainProgress", "TaskID", "console", "progress_bars"]
