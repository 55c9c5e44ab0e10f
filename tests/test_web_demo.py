"""The browser demo (web_demo/) in headless Chromium: MediaPipe Tasks for Web classifies real SST-2 dev sentences
typed into the page's own text box as refbert-predict does, the page explains a missing model, a missing card, a
model without metadata and an empty text, and it asks nothing of any server but the one serving it.

Needs Chromium and its driver (Debian ``chromium`` and ``chromium-driver``, see tests/install_system_packages.sh),
npm (``npm ci`` is run in web_demo/ when its node_modules/ is missing or stale) and Selenium. A trained SST-2 student
is used too when there is one: ``$WEB_DEMO_MODEL`` or artifacts/tflite/sst2_refbert_dynamic_int8.tflite (with its
card and vocabulary beside it), on ``$WEB_DEMO_SENTENCES`` dev sentences (default 100, 872 for all).
"""

import functools
import http.server
import json
import os
import re
import shutil
import statistics
import subprocess
import threading
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

from refbert_tf.data import read_glue_tsv

ROOT = Path(__file__).resolve().parents[1]
WEB_DEMO = ROOT / "web_demo"
PAGE_FILES = ("index.html", "app.js")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=900,760",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # no name but the test server's resolves
)
REAL_MODEL = Path(os.environ.get("WEB_DEMO_MODEL", ROOT / "artifacts" / "tflite" / "sst2_refbert_dynamic_int8.tflite"))
TIMEOUT = 120  # seconds, for the page to load and for each classification


def _installed_version():
    installed = WEB_DEMO / "node_modules" / "@mediapipe" / "tasks-text"
    if not (installed / "wasm" / "text_wasm_internal.wasm").is_file():
        return None
    return json.loads((installed / "package.json").read_text())["version"]


@pytest.fixture(scope="module")
def node_modules():
    """web_demo/node_modules/, installed with ``npm ci`` unless it already holds the locked MediaPipe version."""
    import fcntl

    lock = json.loads((WEB_DEMO / "package-lock.json").read_text())
    wanted = lock["packages"]["node_modules/@mediapipe/tasks-text"]["version"]
    with open(WEB_DEMO / ".npm-ci.lock", "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)  # pytest-xdist workers: one `npm ci` at a time
        if _installed_version() != wanted:
            npm = shutil.which("npm")
            if npm is None:
                pytest.fail(
                    "npm not found: install Node.js and npm to run `npm ci` in web_demo/ (see web_demo/README.md)"
                )
            done = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"], cwd=WEB_DEMO, capture_output=True, text=True, timeout=600
            )
            assert done.returncode == 0, f"npm ci in {WEB_DEMO} failed:\n{done.stdout}\n{done.stderr}"
            assert _installed_version() == wanted, f"npm ci did not install @mediapipe/tasks-text {wanted}"
    return WEB_DEMO / "node_modules"


@pytest.fixture(scope="module")
def site(tmp_path_factory, node_modules):
    """``(root, add)``: a served folder; ``add(name, model, card)`` lays a copy of the page out in ``root/name/``
    with ``model`` as model.tflite and ``card`` (a dict) as model.json, either left out when None."""
    root = tmp_path_factory.mktemp("web_demo_site")

    def add(name, model=None, card=None):
        folder = root / name
        folder.mkdir()
        for file in PAGE_FILES:
            shutil.copy(WEB_DEMO / file, folder / file)
        (folder / "node_modules").symlink_to(node_modules, target_is_directory=True)
        if model is not None:
            shutil.copy(model, folder / "model.tflite")
        if card is not None:
            (folder / "model.json").write_text(json.dumps(card))
        return name

    return root, add


class _Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".js": "text/javascript",
        ".mjs": "text/javascript",
        ".wasm": "application/wasm",
    }

    def end_headers(self):
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server(site):
    """The site served on 127.0.0.1 (a free port) from a thread: its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(site[0])))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Chromium driven by chromedriver (network events logged), always quit."""
    from selenium import webdriver  # in requirements.lock: a missing Selenium fails the test, it does not skip it
    from selenium.webdriver.chrome.service import Service

    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).is_file():
            pytest.fail(f"{path} not found: run tests/install_system_packages.sh (Debian chromium, chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        driver.set_page_load_timeout(TIMEOUT)
        driver.set_script_timeout(TIMEOUT)
        yield driver
    finally:
        driver.quit()


class Page:
    """The demo page open in the browser, used through its UI: the text box, the button and what it shows."""

    def __init__(self, driver, url):
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver, self.wait = driver, WebDriverWait(driver, TIMEOUT)
        driver.get(url)
        self.wait.until(lambda d: d.execute_script("return window.demoReady === true"))

    def _element(self, element_id):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.ID, element_id)

    def text(self, element_id) -> str:
        return self._element(element_id).text

    def value(self, element_id):
        return self._element(element_id).get_attribute("data-value")

    @property
    def state(self) -> str:
        return self.driver.execute_script("return document.body.dataset.state")

    @property
    def message(self) -> tuple[str, str, str]:
        box = self._element("message")
        return box.get_attribute("data-kind"), box.get_attribute("data-code"), box.text

    def classify(self, text: str) -> dict:
        """Type ``text`` into the box, press Classify, and read the label, score, all scores and latency shown."""
        box, result = self._element("text"), self._element("result")
        box.clear()
        if text:
            box.send_keys(text)
        assert box.get_attribute("value") == text, f"the text box did not take {text!r}"
        count = result.get_attribute("data-count")
        self._element("classify").click()
        self.wait.until(lambda d: result.get_attribute("data-count") != count)
        scores = self.value("scores")
        return {
            "label": self.text("label"),
            "score": float(self.value("score")) if self.value("score") else None,
            "scores": json.loads(scores) if scores else None,
            "ms": float(self.value("latency")) if self.value("latency") else None,
        }

    def requested_hosts(self) -> set:
        """Hosts of every http(s)/ws(s) request the browser made since the last call (Chromium's own pages aside)."""
        hosts = set()
        for entry in self.driver.get_log("performance"):
            event = json.loads(entry["message"])["message"]
            if event["method"] == "Network.requestWillBeSent":
                url = urlparse(event["params"]["request"]["url"])
                if url.scheme in ("http", "https", "ws", "wss"):
                    hosts.add(url.hostname)
        return hosts

    def blocked_connections(self) -> list:
        """Console messages since the last call about connections the page's Content-Security-Policy refused."""
        return [e["message"] for e in self.driver.get_log("browser") if "Content Security Policy" in e["message"]]


@pytest.fixture(scope="module")
def sensitive_model(sensitive_export):
    """The conftest's sensitive test model (float32, metadata, dev metrics in its card), as a path."""
    return Path(sensitive_export["path"])


def _card(model_path) -> dict:
    return json.loads(Path(model_path).with_suffix(".json").read_text())


def _refbert_predict(model_path, texts) -> tuple[list, np.ndarray]:
    """refbert-predict's labels and logits for ``texts``, one text at a time."""
    from refbert_tf.predict import load_predictor, predict_texts

    runner, tokenizer, card = load_predictor(model_path)
    logits = np.stack([predict_texts(runner, tokenizer, card, [t])[0][0] for t in texts])
    return [card["labels"][int(i)] for i in logits.argmax(-1)], logits


def _classify_all(page, texts, card) -> tuple[list, np.ndarray, list]:
    rows = [page.classify(t) for t in texts]
    assert all(r["scores"] is not None for r in rows), [page.message for r in rows if r["scores"] is None][:1]
    scores = np.array([[r["scores"][name] for name in card["labels"]] for r in rows])
    return [r["label"] for r in rows], scores, [r["ms"] for r in rows]


def _check_header(page, card):
    metric, value = next(iter(card["dev_metrics"].items()))
    assert page.text("task").startswith("SST-2")
    assert f"dev {metric} {value:.2f}%" in page.text("model-line") and card["variant"] in page.text("model-line")


@pytest.mark.slow
def test_the_pinned_mediapipe_bundle_names_no_server(node_modules):
    """The page loads everything from its own server; MediaPipe 1.0.x's bundle posts usage metrics to Google every
    minute (blocked by the page's CSP, but the demo is meant not to try), which is why package.json pins 0.10.35."""
    bundle = (node_modules / "@mediapipe" / "tasks-text" / "text_bundle.mjs").read_text()
    assert re.findall(r"https?://[\w.-]+", bundle) == []


@pytest.mark.slow
def test_the_page_classifies_sst2_dev_sentences_as_refbert_predict_does(
    sensitive_model, site, server, browser, glue_dir, capsys
):
    dev = list(read_glue_tsv("sst2", "dev", glue_dir=glue_dir).text_a)
    accented = [t for t in dev[60:] if not t.isascii()]  # "cliché": the page strips accents as refbert-tf does
    assert len(accented) >= 5
    texts = dev[:60] + accented
    card = _card(sensitive_model)
    theirs = site[1]("sensitive", sensitive_model, card)
    page = Page(browser, f"{server}/{theirs}/index.html")
    assert page.state == "ready" and page.message[:2] == ("info", "ready"), page.message
    _check_header(page, card)

    labels, scores, ms = _classify_all(page, texts, card)
    expected, logits = _refbert_predict(sensitive_model, texts)
    assert float(np.std(logits[:, 1] - logits[:, 0])) > 1e-2  # the logits depend on the input: equal means equal ids
    np.testing.assert_allclose(scores, logits, atol=1e-4 * max(1.0, float(np.abs(logits).max())))
    assert labels == expected
    assert page.requested_hosts() == {"127.0.0.1"} and page.blocked_connections() == []
    with capsys.disabled():
        print(
            f"\nweb demo, sensitive test model: {len(texts)} SST-2 dev sentences typed into the page, labels agree "
            f"with refbert-predict on {100 * np.mean(np.array(labels) == expected):.1f}%, "
            f"median in-page latency {statistics.median(ms):.2f} ms"
        )
    if not REAL_MODEL.is_file():
        page.classify("a warm , funny , engaging film .")
        browser.save_screenshot(str(WEB_DEMO / "screenshot.png"))


@pytest.mark.slow
def test_the_page_explains_a_missing_model_card_metadata_and_text(sensitive_model, site, server, browser, tmp_path):
    card = _card(sensitive_model)
    plain = tmp_path / "plain.tflite"
    plain.write_bytes(sensitive_model.read_bytes().split(b"PK\x03\x04")[0])  # the packed files' zip cut off
    add = site[1]
    pages = {
        "no_model": add("no_model", None, card),
        "no_card": add("no_card", sensitive_model, None),
        "no_metadata": add("no_metadata", plain, card),
        "mrpc": add("mrpc", plain, {**card, "task": "mrpc"}),
    }

    page = Page(browser, f"{server}/{pages['no_model']}/index.html")
    kind, code, text = page.message
    assert (page.state, kind, code) == ("error", "error", "no-model") and "model.tflite was not found" in text
    assert not page._element("classify").is_enabled()

    page = Page(browser, f"{server}/{pages['no_metadata']}/index.html")
    kind, code, text = page.message
    assert (page.state, kind, code) == ("error", "error", "no-metadata"), page.message
    assert "has no usable TFLite Model Metadata" in text and "Re-export" in text
    page = Page(browser, f"{server}/{pages['mrpc']}/index.html")
    assert page.message[1] == "no-metadata" and "MRPC is a sentence-pair or regression task" in page.message[2]

    page = Page(browser, f"{server}/{pages['no_card']}/index.html")
    kind, code, text = page.message
    assert (page.state, kind, code) == ("ready", "warning", "no-card") and "model.json" in text
    assert page.text("model-line") == "no model card: task and dev metric unknown"
    assert page.classify("a gorgeous , witty , seductive movie .")["label"] in card["labels"]
    for empty in ("", "   "):
        shown = page.classify(empty)
        assert page.message[:2] == ("error", "empty-text") and "Empty text" in page.message[2]
        assert shown["label"] == "–" and shown["scores"] is None
    assert page.classify("the acting is bad .")["label"] in card["labels"]
    assert page.message[1] == "no-card"  # a classification after the empty text brings the status back
    assert page.requested_hosts() == {"127.0.0.1"} and page.blocked_connections() == []


@pytest.mark.slow
@pytest.mark.skipif(not REAL_MODEL.is_file(), reason=f"no trained SST-2 student at {REAL_MODEL}")
def test_the_page_on_the_trained_sst2_student(site, server, browser, glue_dir, capsys):
    texts = list(read_glue_tsv("sst2", "dev", glue_dir=glue_dir).text_a)[
        : int(os.environ.get("WEB_DEMO_SENTENCES", 100))
    ]
    from refbert_tf.export.metadata import packed_files

    if not packed_files(REAL_MODEL):
        pytest.skip(f"{REAL_MODEL} carries no TFLite Model Metadata (an older export, or --no-metadata): re-export it")
    card = _card(REAL_MODEL)
    theirs = site[1]("trained", REAL_MODEL, card)
    page = Page(browser, f"{server}/{theirs}/index.html")
    assert page.state == "ready" and page.message[:2] == ("info", "ready"), page.message
    _check_header(page, card)
    labels, scores, ms = _classify_all(page, texts, card)
    expected, logits = _refbert_predict(REAL_MODEL, texts)
    agreement = 100 * float(np.mean(np.array(labels) == expected))
    with capsys.disabled():
        print(
            f"\nweb demo, {REAL_MODEL.name}: {len(texts)} SST-2 dev sentences, labels agree with refbert-predict on "
            f"{agreement:.2f}%, max |logit difference| {float(np.abs(scores - logits).max()):.4f}, "
            f"median in-page latency {statistics.median(ms):.2f} ms"
        )
    assert agreement >= 99.0 and float(np.abs(scores - logits).max()) < 0.05
    assert page.requested_hosts() == {"127.0.0.1"} and page.blocked_connections() == []
    page.classify("a warm , funny , engaging film .")
    browser.save_screenshot(str(WEB_DEMO / "screenshot.png"))
