"""The C++ benchmark instruments (benchmarks/native/) are not in a default build of the
package; the benchmarks that need them call `require()` first."""

from __future__ import annotations

from foundry_channels import _core

REBUILD = ('python3 -m pip install --no-build-isolation -e . '
           '-C cmake.define.FC_BUILD_BENCHMARKS=ON')


def require() -> None:
    if not getattr(_core, "HAS_BENCHMARKS", False):
        raise SystemExit("this benchmark drives C++ instruments that a default build leaves out; "
                         f"rebuild with them:\n    {REBUILD}")
