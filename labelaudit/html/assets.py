"""Inline CSS and JavaScript of report.html (kept in Python so a wheel carries them without package data).

The script reads the page's JSON blob and builds every data-bearing node with ``textContent`` or attribute
setters; it never assigns data to ``innerHTML``.
"""

from __future__ import annotations

STYLE = """
:root{--fg:#1d2330;--muted:#667085;--line:#e4e7ec;--bg:#f7f8fa;--accent:#2f6fed;--bad:#d64541;--ok:#2e9e5b}
*{box-sizing:border-box}
body{margin:0;font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
header{background:#fff;border-bottom:1px solid var(--line);padding:12px 24px;position:sticky;top:0;z-index:2}
header h1{margin:0;font-size:18px;display:inline-block}
header .source{display:inline-block;margin:0 0 0 12px;color:var(--muted);word-break:break-all}
nav{float:right}nav a{margin-left:16px;color:var(--accent);text-decoration:none}
main{padding:8px 24px 48px;max-width:1400px;margin:0 auto}
h2{font-size:17px;margin:24px 0 10px}h3{font-size:14px;margin:0 0 8px}
.muted{color:var(--muted);font-size:12px}
.stats{display:flex;flex-wrap:wrap;gap:10px;margin:0}
.estimate-note{background:#fff8e1;border:1px solid #f0d58a;border-radius:8px;padding:8px 12px;margin:10px 0 0}
.stats div{background:#fff;border:1px solid var(--line);border-radius:8px;padding:8px 12px;min-width:120px}
.stats dt{color:var(--muted);font-size:11px;text-transform:uppercase;letter-spacing:.04em}
.stats dd{margin:2px 0 0;font-size:16px;font-weight:600;word-break:break-word}
.panels{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:16px;margin-top:16px}
@media (max-width:900px){.panels{grid-template-columns:1fr}}
.panel{background:#fff;border:1px solid var(--line);border-radius:8px;padding:12px;overflow:auto}
.bar-row{display:grid;grid-template-columns:minmax(80px,30%) 1fr 52px;gap:8px;align-items:center;margin:3px 0}
.bar-label{overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.bar-track{background:#f0f2f5;border-radius:3px;height:12px;display:block}
.bar{display:block;height:12px;border-radius:3px;background:linear-gradient(90deg,#f0a35e,var(--bad))}
.bar-value{text-align:right;font-variant-numeric:tabular-nums}
table.heat{border-collapse:collapse;font-size:12px}
table.heat td{width:34px;height:30px;text-align:center;border:1px solid #fff;cursor:pointer;color:#fff;font-weight:600}
table.heat th{font-weight:500;padding:2px 6px;max-width:140px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
table.heat th.rowh{text-align:right}
table.heat th.col{height:90px;vertical-align:bottom}
table.heat th.col span{writing-mode:vertical-rl;transform:rotate(180deg);display:inline-block;max-height:90px;
overflow:hidden;text-overflow:ellipsis}
table.heat th.corner{color:var(--muted);font-size:11px;vertical-align:bottom}
.controls{display:flex;flex-wrap:wrap;gap:12px;align-items:center;background:#fff;border:1px solid var(--line);
border-radius:8px;padding:10px 12px}
.controls select{max-width:260px}
button{font:inherit;border:1px solid var(--line);background:#fff;border-radius:6px;padding:4px 10px;cursor:pointer}
button:hover{border-color:var(--accent)}
#download{background:var(--accent);color:#fff;border-color:var(--accent)}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(210px,1fr));gap:12px;margin-top:12px}
.card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:8px;display:flex;flex-direction:column;
gap:6px;min-width:0}
.card.flagged{border-left:3px solid var(--bad)}.card.clean{border-left:3px solid var(--ok)}
.thumb{width:96px;height:96px;object-fit:contain;background:#f0f2f5;border-radius:4px;align-self:center}
.placeholder{width:96px;height:96px;background:#f0f2f5;border-radius:4px;align-self:center;display:flex;
align-items:center;justify-content:center;color:var(--muted);font-size:11px}
.excerpt{font-size:12px;background:#f7f8fa;border-radius:4px;padding:6px;max-height:96px;overflow:auto;
white-space:pre-wrap;word-break:break-word}
.name{font-size:11px;color:var(--muted);overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.labels{display:flex;flex-wrap:wrap;gap:4px;align-items:center;font-size:12px}
.given{background:#fde8e7;color:#9b2c28;border-radius:4px;padding:1px 6px;word-break:break-all}
.sugg{background:#e3f4ea;color:#1e6b3e;border-radius:4px;padding:1px 6px;word-break:break-all}
.score{font-size:12px;font-variant-numeric:tabular-nums;cursor:help;border-bottom:1px dotted var(--muted);
align-self:flex-start}
.decide{display:flex;flex-wrap:wrap;gap:4px;align-items:center}
.decide button{padding:2px 6px;font-size:12px}
.decide select{font-size:12px;max-width:110px}
.decide select.need{outline:2px solid var(--bad)}
.decide button.on[data-action=keep]{background:var(--ok);color:#fff;border-color:var(--ok)}
.decide button.on[data-action=relabel]{background:var(--accent);color:#fff;border-color:var(--accent)}
.decide button.on[data-action=remove]{background:var(--bad);color:#fff;border-color:var(--bad)}
.decide button.on[data-action=unsure]{background:var(--muted);color:#fff;border-color:var(--muted)}
.pager{margin:14px 0;text-align:center}
details.cls{background:#fff;border:1px solid var(--line);border-radius:8px;margin:8px 0;padding:8px 12px}
details.cls summary{cursor:pointer;font-weight:600}
details.cls h4{margin:10px 0 4px;font-size:13px}
.empty{color:var(--muted);padding:12px}
"""

SCRIPT = r"""
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("labelaudit-data").textContent);
  const PAGE = 48;
  const rows = data.rows;
  const byId = new Map();
  for (const r of rows.concat(data.clean, data.verify || [])) byId.set(r.id, r);
  const state = { cls: "", pair: "", method: "", sort: "asc", page: 0 };
  // The grid holds every suspect plus the top-ranked unflagged samples; counts keep the two apart.
  function isSuspect(r) { return r.flag || !!r.type; }
  const nSuspects = rows.filter(isSuspect).length;
  const storeKey = "labelaudit-decisions-" + data.reportKey;
  let decisions = new Map();
  try {
    const saved = JSON.parse(window.localStorage.getItem(storeKey) || "[]");
    for (const [id, d] of saved) if (byId.has(id)) decisions.set(id, d);
  } catch (e) { /* storage unavailable (file:// in some browsers): decisions live for this visit */ }

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function fmt(x, digits) {
    return x === null || x === undefined ? "–" : Number(x).toFixed(digits === undefined ? 3 : digits);
  }
  function pairKey(g, s) { return JSON.stringify([g, s]); }
  function addOptions(select, values) {
    for (const [value, label] of values) {
      const o = el("option", null, label);
      o.value = value;
      select.appendChild(o);
    }
  }

  // ---------------------------------------------------------------- filters
  const fClass = document.getElementById("f-class");
  const fPair = document.getElementById("f-pair");
  const fMethod = document.getElementById("f-method");
  const fSort = document.getElementById("f-sort");
  // A class is shown by its name from a --classes file (data.names), and stays its key in every decision.
  const nm = (k) => (data.names && k !== null && k in data.names ? data.names[k] : k);
  addOptions(fClass, data.classes.map((c) => [c, nm(c)]));
  const pairCounts = new Map();
  for (const r of rows) if (r.given !== r.sugg) {
    const k = pairKey(r.given, r.sugg);
    pairCounts.set(k, (pairCounts.get(k) || 0) + 1);
  }
  const pairs = Array.from(pairCounts.entries()).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  addOptions(fPair, pairs.map(([k, n]) => {
    const [g, s] = JSON.parse(k);
    return [k, nm(g) + " → " + nm(s) + " (" + n + ")"];
  }));
  addOptions(fMethod, data.methods.map((m) => [m, m]));

  function filtered() {
    let out = rows.filter((r) =>
      (!state.cls || r.given === state.cls) &&
      (!state.pair || pairKey(r.given, r.sugg) === state.pair) &&
      (!state.method || (r.m[state.method] && r.m[state.method][1])));
    const sign = state.sort === "desc" ? -1 : 1;
    out = out.slice().sort((a, b) => {
      const sa = a.score === null ? Infinity : a.score, sb = b.score === null ? Infinity : b.score;
      return sa === sb ? a.rank - b.rank : (sa < sb ? -sign : sign);
    });
    return out;
  }

  // ---------------------------------------------------------------- decisions
  function decisionText(d) { return d.action === "relabel" ? "relabel:" + d.label : d.action; }
  function persist() {
    try { window.localStorage.setItem(storeKey, JSON.stringify(Array.from(decisions.entries()))); } catch (e) { /* */ }
    document.getElementById("decided").textContent = String(decisions.size);
    const verifyDecided = document.getElementById("verify-decided");
    const marked = (data.verify || []).filter((r) => decisions.has(r.id)).length;
    if (verifyDecided) verifyDecided.textContent = String(marked);
  }
  function putDecision(id, d) {
    if (d) decisions.set(id, d); else decisions.delete(id);
    persist();
    for (const card of document.querySelectorAll(".card")) if (card.dataset.id === id) paintDecision(card);
  }
  function setDecision(id, action, label) {
    const cur = decisions.get(id);
    const same = cur && cur.action === action && (action !== "relabel" || cur.label === label);
    putDecision(id, same ? null : { action: action, label: action === "relabel" ? label : null });
  }
  function paintDecision(card) {
    const d = decisions.get(card.dataset.id);
    for (const b of card.querySelectorAll(".decide button")) {
      const on = !!d && d.action === b.dataset.action;
      b.classList.toggle("on", on);
      b.setAttribute("aria-pressed", on ? "true" : "false");
    }
    const sel = card.querySelector(".decide select");
    if (sel && d && d.action === "relabel") sel.value = d.label;
    if (sel) sel.classList.remove("need");
    card.dataset.decision = d ? decisionText(d) : "";
  }

  // ---------------------------------------------------------------- cards
  function card(r, kind) {
    const c = el("div", "card " + kind);
    c.dataset.id = r.id;
    if (r.thumb) {
      const img = el("img", "thumb");
      img.src = r.thumb; img.alt = r.path || r.id; img.loading = "lazy";
      c.appendChild(img);
    } else if (r.text !== null && r.text !== undefined) {
      c.appendChild(el("div", "excerpt", r.text));
    } else {
      c.appendChild(el("div", "placeholder", "no preview"));
    }
    const name = el("div", "name", "#" + r.rank + " " + (r.path ? r.path.split(/[\\/]/).slice(-2).join("/") : r.id));
    name.title = r.path || r.id;
    c.appendChild(name);
    const labels = el("div", "labels");
    labels.appendChild(el("span", "given", nm(r.given)));
    if (r.sugg !== r.given) {
      labels.appendChild(el("span", null, "→"));
      labels.appendChild(el("span", "sugg", nm(r.sugg)));
    }
    c.appendChild(labels);
    const kindNote = r.type && r.type !== "label_error" ? " · " + r.type : "";
    const score = el("div", "score", "score " + fmt(r.score) + kindNote);
    const tip = ["consensus " + fmt(r.score) + ", suggested " + nm(r.sugg) + " (p " + fmt(r.prob, 2) + ")"];
    for (const m of data.methods) {
      const v = r.m[m];
      if (!v) continue;
      const to = v[2] !== null && v[2] !== r.given ? " → " + nm(v[2]) : "";
      tip.push(m + ": " + fmt(v[0]) + (v[1] ? " flagged" : "") + to);
    }
    score.title = tip.join("\n");
    c.appendChild(score);
    const decide = el("div", "decide");
    for (const action of ["keep", "relabel", "remove"]) {
      const b = el("button", null, action);
      b.type = "button"; b.dataset.action = action;
      decide.appendChild(b);
    }
    const sel = el("select");
    sel.title = "relabel to";
    // Preselect the suggested class, or nothing: defaulting to the alphabetically first class made one
    // click on "relabel" move a correctly labelled sample to an arbitrary class.
    addOptions(sel, [["", "relabel to…"]].concat(data.classes.filter((k) => k !== r.given).map((k) => [k, nm(k)])));
    sel.value = r.sugg !== r.given && data.classes.includes(r.sugg) ? r.sugg : "";
    decide.appendChild(sel);
    decide.addEventListener("click", (ev) => {
      const b = ev.target.closest("button");
      if (!b) return;
      if (b.dataset.action === "relabel" && !sel.value) {
        sel.classList.add("need");  // no class chosen yet: ask for one instead of guessing
        sel.focus();
        return;
      }
      setDecision(r.id, b.dataset.action, sel.value);
    });
    sel.addEventListener("change", () => {
      // Choosing a class is the relabel decision; choosing "relabel to…" again withdraws it.
      const d = decisions.get(r.id);
      if (sel.value) putDecision(r.id, { action: "relabel", label: sel.value });
      else if (d && d.action === "relabel") putDecision(r.id, null);
    });
    c.appendChild(decide);
    paintDecision(c);
    return c;
  }

  // ---------------------------------------------------------------- grid
  const grid = document.getElementById("grid");
  function render() {
    const list = filtered();
    const pages = Math.max(1, Math.ceil(list.length / PAGE));
    state.page = Math.min(state.page, pages - 1);
    const slice = list.slice(state.page * PAGE, (state.page + 1) * PAGE);
    grid.replaceChildren(...slice.map((r) => card(r, r.flag ? "flagged" : "")));
    if (!slice.length) grid.appendChild(el("div", "empty", "No suspect matches these filters."));
    const count = document.getElementById("count");
    const shownSuspects = list.filter(isSuspect).length;
    const others = rows.length - nSuspects;
    const part = (n, total) => (n === total ? String(n) : n + " of " + total);
    let text = part(shownSuspects, nSuspects) + (nSuspects === 1 ? " suspect" : " suspects");
    if (others) text += " · " + part(list.length - shownSuspects, others) + " more top-ranked, not flagged";
    count.textContent = text;
    count.dataset.shown = String(list.length);
    count.dataset.suspects = String(shownSuspects);
    document.getElementById("page").textContent = "page " + (state.page + 1) + " of " + pages;
    document.getElementById("prev").disabled = state.page === 0;
    document.getElementById("next").disabled = state.page >= pages - 1;
  }
  function onFilter(key, select) {
    select.addEventListener("change", () => { state[key] = select.value; state.page = 0; render(); });
  }
  onFilter("cls", fClass); onFilter("pair", fPair); onFilter("method", fMethod); onFilter("sort", fSort);
  document.getElementById("prev").addEventListener("click", () => { state.page -= 1; render(); });
  document.getElementById("next").addEventListener("click", () => { state.page += 1; render(); });
  for (const td of document.querySelectorAll("#heatmap td")) {
    td.addEventListener("click", () => {
      const k = pairKey(td.dataset.given, td.dataset.suggested);
      if (!pairCounts.has(k)) return;
      fPair.value = k; state.pair = k; state.page = 0; render();
      document.getElementById("suspects").scrollIntoView();
    });
  }

  // ---------------------------------------------------------------- per class
  const classList = document.getElementById("class-list");
  for (const s of data.classStats) {
    const d = el("details", "cls");
    d.dataset.cls = s.cls;
    const head = nm(s.cls) + " — " + (100 * s.rate).toFixed(1) + "% estimated error, " + s.flagged + " of " + s.count +
      " flagged" + (s.confused ? ", most confused with " + nm(s.confused) : "");
    d.appendChild(el("summary", null, head));
    d.addEventListener("toggle", () => {
      if (!d.open || d.dataset.filled) return;
      d.dataset.filled = "1";
      const suspects = rows.filter((r) => r.given === s.cls && r.flag).sort((a, b) => a.rank - b.rank).slice(0, 12);
      const clean = data.cleanIds.map((id) => byId.get(id)).filter((r) => r && r.given === s.cls);
      d.appendChild(el("h4", null, "Suspects (" + suspects.length + " shown)"));
      const g1 = el("div", "grid");
      for (const r of suspects) g1.appendChild(card(r, "flagged"));
      if (!suspects.length) g1.appendChild(el("div", "empty", "No flagged sample."));
      d.appendChild(g1);
      d.appendChild(el("h4", null, "Confidently clean (highest consensus score)"));
      const g2 = el("div", "grid");
      for (const r of clean) g2.appendChild(card(r, "clean"));
      if (!clean.length) g2.appendChild(el("div", "empty", "No unflagged sample."));
      d.appendChild(g2);
    });
    classList.appendChild(d);
  }

  // ---------------------------------------------------------------- verify: the drawn sample
  // The same cards and decisions as the suspects (so the one download carries them), with the buttons named
  // as verification asks: right = keep, wrong = relabel to the chosen class, no class fits = remove, unsure.
  const verifyGrid = document.getElementById("verify-grid");
  const VERIFY_NAMES = { keep: "right", relabel: "wrong →", remove: "no class fits", unsure: "unsure" };
  if (verifyGrid) for (const r of data.verify) {
    const c = card(r, "verify");
    const decide = c.querySelector(".decide");
    const unsure = el("button", null, "unsure");
    unsure.type = "button"; unsure.dataset.action = "unsure";
    decide.insertBefore(decide.querySelector("select"), decide.querySelector("button[data-action=remove]"));
    decide.appendChild(unsure);
    for (const b of decide.querySelectorAll("button")) b.textContent = VERIFY_NAMES[b.dataset.action];
    paintDecision(c);
    verifyGrid.appendChild(c);
  }

  // ---------------------------------------------------------------- CSV download
  function csvField(v) {
    if (v === null || v === undefined) return "";
    const s = String(v);
    return /[",\r\n]/.test(s) || s.trim() !== s ? '"' + s.replace(/"/g, '""') + '"' : s;
  }
  function decisionsCsv() {
    const cols = data.decisionColumns;
    const lines = [cols.map(csvField).join(",")];
    const ordered = Array.from(decisions.keys()).map((id) => byId.get(id)).filter(Boolean);
    ordered.sort((a, b) => a.rank - b.rank);
    for (const r of ordered) {
      const d = decisions.get(r.id);
      const values = {
        rank: r.rank, sample_id: r.id, path: r.path, given_label: r.given, suggested_label: r.sugg,
        decision: decisionText(d), consensus_score: r.score, suggested_prob: r.prob, text: r.text, content_hash: r.hash,
      };
      for (const m of data.methods) values[m + "_score"] = r.m[m] ? r.m[m][0] : null;
      lines.push(cols.map((c) => csvField(values[c])).join(","));
    }
    return lines.join("\n") + "\n";
  }
  document.getElementById("download").addEventListener("click", () => {
    const blob = new Blob([decisionsCsv()], { type: "text/csv;charset=utf-8" });
    const a = el("a");
    a.href = URL.createObjectURL(blob);
    a.download = "decisions.csv";
    document.body.appendChild(a);
    a.click();
    setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
  });
  window.labelauditDecisionsCsv = decisionsCsv;

  persist();
  render();
})();
"""
