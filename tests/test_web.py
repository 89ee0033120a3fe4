"""The labelling page in a real headless Chromium (Playwright's sync API) against a live ``curator serve``.

The browser is Debian's ``chromium`` (or ``$CURATOR_CHROMIUM``); Playwright's own browser download
is never used. Without a browser these tests skip with a loud reason, or fail when ``CI`` is set, so
a CI machine cannot pass them by accident.

Screenshots of each view go to ``bench-out/screenshots/`` (git-ignored) for a person to look at.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from conftest import REPO_ROOT
from curator.annotate import decode_rle, encode_rle
from curator.store import repo
from curator.store.models import Annotation, Frame, Task
from curator.workspace import Workspace
from tests.api_fixtures import make_settings, new_key, seed_tasks, spawn_server, wait_healthy

SHOTS = REPO_ROOT / "bench-out" / "screenshots"
HEIGHT, WIDTH = 120, 160
VIEWPORT = {"width": 1440, "height": 900}
HOW_TO_GET_ONE = (
    "install Debian's chromium (`apt-get install chromium`) or point CURATOR_CHROMIUM at a Chromium "
    "binary, and install the dev extra (`pip install -e .[dev]`, which brings playwright)"
)


def chromium_path() -> tuple[str | None, str]:
    """The Chromium to drive (``$CURATOR_CHROMIUM``, else ``chromium`` on the PATH), or ``None`` and why not."""
    configured = os.environ.get("CURATOR_CHROMIUM")
    if configured:
        return (configured, "") if Path(configured).exists() else (None, f"CURATOR_CHROMIUM={configured} does not exist")
    found = shutil.which("chromium")
    return found, "" if found else "no chromium on the PATH and CURATOR_CHROMIUM is unset"


def no_browser(reason: str) -> None:
    """Fail when ``CI`` is set (a CI run must not pass without its browser tests), else skip loudly."""
    message = f"BROWSER TESTS CANNOT RUN: {reason}; {HOW_TO_GET_ONE}"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(f"!!! {message}")


@pytest.fixture(scope="module", name="browser")
def browser_fixture() -> Iterator[Any]:
    """One headless Chromium for the module."""
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:
        no_browser("the playwright package is not installed")
    path, why = chromium_path()
    if path is None:
        no_browser(why)
    with sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(executable_path=path, headless=True)
        except PlaywrightError as exc:
            no_browser(f"{path} did not start: {str(exc).splitlines()[0]}")
        yield launched
        launched.close()


# --- a served home with something to label ----------------------------------------------------------


def scene(index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A synthetic frame (RGB) with a disc moving right and a fixed box; their true masks."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    image = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    image[..., 0] = 40 + (xx * 60 // WIDTH)
    image[..., 1] = 60 + (yy * 80 // HEIGHT)
    image[..., 2] = 90
    image[(xx // 20 + yy // 20) % 2 == 0] += 12  # a floor pattern, so zoom and drift are visible
    cx, cy = 40 + 6 * index, 60
    disc = (xx - cx) ** 2 + (yy - cy) ** 2 <= 18**2
    box = (xx >= 100) & (xx < 140) & (yy >= 20) & (yy < 50)
    image[disc] = (240, 215, 110)
    image[box] = (205, 205, 215)
    return image, disc, box


@dataclass
class Served:
    """A live server on a seeded home, with the keys and ids the tests need."""

    url: str
    workspace: Workspace
    street: int
    pair: int
    annotator: str
    other: str
    admin: str


def seed_scene(workspace: Workspace, project_id: int) -> None:
    """Give every frame of the project its own picture and a propagated pre-annotation that drifts
    (the disc's mask lags behind the disc, more with every frame, with falling confidence)."""
    with workspace.db.session() as session:
        frames = session.query(Frame).join(Frame.video).filter_by(project_id=project_id).order_by(Frame.frame_index)
        for frame in frames:
            image, disc, box = scene(frame.frame_index)
            ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [int(cv2.IMWRITE_JPEG_QUALITY), 95])
            assert ok
            frame.blob_path = f"synthetic/{project_id}-{frame.frame_index}.jpg"
            workspace.blobs.write_bytes_atomic(frame.blob_path, buf.tobytes())
            lag = np.roll(disc, -3 * frame.frame_index, axis=1)
            session.add_all([
                Annotation(frame_id=frame.id, object_id=1, source="propagated", rle=encode_rle(lag),
                           confidence=max(0.3, 0.95 - 0.08 * frame.frame_index)),
                Annotation(frame_id=frame.id, object_id=2, source="propagated", rle=encode_rle(box), confidence=0.9),
            ])


@pytest.fixture(scope="module", name="served")
def served_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    base = tmp_path_factory.mktemp("web")
    workspace = Workspace(make_settings(base))
    street = seed_tasks(workspace, "street", 12, (HEIGHT, WIDTH))
    pair = seed_tasks(workspace, "pair", 6, (HEIGHT, WIDTH))
    seed_scene(workspace, street)
    seed_scene(workspace, pair)
    annotator, other = new_key(workspace, "annotator"), new_key(workspace, "annotator")
    admin = new_key(workspace, "admin")
    try:
        with serving(base) as url:
            yield Served(url, workspace, street, pair, annotator, other, admin)
    finally:
        workspace.close()


@contextmanager
def serving(base: Path) -> Iterator[str]:
    """``curator serve`` on the home under ``base`` (logging to ``base/server.log``) while in the block; its URL."""
    log = base / "server.log"
    process, url = spawn_server(base / "home", log)
    try:
        wait_healthy(process, url, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except Exception:  # pragma: no cover - a stuck server
            process.kill()


@pytest.fixture(name="context")
def context_fixture(browser: Any, served: Served) -> Iterator[Any]:
    """A fresh browser profile (no cookies) pointed at the server; fails the test on page errors."""
    ctx = browser.new_context(base_url=served.url, viewport=VIEWPORT)
    errors: list[str] = []
    ctx.on("weberror", lambda error: errors.append(str(error.error)))
    yield ctx
    ctx.close()
    assert errors == [], errors


# --- helpers ------------------------------------------------------------------------------------------


#: True once every filmstrip card has its masks and confidence.
LOADED_FILMSTRIP = "() => [...document.querySelectorAll('.film .conf')].every(e => e.textContent !== '…')"


def sign_in(page: Any, key: str, project_id: int | None = None) -> None:
    page.goto("/")
    page.locator("#key").fill(key)
    page.locator("#signin-button").click()
    page.locator("#app").wait_for(state="visible")
    if project_id is not None:
        page.locator("#project").select_option(str(project_id))


def next_task(page: Any) -> int:
    """Claim with the Next button; the id of the task the page then shows."""
    page.locator("#next").click()
    return wait_task(page)


def wait_task(page: Any, other_than: int | None = None) -> int:
    """Wait until the page shows a task (a different one than ``other_than``); its id."""
    page.wait_for_function(
        "prev => document.body.dataset.state === 'ready' && document.body.dataset.taskId"
        " && document.body.dataset.taskId !== String(prev)",
        arg=other_than,
    )
    return int(page.locator("body").get_attribute("data-task-id"))


def stroke(page: Any, points: list[tuple[float, float]]) -> None:
    """Drag the mouse through image points (frame pixels) with the left button down."""
    client = [page.evaluate("([x, y]) => window.curatorWorkbench.toClient(x, y)", list(p)) for p in points]
    page.mouse.move(*client[0])
    page.mouse.down()
    for x, y in client[1:]:
        page.mouse.move(x, y, steps=6)
    page.mouse.up()


def mask_of(page: Any, object_id: int) -> np.ndarray:
    flat = page.evaluate("id => window.curatorWorkbench.maskOf(id)", object_id)
    return np.asarray(flat, np.uint8).reshape(HEIGHT, WIDTH)


def canvas_masks(page: Any) -> dict[int, np.ndarray]:
    ids = page.evaluate("() => window.curatorWorkbench.objectIds()")
    return {int(i): mask_of(page, int(i)) for i in ids}


def stored_human_masks(served: Served, task_id: int) -> dict[int, np.ndarray]:
    with served.workspace.db.session() as session:
        task = session.get(Task, task_id)
        assert task is not None and task.state == "done", task and task.state
        return {
            a.object_id: decode_rle(a.rle).astype(np.uint8)
            for a in repo.frame_annotations(session, task.frame_id, ("human",))
        }


def client_point(page: Any, x: float, y: float) -> tuple[float, float]:
    """Where image point (x, y) is on the page, to drive the mouse."""
    cx, cy = page.evaluate("([x, y]) => window.curatorWorkbench.toClient(x, y)", [x, y])
    return float(cx), float(cy)


def canvas_pixels(page: Any, points: list[tuple[float, float]]) -> np.ndarray:
    """The RGB the canvas shows at image points, once it has painted what the page holds now: (n, 3)."""
    found = page.evaluate("pts => window.curatorWorkbench.canvasPixels(pts)", [list(p) for p in points])
    return np.asarray(found, np.int32)[:, :3]


def shot(page: Any, name: str, locator: str | None = None) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    target = page.locator(locator) if locator else page
    target.screenshot(path=str(SHOTS / name))


# --- tests --------------------------------------------------------------------------------------------


def test_label_a_task_and_the_stored_mask_is_the_one_shown(context: Any, served: Served) -> None:
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto("/")
    page.locator("#signin-form").wait_for(state="visible")
    shot(page, "01-sign-in.png")
    sign_in(page, served.annotator, served.street)
    task_id = next_task(page)
    # the pre-annotation is on the canvas, per object, with source and confidence in the list
    page.wait_for_function(LOADED_FILMSTRIP)
    assert page.locator("#object-list li").count() == 2
    assert "propagated 0.95" in page.locator("#object-list li").first.inner_text()
    before = canvas_masks(page)
    assert before[1].sum() > 500 and before[2].sum() == 40 * 30
    shot(page, "02-annotator.png")

    # brush a stroke on object 1, undo it, brush another
    page.keyboard.press("1")
    page.keyboard.press("b")
    stroke(page, [(20, 100), (60, 104), (80, 110)])
    painted = mask_of(page, 1)
    assert (painted != before[1]).sum() > 50
    page.keyboard.press("Control+z")
    assert np.array_equal(mask_of(page, 1), before[1])
    stroke(page, [(62, 40), (70, 60), (62, 80)])  # extend the lagging disc to the right
    brushed = canvas_masks(page)
    assert (brushed[1] != before[1]).sum() > 50 and np.array_equal(brushed[1][100:, :20], before[1][100:, :20])
    shot(page, "03-brushed.png")
    assert page.locator(".film").count() >= 4  # the task's frame and its neighbours
    assert page.locator(".film.current").count() == 1

    page.locator("#submit").click()
    next_id = wait_task(page, other_than=task_id)
    assert next_id != task_id
    # the next frame's filmstrip: the frame just labelled is human now, the later ones drift
    page.wait_for_function(LOADED_FILMSTRIP)
    assert page.locator(".film", has_text="human").count() == 1
    shot(page, "04-filmstrip.png", ".filmstrip")
    stored = stored_human_masks(served, task_id)
    assert set(stored) == {i for i, m in brushed.items() if m.any()}
    for object_id, mask in stored.items():
        assert np.array_equal(mask, brushed[object_id]), f"object {object_id} differs from the canvas"
    # the page loaded nothing from any other origin
    assert all(url.startswith(served.url) for url in requests), [u for u in requests if not u.startswith(served.url)]


def test_two_annotators_never_hold_the_same_task(browser: Any, served: Served) -> None:
    contexts = [browser.new_context(base_url=served.url, viewport=VIEWPORT) for _ in range(2)]
    try:
        pages = [ctx.new_page() for ctx in contexts]
        sign_in(pages[0], served.annotator, served.pair)
        sign_in(pages[1], served.other, served.pair)
        held = [next_task(pages[0]), next_task(pages[1])]
        seen = [set(held[:1]), set(held[1:])]
        assert held[0] != held[1]
        for step in range(3):
            page = pages[step % 2]
            page.keyboard.press("k" if step % 2 == 0 else "s")
            held[step % 2] = wait_task(page, other_than=held[step % 2])
            seen[step % 2].add(held[step % 2])
            assert held[0] != held[1], (step, held)
        with served.workspace.db.session() as session:
            owners = {t: session.get(Task, t).lease_owner for t in held}  # type: ignore[union-attr]
        assert len(set(owners.values())) == 2
    finally:
        for ctx in contexts:
            ctx.close()


def test_keyboard_labelling(context: Any, served: Served) -> None:
    page = context.new_page()
    page.goto("/")
    page.locator("#key").wait_for(state="visible")
    page.keyboard.type(served.annotator)  # the key field has the focus
    page.keyboard.press("Enter")
    page.locator("#app").wait_for(state="visible")
    page.locator("#project").select_option(str(served.street))
    page.locator("#view").focus()
    page.keyboard.press("n")
    task_id = wait_task(page)
    page.keyboard.press("a")  # a new object, selected
    assert page.evaluate("window.curatorWorkbench.selected()") == 3
    page.keyboard.press("e")
    assert page.evaluate("window.curatorWorkbench.tool()") == "eraser"
    page.keyboard.press("b")
    size = page.evaluate("window.curatorWorkbench.brushSize()")
    page.keyboard.press("]")
    page.keyboard.press("]")
    assert page.evaluate("window.curatorWorkbench.brushSize()") > size
    stroke(page, [(10, 10), (30, 12)])
    drawn = mask_of(page, 3)
    assert drawn.sum() > 20
    page.keyboard.press("Control+z")
    assert mask_of(page, 3).sum() == 0
    page.keyboard.press("Control+Shift+z")
    assert np.array_equal(mask_of(page, 3), drawn)
    page.keyboard.press("1")
    assert page.evaluate("window.curatorWorkbench.selected()") == 1
    page.keyboard.press("s")
    next_id = wait_task(page, other_than=task_id)
    assert np.array_equal(stored_human_masks(served, task_id)[3], drawn)
    page.keyboard.press("k")  # skip: the next one is another task, the skipped one is open again
    assert wait_task(page, other_than=next_id) != next_id
    with served.workspace.db.session() as session:
        assert session.get(Task, next_id).state == "open"  # type: ignore[union-attr]


def test_signed_out_shows_the_form_and_refuses_images(context: Any, served: Served) -> None:
    page = context.new_page()
    page.goto("/")
    page.locator("#signin-form").wait_for(state="visible")
    assert page.locator("#app").is_hidden()
    with served.workspace.db.session() as session:
        frame_id = session.query(Frame).first().id  # type: ignore[union-attr]
    image = f"/frames/{frame_id}/image"
    assert context.request.get(image).status == 401
    sign_in(page, served.annotator)
    assert context.request.get(image).status == 200  # the cookie is enough for images
    # the key is in no URL, no storage, and the session cookie is out of the page's reach
    assert served.annotator not in page.url
    storage = page.evaluate("() => JSON.stringify({...localStorage}) + JSON.stringify({...sessionStorage})")
    assert served.annotator not in storage
    assert page.evaluate("document.cookie") == ""
    cookie = next(c for c in context.cookies() if c["name"] == "curator_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and not cookie["secure"]
    # Swagger UI comes from the package: it renders with the cookie and nothing from elsewhere
    docs = context.new_page()
    requests: list[str] = []
    docs.on("request", lambda request: requests.append(request.url))
    docs.goto("/docs")
    docs.locator(".swagger-ui .info .title").wait_for()
    assert all(url.startswith(served.url) for url in requests), requests
    docs.close()
    page.locator("#signout").click()
    page.locator("#signin-form").wait_for(state="visible")
    assert context.request.get(image).status == 401
    assert context.request.get("/session").status == 401


def test_cookie_writes_need_the_csrf_header(context: Any, served: Served) -> None:
    page = context.new_page()
    sign_in(page, served.annotator)
    script = """async ([path, token]) => {
        const headers = {"Content-Type": "application/json"};
        if (token) headers["X-CSRF-Token"] = token;
        const r = await fetch(path, {method: "POST", headers, body: JSON.stringify({limit: 1})});
        return [r.status, (await r.json()).code || null];
    }"""
    claim = f"/projects/{served.pair}/queue/claim"
    assert page.evaluate(script, [claim, None]) == [403, "csrf_failed"]
    assert page.evaluate(script, [claim, "not-the-token"]) == [403, "csrf_failed"]
    token = page.evaluate("async () => (await (await fetch('/session')).json()).csrf_token")
    assert page.evaluate(script, [claim, token])[0] == 200


def click_to_segment_on_the_box(page: Any, served: Served) -> tuple[float, float]:
    """Sign in, claim, select object 2 (the box) and the click tool; the box's centre on the page."""
    sign_in(page, served.annotator, served.street)
    next_task(page)
    page.keyboard.press("2")
    page.keyboard.press("c")
    x, y = page.evaluate("([x, y]) => window.curatorWorkbench.toClient(x, y)", [120.5, 35.5])
    return float(x), float(y)


def test_click_to_segment_sends_clicks_and_mask_and_applies_the_answer(context: Any, served: Served) -> None:
    page = context.new_page()
    x, y = click_to_segment_on_the_box(page, served)
    before = mask_of(page, 2)
    # a server without the route: the page says so and keeps the mask
    page.route("**/frames/*/segment", lambda route: route.fulfill(status=404, json={"code": "not_found", "detail": "Not Found"}))
    with page.expect_request("**/frames/*/segment") as request:
        page.mouse.click(x, y)
    sent = request.value.post_data_json
    assert sent["points"] == [{"x": 120, "y": 35, "positive": True}]
    assert sent["mask"]["size"] == [HEIGHT, WIDTH] and sum(sent["mask"]["counts"]) == HEIGHT * WIDTH
    page.locator("#status", has_text="not available on this server").wait_for()
    assert np.array_equal(mask_of(page, 2), before)
    # an answer replaces the object's mask as one undoable step; Shift+click is a negative click
    _, disc, _ = scene(0)
    answer = {"mask": encode_rle(disc), "score": 0.93, "backend": "test", "ms": 12.0}
    page.unroute("**/frames/*/segment")
    page.route("**/frames/*/segment", lambda route: route.fulfill(json=answer))
    with page.expect_request("**/frames/*/segment") as request:
        page.keyboard.down("Shift")
        page.mouse.click(x, y)
        page.keyboard.up("Shift")
    assert request.value.post_data_json["points"] == [{"x": 120, "y": 35, "positive": False}]
    page.wait_for_function("() => window.curatorWorkbench.undoDepth() > 0")
    assert np.array_equal(mask_of(page, 2), disc.astype(np.uint8))
    page.locator("#status", has_text="Segmented with test").wait_for()
    page.keyboard.press("Control+z")
    assert np.array_equal(mask_of(page, 2), before)


@pytest.mark.slow
def test_click_to_segment_on_the_server(context: Any, served: Served) -> None:
    """The real ``POST /frames/{id}/segment`` (a first click runs the backend's encoder: seconds on a CPU)."""
    page = context.new_page()
    x, y = click_to_segment_on_the_box(page, served)
    before = mask_of(page, 2)
    with page.expect_response("**/frames/*/segment", timeout=120_000) as answer:
        page.mouse.click(x, y)
    response = answer.value
    if response.status == 409:  # the backend's weights are not installed: the page gives the reason
        page.locator("#status", has_text="Click-to-segment failed").wait_for()
        assert np.array_equal(mask_of(page, 2), before)
        return
    assert response.status == 200, response.text()
    page.wait_for_function("() => window.curatorWorkbench.undoDepth() > 0")
    assert mask_of(page, 2).any()
    page.locator("#status", has_text="Segmented with").wait_for()
    shot(page, "05-click-to-segment.png")
