"""The page at ``/`` in a real headless browser (Debian's chromium with chromedriver,
driven by Selenium): a clip uploaded through the file input gets its eight bars, and
live mode scores Chromium's fake microphone (fed from a WAV of espeak-ng speech) every
half second, the probabilities appearing and moving. Skips without a browser on a
developer's machine; fails under CI=true, where .ci/run installs it."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from conftest import need, synth_speech
from test_predict import Trained, corpus_clip, trained  # noqa: F401  (the module's tiny model)
from test_serve import start_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


def browser(fake_microphone: Path | None = None):
    """A headless Chromium under Selenium (root needs --no-sandbox)."""
    need(CHROMIUM is not None and DRIVER is not None,
         "chromium and chromium-driver are not installed (scripts/setup.sh installs them as "
         "root; or: apt-get install chromium chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        need(False, "selenium is not installed: pip install -e '.[dev]'")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1000,1100", "--use-fake-ui-for-media-stream",
                 "--use-fake-device-for-media-stream", "--autoplay-policy=no-user-gesture-required"):
        options.add_argument(flag)
    if fake_microphone is not None:
        options.add_argument(f"--use-file-for-fake-audio-capture={fake_microphone}")
    return webdriver.Chrome(service=Service(DRIVER), options=options)


def wait_for(condition, timeout: float = 60.0, what: str = "the page"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def served(trained, tmp_path_factory):  # noqa: F811
    process, url = start_server(trained.bundle_path)
    yield url
    process.terminate()
    process.wait(timeout=30)


def bars(driver) -> dict[str, float]:
    """The bars' probabilities, read in one step (the page redraws them as it goes)."""
    return driver.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('#bars .row')]"
        ".map(row => [row.dataset.label, parseFloat(row.dataset.value)]));")


def test_an_uploaded_clip_gets_its_eight_bars(served, trained):  # noqa: F811
    from selenium.webdriver.common.by import By

    driver = browser()
    try:
        driver.get(served)
        wait_for(lambda: "UA" in driver.find_element(By.ID, "accuracy").text or
                 "No test figures" in driver.find_element(By.ID, "accuracy").text,
                 what="the model's accuracy statement")
        assert "non-commercial" in driver.find_element(By.ID, "licence").text
        clip = corpus_clip(trained, emotion=5, actor=2)
        driver.find_element(By.ID, "file").send_keys(str(clip))
        shown = wait_for(lambda: len(bars(driver)) == 8 and bars(driver), what="the bars")
        assert sum(shown.values()) == pytest.approx(1.0, abs=2e-3)
        verdict = driver.find_element(By.ID, "verdict").text
        assert verdict.split()[0] == max(shown, key=shown.get)
    finally:
        driver.quit()


def test_live_mode_scores_the_microphone_and_the_bars_move(served, tmp_path):
    from selenium.webdriver.common.by import By

    # 12 s of speech in six voices and emotions: each 3 s window hears something else
    speech = np.concatenate([synth_speech(emotion=k + 1, seconds=1.6, seed=k) for k in range(6)])
    microphone = tmp_path / "microphone.wav"
    soundfile.write(microphone, speech, 16000, subtype="PCM_16")
    driver = browser(fake_microphone=microphone)
    try:
        driver.get(served)
        wait_for(lambda: driver.find_element(By.ID, "accuracy").text != "Loading the model…",
                 what="the model")
        driver.find_element(By.ID, "live").click()
        seen = []

        def updated_often():
            status = driver.find_element(By.ID, "live-status").get_attribute("data-updates")
            shown = bars(driver)
            if shown and (not seen or shown != seen[-1]):
                seen.append(shown)
            return int(status or 0) >= 6 and len(seen) >= 2

        wait_for(updated_often, timeout=90, what="six live updates")
        assert all(len(shown) == 8 for shown in seen)
        assert seen[0] != seen[-1]  # the probabilities moved with the audio
        assert not driver.find_element(By.ID, "history").get_attribute("hidden")
        driver.find_element(By.ID, "live").click()  # stop
    finally:
        driver.quit()
