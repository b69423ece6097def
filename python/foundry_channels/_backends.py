"""Which backends can open a device on this machine, and why the others cannot."""

from __future__ import annotations

# Names, not `from . import _core`: that form reads as an import of the package itself
# (whose __init__ imports this module), a loop to import-linter, which cannot see into the
# compiled _core.
from ._core import backend_unavailable_reason

BACKENDS = ("cpu", "cuda", "metal")


def backend_status() -> dict[str, str]:
    """{backend: ""} when usable here, else {backend: reason it is not}."""
    return {name: backend_unavailable_reason(name) for name in BACKENDS}


def available_backends() -> list[str]:
    """Backends that can open a device here, "cpu" first."""
    return [name for name, reason in backend_status().items() if not reason]
