"""A tiny progress bar on stderr, quiet unless stderr is a terminal."""

from __future__ import annotations

import sys
import time

__all__ = ["Progress"]


def _fmt_seconds(s):
    s = int(round(s))
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class Progress:
    """``Progress(total, label)``; ``update(n=1, note="")``; ``close()``.

    Draws ``label [#####.....] done/total pct elapsed eta`` on one line,
    redrawn in place with ``\\r``.  ``enabled=None`` means "only if the
    stream is a TTY", so logs, pipes and pytest's capture stay clean.
    """

    def __init__(self, total, label="cells", stream=None, enabled=None, width=30, min_interval=0.1):
        self.total = max(int(total), 0)
        self.label = label
        self.stream = sys.stderr if stream is None else stream
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.enabled = enabled
        self.width = width
        self.min_interval = min_interval
        self.done = 0
        self.start = time.monotonic()
        self._last = 0.0
        self._note = ""

    def render(self):
        frac = self.done / self.total if self.total else 1.0
        filled = int(round(frac * self.width))
        elapsed = time.monotonic() - self.start
        eta = elapsed / self.done * (self.total - self.done) if self.done else float("nan")
        eta_s = _fmt_seconds(eta) if self.done else "?"
        bar = "#" * filled + "." * (self.width - filled)
        note = f"  {self._note}" if self._note else ""
        return (
            f"{self.label} [{bar}] {self.done}/{self.total} {100 * frac:3.0f}% "
            f"elapsed {_fmt_seconds(elapsed)} eta {eta_s}{note}"
        )

    def update(self, n=1, note=""):
        self.done = min(self.done + n, self.total)
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
