"""The project's one progress line: count, rate and time left, at most once a second on a
terminal (rewritten in place) and once every few seconds in a log. Light (stdlib only):
the data stages use it too."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import TextIO


def hms(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    s = round(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Progress:
    """`Progress("decode", 13394, "images")`, then `update(n)` per piece of work and
    `finish()`. Bytes are shown in MB (unit="bytes"). `extra` is text (or a function
    giving it, called only when a line is written) put after the rate."""

    def __init__(
        self,
        label: str,
        total: int | None,
        unit: str = "images",
        stream: TextIO | None = None,
        every: float | None = None,
    ) -> None:
        self.label, self.unit = label, unit
        self.total = total if total and total > 0 else None
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every = every if every is not None else (1.0 if self.tty else 5.0)
        self.done = 0
        self.start = self.last = time.monotonic()

    def update(self, n: int = 1, extra: str | Callable[[], str] = "") -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self._write(now, extra, final=False)

    def finish(self, extra: str | Callable[[], str] = "") -> None:
        self._write(time.monotonic(), extra, final=True)

    def _amount(self, value: float) -> str:
        return f"{value / 1e6:,.1f}" if self.unit == "bytes" else f"{value:,.0f}"

    def _write(self, now: float, extra: str | Callable[[], str], final: bool) -> None:
        elapsed = max(now - self.start, 1e-9)
        rate = self.done / elapsed
        unit = "MB" if self.unit == "bytes" else self.unit
        text = f"{self.label}: {self._amount(self.done)}"
        if self.total:
            text += f"/{self._amount(self.total)} {unit} ({100 * self.done / self.total:3.0f}%)"
        else:
            text += f" {unit}"
        text += f" {self._amount(rate) if self.unit == 'bytes' else f'{rate:.1f}'} {unit}/s"
        if final:
            text += f" in {hms(elapsed)}"
        elif self.total and rate > 0:
            text += f", {hms(max(self.total - self.done, 0) / rate)} left"
        extra = extra() if callable(extra) else extra
        if extra:
            text += f" {extra}"
        if self.tty:
            self.stream.write("\r" + text.ljust(79) + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
