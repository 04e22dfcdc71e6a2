// What the page has seen: frames (the cluster every 0.2 s), the story and the messages, each in
// time order. Live and replay use the same store; only where the time comes from differs.

export class Store {
  constructor(limits = {}) {
    this.frames = [];
    this.timeline = [];
    this.messages = [];
    this.frameSeq = 0;
    this.timelineSeq = 0;
    this.messageSeq = 0;
    this.maxFrames = limits.frames ?? Infinity;
    this.maxMessages = limits.messages ?? Infinity;
  }

  load(rec) {
    this.frames = [...rec.frames].sort((a, b) => a.t - b.t);
    this.timeline = [...rec.timeline].sort((a, b) => a.t - b.t || a.seq - b.seq);
    this.messages = [...rec.messages].sort((a, b) => a.t - b.t);
  }

  addFrames(frames) {
    for (const f of frames) {
      if (f.seq !== undefined && f.seq <= this.frameSeq) continue;
      if (f.seq !== undefined) this.frameSeq = f.seq;
      const last = this.frames[this.frames.length - 1];
      if (!last || f.t >= last.t) this.frames.push(f);
    }
    if (this.frames.length > this.maxFrames) this.frames.splice(0, this.frames.length - this.maxFrames);
  }

  addTimeline(items) {
    for (const x of items) {
      if (x.seq <= this.timelineSeq) continue;
      this.timelineSeq = x.seq;
      this.timeline.push(x);
    }
  }

  addMessages(msgs) {
    for (const m of msgs) {
      if (m.seq <= this.messageSeq) continue;
      this.messageSeq = m.seq;
      this.messages.push(m);
    }
    if (this.messages.length > this.maxMessages) this.messages.splice(0, this.messages.length - this.maxMessages);
  }

  get start() { return this.frames.length ? this.frames[0].t : 0; }
  get end() { return this.frames.length ? this.frames[this.frames.length - 1].t : 0; }

  // The last frame at or before t (the first one if t is earlier).
  frameAt(t) {
    const fs = this.frames;
    if (!fs.length) return null;
    let lo = 0, hi = fs.length - 1;
    if (t < fs[0].t) return fs[0];
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (fs[mid].t <= t) lo = mid; else hi = mid - 1;
    }
    return fs[lo];
  }

  // Messages in flight at t: sent at most `longest` seconds before, still travelling.
  messagesAt(t, travel, longest) {
    const out = [];
    const ms = this.messages;
    let lo = 0, hi = ms.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (ms[mid].t < t - longest) lo = mid + 1; else hi = mid; }
    for (let i = lo; i < ms.length && ms[i].t <= t; i++) {
      const m = ms[i];
      const d = travel(m);
      if (t < m.t + d) out.push([m, (t - m.t) / d]);
    }
    return out;
  }

  // Story items up to t (all of them when t is undefined).
  timelineUntil(t) {
    if (t === undefined) return this.timeline;
    return this.timeline.filter((x) => x.t <= t);
  }
}
