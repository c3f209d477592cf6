"""``responseai serve`` end to end: a real server, headless Chromium, the demo case.

Starts ``responseai serve`` on a free loopback port with the demo case and a broken case
folder, drives Debian's Chromium through Playwright (``executable_path=/usr/bin/chromium``;
no browser download), and checks what a user sees: a clear message for the bad folder, a
validation message next to its field, a run off the UI thread with progress, the pCR
probability equal to the CLI's on the same case, the heatmap overlay in the slice views, a
downloadable report, DCE kinetics on the prediction's tumour segment (the job's FTV, worst
curve and majority class in the page, the class colours in the views), and no node leak over
two runs. Skipped only where no Chromium (or no
``playwright`` package) is installed.

The screenshot is written to the test's folder; with ``RESPONSEAI_WRITE_DOCS_IMAGES=1`` (or
when it does not exist yet) also to ``docs/images/serve.png``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[3]
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
DOCS_IMAGE = ROOT / "docs" / "images" / "serve.png"

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (apt-get install -y chromium)")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONUTF8": "1", "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def warm_pixels(rgb: np.ndarray) -> int:
    """Pixels in the inferno heatmap's red–orange–yellow range (red well above blue): never grey
    MRI, the cyan outline, nor the page's blue button / dark theme. Yellow counts: an attention map
    concentrated on the tumour (pCR 1.4) is near its maximum, inferno's yellow, over most of it."""
    r, g, b = (rgb[..., i].astype(int) for i in range(3))
    return int(((r > 110) & (r - b > 40)).sum())


def plateau_pixels(rgb: np.ndarray) -> int:
    """Pixels of the kinetic map's plateau yellow (the demo lesion's majority class) over the anatomy."""
    r, g, b = (rgb[..., i].astype(int) for i in range(3))
    return int(((r > 140) & (g > 120) & (g - b > 70) & (r - g < 60)).sum())


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    from responseai.breast.demo import demo_case, write_case

    root = tmp_path_factory.mktemp("serve-cases")
    case = demo_case()
    demo = root / case.patient_id
    write_case(case, demo)
    bad = root / "broken-case"
    bad.mkdir()
    (bad / "pre.nrrd").write_text("not an image", encoding="utf-8")
    (bad / "post1.nrrd").write_text("not an image either", encoding="utf-8")
    return {"demo": demo, "bad": bad, "clinical": case.clinical, "id": case.patient_id}


@pytest.fixture(scope="module")
def cli_probability(cases, tmp_path_factory):
    """What ``responseai predict breast`` says for the same case (same files, same clinical values)."""
    out = tmp_path_factory.mktemp("cli") / "out"
    demo = cases["demo"]
    command = [sys.executable, "-m", "responseai.cli", "predict", "breast", "--case-id", cases["id"],
               "--pre", str(demo / "pre.nrrd"), "--post1", str(demo / "post1.nrrd"), "--post2", str(demo / "post2.nrrd"),
               "--mask", str(demo / "mask.nrrd"), "--clinical", str(demo / "clinical.json"), "--out", str(out)]
    done = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads((out / "result.json").read_text(encoding="utf-8"))["pcr_probability"]


@pytest.fixture(scope="module")
def server(cases, tmp_path_factory):
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    work = log.parent / "work"
    with log.open("w", encoding="utf-8") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "responseai.cli", "serve", "--case", str(cases["demo"]), "--case", str(cases["bad"]),
             "--port", str(port), "--work-dir", str(work)],
            env=_env(), stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"responseai serve exited ({process.returncode}):\n{log.read_text(encoding='utf-8')[-3000:]}")
            try:
                urllib.request.urlopen(url, timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"responseai serve did not answer within 60 s:\n{log.read_text(encoding='utf-8')[-3000:]}")
                time.sleep(0.3)
        yield {"url": url, "log": log, "work": work}
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the server and any job it started (own session)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with playwright_api.sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def _views_rgb(page) -> np.ndarray:
    from io import BytesIO

    from PIL import Image as PILImage

    png = page.locator("#views").screenshot()
    return np.asarray(PILImage.open(BytesIO(png)).convert("RGB"))


def test_serve_demo_case_end_to_end(server, browser, cases, cli_probability, tmp_path):
    from responseai.breast.constants import CLINICAL_SCHEMA
    from responseai.clinical import field_errors

    started = time.monotonic()
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(server["url"])

    # a bad case folder: one clear line in the page, no traceback
    page.click("#case-1")
    error = page.wait_for_selector("#case-error", timeout=20000).inner_text()
    assert "pre" in error and "cannot be read" in error and "Traceback" not in error
    assert page.query_selector("#run") is None

    # the demo case: form filled from its clinical.json, Slicer's slice views drawn
    page.click("#case-0")
    page.wait_for_selector("#run", timeout=30000)
    assert page.input_value("#field-age") == str(cases["clinical"]["age"])
    page.wait_for_timeout(1500)
    before = _views_rgb(page)
    assert before.std() > 10, "the slice views are blank"

    # a validation error next to its field, the Slicer form's own message; Run is disabled meanwhile
    page.fill("#field-age", "300")
    expected = field_errors({"age": "300"}, CLINICAL_SCHEMA)["age"]
    assert page.wait_for_selector("#error-age", timeout=10000).inner_text() == expected
    assert page.is_disabled("#run")
    page.fill("#field-age", str(cases["clinical"]["age"]))
    page.wait_for_selector("#error-age", state="detached", timeout=10000)

    # run: progress while the job works, then the probability — the CLI's, for the same case
    page.click("#run")
    page.wait_for_selector("#progress", timeout=10000)
    page.wait_for_selector("#pcr-probability", timeout=120000)
    shown = float(page.text_content("#pcr-raw"))
    assert shown == cli_probability
    assert page.inner_text("#pcr-probability") == f"{cli_probability:.3f}"
    nodes_after_first = int(page.text_content("#node-count"))

    # the overlay: heatmap colours in the views, absent before the run; the opacity slider works
    page.wait_for_timeout(2000)
    after = _views_rgb(page)
    assert after.std() > 10
    warm_before, warm_default = warm_pixels(before), warm_pixels(after)
    assert warm_default > 50 + 5 * warm_before, (warm_before, warm_default)
    thumb = page.locator(".v-slider-thumb").first
    thumb.focus()
    thumb.press("End")  # opacity 1
    page.wait_for_timeout(2000)
    warm_full = warm_pixels(_views_rgb(page))
    assert warm_full > 2 * warm_default, (warm_default, warm_full)
    for _ in range(6):
        thumb.press("ArrowLeft")  # 0.7: the heatmap and the anatomy under it, for the picture
    page.wait_for_timeout(2000)
    shown_overlay = _views_rgb(page)
    assert shown_overlay.std() > 10 and warm_pixels(shown_overlay) > warm_default
    shot = tmp_path / "serve.png"
    page.screenshot(path=str(shot))
    if os.environ.get("RESPONSEAI_WRITE_DOCS_IMAGES") == "1" or not DOCS_IMAGE.exists():
        DOCS_IMAGE.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOCS_IMAGE)

    # the report: written by `responseai report`, offered for download
    page.click("#write-report")
    link = page.wait_for_selector("#report-link", timeout=60000)
    response = page.request.get(server["url"] + link.get_attribute("href"))
    assert response.status == 200 and response.body()[:5] == b"%PDF-"

    # DCE kinetics on the prediction's tumour segment: the job's own numbers, the class colours
    yellow_before = plateau_pixels(_views_rgb(page))
    page.click("#run-kinetics")
    page.wait_for_selector("#kinetics-worst", timeout=120000)
    record = json.loads((server["work"] / "runs" / "001" / "kinetics" / "result.json").read_text(encoding="utf-8"))
    assert record["inputs"]["mask"].endswith("tumour.seg.nrrd")
    baseline = record["baseline"]
    assert page.inner_text("#kinetics-ftv") == f"FTV: {baseline['ftv_ml']:.2f} ml"
    assert page.inner_text("#kinetics-worst") == f"worst curve: {baseline['worst_curve']}"
    assert page.inner_text("#kinetics-majority") == f"majority class: {baseline['majority_class']}"
    page.wait_for_timeout(2000)
    yellow_after = plateau_pixels(_views_rgb(page))
    # contrasts with the views before the map, so the heatmap's own yellow (inferno's top) cancels out
    added = yellow_after - yellow_before
    assert added > 1000, (yellow_before, yellow_after)
    page.screenshot(path=str(tmp_path / "serve-kinetics.png"))
    page.click("#kinetics-visible")  # hide the map: its colours leave the views
    page.wait_for_timeout(2000)
    yellow_hidden = plateau_pixels(_views_rgb(page))
    assert yellow_hidden - yellow_before < added / 2, (yellow_before, yellow_after, yellow_hidden)
    print(f"plateau pixels before / with / without the map: {yellow_before} / {yellow_after} / {yellow_hidden}")  # noqa: T201
    nodes_after_first = int(page.text_content("#node-count"))  # with the kinetics nodes

    # a second run reuses the nodes
    page.click("#run")
    page.wait_for_selector("#pcr-probability", state="detached", timeout=10000)
    page.wait_for_selector("#pcr-probability", timeout=120000)
    assert float(page.text_content("#pcr-raw")) == cli_probability
    assert int(page.text_content("#node-count")) == nodes_after_first
    page.close()
    assert "Traceback" not in server["log"].read_text(encoding="utf-8")
    print(f"browser part: {time.monotonic() - started:.1f} s")  # noqa: T201 - shown with -s
