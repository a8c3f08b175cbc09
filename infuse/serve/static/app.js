"use strict";
// infuse web page: plain JS over the server's own JSON API (/v1, /api). No external requests.
const $ = (selector) => document.querySelector(selector);
const state = { token: localStorage.getItem("infuse-token") || "", history: [], models: [], runTimer: null, down: false };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}
const svgNS = "http://www.w3.org/2000/svg";
function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(svgNS, tag);
  for (const [key, value] of Object.entries(attrs)) if (value !== null && value !== undefined) node.setAttribute(key, value);
  // 0 is a label like any other (an axis starting at 0); only null, undefined and false are skipped
  for (const child of children.flat(Infinity)) if (child !== null && child !== undefined && child !== false) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}
const pct = (value) => (value === null || value === undefined ? "–" : `${Math.round(value * 100)}%`);
const num = (value, digits = 3) => (value === null || value === undefined ? "–" : Number(value).toFixed(digits));
const secs = (value) => (value === null || value === undefined ? "–" : `${Number(value).toFixed(2)} s`);

class ApiError extends Error {}
function serverDown() {
  state.down = true;
  const banner = $("#banner");
  banner.textContent = `The infuse server is not answering at ${location.origin}. Start it again with \`infuse serve\`, then reload this page.`;
  banner.hidden = false;
  $("#server-state").textContent = "server down";
}
function serverUp() {
  if (state.down) { $("#banner").hidden = true; state.down = false; }
}
async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  let response;
  try {
    response = await fetch(path, Object.assign({}, options, { headers }));
  } catch (error) {
    serverDown();
    throw new ApiError("The server is not answering.");
  }
  serverUp();
  if (response.status === 401) {
    $("#token-form").hidden = false;
    throw new ApiError("This server needs its bearer token: enter it above.");
  }
  return response;
}
async function getJSON(path, options) {
  const response = await api(path, options);
  let body = null;
  try { body = await response.json(); } catch (error) { body = null; }
  if (!response.ok) {
    const message = (body && body.error && (body.error.message || body.error)) || `${response.status} ${response.statusText}`;
    throw new ApiError(message);
  }
  return body;
}
function showMessage(target, text, isError = false) {
  const node = $(target);
  node.textContent = text || "";
  node.classList.toggle("error", Boolean(isError));
}

// ---------------------------------------------------------------- navigation
const pages = ["chat", "knowledge", "data", "runs", "verdict"];
const loaders = {};
function route() {
  const page = pages.includes(location.hash.slice(1)) ? location.hash.slice(1) : "chat";
  for (const name of pages) {
    $(`#page-${name}`).hidden = name !== page;
    const link = document.querySelector(`nav a[data-page="${name}"]`);
    if (name === page) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
  }
  if (page !== "runs" && state.runTimer) { clearInterval(state.runTimer); state.runTimer = null; }
  document.title = `infuse · ${page[0].toUpperCase()}${page.slice(1)}`;
  loaders[page]();
}
window.addEventListener("hashchange", route);

async function loadInfo() {
  try {
    const info = await getJSON("/api/info");
    state.info = info;
    $("#server-state").textContent = info.status === "ready" ? `ready · ${info.kb || "no knowledge base"}` : `${info.status}${info.error ? ": " + info.error : ""}`;
    const persona = $("#persona");
    persona.hidden = !info.persona;
    persona.textContent = info.persona ? `Persona: ${info.persona}` : "";
    return info;
  } catch (error) {
    $("#server-state").textContent = error.message;
    return null;
  }
}

// ---------------------------------------------------------------- chat
loaders.chat = async () => {
  await loadInfo();
  if (state.models.length) return;
  try {
    const body = await getJSON("/v1/models");
    const models = body.data.slice().sort((a, b) => (a.id === "infuse-auto" ? -1 : b.id === "infuse-auto" ? 1 : 0));
    state.models = models;
    const select = $("#model");
    select.replaceChildren(...models.map((model) => el("option", { value: model.id, text: model.id === "infuse-auto" ? `infuse-auto — ${model.description}` : model.id })));
    select.dispatchEvent(new Event("change"));
    if (!models.length) showChatNote("This server serves no model yet.");
  } catch (error) {
    showChatNote(error.message);
  }
};
function showChatNote(text) { $("#model-note").textContent = text; }
$("#model").addEventListener("change", () => {
  const model = state.models.find((item) => item.id === $("#model").value);
  showChatNote(model ? model.description : "");
});
$("#new-chat").addEventListener("click", () => { state.history = []; $("#messages").replaceChildren(); $("#question").focus(); });
$("#question").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); $("#ask").requestSubmit(); }
});
$("#ask").addEventListener("submit", async (event) => {
  event.preventDefault();
  const question = $("#question").value.trim();
  if (!question) return;
  const model = $("#model").value;
  $("#question").value = "";
  const messages = $("#messages");
  messages.append(el("div", { class: "msg user", text: question }));
  const text = el("span", { class: "answer-text" });
  const bubble = el("div", { class: "msg assistant", "data-state": "streaming", "data-model": model }, text);
  messages.append(bubble);
  bubble.scrollIntoView({ block: "end" });
  $("#send").disabled = true;
  let answer = "";
  let final = null;
  try {
    const response = await api("/v1/chat/completions", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ model, stream: true, messages: [...state.history, { role: "user", content: question }] }),
    });
    if (!response.ok) {
      let message = `${response.status} ${response.statusText}`;
      try { const body = await response.json(); message = body.error.message || message; } catch (error) { /* keep status */ }
      throw new ApiError(message);
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        for (const line of event.split("\n")) {
          if (!line.startsWith("data: ")) continue;
          const data = line.slice(6);
          if (data === "[DONE]") continue;
          const chunk = JSON.parse(data);
          if (chunk.error) throw new ApiError(chunk.error.message);
          const choice = chunk.choices && chunk.choices[0];
          if (choice && choice.delta && choice.delta.content) {
            answer += choice.delta.content;
            text.textContent = answer;
            bubble.dataset.pieces = String(Number(bubble.dataset.pieces || 0) + 1);
          }
          if (chunk.infuse) final = chunk;
        }
      }
    }
    state.history.push({ role: "user", content: question }, { role: "assistant", content: answer });
    bubble.dataset.state = "done";
    if (final) bubble.append(answerMeta(final));
    if (!answer) text.textContent = "(empty answer)";
  } catch (error) {
    bubble.classList.add("error");
    bubble.dataset.state = "error";
    text.textContent = `${answer}${answer ? "\n\n" : ""}${error.message}`;
  } finally {
    $("#send").disabled = false;
    bubble.scrollIntoView({ block: "end" });
  }
});
function answerMeta(final) {
  const info = final.infuse;
  const meta = el("div", { class: "meta" }, "Answered by ", el("span", { class: "badge method", text: info.method }));
  if (info.requested_model && info.requested_model !== info.method) meta.append(el("span", { text: `via ${info.requested_model}` }));
  if (info.fallback_from) meta.append(el("span", { text: `(${info.fallback_from} declined first)` }));
  if (info.no_answer) meta.append(el("span", { text: "· found no answer in the knowledge" }));
  const wrap = el("div", {}, meta);
  const citations = final.citations || [];
  const sourceButton = (item) => el("button", { type: "button", class: "source", title: item.source, "data-doc": item.doc_id || "", "data-chunk": item.chunk_id || "",
    onclick: () => openPassage(item) },
    el("b", { text: `[${item.index}] ` }), shortSource(item.source), item.score !== null && item.score !== undefined ? ` · score ${num(item.score)}` : "");
  if (citations.length) {
    wrap.append(el("div", { class: "meta", text: "Sources cited:" }), el("div", { class: "sources cited-sources" }, citations.map(sourceButton)));
  }
  const cited = new Set(citations.map((item) => item.chunk_id));
  const passages = (info.passages || []).filter((item) => !cited.has(item.chunk_id))
    .map((item) => ({ index: item.number, source: item.source, score: item.score, doc_id: item.doc_id, chunk_id: item.chunk_id, snippet: "" }));
  if (passages.length) {
    wrap.append(el("div", { class: "meta", text: citations.length ? "Also given to the model:" : "Passages given to the model (none cited):" }),
      el("div", { class: "sources passage-sources" }, passages.map(sourceButton)));
  }
  if (!citations.length && !passages.length) {
    wrap.append(el("div", { class: "meta", text: info.method === "cag"
      ? "Sources: the whole knowledge, read at once from the model's cache (CAG cites no single passage)."
      : "No sources: this method answers from the model alone." }));
  }
  return wrap;
}
function shortSource(source) {
  if (!source || /^https?:/.test(source)) return source || "";
  return source.split("/").slice(-2).join("/");
}
function highlight(text, passage) {
  const node = el("span");
  const probe = (passage || "").trim().slice(0, 200);
  const at = probe ? text.indexOf(probe) : -1;
  if (at < 0) { node.append(el("mark", { text })); return node; }
  const end = text.indexOf((passage || "").trim()) === at ? at + passage.trim().length : at + probe.length;
  node.append(text.slice(0, at), el("mark", { text: text.slice(at, end) }), text.slice(end));
  return node;
}
async function openPassage(citation) {
  const dialog = $("#passage");
  $("#passage-title").textContent = `[${citation.index}] ${citation.source}`;
  const body = $("#passage-body");
  body.replaceChildren(el("p", { class: "muted", text: "Loading the document…" }));
  dialog.showModal();
  try {
    if (!citation.doc_id) throw new ApiError("This source has no document id.");
    const doc = await getJSON(`/api/documents/${encodeURIComponent(citation.doc_id)}`);
    let cited = null;
    const chunks = doc.chunks.map((chunk) => {
      const isCited = chunk.chunk_id === citation.chunk_id;
      const node = el("div", { class: `chunk${isCited ? " cited" : ""}`, "data-chunk": chunk.chunk_id },
        el("span", { class: "pos", text: `chunk ${chunk.position + 1} of ${doc.chunks.length}${isCited ? " · cited" : ""}` }),
        isCited ? highlight(chunk.text, citation.snippet) : chunk.text);
      if (isCited) cited = node;
      return node;
    });
    body.replaceChildren(el("p", { class: "muted", text: `${doc.title || doc.source} · ${doc.chunk_count} chunk${doc.chunk_count === 1 ? "" : "s"} · ${doc.source}` }), el("div", { class: "chunks" }, chunks));
    if (!cited) body.prepend(el("div", { class: "chunk cited" }, el("span", { class: "pos", text: "cited passage" }), el("mark", { text: citation.snippet })));
    (cited || body.firstChild).scrollIntoView({ block: "center" });
  } catch (error) {
    body.replaceChildren(el("p", { class: "muted", text: `Could not open the document (${error.message}). The cited passage:` }),
      el("div", { class: "chunk cited" }, el("mark", { text: citation.snippet })));
  }
}
$("#passage-close").addEventListener("click", () => $("#passage").close());

// ---------------------------------------------------------------- knowledge
loaders.knowledge = async () => {
  const info = await loadInfo();
  $("#kb-where").textContent = info && info.kb ? `Knowledge base: ${info.kb}` : "";
  $("#upload").hidden = Boolean(info && !info.can_upload);
  $("#add-url").hidden = Boolean(info && !info.can_add_url);
  if (info) $("#url-note").textContent = info.allow_private
    ? "Fetched by the server, politely (robots.txt, size and time limits); private addresses allowed."
    : "Fetched by the server, politely (robots.txt, size and time limits); public addresses only.";
  await loadDocuments();
};
async function loadDocuments() {
  const target = $("#documents");
  try {
    const body = await getJSON("/api/documents");
    if (!body.count) {
      target.replaceChildren();
      showMessage("#kb-message", `The knowledge base at ${body.kb} holds no documents yet. Add a file or a web page above, or run \`infuse kb add FILES --kb ${body.kb}\`.`);
      return body;
    }
    showMessage("#kb-message", "");
    const rows = body.documents.map((doc) => el("tr", { "data-key": doc.key },
      el("td", {}, el("button", { type: "button", class: "link doc-title", "aria-expanded": "false", onclick: (event) => toggleChunks(event.currentTarget, doc) }, doc.title || doc.source),
        el("div", { class: "muted mono", text: doc.source })),
      el("td", { class: "num chunk-count", text: doc.chunk_count }),
      el("td", { class: "hide-narrow dates" }, doc.added ? el("div", { text: `added ${doc.added}` }) : null, doc.changed ? el("div", { class: "muted", text: `changed ${doc.changed}` }) : null, !doc.added && !doc.changed ? "–" : null),
      el("td", {}, el("button", { type: "button", class: "danger", "aria-label": `Remove ${doc.title || doc.source}`, onclick: () => removeDocument(doc) }, "Remove"))));
    const canSync = !state.info || state.info.can_add_url;
    target.replaceChildren(el("div", { class: "docs-head" }, el("h2", { text: `${body.count} document${body.count === 1 ? "" : "s"}` }),
      canSync ? el("button", { type: "button", id: "sync", class: "ghost", title: "Ask web pages again (ETag / Last-Modified) and re-read files, like `infuse kb sync`", onclick: syncDocuments }, "Check sources for changes") : null),
    el("div", { class: "table-wrap" }, el("table", { id: "documents-table" },
      el("thead", {}, el("tr", {}, el("th", { text: "Document" }), el("th", { class: "num", text: "Chunks" }), el("th", { class: "hide-narrow", text: "Added / changed" }), el("th", { text: "" }))),
      el("tbody", {}, rows))));
    return body;
  } catch (error) {
    target.replaceChildren();
    showMessage("#kb-message", error.message, true);
    return null;
  }
}
async function syncDocuments() {
  const button = $("#sync");
  button.disabled = true;
  showMessage("#kb-message", "Checking every source for changes (web pages are asked politely, one host request at a time)…");
  try {
    const report = await getJSON("/api/documents/sync", { method: "POST" });
    await loadDocuments();
    const counts = [["changed", report.updated], ["new", report.added], ["removed", report.removed], ["unchanged", report.unchanged]]
      .map(([label, items]) => `${items.length} ${label}`).join(", ");
    const skipped = report.skipped.map((item) => item.reason).join("; ");
    showMessage("#kb-message", `Checked: ${counts}.${skipped ? ` Kept as they were: ${skipped}.` : ""}`);
    await refreshSearch();
  } catch (error) { showMessage("#kb-message", error.message, true); } finally { if ($("#sync")) $("#sync").disabled = false; }
}
async function toggleChunks(button, doc) {
  const row = button.closest("tr");
  const next = row.nextElementSibling;
  if (next && next.classList.contains("chunks-row")) { next.remove(); button.setAttribute("aria-expanded", "false"); return; }
  const cell = el("td", { colspan: "4" }, el("span", { class: "muted", text: "Loading chunks…" }));
  row.after(el("tr", { class: "chunks-row" }, cell));
  button.setAttribute("aria-expanded", "true");
  try {
    const body = await getJSON(`/api/documents/${encodeURIComponent(doc.doc_id)}`);
    cell.replaceChildren(el("div", { class: "chunks" }, body.chunks.map((chunk) =>
      el("div", { class: "chunk", "data-chunk": chunk.chunk_id }, el("span", { class: "pos", text: `chunk ${chunk.position + 1}${chunk.heading_path.length ? " · " + chunk.heading_path.join(" › ") : ""}` }), chunk.text))));
  } catch (error) {
    cell.replaceChildren(el("span", { class: "muted", text: error.message }));
  }
}
async function removeDocument(doc) {
  if (!window.confirm(`Remove ${doc.title || doc.source} from the knowledge base?`)) return;
  try {
    await getJSON(`/api/documents/${encodeURIComponent(doc.doc_id)}`, { method: "DELETE" });
    const left = await loadDocuments();
    // an empty knowledge base keeps its message (what to do next), after the removal
    showMessage("#kb-message", `Removed ${doc.source}.${left && !left.count ? " " + $("#kb-message").textContent : ""}`);
    await refreshSearch();
  } catch (error) { showMessage("#kb-message", error.message, true); }
}
$("#upload").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = $("#upload-file").files[0];
  if (!file) { showMessage("#kb-message", "Choose a file to add first.", true); return; }
  showMessage("#kb-message", `Adding ${file.name}…`);
  try {
    const report = await getJSON("/api/documents/upload", { method: "POST", headers: { "X-Filename": file.name }, body: file });
    await loadDocuments();
    showMessage("#kb-message", `Added ${file.name}: ${report.chunks_written} chunks indexed.`);
    await refreshSearch();
    $("#upload-file").value = "";
  } catch (error) { showMessage("#kb-message", error.message, true); }
});
$("#add-url").addEventListener("submit", async (event) => {
  event.preventDefault();
  const url = $("#url-input").value.trim();
  const maxPages = Number($("#url-pages").value);
  const button = $("#add-url button");
  showMessage("#kb-message", maxPages > 1 ? `Crawling up to ${maxPages} pages from ${url}…` : `Fetching ${url}…`);
  button.disabled = true;
  try {
    const report = await getJSON("/api/documents/url", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ url, max_pages: maxPages }) });
    await loadDocuments();
    const titles = report.documents.map((doc) => doc.title || doc.source).join(", ");
    const skipped = report.pages.filter((page) => page.state !== "added").length;
    showMessage("#kb-message", `Added ${report.documents.length} page${report.documents.length === 1 ? "" : "s"} from ${url} (${titles}): ${report.chunks_written} chunks indexed`
      + `${report.unchanged.length ? `, ${report.unchanged.length} already up to date` : ""}${skipped ? `; ${skipped} other link${skipped === 1 ? "" : "s"} skipped` : ""}${report.stopped_early ? "; stopped at the time limit" : ""}.`);
    for (const doc of report.documents) {
      const row = document.querySelector(`#documents-table tr[data-key="${doc.key}"]`);
      if (row) row.classList.add("fresh");
    }
    $("#url-input").value = "";
    await refreshSearch();
  } catch (error) { showMessage("#kb-message", error.message, true); } finally { button.disabled = false; }
});
async function refreshSearch() {
  if ($("#search-results").childElementCount && $("#search-q").value.trim()) await runSearch();
}
$("#search").addEventListener("submit", (event) => { event.preventDefault(); runSearch(); });
async function runSearch() {
  const query = $("#search-q").value.trim();
  const target = $("#search-results");
  if (!query) { target.replaceChildren(); return; }
  try {
    const body = await getJSON(`/api/search?q=${encodeURIComponent(query)}&k=8`);
    target.replaceChildren(el("h2", { text: `Search: ${body.hits.length} passage${body.hits.length === 1 ? "" : "s"} for “${query}”` }),
      body.hits.length ? el("div", {}, body.hits.map((hit) => el("div", { class: "chunk hit", "data-source": hit.source },
        el("span", { class: "pos" }, el("span", { class: "score", text: `score ${num(hit.score)}` }), ` · #${hit.rank} · ${hit.title || hit.source}`), hit.text)))
        : el("p", { class: "muted", text: "Nothing matched." }));
  } catch (error) { target.replaceChildren(el("div", { class: "message error", text: error.message })); }
}

// ---------------------------------------------------------------- charts
function lineChart(series, { width = 760, height = 280, xLabel = "step", yLabel = "loss" } = {}) {
  const points = series.flatMap((item) => item.points);
  const pad = { left: 56, right: 16, top: 14, bottom: 40 };
  const xs = points.map((p) => p.x), ys = points.map((p) => p.y);
  const xMin = Math.min(...xs), xMax = Math.max(...xs);
  let yMin = Math.min(...ys), yMax = Math.max(...ys);
  if (yMin === yMax) { yMin -= 0.5; yMax += 0.5; }
  const sx = (x) => pad.left + (xMax === xMin ? 0.5 : (x - xMin) / (xMax - xMin)) * (width - pad.left - pad.right);
  const sy = (y) => pad.top + (1 - (y - yMin) / (yMax - yMin)) * (height - pad.top - pad.bottom);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `${yLabel} by ${xLabel}` });
  for (let i = 0; i <= 4; i += 1) {
    const y = yMin + ((yMax - yMin) * i) / 4;
    root.append(svg("line", { x1: pad.left, x2: width - pad.right, y1: sy(y), y2: sy(y), stroke: "#e6e3dc" }),
      svg("text", { x: pad.left - 8, y: sy(y) + 4, "text-anchor": "end", "font-size": 12, fill: "#5d6773" }, y.toFixed(yMax - yMin < 0.2 ? 3 : 2)));
  }
  root.append(svg("text", { x: (width + pad.left) / 2, y: height - 8, "text-anchor": "middle", "font-size": 12, fill: "#5d6773" }, xLabel),
    svg("text", { x: pad.left, y: height - 22, "text-anchor": "middle", "font-size": 12, fill: "#5d6773" }, xMin),
    svg("text", { x: width - pad.right, y: height - 22, "text-anchor": "end", "font-size": 12, fill: "#5d6773" }, xMax));
  for (const item of series) {
    if (!item.points.length) continue;
    const path = item.points.map((p, i) => `${i ? "L" : "M"}${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join(" ");
    root.append(svg("path", { d: path, fill: "none", stroke: item.color, "stroke-width": 2.5, class: `series-${item.name}` }));
    for (const p of item.points) root.append(svg("circle", { cx: sx(p.x), cy: sy(p.y), r: 3.5, fill: item.color, class: `point point-${item.name}`, "data-x": p.x, "data-y": p.y },
      svg("title", {}, `${item.label} at ${xLabel} ${p.x}: ${p.y.toFixed(4)}`)));
  }
  return el("div", { class: "chart" }, root, el("div", { class: "legend" }, series.filter((s) => s.points.length).map((s) => el("span", {}, el("span", { class: "swatch", style: `background:${s.color}` }), s.label))));
}
function histogram(values, { width = 760, height = 240, bins = 20, limit = null } = {}) {
  const max = Math.max(...values), min = Math.min(...values);
  const step = Math.max(1, Math.ceil((max - min + 1) / bins));
  const counts = new Array(Math.ceil((max - min + 1) / step)).fill(0);
  for (const value of values) counts[Math.floor((value - min) / step)] += 1;
  const pad = { left: 44, right: 12, top: 12, bottom: 40 };
  const top = Math.max(...counts, 1);
  const bw = (width - pad.left - pad.right) / counts.length;
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "Token lengths per example" });
  counts.forEach((count, i) => {
    const h = (count / top) * (height - pad.top - pad.bottom);
    const low = min + i * step;
    root.append(svg("rect", { x: pad.left + i * bw + 1, y: height - pad.bottom - h, width: Math.max(1, bw - 2), height: h, fill: limit && low + step > limit ? "#c9772b" : "#0f6e62", class: "bin", "data-low": low, "data-high": low + step - 1, "data-count": count },
      svg("title", {}, `${low}–${low + step - 1} tokens: ${count} examples`)));
  });
  root.append(svg("text", { x: pad.left, y: height - 22, "font-size": 12, fill: "#5d6773" }, min),
    svg("text", { x: width - pad.right, y: height - 22, "text-anchor": "end", "font-size": 12, fill: "#5d6773" }, max),
    svg("text", { x: (width + pad.left) / 2, y: height - 6, "text-anchor": "middle", "font-size": 12, fill: "#5d6773" }, "tokens per example"),
    svg("text", { x: pad.left - 6, y: pad.top + 10, "text-anchor": "end", "font-size": 12, fill: "#5d6773" }, top),
    svg("text", { x: pad.left - 6, y: height - pad.bottom, "text-anchor": "end", "font-size": 12, fill: "#5d6773" }, 0),
    svg("line", { x1: pad.left, x2: width - pad.right, y1: height - pad.bottom + 0.5, y2: height - pad.bottom + 0.5, stroke: "#bdb9ae" }));
  return el("div", { class: "chart" }, root);
}
function facts(pairs) {
  return el("dl", { class: "facts" }, pairs.filter(([, value]) => value !== null && value !== undefined && value !== "").map(([key, value]) => [el("dt", { text: key }), el("dd", { text: value })]));
}

// ---------------------------------------------------------------- data
loaders.data = async () => {
  try {
    const body = await getJSON("/api/datasets");
    const select = $("#dataset");
    const current = select.value;
    select.replaceChildren(...body.files.map((file) => el("option", { value: file, title: file, text: file.split("/").slice(-2).join("/") })));
    if (current) select.value = current;
    $("#data-pick").hidden = !body.files.length;
    showMessage("#data-message", body.files.length ? "" : (body.message || "No dataset files (.jsonl, .json, .csv, .parquet) under the allowed folders."));
  } catch (error) { showMessage("#data-message", error.message, true); }
};
$("#data-pick").addEventListener("submit", async (event) => {
  event.preventDefault();
  const path = $("#dataset").value;
  const target = $("#data-report");
  showMessage("#data-message", `Inspecting ${path} (loading the tokenizer)…`);
  try {
    const report = await getJSON(`/api/datasets/inspect?path=${encodeURIComponent(path)}`);
    showMessage("#data-message", "");
    const roles = Object.entries(report.roles || {}).map(([role, count]) => `${role} ${count}`).join(", ");
    target.replaceChildren(
      el("h2", { text: "Report" }),
      facts([["File", report.path], ["Format", report.format], ["Rows", report.rows], ["Columns", (report.columns || []).join(", ")], ["Roles", roles],
        ["Tokens (p50 / p90 / max)", `${report.token_percentiles.p50} / ${report.token_percentiles.p90} / ${report.token_percentiles.max}`],
        ["Over max length", `${report.over_max_len} of ${report.rows} (max ${report.max_seq_len})`], ["Trained tokens", pct(report.trained_token_share)],
        ["Duplicates", report.duplicates], ["Empty answers", report.empty_answers]]),
      el("h2", { text: "Token length per example" }),
      report.token_lengths.length ? histogram(report.token_lengths, { limit: report.max_seq_len, width: Math.min(900, Math.max(340, target.clientWidth || 760)) }) : el("p", { class: "muted", text: "No examples to measure." }),
      el("h2", { text: "Warnings" }),
      report.warnings.length ? el("ul", { class: "warnings" }, report.warnings.map((w) => el("li", { text: w }))) : el("p", { class: "muted", text: "None." }),
      el("h2", { text: "Samples" }), el("p", { class: "muted" }, "What the model trains on is ", el("span", { class: "trained", text: "highlighted" }), "; the rest is context only."),
      ...report.samples.map((sample) => el("div", { class: "sample" }, sample.map((seg) => el("span", { class: seg.trained ? "trained" : "untrained", text: seg.text })))));
  } catch (error) { target.replaceChildren(); showMessage("#data-message", error.message, true); }
});

// ---------------------------------------------------------------- runs
loaders.runs = async () => {
  try {
    const body = await getJSON("/api/runs");
    const list = $("#runs-list");
    if (!body.runs.length) {
      list.replaceChildren();
      showMessage("#runs-message", body.message || "No training runs in the runs folder yet: `infuse train` writes one.");
      return;
    }
    showMessage("#runs-message", "");
    list.replaceChildren(...body.runs.map((run) => el("li", {}, el("button", { type: "button", "data-run": run.name, onclick: () => showRun(run.name) },
      el("strong", { text: run.name }), el("br"), el("span", { class: "muted", text: runLine(run) })))));
    if (!state.run || !body.runs.some((run) => run.name === state.run)) state.run = body.runs[0].name;
    await showRun(state.run);
  } catch (error) { showMessage("#runs-message", error.message, true); }
};
function runLine(run) {
  if (run.status === "running") return run.final_loss === null || run.final_loss === undefined
    ? "running · no metrics yet" : `running · step ${run.steps} · last loss ${num(run.final_loss)}`;
  return `${run.status} · ${run.steps}${run.total_steps ? "/" + run.total_steps : ""} steps · loss ${num(run.final_loss)}`;
}
const when = (iso) => (iso ? String(iso).replace("T", " ").replace(/:\d\d(\.\d+)?(\+00:00|Z)$/, " UTC") : null);
async function showRun(name) {
  state.run = name;
  for (const button of document.querySelectorAll("#runs-list button")) button.setAttribute("aria-current", String(button.dataset.run === name));
  const target = $("#run-detail");
  try {
    const run = await getJSON(`/api/runs/${encodeURIComponent(name)}`);
    const curve = run.curve || [];
    const train = curve.filter((p) => p.loss !== undefined && p.loss !== null).map((p) => ({ x: p.step, y: p.loss }));
    const evals = curve.filter((p) => p.eval_loss !== undefined && p.eval_loss !== null).map((p) => ({ x: p.step, y: p.eval_loss }));
    const config = run.config || {};
    target.replaceChildren(...[
      el("h2", { text: `${name} · ${run.status}` }),
      train.length || evals.length
        ? lineChart([{ name: "train", label: "train loss", color: "#0f6e62", points: train }, { name: "eval", label: "eval loss", color: "#c9772b", points: evals }],
          { width: Math.min(900, Math.max(340, target.clientWidth || 760)), height: target.clientWidth < 500 ? 240 : 280 })
        : el("div", { class: "message", text: run.status === "running" ? "This run has logged no metrics yet; the curve appears after its first logged step." : "This run logged no metrics (metrics.jsonl is empty)." }),
      el("h3", { text: "Run" }),
      facts([["Status", run.status], ["Steps", `${run.steps}${run.total_steps ? " of " + run.total_steps : ""}`], ["Final loss", num(run.final_loss)], ["Eval loss", num(run.eval_loss)],
        ["Examples", `${run.train_examples ?? "–"} train / ${run.eval_examples ?? "–"} eval`], ["Device", [run.device, run.dtype].filter(Boolean).join(" ")], ["Tokens/s", run.tokens_per_s ? Math.round(run.tokens_per_s) : null],
        ["Started", when(run.started)], ["Finished", when(run.finished)]]),
      el("h3", { text: "Settings" }),
      facts(Object.entries(config).filter(([, v]) => v !== null && v !== "" && typeof v !== "object").map(([k, v]) => [k, String(v)])),
      run.warnings && run.warnings.length ? el("ul", { class: "warnings" }, run.warnings.map((w) => el("li", { text: w }))) : null].filter(Boolean));
    if (state.runTimer) { clearInterval(state.runTimer); state.runTimer = null; }
    if (run.status === "running") state.runTimer = setInterval(() => { if (location.hash === "#runs") showRun(name); }, 3000);
  } catch (error) { target.replaceChildren(el("div", { class: "message error", text: error.message })); }
}

// ---------------------------------------------------------------- verdict
function intervalBar(score, low, high) {
  const width = 220, height = 22, x = (v) => 6 + v * (width - 12);
  return svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, class: "interval", "data-low": low, "data-high": high, "aria-label": `95% interval ${pct(low)} to ${pct(high)}` },
    svg("line", { x1: x(0), x2: x(1), y1: 11, y2: 11, stroke: "#e6e3dc", "stroke-width": 2 }),
    low !== null && low !== undefined ? svg("rect", { x: x(low), y: 5, width: Math.max(2, x(high) - x(low)), height: 12, rx: 3, fill: "#cfe7e1" }) : null,
    svg("circle", { cx: x(score), cy: 11, r: 5, fill: "#0f6e62" }));
}
loaders.verdict = async () => {
  const target = $("#verdict");
  try {
    const body = await getJSON("/api/verdict");
    if (!body.available) { target.replaceChildren(); showMessage("#verdict-message", body.message); return; }
    showMessage("#verdict-message", "");
    const profile = body.profile;
    const summaries = Object.fromEntries(((body.results && body.results.methods) || []).map((m) => [m.name, m]));
    const rows = profile.methods.map((m) => {
      const s = summaries[m.name] || {};
      return el("tr", { "data-method": m.name },
        el("td", {}, el("span", { class: `badge${m.name === profile.winner ? " win" : ""}`, text: m.name })),
        el("td", { class: "num score-cell", text: pct(m.score) }),
        el("td", { class: "interval-cell" }, intervalBar(m.score, m.low, m.high), el("div", { class: "muted interval-text", text: `${pct(m.low)} – ${pct(m.high)}` })),
        el("td", { class: "num latency", text: secs(m.latency_p50_s ?? s.total_p50_s) }),
        el("td", { class: "num hide-narrow", text: m.questions }),
        el("td", { class: "hide-narrow", text: (m.not_distinguishable_from || []).join(", ") || "–" }));
    });
    const findings = (body.results && body.results.findings) || [];
    target.replaceChildren(
      el("p", { class: "verdict-line", text: profile.verdict }),
      el("p", {}, "infuse-auto serves ", el("strong", { text: profile.winner }), body.auto_serves ? ` (${body.auto_serves})` : "", "."),
      el("h2", { text: `Methods (${profile.metric}, 95% interval)` }),
      el("div", { class: "table-wrap" }, el("table", { id: "verdict-table" },
        el("thead", {}, el("tr", {}, el("th", { text: "Method" }), el("th", { class: "num", text: "Score" }), el("th", { text: "Interval" }), el("th", { class: "num", text: "Latency p50" }), el("th", { class: "num hide-narrow", text: "Questions" }), el("th", { class: "hide-narrow", text: "Tied with" }))),
        el("tbody", {}, rows))),
      el("h2", { text: "Diagnoses" }),
      findings.length ? el("ul", { class: "findings" }, findings.map((f) => el("li", {}, typeof f === "string" ? f : [el("strong", { text: f.title || "" }), " ", f.detail || f.explanation || f.message || "", f.fix ? el("div", { class: "muted", text: `Fix: ${f.fix}` }) : null])))
        : el("p", { class: "muted", text: body.results ? "No findings: nothing in the eval pointed at a problem." : "No results.json beside the profile, so no diagnoses." }),
      el("p", { class: "muted mono", text: `profile: ${body.profile_path}${body.results_path ? " · results: " + body.results_path : ""}` }));
  } catch (error) { target.replaceChildren(); showMessage("#verdict-message", error.message, true); }
};

// ---------------------------------------------------------------- start
$("#token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.token = $("#token-input").value.trim();
  localStorage.setItem("infuse-token", state.token);
  $("#token-form").hidden = true;
  state.models = [];
  route();
});
setInterval(async () => {
  try { await fetch("/health", { cache: "no-store" }); serverUp(); } catch (error) { serverDown(); }
}, 5000);
route();
