// The video view: scrub or play the stored frames with their masks overlaid (styled by source, coloured
// by object), the per-frame confidence curve under the timeline with keyframes and picks, and queueing
// a frame for labelling.

import { api } from "../api.js";
import { rleToMask } from "../rle.js";
import { $, confidenceColor, el, errorText, imageUrl, loadImage, num, objectColor, rgb, seconds, showStatus } from "./common.js";

const SOURCES = ["predicted", "rejected", "propagated", "human"]; // drawing order: human on top
const CACHE = 48; // frames whose image and masks stay in memory

/** A small LRU map. */
class Lru extends Map {
  constructor(limit) {
    super();
    this.limit = limit;
  }

  remember(key, value) {
    this.delete(key);
    this.set(key, value);
    while (this.size > this.limit) this.delete(this.keys().next().value);
    return value;
  }
}

/** Pixels of `mask` (row-major 0/1) that touch a pixel outside it (4-neighbours): its outline, inside it. */
function outline(mask, width, height) {
  const edge = new Uint8Array(mask.length);
  for (let y = 0; y < height; y += 1) {
    for (let x = 0; x < width; x += 1) {
      const i = y * width + x;
      if (!mask[i]) continue;
      if (x === 0 || y === 0 || x === width - 1 || y === height - 1 || !mask[i - 1] || !mask[i + 1] || !mask[i - width] || !mask[i + width]) edge[i] = 1;
    }
  }
  return edge;
}

/**
 * Alpha (0..255) of a mask pixel in a source's style: human filled with a solid outline, propagated
 * lighter with a dashed outline, predicted hatched with a dotted outline, rejected grey-hatched.
 */
function styleAlpha(source, x, y, onEdge, opacity) {
  const fill = Math.round(255 * opacity);
  switch (source) {
    case "human":
      return onEdge ? 255 : fill;
    case "propagated":
      return onEdge ? (((x + y) >> 2) & 1 ? Math.round(fill * 0.7) : 255) : Math.round(fill * 0.7);
    case "predicted":
      if (onEdge) return (x + y) % 3 === 0 ? 255 : 0;
      return ((x - y) % 6 + 6) % 6 < 2 ? Math.min(255, Math.round(fill * 1.3)) : 0;
    default: // rejected
      return ((x + y) % 6 + 6) % 6 < 2 ? 160 : 0;
  }
}

export class VideoView {
  /** @param {{queue: (frameIds: number[], reason: string) => Promise<object|null>}} hooks */
  constructor(hooks) {
    this.hooks = hooks;
    this.projectId = null;
    this.timeline = null;
    this.index = 0;
    this.images = new Lru(CACHE);
    this.masks = new Lru(CACHE);
    this.drawToken = 0;
    this.playing = false;
    this.sources = new Set(["human", "propagated", "predicted"]);
    this.bind();
  }

  bind() {
    $("vv-video").addEventListener("change", (e) => this.load(Number(e.target.value)));
    $("vv-scrub").addEventListener("input", (e) => this.seek(Number(e.target.value)));
    $("vv-prev").addEventListener("click", () => this.step(-1));
    $("vv-next").addEventListener("click", () => this.step(1));
    $("vv-play").addEventListener("click", () => this.togglePlay());
    $("vv-opacity").addEventListener("input", () => this.redraw());
    $("vv-threshold").addEventListener("change", () => this.renderSide());
    $("vv-queue").addEventListener("click", () => this.queueCurrent("manual"));
    for (const box of document.querySelectorAll("#view-video [data-source]")) {
      box.addEventListener("change", () => {
        if (box.checked) this.sources.add(box.dataset.source);
        else this.sources.delete(box.dataset.source);
        this.redraw();
      });
    }
    $("vv-timeline").addEventListener("click", (e) => this.timelineClick(e));
    window.addEventListener("resize", () => this.timeline && this.drawTimeline());
    document.addEventListener("keydown", (e) => {
      if ($("view-video").hidden || !this.timeline || e.target.closest("input, select, textarea")) return;
      if (e.key === "ArrowRight") this.step(1);
      else if (e.key === "ArrowLeft") this.step(-1);
      else if (e.key === " ") this.togglePlay();
      else return;
      e.preventDefault();
    });
  }

  /** Show the project's video `videoId` (default the first), at frame `frameId` when given. */
  async show(projectId, videos, videoId = null, frameId = null) {
    if (projectId !== this.projectId) {
      this.projectId = projectId;
      this.timeline = null;
      this.images.clear();
      this.masks.clear();
      try {
        const objects = await api("GET", `/projects/${projectId}/objects`);
        this.categories = new Map(objects.map((o) => [o.object_id, o.category]));
      } catch {
        this.categories = new Map();
      }
    }
    const select = $("vv-video");
    select.replaceChildren(...videos.map((v) => el("option", { value: v.id }, `${v.filename} (${v.frames} frames)`)));
    if (!videos.length) {
      $("vv-info").replaceChildren(el("dt", {}, "none"), el("dd", {}, "This project has no videos yet."));
      return;
    }
    const wanted = videoId ?? (this.timeline ? this.timeline.video.id : videos[0].id);
    select.value = String(wanted);
    if (!this.timeline || this.timeline.video.id !== wanted) await this.load(wanted, frameId);
    else if (frameId !== null) this.seekFrame(frameId);
  }

  async load(videoId, frameId = null) {
    this.stop();
    document.body.dataset.videoFrame = "";
    const timeline = await api("GET", `/projects/${this.projectId}/videos/${videoId}/timeline`);
    this.timeline = timeline;
    this.shotIndex = new Map(timeline.shots.map((s) => [s.id, s.index]));
    const n = timeline.frames.id.length;
    $("vv-scrub").max = String(Math.max(0, n - 1));
    const box = $("vv-frame");
    box.style.maxWidth = `${Math.round((timeline.video.width / timeline.video.height) * (window.innerHeight - 370))}px`;
    for (const canvas of [$("vv-image"), $("vv-overlay")]) {
      canvas.width = timeline.video.width;
      canvas.height = timeline.video.height;
    }
    const start = frameId !== null ? Math.max(0, timeline.frames.id.indexOf(frameId)) : 0;
    this.drawTimeline();
    await this.seek(start);
  }

  seekFrame(frameId) {
    const i = this.timeline ? this.timeline.frames.id.indexOf(frameId) : -1;
    if (i >= 0) this.seek(i);
  }

  step(delta) {
    if (!this.timeline) return;
    const n = this.timeline.frames.id.length;
    this.seek(Math.min(n - 1, Math.max(0, this.index + delta)));
  }

  /** Show stored frame `i` (position in the video) with its masks; resolves once it is drawn. */
  async seek(i) {
    if (!this.timeline || !this.timeline.frames.id.length) return;
    this.index = i;
    const frames = this.timeline.frames;
    const frameId = frames.id[i];
    $("vv-scrub").value = String(i);
    $("vv-pos").textContent = `${i + 1} / ${frames.id.length} · #${frames.frame_index[i]} · ${seconds(frames.timestamp[i])}`;
    this.drawTimeline();
    const token = ++this.drawToken;
    let image;
    let masks;
    try {
      [image, masks] = await Promise.all([this.image(frameId), this.frameMasks(frameId)]);
    } catch (err) {
      showStatus(`Cannot show frame ${frameId}: ${errorText(err)}`, "error");
      return;
    }
    if (token !== this.drawToken) return;
    const context = $("vv-image").getContext("2d");
    context.drawImage(image, 0, 0, this.timeline.video.width, this.timeline.video.height);
    this.current = { frameId, masks };
    this.redraw();
    this.renderSide();
    document.body.dataset.videoFrame = String(frameId);
    for (let k = 1; k <= 3 && i + k < frames.id.length; k += 1) {
      this.image(frames.id[i + k]).catch(() => {});
      this.frameMasks(frames.id[i + k]).catch(() => {});
    }
  }

  image(frameId) {
    const hit = this.images.get(frameId);
    if (hit) return hit;
    const loading = loadImage(imageUrl(frameId));
    loading.catch(() => this.images.delete(frameId));
    return this.images.remember(frameId, loading);
  }

  frameMasks(frameId) {
    const hit = this.masks.get(frameId);
    if (hit) return hit;
    const { width, height } = this.timeline.video;
    const loading = api("GET", `/frames/${frameId}/annotations`).then((answer) =>
      answer.masks.map((m) => {
        const mask = rleToMask(m.rle, height, width);
        return { ...m, mask, edge: outline(mask, width, height) };
      }),
    );
    loading.catch(() => this.masks.delete(frameId));
    return this.masks.remember(frameId, loading);
  }

  /** Draw the current frame's masks on the overlay canvas (the image canvas stays as it is). */
  redraw() {
    if (!this.current || !this.timeline) return;
    const { width, height } = this.timeline.video;
    const opacity = Number($("vv-opacity").value) / 100;
    const context = $("vv-overlay").getContext("2d");
    const out = context.createImageData(width, height);
    const data = out.data;
    const shown = this.current.masks
      .filter((m) => this.sources.has(m.source))
      .sort((a, b) => SOURCES.indexOf(a.source) - SOURCES.indexOf(b.source));
    for (const m of shown) {
      const [r, g, b] = m.source === "rejected" ? [150, 150, 150] : objectColor(m.object_id);
      for (let p = 0; p < m.mask.length; p += 1) {
        if (!m.mask[p]) continue;
        const x = p % width;
        const y = (p / width) | 0;
        const alpha = styleAlpha(m.source, x, y, m.edge[p] === 1, opacity);
        if (!alpha) continue;
        const q = 4 * p;
        data[q] = r;
        data[q + 1] = g;
        data[q + 2] = b;
        data[q + 3] = alpha;
      }
    }
    context.putImageData(out, 0, 0);
  }

  renderSide() {
    if (!this.timeline) return;
    const f = this.timeline.frames;
    const i = this.index;
    const masks = this.current && this.current.frameId === f.id[i] ? this.current.masks : [];
    const info = [
      ["frame", `${f.id[i]} (#${f.frame_index[i]})`],
      ["time", seconds(f.timestamp[i])],
      ["shot", this.shotIndex.has(f.shot_id[i]) ? this.shotIndex.get(f.shot_id[i]) : "–"],
      ["source", f.source[i] || "no masks"],
      ["confidence", num(f.confidence[i])],
      ["task", f.task[i] || "not queued"],
    ];
    $("vv-info").replaceChildren(...info.flatMap(([k, v]) => [el("dt", {}, k), el("dd", { dataset: { field: k } }, v)]));
    $("vv-objects").replaceChildren(
      ...masks.map((m) =>
        el(
          "li",
          {},
          el("span", { class: "sw", style: { background: rgb(objectColor(m.object_id)) } }),
          `object ${m.object_id}${this.categories && this.categories.get(m.object_id) ? ` · ${this.categories.get(m.object_id)}` : ""}`,
          el("span", { class: "src" }, `${m.source} ${num(m.confidence)}`),
        ),
      ),
    );
    const queued = f.task[i] === "open" || f.task[i] === "leased";
    $("vv-queue").disabled = queued || f.task[i] === "done";
    $("vv-queue").textContent = queued ? "Queued for labelling" : f.task[i] === "done" ? "Labelled (task done)" : "Queue this frame for labelling";
    this.renderLowest();
  }

  renderLowest() {
    const f = this.timeline.frames;
    const threshold = Number($("vv-threshold").value);
    const order = f.id
      .map((_, i) => i)
      .filter((i) => f.confidence[i] !== null && f.source[i] !== "human")
      .sort((a, b) => f.confidence[a] - f.confidence[b])
      .slice(0, 8);
    $("vv-lowest").replaceChildren(
      ...(order.length
        ? order.map((i) =>
            el(
              "li",
              { dataset: { frameId: f.id[i] } },
              el(
                "button",
                { type: "button", class: "small", onclick: () => this.seek(i) },
                `#${f.frame_index[i]} · ${seconds(f.timestamp[i])}`,
                el("b", { style: { color: confidenceColor(f.confidence[i]) } }, num(f.confidence[i])),
              ),
              el(
                "button",
                {
                  type: "button", class: "small", title: "Queue for labelling",
                  disabled: f.task[i] !== null, onclick: () => this.queueAt(i, f.confidence[i] < threshold ? "low confidence" : "manual"),
                },
                f.task[i] ? f.task[i] : "Queue",
              ),
            ),
          )
        : [el("li", { class: "muted" }, "No propagated or predicted masks yet.")]),
    );
  }

  async queueCurrent(reason) {
    await this.queueAt(this.index, reason);
  }

  /** Queue stored frame `i` for labelling and mark it on the timeline. */
  async queueAt(i, reason) {
    const f = this.timeline.frames;
    const answer = await this.hooks.queue([f.id[i]], reason);
    if (!answer) return;
    f.task[i] = answer.tasks[0].state;
    $("vv-pop").hidden = true;
    this.drawTimeline();
    this.renderSide();
  }

  // --- the timeline: shots, picks, confidence curve, keyframes, playhead ---------------------------

  layout() {
    const canvas = $("vv-timeline");
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
    if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
    const duration = Math.max(this.timeline.video.duration, ...this.timeline.frames.timestamp, 1e-6);
    const left = 34;
    const right = 10;
    const top = 24;
    const bottom = 20;
    return {
      canvas, ratio, width, height, top, bottom,
      x: (t) => left + (Math.min(Math.max(t, 0), duration) / duration) * (width - left - right),
      y: (c) => top + (1 - c) * (height - top - bottom),
      duration,
    };
  }

  drawTimeline() {
    if (!this.timeline) return;
    const L = this.layout();
    const ctx = L.canvas.getContext("2d");
    ctx.setTransform(L.ratio, 0, 0, L.ratio, 0, 0);
    ctx.clearRect(0, 0, L.width, L.height);
    const f = this.timeline.frames;
    this.drawBands(ctx, L);
    // the curve: breaks where a frame has no masks
    ctx.lineWidth = 1.5;
    ctx.strokeStyle = "#87b6ff";
    ctx.beginPath();
    let pen = false;
    for (let i = 0; i < f.id.length; i += 1) {
      const c = f.confidence[i];
      if (c === null) {
        pen = false;
        continue;
      }
      if (pen) ctx.lineTo(L.x(f.timestamp[i]), L.y(c));
      else ctx.moveTo(L.x(f.timestamp[i]), L.y(c));
      pen = true;
    }
    ctx.stroke();
    const threshold = Number($("vv-threshold").value);
    for (let i = 0; i < f.id.length; i += 1) {
      const c = f.confidence[i];
      if (c === null) continue;
      const cx = L.x(f.timestamp[i]);
      const cy = L.y(c);
      if (f.source[i] === "human") {
        ctx.fillStyle = "#52c41a";
        ctx.beginPath();
        ctx.moveTo(cx, cy - 5);
        ctx.lineTo(cx + 5, cy);
        ctx.lineTo(cx, cy + 5);
        ctx.lineTo(cx - 5, cy);
        ctx.fill();
      } else if (c < threshold) {
        ctx.fillStyle = f.task[i] ? "#faad14" : "#ff4d4f";
        ctx.beginPath();
        ctx.arc(cx, cy, 3, 0, 2 * Math.PI);
        ctx.fill();
      }
    }
    // threshold and playhead
    ctx.setLineDash([4, 4]);
    ctx.strokeStyle = "rgba(255, 77, 79, 0.6)";
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(L.x(0), L.y(threshold));
    ctx.lineTo(L.x(L.duration), L.y(threshold));
    ctx.stroke();
    ctx.setLineDash([]);
    const px = L.x(f.timestamp[this.index] ?? 0);
    ctx.strokeStyle = "#ffffff";
    ctx.beginPath();
    ctx.moveTo(px, 2);
    ctx.lineTo(px, L.height - L.bottom);
    ctx.stroke();
  }

  drawBands(ctx, L) {
    ctx.font = "10px system-ui, sans-serif";
    ctx.fillStyle = "#99a1ad";
    for (const c of [0, 0.5, 1]) {
      ctx.fillText(c.toFixed(1), 6, L.y(c) + 3);
      ctx.strokeStyle = "#2a2f38";
      ctx.beginPath();
      ctx.moveTo(L.x(0), L.y(c));
      ctx.lineTo(L.x(L.duration), L.y(c));
      ctx.stroke();
    }
    for (const shot of this.timeline.shots) {
      ctx.fillStyle = shot.index % 2 ? "#2f3b52" : "#3a4a66";
      ctx.fillRect(L.x(shot.start_time), 4, Math.max(1, L.x(shot.end_time) - L.x(shot.start_time)), 8);
    }
    for (const pick of this.timeline.picks) {
      const cx = L.x(pick.timestamp);
      ctx.fillStyle = "#faad14";
      ctx.beginPath();
      ctx.moveTo(cx - 5, 13);
      ctx.lineTo(cx + 5, 13);
      ctx.lineTo(cx, 21);
      ctx.fill();
    }
    ctx.fillStyle = "#99a1ad";
    ctx.fillText("0 s", L.x(0), L.height - 5);
    ctx.textAlign = "right";
    ctx.fillText(seconds(L.duration), L.x(L.duration), L.height - 5);
    ctx.textAlign = "left";
  }

  /** Go to the frame nearest the click; offer to queue it when it is under the threshold. */
  timelineClick(event) {
    if (!this.timeline || !this.timeline.frames.id.length) return;
    const L = this.layout();
    const rect = L.canvas.getBoundingClientRect();
    const mx = event.clientX - rect.left;
    const f = this.timeline.frames;
    let best = 0;
    for (let i = 1; i < f.id.length; i += 1) {
      if (Math.abs(L.x(f.timestamp[i]) - mx) < Math.abs(L.x(f.timestamp[best]) - mx)) best = i;
    }
    this.seek(best);
    const c = f.confidence[best];
    const pop = $("vv-pop");
    if (c === null || f.source[best] === "human" || c >= Number($("vv-threshold").value)) {
      pop.hidden = true;
      return;
    }
    const queued = f.task[best] !== null;
    pop.replaceChildren(
      el("span", {}, `Frame #${f.frame_index[best]} · confidence `, el("b", { style: { color: confidenceColor(c) } }, num(c))),
      el(
        "button",
        { type: "button", class: "primary small", id: "vv-pop-queue", disabled: queued, onclick: () => this.queueAt(best, "low confidence") },
        queued ? `task ${f.task[best]}` : "Queue for labelling",
      ),
    );
    pop.style.left = `${Math.min(Math.max(0, mx - 80), rect.width - 200)}px`;
    pop.style.top = `${Math.max(0, event.clientY - rect.top - 70)}px`;
    pop.hidden = false;
  }

  /** Client position of stored frame `i` on the confidence curve (for tests and scripts). */
  clientOf(i) {
    const L = this.layout();
    const rect = L.canvas.getBoundingClientRect();
    const c = this.timeline.frames.confidence[i];
    return [rect.left + L.x(this.timeline.frames.timestamp[i]), rect.top + L.y(c === null ? 0 : c)];
  }

  togglePlay() {
    if (this.playing) this.stop();
    else this.play();
  }

  async play() {
    if (!this.timeline) return;
    this.playing = true;
    $("vv-play").textContent = "Pause";
    const f = this.timeline.frames;
    const span = f.timestamp[f.timestamp.length - 1] - f.timestamp[0];
    const rate = Math.min(12, Math.max(2, span > 0 ? (f.id.length - 1) / span : 8));
    if (this.index >= f.id.length - 1) await this.seek(0);
    while (this.playing && this.index < f.id.length - 1) {
      const started = performance.now();
      await this.seek(this.index + 1);
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, 1000 / rate - (performance.now() - started))));
    }
    this.stop();
  }

  stop() {
    this.playing = false;
    $("vv-play").textContent = "Play";
  }
}
