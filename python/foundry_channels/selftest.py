"""`foundry-channels selftest`: what a new machine (above all a Mac) must show before channels are
trusted on it, checked and reported on one screen (docs/metal.md says what to send back).

Checks, on any backend:

* ``msl``: on ``metal``, the Metal Shading Language source the backend assembles compiles
  (opening the device and running a channel init compiles every kernel); elsewhere it says what
  applies instead (the MSL is checked on Linux by tests/test_metal_source.py).
* ``live``: an item pushed by a running kernel is visible to the CPU before its command buffer
  completes, and how soon after the commit.
* ``protocol1`` / ``protocol2``: a long lapping stress of each slot protocol (docs/protocol.md):
  a small ring overwritten again and again while the CPU reads; every item read must carry its
  own value (item i is pushed as the value i), so a torn slot (a tag with another item's value)
  shows as a mismatch.
* ``watchdog``: every command buffer completed without error and none ran longer than the bound
  its size was chosen for (a GPU watchdog kills command buffers after a few seconds).

It picks the slot protocol that passed (1, the default, when both did) and says how to select
it. ``run()`` returns a dict; ``format_report()`` makes the screen; ``--json`` prints the dict.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Optional

# Sizes per backend: every command buffer stays far below a GPU watchdog (~5 s on macOS).
# A GPU push with protocol 2 pays two system fences (~2.5 us a push on an H200: a window of
# 2^19 such pushes ran 1.3 s there), Metal's one more per push, so GPU windows are smaller.
SIZES = {
    "cpu": {"live_items": 1 << 22, "window_items": 1 << 19, "windows": 8},
    "cuda": {"live_items": 1 << 22, "window_items": 1 << 16, "windows": 16},
    "metal": {"live_items": 1 << 17, "window_items": 1 << 14, "windows": 8},
}
WINDOW_BOUND_S = 1.0  # the longest a test command buffer may take (watchdog: several seconds)
STRESS_CAPACITY = 64  # small: the producer laps the reader again and again
TIMEOUT_S = 30.0


def _backend_of(spec: str) -> str:
    return spec.split(":", 1)[0]


class _Timed:
    """Command buffers committed by the test, for the watchdog check."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, float, str]] = []  # (what, seconds, status)

    def wait(self, what: str, cb, committed_at: float) -> float:
        cb.wait_until_completed(timeout=TIMEOUT_S)
        return self.record(what, time.perf_counter() - committed_at, cb)

    def record(self, what: str, seconds: float, cb) -> float:
        """`seconds` from commit to completion (an upper bound of the time it ran)."""
        self.runs.append((what, seconds, cb.status))
        if cb.status == "error":
            raise RuntimeError(f"{what}: the command buffer failed: {cb.error}")
        return seconds


def check_msl(fc, device) -> dict[str, Any]:
    from . import _core

    kernels = len(_core.metal_kernel_entry_names())
    if device.backend != "metal":
        return {"status": "n/a", "kernels": kernels,
                "detail": f"the MSL ({kernels} kernels) is compiled only by the metal backend; "
                          "on Linux tests/test_metal_source.py compiles it through a host shim"}
    # The backend compiles the whole library (every kernel's pipeline) on first use.
    ch = fc.ChannelU32(device, 2)
    cb = device.new_queue().command_buffer()
    cb.channel_init(ch)
    cb.commit()
    cb.wait_until_completed(timeout=TIMEOUT_S)
    if cb.status == "error":
        return {"status": "FAIL", "kernels": kernels, "detail": str(cb.error)}
    return {"status": "ok", "kernels": kernels,
            "detail": f"compiled with MSL {_core.METAL_LANGUAGE_VERSION}: {kernels} kernels"}


def check_live(fc, device, items: int, timed: _Timed, attempts: int = 3) -> dict[str, Any]:
    """One long kernel pushes `items` items into a ring that holds them all; the CPU must read
    some while the command buffer still runs. On a loaded machine the reading thread may not be
    scheduled during a short run, so it tries up to `attempts` times."""
    import numpy as np

    result: dict[str, Any] = {}
    for attempt in range(1, attempts + 1):
        result = _live_once(fc, np, device, items, timed)
        result["attempts"] = attempt
        if result["status"] == "ok":
            break
    return result


def _live_once(fc, np, device, items: int, timed: _Timed) -> dict[str, Any]:
    # A ring that holds every item: a producer that laps the reader would overwrite what it
    # tries to read, and a late first read would look like late visibility.
    ch = fc.ChannelU32(device, 1 << max(0, (items - 1).bit_length()))
    queue = device.new_queue()
    init = queue.command_buffer()
    init.channel_init(ch)
    init.commit()
    timed.wait("live init", init, time.perf_counter())
    cb = queue.command_buffer()
    cb.channel_push_sequence(ch, 0, items)
    cb.channel_close(ch)
    reader = ch.reader()
    reader.try_next()  # attach before the commit
    batch = np.empty(1 << 16, dtype=np.uint32)
    start = time.perf_counter()
    cb.commit()
    first_s = None
    seen_running = 0
    while time.perf_counter() - start < TIMEOUT_S:
        running = cb.status not in ("completed", "error")
        n = reader.drain_into(batch)
        if n:
            if first_s is None:
                first_s = time.perf_counter() - start
                first_value = int(batch[0])
            if running:
                seen_running += n
        if not running:
            break
    ran_s = timed.wait("live", cb, start)
    result = {"items": items, "first_item_us": None if first_s is None else first_s * 1e6,
              "seen_while_running": seen_running, "command_buffer_ms": ran_s * 1e3}
    if first_s is None:
        result.update(status="FAIL", detail="no item arrived before the command buffer completed")
    elif seen_running == 0:
        result.update(status="FAIL",
                      detail=f"items arrived only after the command buffer completed "
                             f"(first after {first_s * 1e3:.2f} ms; it ran {ran_s * 1e3:.1f} ms)")
    elif first_value != 0:
        result.update(status="FAIL", detail=f"the first item read was {first_value}, not 0")
    else:
        result.update(status="ok",
                      detail=f"first item {first_s * 1e6:,.0f} us after commit; "
                             f"{seen_running:,} of {items:,} read while the kernel ran "
                             f"({ran_s * 1e3:.1f} ms)")
    return result


def check_protocol(fc, device, protocol: int, window_items: int, windows: int,
                   timed: _Timed) -> dict[str, Any]:
    """Lapping stress: a small ring, `windows` command buffers of `window_items` pushes each,
    read concurrently; every item read must be its own value."""
    ch = fc.ChannelU32(device, STRESS_CAPACITY, slot_protocol=protocol)
    queue = device.new_queue()
    init = queue.command_buffer()
    init.channel_init(ch)
    init.commit()
    timed.wait(f"protocol {protocol} init", init, time.perf_counter())
    import numpy as np

    reader = ch.reader()
    # reader.last_index (the index of the item try_next returned) checks every item read;
    # without it, drain_into batches read without a drop are checked.
    exact_index = hasattr(reader, "last_index")
    batch = np.empty(4096, dtype=np.uint32)
    total = window_items * windows
    checked = mismatched = out_of_order = received = 0
    examples: list[str] = []
    last = -1
    in_flight: list[tuple[Any, float]] = []
    next_window = 0
    start = time.perf_counter()
    while True:
        # Two windows in flight: the device never idles, and every command buffer is bounded.
        for cb, t0 in list(in_flight):
            if cb.status in ("completed", "error"):
                timed.record(f"protocol {protocol} window", time.perf_counter() - t0, cb)
                in_flight.remove((cb, t0))
        while next_window < windows and len(in_flight) < 2:
            cb = queue.command_buffer()
            cb.channel_push_sequence(ch, next_window * window_items, window_items)
            if next_window == windows - 1:
                cb.channel_close(ch)
            cb.commit()
            in_flight.append((cb, time.perf_counter()))
            next_window += 1
        before_pos, before_dropped = reader.position, reader.dropped
        if exact_index:
            # One item at a time with its own index: every item read is checked, drops or not.
            one = reader.try_next()
            n = 0 if one is None else 1
            if one is not None:
                batch[0] = one
                before_pos, before_dropped = reader.last_index, reader.dropped
        else:
            n = reader.drain_into(batch)
        if n == 0:
            if next_window == windows and not in_flight and reader.exhausted:
                break
            if time.perf_counter() - start > TIMEOUT_S * windows:
                raise TimeoutError(f"protocol {protocol}: the stress did not finish")
            reader.wait(timeout=0.002)
            continue
        values = batch[:n].astype(np.int64)
        if values[0] <= last or (n > 1 and not np.all(np.diff(values) > 0)):
            out_of_order += 1
        last = int(values[-1])
        received += n
        # Without a drop in this read the items are exactly those from the old position on:
        # each value must be its index (value i was pushed as item i).
        if reader.dropped == before_dropped:
            expected = np.arange(before_pos, before_pos + n, dtype=np.int64)
            bad = np.nonzero(values != expected)[0]
            checked += n
            mismatched += len(bad)
            for i in bad[: 3 - len(examples)]:
                examples.append(f"item {int(expected[i])} read as {int(values[i])}")
    dropped = reader.dropped
    result = {"protocol": protocol, "pushed": total, "received": received, "dropped": dropped,
              "checked": checked, "torn": mismatched, "out_of_order": out_of_order,
              "capacity": STRESS_CAPACITY, "windows": windows}
    problems = []
    if mismatched:
        problems.append(f"{mismatched} items read with another item's value ({'; '.join(examples)})")
    if out_of_order:
        problems.append(f"{out_of_order} items out of order")
    if received + dropped != total:
        problems.append(f"received {received} + dropped {dropped} != pushed {total}")
    if checked == 0:
        problems.append("no item could be checked")
    if problems:
        result.update(status="FAIL", detail="; ".join(problems))
    else:
        result.update(status="ok",
                      detail=f"{total:,} pushed through a ring of {STRESS_CAPACITY}: "
                             f"{received:,} read ({checked:,} checked value == index), "
                             f"{dropped:,} dropped, 0 torn")
    return result


def check_watchdog(timed: _Timed) -> dict[str, Any]:
    longest = max((s for _, s, _ in timed.runs), default=0.0)
    failed = [w for w, _, status in timed.runs if status == "error"]
    result = {"command_buffers": len(timed.runs), "longest_ms": longest * 1e3,
              "bound_ms": WINDOW_BOUND_S * 1e3}
    if failed:
        result.update(status="FAIL", detail=f"command buffers failed: {', '.join(failed)}")
    elif longest > WINDOW_BOUND_S:
        result.update(status="FAIL",
                      detail=f"a test command buffer ran {longest * 1e3:.0f} ms, above the "
                             f"{WINDOW_BOUND_S * 1e3:.0f} ms bound: windows must be smaller here")
    else:
        result.update(status="ok",
                      detail=f"{len(timed.runs)} command buffers, longest {longest * 1e3:.1f} ms "
                             f"(bound {WINDOW_BOUND_S * 1e3:.0f} ms; GPU watchdogs fire after "
                             "seconds)")
    return result


def run(spec: str = "cpu", scale: float = 1.0,
        progress: Optional[Callable[[str], None]] = None) -> dict[str, Any]:
    """Runs every check on device `spec`; `scale` shrinks the sizes (tests)."""
    import foundry_channels as fc

    backend = _backend_of(spec)
    sizes = {k: max(1024, int(v * scale)) if k != "windows" else v
             for k, v in SIZES.get(backend, SIZES["cpu"]).items()}
    report: dict[str, Any] = {"device": spec, "version": fc.__version__, "checks": {}}
    checks = report["checks"]
    say = progress or (lambda _msg: None)
    device = fc.Device(spec, slot_protocol=1)
    report["device_name"] = device.name
    timed = _Timed()
    try:
        for name, fn in (
            ("msl", lambda: check_msl(fc, device)),
            ("live", lambda: check_live(fc, device, sizes["live_items"], timed)),
            ("protocol1", lambda: check_protocol(fc, device, 1, sizes["window_items"],
                                                 sizes["windows"], timed)),
            ("protocol2", lambda: check_protocol(fc, device, 2, sizes["window_items"],
                                                 sizes["windows"], timed)),
        ):
            say(name)
            try:
                checks[name] = fn()
            except Exception as e:  # a failed check is reported, the others still run
                checks[name] = {"status": "FAIL", "detail": f"{type(e).__name__}: {e}"}
        checks["watchdog"] = check_watchdog(timed)
    finally:
        device.close()
    passed = [p for p in (1, 2) if checks[f"protocol{p}"]["status"] == "ok"]
    report["protocol"] = passed[0] if passed else None
    report["passed"] = (bool(passed) and all(
        c["status"] in ("ok", "n/a") for n, c in checks.items() if not n.startswith("protocol")))
    return report


LABELS = {"msl": "MSL compiles", "live": "live visibility", "protocol1": "slot protocol 1",
          "protocol2": "slot protocol 2", "watchdog": "watchdog"}


def format_report(report: dict[str, Any]) -> str:
    lines = [f"foundry-channels {report['version']} selftest on {report['device']} "
             f"({report.get('device_name', '?')})"]
    for name, check in report["checks"].items():
        lines.append(f"  {LABELS.get(name, name):17} {check['status']:5} {check.get('detail', '')}")
    protocol = report["protocol"]
    backend = _backend_of(report["device"])
    if protocol == 1:
        choice = "slot protocol 1 (the default) passed: nothing to set"
    elif protocol == 2:
        choice = (f"slot protocol 2 passed and 1 did not: use it (FOUNDRY_CHANNELS_SLOT_PROTOCOL=2 "
                  f"or fc.Device('{backend}', slot_protocol=2))")
    else:
        choice = "no slot protocol passed: do not use channels on this device"
    lines.append(f"result: {'PASS' if report['passed'] else 'FAIL'}; {choice}")
    return "\n".join(lines)
