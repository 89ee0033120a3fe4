// The mask editor: one frame on a canvas with zoom and pan, a mask layer per object, brush,
// eraser, polygon, fill-holes and click-to-segment (points and a box) tools, and undo/redo of every
// mask change.
//
// Coordinates: "image" coordinates are frame pixels (x right, y down); the view maps them to the
// canvas by `screen = image * scale + (tx, ty)` in CSS pixels.

import { fillHoles, fillPolygon, measureMask } from "./maskops.js";
import { drawBox, drawBrush, drawPoints, drawPolygon, drawTag, toScreen } from "./overlay.js";

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
const DRAG_PX = 4; // a click-tool press that moves further is a box, not a click
const CLOSE_PX = 8; // a polygon click this near its first corner closes it

export class Editor {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {{onChange?: Function, onStatus?: Function, onSegment?: Function}} hooks
   *   onChange(): objects, masks or the selection changed (not called for every brush dab);
   *   onStatus(text, kind): a message for the user;
   *   onSegment({points, box, prior, objectId}): resolves to {mask: Uint8Array, score} or null;
   *   onRedraw(): the canvas was drawn again (opacity changes);
   *   describe(obj): the text of an object's tag on the frame.
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
    this.box = null; // the click tool's box prompt [x0, y0, x1, y1], image px
    this.polygon = null; // {vertices: [[x, y]], subtract} while a polygon is drawn
    this.showTags = true;
    this.paintWaiters = [];
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
    this.resetPrompts();
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
    this.resetPrompts();
    this.drag = null;
    this.requestDraw();
    this.changed();
  }

  /** Forget click points, the box and the polygon being drawn. */
  resetPrompts() {
    this.points = [];
    this.box = null;
    this.polygon = null;
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
      extent: null,
    };
    this.objects.set(id, obj);
    this.measure(obj);
    if (obj.extent) this.repaintLayer(obj, ...obj.extent); // the rest of a new layer is empty already
    if (notify) {
      this.select(id);
    }
    return obj;
  }

  /** Select an object by id. */
  select(id) {
    if (!this.objects.has(id)) return;
    if (this.selected !== id) {
      this.points = [];
      this.box = null;
    }
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

  /** Show or hide the objects' tags (id, category, source, confidence) on the frame. */
  toggleTags() {
    this.showTags = !this.showTags;
    this.requestDraw();
    this.changed();
  }

  // --- tools ---------------------------------------------------------------------------------

  setTool(tool) {
    this.tool = tool;
    if (tool !== "click") {
      this.points = [];
      this.box = null;
    }
    if (tool !== "polygon") this.polygon = null;
    this.updateCursor();
    this.requestDraw();
    this.changed();
  }

  setBrushSize(size) {
    this.brushSize = Math.max(1, Math.min(200, Math.round(size)));
    this.requestDraw();
    this.changed();
  }

  /**
   * Replace an object's mask as one undoable step; `origin` ({source, confidence}) replaces the
   * object's provenance with it (undone with the mask).
   */
  applyMask(id, mask, what, origin = null) {
    const obj = this.objects.get(id);
    if (!obj) return;
    const before = obj.mask.slice();
    const was = { source: obj.source, confidence: obj.confidence };
    obj.mask.set(mask);
    if (origin) Object.assign(obj, origin);
    this.pushUndo({ id, before, after: obj.mask.slice(), what, origins: origin ? [was, { ...origin }] : null });
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
    if (step.origins) Object.assign(obj, step.origins[0]);
    this.redoStack.push(step);
    this.points = [];
    this.box = null;
    this.afterMaskChange(obj);
    this.status(`undid ${step.what}`, "info");
  }

  redo() {
    const step = this.redoStack.pop();
    if (!step) return;
    const obj = this.objects.get(step.id);
    obj.mask.set(step.after);
    if (step.origins) Object.assign(obj, step.origins[1]);
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
    this.measure(obj);
    this.repaintLayer(obj, 0, 0, this.width, this.height);
    this.requestDraw();
    this.changed();
  }

  /** Area and extent of an object's mask, after it changed. */
  measure(obj) {
    Object.assign(obj, measureMask(obj.mask, this.width, this.height));
  }

  /** Where an object's pixels lie, [x0, y0, x1, y1], or null when unknown (a stroke in progress). */
  extentOf(obj) {
    return this.drag && this.drag.obj === obj ? null : obj.extent;
  }

  /** Escape: drop the polygon being drawn, the click points and the box. */
  cancel() {
    this.resetPrompts();
    this.requestDraw();
  }

  insideImage(x, y) {
    return x >= 0 && y >= 0 && x < this.width && y < this.height;
  }

  /** A click-to-segment click at image point (x, y). */
  async segmentAt(x, y, positive) {
    if (!this.insideImage(x, y)) return;
    const point = { x: Math.floor(x), y: Math.floor(y), positive };
    this.points.push(point);
    await this.runSegment(() => {
      this.points = this.points.filter((p) => p !== point);
    });
  }

  /** A box prompt dragged from image point a to b: sent with the points and the current mask. */
  async segmentBox(a, b) {
    const x0 = Math.max(0, Math.floor(Math.min(a[0], b[0])));
    const y0 = Math.max(0, Math.floor(Math.min(a[1], b[1])));
    const x1 = Math.min(this.width, Math.ceil(Math.max(a[0], b[0])));
    const y1 = Math.min(this.height, Math.ceil(Math.max(a[1], b[1])));
    if (x1 <= x0 || y1 <= y0) return;
    const previous = this.box;
    this.box = [x0, y0, x1, y1];
    await this.runSegment(() => {
      this.box = previous;
    });
  }

  /** Ask for the selected object's mask from every point and the box so far; `revert` drops the new prompt on failure. */
  async runSegment(revert) {
    const obj = this.image && this.hooks.onSegment ? this.selectedObject() || this.addObject() : null;
    if (!obj) {
      revert();
      return;
    }
    this.requestDraw();
    const seq = ++this.segmentSeq;
    const token = this.loadToken;
    const answer = await this.hooks.onSegment({
      points: this.points.map((p) => ({ ...p })),
      box: this.box ? [...this.box] : null,
      prior: obj.area > 0 ? obj.mask.slice() : null,
      objectId: obj.id,
    });
    if (token !== this.loadToken) return;
    if (!answer) {
      revert();
      this.requestDraw();
      return;
    }
    if (seq !== this.segmentSeq) return; // a newer click is on its way
    this.applyMask(obj.id, answer.mask, "click-to-segment", { source: "model", confidence: answer.score ?? null });
  }

  // --- polygon and fill holes ----------------------------------------------------------------

  /** A polygon-tool click at screen (sx, sy): start, add a corner, or close on the first corner. */
  polygonClick(sx, sy, shift) {
    const [ix, iy] = this.toImage(sx, sy);
    const p = [Math.max(0, Math.min(this.width, ix)), Math.max(0, Math.min(this.height, iy))];
    if (!this.polygon) {
      this.polygon = { vertices: [p], subtract: shift };
    } else {
      const vs = this.polygon.vertices;
      if (vs.length >= 3 && this.screenDistance(vs[0], sx, sy) <= CLOSE_PX) {
        this.closePolygon(shift);
        return;
      }
      if (this.screenDistance(vs[vs.length - 1], sx, sy) <= 3) return; // the second press of a double-click
      vs.push(p);
    }
    this.requestDraw();
    this.changed();
  }

  screenDistance([x, y], sx, sy) {
    const [px, py] = toScreen(this.view, x, y);
    return Math.hypot(px - sx, py - sy);
  }

  /** Drop the polygon's last corner (the polygon when none is left). */
  removeVertex() {
    if (!this.polygon) return;
    this.polygon.vertices.pop();
    if (!this.polygon.vertices.length) this.polygon = null;
    this.requestDraw();
    this.changed();
  }

  /** Fill the polygon into the selected object's mask (cut it out with `shift` or a cutting polygon). */
  closePolygon(shift = false) {
    const polygon = this.polygon;
    if (!polygon) return;
    if (polygon.vertices.length < 3) {
      this.status("a polygon needs at least three corners", "warn");
      return;
    }
    this.polygon = null;
    const obj = this.selectedObject() || this.addObject();
    const subtract = polygon.subtract || shift;
    const mask = obj ? obj.mask.slice() : null;
    if (!mask || !fillPolygon(mask, this.width, this.height, polygon.vertices, subtract ? 0 : 1)) {
      this.status("the polygon changed no pixel", "info");
      this.requestDraw();
      this.changed();
      return;
    }
    this.applyMask(obj.id, mask, subtract ? "polygon cut" : "polygon");
  }

  /** Fill the holes of the selected object's mask (pixels of other objects stay theirs). */
  fillHolesSelected() {
    const obj = this.selectedObject();
    if (!obj || !obj.area) {
      this.status("nothing to fill: the selected object has no mask", "warn");
      return;
    }
    let others = null;
    for (const other of this.objects.values()) {
      if (other === obj || !other.area) continue;
      others = others || new Uint8Array(obj.mask.length);
      for (let i = 0; i < others.length; i += 1) others[i] |= other.mask[i];
    }
    const { mask, filled } = fillHoles(obj.mask, this.width, this.height, others);
    if (!filled) {
      this.status(`object ${obj.id} has no holes`, "info");
      return;
    }
    this.applyMask(obj.id, mask, "fill holes");
    this.status(`filled ${filled} px of holes in object ${obj.id}`, "info");
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

  /** A promise resolved once the canvas has been drawn again (a draw is requested). */
  painted() {
    return new Promise((resolve) => {
      this.paintWaiters.push(resolve);
      this.requestDraw();
    });
  }

  draw() {
    const ctx = this.ctx;
    const dpr = window.devicePixelRatio || 1;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    if (this.image) {
      this.drawFrame(ctx, dpr);
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0); // screen-space overlays
      this.drawOverlays(ctx);
    }
    const waiters = this.paintWaiters;
    this.paintWaiters = [];
    for (const resolve of waiters) resolve();
  }

  /** The frame and the visible objects' layers, in image space. */
  drawFrame(ctx, dpr) {
    const { scale, tx, ty } = this.view;
    ctx.setTransform(dpr * scale, 0, 0, dpr * scale, dpr * tx, dpr * ty);
    ctx.imageSmoothingEnabled = scale < 2;
    ctx.drawImage(this.image, 0, 0, this.width, this.height);
    ctx.imageSmoothingEnabled = false;
    if (!this.showMasks) return;
    for (const id of this.objectIds()) {
      const obj = this.objects.get(id);
      if (!obj.visible || (obj.area === 0 && !(this.drag && this.drag.obj === obj))) continue;
      ctx.globalAlpha = obj.opacity;
      ctx.drawImage(obj.layer, 0, 0);
    }
    ctx.globalAlpha = 1;
  }

  /** Tags, prompts, the polygon being drawn and the brush outline, in CSS px. */
  drawOverlays(ctx) {
    const view = this.view;
    ctx.strokeStyle = "rgba(255,255,255,0.35)";
    ctx.lineWidth = 1;
    ctx.strokeRect(view.tx - 0.5, view.ty - 0.5, this.width * view.scale + 1, this.height * view.scale + 1);
    if (this.showMasks && this.showTags) {
      for (const id of this.objectIds()) {
        const obj = this.objects.get(id);
        if (!obj.visible || !obj.extent || !obj.opacity) continue;
        drawTag(ctx, view, obj, this.hooks.describe ? this.hooks.describe(obj) : `${obj.id}`, this.canvas.clientWidth);
      }
    }
    if (this.drag && this.drag.kind === "box" && this.drag.moved) {
      const [a, b] = [this.drag.start, this.drag.end];
      drawBox(ctx, view, [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[0], b[0]), Math.max(a[1], b[1])], true);
    } else if (this.box && this.tool === "click") {
      drawBox(ctx, view, this.box, false);
    }
    drawPoints(ctx, view, this.points);
    if (this.polygon) {
      const vs = this.polygon.vertices;
      const near = this.pointer && vs.length >= 3 && this.screenDistance(vs[0], ...this.pointer) <= CLOSE_PX;
      const color = this.selectedObject()?.color || "#fff";
      drawPolygon(ctx, view, this.polygon, this.isPanning() ? null : this.pointer, color, near);
    }
    if (this.pointer && (this.tool === "brush" || this.tool === "eraser") && !this.isPanning()) {
      const color = this.tool === "eraser" ? "#ffffff" : this.selectedObject()?.color || "#fff";
      drawBrush(ctx, this.pointer, Math.max(1.5, (this.brushSize / 2) * view.scale), color);
    }
  }

  /** The RGBA of the canvas where image point (x, y) is drawn. */
  pixelAt(x, y) {
    const dpr = window.devicePixelRatio || 1;
    const [sx, sy] = toScreen(this.view, x, y);
    return Array.from(this.ctx.getImageData(Math.floor(sx * dpr), Math.floor(sy * dpr), 1, 1).data);
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
    c.addEventListener("dblclick", (e) => {
      if (this.tool === "polygon") this.closePolygon(e.shiftKey);
    });
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
      if (e.button === 2) this.segmentAt(ix, iy, false);
      if (e.button !== 0) return;
      // a click, or a box if the pointer moves before it is released
      this.drag = { kind: "box", sx, sy, start: [ix, iy], end: [ix, iy], moved: false, shift: e.shiftKey, pointerId: e.pointerId };
      this.canvas.setPointerCapture(e.pointerId);
      return;
    }
    if (this.tool === "polygon") {
      if (e.button === 0) this.polygonClick(sx, sy, e.shiftKey);
      else if (e.button === 2) this.removeVertex();
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
    } else if (this.drag && this.drag.kind === "box") {
      this.drag.end = this.toImage(sx, sy);
      this.drag.moved = this.drag.moved || Math.hypot(sx - this.drag.sx, sy - this.drag.sy) > DRAG_PX;
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
      this.measure(obj);
      this.changed();
    } else if (drag.kind === "box" && e.type === "pointerup") {
      if (drag.moved) this.segmentBox(drag.start, this.toImage(...this.local(e)));
      else this.segmentAt(drag.start[0], drag.start[1], !drag.shift);
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
