// The embedding map: one point per embedded frame (a PCA projection computed and cached by the server),
// coloured by video, shot, labelled or picked; hover shows the thumbnail, a click selects a frame and
// "more like this" asks the FAISS index for its nearest frames; a lasso queues the frames it holds.

import { api } from "../api.js";
import { $, categorical, count, el, errorText, num, rgb, showStatus, thumbUrl } from "./common.js";

const PAD = 24;
const GRID = 64;
const GREY = [92, 99, 112];

/** Whether point (x, y) lies inside the polygon (even-odd rule). */
export function inside(polygon, x, y) {
  let hit = false;
  for (let i = 0, j = polygon.length - 1; i < polygon.length; j = i, i += 1) {
    const [xi, yi] = polygon[i];
    const [xj, yj] = polygon[j];
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) hit = !hit;
  }
  return hit;
}

export class MapView {
  /** @param {{queue: (frameIds: number[], reason: string) => Promise<object|null>, openVideo: Function}} hooks */
  constructor(hooks) {
    this.hooks = hooks;
    this.projectId = null;
    this.data = null;
    this.mode = "point";
    this.view = { zoom: 1, cx: 0.5, cy: 0.5 };
    this.selected = -1; // point position
    this.hover = -1;
    this.similar = [];
    this.lasso = null; // polygon in CSS pixels while drawing or after
    this.lassoPoints = []; // positions inside the last lasso
    this.bind();
  }

  bind() {
    const canvas = $("map-canvas");
    $("map-colour").addEventListener("change", () => this.draw());
    $("map-reset").addEventListener("click", () => {
      this.view = { zoom: 1, cx: 0.5, cy: 0.5 };
      this.draw();
    });
    for (const button of document.querySelectorAll("#view-map [data-mode]")) {
      button.addEventListener("click", () => this.setMode(button.dataset.mode));
    }
    $("map-similar").addEventListener("click", () => this.moreLikeThis());
    $("map-lasso-queue").addEventListener("click", () => this.queueLasso());
    $("map-lasso-clear").addEventListener("click", () => this.clearLasso());
    canvas.addEventListener("pointerdown", (e) => this.pointerDown(e));
    canvas.addEventListener("pointermove", (e) => this.pointerMove(e));
    canvas.addEventListener("pointerup", (e) => this.pointerUp(e));
    canvas.addEventListener("pointerleave", () => this.setHover(-1));
    canvas.addEventListener("wheel", (e) => this.wheel(e), { passive: false });
    window.addEventListener("resize", () => this.data && !$("view-map").hidden && this.draw());
    this.setMode("point");
  }

  setMode(mode) {
    this.mode = mode;
    $("map-canvas").parentElement.dataset.mode = mode;
    for (const button of document.querySelectorAll("#view-map [data-mode]")) {
      button.classList.toggle("active", button.dataset.mode === mode);
    }
    $("map-status").textContent = mode === "lasso" ? "Drag around points to lasso them." : "Hover to preview, click to select, drag to pan, wheel to zoom.";
  }

  async show(projectId) {
    document.body.dataset.mapReady = "";
    if (projectId !== this.projectId) {
      this.projectId = projectId;
      this.data = null;
      this.selected = -1;
      this.similar = [];
      this.clearLasso();
      $("map-frame").replaceChildren(el("p", { class: "muted" }, "Click a point (or hover to preview)."));
      $("map-results").replaceChildren();
      $("map-similar").disabled = true;
    }
    const started = performance.now();
    const data = await api("GET", `/projects/${projectId}/embedding-map`);
    if (projectId !== this.projectId) return;
    this.load(data);
    this.draw();
    const ms = Math.round(performance.now() - started);
    $("map-status").textContent = data.count
      ? `${count(data.count)} frames · ${data.backbone} · PCA ${(100 * (data.explained[0] + data.explained[1])).toFixed(0)}% of the variance · ${ms} ms${data.cached ? " (cached)" : ""}`
      : data.reason || "No embeddings yet.";
    document.body.dataset.mapMs = String(Math.round(performance.now())); // since the navigation started
    document.body.dataset.mapReady = "1";
  }

  load(data) {
    this.data = data;
    const n = data.frame_id.length;
    this.index = new Map(data.frame_id.map((id, i) => [id, i]));
    this.videoOrder = new Map(data.videos.map((v, i) => [v.id, i]));
    this.grid = new Map();
    for (let i = 0; i < n; i += 1) {
      const key = Math.min(GRID - 1, Math.floor(data.x[i] * GRID)) * GRID + Math.min(GRID - 1, Math.floor(data.y[i] * GRID));
      if (!this.grid.has(key)) this.grid.set(key, []);
      this.grid.get(key).push(i);
    }
  }

  // --- geometry ---------------------------------------------------------------------------------

  /** The canvas's CSS size and the data-to-pixel scale (read once per draw or event: reading an
   * element's size can force a layout, which 20,000 reads a frame would turn into seconds). */
  geometry() {
    const canvas = $("map-canvas");
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    return { width, height, scale: (Math.min(width, height) - 2 * PAD) * this.view.zoom };
  }

  size() {
    const { width, height } = this.geometry();
    return { width, height };
  }

  scale() {
    return this.geometry().scale;
  }

  /** CSS-pixel position on the canvas of point `i`. */
  toScreen(i, g = this.geometry()) {
    return [g.width / 2 + (this.data.x[i] - this.view.cx) * g.scale, g.height / 2 - (this.data.y[i] - this.view.cy) * g.scale];
  }

  toData(sx, sy, g = this.geometry()) {
    return [this.view.cx + (sx - g.width / 2) / g.scale, this.view.cy - (sy - g.height / 2) / g.scale];
  }

  /** The point nearest to a canvas position within `radius` CSS pixels, else -1. */
  nearest(sx, sy, radius = 8) {
    if (!this.data || !this.data.count) return -1;
    const g = this.geometry();
    const [dx, dy] = this.toData(sx, sy, g);
    const r = radius / g.scale;
    const reach = Math.ceil(r * GRID);
    const gx = Math.floor(dx * GRID);
    const gy = Math.floor(dy * GRID);
    let best = -1;
    let bestD = r * r;
    for (let i = gx - reach; i <= gx + reach; i += 1) {
      for (let j = gy - reach; j <= gy + reach; j += 1) {
        for (const p of this.grid.get(i * GRID + j) || []) {
          const d = (this.data.x[p] - dx) ** 2 + (this.data.y[p] - dy) ** 2;
          if (d <= bestD) {
            bestD = d;
            best = p;
          }
        }
      }
    }
    return best;
  }

  // --- drawing ------------------------------------------------------------------------------------

  colourOf(i, mode) {
    const d = this.data;
    if (mode === "video") return categorical(this.videoOrder.get(d.video_id[i]) || 0);
    if (mode === "shot") return d.shot_id[i] === null ? GREY : categorical(d.shot_id[i] * 7);
    if (mode === "labelled") return d.labelled[i] ? [82, 196, 26] : GREY;
    if (d.picked[i]) return [250, 173, 20];
    return d.queued[i] ? [76, 141, 255] : GREY;
  }

  draw() {
    const started = performance.now();
    const canvas = $("map-canvas");
    const ratio = window.devicePixelRatio || 1;
    const g = this.geometry();
    const { width, height } = g;
    if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
    if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    if (!this.data) return;
    const mode = $("map-colour").value;
    const n = this.data.frame_id.length;
    const r = n > 5000 ? 1.5 : n > 500 ? 2.5 : 4;
    // background points first (grey), the marked ones on top
    const order = [...Array(n).keys()];
    if (mode === "labelled") order.sort((a, b) => this.data.labelled[a] - this.data.labelled[b]);
    if (mode === "picked") order.sort((a, b) => this.data.picked[a] + this.data.queued[a] - this.data.picked[b] - this.data.queued[b]);
    let drawn = 0;
    let last = "";
    for (const i of order) {
      const [sx, sy] = this.toScreen(i, g);
      if (sx < -r || sy < -r || sx > width + r || sy > height + r) continue;
      const colour = rgb(this.colourOf(i, mode), 0.9);
      if (colour !== last) ctx.fillStyle = last = colour;
      if (n > 2000) {
        ctx.fillRect(sx - r, sy - r, 2 * r, 2 * r); // squares: fast for tens of thousands of points
      } else {
        ctx.beginPath();
        ctx.arc(sx, sy, r, 0, 2 * Math.PI);
        ctx.fill();
      }
      drawn += 1;
    }
    this.drawn = drawn;
    document.body.dataset.mapDrawn = String(drawn);
    this.drawMarks(ctx, r, g);
    if (this.legendFor !== mode + this.data.version) {
      this.legendFor = mode + this.data.version;
      this.renderLegend(mode);
    }
    this.drawMs = performance.now() - started;
  }

  drawMarks(ctx, r, g) {
    const ring = (i, colour, radius) => {
      const [sx, sy] = this.toScreen(i, g);
      ctx.strokeStyle = colour;
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.arc(sx, sy, radius, 0, 2 * Math.PI);
      ctx.stroke();
    };
    for (const i of this.lassoPoints) {
      const [sx, sy] = this.toScreen(i, g);
      ctx.fillStyle = "#ffffff";
      ctx.fillRect(sx - r * 0.6, sy - r * 0.6, r * 1.2, r * 1.2);
    }
    for (const s of this.similar) if (this.index.has(s.frame.id)) ring(this.index.get(s.frame.id), "#36cfc9", r + 5);
    if (this.selected >= 0) ring(this.selected, "#ffffff", r + 7);
    if (this.hover >= 0) ring(this.hover, "#ffd666", r + 4);
    if (this.lasso && this.lasso.length > 1) {
      ctx.strokeStyle = "#ffffff";
      ctx.fillStyle = "rgba(255, 255, 255, 0.06)";
      ctx.setLineDash([5, 4]);
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      ctx.moveTo(...this.lasso[0]);
      for (const p of this.lasso.slice(1)) ctx.lineTo(...p);
      ctx.closePath();
      ctx.fill();
      ctx.stroke();
      ctx.setLineDash([]);
    }
  }

  renderLegend(mode) {
    const item = (colour, label) => el("span", {}, el("i", { style: { background: rgb(colour) } }), label);
    let items;
    if (mode === "video") items = this.data.videos.slice(0, 12).map((v, i) => item(categorical(i), v.filename));
    else if (mode === "shot") items = [el("span", {}, "one colour per shot (colours repeat)")];
    else if (mode === "labelled") items = [item([82, 196, 26], "labelled (human masks)"), item(GREY, "not labelled")];
    else items = [item([250, 173, 20], "picked by a selection"), item([76, 141, 255], "queued"), item(GREY, "neither")];
    $("map-legend").replaceChildren(...items);
  }

  // --- interaction ----------------------------------------------------------------------------------

  local(event) {
    const rect = $("map-canvas").getBoundingClientRect();
    return [event.clientX - rect.left, event.clientY - rect.top];
  }

  pointerDown(event) {
    if (!this.data) return;
    $("map-canvas").setPointerCapture(event.pointerId);
    const [sx, sy] = this.local(event);
    this.press = { sx, sy, cx: this.view.cx, cy: this.view.cy, moved: false };
    if (this.mode === "lasso") {
      this.lasso = [[sx, sy]];
      this.lassoPoints = [];
    }
  }

  pointerMove(event) {
    if (!this.data) return;
    const [sx, sy] = this.local(event);
    if (!this.press) {
      this.setHover(this.nearest(sx, sy), event);
      return;
    }
    const moved = Math.hypot(sx - this.press.sx, sy - this.press.sy) > 3;
    this.press.moved = this.press.moved || moved;
    if (this.mode === "lasso") {
      const lastPoint = this.lasso[this.lasso.length - 1];
      if (Math.hypot(sx - lastPoint[0], sy - lastPoint[1]) > 2) this.lasso.push([sx, sy]);
      this.draw();
    } else if (this.press.moved) {
      const s = this.scale();
      this.view.cx = this.press.cx - (sx - this.press.sx) / s;
      this.view.cy = this.press.cy + (sy - this.press.sy) / s;
      this.draw();
    }
  }

  pointerUp(event) {
    const press = this.press;
    this.press = null;
    if (!press || !this.data) return;
    const [sx, sy] = this.local(event);
    if (this.mode === "lasso") {
      this.finishLasso();
    } else if (!press.moved) {
      const i = this.nearest(sx, sy);
      if (i >= 0) this.select(i);
    }
  }

  wheel(event) {
    if (!this.data) return;
    event.preventDefault();
    const [sx, sy] = this.local(event);
    const [dx, dy] = this.toData(sx, sy);
    const factor = Math.exp(-event.deltaY * 0.0015);
    this.view.zoom = Math.min(200, Math.max(0.5, this.view.zoom * factor));
    const [nx, ny] = this.toData(sx, sy);
    this.view.cx += dx - nx;
    this.view.cy += dy - ny;
    this.draw();
  }

  setHover(i, event = null) {
    const tip = $("map-tip");
    if (i !== this.hover) {
      this.hover = i;
      this.draw();
    }
    if (i < 0 || !event) {
      tip.hidden = true;
      return;
    }
    const d = this.data;
    const id = d.frame_id[i];
    if (tip.dataset.frameId !== String(id)) {
      const video = d.videos.find((v) => v.id === d.video_id[i]);
      tip.replaceChildren(
        el("img", { src: thumbUrl(id), alt: `frame ${id}` }),
        el("div", {}, `frame ${id} · ${video ? video.filename : d.video_id[i]}`),
        el("div", { class: "muted" }, [d.labelled[i] ? "labelled" : "", d.picked[i] ? "picked" : "", d.queued[i] ? "queued" : ""].filter(Boolean).join(" · ") || `shot id ${d.shot_id[i] ?? "–"}`),
      );
      tip.dataset.frameId = String(id);
    }
    const [sx, sy] = this.local(event);
    const { width } = this.size();
    tip.style.left = `${sx + 180 > width ? sx - 176 : sx + 14}px`;
    tip.style.top = `${Math.max(4, sy - 60)}px`;
    tip.hidden = false;
  }

  select(i) {
    this.selected = i;
    const d = this.data;
    const id = d.frame_id[i];
    const video = d.videos.find((v) => v.id === d.video_id[i]);
    $("map-frame").replaceChildren(
      el("img", { src: thumbUrl(id), alt: `frame ${id}` }),
      el("p", {}, `Frame ${id} · ${video ? video.filename : d.video_id[i]} · shot id ${d.shot_id[i] ?? "–"}`),
      el("p", { class: "muted" }, [d.labelled[i] ? "labelled" : "not labelled", d.picked[i] ? "picked" : null, d.queued[i] ? "queued" : null].filter(Boolean).join(" · ")),
      el("button", { type: "button", class: "small", onclick: () => this.hooks.openVideo(d.video_id[i], id) }, "Open in the video view"),
    );
    $("map-similar").disabled = false;
    document.body.dataset.mapSelected = String(id);
    this.draw();
  }

  async moreLikeThis() {
    if (this.selected < 0) return;
    const id = this.data.frame_id[this.selected];
    const k = Math.min(100, Math.max(1, Number($("map-k").value) || 8));
    try {
      this.similar = await api("GET", `/frames/${id}/similar?k=${k}`);
    } catch (err) {
      showStatus(`More like this failed: ${errorText(err)}`, "error");
      return;
    }
    $("map-results").replaceChildren(
      ...this.similar.map((s) =>
        el(
          "figure",
          { dataset: { frameId: s.frame.id }, onclick: () => this.index.has(s.frame.id) && this.select(this.index.get(s.frame.id)) },
          el("img", { src: s.frame.thumb_url, alt: `frame ${s.frame.id}` }),
          el("figcaption", {}, `#${s.frame.id} · ${num(s.similarity, 3)}`),
        ),
      ),
    );
    document.body.dataset.mapSimilar = this.similar.map((s) => s.frame.id).join(",");
    this.draw();
  }

  finishLasso() {
    if (!this.lasso || this.lasso.length < 3) {
      this.clearLasso();
      return;
    }
    const polygon = this.lasso;
    const found = [];
    const g = this.geometry();
    for (let i = 0; i < this.data.frame_id.length; i += 1) {
      const [sx, sy] = this.toScreen(i, g);
      if (inside(polygon, sx, sy)) found.push(i);
    }
    this.lassoPoints = found;
    const already = found.filter((i) => this.data.queued[i] || this.data.labelled[i]).length;
    $("map-lasso").hidden = false;
    $("map-lasso-text").textContent = `${count(found.length)} frames in the lasso (${count(already)} queued or labelled already).`;
    $("map-lasso-queue").disabled = !found.length;
    document.body.dataset.mapLasso = String(found.length);
    this.draw();
  }

  clearLasso() {
    this.lasso = null;
    this.lassoPoints = [];
    $("map-lasso").hidden = true;
    document.body.dataset.mapLasso = "";
    if (this.data) this.draw();
  }

  async queueLasso() {
    const ids = this.lassoPoints.map((i) => this.data.frame_id[i]);
    if (!ids.length) return;
    $("map-lasso-queue").disabled = true;
    let created = 0;
    for (let lo = 0; lo < ids.length; lo += 5000) {
      const answer = await this.hooks.queue(ids.slice(lo, lo + 5000), "lasso");
      if (!answer) break;
      created += answer.created;
      for (const t of answer.tasks) {
        const i = this.index.get(t.frame_id);
        if (i !== undefined && (t.state === "open" || t.state === "leased")) this.data.queued[i] = true;
      }
    }
    $("map-lasso-text").textContent = `${count(created)} frames queued, ${count(ids.length - created)} had a task already.`;
    document.body.dataset.mapQueued = String(created);
    this.draw();
  }

  /** Test hooks: the frame ids in point order and the client position of a frame's point. */
  hooksForTests() {
    return {
      count: () => (this.data ? this.data.frame_id.length : 0),
      drawn: () => this.drawn || 0,
      frameIds: () => (this.data ? [...this.data.frame_id] : []),
      clientOf: (frameId) => {
        const rect = $("map-canvas").getBoundingClientRect();
        const [sx, sy] = this.toScreen(this.index.get(frameId));
        return [rect.left + sx, rect.top + sy];
      },
      lassoIds: () => this.lassoPoints.map((i) => this.data.frame_id[i]),
      redraw: () => this.draw(),
    };
  }
}
