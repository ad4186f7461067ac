// The receiver's dashboard: a worked example of its documented API.
//
// Everything shown here comes from `/api/...` (with the API token in an Authorization header)
// and `/readyz`. No value from a payload is ever parsed as markup: every one goes in with
// textContent, a text node or an attribute set from script (the CSP forbids inline script and
// style, so the page cannot be made to run any). No build step: this file is what runs.
"use strict";

(() => {
  const TOKEN_KEY = "receiver.apiToken";
  // How often each view refreshes itself (milliseconds); paused while the tab is hidden.
  const POLL = { live: 2000, stream: 4000, pipeline: 2000, audience: 0 };
  // A live stream's snapshot and moderation are looked up at most this often (ms).
  const DETAIL_TTL = 15000;
  const SVG = "http://www.w3.org/2000/svg";

  const $ = (id) => document.getElementById(id);
  const state = { view: null, timer: null, generation: 0, live: [], details: new Map() };

  // ---------------------------------------------------------------- building DOM safely

  // el("a", {href: "#x", class: "c", text: "t"}, child...): properties set from script only.
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("data-") || key.startsWith("aria-")) node.setAttribute(key, value);
      else node[key] = value;
    }
    for (const child of children) {
      if (child === undefined || child === null || child === false) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // Control characters shown as escapes, so a hostile name cannot hide or reorder text.
  function printable(value) {
    if (value === null || value === undefined) return "—";
    return String(value).replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g,
      (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
  }

  // A time in the viewer's zone, UTC on hover.
  function timeEl(iso) {
    if (!iso) return el("span", { class: "muted", text: "—" });
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return el("span", { text: printable(iso) });
    return el("time", { dateTime: date.toISOString(), title: date.toISOString().replace("T", " ").replace("Z", " UTC"),
      text: date.toLocaleString() });
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    const s = Math.round(seconds);
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
    return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  }

  function number(value) {
    return value === null || value === undefined ? "—" : Number(value).toLocaleString();
  }

  function dl(target, pairs) {
    target.replaceChildren();
    for (const [term, value] of pairs) {
      target.append(el("dt", { text: term }), el("dd", {}, typeof value === "string" ? printable(value) : value));
    }
  }

  // ---------------------------------------------------------------- the API

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.message) || `HTTP ${status}`);
      this.status = status;
      this.body = body;
    }
  }

  const token = () => sessionStorage.getItem(TOKEN_KEY);

  // Relative to the page (/dashboard/), so a reverse proxy's path prefix is kept.
  function url(path, params) {
    const target = new URL("../" + path.replace(/^\//, ""), window.location.href);
    for (const [key, value] of Object.entries(params || {})) {
      if (value === null || value === undefined || value === "") continue;
      for (const one of Array.isArray(value) ? value : [value]) target.searchParams.append(key, one);
    }
    return target;
  }

  async function api(path, params, { auth = true } = {}) {
    const headers = { Accept: "application/json" };
    if (auth) headers.Authorization = `Bearer ${token()}`;
    const answer = await fetch(url(path, params), { headers, cache: "no-store", credentials: "omit" });
    let body = null;
    try { body = await answer.json(); } catch (_) { body = null; }
    if (answer.status === 401 && auth) {
      signOut("The service refused the token; sign in again.");
      throw new ApiError(401, body);
    }
    if (!answer.ok && !(path === "/readyz" && answer.status === 503)) throw new ApiError(answer.status, body);
    return body;
  }

  // A panel whose route cannot answer: not installed (404 not_found), no Tencent credentials
  // (503 tencent_not_configured: the message names the settings), Tencent unreachable or
  // throttled with nothing cached, or a storage that does not support it (503 with the reason).
  function unavailable(target, what, error) {
    const code = error.body && error.body.error;
    let why;
    if (error.status === 404 && code === "not_found") {
      why = `${what} is not available on this receiver (its API route is not installed).`;
    } else if (code === "tencent_not_configured") {
      why = `${what} is not configured: ${printable(error.message)} (docs/tencent.md).`;
    } else if (error.status === 503 || error.status === 501) {
      why = `${what} is unavailable right now: ${printable(error.message)}`;
    } else {
      why = `${what}: ${printable(error.message)}`;
    }
    target.replaceChildren(el("p", { class: "empty", "data-state": "unavailable", "data-error": code || "", text: why }));
  }

  // ---------------------------------------------------------------- sign in, routing, polling

  function show(id) {
    for (const section of document.querySelectorAll("main > section")) section.hidden = section.id !== id;
  }

  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    stopPolling();
    $("nav").hidden = true;
    $("logout").hidden = true;
    show("login");
    $("login-error").textContent = message || "";
    $("token").value = "";
    $("token").focus();
  }

  async function signIn(event) {
    event.preventDefault();
    const candidate = $("token").value.trim();
    $("login-error").textContent = "";
    if (!candidate) return;
    const answer = await fetch(url("/api/streams", { limit: 1 }), {
      headers: { Authorization: `Bearer ${candidate}`, Accept: "application/json" }, cache: "no-store", credentials: "omit",
    }).catch(() => null);
    if (answer === null) { $("login-error").textContent = "The service cannot be reached."; return; }
    if (answer.status === 401) { $("login-error").textContent = "This is not the service's API token."; return; }
    if (!answer.ok) { $("login-error").textContent = `The service answered ${answer.status}.`; return; }
    sessionStorage.setItem(TOKEN_KEY, candidate);
    $("token").value = "";
    route();
  }

  function stopPolling() {
    state.resume = null;
    state.generation += 1;
    if (state.timer !== null) clearTimeout(state.timer);
    state.timer = null;
  }

  // Run a view's loader now and again every POLL[view] ms while it is the view shown. The loader
  // gets a function telling whether it is still wanted: an answer for a stream left meanwhile
  // must not be drawn into the next stream's view.
  function poll(view, loader) {
    stopPolling();
    state.resume = () => poll(view, loader);
    const generation = state.generation;
    const tick = async () => {
      if (generation !== state.generation) return;
      if (!document.hidden) {
        try {
          await loader(() => generation === state.generation);
          $("status").textContent = `Updated ${new Date().toLocaleTimeString()}`;
          $("announce").textContent = "";
        } catch (error) {
          if (!(error instanceof ApiError && error.status === 401)) {
            const message = `Could not update: ${printable(error.message)}`;
            $("status").textContent = message;
            if ($("announce").textContent !== message) $("announce").textContent = message;
          }
        }
      }
      if (generation === state.generation && POLL[view] > 0) state.timer = setTimeout(tick, POLL[view]);
    };
    tick();
  }

  function parseHash() {
    const raw = window.location.hash.replace(/^#\/?/, "");
    const mark = raw.indexOf("?");
    const name = mark < 0 ? raw : raw.slice(0, mark);
    return { name: name || "live", params: new URLSearchParams(mark < 0 ? "" : raw.slice(mark + 1)) };
  }

  function route() {
    if (!token()) { signOut(); return; }
    $("nav").hidden = false;
    $("logout").hidden = false;
    const { name, params } = parseHash();
    const views = { live: showLive, stream: showStream, pipeline: showPipeline, audience: showAudience };
    const view = views[name] ? name : "live";
    for (const link of document.querySelectorAll("#nav a")) {
      if (link.dataset.view === view) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    if (state.view !== view) $("main").focus({ preventScroll: true });
    state.view = view;
    const titles = { live: "Live now", stream: printable(params.get("id")), pipeline: "Pipeline", audience: "Audience" };
    document.title = `${titles[view]} · receiver`;  // a text property: no markup is parsed
    show(`view-${view}`);
    views[view](params);
  }

  // ---------------------------------------------------------------- live now

  const streamKey = (s) => JSON.stringify([s.domain, s.app_name, s.stream_id]);

  function storyHash(s) {
    const params = new URLSearchParams({ id: s.stream_id });
    if (s.domain !== null && s.domain !== undefined) params.set("domain", s.domain);
    if (s.app_name !== null && s.app_name !== undefined) params.set("app", s.app_name);
    return `#/stream?${params.toString()}`;
  }

  function showLive() {
    poll("live", loadLive);
  }

  async function loadLive() {
    const answer = await api("/api/streams", { state: "live", limit: 1000 });
    $("live-error").textContent = "";
    state.live = answer.streams;
    state.liveMore = answer.next_cursor !== null;
    renderDomains();
    renderLive();
    await loadDetails();
  }

  function renderDomains() {
    const select = $("live-domain");
    const chosen = select.value;
    const domains = [...new Set(state.live.map((s) => s.domain).filter((d) => d !== null))].sort();
    if (chosen && !domains.includes(chosen)) domains.push(chosen);
    const wanted = JSON.stringify(domains);
    if (select.dataset.domains === wanted) return;
    select.dataset.domains = wanted;
    select.replaceChildren(el("option", { value: "", text: "All domains" }),
      ...domains.map((d) => el("option", { value: d, text: printable(d) })));
    select.value = chosen;
  }

  function visibleLive() {
    const domain = $("live-domain").value;
    const needle = $("live-search").value.trim().toLowerCase();
    return state.live.filter((s) => (!domain || s.domain === domain) &&
      (!needle || [s.stream_id, s.app_name, s.domain].some((v) => v && v.toLowerCase().includes(needle))));
  }

  function renderLive() {
    const shown = visibleLive();
    $("live-count").textContent = state.liveMore ? `(the first ${state.live.length})` : `(${state.live.length})`;
    const rows = shown.map((s) => {
      const key = streamKey(s);
      const detail = state.details.get(key) || {};
      const sessions = s.open_sessions > 1 ? pushRoles(s, detail.sessions) : null;
      const since = s.last_begin ? (Date.now() - Date.parse(s.last_begin)) / 1000 : null;
      return el("tr", { "data-stream": s.stream_id },
        el("th", { scope: "row" }, el("a", { href: storyHash(s), class: "stream-link", text: printable(s.stream_id) })),
        el("td", { "data-label": "Domain / app", text: `${printable(s.domain)} / ${printable(s.app_name)}` }),
        el("td", { "data-label": "Live since" }, timeEl(s.last_begin),
          since !== null && since >= 0 ? el("div", { class: "muted", text: `for ${duration(since)}` }) : null,
          sourceBadge(s.state_source, "state")),
        el("td", { "data-label": "Session" }, el("code", { text: printable(s.current_sequence) }), sessions),
        el("td", { "data-label": "Snapshot" }, thumbnail(detail.snapshot)),
        el("td", { "data-label": "Last moderation" }, moderationSummary(detail.moderation)));
    });
    $("live-rows").replaceChildren(...rows);
    const empty = $("live-empty");
    if (state.live.length === 0) {
      const target = url("/callbacks").toString();
      empty.replaceChildren(el("p", { text: "No stream is live right now." }),
        el("p", {}, "Point your CSS callback template at ", el("code", { text: target }),
          " (or let ", el("code", { text: "receiver tencent register" }), " do it); a stream appears here when its push begins."));
      empty.hidden = false;
    } else if (shown.length === 0) {
      empty.replaceChildren(el("p", { text: "No live stream matches the filter." }));
      empty.hidden = false;
    } else {
      empty.hidden = true;
    }
    $("live-table").hidden = shown.length === 0;
  }

  // Several open pushes of one stream: which one Tencent plays (`role` of each open session,
  // from DescribeBackupStreamList via the sessions route), or that nobody asked Tencent.
  function pushRoles(stream, sessions) {
    const open = (sessions || []).filter((s) => s.state === "live");
    const known = open.filter((s) => s.role);
    if (!known.length) {
      return el("div", { class: "muted", "data-roles": "unknown",
        text: `${stream.open_sessions} open pushes (main/backup not known: Tencent not asked)` });
    }
    return el("div", { class: "muted", "data-roles": known.map((s) => `${s.role}:${s.sequence}`).join(" ") },
      `${stream.open_sessions} open pushes: `,
      ...known.flatMap((s, i) => [i ? ", " : "", el("span", { class: `badge role-${s.role}`, text: s.role }), " ",
        el("code", { text: printable(s.sequence) })]));
  }

  function snapshotUrl(event) {
    const p = (event && event.payload) || {};
    for (const candidate of [p.pic_full_url, p.pic_url]) {
      if (typeof candidate === "string" && /^https?:\/\//i.test(candidate)) return candidate;
    }
    return null;
  }

  function thumbnail(event) {
    if (!event) return el("span", { class: "muted", text: "—" });
    const src = snapshotUrl(event);
    if (!src) return timeEl(event.event_time || event.received_at);
    return el("a", { href: src, rel: "noreferrer noopener", target: "_blank", title: "Open the snapshot" },
      el("img", { src, alt: "latest snapshot", class: "thumb", loading: "lazy", referrerPolicy: "no-referrer" }));
  }

  function moderationText(event) {
    const p = event.payload || {};
    const parts = [p.suggestion || p.Suggestion, p.label || p.Label, p.subLabel || p.SubLabel]
      .filter((v) => typeof v === "string" && v);
    return parts.length ? parts.join(" · ") : event.kind;
  }

  function moderationSummary(event) {
    if (!event) return el("span", { class: "muted", text: "—" });
    const text = moderationText(event);
    const cls = /block/i.test(text) ? "badge bad" : /review/i.test(text) ? "badge warn" : "badge";
    return el("span", {}, el("span", { class: cls, text: printable(text) }), " ", timeEl(event.event_time || event.received_at));
  }

  // The latest snapshot and moderation result of each shown stream, each at most every DETAIL_TTL.
  async function loadDetails() {
    const now = Date.now();
    let changed = false;
    for (const s of visibleLive().slice(0, 50)) {
      const key = streamKey(s);
      const known = state.details.get(key);
      if (known && now - known.at < DETAIL_TTL) continue;
      const filter = { stream_id: s.stream_id, domain: s.domain, app_name: s.app_name, limit: 1 };
      const sessions = s.open_sessions > 1
        ? api(`/api/streams/${encodeURIComponent(s.stream_id)}/sessions`,
          { domain: s.domain, app_name: s.app_name, limit: 10, items: 0 }).then((a) => a.sessions)
        : Promise.resolve(null);
      const [snapshots, moderation, open] = await Promise.all([
        api("/api/events", { ...filter, kind: "snapshot" }),
        api("/api/events", { ...filter, kind: ["porn", "audio_moderation"] }),
        sessions,
      ]);
      state.details.set(key, { at: now, snapshot: snapshots.events[0], moderation: moderation.events[0], sessions: open });
      changed = true;
    }
    if (changed) renderLive();
  }

  // ---------------------------------------------------------------- a stream's story

  function showStream(params) {
    const stream = { stream_id: params.get("id") || "", domain: params.get("domain"), app_name: params.get("app") };
    $("stream-title").textContent = printable(stream.stream_id);
    $("payload").textContent = "";
    $("payload-hint").hidden = false;
    for (const id of ["stream-facts", "sessions", "story", "quality"]) $(id).replaceChildren();
    state.story = { key: null, selected: null };
    poll("stream", (current) => loadStream(stream, current));
  }

  const STORY_LIMIT = 1000;
  const CATEGORY = { recordings: "recording", snapshots: "snapshot", moderation: "moderation", push_exceptions: "push exception" };

  async function loadStream(stream, current) {
    const filter = { stream_id: stream.stream_id, domain: stream.domain, app_name: stream.app_name };
    const path = `/api/streams/${encodeURIComponent(stream.stream_id)}/sessions`;
    const [streams, events, sessions] = await Promise.all([
      api("/api/streams", { ...filter, limit: 10 }),
      api("/api/events", { ...filter, order: "desc", limit: STORY_LIMIT }),
      api(path, { domain: stream.domain, app_name: stream.app_name, items: 100 }).catch((error) => error),
    ]);
    if (!current()) return;
    $("stream-error").textContent = "";
    const found = streams.streams[0];
    if (found) renderFacts(found);
    else dl($("stream-facts"), [["State", "no event is stored for this stream"]]);
    const sessionList = sessions instanceof ApiError ? [] : sessions.sessions;
    if (sessions instanceof ApiError) $("stream-error").textContent = `Sessions: ${printable(sessions.message)}`;
    renderSessions(sessionList);
    renderStory(events.events, sessionList);
    $("story-title").textContent = events.next_cursor
      ? `The latest ${STORY_LIMIT} events, in order (older ones: /api/events with the cursor)` : "Every event, in order";
    await loadQuality(stream, current);
  }

  function renderFacts(s) {
    dl($("stream-facts"), [
      ["State", el("span", { class: `badge state-${s.state}`, text: s.state })],
      ["Domain / app", `${printable(s.domain)} / ${printable(s.app_name)}`],
      ["Current session", el("code", { text: printable(s.current_sequence) })],
      ["Open pushes", number(s.open_sessions)],
      ["Last begin", timeEl(s.last_begin)],
      ["Last end", timeEl(s.last_end)],
      ["End reason", s.end_code === null ? "—" : `${s.end_code}: ${printable(s.end_reason)}${s.end_message ? ` (${printable(s.end_message)})` : ""}`],
      ["Events stored", number(s.events)],
      ["State from", s.state_source ? sourceBadge(s.state_source, "state") || "callbacks" : "—"],
    ]);
  }

  function renderSessions(sessions) {
    const target = $("sessions");
    if (sessions.length === 0) {
      target.replaceChildren(el("p", { class: "empty", text: "No push session is stored for this stream (no push begin or end yet)." }));
      return;
    }
    target.replaceChildren(...sessions.map((s) => {
      // `role`: which push Tencent plays while several are open (null when not asked).
      const who = s.role ? el("span", { class: `badge role-${s.role}`, "data-role": s.role, text: s.role }) : null;
      const end = s.end ? [" → ", timeEl(s.end), " ", sourceBadge(s.end_source, "end")]
        : [" → ", el("span", { class: "badge state-live", text: "live" })];
      const facts = el("p", { class: "session-head" },
        el("code", { text: printable(s.sequence) }), " ", who, " ",
        timeEl(s.start), " ", sourceBadge(s.begin_source, "begin"), ...end, ` · ${duration(s.duration_seconds)}`);
      const reason = s.end_code === null ? null : el("p", { class: "muted",
        text: `Ended ${s.end_code}: ${printable(s.end_reason)}${s.end_message ? ` (${printable(s.end_message)})` : ""}` });
      const counts = el("p", { class: "muted", text: Object.entries(s.counts).map(([k, v]) => `${v} ${CATEGORY[k] || k}`).join(" · ") });
      return el("article", { class: "session", "data-sequence": s.sequence || "" }, facts, timeline(s), reason, counts);
    }));
  }

  // One session on a line: its span, and a mark per recording, snapshot, moderation hit and
  // push exception at its time.
  function timeline(session) {
    const start = Date.parse(session.start);
    const marks = [];
    for (const [category, list] of Object.entries({ recordings: session.recordings, snapshots: session.snapshots,
      moderation: session.moderation, push_exceptions: session.push_exceptions })) {
      for (const event of list || []) {
        const at = Date.parse(event.event_time || event.received_at);
        if (!Number.isNaN(at)) marks.push({ category, at, event });
      }
    }
    const end = session.end ? Date.parse(session.end) : Math.max(Date.now(), ...marks.map((m) => m.at));
    const last = Math.max(end, ...marks.map((m) => m.at), start + 1000);
    const width = 600;
    const x = (t) => 8 + ((t - start) / (last - start)) * (width - 16);
    const chart = svg("svg", { viewBox: `0 0 ${width} 28`, class: "timeline", role: "img",
      "aria-label": `session from ${session.start} to ${session.end || "now"}: ${marks.length} events` });
    chart.append(svg("rect", { x: 8, y: 11, width: Math.max(2, x(end) - 8), height: 6, class: session.end ? "span" : "span live" }));
    for (const mark of marks) {
      const dot = svg("circle", { cx: x(mark.at).toFixed(1), cy: 14, r: 5, class: `mark ${mark.category}` });
      dot.append(svg("title", {}, `${CATEGORY[mark.category]} · ${new Date(mark.at).toLocaleString()}`));
      chart.append(dot);
    }
    return chart;
  }

  // Where a stored fact came from (`source` of events, `state_source` of streams,
  // `begin_source`/`end_source` of sessions): nothing for a callback, a badge otherwise.
  const SOURCES = {
    reconciled: "rebuilt from Tencent's own records (its callback never arrived)",
    confirmed: "reconciled first, then its real callback arrived and replaced it",
  };

  function sourceBadge(source, what) {
    if (!SOURCES[source]) return null;
    return el("span", { class: `badge source-${source}`, "data-source": source, title: `${what}: ${SOURCES[source]}`,
      text: source });
  }

  function eventSummary(event, endReasons) {
    const p = event.payload || {};
    switch (event.kind) {
      case "stream_begin": return `push begins${event.sequence ? ` (session ${printable(event.sequence)})` : ""}`;
      case "stream_end": {
        const reason = endReasons.get(event.id);
        return `stream ends: ${printable(p.errcode)}${reason ? ` ${printable(reason)}` : ""}${p.errmsg ? ` — ${printable(p.errmsg)}` : ""}`;
      }
      case "record": return `recording ${printable(p.file_id || p.record_file_id)}${p.duration ? ` (${duration(Number(p.duration))})` : ""}`;
      case "snapshot": return "snapshot";
      case "porn": case "audio_moderation": return `moderation: ${printable(moderationText(event))}`;
      case "push_exception": return "push exception";
      default: return printable(event.kind);
    }
  }

  function renderStory(events, sessions) {
    const endReasons = new Map(sessions.filter((s) => s.end_event_id).map((s) => [s.end_event_id, s.end_reason]));
    const when = (e) => Date.parse(e.event_time || e.received_at);
    const ordered = [...events].sort((a, b) => (when(a) - when(b)) || (Date.parse(a.received_at) - Date.parse(b.received_at)));
    const signature = JSON.stringify(ordered.map((e) => [e.id, e.published, e.source]));
    if (state.story.key === signature) return;
    state.story.key = signature;
    const list = $("story");
    if (ordered.length === 0) {
      list.replaceChildren(el("li", { class: "empty", text: "No event is stored for this stream." }));
      return;
    }
    list.replaceChildren(...ordered.map((event) => {
      const button = el("button", { type: "button", class: "event", "data-event-id": event.id, "data-kind": event.kind,
        "aria-pressed": String(state.story.selected === event.id) },
        timeEl(event.event_time || event.received_at), " ",
        el("span", { class: `kind kind-${event.kind}`, text: printable(event.kind) }), " ",
        el("span", { class: "summary", text: eventSummary(event, endReasons) }),
        sourceBadge(event.source, "event"),
        event.schema_error ? el("span", { class: "badge warn", text: "schema mismatch" }) : null,
        event.published ? null : el("span", { class: "badge", text: "unpublished" }));
      button.addEventListener("click", () => showPayload(event, button));
      return el("li", {}, button);
    }));
  }

  function showPayload(event, button) {
    state.story.selected = event.id;
    for (const other of document.querySelectorAll("#story button.event")) other.setAttribute("aria-pressed", "false");
    button.setAttribute("aria-pressed", "true");
    $("payload-hint").hidden = true;
    $("payload").textContent = JSON.stringify(event.payload, null, 2);
    $("payload").dataset.eventId = event.id;
  }

  async function loadQuality(stream, current) {
    const target = $("quality");
    try {
      const answer = await api(`/api/streams/${encodeURIComponent(stream.stream_id)}/quality`,
        { domain: stream.domain, app_name: stream.app_name });
      if (current()) renderQuality(target, answer);
    } catch (error) {
      if (!(error instanceof ApiError) || error.status === 401) throw error;
      if (current()) unavailable(target, "Push quality", error);
    }
  }

  // What the quality route answers (DescribeStreamPushInfoList of the open or last session):
  // `points` of the session, each with the fields below; charted over `time`.
  const QUALITY_CHARTS = [
    ["video_fps", "Video frame rate (fps)", 1],
    ["video_bitrate_bps", "Video bitrate (kbit/s)", 1000],
    ["audio_bitrate_bps", "Audio bitrate (kbit/s)", 1000],
    ["lag_ms", "Upstream lag, LocalTs − VideoTs (ms)", 1],
  ];

  function renderQuality(target, answer) {
    const points = answer.points.filter((p) => p.time && !Number.isNaN(Date.parse(p.time)));
    const head = el("p", { class: "muted", "data-quality": "window" },
      "Session ", el("code", { text: printable(answer.sequence) }),
      answer.session_open ? " (live)" : " (ended)", ", ", timeEl(answer.since), " → ", timeEl(answer.until),
      ` · ${points.length} points · asked Tencent `, timeEl(answer.fetched_at), answer.cached ? " (cached)" : "",
      answer.stale ? el("span", { class: "badge warn", "data-stale": "true",
        text: `stale: ${printable(answer.stale_reason)}` }) : null);
    if (!points.length) {
      target.replaceChildren(head, el("p", { class: "empty", text: "Tencent has no push data for this session yet." }));
      return;
    }
    const latest = points[points.length - 1];
    const facts = el("dl", { class: "facts small" });
    dl(facts, [
      ["Resolution", printable(latest.resolution)],
      ["Codecs", `${printable(latest.video_codec)} / ${printable(latest.audio_codec)}`],
      ["Client IP", printable(latest.client_ip)],
      ["Ingest server", printable(latest.server_ip)],
      ["Bandwidth", latest.bandwidth_mbps === null ? "—" : `${number(latest.bandwidth_mbps)} Mbit/s`],
    ]);
    const charts = QUALITY_CHARTS.filter(([field]) => points.some((p) => typeof p[field] === "number"))
      .map(([field, title, scale]) => el("figure", { "data-field": field }, el("figcaption", { text: title }),
        lineChart(points.filter((p) => typeof p[field] === "number")
          .map((p) => ({ at: Date.parse(p.time), value: Math.round((p[field] / scale) * 10) / 10 })), [title])));
    const rows = points.slice(-10).reverse().map((p) => el("tr", {},
      el("td", {}, timeEl(p.time)), el("td", { text: number(p.video_fps) }),
      el("td", { text: p.video_bitrate_bps === null ? "—" : number(Math.round(p.video_bitrate_bps / 1000)) }),
      el("td", { text: printable(p.resolution) }), el("td", { text: number(p.lag_ms) })));
    const table = el("div", { class: "scroll" }, el("table", { class: "grid" },
      el("thead", {}, el("tr", {}, ...["time", "fps", "kbit/s", "resolution", "lag ms"].map((c) => el("th", { scope: "col", text: c })))),
      el("tbody", {}, ...rows)));
    target.replaceChildren(head, facts, el("div", { class: "quality-charts" }, ...charts), table);
  }

  // ---------------------------------------------------------------- pipeline health

  function showPipeline() {
    poll("pipeline", loadPipeline);
  }

  async function loadPipeline() {
    const [ready, series] = await Promise.all([api("/readyz", {}, { auth: false }), api("/api/pipeline", { minutes: 60 })]);
    $("pipeline-error").textContent = "";
    renderFigures(ready, series);
    renderCharts(series);
    renderTotals(series);
    renderComponents(ready);
    await loadActions();
  }

  function sumMinutes(series, pick) {
    return series.minutes.reduce((total, minute) => total + pick(minute), 0);
  }

  function figure(id, label, value, detail, level) {
    return el("div", { class: `figure ${level || ""}`, "data-figure": id },
      el("div", { class: "label", text: label }), el("div", { class: "value", text: value }),
      detail ? el("div", { class: "muted", text: detail }) : null);
  }

  // The last background reconciliation round: `/readyz` `reconcile` = {rounds, last: {at, seconds,
  // records, found: {finding: n}, stored, streams_ended, streams_begun, error}, error}; absent
  // when RECEIVER_TENCENT_RECONCILE_INTERVAL is not set.
  function reconciliation(ready) {
    const r = ready.reconcile;
    if (!r || typeof r !== "object") return { value: "off", detail: "RECEIVER_TENCENT_RECONCILE_INTERVAL not set", level: "" };
    const last = r.last;
    if (!last) return { value: "no round yet", detail: `${number(r.rounds)} rounds`, level: "" };
    const found = Object.entries(last.found || {}).filter(([, n]) => n).map(([k, n]) => `${k.replaceAll("_", " ")} ${n}`);
    const detail = last.error ? `failed: ${last.error}`
      : `${number(last.records)} records, ${found.length ? `found ${found.join(", ")}` : "nothing missing"}, stored ${number(last.stored)} · ${number(r.rounds)} rounds`;
    return { value: new Date(last.at).toLocaleTimeString(), title: last.at, detail, level: last.error ? "bad" : "ok" };
  }

  function renderFigures(ready, series) {
    const broker = ready.broker || {};
    const fold = ready.fold || {};
    const refused = sumMinutes(series, (m) => Object.values(m.refusals).reduce((a, b) => a + b, 0));
    const stored = sumMinutes(series, (m) => Object.values(m.callbacks).reduce((a, r) => a + (r.stored || 0), 0));
    const recon = reconciliation(ready);
    const age = broker.oldest_unpublished_age_seconds;
    $("figures").replaceChildren(
      figure("status", "Service", printable(ready.status), "from /readyz", ready.status === "ok" ? "ok" : "bad"),
      figure("broker", "Broker", printable(broker.state), broker.last_error ? printable(broker.last_error) : printable(broker.exchange),
        broker.state === "connected" ? "ok" : "bad"),
      figure("outbox-backlog", "Outbox backlog", number(broker.backlog),
        age ? `oldest unpublished ${duration(age)} old` : "nothing waiting", broker.backlog ? "warn" : "ok"),
      figure("fold-lag", "Fold lag", number(fold.backlog),
        fold.oldest_unfolded_age_seconds ? `oldest ${duration(fold.oldest_unfolded_age_seconds)} old` : "history is current",
        fold.backlog ? "warn" : "ok"),
      figure("stored", "Stored, last hour", number(stored), `since ${new Date(series.counting_since).toLocaleTimeString()}`),
      figure("refused", "Refused, last hour", number(refused), "signature, token, body", refused ? "warn" : "ok"),
      figure("reconciliation", "Last reconciliation", recon.value, printable(recon.detail), recon.level),
    );
  }

  const RESULTS = ["stored", "duplicate", "refused", "rejected", "unavailable", "overloaded"];

  function renderCharts(series) {
    const bars = series.minutes.map((m) => {
      const byResult = {};
      for (const results of Object.values(m.callbacks)) for (const [result, count] of Object.entries(results)) byResult[result] = (byResult[result] || 0) + count;
      return { at: Date.parse(m.start), values: byResult };
    });
    $("chart-callbacks").replaceChildren(stackedBars(bars, RESULTS), legend(RESULTS));
    // The largest backlog sampled in each minute: an outage shorter than a minute still shows.
    const lines = ["outbox_backlog_peak", "fold_backlog_peak"];
    const points = (field) => series.minutes.filter((m) => m[field] !== null).map((m) => ({ at: Date.parse(m.start), value: m[field] }));
    $("chart-backlog").replaceChildren(multiLine(lines.map((f) => ({ name: f, points: points(f) }))), legend(lines));
  }

  function legend(names) {
    return el("ul", { class: "legend" }, ...names.map((n, i) => el("li", {}, el("span", { class: `swatch c${i}` }), n.replace("_", " "))));
  }

  const CHART = { width: 640, height: 170, left: 40, bottom: 20, top: 8 };

  function axes(chart, max, from, to, min = 0) {
    const { width, height, left, bottom, top } = CHART;
    chart.append(svg("line", { x1: left, y1: height - bottom, x2: width, y2: height - bottom, class: "axis" }));
    chart.append(svg("text", { x: left - 4, y: top + 8, class: "tick end" }, number(max)));
    chart.append(svg("text", { x: left - 4, y: height - bottom, class: "tick end" }, number(min)));
    chart.append(svg("text", { x: left, y: height - 4, class: "tick" }, new Date(from).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })));
    chart.append(svg("text", { x: width, y: height - 4, class: "tick end" }, new Date(to).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })));
  }

  function stackedBars(bars, keys) {
    const { width, height, left, bottom, top } = CHART;
    const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart-svg", role: "img",
      "aria-label": "callbacks per minute by result" });
    const max = Math.max(1, ...bars.map((b) => keys.reduce((a, k) => a + (b.values[k] || 0), 0)));
    const slot = (width - left) / 60;
    const first = bars.length ? bars[bars.length - 1].at - 59 * 60000 : Date.now() - 3600000;
    axes(chart, max, first, first + 59 * 60000);
    for (const bar of bars) {
      const index = Math.round((bar.at - first) / 60000);
      let y = height - bottom;
      keys.forEach((key, i) => {
        const count = bar.values[key] || 0;
        if (!count) return;
        const h = (count / max) * (height - bottom - top);
        y -= h;
        const rect = svg("rect", { x: (left + index * slot + 1).toFixed(1), y: y.toFixed(1), width: Math.max(1, slot - 2).toFixed(1), height: h.toFixed(1), class: `c${i}` });
        rect.append(svg("title", {}, `${new Date(bar.at).toLocaleTimeString()} ${key}: ${count}`));
        chart.append(rect);
      });
    }
    return chart;
  }

  // Lines over time: the last hour (`hour`), else the span of the points themselves.
  function multiLine(lines, { hour = true } = {}) {
    const { width, height, left, bottom, top } = CHART;
    const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart-svg", role: "img", "aria-label": lines.map((l) => l.name).join(", ") });
    const all = lines.flatMap((l) => l.points);
    const max = Math.max(1, ...all.map((p) => p.value));
    const min = Math.min(0, ...all.map((p) => p.value));  // a lag can be negative
    const to = all.length ? Math.max(...all.map((p) => p.at)) : Date.now();
    const first = all.length ? Math.min(...all.map((p) => p.at)) : to;
    const from = hour ? to - 59 * 60000 : Math.min(first, to - 60000);
    axes(chart, max, from, to, min);
    const x = (t) => left + ((t - from) / (to - from)) * (width - left);
    const y = (v) => height - bottom - ((v - min) / (max - min)) * (height - bottom - top);
    lines.forEach((line, i) => {
      if (!line.points.length) return;
      const d = line.points.map((p, j) => `${j ? "L" : "M"}${x(p.at).toFixed(1)},${y(p.value).toFixed(1)}`).join(" ");
      chart.append(svg("path", { d, class: `line c${i}` }));
      for (const p of line.points) {
        const dot = svg("circle", { cx: x(p.at).toFixed(1), cy: y(p.value).toFixed(1), r: 2.5, class: `c${i}` });
        dot.append(svg("title", {}, `${new Date(p.at).toLocaleTimeString()} ${line.name}: ${p.value}`));
        chart.append(dot);
      }
    });
    return chart;
  }

  function lineChart(points, names) {
    return multiLine([{ name: names[0], points }], { hour: false });
  }

  function renderTotals(series) {
    const totals = {};
    const reasons = {};
    for (const m of series.minutes) {
      for (const [kind, results] of Object.entries(m.callbacks)) {
        totals[kind] = totals[kind] || {};
        for (const [result, count] of Object.entries(results)) totals[kind][result] = (totals[kind][result] || 0) + count;
      }
      for (const [reason, count] of Object.entries(m.refusals)) reasons[reason] = (reasons[reason] || 0) + count;
    }
    const kinds = Object.keys(totals).sort();
    $("totals").replaceChildren(kinds.length
      ? el("table", { class: "grid" },
        el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "kind" }), ...RESULTS.map((r) => el("th", { scope: "col", text: r })))),
        el("tbody", {}, ...kinds.map((kind) => el("tr", { "data-kind": kind }, el("th", { scope: "row", text: printable(kind) }),
          ...RESULTS.map((r) => el("td", { "data-result": r, text: totals[kind][r] ? number(totals[kind][r]) : "" }))))))
      : el("p", { class: "empty", text: "No callback in the last hour." }));
    const names = Object.keys(reasons).sort();
    $("refusals").replaceChildren(names.length
      ? el("table", { class: "grid" }, el("tbody", {}, ...names.map((r) => el("tr", { "data-reason": r },
        el("th", { scope: "row", text: printable(r) }), el("td", { text: number(reasons[r]) })))))
      : el("p", { class: "empty", text: "Nothing refused in the last hour." }));
  }

  function renderComponents(ready) {
    const cards = Object.entries(ready).filter(([, v]) => v && typeof v === "object").map(([name, details]) => {
      const list = el("dl", { class: "facts small" });
      const flat = [];
      for (const [key, value] of Object.entries(details)) {
        if (key === "status") continue;
        if (value !== null && typeof value === "object" && !Array.isArray(value)) {
          for (const [sub, inner] of Object.entries(value)) flat.push([`${key}.${sub}`, inner]);
        } else flat.push([key, value]);
      }
      for (const [key, value] of flat) {
        const text = value !== null && typeof value === "object" ? JSON.stringify(value) : String(value);
        list.append(el("dt", { text: key }), el("dd", { text: printable(text) }));
      }
      // /readyz gives one status for the whole service; a component with a problem says `error`.
      const trouble = details.error ? el("span", { class: "badge warn", text: "problem" }) : null;
      return el("article", { class: "card", "data-component": name }, el("h4", {}, printable(name), " ", trouble), list);
    });
    $("components").replaceChildren(...cards);
  }

  async function loadActions() {
    const target = $("actions");
    try {
      const answer = await api("/api/actions", { limit: 20 });
      target.replaceChildren(answer.actions.length ? actionsTable(answer.actions)
        : el("p", { class: "empty", text: "No moderation action has been taken." }));
    } catch (error) {
      if (error instanceof ApiError && error.status !== 401) unavailable(target, "Moderation actions", error);
      else throw error;
    }
  }

  // What the API answered: its request id, the check that found an interrupted call had taken
  // effect, or Tencent's error.
  function actionResult(result) {
    if (!result) return "—";
    if (result.error) return `${printable(result.error.code)}: ${printable(result.error.message)}`;
    if (result.verified) return printable(result.verified);
    if (result.request_id) return `request ${printable(result.request_id)}`;
    return printable(JSON.stringify(result));
  }

  function actionsTable(actions) {
    const columns = ["When", "Action", "State", "Dry run", "Stream", "Session", "Triggered by", "Confirmation", "Result"];
    const rows = actions.map((a) => {
      const level = a.state === "failed" ? "bad" : a.state === "done" ? "ok" : a.state === "dry_run" ? "" : "warn";
      const confirmation = a.confirmation
        ? el("span", {}, el("span", { class: `badge ${a.confirmation === "confirmed" ? "ok" : a.confirmation === "awaiting" ? "warn" : "bad"}`,
          text: a.confirmation }), a.confirmed_at ? " " : null, a.confirmed_at ? timeEl(a.confirmed_at) : null)
        : el("span", { class: "muted", text: a.dry_run ? "— (dry run)" : "—" });
      return el("tr", { "data-action-id": a.id },
        el("td", { "data-label": "When" }, timeEl(a.created_at)),
        el("td", { "data-label": "Action", "data-field": "action", text: a.action }),
        el("td", { "data-label": "State", "data-field": "state" }, el("span", { class: `badge ${level}`, text: a.state })),
        el("td", { "data-label": "Dry run", "data-field": "dry_run", text: a.dry_run ? "yes" : "no" }),
        el("td", { "data-label": "Stream", "data-field": "stream" },
          el("a", { href: storyHash(a), class: "stream-link", text: printable(a.stream_id) }),
          el("div", { class: "muted", text: `${printable(a.domain)} / ${printable(a.app_name)}` })),
        el("td", { "data-label": "Session", "data-field": "sequence" }, el("code", { text: printable(a.sequence) })),
        el("td", { "data-label": "Triggered by", "data-field": "trigger" },
          el("div", { text: `${printable(a.trigger_kind)}${a.trigger_reason ? ` · ${printable(a.trigger_reason)}` : ""}` }),
          el("code", { class: "muted", "data-event-id": a.trigger_event_id || "", text: printable(a.trigger_event_id) })),
        el("td", { "data-label": "Confirmation", "data-field": "confirmation" }, confirmation),
        el("td", { "data-label": "Result", "data-field": "result", text: actionResult(a.result) }));
    });
    return el("div", { class: "scroll" }, el("table", { class: "grid", id: "actions-table" },
      el("thead", {}, el("tr", {}, ...columns.map((c) => el("th", { scope: "col", text: c })))),
      el("tbody", {}, ...rows)));
  }

  // ---------------------------------------------------------------- audience

  function showAudience() {
    stopPolling();
    loadAudience().catch((error) => { $("status").textContent = `Could not update: ${printable(error.message)}`; });
  }

  async function loadAudience() {
    const target = $("audience");
    const hours = Number($("audience-hours").value) || 1;
    const until = Math.floor(Date.now() / 1000);
    try {
      renderAudience(target, await api("/api/audience", { since: until - hours * 3600, until }));
    } catch (error) {
      if (error instanceof ApiError && error.status !== 401) unavailable(target, "Audience", error);
      else throw error;
    }
  }

  const sum = (values) => values.reduce((a, b) => a + b, 0);
  const maxOf = (values) => (values.length ? Math.max(...values) : null);

  // The audience route answers `groups` (one per province and ISP, each with its 5-minute
  // `points`); the table sums and peaks them, the chart adds all groups up per point.
  function renderAudience(target, answer) {
    const head = el("p", { class: "muted", "data-audience": "window" }, timeEl(answer.since), " → ", timeEl(answer.until),
      ` · play domains: ${answer.play_domains.length ? answer.play_domains.map(printable).join(", ") : "all"}`,
      " · asked Tencent ", timeEl(answer.fetched_at), answer.cached ? " (cached)" : "",
      answer.stale ? el("span", { class: "badge warn", "data-stale": "true", text: `stale: ${printable(answer.stale_reason)}` }) : null);
    if (!answer.groups.length) {
      target.replaceChildren(head, el("p", { class: "empty", text: "No audience in this window." }));
      return;
    }
    const numbers = (group, field) => group.points.map((p) => p[field]).filter((v) => typeof v === "number");
    const groups = [...answer.groups].sort((a, b) => (b.peak_online || 0) - (a.peak_online || 0));
    const columns = ["Province", "ISP", "Peak viewers", "Viewers, last point", "Peak bandwidth (Mbit/s)", "Flux (MB)", "Requests"];
    const rows = groups.map((g) => {
      const last = g.points.length ? g.points[g.points.length - 1].online : null;
      return el("tr", { "data-province": g.province || "" },
        el("th", { scope: "row", text: printable(g.province) }),
        el("td", { "data-field": "isp", text: printable(g.isp) }),
        el("td", { "data-field": "peak_online", text: number(g.peak_online) }),
        el("td", { text: number(last) }),
        el("td", { "data-field": "bandwidth", text: number(maxOf(numbers(g, "bandwidth_mbps"))) }),
        el("td", { "data-field": "flux", text: number(g.flux_mb) }),
        el("td", { "data-field": "requests", text: number(sum(numbers(g, "requests"))) }));
    });
    const totals = new Map();
    for (const g of answer.groups) for (const p of g.points) {
      const at = Date.parse(p.time);
      if (!Number.isNaN(at) && typeof p.online === "number") totals.set(at, (totals.get(at) || 0) + p.online);
    }
    const points = [...totals.entries()].sort((a, b) => a[0] - b[0]).map(([at, value]) => ({ at, value }));
    target.replaceChildren(head,
      el("figure", { class: "chart", "data-chart": "online" }, el("figcaption", { text: "Viewers, all provinces and ISPs" }), lineChart(points, ["viewers"])),
      el("div", { class: "scroll" }, el("table", { class: "grid", id: "audience-table" },
        el("thead", {}, el("tr", {}, ...columns.map((c) => el("th", { scope: "col", text: c })))),
        el("tbody", {}, ...rows))));
  }

  // ---------------------------------------------------------------- start

  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", signIn);
    $("logout").addEventListener("click", () => signOut("Signed out."));
    $("live-domain").addEventListener("change", () => { renderLive(); });
    $("live-search").addEventListener("input", () => { renderLive(); });
    $("live-filters").addEventListener("submit", (event) => event.preventDefault());
    $("audience-form").addEventListener("submit", (event) => { event.preventDefault(); showAudience(); });
    window.addEventListener("hashchange", route);
    // Back in view: refresh at once (the view and what is chosen in it stay as they were).
    document.addEventListener("visibilitychange", () => { if (!document.hidden && token() && state.resume) state.resume(); });
    route();
  });
})();
