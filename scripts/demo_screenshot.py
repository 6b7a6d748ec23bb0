"""Screenshot of a running painting demo (the README's picture), taken in headless Chromium.

    python demo.py --port 7860 &                   # a trained run, e.g. the main job
    python scripts/demo_screenshot.py --url http://127.0.0.1:7860/ --out docs/demo.png

Starts from val label map ``--val`` (when the run has a val split), paints a stroke of class
``--paint``, presses Generate and saves the window. Needs Debian's chromium + chromium-driver and
selenium (requirements-demo.txt).
"""
import argparse
import shutil
import sys
import tempfile

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:7860/")
    parser.add_argument("--out", default="docs/demo.png")
    parser.add_argument("--val", type=int, default=3, help="val label map to start from (-1: blank)")
    parser.add_argument("--paint", type=int, default=4, help="label value of the painted stroke")
    parser.add_argument("--size", default="1500x900", help="window WxH")
    args = parser.parse_args(argv)
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    profile = tempfile.mkdtemp(prefix="demo-shot-")
    width, height = args.size.split("x")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
                f"--window-size={width},{height}", f"--user-data-dir={profile}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"),
                              options=options)
    wait = WebDriverWait(driver, 120)
    try:
        driver.get(args.url)
        wait.until(lambda d: d.execute_script("return document.body.dataset.ready") == "true")
        if args.val >= 0:
            driver.find_element(By.ID, "open-val").click()
            thumb = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, f'#val-grid img[data-index="{args.val}"]'))
            wait.until(lambda d: d.execute_script("return arguments[0].naturalWidth", thumb) > 0)
            thumb.click()
            wait.until(lambda d: "started from val" in d.find_element(By.ID, "status").text)
        driver.find_element(By.CSS_SELECTOR, f'#class-list li[data-value="{args.paint}"]').click()
        Select(driver.find_element(By.ID, "brush-size")).select_by_value("5")
        canvas = driver.find_element(By.ID, "label-canvas")
        w = canvas.size["width"]
        ActionChains(driver).move_to_element_with_offset(canvas, -w // 3, w // 4).click_and_hold() \
            .move_to_element_with_offset(canvas, w // 3, w // 4).release().perform()
        driver.find_element(By.ID, "generate").click()
        wait.until(lambda d: "generated" in d.find_element(By.ID, "status").text)
        driver.execute_script("window.scrollTo(0, 0)")
        driver.save_screenshot(args.out)
        print(f"saved {args.out}")
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
