// Each member's log tail as a row of entries, aligned by index, coloured by term (the number in
// each box is its term, as RaftScope draws it). Committed entries are solid, the others
// outlined; the member's commit index has a bar after it; divergent entries (held by no leader,
// to be overwritten) are crossed out.

const TERM_COLOURS = ["#5c6bc0", "#26a69a", "#ef5350", "#ab47bc", "#8d6e63", "#0288d1", "#7cb342",
  "#fb8c00", "#d81b60", "#546e7a"];
const MOST = 30; // entries shown at most (members report their last 30)
const BOX = 28; // px per entry, gap included

export function termColour(term) {
  return TERM_COLOURS[term % TERM_COLOURS.length];
}

function span(cls, text = "") {
  const s = document.createElement("span");
  if (cls) s.className = cls;
  s.textContent = text;
  return s;
}

export function renderLogs(div, frame) {
  if (!frame || !frame.cluster) {
    div.replaceChildren(span("dim", "no cluster"));
    return;
  }
  const members = frame.members.filter((m) => m.last_index !== null);
  if (!members.length) {
    div.replaceChildren(span("dim", "no member has answered yet"));
    return;
  }
  const last = Math.max(...members.map((m) => m.last_index));
  // As many of the newest entries as fit in the panel: the end of the log is what changes.
  const fit = Math.max(6, Math.floor(((div.clientWidth || 700) - 56) / BOX));
  const lo = Math.max(1, last - Math.min(MOST, fit) + 1);
  const rows = [];
  const index = document.createElement("div");
  index.className = "log-index";
  index.appendChild(span("who", "index"));
  for (let i = lo; i <= last; i++) index.appendChild(span("", String(i)));
  rows.push(index);
  for (const m of frame.members) {
    const row = document.createElement("div");
    row.className = `logrow ${m.role}`;
    row.dataset.log = m.name;
    row.dataset.commit = m.commit ?? "";
    const who = span(`who ${m.role}`, m.name);
    who.title = m.commit === null ? `${m.name}: ${m.role}` : `${m.name}: commit ${m.commit}, applied ${m.applied}`;
    row.appendChild(who);
    const held = new Map((m.log || []).map((e) => [e[0], e]));
    for (let i = lo; i <= last; i++) {
      const e = held.get(i);
      if (!e) { row.appendChild(span("entry gap")); continue; }
      const [idx, term, what, flag] = e;
      const committed = m.commit !== null && idx <= m.commit;
      const box = span("entry", String(term));
      box.dataset.index = idx;
      box.dataset.term = term;
      box.dataset.what = what;
      box.dataset.committed = committed ? "true" : "false";
      box.dataset.divergent = flag === "divergent" ? "true" : "false";
      box.style.background = termColour(term);
      box.style.borderColor = termColour(term);
      if (idx === m.commit) box.classList.add("commit-mark");
      box.title = `${m.name} #${idx}, term ${term}: ${what}` + (committed ? " (committed)" : " (not committed)")
        + (flag === "divergent" ? "; divergent: the leader holds another entry here" : "");
      row.appendChild(box);
    }
    rows.push(row);
  }
  div.replaceChildren(...rows);
}
