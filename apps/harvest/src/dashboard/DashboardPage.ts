/**
 * The dashboard page: one self-contained HTML document (inline CSS, plain JavaScript, SVG chart), no build step and
 * no dependencies. It reads `GET /dashboard/events` with `fetch` (so that it can send the bearer token, which
 * `EventSource` cannot), and submits, cancels and exports jobs through the public API. Every value from the server
 * reaches the DOM as text, never as markup.
 *
 * A job's "Latency" button opens its details: a histogram of its items' durations with p50, p90 and p99 marked
 * (`GET /jobs/:id/latency`), its slowest items, and for any of them its waterfall (`GET /jobs/:id/trace`): the spans
 * of its trace as bars offset and sized by time, nested by parent, each attempt with its status code or error, and
 * the gap before a retry drawn between two attempts.
 *
 * The jobs list is a page of `GET /jobs`: which jobs it shows (the status filter, and "older" pages by the keyset
 * `nextCursor`) comes from that route, re-read every few seconds and whenever a snapshot shows a job appear or change
 * status; the snapshots only refresh the progress of the rows already shown. The page's own URL may carry `status`
 * (kept in step with the filter) and `limit` (the page size, 25 by default), e.g. `/?status=running&limit=50`.
 *
 * @since 0.1.0
 */

const style = String.raw`
:root {
  --bg: #f4f6fa; --card: #fff; --line: #e3e8f0; --text: #0f172a; --muted: #64748b; --faint: #94a3b8;
  --accent: #4f46e5; --accent-soft: #eef2ff; --ok: #16a34a; --ok-soft: #dcfce7; --bad: #dc2626; --bad-soft: #fee2e2;
  --warn: #d97706; --warn-soft: #fef3c7; --run: #2563eb; --run-soft: #dbeafe; --idle: #cbd5e1;
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--text); font: 14px/1.45 system-ui, -apple-system, "Segoe UI",
  Roboto, "Helvetica Neue", Arial, sans-serif; -webkit-font-smoothing: antialiased; }
header { background: #0f172a; color: #e2e8f0; }
.bar { max-width: 1240px; margin: 0 auto; padding: 14px 24px; display: flex; align-items: center; gap: 16px; }
.logo { display: flex; align-items: center; gap: 10px; font-weight: 650; font-size: 17px; color: #fff; }
.logo svg { display: block; }
.logo small { font-weight: 400; color: #94a3b8; font-size: 13px; }
.spacer { flex: 1; }
header a { color: #cbd5e1; text-decoration: none; font-size: 13px; }
header a:hover { color: #fff; }
.conn { display: inline-flex; align-items: center; gap: 7px; font-size: 12px; padding: 4px 10px; border-radius: 999px;
  background: #1e293b; color: #cbd5e1; }
.conn i { width: 8px; height: 8px; border-radius: 50%; background: var(--faint); }
.conn.live i { background: #22c55e; box-shadow: 0 0 0 3px rgba(34,197,94,.25); }
.conn.retry i { background: #f59e0b; }
.conn.locked i { background: #ef4444; }
main { max-width: 1240px; margin: 0 auto; padding: 20px 24px 40px; display: grid; gap: 16px;
  grid-template-columns: repeat(3, minmax(0, 1fr)); }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  box-shadow: 0 1px 2px rgba(15,23,42,.04); min-width: 0; }
.span2 { grid-column: span 2; }
.span3 { grid-column: span 3; }
.stats { grid-column: span 3; display: grid; grid-template-columns: repeat(4, minmax(0, 1fr)); gap: 16px; }
.stat { padding: 14px 16px; }
.stat .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.stat .value { font-size: 26px; font-weight: 650; margin-top: 2px; font-variant-numeric: tabular-nums; }
.stat .value small { font-size: 14px; font-weight: 500; color: var(--muted); }
.stat .sub { color: var(--muted); font-size: 12px; margin-top: 2px; }
.meter { height: 6px; border-radius: 3px; background: #eef1f6; margin-top: 10px; overflow: hidden; }
.meter > div { height: 100%; background: var(--accent); width: 0; transition: width .4s ease; }
.card h2 { margin: 0; font-size: 14px; font-weight: 650; }
.head { display: flex; align-items: center; gap: 10px; padding: 12px 16px; border-bottom: 1px solid var(--line); }
.head .hint { color: var(--muted); font-size: 12px; }
.legend { display: flex; gap: 12px; font-size: 12px; color: var(--muted); margin-left: auto; }
.legend span::before { content: ""; display: inline-block; width: 8px; height: 8px; border-radius: 2px;
  margin-right: 5px; background: var(--c); }
table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
th { text-align: left; font-weight: 550; color: var(--muted); font-size: 12px; padding: 8px 16px;
  border-bottom: 1px solid var(--line); white-space: nowrap; }
td { padding: 9px 16px; border-bottom: 1px solid #f0f3f8; vertical-align: middle; white-space: nowrap; }
tr:last-child td { border-bottom: 0; }
td.num, th.num { text-align: right; }
.mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
.empty { color: var(--faint); text-align: center; padding: 28px 16px; }
.badge { display: inline-block; padding: 2px 8px; border-radius: 999px; font-size: 12px; font-weight: 550; }
.badge.queued { background: #f1f5f9; color: #475569; }
.badge.running { background: var(--run-soft); color: var(--run); }
.badge.completed, .badge.closed { background: var(--ok-soft); color: var(--ok); }
.badge.cancelled, .badge.half-open { background: var(--warn-soft); color: var(--warn); }
.badge.open { background: var(--bad-soft); color: var(--bad); }
.scroll { overflow-x: auto; }
.progress { display: flex; align-items: center; gap: 10px; min-width: 150px; }
.track { flex: 1; display: flex; height: 8px; border-radius: 4px; background: #eef1f6; overflow: hidden; }
.track > div { height: 100%; width: 0; flex: none; transition: width .4s ease; }
.track .s { background: var(--ok); } .track .f { background: var(--bad); } .track .r { background: #60a5fa; }
.pct { width: 44px; text-align: right; font-weight: 600; font-size: 13px; }
.counts { color: var(--muted); font-size: 11.5px; white-space: nowrap; margin-top: 3px; display: block; }
.counts b { color: var(--text); font-weight: 550; }
.actions { white-space: nowrap; text-align: right; }
button, .btn { font: inherit; font-size: 12.5px; border: 1px solid var(--line); background: #fff; color: var(--text);
  border-radius: 6px; padding: 4px 10px; cursor: pointer; }
button:hover { border-color: #cbd5e1; background: #f8fafc; }
button.danger { color: var(--bad); }
button.danger:hover { background: var(--bad-soft); border-color: #fecaca; }
button.primary { background: var(--accent); border-color: var(--accent); color: #fff; padding: 7px 16px;
  font-weight: 550; }
button.primary:hover { background: #4338ca; }
button:disabled { opacity: .45; cursor: default; }
form { padding: 14px 16px 16px; display: grid; gap: 10px; }
textarea, input[type=number], input[type=password] { font: inherit; width: 100%; border: 1px solid var(--line);
  border-radius: 6px; padding: 8px 10px; background: #fbfcfe; color: var(--text); }
textarea { min-height: 118px; resize: vertical; font-family: ui-monospace, SFMono-Regular, Menlo, monospace;
  font-size: 12.5px; }
textarea:focus, input:focus { outline: 2px solid var(--accent-soft); border-color: var(--accent); }
.row { display: flex; gap: 8px; align-items: center; }
.opts { display: grid; grid-template-columns: repeat(3, 1fr); gap: 8px; }
.opts label { font-size: 11.5px; color: var(--muted); display: grid; gap: 3px; }
.opts input { padding: 5px 8px; }
.file { font-size: 12.5px; color: var(--muted); }
.file input { font-size: 12px; max-width: 100%; color: var(--muted); }
.file input::file-selector-button { font: inherit; font-size: 12px; border: 1px solid var(--line); background: #fff;
  color: var(--text); border-radius: 6px; padding: 4px 10px; margin-right: 8px; cursor: pointer; }
.msg { font-size: 12.5px; min-height: 18px; color: var(--muted); }
.msg.ok { color: var(--ok); } .msg.err { color: var(--bad); }
.tight th, .tight td { padding-left: 12px; padding-right: 12px; }
.err-line { color: var(--bad); font-size: 12px; max-width: 210px; overflow: hidden; text-overflow: ellipsis;
  white-space: nowrap; }
.quiet { color: var(--faint); }
.note { margin: 0 16px 16px; padding: 10px 12px; border-radius: 8px; background: #f8fafc; color: var(--muted);
  font-size: 12px; line-height: 1.6; }
.note .mono { font-size: 11.5px; color: #334155; }
.chart { padding: 8px 12px 12px; }
.chart svg { display: block; width: 100%; height: 190px; }
.chart text { font-size: 10px; fill: var(--faint); }
.filter { display: inline-flex; align-items: center; gap: 6px; font-size: 12px; color: var(--muted); }
.filter select { font: inherit; font-size: 12.5px; border: 1px solid var(--line); border-radius: 6px;
  padding: 3px 6px; background: #fff; color: var(--text); }
.filter select:focus { outline: 2px solid var(--accent-soft); border-color: var(--accent); }
.pager { display: flex; align-items: center; gap: 10px; padding: 10px 16px; border-top: 1px solid var(--line);
  font-size: 12px; color: var(--muted); }
.pager .msg { flex: 1; min-height: 0; }
.degraded { grid-column: span 3; display: flex; gap: 12px; align-items: baseline; padding: 12px 16px;
  border: 1px solid #fcd34d; border-radius: 10px; background: var(--warn-soft); color: #78350f; font-size: 13px; }
.degraded b { color: #92400e; }
.degraded .mono { font-size: 12px; overflow-wrap: anywhere; }
.details { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 8px 16px; padding: 4px 4px 0; }
.details .chart svg { height: 210px; }
.summary { margin: 0 16px 12px; font-size: 12.5px; color: var(--muted); font-variant-numeric: tabular-nums; }
.sub-title { margin: 10px 12px 6px; font-size: 12.5px; font-weight: 650; }
.slowest { margin: 0 12px 12px; padding: 0; list-style: none; font-size: 12.5px; }
.slowest li { display: flex; gap: 8px; align-items: baseline; padding: 3px 0; border-bottom: 1px solid #f0f3f8; }
.slowest li:last-child { border-bottom: 0; }
button.link { border: 0; background: none; padding: 0; color: var(--accent); text-align: left; overflow: hidden;
  text-overflow: ellipsis; white-space: nowrap; min-width: 0; flex: 1; font-family: ui-monospace, SFMono-Regular,
  Menlo, Consolas, monospace; font-size: 12px; }
button.link:hover { text-decoration: underline; background: none; }
.slowest .quiet { white-space: nowrap; font-variant-numeric: tabular-nums; }
.trace-form { display: flex; gap: 8px; padding: 0 12px 12px; }
.trace-form input { flex: 1; min-width: 0; font: inherit; font-size: 12px; border: 1px solid var(--line);
  border-radius: 6px; padding: 4px 8px; background: #fbfcfe; color: var(--text); }
.histogram .bucket { fill: #818cf8; } .histogram .bucket.empty { fill: #e0e7ff; }
.histogram .pline { stroke-width: 1.4; stroke-dasharray: 3 2; }
.histogram text.plabel { font-size: 10px; font-weight: 650; }
.waterfall { border-top: 1px solid var(--line); padding: 0 0 12px; }
.waterfall .sub-title { overflow-wrap: anywhere; }
.spans { margin: 0; padding: 0 12px; list-style: none; font-size: 12px; }
.spans li { display: grid; grid-template-columns: minmax(0, 280px) minmax(0, 1fr) 76px; gap: 10px; align-items: center;
  padding: 2px 0; }
.spans .name { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.spans .name .code { margin-left: 6px; padding: 0 5px; border-radius: 4px; font-size: 11px; background: var(--ok-soft);
  color: var(--ok); }
.spans .name .code.bad { background: var(--bad-soft); color: var(--bad); }
.spans .name .err { margin-left: 6px; color: var(--bad); font-size: 11px; }
.spans .track { position: relative; height: 14px; border-radius: 3px; background: #f5f7fb; overflow: visible; }
.spans .wbar { position: absolute; top: 2px; height: 10px; border-radius: 2px; min-width: 2px; background: #94a3b8; }
.spans .dur { text-align: right; color: var(--muted); font-variant-numeric: tabular-nums; }
.spans .k-item .wbar { background: #cbd5e1; } .spans .k-queued .wbar { background: #e2e8f0; }
.spans .k-gate .wbar { background: #f59e0b; } .spans .k-attempt .wbar { background: #3b82f6; }
.spans .k-attempt.error .wbar { background: var(--bad); } .spans .k-write .wbar { background: #16a34a; }
.spans .k-settle .wbar { background: #8b5cf6; }
.spans .k-backoff .wbar { background: repeating-linear-gradient(45deg, #fde68a 0 4px, #fffbeb 4px 8px);
  border: 1px dashed #f59e0b; }
.spans .k-backoff .name { color: var(--warn); font-style: italic; }
.axis { display: grid; grid-template-columns: minmax(0, 280px) minmax(0, 1fr) 76px; gap: 10px; padding: 0 12px 4px;
  font-size: 10.5px; color: var(--faint); }
.axis .ticks { position: relative; height: 14px; }
.axis .ticks span { position: absolute; transform: translateX(-50%); white-space: nowrap; }
.axis .ticks span:first-child { transform: none; } .axis .ticks span:last-child { transform: translateX(-100%); }
[hidden] { display: none !important; }
.sr-only { position: absolute; width: 1px; height: 1px; padding: 0; margin: -1px; overflow: hidden;
  clip: rect(0, 0, 0, 0); white-space: nowrap; border: 0; }
#modal { position: fixed; inset: 0; background: rgba(15,23,42,.55); display: none; align-items: center;
  justify-content: center; z-index: 10; }
#modal.show { display: flex; }
#modal .card { width: 380px; padding: 20px; display: grid; gap: 12px; }
#modal p { margin: 0; color: var(--muted); font-size: 13px; }
@media (max-width: 980px) { main, .stats, .details { grid-template-columns: 1fr; }
  .span2, .span3, .stats, .degraded { grid-column: auto; } }
`

const body = String.raw`
<header><div class="bar">
  <div class="logo"><svg width="22" height="22" viewBox="0 0 24 24" fill="none" stroke="#a5b4fc" stroke-width="2"
    stroke-linecap="round"><path d="M4 20c4-1 7-4 8-8M12 12c1-4 4-7 8-8M12 12c-3-1-5-3-6-6M12 12c3 1 5 3 6 6"/></svg>
    Harvest <small>live dashboard</small></div>
  <div class="spacer"></div>
  <a href="/health" target="_blank">health</a><a href="/metrics" target="_blank">metrics</a>
  <span class="conn" id="conn"><i></i><span>connecting</span></span>
</div></header>
<main>
  <section class="degraded" id="degraded" role="alert" hidden>
    <b>Degraded</b><span><span class="mono" id="degraded-reason"></span> since <span id="degraded-since"></span>:
    <span id="degraded-message"></span>. Leasing is paused and new jobs are refused (503) until the fault clears;
    Harvest resumes by itself.</span>
  </section>
  <section class="stats">
    <div class="card stat"><div class="label">In flight</div>
      <div class="value" id="s-inflight">0 <small>/ 0</small></div>
      <div class="meter"><div id="s-inflight-bar"></div></div></div>
    <div class="card stat"><div class="label">Jobs</div><div class="value" id="s-jobs">0</div>
      <div class="sub" id="s-jobs-sub">none yet</div></div>
    <div class="card stat"><div class="label">Event loop delay</div><div class="value" id="s-loop">0 <small>ms p99</small></div>
      <div class="sub" id="s-loop-sub">p50 0 ms</div></div>
    <div class="card stat"><div class="label">Hosts</div><div class="value" id="s-hosts">0</div>
      <div class="sub" id="s-hosts-sub">no open circuits</div></div>
  </section>

  <section class="card span2" id="jobs-card" aria-labelledby="jobs-title">
    <div class="head"><h2 id="jobs-title">Jobs</h2><span class="hint">newest first</span>
      <div class="legend" aria-hidden="true"><span style="--c: var(--ok)">succeeded</span>
        <span style="--c: var(--bad)">failed</span><span style="--c: #60a5fa">running</span>
        <span style="--c: #e2e8f0">queued</span></div>
      <label class="filter">Show <select id="jobs-status">
        <option value="">all jobs</option><option value="running">running</option><option value="queued">queued</option>
        <option value="completed">completed</option><option value="cancelled">cancelled</option>
      </select></label></div>
    <div class="scroll"><table id="jobs-table"><caption class="sr-only" id="jobs-caption">Jobs, newest first</caption>
      <thead><tr><th scope="col">Job</th><th scope="col">Status</th><th scope="col" style="width: 45%">Progress</th>
      <th scope="col">Created</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
      <tbody id="jobs"></tbody></table></div>
    <div class="empty" id="jobs-empty">Loading jobs&hellip;</div>
    <nav class="pager" aria-label="Pages of jobs">
      <span class="msg err" id="jobs-error" role="status"></span>
      <span id="jobs-page" aria-live="polite">Page 1</span>
      <button type="button" id="jobs-newer" disabled>&larr; Newer</button>
      <button type="button" id="jobs-older" disabled>Older jobs &rarr;</button>
    </nav>
  </section>

  <section class="card">
    <div class="head"><h2>New job</h2></div>
    <form id="submit-form">
      <textarea id="urls" placeholder="https://example.com/a&#10;https://example.com/b&#10;one URL per line"></textarea>
      <div class="file">or upload a text file: <input type="file" id="file" accept=".txt,text/plain"></div>
      <div class="opts">
        <label>per-host rps<input type="number" id="o-rps" min="0" step="any" placeholder="none"></label>
        <label>per-host conc.<input type="number" id="o-phc" min="1" placeholder="8"></label>
        <label>max attempts<input type="number" id="o-att" min="1" max="20" placeholder="3"></label>
      </div>
      <div class="row"><button class="primary" type="submit" id="submit">Submit job</button>
        <span class="msg" id="msg"></span></div>
    </form>
    <div class="note">Everything here goes through the public API: <span class="mono">GET /jobs</span>,
      <span class="mono">POST /jobs</span>, <span class="mono">DELETE /jobs/:id</span>,
      <span class="mono">GET /jobs/:id/export</span>, <span class="mono">GET /jobs/:id/latency</span>,
      <span class="mono">GET /jobs/:id/trace</span>. Live data streams from
      <span class="mono">GET /dashboard/events</span> (Server-Sent Events).</div>
  </section>

  <section class="card span3" id="details" aria-labelledby="details-title" hidden>
    <div class="head"><h2 id="details-title">Latency</h2><span class="hint">item durations: from a worker taking the
      item to its outcome</span>
      <button type="button" id="details-close" style="margin-left: auto" aria-label="Close latency details">Close</button>
    </div>
    <div class="details">
      <div>
        <div class="chart histogram"><svg id="histogram" role="img" aria-label="Latency histogram"
          viewBox="0 0 560 210"></svg></div>
        <p class="summary" id="latency-summary" aria-live="polite"></p>
      </div>
      <div>
        <h3 class="sub-title" id="slowest-title">Slowest items <span class="quiet">(click for the waterfall)</span></h3>
        <ol class="slowest" id="slowest" aria-labelledby="slowest-title"></ol>
        <form class="trace-form" id="trace-form">
          <input type="text" id="trace-url" placeholder="or any URL of this job" aria-label="URL of an item of this job"
            autocomplete="off">
          <button type="submit">Waterfall</button>
        </form>
      </div>
    </div>
    <section class="waterfall" id="waterfall" aria-labelledby="waterfall-title" hidden>
      <h3 class="sub-title" id="waterfall-title">Waterfall</h3>
      <div class="axis" id="waterfall-axis" aria-hidden="true"></div>
      <ol class="spans" id="waterfall-spans" aria-label="Spans of the item's trace"></ol>
      <p class="msg summary" id="waterfall-msg" role="status"></p>
    </section>
  </section>

  <section class="card span2">
    <div class="head"><h2>Hosts</h2><span class="hint">per host:port, busiest first</span></div>
    <div class="scroll"><table class="tight"><thead><tr><th>Host</th><th class="num">In flight</th><th class="num">Waiting</th>
      <th class="num">Tokens</th><th>Circuit</th><th class="num">Attempts</th><th>Recent errors</th></tr></thead>
      <tbody id="hosts"></tbody></table></div>
    <div class="empty" id="hosts-empty">No host contacted yet.</div>
  </section>

  <section class="card">
    <div class="head"><h2>Event loop</h2><span class="hint">delay, ms</span><div class="legend"><span style="--c: var(--accent)">p50</span>
      <span style="--c: #f59e0b">p99</span></div></div>
    <div class="chart"><svg id="chart" viewBox="0 0 360 190"></svg></div>
  </section>
</main>

<div id="modal"><form class="card" id="token-form">
  <h2>API token required</h2>
  <p>This Harvest is protected by <span class="mono">API_TOKEN</span>. The token is kept for this tab only and sent as a
    bearer header.</p>
  <input type="password" id="token" placeholder="token" autocomplete="off">
  <div class="row"><button class="primary" type="submit">Continue</button><span class="msg err" id="token-msg"></span></div>
</form></div>
`

const script = String.raw`
"use strict"
const $ = (id) => document.getElementById(id)
const SVG = "http://www.w3.org/2000/svg"
const TOKEN_KEY = "harvest.token"
let token = sessionStorage.getItem(TOKEN_KEY) || ""
let controller = null
let retryMs = 500

function h(tag, attrs, ...children) {
  const el = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") el.className = v
    else if (k.startsWith("data-") || k.startsWith("aria-")) el.setAttribute(k, v)
    else el[k] = v
  }
  for (const c of children) el.append(c)
  return el
}
function s(tag, attrs) {
  const el = document.createElementNS(SVG, tag)
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v))
  return el
}
const headers = (extra) => Object.assign(token ? { authorization: "Bearer " + token } : {}, extra || {})
const ago = (ms) => {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000))
  return s < 5 ? "just now" : s < 60 ? s + " s ago" : s < 3600 ? Math.round(s / 60) + " min ago"
    : Math.round(s / 3600) + " h ago"
}
const fmt = (n) => n.toLocaleString("en-US")
const ms = (n) => (n < 10 ? n.toFixed(1) : Math.round(n)) + ""

function setConn(kind, text) {
  const c = $("conn")
  c.className = "conn " + kind
  c.lastElementChild.textContent = text
}

function askToken(wrong) {
  setConn("locked", "token needed")
  $("token-msg").textContent = wrong ? "That token was refused." : ""
  $("modal").classList.add("show")
  $("token").focus()
}
$("token-form").addEventListener("submit", (e) => {
  e.preventDefault()
  token = $("token").value.trim()
  sessionStorage.setItem(TOKEN_KEY, token)
  $("modal").classList.remove("show")
  connect()
  loadJobs(true)
})

async function api(method, path, body) {
  const init = { method, headers: headers(body === undefined ? {} : { "content-type": "application/json" }) }
  if (body !== undefined) init.body = JSON.stringify(body)
  const res = await fetch(path, init)
  if (res.status === 401) {
    askToken(Boolean(token))
    throw new Error("API token required")
  }
  return res
}
async function errorOf(res) {
  try {
    const j = await res.json()
    return (j && j.error && j.error.message) || ("HTTP " + res.status)
  } catch (e) {
    return "HTTP " + res.status
  }
}

// --- live updates over SSE, read with fetch so the bearer header can be sent --------------------------------
async function connect() {
  if (controller) controller.abort()
  const mine = new AbortController()
  controller = mine
  setConn("", "connecting")
  try {
    const res = await fetch("/dashboard/events", { headers: headers(), signal: mine.signal, cache: "no-store" })
    if (res.status === 401) {
      askToken(Boolean(token))
      return
    }
    if (!res.ok || !res.body) throw new Error("HTTP " + res.status)
    setConn("live", "live")
    retryMs = 500
    const reader = res.body.getReader()
    const decoder = new TextDecoder()
    let buffer = ""
    for (;;) {
      const { value, done } = await reader.read()
      if (done) break
      buffer += decoder.decode(value, { stream: true })
      let end
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end)
        buffer = buffer.slice(end + 2)
        const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart())
          .join("\n")
        if (data) render(JSON.parse(data))
      }
    }
  } catch (e) {
    if (mine.signal.aborted) return
  }
  if (controller !== mine) return
  setConn("retry", "reconnecting")
  setTimeout(() => { if (controller === mine) connect() }, retryMs)
  retryMs = Math.min(retryMs * 2, 5000)
}

// --- the jobs list: which jobs, from GET /jobs (filter, keyset pages); their progress, from the snapshots too ------
const STATUSES = ["running", "queued", "completed", "cancelled"]
const query = new URLSearchParams(location.search)
const LIMIT = Math.min(1000, Math.max(1, Number.parseInt(query.get("limit") || "", 10) || 25))
const REFRESH_MS = 3000
const list = {
  status: STATUSES.includes(query.get("status")) ? query.get("status") : "",
  // cursors[i] reads page i ("" reads the newest jobs); page is the one shown.
  cursors: [""],
  page: 0,
  items: null,
  next: null
}
let listSeq = 0
let listBusy = false
let listAgain = false
const jobRows = new Map()
// The latest snapshot's jobs by id: fresher progress (and the running count) for the rows shown.
let live = new Map()
let last = null

// Reads the current page of GET /jobs. A periodic or snapshot-driven refresh while one is in flight is folded into
// one more read after it; a change of filter or page ("fresh") reads at once and drops any older answer.
async function loadJobs(fresh) {
  if (listBusy && !fresh) { listAgain = true; return }
  if ($("modal").classList.contains("show")) return
  const mine = ++listSeq
  listBusy = true
  listAgain = false
  $("jobs-table").setAttribute("aria-busy", "true")
  const cursor = list.cursors[list.page]
  const path = "/jobs?" + (list.status ? "status=" + list.status + "&" : "") + "limit=" + LIMIT +
    (cursor ? "&cursor=" + encodeURIComponent(cursor) : "")
  try {
    const res = await api("GET", path)
    if (!res.ok) throw new Error(await errorOf(res))
    const page = await res.json()
    if (mine !== listSeq) return
    list.items = page.items
    list.next = page.nextCursor
    $("jobs-error").textContent = ""
    renderJobs()
  } catch (err) {
    if (mine === listSeq) $("jobs-error").textContent = "Jobs not refreshed: " + String(err.message || err)
  } finally {
    if (mine === listSeq) {
      listBusy = false
      $("jobs-table").setAttribute("aria-busy", "false")
      if (listAgain) loadJobs()
    }
  }
}

function showPage(page) {
  list.page = page
  list.cursors.length = page + 1
  loadJobs(true)
}

$("jobs-status").value = list.status
$("jobs-status").addEventListener("change", () => {
  list.status = $("jobs-status").value
  const url = new URL(location.href)
  if (list.status) url.searchParams.set("status", list.status)
  else url.searchParams.delete("status")
  history.replaceState(null, "", url)
  showPage(0)
})
$("jobs-older").addEventListener("click", () => {
  if (!list.next) return
  list.cursors[list.page + 1] = list.next
  showPage(list.page + 1)
})
$("jobs-newer").addEventListener("click", () => { if (list.page > 0) showPage(list.page - 1) })

// A snapshot that shows a job appear or change status (started, finished, cancelled) may change which jobs belong
// on the page shown: read it again.
function noteLive(jobs) {
  const before = live
  live = new Map(jobs.map((job) => [job.id, job]))
  if (last === null) return
  for (const job of jobs) {
    const was = before.get(job.id)
    if (!was || was.status !== job.status) return loadJobs()
  }
}

// Of the page's view of a job and the snapshot's, the one further along (statuses only move forward, settled
// counts only grow); on a tie the snapshot's, which also counts the items being fetched.
const finished = (job) => job.status === "completed" || job.status === "cancelled"
const stage = (job) => finished(job) ? 2 : job.status === "running" ? 1 : 0
function freshest(job) {
  const other = live.get(job.id)
  if (!other) return job
  if (stage(other) !== stage(job)) return stage(other) > stage(job) ? other : job
  return other.succeeded + other.failed >= job.succeeded + job.failed ? other : job
}

function jobRow(id) {
  let row = jobRows.get(id)
  if (row) return row
  const seg = (c) => h("div", { class: c })
  const bars = { s: seg("s"), f: seg("f"), r: seg("r") }
  const short = id.slice(0, 8)
  const cells = {
    status: h("span", { class: "badge" }),
    pct: h("span", { class: "pct" }),
    counts: h("span", { class: "counts" }),
    created: h("span", { class: "quiet" }),
    cancel: h("button", { class: "danger", type: "button", "data-action": "cancel", "data-id": id,
      "aria-label": "Cancel job " + short }, "Cancel"),
    exp: h("button", { type: "button", "data-action": "export", "data-id": id, "aria-label": "Export job " + short },
      "Export"),
    latency: h("button", { type: "button", "data-action": "latency", "data-id": id,
      "aria-label": "Latency of job " + short }, "Latency")
  }
  const tr = h("tr", { "data-job": id },
    h("td", {}, h("span", { class: "mono", title: id }, short)),
    h("td", {}, cells.status),
    h("td", {}, h("div", { class: "progress" }, h("div", { class: "track" }, bars.s, bars.f, bars.r), cells.pct),
      cells.counts),
    h("td", {}, cells.created),
    h("td", { class: "actions" }, cells.latency, " ", cells.exp, " ", cells.cancel))
  row = { tr, bars, cells }
  jobRows.set(id, row)
  return row
}

const setText = (el, text) => { if (el.textContent !== text) el.textContent = text }

// Rows are kept per job and only moved or updated, so a refresh never redraws the table.
function renderJobs() {
  if (list.items === null) return
  const body = $("jobs")
  const seen = new Set()
  list.items.forEach((item, index) => {
    const job = freshest(item)
    seen.add(job.id)
    const row = jobRow(job.id)
    const total = Math.max(job.total, 1)
    const done = job.succeeded + job.failed
    const pct = Math.floor((done / total) * 100)
    row.bars.s.style.width = (job.succeeded / total) * 100 + "%"
    row.bars.f.style.width = (job.failed / total) * 100 + "%"
    row.bars.r.style.width = ((job.running || 0) / total) * 100 + "%"
    setText(row.cells.pct, pct + "%")
    row.cells.status.className = "badge status " + job.status
    setText(row.cells.status, job.status)
    row.cells.counts.replaceChildren(h("b", {}, fmt(job.succeeded)), " ok \u00b7 ", h("b", {}, fmt(job.failed)),
      " failed \u00b7 " + fmt(job.total) + " total")
    setText(row.cells.created, ago(Date.parse(job.createdAt)))
    row.cells.cancel.disabled = finished(job)
    if (body.children[index] !== row.tr) body.insertBefore(row.tr, body.children[index] || null)
  })
  for (const [id, row] of jobRows) if (!seen.has(id)) { row.tr.remove(); jobRows.delete(id) }
  const which = list.status ? list.status + " " : ""
  $("jobs-empty").style.display = list.items.length ? "none" : ""
  setText($("jobs-empty"), list.page > 0 ? "No older " + which + "jobs."
    : list.status ? "No " + which + "jobs." : "No jobs yet. Submit one \u2192")
  setText($("jobs-caption"), (list.status ? "Jobs " + list.status : "Jobs") + ", newest first, page " +
    (list.page + 1))
  setText($("jobs-page"), "Page " + (list.page + 1))
  $("jobs-newer").disabled = list.page === 0
  $("jobs-older").disabled = !list.next
}

function renderHosts(hosts) {
  $("hosts").replaceChildren(...hosts.map((host) => {
    const latest = host.recentErrors[host.recentErrors.length - 1]
    const errors = latest
      ? h("div", { class: "err-line", title: host.recentErrors.map((e) => e.code + ": " + e.message).join("\n") },
        latest.code + " \u00b7 " + latest.message + (host.recentErrors.length > 1 ? " (+" + (host.recentErrors.length - 1) + ")" : ""))
      : h("span", { class: "quiet" }, "none")
    return h("tr", { "data-host": host.host },
      h("td", {}, h("span", { class: "mono" }, host.host)),
      h("td", { class: "num" }, fmt(host.inFlight)),
      h("td", { class: "num" }, fmt(host.queued)),
      h("td", { class: "num" }, host.tokens === null ? h("span", { class: "quiet" }, "no limit") : String(host.tokens)),
      h("td", {}, h("span", { class: "badge " + host.circuit }, host.circuit)),
      h("td", { class: "num" }, fmt(host.attempts)),
      h("td", {}, errors))
  }))
  $("hosts-empty").style.display = hosts.length ? "none" : ""
}

function renderChart(loop) {
  const svg = $("chart")
  const W = Math.max(200, Math.round(svg.clientWidth || 360)), H = 190, L = 34, R = 8, T = 8, B = 18
  svg.setAttribute("viewBox", "0 0 " + W + " " + H)
  const points = loop.history
  const top = Math.max(10, ...points.map((p) => p[2]))
  const nice = top <= 10 ? 10 : top <= 25 ? 25 : top <= 50 ? 50 : top <= 100 ? 100 : Math.ceil(top / 100) * 100
  const now = points.length ? points[points.length - 1][0] : Date.now()
  // The window grows with the history, from one minute up to five.
  const span = Math.min(300000, Math.max(60000, points.length ? now - points[0][0] : 0))
  const step = span <= 60000 ? 15 : span <= 150000 ? 30 : 60
  const x = (t) => L + (W - L - R) * (1 - (now - t) / span)
  const y = (v) => T + (H - T - B) * (1 - Math.min(v, nice) / nice)
  const nodes = []
  for (const f of [0, 0.5, 1]) {
    nodes.push(s("line", { x1: L, x2: W - R, y1: y(nice * f), y2: y(nice * f), stroke: "#eef1f6" }))
    nodes.push(Object.assign(s("text", { x: L - 4, y: y(nice * f) + 3, "text-anchor": "end" }),
      { textContent: String(Math.round(nice * f)) }))
  }
  for (let back = 0; back * 1000 <= span; back += step) {
    const label = back === 0 ? "now" : back % 60 === 0 ? "-" + back / 60 + "m" : "-" + back + "s"
    const edge = (back + step) * 1000 > span && x(now - back * 1000) < L + 12
    nodes.push(Object.assign(s("text", { x: x(now - back * 1000), y: H - 4, "text-anchor": back === 0 ? "end"
      : edge ? "start" : "middle" }), { textContent: label }))
  }
  if (points.length > 1) {
    const line = (i) => points.map((p) => x(p[0]).toFixed(1) + "," + y(p[i]).toFixed(1)).join(" ")
    const base = y(0).toFixed(1)
    nodes.push(s("polygon", { points: x(points[0][0]).toFixed(1) + "," + base + " " + line(2) + " " +
      x(points[points.length - 1][0]).toFixed(1) + "," + base, fill: "rgba(245,158,11,.12)" }))
    nodes.push(s("polyline", { points: line(2), fill: "none", stroke: "#f59e0b", "stroke-width": 1.6,
      "vector-effect": "non-scaling-stroke", "stroke-linejoin": "round" }))
    nodes.push(s("polyline", { points: line(1), fill: "none", stroke: "#4f46e5", "stroke-width": 1.6,
      "vector-effect": "non-scaling-stroke", "stroke-linejoin": "round" }))
  }
  svg.replaceChildren(...nodes)
}

function render(snap) {
  $("s-inflight").replaceChildren(fmt(snap.inFlight) + " ", h("small", {}, "/ " + fmt(snap.maxConcurrency)))
  $("s-inflight-bar").style.width = Math.min(100, (snap.inFlight / Math.max(1, snap.maxConcurrency)) * 100) + "%"
  const active = snap.jobs.filter((j) => j.status === "running" || j.status === "queued")
  $("s-jobs").textContent = fmt(active.length)
  $("s-jobs-sub").textContent = active.length
    ? active.filter((j) => j.status === "running").length + " running \u00b7 " +
      active.filter((j) => j.status === "queued").length + " queued"
    : snap.jobs.length ? "all " + snap.jobs.length + " recent jobs finished" : "none yet"
  $("s-loop").replaceChildren(ms(snap.eventLoop.p99Ms) + " ", h("small", {}, "ms p99"))
  $("s-loop-sub").textContent = "p50 " + ms(snap.eventLoop.p50Ms) + " ms \u00b7 utilization " +
    Math.round(snap.eventLoop.utilization * 100) + "%"
  const open = snap.hosts.filter((x) => x.circuit === "open").length
  const half = snap.hosts.filter((x) => x.circuit === "half-open").length
  $("s-hosts").textContent = fmt(snap.hosts.length)
  $("s-hosts-sub").textContent = open || half
    ? [open ? open + " circuit" + (open > 1 ? "s" : "") + " open" : "", half ? half + " half-open" : ""]
      .filter(Boolean).join(" \u00b7 ")
    : "all circuits closed"
  if (snap.draining) setConn("retry", "draining")
  $("degraded").hidden = !snap.degraded
  if (snap.degraded) {
    $("degraded-reason").textContent = snap.degraded.reason
    $("degraded-since").textContent = new Date(snap.degraded.since).toLocaleTimeString()
    $("degraded-message").textContent = snap.degraded.message
  }
  noteLive(snap.jobs)
  renderJobs()
  renderHosts(snap.hosts)
  renderChart(snap.eventLoop)
  last = snap
}

// --- a job's latency histogram (GET /jobs/:id/latency) and an item's waterfall (GET /jobs/:id/trace) ----------
const details = { job: null, url: null, seq: 0, traceSeq: 0 }
const msText = (v) => v === null || v === undefined ? "\u2013"
  : v < 10 ? (Math.round(v * 10) / 10) + " ms" : v < 10000 ? Math.round(v) + " ms" : (Math.round(v / 100) / 10) + " s"
const leText = (le) => le === null ? "> 60 s" : le < 1000 ? "\u2264 " + le + " ms" : "\u2264 " + le / 1000 + " s"

async function openDetails(id) {
  details.job = id
  details.url = null
  $("details").hidden = false
  $("details-title").textContent = "Latency of job " + id.slice(0, 8)
  $("waterfall").hidden = true
  $("slowest").replaceChildren()
  $("histogram").replaceChildren()
  $("latency-summary").textContent = "Loading\u2026"
  $("details").scrollIntoView({ block: "nearest" })
  await loadLatency()
}
$("details-close").addEventListener("click", () => {
  details.job = null
  details.url = null
  $("details").hidden = true
})

async function loadLatency() {
  const id = details.job
  if (!id) return
  const mine = ++details.seq
  try {
    const res = await api("GET", "/jobs/" + id + "/latency")
    if (!res.ok) throw new Error(await errorOf(res))
    const latency = await res.json()
    if (mine !== details.seq || details.job !== id) return
    renderHistogram(latency)
    renderSlowest(latency)
  } catch (err) {
    if (mine === details.seq) $("latency-summary").textContent = "Latency not read: " + String(err.message || err)
  }
}

function renderHistogram(latency) {
  const svg = $("histogram")
  const W = Math.max(300, Math.round(svg.clientWidth || 560)), H = 210, L = 30, R = 10, T = 30, B = 22
  svg.setAttribute("viewBox", "0 0 " + W + " " + H)
  const buckets = latency.buckets
  let first = buckets.findIndex((b) => b.count > 0)
  let lastIndex = buckets.length - 1 - [...buckets].reverse().findIndex((b) => b.count > 0)
  if (first === -1) { first = 4; lastIndex = 9 }
  // A little room either side, at least six buckets.
  first = Math.max(0, first - 1)
  lastIndex = Math.min(buckets.length - 1, Math.max(lastIndex + 1, first + 5))
  const shown = buckets.slice(first, lastIndex + 1)
  const top = Math.max(1, ...shown.map((b) => b.count))
  const barW = (W - L - R) / shown.length
  const y = (v) => T + (H - T - B) * (1 - v / top)
  const nodes = []
  // Whole counts only: 0, the top, and the middle when it is one.
  for (const v of top % 2 === 0 ? [0, top / 2, top] : [0, top]) {
    nodes.push(s("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#eef1f6" }))
    nodes.push(Object.assign(s("text", { x: L - 4, y: y(v) + 3, "text-anchor": "end" }), { textContent: String(v) }))
  }
  shown.forEach((b, i) => {
    const x = L + i * barW
    const rect = s("rect", { x: (x + 2).toFixed(1), y: y(b.count).toFixed(1), width: Math.max(1, barW - 4).toFixed(1),
      height: Math.max(b.count ? 1 : 0, H - B - y(b.count)).toFixed(1), rx: 2,
      class: "bucket" + (b.count ? "" : " empty"), "data-le": b.leMs === null ? "inf" : b.leMs, "data-count": b.count })
    rect.append(Object.assign(s("title", {}), { textContent: leText(b.leMs) + ": " + b.count + " items" }))
    nodes.push(rect)
    nodes.push(Object.assign(s("text", { x: (x + barW / 2).toFixed(1), y: H - 6, "text-anchor": "middle" }),
      { textContent: b.leMs === null ? "\u221e" : b.leMs < 1000 ? b.leMs + "ms" : b.leMs / 1000 + "s" }))
  })
  // A percentile's mark: in its bucket, placed by where it lies between the bucket's bounds.
  const at = (v) => {
    for (let i = 0; i < shown.length; i++) {
      const upper = shown[i].leMs
      const lower = first + i === 0 ? 0 : buckets[first + i - 1].leMs
      if (upper === null || v <= upper) {
        const frac = upper === null ? 0.5 : Math.min(1, Math.max(0, (v - lower) / Math.max(1e-9, upper - lower)))
        return L + (i + frac) * barW
      }
    }
    return W - R
  }
  const marks = [["p50", latency.p50Ms, "#4f46e5"], ["p90", latency.p90Ms, "#d97706"], ["p99", latency.p99Ms, "#dc2626"]]
  marks.forEach(([name, v, color], k) => {
    if (v === null) return
    const x = at(v).toFixed(1)
    nodes.push(s("line", { x1: x, x2: x, y1: T - 4, y2: H - B, stroke: color, class: "pline", "data-percentile": name,
      "data-value": v }))
    nodes.push(Object.assign(s("text", { x, y: 9 + k * 9, "text-anchor": "middle", fill: color, class: "plabel" }),
      { textContent: name + " " + msText(v) }))
  })
  svg.replaceChildren(...nodes)
  const summary = latency.count === 0 ? "No settled item with a duration yet."
    : latency.count + " item" + (latency.count === 1 ? "" : "s") + " \u00b7 p50 " + msText(latency.p50Ms) + " \u00b7 p90 " +
      msText(latency.p90Ms) + " \u00b7 p99 " + msText(latency.p99Ms) + " \u00b7 max " + msText(latency.maxMs)
  $("latency-summary").textContent = summary
  svg.setAttribute("aria-label", "Latency histogram of job " + latency.jobId.slice(0, 8) + ": " + summary)
}

function renderSlowest(latency) {
  $("slowest").replaceChildren(...latency.slowest.map((item) => h("li", {},
    h("button", { type: "button", class: "link", "data-url": item.url, title: item.url,
      "aria-label": "Waterfall of " + item.url }, item.url),
    h("span", { class: "quiet" }, msText(item.durationMs) + " \u00b7 " +
      (item.status === "succeeded" ? String(item.httpStatus) : (item.errorCode || "failed")) + " \u00b7 " +
      item.attempts + " attempt" + (item.attempts === 1 ? "" : "s")))))
  if (!latency.slowest.length) $("slowest").append(h("li", { class: "quiet" }, "No settled item yet."))
}
$("trace-form").addEventListener("submit", (e) => {
  e.preventDefault()
  const url = $("trace-url").value.trim()
  if (url) openWaterfall(url)
})
$("slowest").addEventListener("click", (e) => {
  const button = e.target.closest("button[data-url]")
  if (button) openWaterfall(button.getAttribute("data-url"))
})

async function openWaterfall(url) {
  const id = details.job
  if (!id) return
  const mine = ++details.traceSeq
  details.url = url
  $("waterfall").hidden = false
  $("waterfall-title").textContent = "Waterfall of " + url
  $("waterfall-spans").replaceChildren()
  $("waterfall-axis").replaceChildren()
  $("waterfall-msg").textContent = "Loading\u2026"
  try {
    const res = await api("GET", "/jobs/" + id + "/trace?url=" + encodeURIComponent(url))
    if (mine !== details.traceSeq) return
    if (!res.ok) {
      $("waterfall-msg").textContent = await errorOf(res)
      return
    }
    const trace = await res.json()
    if (mine !== details.traceSeq) return
    renderWaterfall(trace)
  } catch (err) {
    if (mine === details.traceSeq) $("waterfall-msg").textContent = String(err.message || err)
  }
}

const kindOf = (name) => name === "harvest.item" ? "item" : name === "harvest.queued" ? "queued"
  : name === "harvest.host_gate" ? "gate" : name === "harvest.body.write" ? "write" : name === "harvest.settle" ? "settle"
  : name === "GET" ? "attempt" : "other"

// Bars offset and sized by time, nested by parent (children in start order under theirs), and between two attempts
// the retry's backoff: from one attempt's end to the next one's wait at the gate (or the attempt itself).
function renderWaterfall(trace) {
  const spans = trace.spans
  const total = Math.max(trace.durationMs, ...spans.map((x) => x.startMs + x.durationMs), 0.001)
  const children = new Map()
  const ids = new Set(spans.map((x) => x.spanId))
  const roots = []
  for (const span of spans) {
    if (span.parentSpanId === null || !ids.has(span.parentSpanId)) roots.push(span)
    else {
      if (!children.has(span.parentSpanId)) children.set(span.parentSpanId, [])
      children.get(span.parentSpanId).push(span)
    }
  }
  const byStart = (a, b) => a.startMs - b.startMs
  const attempts = spans.filter((x) => x.name === "GET").sort(byStart)
  const gates = spans.filter((x) => x.name === "harvest.host_gate")
  const backoffAfter = new Map()
  attempts.forEach((attempt, i) => {
    const next = attempts[i + 1]
    if (!next) return
    const end = attempt.startMs + attempt.durationMs
    const gate = gates.filter((g) => g.startMs >= end - 0.001 && g.startMs <= next.startMs).sort(byStart)[0]
    const until = gate ? gate.startMs : next.startMs
    backoffAfter.set(attempt.spanId, { startMs: end, durationMs: Math.max(0, until - end), n: i + 1 })
  })
  const pct = (v) => (Math.max(0, Math.min(1, v / total)) * 100).toFixed(3) + "%"
  const row = (kind, depth, name, label, detail, startMs, durationMs, data) => {
    const li = h("li", Object.assign({ class: "k-" + kind + (data["data-status"] === "error" ? " error" : ""),
      "data-start": String(startMs), "data-duration": String(durationMs), "data-depth": String(depth),
      "data-name": name, "aria-label": label + ", " + msText(durationMs) + ", from " + msText(startMs) }, data),
      h("span", { class: "name", title: name }, ...detail),
      h("span", { class: "track" }, h("span", { class: "wbar", style: "left: " + pct(startMs) + "; width: " +
        pct(durationMs) })),
      h("span", { class: "dur" }, msText(durationMs)))
    li.querySelector(".name").style.paddingLeft = depth * 14 + "px"
    return li
  }
  const rows = []
  const visit = (span, depth) => {
    const status = span.attributes["http.response.status_code"]
    const error = span.attributes["error.type"] || (span.status === "error" ? span.statusMessage : null)
    const detail = [span.name]
    let label = span.name
    if (span.name === "GET") {
      const n = attempts.indexOf(span) + 1
      detail[0] = "GET attempt " + n
      label = "Attempt " + n
      if (status !== undefined) {
        detail.push(h("span", { class: "code" + (status >= 400 ? " bad" : "") }, String(status)))
        label += ", status " + status
      }
    }
    if (error) {
      detail.push(h("span", { class: "err" }, String(error)))
      label += ", error " + error
    } else if (span.name === "GET" && span.attributes["http.response.body.size"] !== undefined) {
      detail.push(h("span", { class: "quiet" }, " " + fmt(span.attributes["http.response.body.size"]) + " B"))
    }
    const data = { "data-status": span.status }
    if (status !== undefined) data["data-http-status"] = String(status)
    rows.push(row(kindOf(span.name), depth, span.name, label, detail, span.startMs, span.durationMs, data))
    for (const child of (children.get(span.spanId) || []).sort(byStart)) visit(child, depth + 1)
    const backoff = backoffAfter.get(span.spanId)
    if (backoff) {
      rows.push(row("backoff", depth, "backoff", "Retry backoff " + backoff.n, ["retry backoff"], backoff.startMs,
        backoff.durationMs, { "data-status": "unset" }))
    }
  }
  for (const root of roots.sort(byStart)) visit(root, 0)
  $("waterfall-spans").replaceChildren(...rows)
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => h("span", { style: "left: " + f * 100 + "%" }, msText(total * f)))
  $("waterfall-axis").replaceChildren(h("span", {}, "span"), h("span", { class: "ticks" }, ...ticks), h("span", {}, ""))
  $("waterfall-msg").textContent = spans.length + " spans \u00b7 " + msText(trace.durationMs) + " from its lease \u00b7 trace " +
    trace.traceId + (trace.droppedSpans ? " \u00b7 " + trace.droppedSpans + " spans not kept" : "")
}

// --- actions ------------------------------------------------------------------------------------------------
function say(text, kind) {
  const m = $("msg")
  m.className = "msg " + (kind || "")
  m.textContent = text
}

$("file").addEventListener("change", async () => {
  const file = $("file").files[0]
  if (file) $("urls").value = (await file.text()).trim()
})

$("submit-form").addEventListener("submit", async (e) => {
  e.preventDefault()
  const urls = $("urls").value.split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith("#"))
  if (!urls.length) return say("Paste at least one URL.", "err")
  const body = { urls }
  const num = (id) => $(id).value === "" ? undefined : Number($(id).value)
  if (num("o-rps") !== undefined) body.perHostRps = num("o-rps")
  if (num("o-phc") !== undefined) body.perHostConcurrency = num("o-phc")
  if (num("o-att") !== undefined) body.maxAttempts = num("o-att")
  $("submit").disabled = true
  try {
    const res = await api("POST", "/jobs", body)
    if (res.status !== 202) return say(await errorOf(res), "err")
    const job = await res.json()
    say("Job " + job.id.slice(0, 8) + " queued (" + fmt(job.total) + " URLs).", "ok")
    loadJobs()
    $("urls").value = ""
    $("file").value = ""
  } catch (err) {
    say(String(err.message || err), "err")
  } finally {
    $("submit").disabled = false
  }
})

$("jobs").addEventListener("click", async (e) => {
  const button = e.target.closest("button[data-action]")
  if (!button) return
  const id = button.getAttribute("data-id")
  try {
    if (button.getAttribute("data-action") === "latency") {
      openDetails(id)
    } else if (button.getAttribute("data-action") === "cancel") {
      button.disabled = true
      const res = await api("DELETE", "/jobs/" + id)
      if (!res.ok) return say(await errorOf(res), "err")
      say("Job " + id.slice(0, 8) + " cancelled.", "ok")
      loadJobs()
    } else {
      const res = await api("GET", "/jobs/" + id + "/export")
      if (!res.ok) return say(await errorOf(res), "err")
      const url = URL.createObjectURL(await res.blob())
      const a = h("a", { href: url, download: "harvest-" + id + ".ndjson" })
      document.body.append(a)
      a.click()
      a.remove()
      setTimeout(() => URL.revokeObjectURL(url), 10000)
    }
  } catch (err) {
    say(String(err.message || err), "err")
  }
})

setInterval(() => {
  if (document.hidden) return
  loadJobs()
  // A job still running: its histogram grows.
  const shown = details.job && (live.get(details.job) || (list.items || []).find((job) => job.id === details.job))
  if (shown && !finished(shown)) loadLatency()
}, REFRESH_MS)
document.addEventListener("visibilitychange", () => { if (!document.hidden) loadJobs() })
loadJobs()
connect()
`

/**
 * The whole page, served as is at `GET /`.
 *
 * @since 0.1.0
 * @category page
 */
export const html: string = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Harvest</title>
<link rel="icon" href="data:,">
<style>${style}</style>
</head>
<body>${body}<script>${script}</script>
</body>
</html>
`
