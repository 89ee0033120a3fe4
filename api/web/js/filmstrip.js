// The filmstrip: the task's frame among its neighbours, each thumbnail with its stored masks and
// their confidence, so that drift of a propagated mask is visible at a glance.

import { api } from "./api.js";
import { colorOf } from "./editor.js";
import { rleToMask } from "./rle.js";

const SOURCE_RANK = { human: 0, rejected: 1, propagated: 2, predicted: 3 };
const THUMB_HEIGHT = 96;

/** Per object, the mask to show: human, rejected (sent back by a reviewer), propagated, then predicted. */
export function bestMasks(masks) {
  const best = new Map();
  for (const m of masks) {
    const rank = SOURCE_RANK[m.source] ?? 9;
    const seen = best.get(m.object_id);
    if (!seen || rank < (SOURCE_RANK[seen.source] ?? 9)) best.set(m.object_id, m);
  }
  return [...best.values()].sort((a, b) => a.object_id - b.object_id);
}

/** A short label and a level (good, fair, poor, none) for the masks of a frame. */
export function confidenceOf(masks) {
  if (!masks.length) return { text: "no mask", level: "none", value: null };
  if (masks.some((m) => m.source === "human")) return { text: "human", level: "good", value: 1 };
  if (masks.some((m) => m.source === "rejected")) return { text: "rejected", level: "poor", value: 0 };
  const low = Math.min(...masks.map((m) => m.confidence));
  const source = masks.find((m) => m.confidence === low).source;
  const short = source === "propagated" ? "prop" : source === "predicted" ? "pred" : source;
  const level = low >= 0.8 ? "good" : low >= 0.5 ? "fair" : "poor";
  return { text: `${short} ${low.toFixed(2)}`, level, value: low };
}

function loadImage(src) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error(`cannot load ${src}`));
    img.src = src;
  });
}

/** Draw `masks` ({object_id, rle}) of a `width x height` frame over `ctx`, scaled to (w, h). */
function drawMasks(ctx, masks, width, height, w, h) {
  const layer = document.createElement("canvas");
  layer.width = width;
  layer.height = height;
  const lctx = layer.getContext("2d");
  const data = lctx.createImageData(width, height);
  for (const m of masks) {
    let mask;
    try {
      mask = rleToMask(m.rle, height, width);
    } catch {
      continue;
    }
    const v = parseInt(colorOf(m.object_id).slice(1), 16);
    for (let i = 0; i < mask.length; i += 1) {
      if (!mask[i]) continue;
      data.data[i * 4] = (v >> 16) & 255;
      data.data[i * 4 + 1] = (v >> 8) & 255;
      data.data[i * 4 + 2] = v & 255;
      data.data[i * 4 + 3] = 255;
    }
  }
  lctx.putImageData(data, 0, 0);
  ctx.globalAlpha = 0.55;
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(layer, 0, 0, w, h);
  ctx.globalAlpha = 1;
}

export class Filmstrip {
  /** @param {HTMLElement} container */
  constructor(container) {
    this.container = container;
    this.token = 0;
    this.current = null; // {canvas, w, h}
  }

  clear() {
    this.token += 1;
    this.container.replaceChildren();
    this.current = null;
  }

  /**
   * Show the task's frame and its neighbours.
   * @param {object} detail GET /tasks/{id} answer
   * @param {import("./editor.js").Editor} editor the editor holding the task's frame (drawn live)
   */
  show(detail, editor) {
    this.clear();
    const token = this.token;
    const frames = [...detail.neighbours, { ...detail.frame, current: true }].sort(
      (a, b) => a.frame_index - b.frame_index,
    );
    for (const frame of frames) {
      const card = document.createElement("figure");
      card.className = frame.current ? "film current" : "film";
      card.dataset.frameId = frame.id;
      const canvas = document.createElement("canvas");
      const h = THUMB_HEIGHT;
      const w = Math.max(24, Math.round((frame.width / frame.height) * h));
      const dpr = window.devicePixelRatio || 1;
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
      canvas.style.width = `${w}px`;
      canvas.style.height = `${h}px`;
      const caption = document.createElement("figcaption");
      const index = document.createElement("span");
      index.className = "index";
      index.textContent = `#${frame.frame_index}`;
      index.title = frame.current ? "this task's frame" : `frame ${frame.frame_index}`;
      const conf = document.createElement("span");
      conf.className = "conf";
      conf.textContent = "…";
      caption.append(index, conf);
      const bar = document.createElement("div");
      bar.className = "confbar";
      const fill = document.createElement("div");
      bar.append(fill);
      card.style.width = `${w + 10}px`;
      card.append(canvas, bar, caption);
      this.container.append(card);
      if (frame.current) {
        const pre = bestMasks(detail.pre_annotation);
        const c = confidenceOf(pre);
        this.setConfidence(card, conf, fill, c);
        this.current = { canvas, w, h, dpr };
        this.drawCurrent(editor);
        requestAnimationFrame(() => card.scrollIntoView({ block: "nearest", inline: "center" }));
      } else {
        this.fillNeighbour(token, frame, canvas, w, h, dpr, card, conf, fill);
      }
    }
  }

  setConfidence(card, conf, fill, c) {
    conf.textContent = c.text;
    card.dataset.level = c.level;
    card.title = c.value === null ? "no stored mask" : `lowest object confidence ${c.text}`;
    fill.style.width = `${Math.round((c.value ?? 0) * 100)}%`;
  }

  async fillNeighbour(token, frame, canvas, w, h, dpr, card, conf, fill) {
    try {
      const [img, found] = await Promise.all([loadImage(frame.thumb_url), api("GET", `/frames/${frame.id}/annotations`)]);
      if (token !== this.token) return;
      const ctx = canvas.getContext("2d");
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.drawImage(img, 0, 0, w, h);
      const masks = bestMasks(found.masks);
      drawMasks(ctx, masks, frame.width, frame.height, w, h);
      this.setConfidence(card, conf, fill, confidenceOf(masks));
    } catch (err) {
      if (token !== this.token) return;
      conf.textContent = "unavailable";
      card.title = String(err.message || err);
    }
  }

  /** Redraw the task's own card from the editor (live edits). */
  drawCurrent(editor) {
    if (!this.current || !editor.image) return;
    const { canvas, w, h, dpr } = this.current;
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(editor.image, 0, 0, w, h);
    for (const id of editor.objectIds()) {
      const obj = editor.objects.get(id);
      if (!obj.visible || !obj.area) continue;
      ctx.globalAlpha = 0.9; // the layers are translucent inside already: about the neighbours' 0.55
      ctx.drawImage(obj.layer, 0, 0, w, h);
    }
    ctx.globalAlpha = 1;
  }
}
