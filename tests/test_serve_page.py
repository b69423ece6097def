"""The page at `/` in a real headless browser: Debian's chromium and chromium-driver, driven
by Selenium (both found on PATH; nothing downloads a browser). The page streams
`GET /generate` with EventSource into its output and keeps a status line; the text it shows
must be what the engine generates for the same request, and Stop must cancel the request on
the server."""

from __future__ import annotations

import os
import shutil

import pytest

pytest.importorskip("sse_starlette")
webdriver = pytest.importorskip("selenium.webdriver")

from serve_support import engine, run_alone, served, slow_served, wait_until  # noqa: E402,F401

# Sanitizer runtimes preloaded into the test process (.ci/run) must not reach the browser.
_NOT_FOR_THE_BROWSER = ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS", "TSAN_OPTIONS")


def chromium_paths():
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser and driver:
        return browser, driver
    if shutil.which("apt-get"):
        pytest.fail("chromium and chromedriver are missing but apt-get exists: "
                    "apt-get install -y chromium chromium-driver (as .ci/run does)")
    pytest.skip("no chromium/chromedriver and no apt-get to install them")


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1100,900"):
        options.add_argument(arg)
    env = {k: v for k, v in os.environ.items() if k not in _NOT_FOR_THE_BROWSER}
    driver = webdriver.Chrome(service=Service(executable_path=driver_path, env=env), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def start(browser, url, prompt, max_tokens, seed, stop=""):
    from selenium.webdriver.common.by import By

    browser.get(f"{url}/")
    for name, value in (("prompt", prompt), ("max_tokens", max_tokens), ("seed", seed), ("stop", stop)):
        field = browser.find_element(By.ID, name)
        field.clear()
        field.send_keys(str(value))
    browser.find_element(By.ID, "generate").click()
    return browser.find_element(By.ID, "status")


def wait_for_state(browser, status, states, timeout=60):
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, timeout, poll_frequency=0.01).until(lambda _: status.get_attribute("data-state") in states)
    return status.get_attribute("data-state")


def test_the_page_streams_the_engines_text_live_with_a_status_line(browser, served, engine):
    from selenium.webdriver.common.by import By

    client, _ = served
    prompt = "We hold these truths"
    status = start(browser, str(client.base_url), prompt, 300, 5)
    assert wait_for_state(browser, status, ("done", "error")) == "done", status.text
    text, tokens, reason, _ = run_alone(engine, prompt, max_tokens=300, seed=5)
    shown = browser.find_element(By.ID, "output").get_property("textContent")
    assert shown == text
    figures = {k: status.get_attribute(f"data-{k}")
               for k in ("tokens", "events", "first-token-ms", "tokens-per-s", "finish-reason")}
    assert int(figures["tokens"]) == len(tokens) and int(figures["events"]) >= 1
    assert float(figures["first-token-ms"]) >= 0 and float(figures["tokens-per-s"]) > 0
    assert figures["finish-reason"] == reason
    assert "tokens/s" in status.text and "first token" in status.text


def test_the_page_shows_text_while_it_is_generated(browser, slow_served):
    # The slow engine double (one token per piece): the page must show text before the end.
    from selenium.webdriver.common.by import By

    client, recorder = slow_served
    status = start(browser, str(client.base_url), "We hold", 3000, 3)
    assert wait_for_state(browser, status, ("streaming", "done", "error")) == "streaming"
    partial = browser.find_element(By.ID, "output").get_property("textContent")
    assert partial and recorder.requests[-1].finish_reason is None  # text shown mid-generation
    assert wait_for_state(browser, status, ("done", "error")) == "done", status.text
    final = browser.find_element(By.ID, "output").get_property("textContent")
    assert final.startswith(partial) and len(final) > len(partial)
    assert int(status.get_attribute("data-events")) > 100  # one event per piece
    assert int(status.get_attribute("data-tokens")) == 3000


def test_the_page_honours_a_stop_string(browser, served, engine):
    from selenium.webdriver.common.by import By

    client, _ = served
    prompt = "Shall I compare"
    full, _, _, _ = run_alone(engine, prompt, max_tokens=200, seed=9)
    stop = full[50:53]
    status = start(browser, str(client.base_url), prompt, 200, 9, stop)
    assert wait_for_state(browser, status, ("done", "error")) == "done", status.text
    assert browser.find_element(By.ID, "output").get_property("textContent") == full[:full.index(stop)]
    assert status.get_attribute("data-finish-reason") == "stop"


def test_stop_on_the_page_cancels_the_request_on_the_server(browser, slow_served):
    # The slow engine double: the real one finishes before a person (or a test) can click.
    from selenium.webdriver.common.by import By

    client, recorder = slow_served
    before = len(recorder.requests)
    status = start(browser, str(client.base_url), "We hold", 4000, 1)
    assert wait_for_state(browser, status, ("streaming", "done", "error")) == "streaming"
    browser.find_element(By.ID, "cancel").click()
    assert status.get_attribute("data-state") == "stopped"
    request = recorder.requests[before]
    wait_until(lambda: request.finish_reason is not None, what="the request to end")
    assert request.finish_reason == "cancelled" and request.completion_tokens < 4000


def test_the_page_shows_why_the_server_refused_a_request(browser, served):
    client, recorder = served
    before = len(recorder.requests)
    status = start(browser, str(client.base_url), "", 10, 1)  # the engine refuses an empty prompt
    assert wait_for_state(browser, status, ("error", "done")) == "error"
    wait_until(lambda: "prompt" in status.text, timeout=30, what="the refusal to show")
    assert len(recorder.requests) == before  # refused: nothing ran
