"""Progress that shows wherever the output goes: a rich bar on a terminal, and plain lines
every 30 seconds (and at the end) when stdout is a file, a CI log or `nohup`, where a live bar
prints nothing until it finishes."""

from __future__ import annotations

import time

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def duration(seconds: float) -> str:
    """12 s, 4m05s, 1h02m."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class StageProgress:
    """One stage's progress: `with StageProgress(console, "pre-train", 780) as p: p.update(k, "loss 3.9")`."""

    def __init__(self, console, label: str, total: int, completed: int = 0, every: float = 30.0,
                 transient: bool = True):
        self.console, self.label, self.total, self.every, self.transient = console, label, total, every, transient
        self.completed, self.note, self.bar = completed, "", None
        self.started = self.last_line = time.time()
        self.first: tuple[int, float] | None = None  # the first update: work resumed or set up before it
                                                     # does not count towards the rate

    def __enter__(self) -> "StageProgress":
        if self.console is not None and self.console.is_terminal:
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[note]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                console=self.console, transient=self.transient)
            self.bar.__enter__()
            self.task = self.bar.add_task(self.label, total=self.total, completed=self.completed, note="")
        return self

    def update(self, completed: int, note: str = "") -> None:
        self.completed, self.note = completed, note
        if self.first is None:
            self.first = (completed, time.time())
        if self.bar is not None:
            self.bar.update(self.task, completed=completed, note=note)
        elif self.console is not None and time.time() - self.last_line >= self.every:
            self._line()

    def advance(self, amount: int = 1, note: str = "") -> None:
        self.update(self.completed + amount, note or self.note)

    def since_first(self) -> tuple[int, float]:
        """Units done and seconds passed since the first update: the work this stage has timed."""
        if self.first is None:
            return 0, 0.0
        return self.completed - self.first[0], time.time() - self.first[1]

    def remaining(self) -> float | None:
        """Seconds left at the rate of this session's work, or None before any."""
        done, seconds = self.since_first()
        return (self.total - self.completed) * seconds / done if done > 0 else None

    def _line(self) -> None:
        self.last_line = time.time()
        left = self.remaining()
        share = self.completed / max(1, self.total)
        self.console.print(f"  {self.label}: {self.completed}/{self.total} ({share:.0%})"
                           + (f", {self.note}" if self.note else "")
                           + f", {duration(time.time() - self.started)}"
                           + (f", ~{duration(left)} left" if left is not None and self.completed < self.total else ""),
                           highlight=False, soft_wrap=True)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)
        elif self.console is not None and not self.transient and exc[0] is None and self.first is not None:
            self._line()  # a transient stage's caller prints its own closing line
