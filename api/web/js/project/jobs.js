// The project's jobs with their progress, polled while the page is open (no reload): one poller feeds
// every jobs list on the page and tells the views when a job has finished.

import { api } from "../api.js";
import { el, num } from "./common.js";

const FINAL = new Set(["succeeded", "failed", "cancelled", "interrupted"]);

function describe(job) {
  const params = job.params || {};
  switch (job.kind) {
    case "ingest":
      return `ingest ${params.filename || ""}${params.fps !== undefined ? ` · fps ${params.fps}` : ""}${
        params.stride !== undefined ? ` · stride ${params.stride}` : ""
      }`;
    case "select":
      return `select ${params.budget || ""} · ${params.strategy || ""}`;
    case "propagate":
      return `propagate video ${params.video_id}`;
    case "round":
      return `round · budget ${params.budget || ""}`;
    case "preannotate":
      return `pre-annotate ${params.task_ids ? params.task_ids.length : "all"} tasks`;
    default:
      return job.kind;
  }
}

function resultText(job) {
  if (job.error) return `${job.error.code}: ${job.error.detail}`;
  const r = job.result;
  if (!r) return job.progress.stage ? `${job.progress.stage} ${job.progress.done}/${job.progress.total ?? "?"}` : "";
  if (job.kind === "ingest") {
    if (!r.created) return `already in the project (video ${r.video_id})`;
    return `${r.frames} frames stored of ${r.decoded_frames} decoded, ${r.shots} shot${r.shots === 1 ? "" : "s"}`;
  }
  if (job.kind === "select") return `${(r.picks || []).length} picks queued`;
  if (job.kind === "embed") return `${r.embedded} frames embedded (${r.backbone})`;
  if (job.kind === "round") return `round ${r.number} · J&F ${num(r.metrics && r.metrics.proxy_JF)}`;
  if (job.kind === "propagate") return `${r.masks ?? ""} masks on ${r.frames ?? ""} frames`;
  if (job.kind === "preannotate") return `${r.pre_annotated ?? 0} pre-annotated${r.reason ? ` (${r.reason})` : ""}`;
  return "";
}

/** Draw `jobs` (newest first) into a list element. */
export function renderJobs(list, jobs) {
  if (!jobs.length) {
    list.replaceChildren(el("li", { class: "muted" }, "No jobs yet."));
    return;
  }
  list.replaceChildren(
    ...jobs.map((job) => {
      const fraction = job.progress.fraction;
      const running = !FINAL.has(job.state);
      return el(
        "li",
        { class: "pv-job", dataset: { state: job.state, jobId: job.id } },
        el("span", { class: "what" }, `#${job.id} ${describe(job)}`),
        el("span", { class: "state" }, job.state),
        running ? el("progress", { max: 1, value: fraction ?? undefined }) : null,
        el("span", { class: "detail" }, resultText(job)),
      );
    }),
  );
}

/** Polls the project's jobs and queue counts every `interval` ms while the page is visible. */
export class JobPoller {
  constructor({ interval = 2000, onJobs, onQueue, onFinished }) {
    this.interval = interval;
    this.onJobs = onJobs;
    this.onQueue = onQueue;
    this.onFinished = onFinished;
    this.projectId = null;
    this.timer = 0;
    this.states = new Map();
  }

  start(projectId) {
    this.stop();
    this.projectId = projectId;
    this.states = new Map();
    this.polled = false;
    this.tick();
  }

  stop() {
    clearTimeout(this.timer);
    this.timer = 0;
    this.projectId = null;
  }

  /** Poll now (after starting a job, say). */
  async tick() {
    clearTimeout(this.timer);
    const projectId = this.projectId;
    if (projectId === null) return;
    if (document.visibilityState !== "hidden") {
      try {
        const [jobs, queue] = await Promise.all([
          api("GET", `/projects/${projectId}/jobs?limit=15`),
          api("GET", `/projects/${projectId}/queue`),
        ]);
        if (projectId !== this.projectId) return;
        // ended since the last poll: seen running or queued then, or not seen at all (started and ended between two polls)
        const finished = jobs.filter(
          (j) => FINAL.has(j.state) && (this.states.has(j.id) ? !FINAL.has(this.states.get(j.id)) : this.polled),
        );
        this.states = new Map(jobs.map((j) => [j.id, j.state]));
        this.polled = true;
        this.onJobs(jobs);
        this.onQueue(queue);
        if (finished.length) this.onFinished(finished);
      } catch {
        // a failed poll is retried at the next tick; a 401 is handled by api.js
      }
    }
    if (projectId === this.projectId) this.timer = setTimeout(() => this.tick(), this.interval);
  }
}
