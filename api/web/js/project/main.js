// The project view: sign in, pick a project, switch between its views (overview, video, embedding map,
// rounds, upload and run); jobs and queue counts are polled while the page is open.
//
// The URL keeps the place (?project=1&view=video&video=2&frame=40), so a view can be linked to.
// `window.curatorProject` exposes read-only hooks for tests and scripts.

import { api, setCsrf, setUnauthorizedHandler } from "../api.js";
import { ActionsView } from "./actions.js";
import { $, count, el, errorText, setToken, showStatus } from "./common.js";
import { MapView } from "./embedmap.js";
import { JobPoller, renderJobs } from "./jobs.js";
import { OverviewView } from "./overview.js";
import { RoundsView } from "./rounds.js";
import { VideoView } from "./video.js";

const PROJECT_KEY = "curator.project"; // shared with the labelling page
const VIEWS = ["overview", "video", "map", "rounds", "actions"];

const state = { session: null, projects: [], projectId: null, view: "overview", videos: [], videosLoaded: Promise.resolve() };

// --- queueing frames (video view and lasso) ------------------------------------------------------

async function queueFrames(frameIds, reason) {
  try {
    const answer = await api("POST", `/projects/${state.projectId}/queue/frames`, { frame_ids: frameIds, reason });
    showStatus(
      `${count(answer.created)} frame(s) queued for labelling${answer.existing ? `, ${count(answer.existing)} had a task already` : ""}.`,
      "info",
    );
    poller.tick();
    return answer;
  } catch (err) {
    showStatus(
      err.status === 403 ? "Queueing frames needs an admin key." : `Cannot queue: ${errorText(err)}`,
      "error",
    );
    return null;
  }
}

function openVideo(videoId, frameId = null) {
  showView("video", { video: videoId, frame: frameId });
}

const overview = new OverviewView({ openVideo });
const video = new VideoView({ queue: queueFrames });
const map = new MapView({ queue: queueFrames, openVideo });
const rounds = new RoundsView({ openVideo });
const actions = new ActionsView({ jobStarted: () => poller.tick() });

const poller = new JobPoller({
  onJobs: (jobs) => {
    renderJobs($("ov-jobs"), jobs);
    renderJobs($("act-jobs"), jobs);
  },
  onQueue: (q) => {
    $("queue-counts").textContent = `${count(q.open + q.expired)} open · ${count(q.leased)} leased · ${count(q.done)} done`;
    overview.renderQueue(q);
  },
  onFinished: async () => {
    // new videos, picks or masks: refresh what is on screen
    state.videosLoaded = loadVideos();
    await Promise.all([state.videosLoaded, loadProjects()]);
    if (state.view === "overview") overview.refresh();
    if (state.view === "rounds") rounds.show(state.projectId);
    if (state.view === "actions") actions.show(state.projectId, state.videos);
  },
});

// --- views -----------------------------------------------------------------------------------------

function writeUrl(params = {}) {
  const url = new URL(window.location.href);
  url.search = "";
  if (state.projectId !== null) url.searchParams.set("project", String(state.projectId));
  url.searchParams.set("view", state.view);
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined) url.searchParams.set(k, String(v));
  history.replaceState(null, "", url);
}

/** The projects the key can see, in the project list (with their frame counts). */
async function loadProjects() {
  state.projects = await api("GET", "/projects");
  const options = state.projects.map((p) => el("option", { value: p.id }, `${p.name} (${count(p.frames)} frames)`));
  if (state.projectId !== null && !state.projects.some((p) => p.id === state.projectId)) {
    options.unshift(el("option", { value: state.projectId }, `project ${state.projectId} (not found)`));
  }
  $("project").replaceChildren(...options);
  if (state.projectId !== null) $("project").value = String(state.projectId);
}

/** The project's videos (for the video and actions views); never rejects (a failure is shown). */
async function loadVideos() {
  try {
    state.videos = state.projectId === null ? [] : await api("GET", `/projects/${state.projectId}/videos`);
  } catch (err) {
    state.videos = [];
    showStatus(`Cannot list the videos: ${errorText(err)}`, "error");
  }
}

async function showView(name, params = {}) {
  state.view = VIEWS.includes(name) ? name : "overview";
  for (const section of document.querySelectorAll(".pv-view")) section.hidden = section.dataset.view !== state.view;
  for (const tab of document.querySelectorAll(".pv-tabs [data-view]")) tab.classList.toggle("active", tab.dataset.view === state.view);
  document.body.dataset.view = state.view;
  writeUrl(params);
  if (state.projectId === null) return;
  try {
    if (state.view === "overview") await overview.show(state.projectId);
    else if (state.view === "video") {
      await state.videosLoaded;
      await video.show(state.projectId, state.videos, params.video ?? null, params.frame ?? null);
    } else if (state.view === "map") await map.show(state.projectId);
    else if (state.view === "rounds") await rounds.show(state.projectId);
    else {
      await state.videosLoaded;
      actions.show(state.projectId, state.videos);
    }
  } catch (err) {
    showStatus(`Cannot show the ${state.view} view: ${errorText(err)}`, "error");
  }
}

async function selectProject(projectId, params = {}) {
  state.projectId = projectId;
  localStorage.setItem(PROJECT_KEY, String(projectId));
  $("project").value = String(projectId);
  state.videosLoaded = loadVideos(); // beside the view's own request: the views that need it wait for it
  await showView(state.view, params);
  poller.start(projectId); // after the first paint: its requests do not hold the view up
}

// --- sign-in ---------------------------------------------------------------------------------------

function showSignIn(message = "") {
  state.session = null;
  setCsrf(null);
  setToken(null);
  poller.stop();
  $("app").hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = message;
  $("key").value = "";
  $("key").focus();
  document.body.dataset.state = "signed-out";
}

async function enter(session) {
  state.session = session;
  setCsrf(session.csrf_token);
  setToken(session.csrf_token);
  $("signin").hidden = true;
  $("app").hidden = false;
  const scope = session.project_id === null ? "all projects" : `project ${session.project_id}`;
  $("who").textContent = `${session.role} · ${session.key_prefix}… · ${scope}`;
  const query = new URLSearchParams(window.location.search);
  state.view = VIEWS.includes(query.get("view")) ? query.get("view") : "overview";
  const params = {};
  if (query.get("video")) params.video = Number(query.get("video"));
  if (query.get("frame")) params.frame = Number(query.get("frame"));
  const linked = Number(query.get("project"));
  const scoped = session.project_id === null || session.project_id === linked;
  if (linked > 0 && scoped) {
    // a link names the project: open it while the project list loads
    const listed = loadProjects();
    await selectProject(linked, params);
    await listed;
    document.body.dataset.state = "ready";
    return;
  }
  await loadProjects();
  document.body.dataset.state = "ready";
  if (!state.projects.length) {
    showStatus("No projects yet: create one with the API or `curator ingest`.", "warn");
    await showView(state.view);
    return;
  }
  const remembered = Number(localStorage.getItem(PROJECT_KEY));
  const wanted = state.projects.some((p) => p.id === remembered) ? remembered : state.projects[0].id;
  await selectProject(wanted, params);
}

async function signIn(event) {
  event.preventDefault();
  const key = $("key").value.trim();
  if (!key) return;
  $("signin-button").disabled = true;
  $("signin-error").textContent = "";
  try {
    const session = await api("POST", "/session", { key }, { quiet401: true });
    $("key").value = "";
    await enter(session);
  } catch (err) {
    $("signin-error").textContent = err.status === 401 ? "That key is unknown or revoked." : `Cannot sign in: ${errorText(err)}`;
  } finally {
    $("signin-button").disabled = false;
  }
}

async function signOut() {
  try {
    await api("DELETE", "/session", undefined, { quiet401: true });
  } catch {
    // already signed out
  }
  showSignIn("Signed out.");
}

async function start() {
  setUnauthorizedHandler(() => showSignIn("Your session has ended; sign in again."));
  $("signin-form").addEventListener("submit", signIn);
  $("signout").addEventListener("click", signOut);
  $("project").addEventListener("change", (e) => selectProject(Number(e.target.value)));
  for (const tab of document.querySelectorAll(".pv-tabs [data-view]")) {
    tab.addEventListener("click", () => showView(tab.dataset.view));
  }
  document.addEventListener("visibilitychange", () => document.visibilityState === "visible" && poller.tick());
  window.curatorProject = {
    state: () => ({ projectId: state.projectId, view: state.view }),
    video: {
      seek: (i) => video.seek(i),
      index: () => video.index,
      frameIds: () => (video.timeline ? [...video.timeline.frames.id] : []),
      clientOf: (i) => video.clientOf(i),
    },
    map: map.hooksForTests(),
  };
  try {
    await enter(await api("GET", "/session", undefined, { quiet401: true }));
  } catch (err) {
    showSignIn(err.status === 401 ? "" : `Cannot reach the server: ${errorText(err)}`);
  }
}

start();
