// Helpers shared by the project view's modules: DOM building, colours, formatting, messages, and the
// session's CSRF token for the calls api.js does not make (multipart uploads).

export const $ = (id) => document.getElementById(id);

/**
 * Make an element: el("td", {class: "n", title: "..."}, "text", child, ...). Text goes in as text
 * (never as HTML); attributes starting with "on" are event listeners; `dataset` sets data-*; `style`
 * is an object of CSSOM properties (the page's CSP refuses style="" attributes).
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name === "style") Object.assign(node.style, value); // CSSOM: allowed by the CSP, unlike style=""
    else if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** An SVG element with attributes. */
export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) node.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// --- colours -------------------------------------------------------------------------------------

/** Colours for categories (videos, shots, reasons), distinct on the dark theme. */
export const PALETTE = [
  [76, 141, 255], [250, 173, 20], [82, 196, 26], [235, 47, 150], [54, 207, 201], [250, 84, 28],
  [146, 84, 222], [160, 217, 17], [255, 214, 102], [19, 194, 194], [255, 120, 117], [105, 177, 255],
];

/** The colour of object `id` (the labelling page's palette order: object 1 blue, 2 amber, ...). */
export function objectColor(id, categories = null) {
  const hex = categories && categories.get(id);
  if (hex) return hexToRgb(hex);
  return PALETTE[(Math.max(1, id) - 1) % PALETTE.length];
}

/** The `i`-th categorical colour. */
export function categorical(i) {
  return PALETTE[((i % PALETTE.length) + PALETTE.length) % PALETTE.length];
}

export function rgb([r, g, b], alpha = 1) {
  return alpha === 1 ? `rgb(${r}, ${g}, ${b})` : `rgba(${r}, ${g}, ${b}, ${alpha})`;
}

export function hexToRgb(hex) {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

/** Red (0) through amber to green (1) for a confidence. */
export function confidenceColor(value) {
  if (value === null || value === undefined) return "#5c6370";
  if (value >= 0.8) return "#52c41a";
  if (value >= 0.6) return "#faad14";
  return "#ff4d4f";
}

// --- formatting ------------------------------------------------------------------------------------

export function seconds(value) {
  if (value === null || value === undefined || !Number.isFinite(value)) return "–";
  const m = Math.floor(value / 60);
  const s = value - 60 * m;
  return m ? `${m}:${s.toFixed(1).padStart(4, "0")}` : `${s.toFixed(2)} s`;
}

export function num(value, digits = 2) {
  return value === null || value === undefined || !Number.isFinite(value) ? "–" : value.toFixed(digits);
}

export function count(value) {
  return Number(value || 0).toLocaleString("en");
}

export const thumbUrl = (frameId) => `/frames/${frameId}/image?size=thumb`;
export const imageUrl = (frameId) => `/frames/${frameId}/image`;

/** Load an image; resolves once it is decoded. */
export function loadImage(url) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.decoding = "async";
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error(`cannot load ${url}`));
    image.src = url;
  });
}

// --- messages ----------------------------------------------------------------------------------------

let statusTimer = 0;

/** A message in the corner: info fades, warn and error stay until the next one. */
export function showStatus(text, kind = "info") {
  const node = $("status");
  node.textContent = text;
  node.dataset.kind = kind;
  node.classList.add("visible");
  clearTimeout(statusTimer);
  if (kind === "info" || kind === "busy") statusTimer = setTimeout(() => node.classList.remove("visible"), 4000);
}

export function errorText(err) {
  return err && (err.detail || err.message) ? err.detail || err.message : String(err);
}

// --- the session's CSRF token (api.js keeps its own copy for the JSON calls) -------------------------

let csrf = null;

export function setToken(token) {
  csrf = token;
}

export function token() {
  return csrf;
}
