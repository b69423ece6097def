"""tensor_zeros: a zero-filled device tensor of a dtype and shape."""

from __future__ import annotations

from ..registry import Arg, register_op
from ..values import DTYPES, TensorArg, ValueType


def _tensor_type(step: dict) -> ValueType:
    return ValueType("tensor", step["dtype"], tuple(step["shape"]))


@register_op(
    "tensor_zeros",
    args={"dtype": Arg(("choice",), choices=tuple(DTYPES)), "shape": Arg(("shape",)),
          "storage": Arg(("choice",), required=False, default="shared",
                         choices=("shared", "private"),
                         doc="'shared': the CPU can read it (numpy); 'private': device memory "
                             "only, for per-step scratch the CPU never reads (on a discrete "
                             "GPU a kernel's access to shared memory crosses the bus)")},
    output=_tensor_type,
    category="setup",
)
def tensor_zeros(ctx, args, step):
    """A zero-filled tensor (device state such as a stop flag, or per-step scratch)."""
    return TensorArg.zeros(ctx.device, args["dtype"], tuple(args["shape"]), storage=args["storage"])
