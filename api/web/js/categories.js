// The project's label schema on the page: its categories (name, colour) and the category of each
// object id (the same object on every frame), over GET/POST /projects/{id}/categories and
// PUT /projects/{id}/objects/{object_id}.

import { api } from "./api.js";

export class Categories {
  constructor() {
    this.projectId = null;
    /** @type {{id: number, name: string, color: string, objects: number[]}[]} */
    this.list = [];
    /** object id -> category */
    this.byObject = new Map();
    this.version = 0; // bumped by every change made here: a load begun before one is stale
  }

  /** Load the categories of a project (replacing what was known, unless a change was made meanwhile). */
  async load(projectId) {
    const version = ++this.version;
    const list = await api("GET", `/projects/${projectId}/categories`);
    if (version !== this.version) return;
    this.projectId = projectId;
    this.list = list;
    this.byObject = new Map();
    for (const c of list) for (const o of c.objects) this.byObject.set(o, c);
  }

  /** Forget everything (no project). */
  clear() {
    this.version += 1;
    this.projectId = null;
    this.list = [];
    this.byObject = new Map();
  }

  /** The category of an object id, or null. */
  of(objectId) {
    return this.byObject.get(objectId) || null;
  }

  /** Give an object id a category (`null` removes it); resolves to the category or null. */
  async assign(objectId, categoryId) {
    await api("PUT", `/projects/${this.projectId}/objects/${objectId}`, { category_id: categoryId });
    this.version += 1;
    const category = this.list.find((c) => c.id === categoryId) || null;
    for (const c of this.list) c.objects = c.objects.filter((o) => o !== objectId);
    if (category) {
      category.objects.push(objectId);
      this.byObject.set(objectId, category);
    } else {
      this.byObject.delete(objectId);
    }
    return category;
  }

  /** Add a category to the project (admin); resolves to it. */
  async create(name, color) {
    const category = await api("POST", `/projects/${this.projectId}/categories`, { name, color });
    this.version += 1;
    this.list.push(category);
    return category;
  }
}
