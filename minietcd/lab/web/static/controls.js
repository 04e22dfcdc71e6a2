// The controls: every button posts one action to /api/action, where the lab does exactly what
// the matching `minietcd-lab` command does (the story shows that command).

export async function postJSON(url, body) {
  const resp = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body ?? {}) });
  let answer;
  try { answer = await resp.json(); } catch { answer = { ok: false, text: `HTTP ${resp.status}` }; }
  return answer;
}

export function parseGroups(text) {
  return text.split("|").map((g) => g.split(/[\s,]+/).filter(Boolean)).filter((g) => g.length);
}

const $ = (id) => document.getElementById(id);

export class Controls {
  constructor(root, ring) {
    this.root = root;
    this.ring = ring;
    this.names = "";
    this.enabled = true;
    $("member-select").addEventListener("change", (e) => this.select(e.target.value));
    for (let n = 1; n <= 9; n++) $("up-size").add(new Option(`${n} member${n > 1 ? "s" : ""}`, String(n)));
    $("up-size").value = "3";
    for (const b of root.querySelectorAll("button[data-action]")) {
      b.addEventListener("click", () => this.act(b.dataset.action));
    }
  }

  select(name) {
    $("member-select").value = name;
    this.ring.select(name);
  }

  get member() { return $("member-select").value; }

  update(frame, lab) {
    const names = frame && frame.cluster ? frame.cluster.names : [];
    const key = names.join(",");
    if (key !== this.names) {
      this.names = key;
      for (const id of ["member-select", "link-src", "link-dst"]) {
        const sel = $(id);
        const keep = sel.value;
        sel.replaceChildren(...names.map((n) => new Option(n, n)));
        if (names.includes(keep)) sel.value = keep;
      }
      if (names.length > 1 && $("link-src").value === $("link-dst").value) $("link-dst").value = names[1];
      this.select(names.includes(this.member) ? this.member : names[0] ?? "");
    }
    this.hasCluster = names.length > 0;
  }

  spec(action) {
    const m = this.member;
    switch (action) {
      case "kill": case "restart": case "pause": case "resume": case "isolate":
        return { action, members: [m] };
      case "transfer": return { action, to: m };
      case "remove": case "add": return { action, member: m };
      case "partition": return { action, groups: parseGroups($("groups").value) };
      case "slow": return { action, src: $("link-src").value, dst: $("link-dst").value, latency: Number($("latency").value) };
      case "flaky": return { action, src: $("link-src").value, dst: $("link-dst").value, probability: 0.5 };
      case "blackhole": case "clear": return { action, src: $("link-src").value, dst: $("link-dst").value };
      case "put": return { action, key: $("put-key").value, value: $("put-value").value };
      case "up": return { action, size: Number($("up-size").value), pace: $("up-pace").value };
      default: return { action };
    }
  }

  async act(action) {
    if (!this.enabled) return;
    if ((action === "up" || action === "down") && this.hasCluster
        && !window.confirm(action === "up" ? "Stop the running cluster and start a new one?" : "Stop the cluster?")) {
      return;
    }
    const out = $("action-result");
    out.classList.remove("failed");
    out.textContent = `${action}…`;
    const answer = await postJSON("/api/action", this.spec(action));
    out.classList.toggle("failed", !answer.ok);
    out.textContent = `${answer.ok ? "✓" : "✗"} ${answer.text}${answer.cli ? `   ($ ${answer.cli})` : ""}`;
  }

  disable(why) {
    this.enabled = false;
    for (const b of this.root.querySelectorAll("button")) b.disabled = true;
    $("action-result").textContent = why;
  }
}
