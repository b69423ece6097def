"""Ops of the sample n-gram language model (kernels: csrc/kernels/lm_kernels.inc)."""

from __future__ import annotations

from ...lm import EOS_TOKEN, MAX_ORDER, builtin_table, detokenize, encode_prompt
from ...lm.ngram import MODEL_MAGIC
from ..overshoot import active as active_overshoot
from ..registry import Arg, register_op
from ..values import TensorArg, ValueType

U32_1 = dict(dtype="u32", shape=(1,))
STATE = Arg(("tensor",), dtype="u32", shape=(4,), doc="decode state u32[4] (position, ...)")
HISTORY = Arg(("tensor",), dtype="u32", doc="every token so far, u32[capacity]")
STOP = Arg(("tensor",), **U32_1, doc="device stop flag")


@register_op(
    "lm_load",
    args={"order": Arg(("u32",), required=False, default=MAX_ORDER, maximum=MAX_ORDER,
                       doc="context bytes of the n-gram model")},
    output=ValueType("tensor", "u32"),
    category="setup",
)
def lm_load(ctx, args, step):
    """Builds the n-gram table of the shipped text and uploads it (once) into device-local
    memory: every decode step reads it, and on a discrete GPU a read of shared (host-mapped)
    memory crosses the bus. The copy runs on the device from a shared staging buffer, which
    the command buffer keeps alive until the copy is done."""
    staging = TensorArg.from_array(ctx.device, builtin_table(args["order"]).words)
    model = TensorArg(ctx.device.buffer(staging.nbytes, storage="private"), "u32", staging.shape)
    ctx.command_buffer().dispatch("buffer_copy_u32", staging.numel, source=staging.buffer,
                                  destination=model.buffer, words=staging.numel)
    ctx.lm_tables.add(id(model.buffer))
    return model


@register_op(
    "lm_prefill",
    args={"state": STATE, "history": HISTORY, "stop": STOP,
          "prompt": Arg(("str",), doc="prompt text (UTF-8 bytes are the tokens)")},
    category="setup",
)
def lm_prefill(ctx, args, step):
    """Appends the prompt's tokens to the history on the device and starts a turn."""
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
          "eos_token": Arg(("u32",), required=False, default=EOS_TOKEN),
          "max_tokens": Arg(("u32",), required=False, default=0,
                            doc="tokens per turn after which the step stops (0: no limit)"),
          "stream": Arg(("channel",), required=False,
                        doc="push each visible token into this channel from the step kernel "
                            "itself (fused: no separate stream_write_u32 dispatch)")},
)
def lm_decode_step(ctx, args, step):
    """One decode step on the device: sample, append to the history, write `token`; sets
    the stop flag on EOS / max tokens / full history, after which it is a no-op - unless
    the enclosing loop overshoots (overshoot.py): then later steps still sample and advance
    the history, invisibly, and the loop rolls the state back to the stop point after."""
    model = args["model"]
    if not is_model_table(ctx, model):
        raise ValueError("model: the tensor is not an n-gram table made by lm_load")
    state, history, stop = args["state"], args["history"], args["stop"]
    overshoot = active_overshoot(ctx)
    if overshoot is not None:
        overshoot.register(("lm", id(state.buffer)),
                           lambda: encode_rollback(ctx, state, history, stop))
    stream = args["stream"]
    ctx.command_buffer().dispatch(
        "lm_decode_step", 1, model=model.buffer, state=state.buffer, history=history.buffer,
        out=args["token"].buffer, stop=stop.buffer, seed=args["seed"], eos=args["eos_token"],
        max_tokens=args["max_tokens"], history_capacity=history.numel,
        overshoot=1 if overshoot is not None else 0,
        stream=stream.channel if stream is not None else None,
        push=1 if stream is not None else 0,
        stream_capacity=stream.capacity if stream is not None else 0)


def is_model_table(ctx, model: TensorArg) -> bool:
    """lm_load's tables live in device memory, where the CPU cannot check them: they are
    known by identity. A shared tensor (made by a program) must carry the table's magic."""
    if id(model.buffer) in ctx.lm_tables:
        return True
    if model.buffer.storage != "shared":
        return False
    return model.numel >= 8 and int(model.numpy().reshape(-1)[0]) == MODEL_MAGIC


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
