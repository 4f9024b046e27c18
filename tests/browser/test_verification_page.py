"""The verification page in a real browser (issue 14, part 5): headless Debian chromium, driven by Playwright,
on the Label Studio project that `annotate` pushed for one sample-droid episode.

As a verifier: log in, open a segment with context before it, check that the player counts the clip's frames
(Label Studio assumed 24 fps before the config said the clip's rate), play it (the second camera follows),
set quality and confidence by click and by hotkey (digit N is quality N; z/x/c are confidence 0/1/2) without
touching the subaction, move the first boundary one frame on the player, submit; then `review` pulls exactly
that verdict, the boundary back in source-episode frames. Run with `make browser-test` (about a minute);
it needs the `browser` extra and `apt-get install chromium`, so `make test` (and CI) skip it.
"""

from __future__ import annotations

import json
import os
import shutil

import av
import pyarrow.parquet as pq
import pytest

from datasets_cards.constants import REVIEW_DIR
from pipelines.flows import annotate as flow_module
from pipelines.la.review.flow import review
from pipelines.la.review.pull import VERDICTS_FILE
from pipelines.la.review.push import DOCUMENT_ROOT_ENV, LOCAL_FILES_URL, PROJECT_FILE
from pipelines.labelstudio.client import LabelStudioClient
from pipelines.sample.ground_truth import DEFAULT_DATA_DIR, GROUND_TRUTH_DIR

sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs the `browser` extra: make browser-test")
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium")
if CHROMIUM is None:
    pytest.skip("no chromium: apt-get install chromium (Debian's; Playwright's download is not used)",
                allow_module_level=True)

pytestmark = pytest.mark.server
SOURCE = "sample-droid"


def clip_frames(path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def radio(page, label: str):
    return page.locator(f'input[type=radio][name="{label}"]')


def test_a_verifier_rates_a_segment_in_the_browser_and_review_pulls_that_verdict(label_studio, monkeypatch):
    if not (DEFAULT_DATA_DIR / "droid" / GROUND_TRUTH_DIR / "episodes.parquet").exists():
        pytest.skip("no generated sample: run `make sample-data`")
    for name, value in {"LABEL_STUDIO_URL": label_studio.url, "LABEL_STUDIO_API_KEY": label_studio.token,
                        DOCUMENT_ROOT_ENV: str(label_studio.document_root)}.items():
        monkeypatch.setenv(name, value)
    out = label_studio.document_root / "browser"
    # vlm_fps (unused by the kinematic segmenter) gives this run a config, so a Label Studio project, of its own:
    # the review test's sample run with the default config pushes into another one (same config, same project)
    manifest = flow_module.annotate(source=SOURCE, pipeline="la", out=str(out), limit=1,
                                    options={"plots": 0, "vlm_fps": 1.0})
    target = out / "la" / SOURCE
    assert manifest.complete and "new review tasks" in manifest.stats["review"], manifest.stats["review"]
    project = json.loads((target / REVIEW_DIR / PROJECT_FILE).read_text())["id"]
    with LabelStudioClient(label_studio.url, label_studio.token) as client:
        tasks = client.export(project)
        info = client.get(f"/api/projects/{project}").json()
    # a segment with a second of context before it, so player and source frames differ
    task = next(t for t in tasks if t["data"]["clip_start"] < t["data"]["start"])
    data = task["data"]
    exterior = next(k for k in data if k.startswith("video_"))
    frames = clip_frames(label_studio.document_root / data[exterior].removeprefix(LOCAL_FILES_URL))
    first_on_player = data["start"] - data["clip_start"] + 1

    requests: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("request", lambda r: requests.append(r.url))
            page.goto(f"{label_studio.url}/user/login")
            page.fill("input[name=email]", label_studio.username)
            page.fill("input[name=password]", label_studio.password)
            page.click("button[type=submit]")
            page.wait_for_url(lambda url: "/user/login" not in url)  # logged in: Label Studio moved on
            page.goto(f"{label_studio.url}/projects/{project}/data?task={task['id']}")
            counters = page.locator(".lsf-frames-control")
            counters.first.wait_for()
            assert counters.count() == 2  # exterior and wrist, one player each
            assert counters.first.inner_text().split() == ["1", "of", str(frames)]

            page.get_by_role("button", name="Play").first.click()  # the clip plays to its end, both cameras
            sync_api.expect(counters.first).to_have_text(f"{frames} of {frames}", timeout=30_000)
            sync_api.expect(counters.nth(1)).to_have_text(f"{frames} of {frames}", timeout=5_000)

            # Quality by click, then by hotkey; confidence by hotkey, then by click. The subaction stays.
            radio(page, "1 · Low quality").click()
            page.locator("h3").first.click()  # focus off the radios: hotkeys go to the page
            page.keyboard.press("2")
            page.keyboard.press("z")
            assert radio(page, "2 · Acceptable").is_checked() and not radio(page, "1 · Low quality").is_checked()
            assert radio(page, "0 · Low").is_checked()
            radio(page, "1 · Medium").click()
            assert radio(page, "1 · Medium").is_checked() and not radio(page, "0 · Low").is_checked()
            assert radio(page, data["subaction"]).is_checked()
            first_box = page.locator("input[type=number]").first
            assert first_box.input_value() == str(first_on_player)
            first_box.fill(str(first_on_player + 1))
            page.get_by_role("button", name="Submit").click()
            page.wait_for_function(  # the annotation reached the server
                f"""async () => (await (await fetch('/api/tasks/{task["id"]}')).json()).total_annotations === 1""")
            page_html = page.content()
        finally:
            browser.close()
    assert "sentry_dsn: null" in page_html
    assert not [u for u in requests if "sentry" in u]  # the error reporter is off

    metrics = review(source=SOURCE, out=str(out), url=label_studio.url)
    verdicts = pq.read_table(target / REVIEW_DIR / VERDICTS_FILE).to_pylist()
    assert metrics["reviewed"] == 1 and len(verdicts) == 1
    [verdict] = verdicts
    assert (verdict["source_episode_id"], verdict["segment_index"]) == (data["source_episode_id"], data["segment_index"])
    assert (verdict["quality"], verdict["confidence"], verdict["num_annotators"]) == (2.0, 1.0, 1)
    assert verdict["corrected_start"] == data["start"] + 1  # one player frame later = one source frame later
    assert (verdict["corrected_end"], verdict["corrected_subaction"], verdict["corrected_instruction"]) == (
        None, None, None)
