"""Torch threads: the cores that are really free, measured so a passing blip does not count.

On 2 cores, 2 threads run ~3x slower than 1 when another process holds a core (a small model
trained from scratch: ~900 tokens/s against ~3,000), so a busy machine wants fewer threads. The old
half-second sample put a whole run on one thread whenever anything stirred in that half
second; now the idle share is sampled in several windows and the median decides, and long
jobs ask again at each stage.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Callable


def idle_share(seconds: float) -> float:
    """The share of all CPU time that was idle over `seconds`, from /proc/stat (the load
    average would remember jobs that already ended)."""
    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        return fields[3] + fields[4], sum(fields)  # idle + iowait, total

    idle0, total0 = sample()
    time.sleep(seconds)
    idle1, total1 = sample()
    return (idle1 - idle0) / max(1, total1 - total0)


def choose_threads(requested: int | None, windows: int = 5, window_seconds: float = 0.2,
                   measure: Callable[[float], float] = idle_share) -> tuple[int, str]:
    """(threads, why). `requested` (--threads) wins; otherwise the median idle share of
    `windows` samples, as whole cores. `measure` is a parameter so tests can script the load."""
    if requested:
        return requested, "asked for"
    cores = os.cpu_count() or 1
    try:
        shares = [measure(window_seconds) for _ in range(windows)]
    except (OSError, ValueError, IndexError):
        return cores, f"{cores} cores; no /proc/stat to see how busy they are"
    idle = statistics.median(shares) * cores
    threads = max(1, min(cores, round(idle)))
    return threads, (f"{cores} cores, {idle:.1f} idle (median of {windows} samples over "
                     f"{windows * window_seconds:.1f} s: {', '.join(f'{s * cores:.1f}' for s in shares)})")
