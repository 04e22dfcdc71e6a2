// The page: live (polling /api/cluster) or replaying a recording (--replay), drawn by the same
// code from the same kind of frames. Live, the page draws DELAY seconds behind the server, so
// that the messages members report a moment late still move in order with the frames.

import { Store } from "./store.js";
import { Ring, travelTime } from "./ring.js";
import { renderLogs } from "./logs.js";
import { Story } from "./story.js";
import { Controls } from "./controls.js";
import { Lessons } from "./lessons.js";
import { Player } from "./replay.js";
import { ChaosView } from "./chaos.js";

const DELAY = 0.6; // seconds the live picture lags the server
const POLL_MS = 250;
const $ = (id) => document.getElementById(id);

async function getJSON(url) {
  const resp = await fetch(url, { cache: "no-store" });
  if (!resp.ok) throw new Error(`${url}: HTTP ${resp.status}`);
  return resp.json();
}

function describeCluster(frame) {
  const c = frame && frame.cluster;
  if (!c) return "no cluster";
  const pace = c.pace === "custom" ? "" : `${c.pace} pace, `;
  return `${c.names.length} member${c.names.length > 1 ? "s" : ""} (${pace}heartbeat ${c.heartbeat_ms} ms, `
    + `election ${c.election_ms} ms)${c.backend === "compose" ? ", docker compose" : ""} · ${c.lab_dir}`;
}

class Page {
  constructor() {
    this.ring = new Ring($("ring"), (name) => this.controls.select(name));
    this.controls = new Controls($("controls"), this.ring);
    this.lessons = new Lessons();
    this.story = new Story($("story"));
    this.lastFrame = null;
    this.travel = travelTime(500);
    this.longest = 2;
    window.minietcdPage = this; // for people poking at it from the console
  }

  async start() {
    const first = await getJSON("/api/cluster");
    this.mode = first.mode;
    document.body.dataset.mode = first.mode;
    if (first.mode === "replay") {
      const rec = await getJSON("/api/recording");
      this.store = new Store();
      this.store.load(rec);
      this.story.reset(this.store.start);
      this.player = new Player(this.store, rec.title || first.source || "");
      this.controls.disable("replaying a recording: the controls act on live clusters only");
      $("lesson-panel").hidden = true;
      $("save").hidden = true;
      if (rec.chaos) this.chaos = new ChaosView($("chaos-timeline"), rec.chaos, this.store, (t) => this.player.seek(t));
    } else {
      this.store = new Store({ frames: 200, messages: 4000 });
      this.offsets = [];
      this.absorb(first);
      await this.lessons.load();
      this.poll();
    }
    this.prev = performance.now();
    requestAnimationFrame((now) => this.loop(now));
  }

  absorb(state) {
    const local = Date.now() / 1000;
    this.offsets.push(state.now - local);
    if (this.offsets.length > 20) this.offsets.shift();
    this.offset = Math.max(...this.offsets); // the answer that waited least on the way
    if (state.frame) this.store.addFrames([state.frame]);
    this.store.addFrames(state.frames);
    this.store.frameSeq = Math.max(this.store.frameSeq, state.frame ? state.frame.seq : 0);
    this.store.addTimeline(state.timeline);
    this.store.timelineSeq = Math.max(this.store.timelineSeq, state.timeline_seq);
    this.store.addMessages(state.messages);
    this.store.messageSeq = Math.max(this.store.messageSeq, state.message_seq);
    this.lessons.render(state.lesson);
    $("busy").hidden = !state.busy;
    $("busy").textContent = state.busy ? `lab: ${state.busy}…` : "";
    $("lab-dir").textContent = state.lab_dir || "";
  }

  async poll() {
    for (;;) {
      const s = this.store;
      try {
        const state = await getJSON(`/api/cluster?frames_after=${s.frameSeq}&timeline_after=${s.timelineSeq}`
          + `&messages_after=${s.messageSeq}`);
        this.absorb(state);
      } catch (e) {
        $("busy").hidden = false;
        $("busy").textContent = `the web server does not answer (${e.message})`;
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  now() {
    if (this.mode === "replay") return this.player.t;
    return Date.now() / 1000 + this.offset - DELAY;
  }

  loop(now) {
    const dt = (now - this.prev) / 1000;
    this.prev = now;
    if (this.player) this.player.advance(dt);
    const t = this.now();
    const frame = this.store.frameAt(t);
    if (frame && frame.cluster) this.travel = travelTime(frame.cluster.heartbeat_ms);
    this.ring.render(frame, t, this.store.messagesAt(t, this.travel, 5));
    if (frame !== this.lastFrame) {
      this.lastFrame = frame;
      renderLogs($("logs"), frame);
      this.controls.update(frame);
      $("cluster-info").textContent = describeCluster(frame);
      $("no-cluster").hidden = this.mode === "replay" || !!(frame && frame.cluster);
      document.body.dataset.frameT = frame ? frame.t : "";
    }
    this.story.render(this.store.timeline, this.mode === "replay" ? t : undefined);
    if (this.chaos) this.chaos.render(t);
    requestAnimationFrame((n) => this.loop(n));
  }
}

new Page().start().catch((e) => {
  document.body.insertAdjacentHTML("afterbegin", `<p class="panel" style="color:#c62828">page error: ${e}</p>`);
  console.error(e);
});
