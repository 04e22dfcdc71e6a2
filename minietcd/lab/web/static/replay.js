// Playing a recording: pause, step from one story item to the next, speed, and a scrubber over
// the whole run.

const $ = (id) => document.getElementById(id);

export class Player {
  constructor(store, title) {
    this.store = store;
    this.t = store.start;
    this.speed = 1;
    this.playing = false;
    $("replay-bar").hidden = false;
    $("replay-title").textContent = title;
    const scrub = $("scrubber");
    scrub.min = "0";
    scrub.max = String(Math.max(0.01, store.end - store.start));
    scrub.addEventListener("input", () => this.seek(store.start + Number(scrub.value)));
    $("play").addEventListener("click", () => this.toggle());
    $("step-fwd").addEventListener("click", () => this.step(1));
    $("step-back").addEventListener("click", () => this.step(-1));
    $("speed").addEventListener("change", (e) => { this.speed = Number(e.target.value); });
    document.addEventListener("keydown", (e) => {
      if (e.key === " " && e.target === document.body) { e.preventDefault(); this.toggle(); }
    });
    this.show();
  }

  toggle() {
    if (!this.playing && this.t >= this.store.end) this.t = this.store.start;
    this.playing = !this.playing;
    this.show();
  }

  seek(t) {
    this.t = Math.min(this.store.end, Math.max(this.store.start, t));
    this.show();
  }

  // To the next (or previous) story item; frames in between are passed over.
  step(direction) {
    this.playing = false;
    const items = this.store.timeline;
    let target = direction > 0 ? this.store.end : this.store.start;
    if (direction > 0) {
      const next = items.find((x) => x.t > this.t + 1e-6);
      if (next) target = next.t;
    } else {
      for (let i = items.length - 1; i >= 0; i--) if (items[i].t < this.t - 1e-6) { target = items[i].t; break; }
    }
    this.seek(target);
  }

  advance(dtSeconds) {
    if (!this.playing) return;
    this.t += dtSeconds * this.speed;
    if (this.t >= this.store.end) { this.t = this.store.end; this.playing = false; }
    this.show();
  }

  show() {
    $("play").textContent = this.playing ? "❚❚" : "▶";
    $("scrubber").value = String(this.t - this.store.start);
    const total = this.store.end - this.store.start;
    $("clock").textContent = `${(this.t - this.store.start).toFixed(2)} s / ${total.toFixed(2)} s`;
  }
}
