"""The built-in ops; importing this package registers them (registry.REGISTRY)."""

from . import control, lm, stream, tensor  # noqa: F401
