// The cluster drawn as RaftScope draws it: members on a ring, links between them, messages as
// moving dots. Each member is <g class="member" data-member data-role data-term> (the page's
// testable contract), each link <line class="link" data-link="n1-n2" data-state>.

const NS = "http://www.w3.org/2000/svg";
const SIZE = 520, CX = 260, CY = 262;

const DOT = {
  "vote": ["#ef6c00", 6], "pre-vote": ["#f9a825", 6],
  "append": ["#1e88e5", 6], "append-resp": ["#64b5f6", 5],
  "heartbeat": ["#78909c", 3.5], "heartbeat-resp": ["#b0bec5", 3],
  "timeout-now": ["#8e24aa", 7], "snapshot": ["#6d4c41", 8],
};

function el(tag, attrs = {}, parent = null) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

export function dotStyle(m) {
  if (m.type.endsWith("vote-resp")) return [m.reject ? "#c62828" : "#2e7d32", 6];
  if (m.type === "append-resp" && m.reject) return ["#c62828", 5];
  if (m.type === "append" && m.entries === 0) return ["#1e88e5", 4.5];
  return DOT[m.type] ?? ["#546e7a", 5];
}

export class Ring {
  constructor(svg, onSelect) {
    this.svg = svg;
    this.onSelect = onSelect;
    this.names = "";
    this.selected = null;
    svg.setAttribute("viewBox", `0 0 ${SIZE} ${SIZE}`);
    this.linkLayer = el("g", { class: "links" }, svg);
    this.dotLayer = el("g", { class: "dots" }, svg);
    this.memberLayer = el("g", { class: "members" }, svg);
    this.center = el("text", { class: "center-label", x: CX, y: CY }, svg);
    this.members = new Map();
    this.links = new Map();
    this.dots = [];
  }

  layout(names) {
    const key = names.join(",");
    if (key === this.names) return;
    this.names = key;
    this.memberLayer.replaceChildren();
    this.linkLayer.replaceChildren();
    this.members.clear();
    this.links.clear();
    const n = names.length;
    this.compact = n >= 6; // one short line under each member: the ring is crowded
    const R = n <= 1 ? 0 : n <= 5 ? 165 : 180;
    const r = n <= 5 ? 40 : n <= 7 ? 34 : 30;
    this.r = r;
    this.pos = new Map(names.map((name, i) => {
      const a = -Math.PI / 2 + (2 * Math.PI * i) / Math.max(1, n);
      return [name, [CX + R * Math.cos(a), CY + R * Math.sin(a)]];
    }));
    for (let i = 0; i < n; i++) {
      for (let j = i + 1; j < n; j++) {
        const [a, b] = [names[i], names[j]];
        const [x1, y1] = this.pos.get(a), [x2, y2] = this.pos.get(b);
        const line = el("line", { class: "link", x1, y1, x2, y2, "data-link": `${a}-${b}`, "data-state": "ok" },
          this.linkLayer);
        const label = el("text", { class: "link-label", x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 6 }, this.linkLayer);
        const mark = el("text", { class: "link-cut-mark", x: (x1 + x2) / 2, y: (y1 + y2) / 2 }, this.linkLayer);
        const title = el("title", {}, line);
        this.links.set(`${a}-${b}`, { line, label, mark, title });
      }
    }
    for (const name of names) {
      const [x, y] = this.pos.get(name);
      const g = el("g", { class: "member", "data-member": name, "data-role": "down", "data-term": "",
        transform: `translate(${x},${y})`, tabindex: "0" }, this.memberLayer);
      el("circle", { class: "halo", r: r + 15 }, g);
      el("circle", { class: "timer-bg", r: r + 8 }, g);
      const timer = el("circle", { class: "timer", r: r + 8, transform: "rotate(-90)" }, g);
      el("circle", { class: "body", r }, g);
      const term = el("text", { class: "term", y: -5 }, g);
      const role = el("text", { class: "role-label", y: r * 0.55 }, g);
      const mark = el("text", { class: "mark" }, g);
      const label = el("text", { class: "name", y: -(r + 19) }, g);
      label.textContent = name;
      const sub1 = el("text", { class: "sub", y: r + 23 }, g);
      const sub2 = el("text", { class: "sub", y: r + 37 }, g);
      const title = el("title", {}, g);
      g.addEventListener("click", () => this.onSelect(name));
      this.members.set(name, { g, timer, term, role, mark, sub1, sub2, title });
    }
    this.select(this.selected);
  }

  select(name) {
    this.selected = name;
    for (const [n, m] of this.members) m.g.classList.toggle("selected", n === name);
  }

  render(frame, t, inFlight) {
    if (!frame || !frame.cluster) {
      this.layout([]);
      this.center.textContent = "no cluster";
      this.drawDots([]);
      return;
    }
    this.layout(frame.cluster.names);
    const lead = frame.leader;
    this.center.textContent = lead ? `term ${frame.term} · leader ${lead}` : `term ${frame.term} · no leader`;
    for (const m of frame.members) this.drawMember(m, t);
    const seen = new Set();
    for (const lk of frame.links) {
      const key = `${lk.a}-${lk.b}`;
      const v = this.links.get(key);
      if (!v) continue;
      seen.add(key);
      v.line.setAttribute("data-state", lk.state);
      v.line.setAttribute("data-ab", lk.ab);
      v.line.setAttribute("data-ba", lk.ba);
      v.title.textContent = `${lk.a}→${lk.b}: ${lk.label_ab}\n${lk.b}→${lk.a}: ${lk.label_ba}`;
      const labels = [];
      if (lk.ab !== "ok" && lk.ab !== "cut") labels.push(`${lk.a}→${lk.b} ${lk.label_ab}`);
      if (lk.ba !== "ok" && lk.ba !== "cut") labels.push(`${lk.b}→${lk.a} ${lk.label_ba}`);
      if (lk.state === "cut" && lk.ab !== lk.ba) labels.push(lk.ab === "cut" ? `${lk.a}→${lk.b} cut` : `${lk.b}→${lk.a} cut`);
      v.label.textContent = labels.join(", ");
      v.mark.textContent = lk.ab === "cut" || lk.ba === "cut" ? "✕" : "";
    }
    for (const [key, v] of this.links) if (!seen.has(key)) v.line.setAttribute("data-state", "ok");
    this.drawDots(inFlight);
  }

  drawMember(m, t) {
    const v = this.members.get(m.name);
    if (!v) return;
    const role = m.role;
    v.g.setAttribute("data-role", role);
    v.g.setAttribute("data-term", m.term ?? "");
    v.g.setAttribute("data-removed", m.removed ? "true" : "false");
    v.g.setAttribute("data-commit", m.commit ?? "");
    const silent = role === "down" || role === "paused";
    v.term.textContent = silent ? "" : m.term ?? "";
    v.role.textContent = m.removed ? "removed" : role;
    v.mark.textContent = role === "down" ? "✕" : role === "paused" ? "❚❚" : "";
    const vote = m.vote ? `voted ${m.vote}` : "no vote";
    const lead = m.leader && role !== "leader" && !this.compact ? ` · follows ${m.leader}` : "";
    // Down but its process runs: starting, or not answering.
    const why = m.removed ? "removed" : m.process === "running" ? "no answer" : m.process;
    v.sub1.textContent = silent ? why : `${vote}${lead}`;
    v.sub2.textContent = m.commit === null || this.compact ? "" : `commit ${m.commit} · applied ${m.applied}`;
    v.title.textContent = `${m.name} (${m.id}): ${role}${m.removed ? ", removed from the configuration" : ""}`
      + (m.term !== null ? `, term ${m.term}, ${vote}, log ${m.first_index}..${m.last_index}` : "")
      + (m.error ? `\n${m.error}` : "");
    // The election timer: what is left of this term's randomised timeout, running down between
    // the member's reports (Raft paper 5.2).
    const len = 2 * Math.PI * (this.r + 8);
    if (m.timer && role !== "down" && role !== "paused") {
      const left = Math.max(0, m.timer.remaining_ms - (t - m.timer.at) * 1000);
      const frac = m.timer.timeout_ms > 0 ? Math.min(1, left / m.timer.timeout_ms) : 0;
      v.timer.setAttribute("stroke-dasharray", `${(len * frac).toFixed(1)} ${len.toFixed(1)}`);
      v.timer.style.display = "";
    } else {
      v.timer.style.display = "none";
    }
  }

  drawDots(inFlight) {
    while (this.dots.length < inFlight.length) {
      const c = el("circle", { class: "dot" }, this.dotLayer);
      el("title", {}, c);
      this.dots.push(c);
    }
    for (let i = 0; i < this.dots.length; i++) {
      const c = this.dots[i];
      if (i >= inFlight.length) { c.style.display = "none"; continue; }
      const [m, frac] = inFlight[i];
      const a = this.pos?.get(m.from), b = this.pos?.get(m.to);
      if (!a || !b) { c.style.display = "none"; continue; }
      // A lost message stops halfway and fades: its link is cut or its receiver is down.
      const f = m.lost ? Math.min(frac, 0.5) : frac;
      const [colour, radius] = dotStyle(m);
      c.style.display = "";
      c.setAttribute("cx", a[0] + (b[0] - a[0]) * f);
      c.setAttribute("cy", a[1] + (b[1] - a[1]) * f);
      c.setAttribute("r", radius);
      c.setAttribute("fill", colour);
      c.setAttribute("class", `dot ${m.type}${m.lost ? " lost" : ""}`);
      c.style.opacity = m.lost && frac > 0.5 ? Math.max(0, 1 - (frac - 0.5) * 2) : "";
      c.firstChild.textContent = `${m.from}→${m.to}: ${m.text}${m.lost ? " (lost)" : ""}`;
    }
  }
}

// How long a dot takes from sender to receiver: slow enough to see at any pace, longer on a
// slow link. (Real messages take a millisecond; the picture shows which way they went.)
export function travelTime(heartbeatMs) {
  const base = Math.min(0.7, Math.max(0.3, heartbeatMs * 0.0008));
  return (m) => base + (m.delay_ms || 0) / 1000;
}
