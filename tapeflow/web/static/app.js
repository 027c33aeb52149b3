// Shared helpers of the live view's pages. Exact decimals arrive as strings and are shown as
// they are; numbers are parsed only to draw (pixel positions) or to pick a colour.
"use strict";

const Live = {
  async json(url) {
    const response = await fetch(url, { credentials: "same-origin" });
    if (!response.ok) throw new Error(`${url}: ${response.status}`);
    return response.json();
  },

  // UTC as stored, and the viewer's local time beneath it.
  time(iso) {
    if (!iso) return "";
    const when = new Date(iso);
    const utc = iso.replace("T", " ").replace("+00:00", "").replace("Z", "") + " UTC";
    return `${utc}<span class="local">${when.toLocaleString()}</span>`;
  },

  text(value) {
    return value === null || value === undefined ? "" : String(value)
      .replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;");
  },

  num(value) {
    if (value === null || value === undefined) return '<td class="num"></td>';
    const neg = String(value).startsWith("-") ? " neg" : "";
    return `<td class="num${neg}">${Live.text(value)}</td>`;
  },

  // Server-sent events; `on` maps an event kind to a handler of its parsed data.
  follow(query, on) {
    const source = new EventSource(`/events?${query}`);
    for (const [kind, handler] of Object.entries(on)) {
      source.addEventListener(kind, (e) => handler(JSON.parse(e.data)));
    }
    source.onopen = () => Live.status("live");
    source.onerror = () => Live.status("reconnecting...");
    return source;
  },

  status(text) {
    const el = document.getElementById("status");
    if (el) el.textContent = text;
  },

  flash(row) {
    row.classList.remove("flash");
    void row.offsetWidth;
    row.classList.add("flash");
  },

  nav(here) {
    const links = [["accounts", "/accounts"], ["alerts", "/alerts"], ["symbols", "/symbols"],
                   ["health", "/health"]];
    document.getElementById("nav").innerHTML = links.map(([name, href]) =>
      `<a href="${href}"${name === here ? ' class="here"' : ""}>${name}</a>`).join("");
  },
};
