"""A tiny progress bar on stderr, quiet unless stderr is a terminal."""

from __future__ import annotations

import sys
import time

__all__ = ["Progress"]


def _fmt_seconds(s):
    s = int(round(s))
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class Progress:
    """``Progress(total, label, already=0)``; ``update(n=1, note="")``; ``close()``.

    Draws ``label [#####.....] done/total pct elapsed eta`` on one line,
    redrawn in place with ``\\r``.  ``enabled=None`` means "only if the
    stream is a TTY", so logs, pipes and pytest's capture stay clean.

    ``already`` items count as done from the start (cells a resumed sweep
    finds stored) but not in the rate.  The ETA is the remaining items times
    the seconds per item *since the first update*: the first item's start-up
    (worker processes importing, a kernel compiling or loading) is not
    extrapolated.  Until a second update it is "?".
    """

    def __init__(self, total, label="cells", stream=None, enabled=None, width=30, min_interval=0.1, already=0):
        self.total = max(int(total), 0)
        self.label = label
        self.stream = sys.stderr if stream is None else stream
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.enabled = enabled
        self.width = width
        self.min_interval = min_interval
        self.already = min(max(int(already), 0), self.total)
        self.done = self.already
        self.start = time.monotonic()
        self._first = None  # (time, done) at the first update
        self._last = 0.0
        self._note = ""

    def render(self):
        frac = self.done / self.total if self.total else 1.0
        filled = int(round(frac * self.width))
        elapsed = time.monotonic() - self.start
        eta = self.eta()
        eta_s = "?" if eta is None else _fmt_seconds(eta)
        bar = "#" * filled + "." * (self.width - filled)
        note = f"  {self._note}" if self._note else ""
        return (
            f"{self.label} [{bar}] {self.done}/{self.total} {100 * frac:3.0f}% "
            f"elapsed {_fmt_seconds(elapsed)} eta {eta_s}{note}"
        )

    def eta(self, now=None):
        """Seconds left, or None until two updates have given a rate."""
        now = time.monotonic() if now is None else now
        remaining = self.total - self.done
        if remaining == 0:
            return 0.0
        if self._first is not None and self.done > self._first[1]:
            t1, d1 = self._first
            return (now - t1) / (self.done - d1) * remaining
        return None

    def update(self, n=1, note=""):
        self.done = min(self.done + n, self.total)
        if self._first is None and n > 0:
            self._first = (time.monotonic(), self.done)
        self._note = note
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last >= self.min_interval or self.done == self.total:
            self._last = now
            self.stream.write("\r" + self.render()[:200] + "\x1b[K")
            self.stream.flush()

    def close(self):
        if self.enabled:
            self.stream.write("\r" + self.render()[:200] + "\x1b[K\n")
            self.stream.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
