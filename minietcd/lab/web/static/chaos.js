// A chaos run's report, joined to the replay: client operations on a timeline (one lane per
// client, bars from invocation to answer, coloured by outcome), the nemesis' faults as bands,
// a leader lane (chaos_view.py works it out from the recorded frames), and relative times. Click
// to jump there.

const NS = "http://www.w3.org/2000/svg";
const LABEL = 70, LANE = 14, TOP = 18;

function el(tag, attrs, parent, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  parent.appendChild(e);
  return e;
}

const MEMBER_COLOURS = ["#00838f", "#6a1b9a", "#1565c0", "#2e7d32", "#ef6c00", "#00acc1", "#ad1457", "#3949ab",
  "#558b2f"];

export class ChaosView {
  constructor(svg, chaos, store, onSeek) {
    this.svg = svg;
    this.chaos = chaos;
    this.store = store;
    document.getElementById("chaos").hidden = false;
    document.getElementById("chaos-title").textContent = chaos.title || "";
    const width = 900;
    this.t0 = Math.min(store.start, chaos.t0 ?? store.start);
    this.t1 = Math.max(store.end, ...chaos.ops.map((o) => o.complete ?? o.invoke));
    this.px = (width - LABEL - 10) / Math.max(0.001, this.t1 - this.t0);
    const clients = [...new Set(chaos.ops.map((o) => o.client))].sort((a, b) => a - b);
    const height = TOP + LANE * (clients.length + 2) + 30;
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    const x = (t) => LABEL + (t - this.t0) * this.px;
    this.x = x;
    // Fault bands first: everything else is drawn over them.
    for (const f of chaos.faults) {
      const until = f.until ?? this.t1;
      el("rect", { class: "band", x: x(f.at), y: TOP, width: Math.max(2, x(until) - x(f.at)), height: height - TOP - 20 }, svg)
        .appendChild(document.createElementNS(NS, "title")).textContent = `${f.kind} ${f.detail}`;
      el("text", { class: "band-label", x: x(f.at) + 2, y: TOP - 4 }, svg, f.kind);
    }
    el("text", { class: "lane-label", x: 4, y: TOP + LANE - 3 }, svg, "leader");
    const names = store.frames.length && store.frames[0].cluster ? store.frames[0].cluster.names : [];
    for (const seg of chaos.leaders || []) {
      if (!seg.leader) continue;
      const colour = MEMBER_COLOURS[Math.max(0, names.indexOf(seg.leader)) % MEMBER_COLOURS.length];
      const r = el("rect", { x: x(seg.from), y: TOP + 2, width: Math.max(1, x(seg.to) - x(seg.from)), height: LANE - 4,
        fill: colour }, svg);
      el("title", {}, r, `${seg.leader} leads term ${seg.term}`);
      if (x(seg.to) - x(seg.from) > 22) el("text", { x: x(seg.from) + 2, y: TOP + LANE - 4, "font-size": 10, fill: "#fff" }, svg, seg.leader);
    }
    clients.forEach((c, i) => {
      const y = TOP + LANE * (i + 1) + 4;
      el("text", { class: "lane-label", x: 4, y: y + LANE - 4 }, svg, `client ${c}`);
      for (const op of chaos.ops.filter((o) => o.client === c)) {
        const end = op.complete ?? this.t1;
        const r = el("rect", { class: `op-${op.outcome}`, x: x(op.invoke), y: y + 1, height: LANE - 3,
          width: Math.max(1.5, x(end) - x(op.invoke)) }, svg);
        el("title", {}, r, `#${op.id} client ${c}: ${op.text} → ${op.outcome}`
          + ` [+${(op.invoke - this.t0).toFixed(3)}s .. ${op.complete === null ? "?" : `+${(op.complete - this.t0).toFixed(3)}s`}]`);
      }
    });
    const axisY = height - 6;
    const step = niceStep(this.t1 - this.t0);
    for (let s = 0; s <= this.t1 - this.t0 + 1e-9; s += step) {
      el("text", { class: "axis", x: x(this.t0 + s), y: axisY, "text-anchor": "middle" }, svg, `${s.toFixed(step < 1 ? 1 : 0)}s`);
    }
    this.cursor = el("line", { class: "cursor", x1: LABEL, x2: LABEL, y1: TOP, y2: height - 18 }, svg);
    svg.addEventListener("click", (e) => {
      const box = svg.getBoundingClientRect();
      const vx = ((e.clientX - box.left) / box.width) * width;
      if (vx >= LABEL) onSeek(this.t0 + (vx - LABEL) / this.px);
    });
  }

  render(t) {
    const cx = this.x(t);
    this.cursor.setAttribute("x1", cx);
    this.cursor.setAttribute("x2", cx);
  }
}

function niceStep(span) {
  for (const s of [0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300]) if (span / s <= 12) return s;
  return 600;
}
