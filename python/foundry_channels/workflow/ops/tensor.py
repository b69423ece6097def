"""tensor_zeros: a device tensor (shared buffer) of a dtype and shape, zero-filled."""

from __future__ import annotations

from ..registry import Arg, register_op
from ..values import DTYPES, TensorArg, ValueType


def _tensor_type(step: dict) -> ValueType:
    return ValueType("tensor", step["dtype"], tuple(step["shape"]))


@register_op(
    "tensor_zeros",
    args={"dtype": Arg(("choice",), choices=tuple(DTYPES)), "shape": Arg(("shape",))},
    output=_tensor_type,
    category="setup",
)
def tensor_zeros(ctx, args, step):
    """A zero-filled tensor in a shared buffer (device state such as a stop flag)."""
    return TensorArg.zeros(ctx.device, args["dtype"], tuple(args["shape"]))
