"""The built-in ops; importing this package registers them (registry.REGISTRY).

The workflow package's __init__ imports it: that is the one place the op modules are
imported for their registration (the registry itself imports none of them)."""

from . import control, lm, stream, tensor, text  # noqa: F401
