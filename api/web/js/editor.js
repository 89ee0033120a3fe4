// The mask editor: one frame on a canvas with zoom and pan, a mask layer per object, brush,
// eraser and click-to-segment tools, and undo/redo of every mask change.
//
// Coordinates: "image" coordinates are frame pixels (x right, y down); the view maps them to the
// canvas by `screen = image * scale + (tx, ty)` in CSS pixels.

import { area } from "./rle.js";

/** Object colours, by object id (1-based, cycling): distinct on dark and light frames. */
export const PALETTE = [
  "#ff4d4f", "#36cfc9", "#ffc53d", "#597ef7", "#73d13d", "#f759ab",
  "#ff9c6e", "#9254de", "#bae637", "#40a9ff", "#ffd666", "#5cdbd3",
];

/** The display colour of an object id. */
export function colorOf(id) {
  return PALETTE[(id - 1) % PALETTE.length];
}

function rgbOf(hex) {
  const v = parseInt(hex.slice(1), 16);
  return [(v >> 16) & 255, (v >> 8) & 255, v & 255];
}

const MAX_UNDO = 50;
const FILL_ALPHA = 140; // inside a mask; its outline is opaque
const DEFAULT_OPACITY = 0.75;
const MIN_SCALE = 0.05;
const MAX_SCALE = 64;

export class Editor {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {{onChange?: Function, onStatus?: Function, onSegment?: Function}} hooks
   *   onChange(): objects, masks or the selection changed (not called for every brush dab);
   *   onStatus(text, kind): a message for the user;
   *   onSegment(points, priorMask, objectId): resolves to a new mask (Uint8Array) or null.
   */
  constructor(canvas, hooks = {}) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.hooks = hooks;
    this.image = null;
    this.width = 0;
    this.height = 0;
    this.objects = new Map();
    this.selected = null;
    this.tool = "brush";
    this.brushSize = 8;
    this.showMasks = true;
    this.undoStack = [];
    this.redoStack = [];
    this.points = [];
    this.view = { scale: 1, tx: 0, ty: 0 };
    this.pointer = null; // last pointer position over the canvas, CSS px
    this.drag = null; // {kind: "pan"|"paint", ...}
    this.spaceHeld = false;
    this.loadToken = 0;
    this.segmentSeq = 0;
    this.drawQueued = false;
    this.attach();
    new ResizeObserver(() => this.resize()).observe(canvas.parentElement);
    this.resize();
  }

  // --- loading -------------------------------------------------------------------------------

  /**
   * Show a frame and its objects.
   * @param {HTMLImageElement} image
   * @param {number} width
   * @param {number} height
   * @param {{id: number, mask?: Uint8Array, source?: string, confidence?: number}[]} objects
   */
  load(image, width, height, objects) {
    this.loadToken += 1;
    this.image = image;
    this.width = width;
    this.height = height;
    this.objects = new Map();
    this.undoStack = [];
    this.redoStack = [];
    this.points = [];
    this.drag = null;
    for (const o of objects) this.addObject(o.id, o.mask, o.source, o.confidence, false);
    this.selected = objects.length ? objects[0].id : null;
    this.fit();
    this.changed();
  }

  /** Forget the frame (no task). */
  clear() {
    this.loadToken += 1;
    this.image = null;
    this.objects = new Map();
    this.selected = null;
    this.undoStack = [];
    this.redoStack = [];
    this.points = [];
    this.drag = null;
    this.requestDraw();
    this.changed();
  }

  get hasFrame() {
    return this.image !== null;
  }

  // --- objects -------------------------------------------------------------------------------

  /** Add an object (a new empty one by default); returns it. */
  addObject(id, mask = null, source = "new", confidence = null, notify = true) {
    if (id === undefined || id === null) {
      id = Math.max(0, ...this.objects.keys()) + 1;
    }
    if (id > 255) {
      this.status("at most 255 objects per frame", "warn");
      return null;
    }
    const layer = document.createElement("canvas");
    layer.width = this.width;
    layer.height = this.height;
    const layerCtx = layer.getContext("2d");
    const obj = {
      id,
      color: colorOf(id),
      rgb: rgbOf(colorOf(id)),
      mask: mask ? mask : new Uint8Array(this.width * this.height),
      layer,
      layerCtx,
      imageData: layerCtx.createImageData(this.width, this.height),
      visible: true,
      opacity: DEFAULT_OPACITY,
      source,
      confidence,
      edited: false,
      area: 0,
    };
    this.objects.set(id, obj);
    this.repaintLayer(obj, 0, 0, this.width, this.height);
    obj.area = area(obj.mask);
    if (notify) {
      this.select(id);
    }
    return obj;
  }

  /** Select an object by id. */
  select(id) {
    if (!this.objects.has(id)) return;
    if (this.selected !== id) this.points = [];
    this.selected = id;
    this.requestDraw();
    this.changed();
  }

  /** The object ids in list order. */
  objectIds() {
    return [...this.objects.keys()].sort((a, b) => a - b);
  }

  selectedObject() {
    return this.selected === null ? null : this.objects.get(this.selected) || null;
  }

  setVisible(id, visible) {
    const obj = this.objects.get(id);
    if (!obj) return;
    obj.visible = visible;
    this.requestDraw();
    this.changed();
  }

  setOpacity(id, opacity) {
    const obj = this.objects.get(id);
    if (!obj) return;
    obj.opacity = opacity;
    this.requestDraw();
    this.hooks.onRedraw?.();
  }

  toggleMasks() {
    this.showMasks = !this.showMasks;
    this.requestDraw();
    this.changed();
  }

  // --- tools ---------------------------------------------------------------------------------

  setTool(tool) {
    this.tool = tool;
    if (tool !== "click") this.points = [];
    this.updateCursor();
    this.requestDraw();
    this.changed();
  }

  setBrushSize(size) {
    this.brushSize = Math.max(1, Math.min(200, Math.round(size)));
    this.requestDraw();
    this.changed();
  }

  /** Replace an object's mask as one undoable step. */
  applyMask(id, mask, what) {
    const obj = this.objects.get(id);
    if (!obj) return;
    const before = obj.mask.slice();
    obj.mask.set(mask);
    this.pushUndo({ id, before, after: obj.mask.slice(), what });
    this.afterMaskChange(obj);
  }

  /** Empty the selected object's mask (undoable). */
  clearSelected() {
    const obj = this.selectedObject();
    if (!obj || obj.area === 0) return;
    this.applyMask(obj.id, new Uint8Array(obj.mask.length), "clear");
  }

  undo() {
    const step = this.undoStack.pop();
    if (!step) return;
    const obj = this.objects.get(step.id);
    obj.mask.set(step.before);
    this.redoStack.push(step);
    this.points = [];
    this.afterMaskChange(obj);
    this.status(`undid ${step.what}`, "info");
  }

  redo() {
    const step = this.redoStack.pop();
    if (!step) return;
    const obj = this.objects.get(step.id);
    obj.mask.set(step.after);
    this.undoStack.push(step);
    this.afterMaskChange(obj);
    this.status(`redid ${step.what}`, "info");
  }

  pushUndo(step) {
    this.undoStack.push(step);
    if (this.undoStack.length > MAX_UNDO) this.undoStack.shift();
    this.redoStack = [];
  }

  afterMaskChange(obj) {
    obj.edited = true;
    obj.area = area(obj.mask);
    this.repaintLayer(obj, 0, 0, this.width, this.height);
    this.requestDraw();
    this.changed();
  }

  /** Clear the click-to-segment points. */
  clearPoints() {
    this.points = [];
    this.requestDraw();
  }

  async segmentAt(x, y, positive) {
    if (!this.hooks.onSegment || !this.image) return;
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    let obj = this.selectedObject();
    if (!obj) obj = this.addObject();
    if (!obj) return;
    const point = { x: Math.floor(x), y: Math.floor(y), positive };
    this.points.push(point);
    this.requestDraw();
    const seq = ++this.segmentSeq;
    const token = this.loadToken;
    const prior = obj.area > 0 ? obj.mask.slice() : null;
    const mask = await this.hooks.onSegment(this.points.map((p) => ({ ...p })), prior, obj.id);
    if (token !== this.loadToken) return;
    if (!mask) {
      this.points = this.points.filter((p) => p !== point);
      this.requestDraw();
      return;
    }
    if (seq !== this.segmentSeq) return; // a newer click is on its way
    this.applyMask(obj.id, mask, "click-to-segment");
  }

  // --- painting ------------------------------------------------------------------------------

  /** Paint (value 1) or erase (0) a disc of the brush size at image point (cx, cy); returns whether anything changed. */
  dab(obj, cx, cy, value) {
    const r = this.brushSize / 2;
    const x0 = Math.max(0, Math.floor(cx - r));
    const x1 = Math.min(this.width - 1, Math.ceil(cx + r));
    const y0 = Math.max(0, Math.floor(cy - r));
    const y1 = Math.min(this.height - 1, Math.ceil(cy + r));
    const r2 = r * r;
    const w = this.width;
    let changed = false;
    for (let y = y0; y <= y1; y += 1) {
      const dy = y + 0.5 - cy;
      for (let x = x0; x <= x1; x += 1) {
        const dx = x + 0.5 - cx;
        if (dx * dx + dy * dy <= r2 && obj.mask[y * w + x] !== value) {
          obj.mask[y * w + x] = value;
          changed = true;
        }
      }
    }
    // the pixel under the pointer always takes the brush, whatever its size
    const px = Math.floor(cx);
    const py = Math.floor(cy);
    if (px >= 0 && py >= 0 && px < this.width && py < this.height && obj.mask[py * w + px] !== value) {
      obj.mask[py * w + px] = value;
      changed = true;
    }
    if (changed && x1 >= x0 && y1 >= y0) this.repaintLayer(obj, x0, y0, x1 + 1, y1 + 1);
    return changed;
  }

  /** Paint along the segment from (ax, ay) to (bx, by) in image coordinates. */
  stroke(obj, ax, ay, bx, by, value) {
    const length = Math.hypot(bx - ax, by - ay);
    const step = Math.max(0.5, this.brushSize / 4);
    const n = Math.max(1, Math.ceil(length / step));
    let changed = false;
    for (let i = 1; i <= n; i += 1) {
      const t = i / n;
      changed = this.dab(obj, ax + (bx - ax) * t, ay + (by - ay) * t, value) || changed;
    }
    return changed;
  }

  /**
   * Copy the mask into the object's coloured layer over the rectangle [x0, x1) x [y0, y1) (and the
   * pixels around it, whose edges may have changed): inside pixels are translucent, edge pixels
   * (a 4-neighbour outside the mask) opaque, so the outline stays visible over any frame.
   */
  repaintLayer(obj, x0, y0, x1, y1) {
    if (!this.width || !this.height) return;
    const w = this.width;
    const h = this.height;
    x0 = Math.max(0, x0 - 1);
    y0 = Math.max(0, y0 - 1);
    x1 = Math.min(w, x1 + 1);
    y1 = Math.min(h, y1 + 1);
    const data = obj.imageData.data;
    const mask = obj.mask;
    const [r, g, b] = obj.rgb;
    for (let y = y0; y < y1; y += 1) {
      for (let x = x0; x < x1; x += 1) {
        const i = y * w + x;
        const o = i * 4;
        if (mask[i]) {
          const edge =
            (x > 0 && !mask[i - 1]) || (x < w - 1 && !mask[i + 1]) || (y > 0 && !mask[i - w]) || (y < h - 1 && !mask[i + w]);
          data[o] = r;
          data[o + 1] = g;
          data[o + 2] = b;
          data[o + 3] = edge ? 255 : FILL_ALPHA;
        } else {
          data[o + 3] = 0;
        }
      }
    }
    obj.layerCtx.putImageData(obj.imageData, 0, 0, x0, y0, x1 - x0, y1 - y0);
  }

  // --- view ----------------------------------------------------------------------------------

  resize() {
    const parent = this.canvas.parentElement;
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, parent.clientWidth);
    const h = Math.max(1, parent.clientHeight);
    const first = this.canvas.width <= 1;
    this.canvas.width = Math.round(w * dpr);
    this.canvas.height = Math.round(h * dpr);
    this.canvas.style.width = `${w}px`;
    this.canvas.style.height = `${h}px`;
    if (first && this.image) this.fit();
    this.requestDraw();
  }

  /** Fit the frame in the view. */
  fit() {
    if (!this.width) return;
    const cw = this.canvas.clientWidth || 1;
    const ch = this.canvas.clientHeight || 1;
    const scale = Math.min(cw / this.width, ch / this.height) * 0.92;
    this.view = { scale, tx: (cw - this.width * scale) / 2, ty: (ch - this.height * scale) / 2 };
    this.requestDraw();
  }

  /** Zoom by `factor` keeping the image point under (sx, sy) (CSS px) in place. */
  zoomAt(sx, sy, factor) {
    const { scale, tx, ty } = this.view;
    const next = Math.min(MAX_SCALE, Math.max(MIN_SCALE, scale * factor));
    const k = next / scale;
    this.view = { scale: next, tx: sx - (sx - tx) * k, ty: sy - (sy - ty) * k };
    this.requestDraw();
  }

  toImage(sx, sy) {
    const { scale, tx, ty } = this.view;
    return [(sx - tx) / scale, (sy - ty) / scale];
  }

  /** Where an image point is on the page (client px): for tests and tooltips. */
  toClient(ix, iy) {
    const rect = this.canvas.getBoundingClientRect();
    const { scale, tx, ty } = this.view;
    return [rect.left + ix * scale + tx, rect.top + iy * scale + ty];
  }

  requestDraw() {
    if (this.drawQueued) return;
    this.drawQueued = true;
    requestAnimationFrame(() => {
      this.drawQueued = false;
      this.draw();
    });
  }

  draw() {
    const ctx = this.ctx;
    const dpr = window.devicePixelRatio || 1;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    if (!this.image) return;
    const { scale, tx, ty } = this.view;
    ctx.setTransform(dpr * scale, 0, 0, dpr * scale, dpr * tx, dpr * ty);
    ctx.imageSmoothingEnabled = scale < 2;
    ctx.drawImage(this.image, 0, 0, this.width, this.height);
    ctx.imageSmoothingEnabled = false;
    if (this.showMasks) {
      for (const id of this.objectIds()) {
        const obj = this.objects.get(id);
        if (!obj.visible || obj.area === 0 && !(this.drag && this.drag.obj === obj)) continue;
        ctx.globalAlpha = obj.opacity;
        ctx.drawImage(obj.layer, 0, 0);
      }
      ctx.globalAlpha = 1;
    }
    // screen-space overlays
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.strokeStyle = "rgba(255,255,255,0.35)";
    ctx.lineWidth = 1;
    ctx.strokeRect(tx - 0.5, ty - 0.5, this.width * scale + 1, this.height * scale + 1);
    for (const p of this.points) {
      const [x, y] = [(p.x + 0.5) * scale + tx, (p.y + 0.5) * scale + ty];
      ctx.beginPath();
      ctx.arc(x, y, 5, 0, Math.PI * 2);
      ctx.fillStyle = p.positive ? "#52c41a" : "#ff4d4f";
      ctx.fill();
      ctx.lineWidth = 1.5;
      ctx.strokeStyle = "#fff";
      ctx.stroke();
    }
    if (this.pointer && (this.tool === "brush" || this.tool === "eraser") && !this.isPanning()) {
      const r = Math.max(1.5, (this.brushSize / 2) * scale);
      ctx.beginPath();
      ctx.arc(this.pointer[0], this.pointer[1], r, 0, Math.PI * 2);
      ctx.lineWidth = 3;
      ctx.strokeStyle = "rgba(0,0,0,0.6)";
      ctx.stroke();
      ctx.lineWidth = 1.25;
      ctx.strokeStyle = this.tool === "eraser" ? "#ffffff" : this.selectedObject()?.color || "#fff";
      ctx.stroke();
    }
  }

  isPanning() {
    return this.spaceHeld || (this.drag && this.drag.kind === "pan");
  }

  updateCursor() {
    let cursor = "crosshair";
    if (this.drag && this.drag.kind === "pan") cursor = "grabbing";
    else if (this.spaceHeld) cursor = "grab";
    else if (this.tool === "brush" || this.tool === "eraser") cursor = "none";
    this.canvas.style.cursor = cursor;
  }

  setSpace(held) {
    this.spaceHeld = held;
    this.updateCursor();
    this.requestDraw();
  }

  // --- input ---------------------------------------------------------------------------------

  attach() {
    const c = this.canvas;
    c.addEventListener("contextmenu", (e) => e.preventDefault());
    c.addEventListener("pointerdown", (e) => this.pointerDown(e));
    c.addEventListener("pointermove", (e) => this.pointerMove(e));
    c.addEventListener("pointerup", (e) => this.pointerUp(e));
    c.addEventListener("pointercancel", (e) => this.pointerUp(e));
    c.addEventListener("pointerleave", () => {
      this.pointer = null;
      this.requestDraw();
    });
    c.addEventListener(
      "wheel",
      (e) => {
        e.preventDefault();
        if (!this.image) return;
        const rect = c.getBoundingClientRect();
        const delta = e.deltaMode === 1 ? e.deltaY * 16 : e.deltaY;
        this.zoomAt(e.clientX - rect.left, e.clientY - rect.top, Math.exp(-delta * 0.0015));
      },
      { passive: false },
    );
  }

  local(e) {
    const rect = this.canvas.getBoundingClientRect();
    return [e.clientX - rect.left, e.clientY - rect.top];
  }

  pointerDown(e) {
    if (!this.image) return;
    this.canvas.focus({ preventScroll: true });
    const [sx, sy] = this.local(e);
    if (e.button === 1 || (e.button === 0 && this.spaceHeld)) {
      e.preventDefault();
      this.drag = { kind: "pan", sx, sy, tx: this.view.tx, ty: this.view.ty, pointerId: e.pointerId };
      this.canvas.setPointerCapture(e.pointerId);
      this.updateCursor();
      return;
    }
    const [ix, iy] = this.toImage(sx, sy);
    if (this.tool === "click") {
      if (e.button === 0 || e.button === 2) this.segmentAt(ix, iy, e.button === 0 && !e.shiftKey);
      return;
    }
    if (e.button !== 0) return;
    let obj = this.selectedObject();
    if (!obj) obj = this.addObject();
    if (!obj) return;
    const value = this.tool === "eraser" ? 0 : 1;
    this.drag = { kind: "paint", obj, value, before: obj.mask.slice(), last: [ix, iy], changed: false, pointerId: e.pointerId };
    this.canvas.setPointerCapture(e.pointerId);
    this.drag.changed = this.dab(obj, ix, iy, value);
    this.requestDraw();
  }

  pointerMove(e) {
    const [sx, sy] = this.local(e);
    this.pointer = [sx, sy];
    if (this.drag && this.drag.kind === "pan") {
      this.view.tx = this.drag.tx + (sx - this.drag.sx);
      this.view.ty = this.drag.ty + (sy - this.drag.sy);
    } else if (this.drag && this.drag.kind === "paint") {
      const [ix, iy] = this.toImage(sx, sy);
      const [ax, ay] = this.drag.last;
      this.drag.changed = this.stroke(this.drag.obj, ax, ay, ix, iy, this.drag.value) || this.drag.changed;
      this.drag.last = [ix, iy];
    }
    this.requestDraw();
  }

  pointerUp(e) {
    const drag = this.drag;
    if (!drag || drag.pointerId !== e.pointerId) return;
    this.drag = null;
    if (this.canvas.hasPointerCapture(e.pointerId)) this.canvas.releasePointerCapture(e.pointerId);
    if (drag.kind === "paint" && drag.changed) {
      const obj = drag.obj;
      this.pushUndo({ id: obj.id, before: drag.before, after: obj.mask.slice(), what: this.tool === "eraser" ? "erase" : "brush stroke" });
      obj.edited = true;
      obj.area = area(obj.mask);
      this.changed();
    }
    this.updateCursor();
    this.requestDraw();
  }

  // --- notifications -------------------------------------------------------------------------

  changed() {
    this.hooks.onChange?.();
  }

  status(text, kind) {
    this.hooks.onStatus?.(text, kind);
  }
}
