"""Issue 10: the package's import graph has no loop, and every module imports on its own.

A module that only imports when another one was imported first hides an import loop (or a
missing import); each module is therefore imported alone, in a fresh interpreter. The loop
check itself runs in CI as import-linter contracts (pyproject.toml, `lint-imports`); the
test here also catches a loop through a package's __init__ (a module importing the package
that imports it), which import-linter's sibling check does not look at."""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from graphlib import CycleError, TopologicalSorter

import pytest

import foundry_channels as fc

PACKAGE_PARENT = os.path.dirname(os.path.dirname(fc.__file__))


def _modules() -> list[str]:
    """Every module of the package, the compiled _core included."""
    def fail(name: str) -> None:
        raise ImportError(f"cannot list the modules of {name}")

    found = ["foundry_channels"]
    found += [m.name for m in pkgutil.walk_packages(fc.__path__, "foundry_channels.", onerror=fail)]
    return sorted(found)


MODULES = _modules()


@pytest.fixture(scope="module")
def imported_alone() -> dict[str, subprocess.CompletedProcess]:
    """`python -c "import M"` for every module M, several interpreters at a time."""
    env = dict(os.environ)
    env["PYTHONPATH"] = PACKAGE_PARENT + os.pathsep + env.get("PYTHONPATH", "")

    def run(module: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True,
                              text=True, env=env, timeout=120)

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        return dict(zip(MODULES, pool.map(run, MODULES)))


def test_the_module_list_is_complete():
    assert {"foundry_channels._core", "foundry_channels.cli", "foundry_channels.workflow.registry",
            "foundry_channels.workflow.ops.control", "foundry_channels.lm.stop"} <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_every_module_imports_on_its_own(imported_alone, module):
    result = imported_alone[module]
    assert result.returncode == 0, result.stderr


def test_the_import_graph_has_no_loop():
    grimp = pytest.importorskip("grimp", reason="grimp comes with import-linter ('.[test]')")
    graph = grimp.build_graph("foundry_channels", cache_dir=None)
    imports = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    try:
        TopologicalSorter(imports).prepare()
    except CycleError as e:
        pytest.fail(f"import loop: {' -> '.join(e.args[1])}")
