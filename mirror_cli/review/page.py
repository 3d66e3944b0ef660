"""The review page itself: one HTML document with its style and script (no framework, no files
to serve). Text from the store is inserted with textContent, never as markup."""

from __future__ import annotations

import html
import json

_STYLE = """
:root{--ink:#3b2414;--muted:#8a6a52;--card:#fffaf3;--line:#ecd9c4;--accent:#e8863a;
--ok:#2f8f5b;--bad:#c0392b;--draft:#b07d2b;--bg:linear-gradient(160deg,#fbe3c4,#f6c38f)}
*{box-sizing:border-box}body{margin:0;font:14px/1.4 system-ui,sans-serif;color:var(--ink);
background:var(--bg);min-height:100vh}
header{display:flex;flex-wrap:wrap;gap:12px;align-items:center;padding:14px 22px;
background:rgba(255,250,243,.85);border-bottom:1px solid var(--line);position:sticky;top:0;z-index:2}
h1{font-size:18px;margin:0 12px 0 0}h2{font-size:17px;margin:0 0 12px}h1 small{color:var(--muted);font-weight:400}
.tabs button,.filters select{font:inherit;border:1px solid var(--line);background:#fff;border-radius:8px;
padding:6px 10px;color:var(--ink)}.tabs button[aria-pressed=true]{background:var(--accent);color:#fff;
border-color:var(--accent)}.filters{display:flex;gap:8px}.counts{margin-left:auto;color:var(--muted)}
.counts b{color:var(--ink)}main{display:grid;grid-template-columns:minmax(300px,1fr) 640px;gap:20px;padding:20px 22px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(128px,1fr));gap:12px;align-content:start}
.card{background:var(--card);border-radius:12px;padding:6px;border:2px solid transparent;cursor:pointer;
box-shadow:0 2px 8px rgba(140,70,20,.12)}.card.sel{border-color:var(--accent)}
.card{position:relative}.card img{width:100%;aspect-ratio:1;border-radius:8px;display:block;background:#f3e2cf}
.card .badge{position:absolute;top:10px;left:10px;box-shadow:0 1px 3px rgba(0,0,0,.25)}
.card .cap{margin:6px 2px 0;font-size:12px;font-weight:600;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.card .sub{margin:0 2px;font-size:12px;color:var(--muted);white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.badge{font-size:11px;font-weight:600;border-radius:99px;padding:1px 8px;color:#fff;text-transform:uppercase}
.badge.approved{background:var(--ok)}.badge.rejected{background:var(--bad)}.badge.draft{background:var(--draft)}
.detail{background:var(--card);border-radius:16px;padding:16px;box-shadow:0 4px 14px rgba(140,70,20,.15);
position:sticky;top:78px;align-self:start}.pair{display:grid;grid-template-columns:1fr 1fr;gap:12px}
.pair figure{margin:0}.pair img{width:100%;aspect-ratio:1;border-radius:10px;background:#f3e2cf;display:block}
.pair figcaption{color:var(--muted);font-size:12px;margin-top:4px}.empty{display:flex;align-items:center;
justify-content:center;aspect-ratio:1;border-radius:10px;border:2px dashed var(--line);color:var(--muted);
text-align:center;padding:20px}.meta{margin:12px 0;display:flex;gap:10px;align-items:center;flex-wrap:wrap}
.meta .who{color:var(--muted)}.card .empty{padding:6px;font-size:12px}
.card .sub.hidden-by,.meta .who.hidden-by{color:var(--bad)}
.note{white-space:pre-wrap;background:#fff;border:1px solid var(--line);
border-radius:8px;padding:8px;min-height:20px}.actions{display:flex;gap:8px;margin-top:12px;flex-wrap:wrap}
.actions button,.actions a{font:inherit;border-radius:8px;padding:8px 14px;border:1px solid var(--line);
background:#fff;color:var(--ink);cursor:pointer;text-decoration:none}.actions .approve{background:var(--ok);
color:#fff;border-color:var(--ok)}.actions .reject{background:var(--bad);color:#fff;border-color:var(--bad)}
kbd{font:11px ui-monospace,monospace;border:1px solid currentColor;border-radius:4px;padding:0 4px;opacity:.8}
textarea{width:100%;font:inherit;border-radius:8px;border:1px solid var(--accent);padding:8px;margin-top:8px}
.help{color:var(--muted);font-size:12px;margin-top:10px}.toast{position:fixed;bottom:18px;left:50%;
transform:translateX(-50%);background:var(--ink);color:#fff;padding:8px 16px;border-radius:8px;opacity:0;
transition:opacity .2s}.toast.show{opacity:.92}.none{color:var(--muted);padding:30px}
"""

_SCRIPT = """
const CFG = JSON.parse(document.getElementById('cfg').textContent);
const S = {queue:'set', items:[], i:0, noting:false};
const $ = (s) => document.querySelector(s);
const el = (tag, cls, text) => { const e = document.createElement(tag); if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text; return e; };
const imgUrl = (it, which) => `/img/${it.kind}/${it.key}?which=${which}&v=${it.sha256.slice(0, 12)}`;
function toast(msg) { const t = $('#toast'); t.textContent = msg; t.classList.add('show');
  clearTimeout(t._h); t._h = setTimeout(() => t.classList.remove('show'), 1800); }
async function load() {
  const q = new URLSearchParams({queue: S.queue});
  for (const f of ['stage', 'variant', 'state']) { const v = $('#f-' + f).value; if (v) q.set(f, v); }
  const r = await fetch('/api/items?' + q); S.items = (await r.json()).items;
  S.i = Math.min(S.i, Math.max(0, S.items.length - 1)); fillVariants(); draw();
}
function fillVariants() {
  const sel = $('#f-variant'), keep = sel.value, seen = new Set(S.items.map((i) => i.variant));
  if (keep) seen.add(keep);
  sel.replaceChildren(new Option(S.queue === 'set' ? 'every variant' : 'every user', ''));
  [...seen].sort().forEach((v) => sel.add(new Option(v, v))); sel.value = keep;
}
function draw() {
  const grid = $('#grid'); grid.replaceChildren();
  const n = {approved: 0, draft: 0, rejected: 0}; S.items.forEach((it) => n[it.state]++);
  $('#counts').replaceChildren(...['approved', 'draft', 'rejected'].flatMap((k) =>
    [el('b', '', String(n[k])), document.createTextNode(' ' + k + '  ')]));
  if (!S.items.length) { grid.append(el('div', 'none', S.queue === 'set'
      ? 'Nothing to review here. Render a set with mirror seed-fallbacks.' : 'No flagged avatars.')); }
  S.items.forEach((it, idx) => {
    const c = el('div', 'card' + (idx === S.i ? ' sel' : '')); c.dataset.key = it.key;
    let im = el('div', 'empty', 'image deleted');  // a report removed it: nothing to load
    if (!it.image_removed) { im = el('img'); im.src = imgUrl(it, 'current'); im.alt = it.label + ' ' + it.variant;
      im.loading = 'lazy'; }
    c.append(im, el('span', 'badge ' + it.state, it.state), el('div', 'cap', it.label), el('div', 'sub', it.variant));
    if (it.hidden) c.append(el('div', 'sub hidden-by', it.hidden));
    c.onclick = () => { S.i = idx; draw(); }; grid.append(c);
  });
  detail();
}
function detail() {
  const d = $('#detail'), it = S.items[S.i]; d.replaceChildren();
  if (!it) { d.append(el('div', 'none', 'Select an asset.')); return; }
  d.append(el('h2', '', `${it.label} · ${it.variant}`));
  const pair = el('div', 'pair'), now = el('figure'), before = el('figure');
  let big = el('div', 'empty', 'Image deleted: ' + it.hidden);
  if (!it.image_removed) { big = el('img'); big.src = imgUrl(it, 'current'); big.alt = 'current render'; }
  now.append(big, el('figcaption', '', S.queue === 'set' ? 'This render' : 'Flagged avatar'));
  if (it.has_previous) { const p = el('img'); p.src = imgUrl(it, 'previous'); p.alt = 'previous approved';
    before.append(p); } else before.append(el('div', 'empty', 'No earlier approved version'));
  before.append(el('figcaption', '', S.queue === 'set' ? 'Previously approved (served now)' : 'Earlier avatar'));
  pair.append(now, before); d.append(pair);
  const meta = el('div', 'meta'); meta.append(el('span', 'badge ' + it.state, it.state));
  meta.append(el('span', 'who', it.by ? `by ${it.by}, ${it.at.slice(0, 16).replace('T', ' ')}` : 'not reviewed yet'));
  if (it.reason) meta.append(el('span', 'who', 'flagged: ' + it.reason));
  if (it.hidden) meta.append(el('span', 'who hidden-by', it.hidden + ' (never shown to the user)'));
  d.append(meta, el('div', 'note', it.note || 'No note yet (N to write one)'));
  const acts = el('div', 'actions');
  const b = (cls, label, key, fn) => { const x = el('button', cls); x.append(label + ' ', el('kbd', '', key));
    x.onclick = fn; acts.append(x); };
  b('approve', 'Approve', 'A', () => decide('approved'));
  b('reject', 'Reject', 'R', () => decide('rejected'));
  b('', 'Note', 'N', openNote);
  if (it.kind === 'fallback') b('', 'Re-render', 'E', rerender);
  d.append(acts);
  const ta = el('textarea'); ta.id = 'note-text'; ta.rows = 3; ta.hidden = true;
  ta.placeholder = 'A note for the team, Enter to save, Esc to cancel'; d.append(ta);
  d.append(el('div', 'help', '← → or J K move · A approve · R reject · N note · E re-render one asset'));
}
async function post(url, body) {
  const r = await fetch(url, {method: 'POST', body: JSON.stringify(body),
    headers: {'Content-Type': 'application/json', 'X-Review-Token': CFG.token}});
  const data = await r.json(); if (!r.ok) { toast(data.error || data.detail || 'failed'); throw data; }
  return data;
}
async function decide(state, note) {
  const it = S.items[S.i]; if (!it) return;
  const r = await post('/api/decide', {kind: it.kind, key: it.key, state: state, note: note});
  Object.assign(it, {state: r.state, by: r.by, at: r.at, note: r.note, sha256: r.sha256});
  toast(`${it.label} · ${it.variant}: ${r.state}` + (note !== undefined && note !== null ? ' (note saved)' : ''));
  if (state && S.i < S.items.length - 1) S.i++;
  draw();
}
function openNote() { const ta = $('#note-text'); if (!ta) return; ta.hidden = false;
  ta.value = S.items[S.i].note || ''; S.noting = true; ta.focus(); }
async function rerender() { const it = S.items[S.i]; toast('re-rendering…');
  const r = await post('/api/rerender', {key: it.key}); toast(`re-rendered: ${r.rendered}`); await load(); }
document.addEventListener('keydown', (e) => {
  if (S.noting) {
    if (e.key === 'Escape') { S.noting = false; $('#note-text').hidden = true; }
    if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); S.noting = false;
      decide(null, $('#note-text').value); }
    return;
  }
  if (e.target.tagName === 'SELECT' || e.ctrlKey || e.metaKey || e.altKey) return;
  const k = e.key.toLowerCase();
  if (k === 'arrowright' || k === 'j') { S.i = Math.min(S.i + 1, S.items.length - 1); draw(); }
  else if (k === 'arrowleft' || k === 'k') { S.i = Math.max(S.i - 1, 0); draw(); }
  else if (k === 'a') decide('approved');
  else if (k === 'r') decide('rejected');
  else if (k === 'n') { e.preventDefault(); openNote(); }
  else if (k === 'e' && S.items[S.i] && S.items[S.i].kind === 'fallback') rerender();
});
document.querySelectorAll('.tabs button').forEach((btn) => btn.onclick = () => {
  S.queue = btn.dataset.queue; S.i = 0; $('#f-variant').value = '';
  document.querySelectorAll('.tabs button').forEach((x) => x.setAttribute('aria-pressed', x === btn));
  load(); });
for (const f of ['stage', 'variant', 'state']) $('#f-' + f).onchange = () => { S.i = 0; load(); };
load();
"""


def render_page(token: str, reviewer: str, style: str, labels: dict[str, str], folder: str) -> str:
    cfg = json.dumps({"token": token}).replace("<", "\\u003c")
    stage_options = "".join(
        f'<option value="{html.escape(s)}">{html.escape(lbl)}</option>' for s, lbl in labels.items()
    )
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Review · {html.escape(style)}</title><meta name="viewport" content="width=device-width,initial-scale=1">
<style>{_STYLE}</style></head><body>
<header><h1>Review <small>{html.escape(style)} · {html.escape(reviewer)}</small></h1>
<div class="tabs"><button data-queue="set" aria-pressed="true">Fallback set</button>
<button data-queue="flagged" aria-pressed="false">Flagged avatars</button></div>
<div class="filters"><select id="f-stage" aria-label="stage">
<option value="">every stage</option>{stage_options}</select>
<select id="f-variant" aria-label="variant"><option value="">every variant</option></select>
<select id="f-state" aria-label="state"><option value="">every state</option><option>draft</option>
<option>approved</option><option>rejected</option></select></div>
<div class="counts" id="counts" title="{html.escape(folder)}"></div></header>
<main><section class="grid" id="grid" aria-label="assets"></section>
<aside class="detail" id="detail" aria-live="polite"></aside></main>
<div class="toast" id="toast" role="status"></div>
<script type="application/json" id="cfg">{cfg}</script><script>{_SCRIPT}</script></body></html>"""
