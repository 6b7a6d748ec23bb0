"""The painting demo in a real browser: headless Chromium (Debian's chromium + chromium-driver) driven by
Selenium against the demo's server, run in this process so the test sees what the server received.

Skipped, with the reason, only where no browser can be installed (.ci/run installs it: apt packages
chromium and chromium-driver, pip requirements-demo.txt).
"""
import base64
import io
import shutil
import tempfile
import threading

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from conftest import demo_engine

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait
    SELENIUM = True
except ImportError:
    SELENIUM = False

pytestmark = pytest.mark.skipif(
    not (SELENIUM and CHROMIUM and CHROMEDRIVER),
    reason="no headless browser here: needs Debian's chromium and chromium-driver (apt-get install chromium "
           "chromium-driver) and selenium (pip install -r requirements-demo.txt); .ci/run installs them")

SIDE = 32          # the synthetic DAGAN's canvas: 32x32 label values, shown at 512x512 CSS pixels
WAIT = 60


# ---------------------------------------------------------------------------------------------------
# the expected label maps, from the page's documented rules (written here independently of demo.js)
# ---------------------------------------------------------------------------------------------------
def disc(labels, cx, cy, size, value):
    """A brush of ``size`` paints the pixels whose centres lie within (size - 1) / 2 of (cx, cy)."""
    r = (size - 1) / 2
    ys, xs = np.mgrid[0:labels.shape[0], 0:labels.shape[1]]
    labels[(xs - cx) ** 2 + (ys - cy) ** 2 <= r * r] = value


def straight_stroke(labels, start, end, size, value):
    """A horizontal or vertical stroke: the brush at every pixel between start and end."""
    (x0, y0), (x1, y1) = start, end
    assert x0 == x1 or y0 == y1
    for x in range(min(x0, x1), max(x0, x1) + 1):
        for y in range(min(y0, y1), max(y0, y1) + 1):
            disc(labels, x, y, size, value)


def flood(labels, x, y, value):
    """4-connected fill of the region of (x, y)'s value."""
    same = labels == labels[y, x]
    regions, _ = ndimage.label(same, structure=[[0, 1, 0], [1, 1, 1], [0, 1, 0]])
    labels[regions == regions[y, x]] = value


# ---------------------------------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo(synth_root):
    """The demo's server over a random-weight synthetic DAGAN (32x32, ngf 8) with the val picker."""
    from util.demo.server import DemoServer

    engine = demo_engine(with_val=True, dataroot=synth_root)
    server = DemoServer(engine, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="demo-chromium-")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-quic", "--no-first-run", "--window-size=1500,1100", f"--user-data-dir={profile}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def open_page(driver, server):
    driver.get(server.url)
    WebDriverWait(driver, WAIT).until(lambda d: d.execute_script("return document.body.dataset.ready") == "true")
    assert driver.find_element(By.ID, "error").get_attribute("hidden") is not None


def offset(x, y, side=SIDE):
    """Selenium's offset from the centre of a square canvas of ``side`` label pixels (shown at 512 CSS
    pixels) to the centre of label pixel (x, y)."""
    scale = 512 // side
    return scale * x + scale // 2 - 256, scale * y + scale // 2 - 256


def pick(driver, value, tool="brush", size=None):
    driver.find_element(By.CSS_SELECTOR, f'#class-list li[data-value="{value}"]').click()
    driver.find_element(By.ID, f"tool-{tool}").click()
    if size is not None:
        Select(driver.find_element(By.ID, "brush-size")).select_by_value(str(size))


def drag(driver, start, end, side=SIDE):
    canvas = driver.find_element(By.ID, "label-canvas")
    ActionChains(driver).move_to_element_with_offset(canvas, *offset(*start, side)).click_and_hold() \
        .move_to_element_with_offset(canvas, *offset(*end, side)).release().perform()


def click_pixel(driver, x, y):
    canvas = driver.find_element(By.ID, "label-canvas")
    ActionChains(driver).move_to_element_with_offset(canvas, *offset(x, y)).click().perform()


def generate(driver, engine):
    """Press Generate and wait for the image; returns the label map the server received."""
    before = engine.generations
    driver.find_element(By.ID, "generate").click()
    WebDriverWait(driver, WAIT).until(
        lambda d: engine.generations > before and "generated" in d.find_element(By.ID, "status").text)
    return engine.received[-1]


# ---------------------------------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------------------------------
def test_painted_strokes_of_two_classes_reach_the_server_exactly(browser, demo):
    engine = demo.engine
    open_page(browser, demo)
    expected = np.zeros((SIDE, SIDE), dtype=np.int64)  # the blank canvas: background (value 0)

    pick(browser, 2, size=3)
    drag(browser, (4, 10), (20, 10))
    straight_stroke(expected, (4, 10), (20, 10), 3, 2)
    pick(browser, 5, size=1)
    drag(browser, (25, 2), (25, 28))
    straight_stroke(expected, (25, 2), (25, 28), 1, 5)
    pick(browser, 7, size=9)
    drag(browser, (8, 24), (14, 24))
    straight_stroke(expected, (8, 24), (14, 24), 9, 7)

    received = generate(browser, engine)
    assert received.shape == (SIDE, SIDE)
    np.testing.assert_array_equal(received, expected)
    assert set(np.unique(received)) == {0, 2, 5, 7}

    # The image shown is the model's, at the model's size, and so are the attention extras.
    size = browser.execute_script(
        "const i = document.getElementById('result-image'); return [i.naturalWidth, i.naturalHeight, i.hidden];")
    assert size == [SIDE, SIDE, False]
    extras = browser.execute_script(
        "return [...document.querySelectorAll('#extras img')].map(i => [i.dataset.extra, i.naturalWidth]);")
    names = [name for name, _ in extras]
    assert {"sam_attention", "sam_attention_heatmap", "cam_weights"} <= set(names)
    assert dict(extras)["sam_attention"] == SIDE
    link = browser.find_element(By.ID, "download-image")
    assert link.get_attribute("href").startswith("data:image/png;base64,")


def test_fill_eraser_and_undo(browser, demo):
    engine = demo.engine
    open_page(browser, demo)
    expected = np.zeros((SIDE, SIDE), dtype=np.int64)
    # A closed frame of class 4, then fill its inside with class 3 and the outside with class 6.
    pick(browser, 4, size=1)
    for start, end in (((5, 5), (20, 5)), ((20, 5), (20, 20)), ((20, 20), (5, 20)), ((5, 20), (5, 5))):
        drag(browser, start, end)
        straight_stroke(expected, start, end, 1, 4)
    pick(browser, 3, tool="fill")
    click_pixel(browser, 12, 12)
    flood(expected, 12, 12, 3)
    pick(browser, 6, tool="fill")
    click_pixel(browser, 0, 31)
    flood(expected, 0, 31, 6)
    np.testing.assert_array_equal(generate(browser, engine), expected)
    assert (expected == 3).sum() == 14 * 14 and (expected == 6).sum() == SIDE * SIDE - 16 * 16

    # The eraser paints the blank value (this dataset has no dontcare class: background, 0).
    browser.find_element(By.ID, "tool-eraser").click()
    Select(browser.find_element(By.ID, "brush-size")).select_by_value("5")
    drag(browser, (12, 8), (12, 16))
    straight_stroke(expected, (12, 8), (12, 16), 5, 0)
    np.testing.assert_array_equal(generate(browser, engine), expected)

    # A stroke, then Undo: the map is the one before the stroke.
    pick(browser, 1, size=15)
    drag(browser, (0, 0), (31, 0))
    browser.find_element(By.ID, "undo").click()
    np.testing.assert_array_equal(generate(browser, engine), expected)


def test_val_label_map_from_the_picker(browser, demo):
    engine = demo.engine
    open_page(browser, demo)
    browser.find_element(By.ID, "open-val").click()
    thumb = WebDriverWait(browser, WAIT).until(
        lambda d: d.find_element(By.CSS_SELECTOR, '#val-grid img[data-index="1"]'))
    WebDriverWait(browser, WAIT).until(lambda d: d.execute_script("return arguments[0].naturalWidth", thumb) > 0)
    thumb.click()
    WebDriverWait(browser, WAIT).until(lambda d: "started from val" in d.find_element(By.ID, "status").text)
    # The val label file as stored (64x64 class ids), resized to 32x32 with PIL's nearest neighbour
    # as the loaders do.
    with Image.open(engine.val.label_paths[1]) as img:
        want = np.asarray(img.convert("I").resize((SIDE, SIDE), Image.NEAREST)).astype(np.int64)
    np.testing.assert_array_equal(generate(browser, engine), want)


def test_uploads_ids_and_an_out_of_palette_colour(browser, demo, tmp_path):
    engine = demo.engine
    open_page(browser, demo)
    ids = np.zeros((SIDE, SIDE), dtype=np.uint8)
    ids[3:17, 9:30] = 6
    ids[20:, :12] = 2
    path = tmp_path / "ids.png"
    Image.fromarray(ids).save(path)
    browser.find_element(By.ID, "upload-labels").send_keys(str(path))
    WebDriverWait(browser, WAIT).until(lambda d: "loaded ids.png" in d.find_element(By.ID, "status").text)
    np.testing.assert_array_equal(generate(browser, engine), ids)

    # Colours: the synthetic classes' own colours (data/synthetic.py: background (30, 30, 30), red
    # (225, 30, 30)); pure magenta is 52 away from the nearest class colour (225, 30, 225).
    colours = np.full((SIDE, SIDE, 3), 30, dtype=np.uint8)
    colours[:, :16] = (225, 30, 30)
    colours[7, 21] = (255, 0, 255)
    bad = tmp_path / "colours.png"
    Image.fromarray(colours).save(bad)
    browser.find_element(By.ID, "upload-labels").send_keys(str(bad))
    error = WebDriverWait(browser, WAIT).until(
        lambda d: d.find_element(By.ID, "error") if d.find_element(By.ID, "error").is_displayed() else None)
    assert "(255, 0, 255)" in error.text and "x=21, y=7" in error.text
    assert "not in the synthetic palette" in error.text
    # The canvas kept the uploaded ids.
    np.testing.assert_array_equal(generate(browser, engine), ids)


def test_a_second_tabs_request_waits_for_the_first(browser, demo):
    engine = demo.engine
    model = engine.model
    entered, release = threading.Event(), threading.Event()
    original = model.inference_seeded

    def held(*args, **kwargs):
        if not entered.is_set():
            entered.set()
            assert release.wait(WAIT), "the test never released the first generation"
        return original(*args, **kwargs)

    model.inference_seeded = held
    first_tab = browser.current_window_handle
    try:
        open_page(browser, demo)
        before, most_before = engine.generations, engine.queue.most_at_once
        browser.find_element(By.ID, "generate").click()
        assert entered.wait(WAIT)
        browser.switch_to.new_window("tab")
        second_tab = browser.current_window_handle
        open_page(browser, demo)
        browser.find_element(By.ID, "generate").click()
        WebDriverWait(browser, WAIT).until(
            lambda d: d.find_element(By.ID, "status").text == "queued: 1 request ahead")
        assert engine.generations == before  # the first is still held, the second has not run
        release.set()
        WebDriverWait(browser, WAIT).until(lambda d: "generated" in d.find_element(By.ID, "status").text)
        assert "behind 1 request" in browser.find_element(By.ID, "status").text
        browser.close()
        browser.switch_to.window(first_tab)
        WebDriverWait(browser, WAIT).until(lambda d: "generated" in d.find_element(By.ID, "status").text)
        assert "behind" not in browser.find_element(By.ID, "status").text
        assert engine.generations == before + 2
        assert max(most_before, 1) == engine.queue.most_at_once == 1
    finally:
        release.set()
        del model.inference_seeded
        if browser.current_window_handle != first_tab and first_tab in browser.window_handles:
            browser.switch_to.window(first_tab)
    assert second_tab not in browser.window_handles


def test_downloads_of_the_label_map(browser, demo):
    """The colour download is the canvas at 1:1 (exact palette colours); the ids download is the label
    values as an 8-bit grey PNG."""
    open_page(browser, demo)
    pick(browser, 3, size=5)
    drag(browser, (2, 2), (29, 2))
    expected = np.zeros((SIDE, SIDE), dtype=np.int64)
    straight_stroke(expected, (2, 2), (29, 2), 5, 3)
    colour_png = browser.execute_async_script(
        "const done = arguments[0]; document.getElementById('label-canvas').toBlob(b => {"
        " const r = new FileReader(); r.onload = () => done(r.result); r.readAsDataURL(b); }, 'image/png');")
    with Image.open(io.BytesIO(base64.b64decode(colour_png.split(",", 1)[1]))) as img:
        colours = np.asarray(img.convert("RGB"))
    # data/synthetic.py: class 3 'blue' (30, 30, 225), class 0 'background' (30, 30, 30)
    assert (colours[expected == 3] == (30, 30, 225)).all() and (colours[expected == 0] == 30).all()
    ids_png = browser.execute_async_script(
        "const done = arguments[0]; fetch('/api/label_png', {method: 'POST', headers: {'Content-Type': "
        "'application/json'}, body: JSON.stringify(labelPayload())}).then(r => r.blob()).then(b => {"
        " const f = new FileReader(); f.onload = () => done(f.result); f.readAsDataURL(b); });")
    with Image.open(io.BytesIO(base64.b64decode(ids_png.split(",", 1)[1]))) as img:
        assert img.mode == "L"
        np.testing.assert_array_equal(np.asarray(img), expected)


def serve(engine):
    from util.demo.server import DemoServer

    server = DemoServer(engine, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def recording(model):
    """Wrap ``model.inference_seeded`` to record the (seed, class_seeds, style given) of each call."""
    calls = []
    original = model.inference_seeded

    def record(data, seed, class_seeds=None, extras=False):
        calls.append((seed, dict(class_seeds or {}), bool(data["image"].abs().sum() > 0)))
        return original(data, seed, class_seeds, extras=extras)

    model.inference_seeded = record
    return calls


def test_oasis_new_noise_and_one_class_resampled(browser, synth_root):
    engine = demo_engine(model="oasis", dataroot=synth_root)
    calls = recording(engine.model)
    server = serve(engine)
    try:
        open_page(browser, server)
        assert browser.find_element(By.ID, "noise-controls").is_displayed()
        assert (engine.width, engine.height) == (64, 64)  # OASIS' synthetic preset
        pick(browser, 2, size=15)
        drag(browser, (8, 16), (54, 16), side=64)
        first = generate(browser, engine)
        assert calls[-1][:2] == (engine.opt.seed, {}) and (first == 2).sum() > 0

        # Re-sample class 2's noise: same seed, class 2 with a seed of its own, a different image.
        browser.find_element(By.ID, "resample-class").click()
        WebDriverWait(browser, WAIT).until(lambda d: len(calls) == 2 and "generated" in d.find_element(By.ID, "status").text)
        seed, class_seeds, _ = calls[-1]
        assert seed == engine.opt.seed and list(class_seeds) == [2]
        np.testing.assert_array_equal(engine.received[-1], first)
        # Then class 0 as well: both classes keep their own seeds.
        pick(browser, 0)
        browser.find_element(By.ID, "resample-class").click()
        WebDriverWait(browser, WAIT).until(lambda d: len(calls) == 3 and "generated" in d.find_element(By.ID, "status").text)
        assert sorted(calls[-1][1]) == [0, 2] and calls[-1][1][2] == class_seeds[2]

        # New noise: another seed, no class seeds.
        browser.find_element(By.ID, "new-noise").click()
        WebDriverWait(browser, WAIT).until(lambda d: len(calls) == 4 and "generated" in d.find_element(By.ID, "status").text)
        assert calls[-1][0] != engine.opt.seed and calls[-1][1] == {}
        assert "seed" in browser.find_element(By.ID, "noise-info").text
    finally:
        server.shutdown()
        server.server_close()


def test_vae_style_image(browser, synth_root, tmp_path):
    engine = demo_engine(use_vae=True, dataroot=synth_root)
    calls = recording(engine.model)
    server = serve(engine)
    try:
        open_page(browser, server)
        assert browser.find_element(By.ID, "style-controls").is_displayed()
        generate(browser, engine)
        assert calls[-1][2] is False  # no style image: z ~ N(0, I), the image input is empty
        style = np.zeros((48, 40, 3), dtype=np.uint8)
        style[:, :, 0] = 200
        path = tmp_path / "style.jpg"
        Image.fromarray(style).save(path)
        browser.find_element(By.ID, "style-upload").send_keys(str(path))
        WebDriverWait(browser, WAIT).until(lambda d: "style.jpg" in d.find_element(By.ID, "style-info").text)
        generate(browser, engine)
        assert calls[-1][2] is True
    finally:
        server.shutdown()
        server.server_close()


def test_class_filter_and_the_stale_image_note(browser, demo):
    open_page(browser, demo)
    box = browser.find_element(By.ID, "class-filter")
    box.send_keys("cy")
    visible = [li.text.split("\n")[0] for li in browser.find_elements(By.CSS_SELECTOR, "#class-list li")
               if li.is_displayed()]
    assert visible == ["cyan"]  # data/synthetic.py: the only class name containing 'cy'
    box.clear()
    box.send_keys("e")  # red, green, blue, yellow, magenta, white (not background, not cyan)
    visible = [li.text.split("\n")[0] for li in browser.find_elements(By.CSS_SELECTOR, "#class-list li")
               if li.is_displayed()]
    assert visible == ["red", "green", "blue", "yellow", "magenta", "white"]

    generate(browser, demo.engine)
    pick(browser, 2, size=3)
    drag(browser, (3, 3), (9, 3))
    assert browser.find_element(By.ID, "status").text == "the label map changed: press Generate for a new image"
