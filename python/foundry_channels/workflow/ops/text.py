"""Text ops: device-side detokenization into a byte channel (kernels:
csrc/kernels/bytes_kernels.inc). lm_vocabulary uploads the shipped BPE tokenizer's token -> bytes
table; detok_push appends a sampled token's bytes to a byte channel, so the CPU reads text and
runs no detokenizer."""

from __future__ import annotations

from ...byte_channel import items_for_string
from ..registry import Arg, register_op
from ..values import TensorArg, ValueType

U32_1 = dict(dtype="u32", shape=(1,))


@register_op("lm_vocabulary", output=ValueType("tensor", "u32"), category="setup")
def lm_vocabulary(ctx, args, step):
    """Uploads the shipped BPE vocabulary (lm/vocab.py) once into device memory: every
    detok_push reads it, and on a discrete GPU shared memory would cross the bus each step
    (TensorArg.upload_private)."""
    from ...lm.bpe import shipped_vocabulary  # needs `tokenizers`: imported on use

    vocabulary = shipped_vocabulary()
    table = TensorArg.upload_private(ctx.device, ctx.command_buffer(), vocabulary.words)
    ctx.vocabularies[id(table.buffer)] = vocabulary
    return table


def _vocabulary(ctx, tensor: TensorArg):
    vocabulary = ctx.vocabularies.get(id(tensor.buffer))
    if vocabulary is None:
        raise ValueError("vocab: the tensor is not a vocabulary table made by lm_vocabulary")
    return vocabulary


def _items_per_push(ctx, step) -> int:
    """The most items one detok_push appends: its vocabulary's longest token (the streaming
    runner sizes its windows so that the pushes in flight never exceed the channel)."""
    vocabulary = _vocabulary(ctx, ctx.values[step.args["vocab"]])
    return items_for_string(max((len(t) for t in vocabulary.tokens), default=0))


@register_op(
    "detok_push",
    args={"channel": Arg(("channel",), dtype="bytes", doc="the byte channel text goes to"),
          "vocab": Arg(("tensor",), dtype="u32", doc="the table from lm_vocabulary"),
          "token": Arg(("tensor",), **U32_1, doc="the token id (a decode step's output)"),
          "stop": Arg(("tensor",), required=False, **U32_1,
                      doc="device stop flag: skipped once stop[0] != 0, so nothing computed "
                          "past EOS reaches the channel")},
    pushes=_items_per_push,
)
def detok_push(ctx, args, step):
    """Appends the bytes of the token (read on the device) to the byte channel as one
    string; a token outside the vocabulary appends U+FFFD."""
    _vocabulary(ctx, args["vocab"])
    stop = args["stop"]
    args["channel"].bytes.encode_push_token(
        ctx.command_buffer(), args["vocab"].buffer, args["token"].buffer,
        stop_flag=stop.buffer if stop is not None else None)
