"""Byte channels: a device pushes variable-length byte strings (a token's UTF-8 bytes), the
CPU reads them as `bytes` or as text that never splits a UTF-8 code point.

A byte channel is a u32 channel whose items carry up to three bytes each (the format is defined
with the kernels, csrc/kernels/bytes_kernels.inc), so it inherits the u32 channel's protocol:
self-validating slots, drop-oldest with exact counts, one consumer, every wait bounded.

    ch = fc.ByteChannel(dev, capacity_bytes=1 << 16)
    cb = dev.new_queue().command_buffer()
    ch.encode_init(cb)
    ch.encode_push(cb, buffer, length)          # or encode_push_token(cb, vocab, token)
    ch.encode_close(cb)
    cb.commit()
    for piece in ch.reader().text(timeout=5):
        print(piece, end="")
"""

from __future__ import annotations

import codecs
import threading
from typing import AsyncIterator, Iterator, Optional

from ._core import MAX_CAPACITY, Buffer, ChannelError, ChannelU32, CommandBuffer, Device

# The item format (csrc/kernels/bytes_kernels.inc): three bytes, a 2-bit count, start and end.
_COUNT_SHIFT = 24
_START = 1 << 30
_END = 1 << 31
BYTES_PER_ITEM = 3


def byte_capacity_problem(capacity_bytes) -> Optional[str]:
    """Why `capacity_bytes` cannot size a ByteChannel, or None when it can."""
    if isinstance(capacity_bytes, bool) or not isinstance(capacity_bytes, int) \
            or not 1 <= capacity_bytes <= MAX_CAPACITY * BYTES_PER_ITEM:
        return f"must be 1..{MAX_CAPACITY * BYTES_PER_ITEM} bytes, got {capacity_bytes!r}"
    return None


def items_for_string(length: int) -> int:
    """The channel items one string of `length` bytes takes (bytes_kernels.inc)."""
    return max(1, -(-length // BYTES_PER_ITEM))


def _items_for(capacity_bytes: int) -> int:
    if isinstance(capacity_bytes, bool) or not isinstance(capacity_bytes, int):
        raise TypeError(f"ByteChannel(capacity_bytes) must be an int, got {capacity_bytes!r}")
    problem = byte_capacity_problem(capacity_bytes)
    if problem:
        raise ValueError(f"ByteChannel(capacity_bytes) {problem}")
    items = -(-capacity_bytes // BYTES_PER_ITEM)
    return 1 << (items - 1).bit_length()


class ByteChannel:
    """A device-to-host channel of byte strings, at least `capacity_bytes` bytes of ring."""

    def __init__(self, device: Device, capacity_bytes: int) -> None:
        self.channel = ChannelU32(device, _items_for(capacity_bytes))

    @property
    def capacity_bytes(self) -> int:
        return self.channel.capacity * BYTES_PER_ITEM

    @property
    def device(self) -> Device:
        return self.channel.device

    def encode_init(self, cb: CommandBuffer) -> None:
        cb.channel_init(self.channel)

    def encode_close(self, cb: CommandBuffer) -> None:
        cb.channel_close(self.channel)

    def encode_push(self, cb: CommandBuffer, source: Buffer, length: int, offset: int = 0,
                    stop_flag: Optional[Buffer] = None) -> None:
        """Pushes bytes [offset, offset + length) of `source` (written by the device or the CPU)
        as one string; with `stop_flag`, skipped on the device once stop_flag[0] != 0."""
        if offset + length > source.nbytes:
            raise ValueError(f"encode_push: bytes {offset}..{offset + length} are past the end of "
                             f"the {source.nbytes}-byte source buffer")
        if -(-(offset + length) // 4) * 4 > source.nbytes:
            raise ValueError("encode_push: the source buffer's size must be a multiple of 4 bytes "
                             "(the device reads it as u32 words)")
        cb.dispatch("bytes_push", 1, channel=self.channel, source=source, stop_flag=stop_flag,
                    capacity=self.channel.capacity, offset=offset, length=length,
                    predicated=1 if stop_flag is not None else 0)

    def encode_push_token(self, cb: CommandBuffer, vocab: Buffer, tokens: Buffer,
                          index: int = 0, stop_flag: Optional[Buffer] = None) -> None:
        """Device-side detokenization: pushes the bytes of the token id tokens[index] (u32,
        written by the device: a decode step's output) from a vocabulary table
        (foundry_channels.lm.vocab.Vocabulary.upload). A token outside the table pushes U+FFFD."""
        if (index + 1) * 4 > tokens.nbytes:
            raise ValueError(f"encode_push_token: index {index} is past the end of the "
                             f"{tokens.nbytes // 4}-token buffer")
        cb.dispatch("detok_push", 1, channel=self.channel, vocab=vocab, tokens=tokens,
                    stop_flag=stop_flag, capacity=self.channel.capacity, index=index,
                    predicated=1 if stop_flag is not None else 0)

    def reader(self) -> "ByteReader":
        return ByteReader(self)


# Invalid UTF-8 is replaced (U+FFFD) and counted; the count is per decode call, kept per thread.
_replacements = threading.local()


def _replace_and_count(error: UnicodeDecodeError):
    _replacements.count = getattr(_replacements, "count", 0) + 1
    return "\ufffd", error.end


codecs.register_error("foundry_channels.replace_counted", _replace_and_count)


class ByteReader:
    """The CPU side of a ByteChannel (its u32 channel's one consumer).

    A string that lost items to drop-oldest is never returned in part: the reader skips to the
    next string's first item and counts the loss (`lost_strings`; `dropped_items` counts every
    item overwritten before it was read)."""

    def __init__(self, channel: ByteChannel, **reader_options) -> None:
        # reader_options go to ChannelU32.reader (e.g. wait_strategy)
        self._items = channel.channel.reader(**reader_options)
        self._next_index: Optional[int] = None  # index after the last item taken
        self._partial = bytearray()
        self._in_string = False
        self._decoder = codecs.getincrementaldecoder("utf-8")("foundry_channels.replace_counted")
        self.lost_strings = 0
        self.strings_read = 0  # complete strings returned (a detok_push string is one token)
        self.replaced = 0  # invalid byte sequences replaced by U+FFFD in text()

    @property
    def dropped_items(self) -> int:
        return self._items.dropped

    def _accept(self, index: int, value: int) -> Optional[bytes]:
        """Adds item `index` to the string being assembled; the string once it is complete."""
        if self._next_index is not None and index != self._next_index and self._in_string:
            self.lost_strings += 1  # items of the string being assembled were overwritten
            self._partial.clear()
            self._in_string = False
        self._next_index = index + 1
        if value & _START:
            self._partial.clear()
            self._in_string = True
        elif not self._in_string:
            return None  # the middle of a string whose start was lost: skip to the next start
        count = (value >> _COUNT_SHIFT) & 3
        self._partial += (value & 0xFFFFFF).to_bytes(3, "little")[:count]
        if not value & _END:
            return None
        self._in_string = False
        done = bytes(self._partial)
        self._partial.clear()
        self.strings_read += 1
        return done

    def _take(self) -> Optional[bytes]:
        """The next complete string if its items are readable now, else None (never blocks)."""
        while (value := self._items.try_next()) is not None:
            done = self._accept(self._items.last_index, value)
            if done is not None:
                return done
        return None

    @property
    def wait_strategy(self) -> str:
        """The wait strategy of the underlying reader (README, "Waiting")."""
        return self._items.wait_strategy

    @wait_strategy.setter
    def wait_strategy(self, kind: str) -> None:
        self._items.wait_strategy = kind

    def skip_to_end(self) -> None:
        """Skips every string readable now (a reader that wants only what comes next; the
        device publishes each string whole, so the next item read starts a string)."""
        self._items.skip_to_end()
        self._next_index = None
        self._partial.clear()
        self._in_string = False

    def wait(self, timeout: Optional[float] = None, until=None) -> str:
        """Blocks until an item is readable, the channel is closed and drained, `timeout` s
        passed or the command buffer `until` completed: ChannelU32Reader.wait's states."""
        if until is None:
            return self._items.wait(timeout)
        return self._items.wait(timeout, until=until)

    def finish(self) -> str:
        """The end of the text: an incomplete code point left at the end becomes U+FFFD
        (counted in `replaced`); the decoder starts afresh after it."""
        return self._decode(b"", final=True)

    def close(self) -> None:
        """Ends this reader (a channel has one reader at a time)."""
        self._items.close()

    def __enter__(self) -> "ByteReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def try_next(self) -> Optional[bytes]:
        """The next string, or None when no complete string is readable now."""
        return self._take()

    def next(self, timeout: Optional[float] = None) -> bytes:
        """Blocks for the next string; TimeoutError after `timeout` s; ChannelError once the
        channel is closed and drained."""
        while True:
            got = self._take()
            if got is not None:
                return got
            state = self._items.wait(timeout)
            if state == "closed":
                raise ChannelError("next(): the byte channel is closed and every string was read")
            if state == "timeout":
                raise TimeoutError(f"next(): no string within {timeout} s")

    def strings(self, timeout: Optional[float] = None) -> Iterator[bytes]:
        """Blocking iteration over the strings; ends once the channel is closed and drained."""
        while True:
            try:
                yield self.next(timeout)
            except ChannelError:
                if self._items.exhausted:
                    return
                raise

    def _decode(self, data: bytes, final: bool = False) -> str:
        _replacements.count = 0
        text = self._decoder.decode(data, final)
        self.replaced += _replacements.count
        return text

    def _available_bytes(self) -> bytes:
        pieces = []
        while (got := self._take()) is not None:
            pieces.append(got)
        return b"".join(pieces)

    def try_text(self) -> str:
        """The text readable now (never blocks); "" when none, or when what arrived ends inside
        a code point (it waits for its continuation)."""
        return self._decode(self._available_bytes())

    def text(self, timeout: Optional[float] = None) -> Iterator[str]:
        """Blocking: yields text as it arrives, each piece what was readable then, never a part
        of a UTF-8 code point (an incomplete sequence waits for its continuation; invalid bytes
        become U+FFFD and are counted in `replaced`, never raised). Ends when the channel is
        closed and drained; `timeout` bounds each wait (TimeoutError)."""
        while True:
            piece = self.try_text()
            if piece:
                yield piece
            state = self._items.wait(timeout)
            if state == "closed":
                tail = self._decode(self._available_bytes(), final=True)
                if tail:
                    yield tail
                return
            if state == "timeout":
                raise TimeoutError(f"text(): nothing arrived within {timeout} s")

    async def text_async(self, timeout: Optional[float] = None) -> AsyncIterator[str]:
        """`async for piece in reader.text_async()`: text() for asyncio."""
        while True:
            piece = self._decode(self._available_bytes())
            if piece:
                yield piece
            try:
                value = await self._items.next_async(timeout)
            except StopAsyncIteration:
                tail = self._decode(self._available_bytes(), final=True)
                if tail:
                    yield tail
                return
            done = self._accept(self._items.last_index, value)
            if done:
                piece = self._decode(done)
                if piece:
                    yield piece
