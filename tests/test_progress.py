"""Progress bars: live on a terminal, a few lines in a log (make demo's log was thousands of redraws)."""
from __future__ import annotations

import io
import sys
import time

from labkit._util import progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _lines(monkeypatch, stderr: io.StringIO) -> list[str]:
    monkeypatch.setattr(sys, "stderr", stderr)
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    bar = progress.progress_bar(total=None, desc="work", file=stderr, miniters=1)
    end = time.monotonic() + 0.8  # a job that takes longer than a terminal's redraw interval
    while time.monotonic() < end:
        bar.update(1)
    bar.close()
    return [line for line in stderr.getvalue().replace("\r", "\n").splitlines() if line.strip()]


def test_in_a_log_a_long_bar_is_a_few_lines(monkeypatch):
    lines = _lines(monkeypatch, io.StringIO())
    assert 1 <= len(lines) <= 3, lines
    assert "work" in lines[-1]


def test_on_a_terminal_the_bar_is_live(monkeypatch):
    assert progress.interactive() in (True, False)
    lines = _lines(monkeypatch, _Terminal())
    assert len(lines) > 3  # redrawn as it goes (tqdm's default 0.1 s interval)
