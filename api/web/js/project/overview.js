// The project overview: totals, every video on a timeline (shots, picks by reason and utility, labelled
// frames), the queue by state and per annotator, the picks, and the jobs (live, from the poller).

import { api } from "../api.js";
import { $, categorical, count, el, num, rgb, seconds, svg, thumbUrl } from "./common.js";

const STATE_COLOURS = { open: "#4c8dff", leased: "#faad14", expired: "#ff7a45", done: "#52c41a" };
const HEIGHT = 58;
const PICK_ROWS = 100; // rows of the picks table (every pick is on the timelines)

const plural = (n, word) => `${count(n)} ${word}${n === 1 ? "" : "s"}`;

/** A stable colour per pick reason: reasons sorted by name. */
export function reasonColours(picks) {
  const names = [...new Set(picks.map((p) => p.reason))].sort();
  return new Map(names.map((name, i) => [name, categorical(i + 1)]));
}

export class OverviewView {
  /** @param {{openVideo: (videoId: number, frameId?: number) => void}} hooks */
  constructor(hooks) {
    this.hooks = hooks;
    this.data = null;
    this.projectId = null;
    let timer = 0;
    window.addEventListener("resize", () => {
      clearTimeout(timer);
      timer = setTimeout(() => this.data && this.renderVideos(), 150);
    });
  }

  async show(projectId) {
    this.projectId = projectId;
    document.body.dataset.overviewReady = "";
    const data = await api("GET", `/projects/${projectId}/overview`);
    if (projectId !== this.projectId) return;
    this.data = data;
    this.render();
    document.body.dataset.overviewMs = String(Math.round(performance.now())); // since the navigation started
    document.body.dataset.overviewReady = "1";
  }

  /** Fetch again (a job finished) without clearing what is shown. */
  async refresh() {
    if (this.projectId !== null) await this.show(this.projectId);
  }

  render() {
    const d = this.data;
    const picks = d.videos.flatMap((v) => v.picks).sort((a, b) => b.selection_id - a.selection_id || a.rank - b.rank);
    this.colours = reasonColours(picks);
    const q = d.queue;
    const totals = [
      ["videos", d.totals.videos], ["frames", d.totals.frames], ["shots", d.totals.shots],
      ["labelled frames", d.totals.labelled_frames], ["selections", d.totals.selections], ["picks", d.totals.picks],
      ["open tasks", q.open + q.expired], ["done tasks", q.done],
    ];
    $("ov-totals").replaceChildren(
      ...totals.map(([label, value]) => el("div", { class: "pv-total" }, el("b", {}, count(value)), el("span", {}, label))),
    );
    $("ov-legend").replaceChildren(
      ...[...this.colours].map(([name, colour]) => el("span", {}, el("i", { style: { background: rgb(colour) } }), name)),
      el("span", {}, el("i", { style: { background: "#95de64", borderRadius: "0", width: "2px" } }), "labelled"),
    );
    this.renderVideos();
    this.renderQueue();
    this.renderPicks(picks);
  }

  renderVideos() {
    const videos = this.data.videos;
    const list = $("ov-videos");
    if (!videos.length) {
      list.replaceChildren(el("p", { class: "muted" }, "No videos yet: upload one under Upload & run."));
      return;
    }
    const width = Math.max(300, list.clientWidth - 240);
    const maxUtility = Math.max(1e-9, ...videos.flatMap((v) => v.picks.map((p) => Math.abs(p.utility))));
    list.replaceChildren(...videos.map((video) => this.videoRow(video, width, maxUtility)));
  }

  videoRow(video, width, maxUtility) {
    const duration = Math.max(video.duration, 1e-6);
    const x = (t) => 4 + (Math.min(Math.max(t, 0), duration) / duration) * (width - 8);
    const drawing = svg("svg", { viewBox: `0 0 ${width} ${HEIGHT}`, role: "img", "aria-label": `timeline of ${video.filename}` });
    for (const shot of video.shots) {
      const x0 = x(shot.start_time);
      const w = Math.max(1, x(shot.end_time) - x0);
      const fill = shot.index % 2 ? "#2f3b52" : "#3a4a66";
      drawing.append(
        svg("rect", { class: "shot", x: x0, y: 16, width: w, height: 22, fill }, svg("title", {}, `shot ${shot.index}: ${seconds(shot.start_time)}–${seconds(shot.end_time)}, ${shot.frames} frames`)),
      );
      if (w > 46) drawing.append(svg("text", { class: "axis", x: x0 + 4, y: 31 }, `shot ${shot.index}`));
    }
    if (!video.shots.length) drawing.append(svg("rect", { class: "shot", x: 4, y: 16, width: width - 8, height: 22, fill: "#2f3b52" }));
    for (const t of video.labelled) drawing.append(svg("line", { class: "lab", x1: x(t), x2: x(t), y1: 14, y2: 40 }));
    for (const pick of [...video.picks].reverse()) {
      const size = 3.5 + 4.5 * Math.sqrt(Math.abs(pick.utility) / maxUtility);
      const cx = x(pick.timestamp);
      const points = `${cx - size},${13 - 1.6 * size} ${cx + size},${13 - 1.6 * size} ${cx},13`;
      const marker = svg(
        "polygon",
        { class: "pick", points, fill: rgb(this.colours.get(pick.reason)), "data-frame-id": pick.frame_id },
        svg("title", {}, `frame ${pick.frame_index} at ${seconds(pick.timestamp)} · ${pick.reason} · utility ${num(pick.utility, 3)} · selection ${pick.selection_id} rank ${pick.rank} · task ${pick.task_state || "not queued"}`),
      );
      marker.addEventListener("click", () => this.hooks.openVideo(video.id, pick.frame_id));
      drawing.append(marker);
    }
    drawing.append(
      svg("text", { class: "axis", x: 4, y: HEIGHT - 4 }, "0 s"),
      svg("text", { class: "axis", x: width - 4, y: HEIGHT - 4, "text-anchor": "end" }, seconds(video.duration)),
    );
    const sampling = video.sample_fps ? `${num(video.sample_fps, 2)} fps` : `every ${video.sample_stride}`;
    return el(
      "div",
      { class: "pv-video", dataset: { videoId: video.id } },
      el(
        "div",
        {},
        el("div", { class: "name" }, video.filename),
        el("div", { class: "meta" }, `${count(video.frames)} frames (${sampling}) · ${seconds(video.duration)}`),
        el("div", { class: "meta" }, `${plural(video.shots.length, "shot")} · ${plural(video.picks.length, "pick")} · ${video.labelled.length} labelled · ${video.width}×${video.height}`),
        el("button", { type: "button", class: "small open", onclick: () => this.hooks.openVideo(video.id) }, "Open video"),
      ),
      drawing,
    );
  }

  /** Queue counts by state (also called by the poller with fresh counts). */
  renderQueue(queue = null) {
    if (!this.data) return;
    if (queue) this.data.queue = queue;
    const q = this.data.queue;
    const total = Math.max(1, q.total);
    $("ov-queue").replaceChildren(
      ...["open", "leased", "expired", "done"].map((state) =>
        el(
          "div",
          { class: "pv-bar", dataset: { state } },
          el("span", {}, state),
          el("span", { class: "track" }, el("span", { class: "fill", style: { display: "block", width: `${(100 * q[state]) / total}%`, background: STATE_COLOURS[state] } })),
          el("span", { class: "n" }, count(q[state])),
        ),
      ),
    );
    const rows = this.data.annotators.map((a) =>
      el(
        "tr",
        {},
        el("td", {}, a.key_id === 0 ? "library / CLI" : `${a.name || "key"} · ${a.prefix || a.key_id}…`),
        el("td", {}, count(a.leased)),
        el("td", {}, count(a.done)),
      ),
    );
    $("ov-annotators").replaceChildren(
      el("thead", {}, el("tr", {}, el("th", {}, "annotator"), el("th", {}, "leased"), el("th", {}, "done"))),
      el("tbody", {}, rows.length ? rows : el("tr", { class: "empty-row" }, el("td", { colspan: 3 }, "Nobody has labelled yet."))),
    );
  }

  renderPicks(picks) {
    const names = new Map(this.data.videos.map((v) => [v.id, v.filename]));
    const shown = Math.min(picks.length, PICK_ROWS);
    $("ov-picks-note").textContent = `· ${count(shown)} of ${count(this.data.totals.picks)}, newest selection first`;
    const rows = picks.slice(0, PICK_ROWS).map((p) =>
      el(
        "tr",
        { dataset: { frameId: p.frame_id } },
        el("td", {}, el("img", { src: thumbUrl(p.frame_id), alt: "", loading: "lazy" })),
        el("td", {}, names.get(p.video_id) || p.video_id),
        el("td", {}, `${seconds(p.timestamp)} (#${p.frame_index})`),
        el("td", {}, el("span", { class: "pv-reason" }, el("i", { style: { background: rgb(this.colours.get(p.reason)) } }), p.reason)),
        el("td", {}, num(p.utility, 3)),
        el("td", {}, `${p.selection_id}/${p.rank}`),
        el("td", {}, el("span", { class: "pv-state", dataset: { state: p.task_state || "none" } }, p.task_state || "not queued")),
        el("td", {}, el("button", { type: "button", class: "small", onclick: () => this.hooks.openVideo(p.video_id, p.frame_id) }, "View")),
      ),
    );
    $("ov-picks").replaceChildren(
      el("thead", {}, el("tr", {}, ...["", "video", "time", "reason", "utility", "sel/rank", "task", ""].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows.length ? rows : el("tr", { class: "empty-row" }, el("td", { colspan: 8 }, "No picks yet: start a selection under Upload & run."))),
    );
  }
}
