"""Ops of the sample n-gram language model (kernels: csrc/kernels/lm_kernels.inc).

The model samples bytes (vocabulary "bytes") or the shipped BPE vocabulary's tokens ("bpe",
lm/bpe.py); the ops know a table's vocabulary from lm_load (ctx.lm_tables) or, for a table a
program made, from its header."""

from __future__ import annotations

from ...lm import MAX_ORDER, builtin_table, detokenize, encode_prompt
from ...lm.cpu_sampler import device_sampler
from ...lm.ngram import BYTE_BITS, MODEL_MAGIC, NgramTable
from ..loop_config import SAMPLERS
from ..overshoot import active as active_overshoot
from ..registry import Arg, register_op
from ..values import TensorArg, ValueType

U32_1 = dict(dtype="u32", shape=(1,))
STATE = Arg(("tensor",), dtype="u32", shape=(4,), doc="decode state u32[4] (position, ...)")
HISTORY = Arg(("tensor",), dtype="u32", doc="every token so far, u32[capacity]")
STOP = Arg(("tensor",), **U32_1, doc="device stop flag")


VOCABULARIES = ("bytes", "bpe")
FORCED_IF_FED = 1  # lm_decode_step's forced_mode: the CPU's token when one was taken
FORCED_FROM_CPU = 2  # lm_decode_step's forced_mode: the token must come from the CPU


def _table(vocabulary: str, order) -> NgramTable:
    if vocabulary == "bpe":
        from ...lm.bpe import BPE_MAX_ORDER, bpe_table  # needs `tokenizers`: imported on use

        return bpe_table(BPE_MAX_ORDER if order is None else order)
    return builtin_table(MAX_ORDER if order is None else order)


@register_op(
    "lm_load",
    args={"order": Arg(("u32",), required=False, default=None, maximum=MAX_ORDER,
                       doc="context tokens of the n-gram model (default and most: 3 bytes, "
                           "2 BPE tokens)"),
          "vocabulary": Arg(("choice",), required=False, default="bytes", choices=VOCABULARIES,
                            doc="'bytes' (token = byte) or 'bpe': the shipped 1024-token "
                                "byte-level BPE, detokenized on the device by detok_push")},
    output=ValueType("tensor", "u32"),
    category="setup",
)
def lm_load(ctx, args, step):
    """Builds the n-gram table of the shipped text and uploads it (once) into device-local
    memory: every decode step reads it, and on a discrete GPU a read of shared (host-mapped)
    memory crosses the bus (TensorArg.upload_private)."""
    table = _table(args["vocabulary"], args["order"])
    model = TensorArg.upload_private(ctx.device, ctx.command_buffer(), table.words)
    ctx.lm_tables[id(model.buffer)] = table
    return model


@register_op(
    "lm_prefill",
    args={"state": STATE, "history": HISTORY, "stop": STOP,
          "prompt": Arg(("str",), doc="prompt text"),
          "model": Arg(("tensor",), dtype="u32", required=False,
                       doc="the table from lm_load: the prompt is tokenized with its "
                           "vocabulary (default: bytes, the UTF-8 bytes are the tokens)")},
    category="setup",
)
def lm_prefill(ctx, args, step):
    """Appends the prompt's tokens to the history on the device and starts a turn."""
    vocabulary = "bytes" if args["model"] is None else model_info(ctx, args["model"])[0]
    if vocabulary == "bpe":
        from ...lm.bpe import encode_prompt_bpe

        tokens = encode_prompt_bpe(args["prompt"])
    else:
        tokens = encode_prompt(args["prompt"])
    prompt = TensorArg.from_array(ctx.device, tokens or [0])
    ctx.command_buffer().dispatch(
        "lm_prefill", 1, state=args["state"].buffer, history=args["history"].buffer,
        prompt=prompt.buffer, stop=args["stop"].buffer, prompt_length=len(tokens),
        history_capacity=args["history"].numel)


@register_op(
    "lm_decode_step",
    args={"model": Arg(("tensor",), dtype="u32", doc="the table from lm_load"),
          "state": STATE, "history": HISTORY, "stop": STOP,
          "token": Arg(("tensor",), **U32_1, doc="receives the sampled token"),
          "seed": Arg(("u32",)),
          "eos_token": Arg(("u32",), required=False, default=None,
                           doc="the token that ends the turn (default: the model's end of text: "
                               "byte 0, or the BPE token of the NUL byte)"),
          "max_tokens": Arg(("u32",), required=False, default=0,
                            doc="tokens per turn after which the step stops (0: no limit)"),
          "stream": Arg(("channel",), required=False, dtype="u32",
                        doc="push each visible token into this channel from the step kernel "
                            "itself (fused: no separate stream_write_u32 dispatch)"),
          "sampler": Arg(("choice",), required=False, default="device", choices=SAMPLERS,
                         run_option=True,  # run_workflow(sampler=...) / --sampler replaces it
                         doc="'device' samples on the device; 'cpu' draws each token on the "
                             "CPU inside the running command buffer (run_workflow's "
                             "cpu_sampler, default: the device's own draw)")},
)
def lm_decode_step(ctx, args, step):
    """One decode step on the device: sample, append to the history, write `token`; sets
    the stop flag on EOS / max tokens / full history, after which it is a no-op - unless
    the enclosing loop overshoots (overshoot.py): then later steps still sample and advance
    the history, invisibly, and the loop rolls the state back to the stop point after. Every
    step reads the run's control block first (cancellation.py): a cancelled run stops at the
    next step (stop flag CANCELLED) without sampling."""
    model = args["model"]
    _, model_eos = model_info(ctx, model)
    eos = model_eos if args["eos_token"] is None else args["eos_token"]
    state, history, stop = args["state"], args["history"], args["stop"]
    overshoot = active_overshoot(ctx)
    if overshoot is not None:
        overshoot.register(("lm", id(state.buffer)),
                           lambda: encode_rollback(ctx, state, history, stop))
    stream = args["stream"]
    forced = {}
    if args["sampler"] == "cpu":
        if overshoot is not None:
            raise ValueError("sampler 'cpu' cannot overshoot: steps past the stop would wait "
                             "for tokens the CPU is never asked for")
        sampler = ctx.host_sampler(1 << token_bits(ctx, model), device_sampler(args["seed"]))
        sampler.encode_request(ctx.command_buffer(), model, state, history, stop)
        forced = dict(forced=sampler.token.buffer, forced_got=sampler.token_got.buffer,
                      forced_mode=FORCED_FROM_CPU)
    if ctx.token_feed is not None:
        if forced:
            raise ValueError("a run either samples on the CPU or is fed tokens, not both")
        token, got = ctx.feed_buffers()
        ctx.command_buffer().dispatch("h2d_try_pop", 1, channel=ctx.feed_channel(),
                                      out=token.buffer, got=got.buffer, stop_flag=stop.buffer,
                                      predicated=1)
        forced = dict(forced=token.buffer, forced_got=got.buffer, forced_mode=FORCED_IF_FED)
    ctx.command_buffer().dispatch(
        "lm_decode_step", 1, model=model.buffer, state=state.buffer, history=history.buffer,
        out=args["token"].buffer, stop=stop.buffer, seed=args["seed"], eos=eos,
        max_tokens=args["max_tokens"], history_capacity=history.numel,
        overshoot=1 if overshoot is not None else 0,
        stream=stream.channel if stream is not None else None,
        push=1 if stream is not None else 0,
        stream_capacity=stream.capacity if stream is not None else 0,
        control=ctx.control_block(), use_control=1, **forced)


def model_info(ctx, model: TensorArg) -> tuple[str, int]:
    """(vocabulary, EOS token) of an n-gram table; ValueError for a tensor that is none.
    lm_load's tables live in device memory, where the CPU cannot check them: they are known
    by identity. A shared tensor (made by a program) must carry the table's magic; its header
    word 7 gives the token width and the boundary (EOS) token (lm_kernels.inc)."""
    table = ctx.lm_tables.get(id(model.buffer))
    if table is not None:
        return table.vocabulary, table.boundary
    words = model.numpy().reshape(-1) if model.buffer.storage == "shared" else None
    if words is None or model.numel < 8 or int(words[0]) != MODEL_MAGIC:
        raise ValueError("model: the tensor is not an n-gram table made by lm_load")
    bits = int(words[7]) & 255
    return ("bytes" if bits in (0, BYTE_BITS) else "bpe"), int(words[7]) >> 8


def token_bits(ctx, model: TensorArg) -> int:
    """The token width of an n-gram table (its vocabulary has 1 << width tokens)."""
    table = ctx.lm_tables.get(id(model.buffer))
    if table is not None:
        return table.bits
    model_info(ctx, model)  # checks that it is a table
    return (int(model.numpy().reshape(-1)[7]) & 255) or BYTE_BITS


def encode_rollback(ctx, state, history, stop) -> None:
    """Encodes lm_rollback: back to the stop point (state[3]) if the turn stopped."""
    ctx.command_buffer().dispatch(
        "lm_rollback", 1, state=state.buffer, history=history.buffer, stop=stop.buffer,
        history_capacity=history.numel)


@register_op(
    "lm_detokenize",
    args={"tokens": Arg(("tensor",), dtype="u32", doc="token ids (bytes)")},
    output=ValueType("str"),
    category="cpu",
)
def lm_detokenize(ctx, args, step):
    """The text of the tokens (on the CPU, for display)."""
    return detokenize(args["tokens"].numpy().reshape(-1).tolist())
