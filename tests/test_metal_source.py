"""The Metal backend's MSL source, checked on any platform (no Mac needed).

The Metal backend compiles `_core.metal_source()` with newLibraryWithSource at run time; these
tests take that exact string and check that

* it holds one `kernel void NAME(` entry point for every kernel the backend looks up;
* its layout constants are the C++ header table (`header_layout()`);
* it compiles as C++14 (the language MSL 3.2 is based on) with the host compiler, through the
  shim header csrc/metal/msl_shim_for_host_check.hpp standing in for <metal_stdlib>, and the
  check is not vacuous (a broken entry point fails it);
* the kernel bodies in it are the files in csrc/kernels/, verbatim, and stay in the portable
  subset that the shim cannot police (no double, no std::, no templates, ...).

The Objective-C++ backend's type checks against mock SDK headers: tests/test_metal_build.py.
What only a Mac can check (the Metal qualifiers, the fences, the backend itself): docs/metal.md.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import foundry_channels as fc
from foundry_channels import _core
from foundry_channels.lm.stop import StopFlag

REPO = Path(__file__).resolve().parents[1]
SHIM = REPO / "csrc" / "metal" / "msl_shim_for_host_check.hpp"
ENTRY = re.compile(r"^kernel void (\w+)\(", re.MULTILINE)
LAYOUT_CONST = re.compile(r"^constant uint FC_(\w+) = (\d+)u;", re.MULTILINE)


def host_cxx() -> str | None:
    for candidate in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if candidate and shutil.which(candidate):
            return candidate
    return None


def compile_as_cxx14(source: str, tmp_path: Path, cxx: str | None = None,
                     extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Runs the host compiler over `source` with the shim as <metal_stdlib>."""
    cxx = cxx or host_cxx()
    if cxx is None:
        pytest.skip("no C++ compiler on PATH (set CXX or install g++)")
    include = tmp_path / "include"
    include.mkdir(exist_ok=True)
    (include / "metal_stdlib").write_text(f'#include "{SHIM.as_posix()}"\n')
    src = tmp_path / "assembled.metal"
    src.write_text(source)
    cmd = [
        cxx, "-x", "c++", "-std=c++14", "-pedantic-errors", "-fsyntax-only",
        f"-I{include}", "-Wall", "-Wextra",
        "-Werror=return-type", "-Werror=uninitialized",
        # Metal-only spellings the shim cannot give a meaning: [[buffer(n)]],
        # [[thread_position_in_grid]], `#pragma METAL`, and unused slots of the uniform signature.
        "-Wno-attributes", "-Wno-unknown-pragmas", "-Wno-unused-parameter",
        *extra,
        str(src),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def strip_comments(source: str) -> str:
    source = re.sub(r"/\*.*?\*/", " ", source, flags=re.DOTALL)
    return re.sub(r"//[^\n]*", "", source)


def kernel_sources_from_cmake() -> list[Path]:
    text = (REPO / "CMakeLists.txt").read_text()
    block = re.search(r"set\(FC_KERNEL_SOURCES\s*(.*?)\)", text, re.DOTALL)
    assert block, "CMakeLists.txt no longer defines FC_KERNEL_SOURCES"
    return [REPO / p for p in block.group(1).split()]


def test_one_entry_point_per_kernel_the_backend_looks_up():
    source = _core.metal_source()
    looked_up = _core.metal_kernel_entry_names()
    assert looked_up == fc.kernel_names()
    entries = ENTRY.findall(source)
    for name in looked_up:
        assert entries.count(name) == 1, f"`kernel void {name}(` appears {entries.count(name)} times"
    assert sorted(entries) == sorted(looked_up), "entry points that no kernel name refers to"


def test_parts_come_in_order():
    source = _core.metal_source()
    markers = ["// ---- MSL prelude", "// ---- layout", "// ---- kernel bodies", "// ---- entry points"]
    positions = [source.find(m) for m in markers]
    assert all(p >= 0 for p in positions), dict(zip(markers, positions))
    assert positions == sorted(positions)
    # Every entry point comes after every body it calls.
    last_body, first_entry = source.rfind("FC_KERNEL_BODY("), ENTRY.search(source).start()
    assert last_body < first_entry, (last_body, first_entry)


def test_layout_constants_equal_header_layout():
    constants = {name: int(value) for name, value in LAYOUT_CONST.findall(_core.metal_source())}
    table = fc.header_layout()
    for name, entry in table.items():
        assert constants.get(name) == entry["word"], f"FC_{name}: MSL {constants.get(name)}, C++ {entry['word']}"
    assert constants["MAGIC_VALUE"] == fc.CHANNEL_MAGIC
    assert constants["FLAG_CLOSED"] == 1  # header_layout: FLAGS "bit 0: closed"
    assert "bit 0: closed" in table["FLAGS"]["meaning"]
    assert constants["FLAG_SLOT_PROTOCOL2"] == 2  # header_layout: FLAGS "bit 1: slot protocol 2"
    assert "bit 1: slot protocol 2" in table["FLAGS"]["meaning"]
    assert constants["CURSOR_PROTOCOL"] == 2  # layout.hpp: kCursorProtocol
    assert constants["CURSOR_RECORD_DONE"] == 3  # layout.hpp: kCursorRecordDone
    control = fc.control_layout()
    for name, entry in control.items():
        assert constants.get(name) == entry["word"], f"FC_{name}: MSL {constants.get(name)}"
    assert constants["CONTROL_NO_LIMIT"] == fc.CONTROL_NO_LIMIT
    assert (constants["STOP_CANCELLED"], constants["STOP_REQUESTED"]) == (
        StopFlag.CANCELLED, StopFlag.STOP_REQUESTED)
    lanes = _core.lane_layout()  # the serving engine's lanes (csrc/serving/lane_layout.hpp)
    for name, value in lanes.items():
        assert constants.get(name) == value, f"FC_{name}: MSL {constants.get(name)}, C++ {value}"
    assert set(constants) == set(table) | set(control) | set(lanes) | {
        "MAGIC_VALUE", "FLAG_CLOSED", "FLAG_SLOT_PROTOCOL2", "CURSOR_PROTOCOL",
        "CURSOR_RECORD_DONE", "CONTROL_NO_LIMIT", "STOP_CANCELLED", "STOP_REQUESTED"}


def test_assembled_source_compiles_as_cxx14_through_the_shim(tmp_path):
    result = compile_as_cxx14(_core.metal_source(), tmp_path)
    assert result.returncode == 0, f"host compile of the assembled MSL failed:\n{result.stderr}"


ADDRESS_SPACE_CHECK = ("-DFC_SHIM_ADDRESS_SPACES", "-Wno-unknown-attributes")


@pytest.mark.skipif(shutil.which("clang++") is None, reason="the address-space check needs clang++")
def test_address_spaces_hold_with_clang(tmp_path):
    # clang gives `device` and `constant` distinct address spaces (the shim's
    # FC_SHIM_ADDRESS_SPACES), as MSL does: no pointer in the source may drop one.
    result = compile_as_cxx14(_core.metal_source(), tmp_path, "clang++", ADDRESS_SPACE_CHECK)
    assert result.returncode == 0, f"address-space check failed:\n{result.stderr}"
    dropped = _core.metal_source() + "FC_FN uint drops(FC_GLOBAL uint* p) { uint* q = p; return q[0]; }\n"
    result = compile_as_cxx14(dropped, tmp_path, "clang++", ADDRESS_SPACE_CHECK)
    assert result.returncode != 0 and "address_space" in result.stderr


COHERENT = "volatile coherent(system) device uint*"
ENTRY_BLOCK = re.compile(r"^kernel void (\w+)\((.*?)\) \{", re.MULTILINE | re.DOTALL)
PARAMS_DEFINE = re.compile(r"^#define FC_PARAMS_(\w+)(.*)$", re.MULTILINE)


def channel_names() -> dict[str, list[str]]:
    return {name: [p["name"] for p in fc.kernel_signature(name) if p["kind"] == "channel"]
            for name in fc.kernel_names()}


def test_channel_buffers_are_coherent_kernel_parameters():
    # Issue 14 item 3: a channel's header and ring are declared `volatile coherent(system)
    # device uint*` on the generated entry points, as MLX declares the words its CPU spins on,
    # and passed to the bodies with that type; the producer-private cursor stays plain.
    source = _core.metal_source()
    assert "#pragma METAL internals : enable" in source
    entries = {m.group(1): m.group(2) for m in ENTRY_BLOCK.finditer(source)}
    params = {m.group(1): m.group(2) for m in PARAMS_DEFINE.finditer(source)}
    assert set(entries) == set(params) == set(fc.kernel_names())
    seen = 0
    for kernel, channels in channel_names().items():
        for ch in channels:
            for part in ("header", "data"):
                assert re.search(rf"^    {re.escape(COHERENT)} {ch}_{part} \[\[buffer\(\d+\)\]\],$",
                                 entries[kernel], re.MULTILINE), (kernel, ch, part)
                assert f" {COHERENT} {ch}_{part}," in params[kernel], (kernel, ch, part)
                seen += 1
            assert re.search(rf"^    device uint\* {ch}_cursor \[\[buffer", entries[kernel],
                             re.MULTILINE), (kernel, ch)
            assert f" device uint* {ch}_cursor," in params[kernel]
            assert f"volatile coherent(system) device uint* {ch}_cursor" not in source
    assert seen >= 8
    # A shared parameter (a buffer the CPU writes while the kernel runs: a control block) is
    # coherent too; nothing else is: plain buffers stay `device uint*`.
    shared = {name: [p["name"] for p in fc.kernel_signature(name) if p["kind"] == "shared"]
              for name in fc.kernel_names()}
    assert shared["lm_decode_step"] == ["control"]
    for kernel, names in shared.items():
        for name in names:
            assert re.search(rf"^    {re.escape(COHERENT)} {name} \[\[buffer\(\d+\)\]\],$",
                             entries[kernel], re.MULTILINE), (kernel, name)
            assert f" {COHERENT} {name}," in params[kernel], (kernel, name)
    for kernel, block in entries.items():
        assert block.count("coherent(system)") == \
            2 * len(channel_names()[kernel]) + len(shared[kernel]), kernel


def test_cast_form_is_only_a_documented_alternative():
    # The cast to a coherent pointer inside a function survives only in comments.
    code = strip_comments(_core.metal_source())
    assert not re.search(r"\(\s*volatile\s+coherent\(system\)\s+device\s+uint\s*\*\s*\)", code)
    prelude = (REPO / "csrc" / "metal" / "prelude_msl.inc").read_text()
    assert "documented alternative" in prelude and "(volatile coherent(system) device uint*)p" in prelude


def test_publish_fences_once_per_push_on_metal():
    # Issue 14 item 4: Metal's publish fence is the system-scope fence (MLX's fast sync); the
    # host and CUDA preludes define it as nothing, so their push path stays fence-free.
    source = strip_comments(_core.metal_source())
    body = re.search(r"static inline void fc_fence_publish_sys\(\) \{(.*?)\}", source, re.DOTALL)
    assert body and "fc_fence_release_sys()" in body.group(1)
    publish = re.search(r"FC_FN void fc_channel_publish\(.*?\n\}", source, re.DOTALL).group(0)
    assert publish.count("fc_fence_publish_sys()") == 1
    assert publish.rstrip("}").rstrip().endswith("fc_fence_publish_sys();")
    for prelude in (REPO / "csrc" / "kernels" / "prelude_host.hpp",
                    REPO / "csrc" / "cuda" / "prelude_cuda.cuh"):
        text = prelude.read_text()
        assert re.search(r"void fc_fence_publish_sys\(\) \{\}", text), prelude.name


def test_host_check_rejects_a_coherent_pointer_passed_as_plain(tmp_path):
    # The shim keeps `volatile`: a body helper that takes a channel buffer as a plain
    # `device uint*` fails here as it would in MSL; a misspelt coherence scope fails too.
    plain = _core.metal_source() + (
        "FC_FN void takes_plain(FC_GLOBAL uint* p) { p[0] = 1u; }\n"
        "FC_FN void passes(FC_CHANNEL uint* header) { takes_plain(header); }\n"
    )
    result = compile_as_cxx14(plain, tmp_path)
    assert result.returncode != 0 and "takes_plain" in result.stderr
    misspelt = _core.metal_source() + "FC_FN void f(volatile coherent(sytem) device uint* p) { p[0] = 1u; }\n"
    result = compile_as_cxx14(misspelt, tmp_path)
    assert result.returncode != 0


def test_host_check_rejects_a_broken_entry_point(tmp_path):
    # A call with the wrong number of arguments and an undeclared function: if this compiled,
    # the check above would prove nothing.
    broken = _core.metal_source() + (
        "kernel void broken(device uint* b0 [[buffer(0)]]) {\n"
        "  channel_u32_push_body(b0, b0, b0, b0, b0, sc_missing, 0u);\n"
        "  not_in_metal_stdlib(b0);\n"
        "}\n"
    )
    result = compile_as_cxx14(broken, tmp_path)
    assert result.returncode != 0
    assert "not_in_metal_stdlib" in result.stderr


def test_host_check_rejects_cxx17(tmp_path):
    # MSL 3.2 is based on C++14; a body using C++17 must fail here, not only on a Mac.
    result = compile_as_cxx14(
        _core.metal_source() + "FC_FN uint later(uint x) { if constexpr (true) { return x; } }\n",
        tmp_path,
    )
    assert result.returncode != 0


def test_kernel_bodies_are_the_kernel_files_verbatim():
    source = _core.metal_source()
    files = kernel_sources_from_cmake()
    assert files, "FC_KERNEL_SOURCES is empty"
    for path in files:
        assert path.read_text() in source, f"{path.name} in the MSL differs from the file: rebuild"


FORBIDDEN = {
    r"\bdouble\b": "MSL has no double",
    r"\bstd::": "no C++ standard library in MSL",
    r"\btemplate\b": "the portable subset has no templates",
    r"\bstruct\b": "no hand-written structs in MSL (csrc/kernels/README.md)",
    r"\bnew\b|\bdelete\b|\bmalloc\b|\bprintf\b": "no allocation or I/O on the GPU",
    r"\bgoto\b": "no goto in MSL",
}


def test_kernel_bodies_stay_in_the_portable_subset():
    bodies = strip_comments(fc._core.metal_source().split("// ---- kernel bodies", 1)[1])
    bodies = bodies.split("// ---- entry points", 1)[0]
    for pattern, why in FORBIDDEN.items():
        match = re.search(pattern, bodies)
        assert match is None, f"kernel bodies use {match.group(0)!r}: {why}"
    assert "#include" not in bodies, "no #include of project headers from MSL (csrc/kernels/README.md)"


def test_language_version_matches_the_backend():
    assert _core.METAL_LANGUAGE_VERSION == "3.2"
    backend = (REPO / "csrc" / "metal" / "metal_kernels.mm").read_text()
    assert "MTLLanguageVersion3_2" in backend


@pytest.mark.skipif(sys.platform == "darwin", reason="on macOS the Metal backend may be available")
def test_metal_device_off_apple_says_why():
    reason = fc.backend_status()["metal"]
    assert "Apple" in reason or "macOS" in reason
    with pytest.raises(fc.BackendUnavailableError, match="metal backend not available"):
        fc.Device("metal")
