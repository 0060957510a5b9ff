"""report.html: renderer unit tests (no browser) and headless-Chromium tests of the page itself."""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from labelaudit.cli import main
from labelaudit.html import REPORT_HTML, json_for_script, render_report
from labelaudit.html.view import LOOPBACK, make_server, page_url

from .conftest import ROOT, SAMPLE_IMAGES, make_image
from .report_factory import report_from_data, write_report

EVIL = "<script>alert(1)</script>"


def _blob(page: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="labelaudit-data">(.*?)</script>', page, re.S)
    assert match, "no JSON blob in the page"
    return json.loads(match.group(1))


def _rows(n: int, flagged: set[int], labels: tuple[str, ...] = ("a", "b", "c"), **extra: Any) -> list[dict]:
    return [
        {
            "sample_id": f"s{i:04d}",
            "given_label": labels[i % len(labels)],
            "suggested_label": labels[(i + 1) % len(labels)] if i in flagged else labels[i % len(labels)],
            "consensus_score": 0.001 * i if i in flagged else 0.5 + 0.0001 * i,
            "is_issue": i in flagged,
            "content_hash": f"h{i}",
            **extra,
        }
        for i in range(n)
    ]


# ---------------------------------------------------------------- renderer, no browser


def test_json_for_script_escapes_markup_and_round_trips() -> None:
    payload = {"name": EVIL, "amp": "a&b", "comment": "<!-- x -->", "sep": "\u2028"}
    text = json_for_script(payload)
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == payload


def test_data_strings_are_escaped_everywhere(tmp_path: Path) -> None:
    rows = _rows(6, {0, 1}, labels=(EVIL, "ok & fine"), path=f"/data/{EVIL}.jpg", text=None)
    report = write_report(tmp_path / "r", rows, source=f"/data/{EVIL}")
    page = render_report(report).read_text(encoding="utf-8")
    assert EVIL not in page  # not in the overview, the title, the bar chart, the heat-map nor the blob
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # the static overview shows it as text
    blob = _blob(page)
    assert {r["given"] for r in blob["rows"]} >= {EVIL}
    assert blob["rows"][0]["path"] == f"/data/{EVIL}.jpg"
    assert "innerHTML" not in page and "insertAdjacentHTML" not in page and "document.write" not in page


def test_grid_holds_flagged_plus_top_ranked_not_every_sample(tmp_path: Path) -> None:
    flagged = {3, 50, 120, 250}
    report = write_report(tmp_path / "r", _rows(300, flagged), source="d")
    blob = _blob(render_report(report, top=10).read_text(encoding="utf-8"))
    ids = [r["id"] for r in blob["rows"]]
    assert len(ids) == 10  # the 4 flagged rows rank first, so the top 10 holds them
    assert {f"s{i:04d}" for i in flagged} <= set(ids)
    assert [r["rank"] for r in blob["rows"]] == list(range(1, 11))
    # three confidently clean examples per class: the highest consensus scores, none of them in the grid
    assert len(blob["clean"]) == 9 and not set(ids) & {r["id"] for r in blob["clean"]}
    best_a = max(
        (r for r in _rows(300, flagged) if r["given_label"] == "a" and not r["is_issue"]),
        key=lambda r: r["consensus_score"],
    )
    assert best_a["sample_id"] in {r["id"] for r in blob["clean"]}
    assert blob["decisionColumns"][:6] == ["rank", "sample_id", "path", "given_label", "suggested_label", "decision"]


def test_small_sets_still_get_clean_examples_per_class(tmp_path: Path) -> None:
    # 48 samples: every one is in the grid (flagged + top 200), which used to leave no clean example at all
    report = write_report(tmp_path / "r", _rows(48, {3, 10, 20}), source="d")
    blob = _blob(render_report(report).read_text(encoding="utf-8"))
    assert len(blob["rows"]) == 48 and blob["clean"] == []  # no record sent twice
    known = {r["id"]: r for r in blob["rows"]}
    assert len(blob["cleanIds"]) == 9 and all(i in known and not known[i]["flag"] for i in blob["cleanIds"])
    assert {known[i]["given"] for i in blob["cleanIds"]} == {"a", "b", "c"}


def _image_report(tmp_path: Path, n: int = 6) -> Path:
    data = tmp_path / "data"
    for i in range(n):
        make_image(data / ("cat" if i % 2 else "dog") / f"{i}.png", (40 * i % 255, 90, 160), size=40)
    return report_from_data(tmp_path / "r", data, {"dog/0.png": "cat", "cat/1.png": "dog"})


def test_thumbnails_inline_below_threshold(tmp_path: Path) -> None:
    report = _image_report(tmp_path)
    page = render_report(report).read_text(encoding="utf-8")
    blob = _blob(page)
    assert blob["thumbs"] == "inline"
    thumbs = [r["thumb"] for r in blob["rows"] + blob["clean"]]
    assert thumbs and all(t.startswith("data:image/jpeg;base64,") for t in thumbs)
    assert not (report / "thumbs").exists()


def test_thumbnails_in_a_folder_above_threshold(tmp_path: Path) -> None:
    report = _image_report(tmp_path)
    blob = _blob(render_report(report, inline_limit=2).read_text(encoding="utf-8"))
    assert blob["thumbs"] == "folder"
    thumbs = [r["thumb"] for r in blob["rows"] + blob["clean"]]
    assert all(t.startswith("thumbs/") and (report / t).is_file() for t in thumbs)
    assert len([p for p in (report / "thumbs").iterdir() if not p.name.startswith(".")]) == len(thumbs)
    render_report(report)  # back under the threshold: the stale folder goes away
    assert not (report / "thumbs").exists()


def test_rendering_deletes_only_the_thumbnails_a_render_wrote(tmp_path: Path) -> None:
    report = _image_report(tmp_path)
    kept = report / "thumbs" / "holiday.jpg"
    make_image(kept, (1, 2, 3))
    (report / "thumbs" / "notes").mkdir()
    (report / "thumbs" / "notes" / "todo.txt").write_text("mine")

    blob = _blob(render_report(report, inline_limit=2).read_text(encoding="utf-8"))  # into the folder
    ours = [r["thumb"] for r in blob["rows"] + blob["clean"]]
    assert ours and all(t.startswith("thumbs/") for t in ours)
    render_report(report, inline_limit=2)  # again: the first render's files are replaced, not piled up
    render_report(report)  # inline: every file a render wrote goes, the user's stay

    left = sorted(p.relative_to(report).as_posix() for p in (report / "thumbs").rglob("*"))
    assert left == ["thumbs/holiday.jpg", "thumbs/notes", "thumbs/notes/todo.txt"]


def test_a_file_in_thumbs_that_labelaudit_did_not_write_is_never_replaced(tmp_path: Path) -> None:
    report = _image_report(tmp_path)
    blob = _blob(render_report(report, inline_limit=2).read_text(encoding="utf-8"))
    taken = report / blob["rows"][0]["thumb"]
    (report / "thumbs" / ".labelaudit-thumbs").unlink()  # as if the user had made these files
    taken.write_bytes(b"the user's own file of that name")

    blob = _blob(render_report(report, inline_limit=2).read_text(encoding="utf-8"))

    assert taken.read_bytes() == b"the user's own file of that name"
    assert blob["rows"][0]["thumb"].startswith("data:image/jpeg;base64,")  # shown inline instead
    assert all(r["thumb"].startswith("thumbs/") for r in blob["rows"][1:])  # byte-identical ones are adopted


def test_text_reports_show_excerpts_and_no_thumbnails(tmp_path: Path) -> None:
    report = write_report(tmp_path / "r", _rows(5, {0}, text="some words"), modality="text", source="d")
    blob = _blob(render_report(report).read_text(encoding="utf-8"))
    assert blob["thumbs"] == "none" and blob["rows"][0]["text"] == "some words" and "thumb" not in blob["rows"][0]


def test_saving_a_report_renders_its_page_from_the_same_tables(tmp_path: Path) -> None:
    from labelaudit.report import load_report
    from labelaudit.report import write_report as write_tables

    report = write_report(tmp_path / "src", _rows(8, {1}), source="d")  # AuditResult.save, as an audit saves
    samples, _, _ = load_report(report)
    rows = _blob((report / REPORT_HTML).read_text(encoding="utf-8"))["rows"]
    assert [r["id"] for r in rows] == samples["sample_id"].tolist()  # 8 rows: all within the top ranked
    tables_only = tmp_path / "tables"
    tables_only.mkdir()
    write_tables(tables_only, samples, samples.head(0), pd.DataFrame(columns=["path", "reason", "stage"]))
    assert not (tables_only / REPORT_HTML).exists()  # the page is a step of its own


def test_view_renders_when_missing_and_serves_on_loopback(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    report = write_report(tmp_path / "r", _rows(8, {1}), source="d")
    assert main(["view", str(report), "--no-open"]) == 0
    assert capsys.readouterr().out.strip() == str(report / REPORT_HTML)
    assert (report / REPORT_HTML).is_file()
    assert main(["view", str(tmp_path / "missing"), "--no-open"]) == 2
    server = make_server(report, 0)
    try:
        assert server.server_address[0] == LOOPBACK
        threading.Thread(target=server.serve_forever, daemon=True).start()
        with urllib.request.urlopen(page_url(server), timeout=5) as response:
            assert response.status == 200 and b"labelaudit-data" in response.read()
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------- headless Chromium

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
try:
    import selenium  # noqa: F401

    HAVE_SELENIUM = True
except ImportError:
    HAVE_SELENIUM = False
browser = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER and HAVE_SELENIUM),
    reason="browser tests need chromium + chromedriver (apt-get install chromium chromium-driver) and selenium",
)


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory, downloads: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,1100",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(downloads),
            "download.prompt_for_download": False,
            "safebrowsing.enabled": False,
        },
    )
    drv = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    drv.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    drv.set_page_load_timeout(20)
    yield drv
    drv.quit()


def _open(driver, page: Path) -> None:
    driver.get(page.resolve().as_uri())
    driver.execute_script("window.localStorage.clear()")
    driver.get(page.resolve().as_uri())


def _cards(driver) -> list:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, "#grid .card")


def _select(driver, element_id: str, value: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element(By.ID, element_id)).select_by_value(value)


def _count(driver) -> int:
    from selenium.webdriver.common.by import By

    return int(driver.find_element(By.ID, "count").get_attribute("data-shown"))


@browser
def test_browser_counts_filters_sort_and_pages(driver, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    flagged = set(range(0, 200, 2))  # 100 flagged rows over three classes
    report = write_report(tmp_path / "r", _rows(400, flagged), source="d")
    _open(driver, render_report(report, top=0))
    assert _count(driver) == 100 and len(_cards(driver)) == 48  # one page rendered, not all rows
    assert driver.find_element(By.ID, "page").text == "page 1 of 3"
    driver.find_element(By.ID, "next").click()
    driver.find_element(By.ID, "next").click()
    assert len(_cards(driver)) == 4 and driver.find_element(By.ID, "next").get_attribute("disabled")

    _select(driver, "f-class", "a")
    expected_a = sum(1 for i in flagged if i % 3 == 0)
    assert _count(driver) == expected_a and driver.find_element(By.ID, "page").text == "page 1 of 1"
    assert {c.find_element(By.CSS_SELECTOR, ".given").text for c in _cards(driver)} == {"a"}
    _select(driver, "f-class", "")
    _select(driver, "f-pair", json.dumps(["b", "c"], separators=(",", ":")))
    assert _count(driver) == sum(1 for i in flagged if i % 3 == 1)
    _select(driver, "f-pair", "")
    _select(driver, "f-method", "deft")
    assert _count(driver) == 100  # the factory copies is_issue into every method's flag

    first = _cards(driver)[0].find_element(By.CSS_SELECTOR, ".name").text
    assert first.startswith("#1 ")
    _select(driver, "f-sort", "desc")
    scores = [float(c.find_element(By.CSS_SELECTOR, ".score").text.split()[1]) for c in _cards(driver)]
    assert scores == sorted(scores, reverse=True) and scores[0] == pytest.approx(0.198)
    title = _cards(driver)[0].find_element(By.CSS_SELECTOR, ".score").get_attribute("title")
    assert "confident:" in title and "deft:" in title


@browser
def test_browser_counts_suspects_apart_from_top_ranked_and_fills_the_class_panel(driver, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    report = write_report(tmp_path / "r", _rows(48, {3, 10, 20}), source="d")
    _open(driver, render_report(report))
    count = driver.find_element(By.ID, "count")
    assert count.text == "3 suspects · 45 more top-ranked, not flagged"  # was "48 of 48 suspects"
    _select(driver, "f-class", "a")  # s0003 is the one flagged "a"
    assert count.text == "1 of 3 suspects · 15 of 45 more top-ranked, not flagged"
    panel = driver.find_element(By.CSS_SELECTOR, "#class-list details.cls[data-cls=a]")
    panel.find_element(By.TAG_NAME, "summary").click()
    # The panel fills its cards when it opens: wait for them rather than race the page's script.
    WebDriverWait(driver, 10).until(lambda _: len(panel.find_elements(By.CSS_SELECTOR, ".card.clean")) >= 3)
    clean = panel.find_elements(By.CSS_SELECTOR, ".card.clean")
    assert len(clean) == 3 and "No unflagged sample." not in panel.text
    assert {c.find_element(By.CSS_SELECTOR, ".given").text for c in clean} == {"a"}


@browser
def test_browser_relabel_defaults_to_the_suggestion_or_to_nothing(driver, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    report = write_report(tmp_path / "r", _rows(12, {0}), source="d")
    _open(driver, render_report(report))
    cards = {c.get_attribute("data-id"): c for c in _cards(driver)}
    flagged, clean = cards["s0000"], cards["s0001"]  # s0000: given a, suggested b; s0001: b, nothing suggested
    assert Select(flagged.find_element(By.CSS_SELECTOR, ".decide select")).first_selected_option.text == "b"
    pick = Select(clean.find_element(By.CSS_SELECTOR, ".decide select"))
    assert pick.first_selected_option.get_attribute("value") == ""  # not "a", the first class
    clean.find_element(By.CSS_SELECTOR, "button[data-action=relabel]").click()
    assert driver.find_element(By.ID, "decided").text == "0" and clean.get_attribute("data-decision") == ""
    pick.select_by_value("c")  # choosing the class is the decision
    assert clean.get_attribute("data-decision") == "relabel:c" and driver.find_element(By.ID, "decided").text == "1"
    pick.select_by_value("")  # and choosing nothing again withdraws it
    assert clean.get_attribute("data-decision") == "" and driver.find_element(By.ID, "decided").text == "0"


@browser
def test_browser_shows_script_names_as_text(driver, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    rows = _rows(6, {0, 1, 2}, labels=(EVIL, "b"), path=f"/nowhere/{EVIL}.png")
    report = write_report(tmp_path / "r", rows, source=f"/data/{EVIL}")
    _open(driver, render_report(report))
    assert driver.execute_script("return window.__pwned === undefined")
    assert not driver.find_elements(By.CSS_SELECTOR, "#grid script, #class-bars script, #heatmap script")
    givens = [c.find_element(By.CSS_SELECTOR, ".given").text for c in _cards(driver)]
    assert EVIL in givens
    assert driver.find_element(By.CSS_SELECTOR, ".source").text == f"/data/{EVIL}"
    assert EVIL in driver.find_element(By.ID, "class-bars").text
    assert driver.find_element(By.CSS_SELECTOR, "#grid .name").get_attribute("title").endswith(f"{EVIL}.png")


def _wait_for_file(path: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file() and not list(path.parent.glob("*.crdownload")) and path.stat().st_size:
            return
        time.sleep(0.1)
    raise AssertionError(f"{path} was not downloaded in {timeout} s")


@browser
def test_browser_decisions_download_as_an_apply_csv(driver, downloads: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from labelaudit.apply import plan_apply

    report = _image_report(tmp_path, n=8)
    data = tmp_path / "data"
    _open(driver, render_report(report))
    cards = {c.find_element(By.CSS_SELECTOR, ".name").get_attribute("title"): c for c in _cards(driver)}
    relabel = cards[str(data / "dog" / "0.png")]
    relabel.find_element(By.CSS_SELECTOR, "button[data-action=relabel]").click()
    cards[str(data / "cat" / "1.png")].find_element(By.CSS_SELECTOR, "button[data-action=remove]").click()
    keep = next(c for t, c in cards.items() if t.endswith("2.png"))
    keep.find_element(By.CSS_SELECTOR, "button[data-action=keep]").click()
    keep.find_element(By.CSS_SELECTOR, "button[data-action=remove]").click()  # changed mind: the last click wins
    keep.find_element(By.CSS_SELECTOR, "button[data-action=keep]").click()
    assert Select(relabel.find_element(By.CSS_SELECTOR, ".decide select")).first_selected_option.text == "cat"
    assert driver.find_element(By.ID, "decided").text == "3"

    target = downloads / "decisions.csv"
    target.unlink(missing_ok=True)
    driver.find_element(By.ID, "download").click()
    _wait_for_file(target)
    frame = pd.read_csv(target, dtype=str, keep_default_na=False)
    assert list(frame.columns[:6]) == ["rank", "sample_id", "path", "given_label", "suggested_label", "decision"]
    assert dict(zip(frame["sample_id"], frame["decision"], strict=True)) == {
        "dog/0.png": "relabel:cat",
        "cat/1.png": "remove",
        "dog/2.png": "keep",
    }
    plan, _ = plan_apply(target, data)  # exactly what `labelaudit apply` accepts, content hashes included
    assert plan.counts["relabel"] == 1 and plan.counts["remove"] == 1 and plan.counts["keep"] == 1


@browser
def test_browser_screenshot(driver, tmp_path: Path) -> None:
    """A sample_data report with a few planted suspects; LABELAUDIT_SCREENSHOT=1 refreshes docs/img/report.png."""
    from selenium.webdriver.common.by import By

    swaps = {"cat": "dog", "dog": "cat", "ship": "airplane", "truck": "automobile", "bird": "airplane", "deer": "horse"}
    suspects = {}
    for given, wrong in swaps.items():
        files = sorted((SAMPLE_IMAGES / given).glob("*.jpg"))
        suspects.update({f.relative_to(SAMPLE_IMAGES).as_posix(): wrong for f in files[:2]})
    report = report_from_data(tmp_path / "r", SAMPLE_IMAGES, suspects, source="sample_data/images")
    summary = json.loads((report / "summary.json").read_text(encoding="utf-8"))
    summary["encoder"] = {"description": "none: planted suspects for the docs screenshot"}
    (report / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    _open(driver, render_report(report))
    assert _count(driver) > 0 and driver.find_elements(By.CSS_SELECTOR, "#grid img.thumb")
    shot = tmp_path / "report.png"
    driver.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("LABELAUDIT_SCREENSHOT") == "1":
        target = ROOT / "docs" / "img" / "report.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target)
