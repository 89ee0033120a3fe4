"""The project view (``GET /project``) in a real headless Chromium against a live ``curator serve``:
the overview lists the videos and their picks and follows jobs live; scrubbing shows the stored masks
on the overlay canvas, pixel for pixel; the confidence curve queues a low-confidence frame; the
embedding map plots one point per frame, its lasso queues exactly the frames it holds and "more like
this" answers the index's nearest frames; the rounds say why a round has no metrics; an upload with
``fps=2`` stores the frames that rate asks for.

Screenshots go to ``bench-out/screenshots/`` (``1x-project-*.png``). The browser is the one of
``tests/test_web.py`` (Debian's chromium or ``$CURATOR_CHROMIUM``; these tests skip loudly without it).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import func, select

from curator.index import similar_frames
from curator.store import repo
from curator.store.models import Frame, Task, Video
from curator.workspace import Workspace
from tests.api_fixtures import make_settings, new_key, wait_job
from tests.test_web import VIEWPORT, browser_fixture, serving, shot  # noqa: F401  (browser_fixture: the browser)
from tests.view_fixtures import HEIGHT, WIDTH, ViewProject, scene, seed_view_project, write_clip

#: Object colours of the page's palette (objects 1 and 2), and the mask opacity it starts with.
OBJECT_RGB = {1: (76, 141, 255), 2: (250, 173, 20)}
OPACITY = 0.55


@dataclass
class Served:
    url: str
    workspace: Workspace
    seeded: ViewProject
    admin: str
    viewer: str
    base: Path


@pytest.fixture(scope="module", name="served")
def served_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    base = tmp_path_factory.mktemp("project-view")
    workspace = Workspace(make_settings(base))
    seeded = seed_view_project(workspace)
    admin, viewer = new_key(workspace, "admin"), new_key(workspace, "viewer")
    try:
        with serving(base) as url:
            yield Served(url, workspace, seeded, admin, viewer, base)
    finally:
        workspace.close()


@pytest.fixture(name="context")
def context_fixture(browser: Any, served: Served) -> Iterator[Any]:
    """A fresh profile signed in as admin (the session cookie), failing the test on page errors."""
    ctx = browser.new_context(base_url=served.url, viewport=VIEWPORT)
    errors: list[str] = []
    ctx.on("weberror", lambda error: errors.append(str(error.error)))
    assert ctx.request.post("/session", data={"key": served.admin}).status == 201
    yield ctx
    ctx.close()
    assert errors == [], errors


def open_view(context: Any, served: Served, view: str, ready: str, **params: Any) -> Any:
    """Open the project page on ``view`` and wait until ``body[data-<ready>]`` says it is drawn."""
    page = context.new_page()
    query = "&".join(f"{k}={v}" for k, v in {"project": served.seeded.project_id, "view": view, **params}.items())
    page.goto(f"/project?{query}")
    page.wait_for_function(f"() => document.body.dataset.{ready} === '1'")
    return page


def tasks_of(served: Served, frame_ids: list[int]) -> dict[int, tuple[str, str]]:
    with served.workspace.db.session() as session:
        rows = session.execute(
            select(Task.frame_id, Task.reason, Task.state).where(
                Task.project_id == served.seeded.project_id, Task.frame_id.in_(frame_ids)
            )
        ).all()
    return {int(f): (r, s) for f, r, s in rows}


def overlay(page: Any) -> np.ndarray:
    """The overlay canvas as ``(H, W, 4)`` uint8 RGBA."""
    flat = page.evaluate(
        "() => { const c = document.getElementById('vv-overlay');"
        " return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data); }"
    )
    return np.asarray(flat, np.uint8).reshape(HEIGHT, WIDTH, 4)


def same_colour(pixels: np.ndarray, colour: tuple[int, int, int]) -> bool:
    """Whether RGBA pixels have ``colour`` (within the rounding of a canvas's premultiplied alpha)."""
    return bool(np.abs(pixels[:, :3].astype(int) - np.asarray(colour)).max() <= 2)


def inner(mask: np.ndarray) -> np.ndarray:
    """The mask's pixels whose 4 neighbours are all in it (away from its outline)."""
    m = np.pad(mask, 1)
    return mask & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]


# --- tests ------------------------------------------------------------------------------------------


def test_sign_in_and_the_overview_lists_the_videos_and_their_picks(browser: Any, served: Served) -> None:
    s = served.seeded
    ctx = browser.new_context(base_url=served.url, viewport=VIEWPORT)
    errors: list[str] = []
    ctx.on("weberror", lambda error: errors.append(str(error.error)))
    try:
        page = ctx.new_page()
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        page.goto("/project")
        page.locator("#signin-form").wait_for(state="visible")
        page.locator("#key").fill(served.viewer)
        page.locator("#signin-button").click()
        page.wait_for_function("() => document.body.dataset.overviewReady === '1'")
        assert page.locator(".pv-video").count() == 2
        assert page.locator(".pv-video .name").all_inner_texts() == ["clip0.mp4", "clip1.mp4"]
        markers = page.locator(".pv-video polygon.pick")
        assert sorted(int(m.get_attribute("data-frame-id")) for m in markers.all()) == sorted(s.picks)
        assert "uniform" in markers.first.locator("title").text_content()
        rows = page.locator("#ov-picks tbody tr")
        assert rows.count() == len(s.picks)
        assert rows.first.locator("td").nth(3).inner_text() == "uniform"
        assert page.locator('#ov-queue [data-state="open"] .n').inner_text() == str(len(s.picks))
        page.locator("#ov-jobs").wait_for()
        # a job started elsewhere shows up and finishes on the page without a reload
        with httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {served.admin}"}) as http:
            job = http.post(f"/projects/{s.project_id}/embed", json={"backbone": "classic"}).json()
        page.locator(f'#ov-jobs [data-job-id="{job["id"]}"][data-state="succeeded"]').wait_for(timeout=30_000)
        shot(page, "10-project-overview.png")
        assert all(url.startswith(served.url) for url in requests), [u for u in requests if not u.startswith(served.url)]
    finally:
        ctx.close()
    assert errors == [], errors


def test_scrubbing_shows_the_stored_masks_on_the_overlay(context: Any, served: Served) -> None:
    s = served.seeded
    video = s.videos[0]
    page = open_view(context, served, "video", "videoFrame", video=video)
    page.wait_for_function("() => document.body.dataset.videoFrame !== ''")
    # scrub to the keyframe: the overlay is exactly its human masks, in the objects' colours
    page.locator("#vv-scrub").fill(str(s.human_index))
    page.wait_for_function(f"() => document.body.dataset.videoFrame === '{s.human_frame}'")
    rgba = overlay(page)
    _, disc, box = scene(s.human_index)
    assert np.array_equal(rgba[..., 3] > 0, disc | box)
    for object_id, mask in ((1, disc), (2, box)):
        assert same_colour(rgba[inner(mask)], OBJECT_RGB[object_id])
        assert (rgba[inner(mask)][:, 3] == round(255 * OPACITY)).all()  # human: filled
        assert (rgba[mask & ~inner(mask)][:, 3] == 255).all()  # with a solid outline
    shot(page, "11-project-video.png")
    # the frame with the low-confidence propagated masks: the same places, lighter (propagated style)
    index = s.frames[video].index(s.propagated_frame)
    page.keyboard.press("ArrowRight")
    page.wait_for_function(f"() => document.body.dataset.videoFrame === '{s.frames[video][s.human_index + 1]}'")
    page.locator("#vv-scrub").fill(str(index))
    page.wait_for_function(f"() => document.body.dataset.videoFrame === '{s.propagated_frame}'")
    rgba = overlay(page)
    _, disc, box = scene(index)
    assert np.array_equal(rgba[..., 3] > 0, disc | box)
    assert same_colour(rgba[inner(disc)], OBJECT_RGB[1])
    assert (rgba[inner(disc)][:, 3] < round(255 * OPACITY)).all()
    assert page.locator('#vv-info [data-field="confidence"]').inner_text() == "0.40"
    # click its point on the confidence curve: it is under the threshold, so it can be queued there
    x, y = page.evaluate(f"() => window.curatorProject.video.clientOf({index})")
    page.mouse.click(x, y)
    page.locator("#vv-pop-queue").click()
    page.wait_for_function("() => document.getElementById('vv-queue').disabled")
    assert tasks_of(served, [s.propagated_frame]) == {s.propagated_frame: ("low confidence", "open")}
    shot(page, "12-project-video-queued.png")


def test_the_embedding_map_plots_every_frame_and_the_lasso_queues_what_it_holds(context: Any, served: Served) -> None:
    s = served.seeded
    page = open_view(context, served, "map", "mapReady")
    frames = [f for v in s.videos for f in s.frames[v]]
    hooks = "window.curatorProject.map"
    assert page.evaluate(f"{hooks}.count()") == len(frames)
    assert sorted(page.evaluate(f"{hooks}.frameIds()")) == sorted(frames)
    assert page.evaluate(f"{hooks}.drawn()") == len(frames)
    # every point is on the canvas: a drawn (not background) pixel where it is
    where = {f: tuple(page.evaluate(f"{hooks}.clientOf({f})")) for f in frames}
    box = page.locator("#map-canvas").bounding_box()
    ratio = page.evaluate("window.devicePixelRatio")
    pixels = page.evaluate(
        "([points, left, top, ratio]) => { const c = document.getElementById('map-canvas').getContext('2d');"
        " return points.map(([x, y]) => c.getImageData(Math.round((x - left) * ratio), Math.round((y - top) * ratio), 1, 1).data[3]); }",
        [list(where.values()), box["x"], box["y"], ratio],
    )
    assert all(alpha > 0 for alpha in pixels), pixels
    # lasso the second half of video 1 (one tight group of the embeddings)
    group = s.frames[s.videos[1]][6:]
    xs, ys = zip(*(where[f] for f in group), strict=True)
    x0, x1, y0, y1 = min(xs) - 12, max(xs) + 12, min(ys) - 12, max(ys) + 12
    polygon = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    expected = sorted(f for f, (x, y) in where.items() if x0 < x < x1 and y0 < y < y1)
    assert set(group) <= set(expected)
    page.locator("#map-mode-lasso").click()
    page.mouse.move(*polygon[0])
    page.mouse.down()
    for point in [*polygon[1:], polygon[0]]:
        page.mouse.move(*point, steps=8)
    page.mouse.up()
    page.wait_for_function("() => document.body.dataset.mapLasso !== ''")
    assert sorted(page.evaluate(f"{hooks}.lassoIds()")) == expected
    shot(page, "13-project-map-lasso.png")
    already = tasks_of(served, expected)
    page.locator("#map-lasso-queue").click()
    page.wait_for_function("() => document.body.dataset.mapQueued !== undefined")
    assert int(page.evaluate("document.body.dataset.mapQueued")) == len(expected) - len(already)
    queued = tasks_of(served, expected)
    assert set(queued) == set(expected)
    assert all(queued[f][0] == "lasso" for f in expected if f not in already)
    # colour by labelled: the one labelled frame of the lassoed group's project stands out
    page.locator("#map-colour").select_option("labelled")
    shot(page, "14-project-map-labelled.png")


def test_more_like_this_answers_the_k_nearest_from_the_index(context: Any, served: Served) -> None:
    s = served.seeded
    page = open_view(context, served, "map", "mapReady")
    query = s.frames[s.videos[0]][2]
    x, y = page.evaluate(f"window.curatorProject.map.clientOf({query})")
    page.mouse.move(x, y)
    page.locator("#map-tip img").wait_for()
    assert f"frame {query}" in page.locator("#map-tip").inner_text()
    page.mouse.click(x, y)
    page.wait_for_function(f"() => document.body.dataset.mapSelected === '{query}'")
    page.locator("#map-k").fill("5")
    page.locator("#map-similar").click()
    page.wait_for_function("() => document.body.dataset.mapSimilar")
    shown = [int(f) for f in page.evaluate("document.body.dataset.mapSimilar").split(",")]
    nearest = similar_frames(served.workspace, s.project_id, query, 5)
    assert shown == [f for f, _ in nearest]
    assert page.locator("#map-results figure").count() == 5
    assert [int(f.get_attribute("data-frame-id")) for f in page.locator("#map-results figure").all()] == shown
    shot(page, "15-project-map-similar.png")


def test_rounds_plot_the_metrics_and_say_why_one_has_none(context: Any, served: Served) -> None:
    page = open_view(context, served, "rounds", "roundsReady")
    note = page.locator('.pv-round[data-round="1"] .note').inner_text()
    assert "too few human frames" in note and "3 at this round" in note
    assert page.locator('.pv-round[data-round="2"] .note').count() == 0
    assert "J&F 0.650" in page.locator('.pv-round[data-round="2"]').inner_text()
    assert page.locator("#rd-plot circle.missing[data-round='1']").count() == 1
    assert page.locator('.pv-round[data-round="2"] .pv-chip').count() == len(served.seeded.picks)
    shot(page, "16-project-rounds.png")


def test_an_upload_with_fps_2_stores_the_frames_that_rate_asks_for(context: Any, served: Served) -> None:
    clip = write_clip(served.base / "upload.mp4", shade=7)  # 4 s at 10 fps: 2 fps keeps t = 0, 0.5, ..., 3.5
    with httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {served.admin}"}) as http:
        project_id = http.post("/projects", json={"name": "uploads"}).json()["id"]
    page = context.new_page()
    page.goto(f"/project?project={project_id}&view=actions")
    page.locator("#act-upload").wait_for(state="visible")
    page.locator("#act-file").set_input_files(str(clip))
    page.locator("#act-fps").fill("2")
    with page.expect_response(lambda r: "/videos?fps=2" in r.url and r.request.method == "POST") as answer:
        page.locator("#act-upload button[type=submit]").click()
    job = answer.value.json()
    assert answer.value.status == 202 and job["params"]["fps"] == 2
    with httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {served.admin}"}) as http:
        done = wait_job(http, job["id"], {}, timeout=120)
    assert done["state"] == "succeeded", (done["error"], done["result"])
    page.locator(f'#act-jobs [data-job-id="{job["id"]}"][data-state="succeeded"]').wait_for(timeout=10_000)
    page.locator("#act-video option", has_text="upload.mp4").wait_for(state="attached")  # refreshed, no reload
    assert "(8 frames)" in page.locator("#project option:checked").inner_text()
    shot(page, "17-project-upload.png")
    with served.workspace.db.session() as session:
        video = session.scalar(select(Video).where(Video.filename == "upload.mp4"))
        assert video is not None and (video.sample_fps, video.sample_stride) == (2.0, 1)
        stored = session.scalar(select(func.count(Frame.id)).where(Frame.video_id == video.id))
        times = sorted(session.scalars(select(Frame.timestamp).where(Frame.video_id == video.id)))
    assert stored == 8
    np.testing.assert_allclose(times, np.arange(8) / 2, atol=2e-3)
    with served.workspace.db.session() as session:  # and embedded, for the map
        assert len(repo.get_embeddings(session, project_id, "classic")[0]) == 8
    # the overview of the new project shows the video with its 8 frames
    page.locator('.pv-tab[data-view="overview"]').click()
    page.wait_for_function("() => document.body.dataset.overviewReady === '1'")
    assert "8 frames (2.00 fps)" in page.locator(".pv-video .meta").first.inner_text()


@pytest.mark.slow
def test_twenty_thousand_frames_are_interactive_in_under_two_seconds() -> None:
    """``curator bench views`` at 20,000 frames: the overview, the map (cached, as the ingest and embed
    jobs leave it), the timeline and the rounds answer, and the page draws its overview and its map,
    within 2 s on loopback; the report goes to ``bench-out/views.json``."""
    import json

    from benchmarks.views import BUDGET_MS, bench_views, chromium
    from conftest import REPO_ROOT

    if chromium() is None:
        pytest.skip("no chromium: the page cannot be timed")
    report = bench_views(frames=20_000, repeats=3)
    out = REPO_ROOT / "bench-out" / "views.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    page, api = report["page"], report["api"]
    assert page["map_points_drawn"] == report["frames"] == 20_000
    for name in ("overview_ms", "map_ms"):
        assert page[name] < BUDGET_MS, (name, report)
    for name in ("overview", "embedding_map", "timeline", "round_history"):
        assert api[name]["median_ms"] < BUDGET_MS, (name, report)
    assert report["within_budget"] and page["map_redraw_ms"] < 200
