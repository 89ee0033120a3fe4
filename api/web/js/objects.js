// The object list beside the frame: per object its colour, source and confidence, area, category
// (a dropdown of the project's categories), visibility and opacity.

/** An object's provenance as shown: "propagated 0.95", "model 0.91" (click-to-segment), "new". */
export function originOf(obj) {
  if (obj.confidence === null || obj.confidence === undefined) return obj.source;
  return `${obj.source} ${obj.confidence.toFixed(2)}`;
}

/** The text of an object's tag on the frame: id, category, provenance. */
export function describe(obj, category) {
  const parts = [String(obj.id)];
  if (category) parts.push(category.name);
  parts.push(originOf(obj) + (obj.edited ? " · edited" : ""));
  return parts.join(" · ");
}

function element(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

function summary(obj, position) {
  const key = element("kbd", "", position < 9 ? String(position + 1) : "");
  const swatch = element("span", "swatch");
  swatch.style.background = obj.color;
  const text = element("div", "text");
  const name = element("span", "name", `Object ${obj.id}`);
  const meta = element("span", "meta");
  const source = element("span", "src", originOf(obj));
  source.dataset.source = obj.source;
  source.title = "Where this mask came from, and its confidence";
  meta.append(source);
  const extent = element("span", "meta", `${obj.area} px${obj.edited ? " · edited" : ""}`);
  text.append(name, meta, extent);
  return [key, swatch, text];
}

function controls(editor, obj) {
  const box = element("div", "controls");
  const eye = element("input", "eye");
  eye.type = "checkbox";
  eye.checked = obj.visible;
  eye.title = "Show this object (visibility)";
  eye.setAttribute("aria-label", `Show object ${obj.id}`);
  eye.addEventListener("change", () => editor.setVisible(obj.id, eye.checked));
  const opacity = element("input");
  opacity.type = "range";
  opacity.min = "0";
  opacity.max = "100";
  opacity.value = String(Math.round(obj.opacity * 100));
  opacity.title = "Opacity";
  opacity.setAttribute("aria-label", `Opacity of object ${obj.id}`);
  opacity.addEventListener("input", () => editor.setOpacity(obj.id, Number(opacity.value) / 100));
  box.append(eye, opacity);
  return box;
}

function categoryPicker(obj, categories, onAssign) {
  const row = element("div", "category-row");
  const current = categories.of(obj.id);
  const chip = element("span", current ? "chip" : "chip none");
  if (current) chip.style.background = current.color;
  const select = element("select", "category");
  select.setAttribute("aria-label", `Category of object ${obj.id}`);
  select.title = "The object's category (the same object on every frame)";
  const none = element("option", "", categories.list.length ? "— no category —" : "no categories yet");
  none.value = "";
  select.append(none);
  for (const c of categories.list) {
    const option = element("option", "", c.name);
    option.value = String(c.id);
    select.append(option);
  }
  select.value = current ? String(current.id) : "";
  select.disabled = !categories.list.length;
  select.addEventListener("change", () => {
    select.blur(); // give the keys back to the shortcuts
    onAssign(obj.id, select.value ? Number(select.value) : null);
  });
  row.append(chip, select);
  return row;
}

/**
 * Draw the object list.
 * @param {HTMLElement} list the <ol>
 * @param {import("./editor.js").Editor} editor
 * @param {import("./categories.js").Categories} categories
 * @param {(objectId: number, categoryId: number | null) => void} onAssign
 */
export function renderObjectList(list, editor, categories, onAssign) {
  list.replaceChildren();
  editor.objectIds().forEach((id, position) => {
    const obj = editor.objects.get(id);
    const li = element("li", id === editor.selected ? "object selected" : "object");
    li.classList.toggle("hidden-object", !obj.visible);
    li.dataset.objectId = String(id);
    li.addEventListener("click", (e) => {
      if (e.target.closest("input, select")) return;
      editor.select(id);
    });
    li.append(...summary(obj, position), controls(editor, obj), categoryPicker(obj, categories, onAssign));
    list.append(li);
  });
}
