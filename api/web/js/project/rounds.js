// Rounds: the proxy's J&F, J and F on held-out human frames across rounds (an SVG plot), and every
// round's state, human frames, metrics (or why it has none) and the batch it queued.

import { api } from "../api.js";
import { $, el, num, seconds, svg } from "./common.js";

const SERIES = [
  ["proxy_JF", "J&F", "#4c8dff", 2.5],
  ["proxy_J", "J", "#36cfc9", 1.5],
  ["proxy_F", "F", "#b37feb", 1.5],
];

export class RoundsView {
  /** @param {{openVideo: (videoId: number, frameId?: number) => void}} hooks */
  constructor(hooks) {
    this.hooks = hooks;
    this.projectId = null;
  }

  async show(projectId) {
    this.projectId = projectId;
    document.body.dataset.roundsReady = "";
    const data = await api("GET", `/projects/${projectId}/rounds/history`);
    if (projectId !== this.projectId) return;
    this.plot(data);
    this.list(data);
    document.body.dataset.roundsReady = "1";
  }

  plot(data) {
    const box = $("rd-plot");
    const s = data.series;
    if (!s.number.length) {
      box.replaceChildren(el("p", { class: "muted" }, "No rounds yet: run one under Upload & run (it needs human masks)."));
      return;
    }
    const width = 900;
    const height = 260;
    const left = 44;
    const right = 120;
    const top = 14;
    const bottom = 32;
    const n = s.number.length;
    const x = (i) => left + (n === 1 ? (width - left - right) / 2 : (i / (n - 1)) * (width - left - right));
    const y = (v) => top + (1 - v) * (height - top - bottom);
    const drawing = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "proxy metrics per round" });
    for (const v of [0, 0.25, 0.5, 0.75, 1]) {
      drawing.append(
        svg("line", { class: "grid", x1: left, x2: width - right, y1: y(v), y2: y(v) }),
        svg("text", { class: "tick", x: left - 8, y: y(v) + 4, "text-anchor": "end" }, v.toFixed(2)),
      );
    }
    s.number.forEach((number, i) => drawing.append(svg("text", { class: "tick", x: x(i), y: height - 10, "text-anchor": "middle" }, `round ${number}`)));
    SERIES.forEach(([key, label, colour, stroke], k) => {
      const values = s[key];
      let path = "";
      let pen = false;
      values.forEach((v, i) => {
        if (v === null) {
          pen = false;
          return;
        }
        path += `${pen ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
        pen = true;
      });
      if (path) drawing.append(svg("path", { class: "line", d: path, stroke: colour, "stroke-width": stroke }));
      values.forEach((v, i) => {
        if (v !== null) {
          drawing.append(svg("circle", { cx: x(i), cy: y(v), r: k === 0 ? 4.5 : 3, fill: colour }, svg("title", {}, `round ${s.number[i]} · ${label} ${num(v, 3)}`)));
        }
      });
      drawing.append(
        svg("line", { x1: width - right + 16, x2: width - right + 36, y1: top + 10 + 18 * k, y2: top + 10 + 18 * k, stroke: colour, "stroke-width": stroke }),
        svg("text", { class: "tick", x: width - right + 42, y: top + 14 + 18 * k }, label),
      );
    });
    // rounds without metrics: a hollow mark on the axis, with the reason as its tooltip
    data.rounds.forEach((round, i) => {
      if (round.metrics.proxy_JF === null) {
        drawing.append(
          svg("circle", { class: "missing", cx: x(i), cy: y(0), r: 6, "data-round": round.number }, svg("title", {}, `round ${round.number}: ${round.note}`)),
          svg("text", { class: "tick", x: x(i), y: y(0) - 10, "text-anchor": "middle" }, "no holdout"),
        );
      }
    });
    drawing.append(
      svg("line", { x1: width - right + 16, x2: width - right + 36, y1: top + 64, y2: top + 64, stroke: "none" }),
      svg("circle", { class: "missing", cx: width - right + 26, cy: top + 64, r: 5 }),
      svg("text", { class: "tick", x: width - right + 42, y: top + 68 }, "no metrics"),
    );
    box.replaceChildren(drawing);
  }

  list(data) {
    const box = $("rd-list");
    if (!data.rounds.length) {
      box.replaceChildren();
      return;
    }
    box.replaceChildren(
      ...[...data.rounds].reverse().map((round) => {
        const m = round.metrics;
        return el(
          "article",
          { class: "pv-round", dataset: { round: round.number } },
          el(
            "header",
            {},
            el("b", {}, `Round ${round.number}`),
            el("span", { class: "pv-state", dataset: { state: round.state } }, round.state),
            el("span", { class: "muted" }, `${round.strategy || "–"} · budget ${round.budget ?? "–"}`),
            el("span", {}, `human frames ${round.human_frames ?? "–"} (held out ${m.holdout_frames ?? "–"})`),
            el("span", { class: "metric" }, `J&F ${num(m.proxy_JF, 3)} · J ${num(m.proxy_J, 3)} · F ${num(m.proxy_F, 3)}`),
            el("span", { class: "muted" }, round.finished_at ? new Date(round.finished_at).toLocaleString() : ""),
          ),
          round.note ? el("p", { class: "note" }, round.note) : null,
          el(
            "div",
            { class: "chips" },
            round.picks.length ? el("span", { class: "muted" }, `queued ${round.picks.length}:`) : el("span", { class: "muted" }, "no picks"),
            ...round.picks.slice(0, 60).map((p) =>
              el(
                "button",
                { type: "button", class: "pv-chip", title: `utility ${num(p.utility, 3)} · task ${p.task_state || "none"}`, onclick: () => this.hooks.openVideo(p.video_id, p.frame_id) },
                `#${p.frame_index} ${seconds(p.timestamp)} · ${p.reason}`,
              ),
            ),
          ),
        );
      }),
    );
  }
}
