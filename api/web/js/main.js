// The labelling workbench: sign in, pick a project, claim a task, fix its masks, submit.
//
// Everything goes through the public REST API with the session cookie; see README "Labelling in
// the browser". `window.curatorWorkbench` exposes a few read-only hooks for tests and scripts.

import { api, setCsrf, setUnauthorizedHandler } from "./api.js";
import { Categories } from "./categories.js";
import { Editor, PALETTE } from "./editor.js";
import { Filmstrip, bestMasks } from "./filmstrip.js";
import { describe, renderObjectList } from "./objects.js";
import { maskToRle, rleToMask } from "./rle.js";

const NEIGHBOURS = 3;
const PROJECT_KEY = "curator.project";
/** Performance API names: the mark at submit and the measure from it to the next task painted. */
const SUBMIT_MARK = "curator:submit";
const SUBMIT_TO_PAINT = "curator:submit-to-paint";
const MARKS = [SUBMIT_MARK, "curator:submitted", "curator:fetched", "curator:painted"];

const $ = (id) => document.getElementById(id);

const state = {
  session: null,
  projects: [],
  projectId: null,
  task: null, // the TaskDetail being labelled
  leaseDeadline: 0, // ms (performance clock) at which the lease ends
  busy: false,
  segmentWarned: false,
};

// --- messages ------------------------------------------------------------------------------------

let statusTimer = 0;

function showStatus(text, kind = "info") {
  const el = $("status");
  el.textContent = text;
  el.dataset.kind = kind;
  el.classList.add("visible");
  clearTimeout(statusTimer);
  if (kind === "info") statusTimer = setTimeout(() => el.classList.remove("visible"), 3500);
}

function setPageState(name) {
  document.body.dataset.state = name;
}

// --- editor and filmstrip ------------------------------------------------------------------------

const categories = new Categories();
const editor = new Editor($("view"), {
  onChange: () => {
    renderObjects();
    renderTools();
    filmstrip.drawCurrent(editor);
  },
  onRedraw: () => filmstrip.drawCurrent(editor),
  onStatus: showStatus,
  onSegment: segment,
  describe: (obj) => describe(obj, categories.of(obj.id)),
});
const filmstrip = new Filmstrip($("filmstrip"));

/** Ask the server for a mask from the click points and the box; null (with a message) when it cannot. */
async function segment({ points, box, prior, objectId }) {
  const task = state.task;
  if (!task) return null;
  const body = { points };
  if (box) body.box = box;
  if (prior) body.mask = maskToRle(prior, task.frame.height, task.frame.width);
  showStatus(`Segmenting object ${objectId}…`, "busy");
  try {
    const answer = await api("POST", `/frames/${task.frame_id}/segment`, body);
    const mask = rleToMask(answer.mask, task.frame.height, task.frame.width);
    const score = typeof answer.score === "number" ? ` · score ${answer.score.toFixed(2)}` : "";
    const ms = typeof answer.ms === "number" ? ` · ${Math.round(answer.ms)} ms` : "";
    showStatus(`Segmented with ${answer.backend || "the server's backend"}${score}${ms}`, "info");
    return { mask, score: typeof answer.score === "number" ? answer.score : null };
  } catch (err) {
    if ([404, 405, 501].includes(err.status)) {
      showStatus(
        `Click-to-segment is not available on this server (POST /frames/{id}/segment answered ${err.status}). ` +
          "Use the brush (B) and eraser (E) instead.",
        "warn",
      );
    } else {
      showStatus(`Click-to-segment failed: ${err.detail || err.message}`, "error");
    }
    return null;
  }
}

// --- sign-in -------------------------------------------------------------------------------------

function showSignIn(message = "") {
  state.session = null;
  setCsrf(null);
  dropTask();
  $("app").hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = message;
  $("key").value = "";
  $("key").focus();
  setPageState("signed-out");
}

async function signIn(event) {
  event.preventDefault();
  const input = $("key");
  const key = input.value.trim();
  if (!key) return;
  $("signin-button").disabled = true;
  $("signin-error").textContent = "";
  try {
    const session = await api("POST", "/session", { key }, { quiet401: true });
    input.value = "";
    await enterApp(session);
  } catch (err) {
    $("signin-error").textContent =
      err.status === 401 ? "That key is unknown or revoked." : `Cannot sign in: ${err.detail || err.message}`;
    input.select();
  } finally {
    $("signin-button").disabled = false;
  }
}

async function signOut() {
  if (state.task) await releaseQuietly(state.task.id);
  try {
    await api("DELETE", "/session", undefined, { quiet401: true });
  } catch {
    // the cookie is cleared or already gone; either way this browser is signed out
  }
  showSignIn("Signed out.");
}

async function enterApp(session) {
  state.session = session;
  setCsrf(session.csrf_token);
  $("signin").hidden = true;
  $("app").hidden = false;
  const scope = session.project_id === null ? "all projects" : `project ${session.project_id}`;
  $("who").textContent = `${session.role} · ${session.key_prefix}… · ${scope}`;
  $("add-category").hidden = session.role !== "admin";
  await loadProjects();
  showEmpty("Claim a task to start labelling.");
  requestAnimationFrame(() => editor.resize());
}

// --- projects and the queue ----------------------------------------------------------------------

async function loadProjects() {
  const select = $("project");
  state.projects = await api("GET", "/projects");
  select.replaceChildren();
  for (const p of state.projects) {
    const option = document.createElement("option");
    option.value = String(p.id);
    option.textContent = `${p.name} (#${p.id})`;
    select.append(option);
  }
  if (!state.projects.length) {
    state.projectId = null;
    showEmpty("This key sees no project yet.");
    return;
  }
  const stored = Number(localStorage.getItem(PROJECT_KEY));
  const chosen = state.projects.find((p) => p.id === stored) || state.projects[0];
  state.projectId = chosen.id;
  select.value = String(chosen.id);
  await Promise.all([refreshCounts(), refreshCategories()]);
}

async function changeProject() {
  if (state.task) await releaseQuietly(state.task.id);
  dropTask();
  state.projectId = Number($("project").value);
  localStorage.setItem(PROJECT_KEY, String(state.projectId));
  showEmpty("Claim a task to start labelling.");
  await Promise.all([refreshCounts(), refreshCategories()]);
}

/** Load the project's categories (a failure leaves the last ones known, with a message). */
async function refreshCategories() {
  if (!state.projectId) {
    categories.clear();
    return;
  }
  try {
    await categories.load(state.projectId);
  } catch (err) {
    if (err.status !== 401) showStatus(`Cannot load the categories: ${err.detail || err.message}`, "warn");
  }
  renderObjects();
}

async function assignCategory(objectId, categoryId) {
  try {
    const category = await categories.assign(objectId, categoryId);
    showStatus(
      category ? `Object ${objectId} is a ${category.name} now, on every frame.` : `Object ${objectId} has no category now.`,
      "info",
    );
  } catch (err) {
    if (err.status !== 401) showStatus(`Cannot set the category: ${err.detail || err.message}`, "error");
  }
  renderObjects();
  editor.requestDraw();
}

function showCategoryForm(show) {
  $("category-form").hidden = !show;
  $("category-error").textContent = "";
  if (!show) return;
  $("category-name").value = "";
  $("category-color").value = PALETTE[categories.list.length % PALETTE.length];
  $("category-name").focus();
}

async function createCategory(event) {
  event.preventDefault();
  const name = $("category-name").value.trim();
  if (!name || !state.projectId) return;
  try {
    const category = await categories.create(name, $("category-color").value);
    showCategoryForm(false);
    showStatus(`Category ${category.name} added to the project.`, "info");
    renderObjects();
  } catch (err) {
    $("category-error").textContent =
      err.code === "name_taken" ? `The project has a category named ${name} already.` : err.detail || err.message;
  }
}

async function refreshCounts() {
  if (!state.projectId) return;
  try {
    const q = await api("GET", `/projects/${state.projectId}/queue`);
    $("queue-counts").textContent = `${q.open} open · ${q.leased} leased · ${q.done} done`;
  } catch {
    $("queue-counts").textContent = "";
  }
}

// --- tasks ---------------------------------------------------------------------------------------

function showEmpty(text) {
  $("empty-text").textContent = text;
  $("empty").hidden = false;
  setPageState("idle");
  renderTask();
}

function dropTask() {
  state.task = null;
  state.leaseDeadline = 0;
  editor.clear();
  filmstrip.clear();
  delete document.body.dataset.taskId;
  renderTask();
}

async function claimOne() {
  const answer = await api("POST", `/projects/${state.projectId}/queue/claim`, { limit: 1 });
  return answer.tasks.length ? { task: answer.tasks[0], leaseSeconds: answer.lease_seconds } : null;
}

async function withBusy(work) {
  if (state.busy) return;
  state.busy = true;
  renderTask();
  try {
    await work();
  } catch (err) {
    if (err.status !== 401) showStatus(err.detail || err.message, "error");
  } finally {
    state.busy = false;
    // "ready" only once nothing is in flight: keys pressed while busy are ignored
    if (state.task) setPageState("ready");
    renderTask();
  }
}

/** Claim a task and open it (when none is open). */
function next() {
  if (state.task) {
    showStatus("Submit (S) or skip (K) this task first.", "warn");
    return;
  }
  if (!state.projectId) return;
  return withBusy(async () => {
    setPageState("loading");
    const claimed = await claimOne();
    if (!claimed) {
      await refreshCounts();
      showEmpty("No open task in this project right now. Check again later (N).");
      return;
    }
    await openTask(claimed);
  });
}

/** Open a claimed task: its frame, pre-annotation and neighbours; `timed`: end the submit measure once painted. */
async function openTask({ task, leaseSeconds }, timed = false) {
  setPageState("loading");
  const claimedAt = performance.now();
  const image = new Image();
  image.src = task.image_url; // loads while the task's detail is fetched
  const [detail] = await Promise.all([api("GET", `/tasks/${task.id}?neighbours=${NEIGHBOURS}`), image.decode()]);
  if (timed) performance.mark("curator:fetched");
  const { width, height } = detail.frame;
  const objects = bestMasks(detail.pre_annotation).map((m) => ({
    id: m.object_id,
    mask: rleToMask(m.rle, height, width),
    source: m.source,
    confidence: m.confidence,
  }));
  if (!objects.length) objects.push({ id: 1, mask: null, source: "new", confidence: null });
  state.task = detail;
  state.leaseDeadline = claimedAt + leaseSeconds * 1000;
  $("empty").hidden = true;
  editor.load(image, width, height, objects);
  await editor.painted();
  if (timed) measureSubmit();
  // after the frame: the neighbours and the categories (which others may have changed) load while the annotator looks
  filmstrip.show(detail, editor);
  refreshCategories();
  document.body.dataset.taskId = String(detail.id);
  setPageState(state.busy ? "loading" : "ready");
  renderTask();
  renderLease();
  refreshCounts();
}

/**
 * End the submit measure: `curator:submit-to-paint` from the press of Submit to the next task's frame
 * and masks painted on the canvas, with its parts `curator:submit-and-claim` (POST submit and the
 * next claim, sent together) and `curator:open` (the next task's detail, image, masks and first paint),
 * itself `curator:fetch` (detail and image, loaded together) then `curator:draw` (masks decoded, drawn).
 */
function measureSubmit() {
  performance.mark("curator:painted");
  const has = (name) => performance.getEntriesByName(name, "mark").length > 0;
  if (has(SUBMIT_MARK)) {
    performance.measure(SUBMIT_TO_PAINT, SUBMIT_MARK, "curator:painted");
    if (has("curator:submitted")) {
      performance.measure("curator:submit-and-claim", SUBMIT_MARK, "curator:submitted");
      performance.measure("curator:open", "curator:submitted", "curator:painted");
      if (has("curator:fetched")) {
        performance.measure("curator:fetch", "curator:submitted", "curator:fetched");
        performance.measure("curator:draw", "curator:fetched", "curator:painted");
      }
    }
  }
  for (const name of MARKS) performance.clearMarks(name);
}

function submitBody() {
  const { width, height } = state.task.frame;
  const masks = [];
  for (const id of editor.objectIds()) {
    const obj = editor.objects.get(id);
    if (obj.area > 0) masks.push({ object_id: id, rle: maskToRle(obj.mask, height, width, editor.extentOf(obj)) });
  }
  return { masks, propagate: false };
}

const LEASE_LOST = new Set(["lease_expired", "lease_not_held", "task_done"]);

function submit() {
  if (!state.task) return;
  return withBusy(async () => {
    for (const name of MARKS) performance.clearMarks(name);
    performance.mark(SUBMIT_MARK);
    const task = state.task;
    const body = submitBody();
    setPageState("submitting");
    // the next claim goes out with the submit: this task is leased to us, so it cannot come back
    const [sent, next] = await Promise.allSettled([api("POST", `/tasks/${task.id}/submit`, body), claimOne()]);
    performance.mark("curator:submitted");
    if (sent.status === "rejected") {
      if (next.status === "fulfilled" && next.value) await releaseQuietly(next.value.task.id);
      setPageState("ready");
      if (LEASE_LOST.has(sent.reason.code)) {
        dropTask();
        showEmpty(`Task ${task.id} could not be submitted: ${sent.reason.detail}`);
      }
      throw sent.reason;
    }
    const n = body.masks.length;
    showStatus(`Task ${task.id} submitted (${n} mask${n === 1 ? "" : "s"}).`, "info");
    dropTask();
    setPageState("loading");
    const claimed = next.status === "fulfilled" ? next.value : await claimOne(); // a failed claim is tried again
    if (claimed) await openTask(claimed, true);
    else showEmpty("Queue done: no open task left in this project.");
  });
}

function skip() {
  if (!state.task) return;
  return withBusy(async () => {
    const task = state.task;
    setPageState("loading");
    // claim the next one while still holding this one, so the skipped task is not handed straight back
    const claimed = await claimOne();
    await releaseQuietly(task.id);
    dropTask();
    showStatus(`Task ${task.id} skipped: it is back in the queue.`, "info");
    if (claimed) await openTask(claimed);
    else showEmpty("No other open task: the skipped one is back in the queue (N to take it again).");
  });
}

async function releaseQuietly(taskId) {
  try {
    await api("POST", `/tasks/${taskId}/release`, undefined, { quiet401: true });
  } catch {
    // an expired or lost lease is back in the pool already
  }
}

// --- rendering -----------------------------------------------------------------------------------

function renderTask() {
  const info = $("task-info");
  info.replaceChildren();
  const task = state.task;
  const rows = task
    ? [
        ["Task", `#${task.id}`],
        ["Frame", `#${task.frame.frame_index} of video ${task.video_id}`],
        ["Time", `${task.frame.timestamp.toFixed(2)} s`],
        ["Size", `${task.frame.width} × ${task.frame.height}`],
        ["Why", task.reason || "—"],
        ...(task.review_note ? [["Review", task.review_note]] : []),
      ]
    : [["Task", "none claimed"]];
  for (const [k, v] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = v;
    info.append(dt, dd);
  }
  $("submit").disabled = !task || state.busy;
  $("skip").disabled = !task || state.busy;
  $("next").disabled = state.busy || !state.projectId;
  $("add-object").disabled = !task;
  renderLease();
}

function renderLease() {
  const el = $("lease");
  if (!state.task) {
    el.textContent = "";
    el.dataset.level = "";
    return;
  }
  const left = Math.round((state.leaseDeadline - performance.now()) / 1000);
  if (left <= 0) {
    el.textContent = "Lease expired: submitting may fail";
    el.dataset.level = "bad";
    return;
  }
  const m = Math.floor(left / 60);
  const s = String(left % 60).padStart(2, "0");
  el.textContent = `Lease ${m}:${s} left`;
  el.dataset.level = left < 120 ? "warn" : "ok";
}

function renderTools() {
  for (const b of document.querySelectorAll("[data-tool]")) {
    b.classList.toggle("active", b.dataset.tool === editor.tool);
    b.setAttribute("aria-pressed", String(b.dataset.tool === editor.tool));
  }
  $("brush-size").value = String(Math.min(100, editor.brushSize));
  $("brush-size-value").textContent = String(editor.brushSize);
  $("undo").disabled = !editor.undoStack.length;
  $("redo").disabled = !editor.redoStack.length;
  $("tags").classList.toggle("active", editor.showTags);
  $("tags").setAttribute("aria-pressed", String(editor.showTags));
  const hints = {
    brush: "Paint the selected object. Hold Space (or the middle button) and drag to pan.",
    eraser: "Erase from the selected object only.",
    click:
      "Click inside the object to add it, Shift+click or right-click to remove a part; drag a box around it. " +
      "Esc clears the clicks and the box.",
    polygon: editor.polygon
      ? `${editor.polygon.vertices.length} corner(s): click the first corner, double-click or press Enter to fill` +
        `${editor.polygon.subtract ? " (cut)" : ""}; Shift cuts; Backspace drops a corner; Esc cancels.`
      : "Click the corners of a polygon to fill into the selected object; Shift+click the first corner to cut it out instead.",
  };
  $("tool-hint").textContent = hints[editor.tool] + (editor.showMasks ? "" : " Masks are hidden (H).");
}

function renderObjects() {
  renderObjectList($("object-list"), editor, categories, assignCategory);
}

// --- keyboard ------------------------------------------------------------------------------------

function typing(target) {
  return target instanceof HTMLElement && (target.isContentEditable || ["INPUT", "SELECT", "TEXTAREA"].includes(target.tagName))
    && !(target instanceof HTMLInputElement && ["range", "checkbox"].includes(target.type));
}

function onKeyDown(e) {
  if ($("app").hidden || typing(e.target)) return;
  const mod = e.ctrlKey || e.metaKey;
  const key = e.key.toLowerCase();
  if (mod && key === "z") {
    e.preventDefault();
    if (e.shiftKey) editor.redo();
    else editor.undo();
    return;
  }
  if (mod && key === "y") {
    e.preventDefault();
    editor.redo();
    return;
  }
  if (mod || e.altKey) return;
  if (e.key === " ") {
    e.preventDefault();
    if (!e.repeat) editor.setSpace(true);
    return;
  }
  if (e.key === "Enter" && editor.polygon) {
    e.preventDefault();
    editor.closePolygon(e.shiftKey);
    return;
  }
  const actions = {
    b: () => editor.setTool("brush"),
    e: () => editor.setTool("eraser"),
    c: () => editor.setTool("click"),
    p: () => editor.setTool("polygon"),
    o: () => editor.fillHolesSelected(),
    l: () => editor.toggleTags(),
    "[": () => editor.setBrushSize(editor.brushSize - Math.max(1, Math.round(editor.brushSize * 0.2))),
    "]": () => editor.setBrushSize(editor.brushSize + Math.max(1, Math.round(editor.brushSize * 0.2))),
    a: () => state.task && editor.addObject(),
    n: () => next(),
    s: () => submit(),
    k: () => skip(),
    h: () => editor.toggleMasks(),
    f: () => editor.fit(),
    delete: () => editor.clearSelected(),
    backspace: () => (editor.polygon ? editor.removeVertex() : editor.clearSelected()),
    escape: () => editor.cancel(),
  };
  if (/^[1-9]$/.test(e.key)) {
    const ids = editor.objectIds();
    const id = ids[Number(e.key) - 1];
    if (id !== undefined) editor.select(id);
    e.preventDefault();
    return;
  }
  const action = actions[key];
  if (action) {
    e.preventDefault();
    if (!e.repeat || key === "[" || key === "]" || (key === "backspace" && editor.polygon)) action();
  }
}

function onKeyUp(e) {
  if (e.key === " ") editor.setSpace(false);
}

// --- wiring --------------------------------------------------------------------------------------

function wire() {
  $("signin-form").addEventListener("submit", signIn);
  $("signout").addEventListener("click", signOut);
  $("project").addEventListener("change", changeProject);
  $("next").addEventListener("click", () => next());
  $("submit").addEventListener("click", () => submit());
  $("skip").addEventListener("click", () => skip());
  $("add-object").addEventListener("click", () => editor.addObject());
  $("undo").addEventListener("click", () => editor.undo());
  $("redo").addEventListener("click", () => editor.redo());
  $("clear-mask").addEventListener("click", () => editor.clearSelected());
  $("fit").addEventListener("click", () => editor.fit());
  $("fill-holes").addEventListener("click", () => editor.fillHolesSelected());
  $("tags").addEventListener("click", () => editor.toggleTags());
  $("add-category").addEventListener("click", () => showCategoryForm($("category-form").hidden));
  $("category-form").addEventListener("submit", createCategory);
  $("category-cancel").addEventListener("click", () => showCategoryForm(false));
  $("category-form").addEventListener("keydown", (e) => {
    if (e.key === "Escape") showCategoryForm(false);
  });
  $("brush-size").addEventListener("input", (e) => editor.setBrushSize(Number(e.target.value)));
  for (const b of document.querySelectorAll("[data-tool]")) {
    b.addEventListener("click", () => editor.setTool(b.dataset.tool));
  }
  // buttons must not keep the focus: Space would press them instead of panning
  for (const b of document.querySelectorAll("button")) b.addEventListener("mouseup", () => b.blur());
  document.addEventListener("keydown", onKeyDown);
  document.addEventListener("keyup", onKeyUp);
  window.addEventListener("blur", () => editor.setSpace(false));
  setInterval(renderLease, 1000);
  setUnauthorizedHandler(() => showSignIn("Your session has ended (expired, signed out or the key was revoked). Sign in again."));
}

/** Read-only hooks for tests and scripts. */
window.curatorWorkbench = {
  /** The mask of an object as a flat row-major array of 0/1 (height * width), or null. */
  maskOf(objectId) {
    const obj = editor.objects.get(objectId);
    return obj ? Array.from(obj.mask) : null;
  },
  objectIds: () => editor.objectIds(),
  selected: () => editor.selected,
  tool: () => editor.tool,
  brushSize: () => editor.brushSize,
  task: () => (state.task ? { id: state.task.id, frameId: state.task.frame_id, width: state.task.frame.width, height: state.task.frame.height } : null),
  /** Client (page) coordinates of an image point: to drive the mouse in tests. */
  toClient: (x, y) => editor.toClient(x, y),
  undoDepth: () => editor.undoStack.length,
  /** The corners of the polygon being drawn ([[x, y]] image px), or null. */
  polygon: () => (editor.polygon ? editor.polygon.vertices.map((v) => [...v]) : null),
  /** The click tool's box prompt [x0, y0, x1, y1], or null. */
  box: () => (editor.box ? [...editor.box] : null),
  /** Resolves, once the canvas is painted again, to the [r, g, b, a] drawn at each image point [x, y]. */
  canvasPixels: async (points) => {
    await editor.painted();
    return points.map(([x, y]) => editor.pixelAt(x, y));
  },
  /** An object's category name, source and confidence as the page shows them. */
  objectInfo: (id) => {
    const obj = editor.objects.get(id);
    if (!obj) return null;
    const category = categories.of(id);
    return { category: category ? category.name : null, source: obj.source, confidence: obj.confidence, visible: obj.visible };
  },
  /** Milliseconds from each Submit to the next task painted (the `curator:submit-to-paint` measures). */
  submitToPaint: () => performance.getEntriesByName(SUBMIT_TO_PAINT, "measure").map((m) => m.duration),
};

async function start() {
  wire();
  renderTools();
  renderTask();
  try {
    const session = await api("GET", "/session", undefined, { quiet401: true });
    await enterApp(session);
  } catch (err) {
    showSignIn(err.status === 401 ? "" : `The server answered: ${err.detail || err.message}`);
  }
}

start();
