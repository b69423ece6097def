"""Which backends can open a device on this machine, and why the others cannot."""

from __future__ import annotations

from . import _core

BACKENDS = ("cpu", "cuda", "metal")


def backend_status() -> dict[str, str]:
    """{backend: ""} when usable here, else {backend: reason it is not}."""
    return {name: _core.backend_unavailable_reason(name) for name in BACKENDS}


def available_backends() -> list[str]:
    """Backends that can open a device here, "cpu" first."""
    return [name for name, reason in backend_status().items() if not reason]
