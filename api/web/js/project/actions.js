// Upload and start work from the page: upload a video with its sampling options (fps, stride), start a
// selection, a propagation or a round, download an export. Every form calls the public REST routes.

import { api } from "../api.js";
import { $, el, errorText, showStatus, token } from "./common.js";

/** Send a multipart upload with progress; resolves to the JSON answer, rejects with {status, code, detail}. */
function upload(url, file, onProgress) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", url);
    request.setRequestHeader("Accept", "application/json");
    if (token()) request.setRequestHeader("X-CSRF-Token", token());
    request.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    request.onload = () => {
      let data = null;
      try {
        data = JSON.parse(request.responseText);
      } catch {
        data = null;
      }
      if (request.status >= 200 && request.status < 300) resolve(data);
      else reject({ status: request.status, code: data && data.code, detail: (data && data.detail) || request.statusText });
    };
    request.onerror = () => reject({ status: 0, code: "network_error", detail: "the server cannot be reached" });
    const body = new FormData();
    body.append("file", file);
    request.send(body);
  });
}

export class ActionsView {
  /** @param {{jobStarted: (job: object) => void}} hooks */
  constructor(hooks) {
    this.hooks = hooks;
    this.projectId = null;
    $("act-upload").addEventListener("submit", (e) => this.submit(e, () => this.upload()));
    $("act-select").addEventListener("submit", (e) => this.submit(e, () => this.select()));
    $("act-propagate").addEventListener("submit", (e) => this.submit(e, () => this.propagate()));
    $("act-round").addEventListener("submit", (e) => this.submit(e, () => this.round()));
    $("act-export").addEventListener("submit", (e) => e.preventDefault());
    for (const id of ["act-format", "act-include"]) $(id).addEventListener("change", () => this.exportLink());
  }

  show(projectId, videos) {
    this.projectId = projectId;
    $("act-video").replaceChildren(...videos.map((v) => el("option", { value: v.id }, v.filename)));
    this.exportLink();
  }

  exportLink() {
    const link = $("act-download");
    const format = $("act-format").value;
    link.href = `/projects/${this.projectId}/export?format=${format}&include=${$("act-include").value}`;
  }

  async submit(event, action) {
    event.preventDefault();
    const button = event.target.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const job = await action();
      if (job) {
        showStatus(`Started job ${job.id} (${job.kind}).`, "info");
        this.hooks.jobStarted(job);
      }
    } catch (err) {
      showStatus(`${err.status ? `${err.status} ` : ""}${errorText(err)}`, "error");
    } finally {
      button.disabled = false;
    }
  }

  async upload() {
    const file = $("act-file").files[0];
    if (!file) return null;
    const query = new URLSearchParams();
    const fps = $("act-fps").value.trim();
    const stride = $("act-stride").value.trim();
    if (fps !== "") query.set("fps", fps);
    if (stride !== "") query.set("stride", stride);
    const bar = $("act-upload-progress");
    bar.hidden = false;
    bar.value = 0;
    try {
      const suffix = query.toString() ? `?${query}` : "";
      return await upload(`/projects/${this.projectId}/videos${suffix}`, file, (f) => (bar.value = f));
    } finally {
      bar.hidden = true;
    }
  }

  select() {
    const body = { budget: Number($("act-budget").value) };
    const strategy = $("act-strategy").value.trim();
    if (strategy) body.strategy = strategy;
    return api("POST", `/projects/${this.projectId}/selections`, body);
  }

  propagate() {
    return api("POST", `/projects/${this.projectId}/propagate`, {
      video_id: Number($("act-video").value),
      scope: $("act-scope").value,
    });
  }

  round() {
    const body = { budget: Number($("act-round-budget").value) };
    const steps = $("act-round-steps").value.trim();
    if (steps) body.steps = Number(steps);
    return api("POST", `/projects/${this.projectId}/rounds`, body);
  }
}
