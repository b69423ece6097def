"""Text delivery: how the streaming runner (streaming.py) drains a loop whose stream is a byte
channel. The device detokenizes (detok_push), so the CPU only reassembles byte strings and
decodes UTF-8 (never splitting a character) before handing text pieces to on_text.

TextDrain presents a ByteReader as the u32 reader the runner drives (skip_to_end, drain_into,
wait, dropped), so both kinds of stream share one pipelined loop; a run delivers tokens
(on_token) from a u32 stream or text (on_text) from a byte stream, never both."""

from __future__ import annotations

from typing import Callable, Optional

from .values import Channel


class TextDrain:
    """drain_into hands the text of every string readable now to on_text and returns how
    many strings it took (each detok_push string is one token); `out` is not used."""

    def __init__(self, channel: Channel, on_text: Optional[Callable[[str], None]],
                 **reader_options) -> None:
        self._reader = channel.reader(**reader_options)
        self._on_text = on_text

    @property
    def wait_strategy(self) -> str:
        """The wait strategy of the underlying reader (README, "Waiting")."""
        return self._reader.wait_strategy

    @wait_strategy.setter
    def wait_strategy(self, kind: str) -> None:
        self._reader.wait_strategy = kind

    def skip_to_end(self) -> None:
        self._reader.skip_to_end()

    def drain_into(self, out=None) -> int:
        before = self._reader.strings_read
        piece = self._reader.try_text()
        if piece and self._on_text is not None:
            self._on_text(piece)
        return self._reader.strings_read - before

    def wait(self, timeout: Optional[float] = None, until=None) -> str:
        return self._reader.wait(timeout, until=until)

    @property
    def dropped(self) -> int:
        return self._reader.dropped_items

    def __enter__(self) -> "TextDrain":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        try:
            # The loop's text is complete: a character cut off at its end becomes U+FFFD, as
            # a decoder of the whole token sequence would make it.
            tail = self._reader.finish() if exc_type is None else ""
            if tail and self._on_text is not None:
                self._on_text(tail)
        finally:
            self._reader.close()


def open_reader(channel: Channel, on_text: Optional[Callable[[str], None]], **reader_options):
    """The reader the streaming runner drains: the u32 reader, or a TextDrain for a byte
    channel."""
    if channel.bytes is not None:
        return TextDrain(channel, on_text, **reader_options)
    return channel.channel.reader(**reader_options)
