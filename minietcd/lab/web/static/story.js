const LIVE_ITEMS = 3000; // live, the oldest items leave the list beyond this many

// The story: the members' explained Raft events in time order, with the lab's own actions
// marked (▶ what was done, and the command that does the same; ✓/✗ how it ended) and notes.

function clock(t) {
  const d = new Date(t * 1000);
  const p = (n, w = 2) => String(n).padStart(w, "0");
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)[0]}`;
}

export class Story {
  constructor(ol) {
    this.ol = ol;
    this.rendered = 0; // how many of the store's items are in the list
    this.byRef = new Map();
    this.origin = null; // replay: times are shown relative to the start
    this.shown = -1;
  }

  reset(origin = null) {
    this.ol.replaceChildren();
    this.rendered = 0;
    this.byRef.clear();
    this.origin = origin;
    this.shown = -1;
  }

  time(t) {
    if (this.origin === null) return clock(t);
    const d = t - this.origin;
    return `${d < 0 ? "−" : "+"}${Math.abs(d).toFixed(2)}s`;
  }

  item(x) {
    const li = document.createElement("li");
    li.dataset.seq = x.seq;
    li.dataset.kind = x.kind;
    const t = document.createElement("span");
    t.className = "t";
    t.textContent = this.time(x.t);
    const m = document.createElement("span");
    m.className = "m";
    m.textContent = x.member || "";
    const text = document.createElement("span");
    if (x.kind === "event") {
      li.className = `event kind-${x.event}`;
      text.textContent = x.text;
      li.title = `${x.event}, term ${x.term}`;
    } else if (x.kind === "action") {
      li.className = "action";
      m.textContent = "lab";
      text.textContent = `▶ ${x.text}${x.source === "lesson" ? " (lesson)" : ""}`;
      if (x.cli) {
        const cli = document.createElement("span");
        cli.className = "cli";
        cli.textContent = `$ ${x.cli}`;
        text.appendChild(cli);
      }
      this.byRef.set(x.seq, li);
    } else if (x.kind === "action-done") {
      li.className = `action-done${x.ok ? "" : " failed"}`;
      m.textContent = "lab";
      text.textContent = `${x.ok ? "✓" : "✗"} ${x.text}`;
    } else {
      li.className = "note";
      text.textContent = x.text;
    }
    li.append(t, m, text);
    return li;
  }

  // Append what is new in `items` (the store's, in order); in replay, dim what lies after t.
  render(items, t) {
    const atBottom = this.ol.scrollTop + this.ol.clientHeight >= this.ol.scrollHeight - 30;
    let added = false;
    for (; this.rendered < items.length; this.rendered++) {
      // Members report a moment apart: put each item in its place by time.
      const x = items[this.rendered];
      const li = this.item(x);
      li.dataset.t = x.t;
      let before = null;
      for (let c = this.ol.lastElementChild; c && Number(c.dataset.t) > x.t; c = c.previousElementSibling) before = c;
      this.ol.insertBefore(li, before);
      added = true;
    }
    if (t !== undefined) {
      let k = 0;
      let lo = 0, hi = items.length;
      while (lo < hi) { const mid = (lo + hi) >> 1; if (items[mid].t <= t) lo = mid + 1; else hi = mid; }
      k = lo;
      if (k !== this.shown) {
        const lis = this.ol.children;
        for (let i = 0; i < lis.length; i++) {
          lis[i].classList.toggle("future", i >= k);
          lis[i].classList.toggle("now", i === k - 1);
        }
        if (k > 0) lis[k - 1].scrollIntoView({ block: "nearest" });
        this.shown = k;
      }
    } else {
      while (this.ol.children.length > LIVE_ITEMS) this.ol.firstElementChild.remove();
      if (added && atBottom) this.ol.scrollTop = this.ol.scrollHeight;
    }
  }
}
