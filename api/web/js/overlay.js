// What the editor draws over the frame in screen space: click points, the box prompt, the polygon
// being drawn, each object's tag (id, category, source, confidence) and the brush outline.
//
// Every function takes the 2D context already set to CSS pixels and `view` {scale, tx, ty}.

const TAG_FONT = "600 11px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";

/** Screen (CSS px) position of an image point. */
export function toScreen(view, x, y) {
  return [x * view.scale + view.tx, y * view.scale + view.ty];
}

/** Click-to-segment points: green positive, red negative, white ring. */
export function drawPoints(ctx, view, points) {
  for (const p of points) {
    const [x, y] = toScreen(view, p.x + 0.5, p.y + 0.5);
    ctx.beginPath();
    ctx.arc(x, y, 5, 0, Math.PI * 2);
    ctx.fillStyle = p.positive ? "#52c41a" : "#ff4d4f";
    ctx.fill();
    ctx.lineWidth = 1.5;
    ctx.strokeStyle = "#fff";
    ctx.stroke();
  }
}

/** The box prompt [x0, y0, x1, y1] (image px): dashed while dragged, solid once sent. */
export function drawBox(ctx, view, box, dragging) {
  const [x0, y0] = toScreen(view, box[0], box[1]);
  const [x1, y1] = toScreen(view, box[2], box[3]);
  ctx.save();
  ctx.lineWidth = 3;
  ctx.strokeStyle = "rgba(0,0,0,0.55)";
  ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
  ctx.lineWidth = 1.5;
  ctx.strokeStyle = "#ffd666";
  if (dragging) ctx.setLineDash([6, 4]);
  ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
  ctx.restore();
}

/**
 * The polygon being drawn: its edges, a rubber band to the pointer and its corners; the first corner
 * grows when a click there would close it. Cutting polygons are dashed white over red.
 */
export function drawPolygon(ctx, view, polygon, pointer, color, closable) {
  const pts = polygon.vertices.map(([x, y]) => toScreen(view, x, y));
  ctx.save();
  ctx.beginPath();
  pts.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
  if (pointer) ctx.lineTo(pointer[0], pointer[1]);
  ctx.lineWidth = 3;
  ctx.strokeStyle = "rgba(0,0,0,0.6)";
  ctx.stroke();
  ctx.lineWidth = 1.5;
  ctx.strokeStyle = polygon.subtract ? "#ff4d4f" : color;
  if (polygon.subtract) ctx.setLineDash([5, 4]);
  ctx.stroke();
  ctx.setLineDash([]);
  pts.forEach(([x, y], i) => {
    const r = i === 0 && closable ? 6 : 3.5;
    ctx.beginPath();
    ctx.rect(x - r, y - r, 2 * r, 2 * r);
    ctx.fillStyle = i === 0 ? "#fff" : polygon.subtract ? "#ff4d4f" : color;
    ctx.fill();
    ctx.lineWidth = 1;
    ctx.strokeStyle = "rgba(0,0,0,0.7)";
    ctx.stroke();
  });
  ctx.restore();
}

/**
 * A tag at the top-left of an object's extent: its colour, then `text`. Placed above the extent when
 * there is room, else just inside it; kept inside the canvas.
 */
export function drawTag(ctx, view, obj, text, canvasWidth) {
  if (!obj.extent) return;
  const [left, top] = toScreen(view, obj.extent[0], obj.extent[1]);
  ctx.save();
  ctx.font = TAG_FONT;
  const w = Math.ceil(ctx.measureText(text).width) + 22;
  const h = 17;
  const x = Math.max(2, Math.min(left, canvasWidth - w - 2));
  const y = top - h - 3 >= 2 ? top - h - 3 : top + 3;
  ctx.fillStyle = "rgba(14,15,18,0.82)";
  ctx.beginPath();
  ctx.roundRect(x, y, w, h, 4);
  ctx.fill();
  ctx.fillStyle = obj.color;
  ctx.fillRect(x + 5, y + 5, 7, 7);
  ctx.fillStyle = "#e6e8eb";
  ctx.textBaseline = "middle";
  ctx.fillText(text, x + 16, y + h / 2 + 0.5);
  ctx.restore();
}

/** The brush outline at the pointer, in the object's colour (white for the eraser). */
export function drawBrush(ctx, pointer, radius, color) {
  ctx.beginPath();
  ctx.arc(pointer[0], pointer[1], radius, 0, Math.PI * 2);
  ctx.lineWidth = 3;
  ctx.strokeStyle = "rgba(0,0,0,0.6)";
  ctx.stroke();
  ctx.lineWidth = 1.25;
  ctx.strokeStyle = color;
  ctx.stroke();
}
