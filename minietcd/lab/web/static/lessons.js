// The lesson panel: pick a lesson, read each step, press next. The server runs the steps
// (lessons.py); this only shows its state and sends the buttons.

import { postJSON } from "./controls.js";

const $ = (id) => document.getElementById(id);

function table(columns, rows) {
  const t = document.createElement("table");
  const head = t.insertRow();
  for (const c of columns) { const th = document.createElement("th"); th.textContent = c; head.appendChild(th); }
  for (const r of rows) {
    const tr = t.insertRow();
    for (const cell of r) tr.insertCell().textContent = cell;
  }
  return t;
}

export class Lessons {
  constructor(hasCluster) {
    this.hasCluster = hasCluster;
    this.last = "";
    $("lesson-start").addEventListener("click", () => this.start());
    $("lesson-next").addEventListener("click", () => this.next());
    $("lesson-stop").addEventListener("click", () => postJSON("/api/lesson/stop"));
  }

  async load() {
    const resp = await fetch("/api/lessons");
    const list = await resp.json();
    $("lesson-select").replaceChildren(...list.map((x) => {
      const o = new Option(`${x.title} (${x.steps} steps)`, x.id);
      o.title = x.summary;
      return o;
    }));
    if (!list.length) $("lesson-panel").hidden = true;
  }

  async start() {
    const answer = await postJSON("/api/lesson", { id: $("lesson-select").value });
    if (!answer.ok) $("lesson-status").textContent = answer.text;
  }

  async next() {
    $("lesson-next").disabled = true;
    const answer = await postJSON("/api/lesson/next");
    if (!answer.ok) $("lesson-status").textContent = answer.text;
  }

  render(state) {
    const key = JSON.stringify(state);
    if (key === this.last) return;
    this.last = key;
    $("lesson").hidden = !state;
    if (!state) return;
    $("lesson-panel").dataset.lesson = state.id;
    $("lesson-panel").dataset.step = state.step;
    $("lesson-panel").dataset.status = state.status;
    $("lesson-title").textContent = state.title;
    $("lesson-progress").textContent = `step ${state.step + 1} of ${state.steps}`;
    $("lesson-step-title").textContent = state.step_title;
    $("lesson-text").textContent = state.text;
    $("lesson-after").textContent = state.after;
    const status = { running: "the lab is at work…", waiting: `${state.waiting}…`, done: "",
      timeout: "", failed: "", finished: "the end of this lesson." }[state.status] ?? state.status;
    $("lesson-status").textContent = status;
    $("lesson-next").disabled = !state.can_next;
    $("lesson-table").replaceChildren(...(state.table ? [table(state.table.columns, state.table.rows)] : []));
    const c = state.controllers;
    if (c) {
      const rows = c.replicas.map((r) => [r.name, r.alive ? "running" : "killed", r.role]);
      const t = table(["replica", "process", "in the election"], rows);
      const queue = document.createElement("p");
      queue.className = "small";
      queue.textContent = `queue (oldest first): ${c.queue.map((q) => `${q.key} → ${q.holder}`).join(", ") || "empty"}`
        + ` · controller/status: ${c.status ?? "none"}`;
      $("lesson-controllers").replaceChildren(t, queue);
    } else {
      $("lesson-controllers").replaceChildren();
    }
  }
}
