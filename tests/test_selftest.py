"""`foundry-channels selftest` (python/foundry_channels/selftest.py): the checklist a Mac user
runs (docs/metal.md), exercised here on cpu and, where present, cuda."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import foundry_channels as fc
from foundry_channels import selftest

from conftest import REQUIRED

CHECKS = {"msl", "live", "protocol1", "protocol2", "watchdog"}


def require(backend: str) -> None:
    reason = fc.backend_status()[backend]
    if reason:
        if backend in REQUIRED:
            pytest.fail(f"{backend} is required by FOUNDRY_CHANNELS_REQUIRE but unavailable: {reason}")
        pytest.skip(f"{backend} not available: {reason}")


@pytest.mark.parametrize("backend", ["cpu", "cuda"])
def test_selftest_passes_and_reports_every_check(backend):
    require(backend)
    report = selftest.run(backend, scale=0.25)
    checks = report["checks"]
    assert set(checks) == CHECKS
    assert report["passed"], selftest.format_report(report)
    assert checks["msl"]["status"] == "n/a" and "metal" in checks["msl"]["detail"]
    live = checks["live"]
    assert live["status"] == "ok" and live["seen_while_running"] > 0 and live["first_item_us"] > 0
    for p in (1, 2):
        c = checks[f"protocol{p}"]
        assert c["status"] == "ok" and c["protocol"] == p
        assert c["torn"] == 0 and c["checked"] > 0
        assert c["received"] + c["dropped"] == c["pushed"]
        assert c["dropped"] > 0  # the ring was lapped: the stress ran over overwritten slots
    assert checks["watchdog"]["status"] == "ok"
    assert checks["watchdog"]["longest_ms"] <= checks["watchdog"]["bound_ms"]
    assert report["protocol"] == 1  # both passed: the default is kept
    screen = selftest.format_report(report)
    assert len(screen.splitlines()) == 7 and "result: PASS" in screen and "slot protocol 1" in screen


def test_report_picks_protocol_2_when_only_it_passed():
    report = {"device": "metal", "device_name": "Apple M3", "version": "0", "protocol": 2,
              "passed": True,
              "checks": {"protocol1": {"status": "FAIL", "detail": "3 items read with another "
                                                                   "item's value"},
                         "protocol2": {"status": "ok", "detail": "fine"}}}
    screen = selftest.format_report(report)
    assert "FOUNDRY_CHANNELS_SLOT_PROTOCOL=2" in screen and "slot_protocol=2" in screen


def test_a_failed_check_fails_the_report(monkeypatch):
    monkeypatch.setattr(selftest, "check_live", lambda *a, **k: {"status": "FAIL", "detail": "late"})
    report = selftest.run("cpu", scale=0.05)
    assert not report["passed"] and report["protocol"] == 1
    assert "result: FAIL" in selftest.format_report(report)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "foundry_channels", "selftest", *args],
                          capture_output=True, text=True, timeout=300)


def test_cli_screen_and_json_on_cpu():
    result = run_cli("--device", "cpu")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("foundry-channels") and "selftest on cpu" in lines[0]
    assert lines[-1].startswith("result: PASS")
    assert len(lines) <= 24  # one screen
    result = run_cli("--device", "cpu", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["passed"] and report["protocol"] == 1 and set(report["checks"]) == CHECKS


@pytest.mark.skipif(sys.platform == "darwin", reason="on macOS the Metal backend may be available")
def test_cli_on_an_unavailable_backend_says_why():
    result = run_cli("--device", "metal")
    assert result.returncode == 2 and "not available" in result.stderr
