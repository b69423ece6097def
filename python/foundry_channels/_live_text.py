"""Streamed text on a terminal with a live status line kept on the line below it.

The text is written as it comes; the status line is redrawn under it after every chunk with
plain ANSI cursor moves (down, clear line, up, column). The cursor column is tracked here so
it can be restored after the status is drawn. Off a terminal, only the text is written.
"""

from __future__ import annotations

import shutil
from typing import TextIO


class LiveText:
    def __init__(self, out: TextIO, live: bool) -> None:
        self.out = out
        self.live = live
        self._line_len = 0  # characters written since the last newline
        self._status_shown = False

    def write(self, text: str, status: str = "") -> None:
        if not self.live:
            self.out.write(text)
            self.out.flush()
            return
        self._erase_status()
        self.out.write(text)
        self._advance(text)
        self._draw_status(status)
        self.out.flush()

    def finish(self, text: str = "") -> None:
        """Writes the rest of the text, removes the status line, ends the line."""
        if self.live:
            self._erase_status()
        self.out.write(text + "\n")
        self.out.flush()

    def _width(self) -> int:
        return max(20, shutil.get_terminal_size((80, 24)).columns)

    def _advance(self, text: str) -> None:
        last = text.rfind("\n")
        self._line_len = len(text) - last - 1 if last >= 0 else self._line_len + len(text)
        if self._line_len and self._line_len % self._width() == 0:
            # The terminal is in its "pending wrap" state at the last column: move to the
            # next line ourselves, so that the cursor column is known (0).
            self.out.write("\r\n")
            self._line_len = 0

    def _column(self) -> str:
        column = self._line_len % self._width()
        return f"\r\x1b[{column}C" if column else "\r"

    def _erase_status(self) -> None:
        if self._status_shown:
            self.out.write("\x1b[1B\r\x1b[2K\x1b[1A" + self._column())
            self._status_shown = False

    def _draw_status(self, status: str) -> None:
        if status:
            line = status[: self._width() - 1]
            self.out.write("\n\r\x1b[2K" + line + "\x1b[1A" + self._column())
            self._status_shown = True
