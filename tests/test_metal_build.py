"""The Metal backend's build, checked on Linux (no Mac, no Xcode).

* metal_kernels.mm and metal_device.mm type-check as Objective-C++ with ARC and blocks against
  the real csrc/device/device.hpp and mock macOS 14 and macOS 15 SDK headers
  (tests/metal_mock_sdk/: common/ plus each variant's differences);
* the macOS 14 mock really lacks the macOS 15 API (code that names it fails there), so passing
  against it shows the compile-time SDK gate (csrc/metal/metal_sdk.hpp) works, and the gate says
  which SDK it saw;
* csrc/metal/backend.cmake never fails the configure: missing frameworks and a backend that does
  not compile both become no_metal.cpp with the reason, and a backend that compiles is built.

What the mocks cannot catch (an Apple API misspelt alike in mock and backend): docs/metal.md.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MOCK_SDK = REPO / "tests" / "metal_mock_sdk"
SDKS = ["macos14", "macos15"]
BACKEND_SOURCES = ["metal_kernels.mm", "metal_device.mm"]

CLANG = shutil.which("clang++")
needs_clang = pytest.mark.skipif(CLANG is None, reason="type-checking Objective-C++ needs clang++")


def sdk_flags(sdk: str) -> list[str]:
    """Include flags of one mock SDK: the variant's folder first, then what both share."""
    return [f"-I{MOCK_SDK / sdk}", f"-I{MOCK_SDK / 'common'}"]


def objcxx_check(source: Path, sdk: str, tmp_path: Path) -> subprocess.CompletedProcess:
    generated = tmp_path / "generated"  # the build's generated-headers folder, empty here
    generated.mkdir(exist_ok=True)
    cmd = [
        CLANG, "-x", "objective-c++", "-std=c++20", "-fobjc-arc", "-fblocks",
        "-fobjc-runtime=gnustep-2.0", "-fsyntax-only", "-Wall", "-Wextra", "-Werror",
        *sdk_flags(sdk), f"-I{REPO / 'csrc'}", f"-I{generated}", str(source),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@needs_clang
@pytest.mark.parametrize("sdk", SDKS)
@pytest.mark.parametrize("name", BACKEND_SOURCES)
def test_backend_type_checks_against_each_sdk(name, sdk, tmp_path):
    result = objcxx_check(REPO / "csrc" / "metal" / name, sdk, tmp_path)
    assert result.returncode == 0, f"{name} against the {sdk} mock SDK:\n{result.stderr}"


MACOS15_ONLY_API = """
#import <Metal/Metal.h>
void set_options(MTLCompileOptions* o) {
  o.languageVersion = MTLLanguageVersion3_2;
  o.mathMode = MTLMathModeSafe;
  o.mathFloatingPointFunctions = MTLMathFloatingPointFunctionsPrecise;
}
"""


@needs_clang
def test_macos14_mock_lacks_the_macos15_api(tmp_path):
    # The backend's compile options before the SDK gate: the macOS 15 SDK accepts them, the 14
    # one must not, or the type check above would prove nothing about the gate.
    source = tmp_path / "macos15_api.mm"
    source.write_text(MACOS15_ONLY_API)
    assert objcxx_check(source, "macos15", tmp_path).returncode == 0
    result = objcxx_check(source, "macos14", tmp_path)
    assert result.returncode != 0
    for symbol in ("MTLLanguageVersion3_2", "mathMode", "mathFloatingPointFunctions"):
        assert symbol in result.stderr


@needs_clang
@pytest.mark.parametrize("sdk, has_msl_3_2", [("macos14", 0), ("macos15", 1)])
def test_sdk_gate_sees_the_sdk(sdk, has_msl_3_2, tmp_path):
    source = tmp_path / "gate.cpp"
    source.write_text('#include "metal/metal_sdk.hpp"\n'
                      f"static_assert(FC_METAL_SDK_HAS_MSL_3_2 == {has_msl_3_2});\n")
    cmd = [CLANG, "-std=c++20", "-fsyntax-only", *sdk_flags(sdk), f"-I{REPO / 'csrc'}", str(source)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


# ---- csrc/metal/backend.cmake -------------------------------------------------------------

FIXTURE = REPO / "tests" / "metal_cmake_fixture"
CMAKE = shutil.which("cmake")
needs_cmake = pytest.mark.skipif(CMAKE is None or CLANG is None,
                                 reason="the backend.cmake checks need cmake and clang++")


def configure_backend(tmp_path: Path, *, frameworks: bool, objcxx_flags: str) -> tuple[str, Path]:
    """Configures the fixture; returns CMake's output and the build folder."""
    build = tmp_path / "build"
    cmd = [
        CMAKE, "-S", str(FIXTURE), "-B", str(build), f"-DFC_REPO={REPO}",
        f"-DCMAKE_OBJCXX_COMPILER={CLANG}", f"-DCMAKE_OBJCXX_FLAGS={objcxx_flags}",
        # Linux has no Objective-C runtime library to link CMake's compiler checks against.
        "-DCMAKE_TRY_COMPILE_TARGET_TYPE=STATIC_LIBRARY",
    ]
    if frameworks:  # stand-ins: find_library keeps a path already in the cache
        cmd += ["-DFC_METAL_FRAMEWORK=/mock/Metal.framework",
                "-DFC_FOUNDATION_FRAMEWORK=/mock/Foundation.framework"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"backend.cmake failed the configure:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr, build


def built_reason(build: Path) -> str:
    """Builds the fixture without the backend and returns the reason no_metal.cpp reports."""
    subprocess.run([CMAKE, "--build", str(build)], check=True, capture_output=True, timeout=300)
    return subprocess.run([str(build / "reason")], check=True, capture_output=True,
                          text=True, timeout=30).stdout.strip()


MOCK_OBJCXX = "-fobjc-runtime=gnustep-2.0 -fblocks"


@needs_cmake
def test_cmake_without_frameworks_builds_no_metal_with_the_reason(tmp_path):
    output, build = configure_backend(tmp_path, frameworks=False, objcxx_flags=MOCK_OBJCXX)
    assert "FC_METAL_BUILT=FALSE" in output
    assert "frameworks were not found" in built_reason(build)


@needs_cmake
def test_cmake_backend_that_does_not_compile_builds_no_metal_with_the_reason(tmp_path):
    # Frameworks "found" but no SDK headers at all: the trial compile fails, the configure not.
    output, build = configure_backend(tmp_path, frameworks=True, objcxx_flags=MOCK_OBJCXX)
    assert "FC_METAL_BUILT=FALSE" in output
    reason = built_reason(build)
    assert "did not compile with this SDK" in reason
    log = Path(reason.split("(log: ", 1)[1].rstrip(")"))
    assert "Foundation/Foundation.h" in log.read_text()


@needs_cmake
def test_cmake_backend_that_compiles_is_built(tmp_path):
    # The macOS 14 mock: the oldest SDK the backend must build with.
    flags = " ".join([MOCK_OBJCXX, *sdk_flags("macos14")])
    output, _ = configure_backend(tmp_path, frameworks=True, objcxx_flags=flags)
    assert "FC_METAL_BUILT=TRUE" in output, output
