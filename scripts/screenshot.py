#!/usr/bin/env python3
"""Take docs/page.png: the service's page after scoring a clip, in headless Chromium.

    python scripts/screenshot.py [CLIP] [--bundle shipped] [--out docs/page.png]

Starts ``ser serve`` on a free port, uploads CLIP (default: a RAVDESS clip from
``../shared/ravdess``) through the page's file input, waits for the bars and saves the
screenshot. Needs the dev extra and Debian's chromium and chromium-driver.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", nargs="?", type=Path,
                        default=ROOT.parent / "shared" / "ravdess" / "Actor_02" /
                        "03-01-05-02-01-01-02.flac")
    parser.add_argument("--bundle", default="shipped")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "page.png")
    args = parser.parse_args()
    from selenium.webdriver.common.by import By

    from pipeline.inference import locate
    from test_page import bars, browser, wait_for
    from test_serve import start_server

    path = locate.resolve(None if args.bundle == "shipped" else args.bundle)
    process, url = start_server(path)
    driver = browser()
    try:
        driver.get(url)
        wait_for(lambda: "UA" in driver.find_element(By.ID, "accuracy").text, what="the model")
        driver.find_element(By.ID, "file").send_keys(str(args.clip.resolve()))
        wait_for(lambda: len(bars(driver)) == 8, what="the bars")
        time.sleep(0.5)  # the bars' width transition
        args.out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(args.out))
        print(f"{args.out}: {driver.find_element(By.ID, 'verdict').text}")
    finally:
        driver.quit()
        process.terminate()


if __name__ == "__main__":
    main()
