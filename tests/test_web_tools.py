"""The workbench's editing tools in a real headless Chromium: polygon, fill holes, the box prompt of
click-to-segment, categories, per-object visibility and opacity.

Every test checks pixels: the mask the page holds, what its canvas paints (read back from the canvas,
compared with the frame painted with every mask hidden) and, after submit, what the server stored.
The browser, the served home and the helpers are those of :mod:`tests.test_web`; screenshots go to
``bench-out/screenshots/``.
"""

from __future__ import annotations

import json
from typing import Any

import cv2
import httpx
import numpy as np

from curator.annotate import decode_rle
from tests.api_fixtures import auth
from tests.test_web import (  # noqa: F401  (the *_fixture names: browser, context and served of test_web)
    HEIGHT,
    WIDTH,
    Served,
    browser_fixture,
    canvas_pixels,
    client_point,
    context_fixture,
    mask_of,
    next_task,
    served_fixture,
    shot,
    sign_in,
    stored_human_masks,
    stroke,
    wait_task,
)


def polygon_mask(vertices: list[list[float]]) -> np.ndarray:
    """The pixels whose centre lies inside the polygon (even-odd rule), as the page fills them."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    cx, cy = xx + 0.5, yy + 0.5
    inside = np.zeros((HEIGHT, WIDTH), bool)
    for (x1, y1), (x2, y2) in zip(vertices, vertices[1:] + vertices[:1], strict=True):
        crosses = (y1 <= cy) != (y2 <= cy)
        with np.errstate(divide="ignore", invalid="ignore"):
            xi = x1 + (cy - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (xi > cx)
    return inside


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` with every background region not 4-connected to the image border filled."""
    _, labels = cv2.connectedComponents((~mask).astype(np.uint8), connectivity=4)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    return mask | ~np.isin(labels, border)


def interior(mask: np.ndarray) -> np.ndarray:
    """The pixels of ``mask`` whose 8 neighbours are all in it (its edge peeled off)."""
    return cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)


def centres(mask: np.ndarray, n: int = 40, seed: int = 0) -> list[tuple[float, float]]:
    """Up to ``n`` pixel centres (x, y) of ``mask``, spread at random (fixed seed)."""
    ys, xs = np.nonzero(mask)
    pick = np.random.default_rng(seed).choice(len(xs), size=min(n, len(xs)), replace=False)
    return [(float(xs[i]) + 0.5, float(ys[i]) + 0.5) for i in pick]


def painted(page: Any, points: list[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """The canvas at ``points`` as painted now, and with every mask hidden (H): (shown, frame only)."""
    shown = canvas_pixels(page, points)
    page.keyboard.press("h")
    bare = canvas_pixels(page, points)
    page.keyboard.press("h")
    return shown, bare


def assert_canvas_shows(page: Any, masks: dict[int, np.ndarray]) -> None:
    """The canvas tints every pixel of the visible masks and leaves every other pixel as the frame."""
    union = np.logical_or.reduce([m.astype(bool) for m in masks.values()])
    inside, outside = centres(union, seed=1), centres(~union, seed=2)
    shown, bare = painted(page, inside + outside)
    n = len(inside)
    assert (shown[:n] != bare[:n]).any(axis=1).all(), "a mask pixel is not painted"
    assert np.array_equal(shown[n:], bare[n:]), "a pixel outside every mask is painted"


def click_at(page: Any, x: float, y: float) -> None:
    page.mouse.click(*client_point(page, x, y))


def start_on_the_street(page: Any, served: Served, object_id: int, tool: str) -> int:
    """Sign in, claim a task of the street project, select an object and a tool (tags off); the task id."""
    sign_in(page, served.annotator, served.street)
    task_id = next_task(page)
    page.keyboard.press(str(object_id))
    page.keyboard.press(tool)
    page.keyboard.press("l")  # tags off: the pixel checks look under them
    return task_id


def test_polygon_fills_cuts_and_is_stored_as_painted(context: Any, served: Served) -> None:
    page = context.new_page()
    task_id = start_on_the_street(page, served, 2, "p")
    before = mask_of(page, 2).astype(bool)
    # add: five corners, closed with Enter
    for x, y in [(20.6, 12.4), (78.3, 8.7), (88.6, 52.2), (52.4, 74.8), (14.3, 44.6)]:
        click_at(page, x, y)
    corners = page.evaluate("window.curatorWorkbench.polygon()")
    assert len(corners) == 5 and abs(corners[2][0] - 88.6) < 0.5 and abs(corners[2][1] - 52.2) < 0.5
    page.keyboard.press("l")
    shot(page, "tools-1-polygon-drawing.png")
    page.keyboard.press("l")
    page.keyboard.press("Enter")
    added = before | polygon_mask(corners)
    assert np.array_equal(mask_of(page, 2), added)
    # cut: Shift on the first corner, closed with a double-click on the last; undo and redo
    page.keyboard.down("Shift")
    click_at(page, 30.4, 20.6)
    page.keyboard.up("Shift")
    click_at(page, 70.2, 24.4)
    click_at(page, 48.7, 60.3)
    triangle = page.evaluate("window.curatorWorkbench.polygon()")
    page.mouse.dblclick(*client_point(page, 48.7, 60.3))
    cut = added & ~polygon_mask(triangle)
    assert np.array_equal(mask_of(page, 2), cut) and cut.sum() < added.sum()
    page.keyboard.press("Control+z")
    assert np.array_equal(mask_of(page, 2), added)
    page.keyboard.press("Control+Shift+z")
    assert np.array_equal(mask_of(page, 2), cut)
    # Escape drops a polygon being drawn; a click on the first corner closes one
    page.keyboard.press("a")
    click_at(page, 120.4, 70.6)
    click_at(page, 150.3, 90.2)
    page.keyboard.press("Escape")
    assert page.evaluate("window.curatorWorkbench.polygon()") is None and mask_of(page, 3).sum() == 0
    for x, y in [(120.4, 70.6), (150.3, 90.2), (110.6, 105.3)]:
        click_at(page, x, y)
    third = page.evaluate("window.curatorWorkbench.polygon()")
    click_at(page, 120.4, 70.6)
    assert page.evaluate("window.curatorWorkbench.polygon()") is None
    assert np.array_equal(mask_of(page, 3), polygon_mask(third))
    shown = {i: mask_of(page, i) for i in (1, 2, 3)}
    assert_canvas_shows(page, shown)
    page.keyboard.press("l")
    shot(page, "tools-2-polygon-filled.png")
    page.keyboard.press("s")
    wait_task(page, other_than=task_id)
    stored = stored_human_masks(served, task_id)
    assert set(stored) == {1, 2, 3}
    for object_id, mask in shown.items():
        assert np.array_equal(stored[object_id], mask), f"object {object_id}: stored differs from the canvas"


def test_fill_holes_closes_holes_not_notches(context: Any, served: Served) -> None:
    page = context.new_page()
    start_on_the_street(page, served, 2, "e")
    box = mask_of(page, 2).astype(bool)
    stroke(page, [(118, 33), (122, 37)])  # a hole inside the box
    stroke(page, [(95, 45), (108, 45)])  # a notch from its left edge: not a hole
    page.mouse.move(2, 2)  # off the canvas: no eraser outline over the pixels checked
    holed = mask_of(page, 2).astype(bool)
    hole = box & ~holed & fill_holes(holed)
    assert hole.sum() > 20 and (box & ~holed & ~hole).sum() > 20
    shown, bare = painted(page, centres(hole))
    assert np.array_equal(shown, bare), "the hole is painted as mask"
    page.keyboard.press("l")
    shot(page, "tools-3-hole.png")
    page.keyboard.press("l")
    page.keyboard.press("o")
    filled = mask_of(page, 2).astype(bool)
    assert np.array_equal(filled, fill_holes(holed))
    assert np.array_equal(filled, holed | hole)
    shown, bare = painted(page, centres(hole))
    assert (shown != bare).any(axis=1).all(), "the filled hole is not painted"
    shot(page, "tools-4-holes-filled.png")
    page.keyboard.press("o")  # nothing left to fill: no change, no undo step
    page.locator("#status", has_text="has no holes").wait_for()
    page.keyboard.press("Control+z")
    assert np.array_equal(mask_of(page, 2), holed)


def test_box_prompt_goes_to_the_server_and_its_answer_is_applied(context: Any, served: Served) -> None:
    page = context.new_page()
    start_on_the_street(page, served, 2, "c")
    sent: list[dict[str, Any]] = []

    def with_grabcut(route: Any) -> None:  # the real route, with the backend that needs no weights
        body = route.request.post_data_json
        sent.append(body)
        route.continue_(post_data=json.dumps({**body, "backend": "grabcut"}))

    page.route("**/frames/*/segment", with_grabcut)
    page.mouse.move(*client_point(page, 94.6, 14.6))
    page.mouse.down()
    page.mouse.move(*client_point(page, 145.4, 55.4), steps=8)
    with page.expect_response("**/frames/*/segment") as answer:
        page.mouse.up()
    assert answer.value.status == 200, answer.value.text()
    assert sent[-1]["box"] == [94, 14, 146, 56] and sent[-1]["points"] == []
    assert sent[-1]["mask"]["size"] == [HEIGHT, WIDTH]  # the current mask goes with the box
    page.wait_for_function("() => window.curatorWorkbench.undoDepth() > 0")
    segmented = decode_rle(answer.value.json()["mask"]).astype(np.uint8)
    assert np.array_equal(mask_of(page, 2), segmented)
    assert segmented.any() and not segmented[:, :94].any() and not segmented[56:].any()
    info = page.evaluate("window.curatorWorkbench.objectInfo(2)")
    assert info["source"] == "model" and 0 <= info["confidence"] <= 1
    assert page.evaluate("window.curatorWorkbench.box()") == [94, 14, 146, 56]
    page.keyboard.press("l")
    shot(page, "tools-5-box-prompt.png")
    # a click after the box sends both
    with page.expect_response("**/frames/*/segment"):
        click_at(page, 120.5, 35.5)
    assert sent[-1]["box"] == [94, 14, 146, 56] and sent[-1]["points"] == [{"x": 120, "y": 35, "positive": True}]
    page.keyboard.press("Escape")
    assert page.evaluate("window.curatorWorkbench.box()") is None


def test_categories_from_the_page_round_trip_over_rest(browser: Any, served: Served) -> None:
    contexts = [browser.new_context(base_url=served.url, viewport={"width": 1440, "height": 900}) for _ in range(2)]
    try:
        admin, annotator = (ctx.new_page() for ctx in contexts)
        sign_in(admin, served.admin, served.pair)
        admin.locator("#add-category").click()
        admin.locator("#category-name").fill("ball")
        admin.locator("#category-color").fill("#ffaa00")
        shot(admin, "tools-6-category-form.png")
        admin.locator("#category-form button[type=submit]").click()
        admin.locator("#status", has_text="Category ball added").wait_for()
        admin.locator("#add-category").click()
        admin.locator("#category-name").fill("ball")
        admin.locator("#category-form button[type=submit]").click()
        admin.locator("#category-error", has_text="already").wait_for()
        listed = httpx.get(f"{served.url}/projects/{served.pair}/categories", headers=auth(served.annotator)).json()
        assert [(c["name"], c["color"]) for c in listed] == [("ball", "#ffaa00")]

        sign_in(annotator, served.annotator, served.pair)
        assert annotator.locator("#add-category").is_hidden()  # adding categories is for admins
        next_task(annotator)
        picker = annotator.locator('#object-list li[data-object-id="1"] select.category')
        assert picker.locator("option").all_inner_texts() == ["— no category —", "ball"]
        picker.select_option(label="ball")
        annotator.locator("#status", has_text="is a ball now").wait_for()
        objects = httpx.get(f"{served.url}/projects/{served.pair}/objects", headers=auth(served.annotator)).json()
        assert [(o["object_id"], o["category"], o["color"]) for o in objects] == [(1, "ball", "#ffaa00")]
        assert annotator.evaluate("window.curatorWorkbench.objectInfo(1)")["category"] == "ball"
        assert annotator.locator('#object-list li[data-object-id="1"] select.category').input_value() == str(listed[0]["id"])
        shot(annotator, "tools-7-categories.png")
        annotator.locator('#object-list li[data-object-id="1"] select.category').select_option(value="")
        annotator.locator("#status", has_text="has no category now").wait_for()
        assert httpx.get(f"{served.url}/projects/{served.pair}/objects", headers=auth(served.annotator)).json() == []
    finally:
        for ctx in contexts:
            ctx.close()


def test_visibility_and_opacity_per_object(context: Any, served: Served) -> None:
    page = context.new_page()
    start_on_the_street(page, served, 1, "p")  # a tool that paints nothing at the pointer
    first, second = mask_of(page, 1).astype(bool), mask_of(page, 2).astype(bool)
    points = centres(interior(second), 20) + centres(interior(first), 20)
    shown, bare = painted(page, points)
    assert (shown != bare).any(axis=1).all()
    row = page.locator('#object-list li[data-object-id="2"]')
    row.locator("input.eye").uncheck()
    hidden = canvas_pixels(page, points)
    assert np.array_equal(hidden[:20], bare[:20]), "a hidden object is still painted"
    assert np.array_equal(hidden[20:], shown[20:]), "hiding one object changed another"
    assert page.evaluate("window.curatorWorkbench.objectInfo(2)")["visible"] is False
    shot(page, "tools-8-object-hidden.png")
    row.locator("input.eye").check()
    assert np.array_equal(canvas_pixels(page, points), shown)
    row.locator("input[type=range]").fill("0")
    assert np.array_equal(canvas_pixels(page, points)[:20], bare[:20])
    row.locator("input[type=range]").fill("100")
    opaque = canvas_pixels(page, points)[:20]
    assert np.abs(opaque - bare[:20]).sum() > np.abs(shown[:20] - bare[:20]).sum()
    # the tags (object, category, source, confidence) are painted above each object, and toggle with L
    above = [(x + 0.5, y + 0.5) for x in range(100, 124, 2) for y in range(15, 19)]
    without = canvas_pixels(page, above)
    page.keyboard.press("l")
    assert (canvas_pixels(page, above) != without).any()
    assert "propagated 0.90" in row.inner_text()
