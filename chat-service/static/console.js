/* chat-engine agent console: plain JavaScript, no build step (docs/WIDGET.md).
 *
 * The token lives in sessionStorage (one tab, gone with it). Live updates: the agent's inbox
 * WebSocket (`/api/agent/ws`, resumed with `after=` the last position) refreshes my chats and the
 * open transcript; the waiting list is the board's, which no agent stream carries, so it is
 * re-read every WAITING_POLL_MS and whenever an inbox event arrives. Supervisors and admins also
 * get the board over `/api/supervisor/ws`, and the history search.
 */
(function () {
  "use strict";
  /** How often the waiting list is re-read, in milliseconds. */
  var WAITING_POLL_MS = 2000;
  /** Longest pause between reconnect attempts, in milliseconds. */
  var RECONNECT_MS_MAX = 10000;
  var TOKEN_KEY = "chatengine:console";

  var s = { token: null, me: null, selected: null, view: null, position: 0, socket: null, board: null, reconnectMs: 500, poll: null, cannedItems: [], cannedIndex: -1 };
  function $(id) { return document.getElementById(id); }
  function el(tag, attrs, children) {
    var n = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      var v = attrs[k]; if (v === null || v === undefined || v === false) return;
      if (k === "text") n.textContent = v; else if (k.slice(0, 2) === "on") n.addEventListener(k.slice(2), v); else n.setAttribute(k, v === true ? "" : v);
    });
    (children || []).forEach(function (c) { if (c) n.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return n;
  }
  function uuid() { return crypto.randomUUID(); }
  function api(method, path, body, raw) {
    var headers = {};
    if (s.token) headers.Authorization = "Bearer " + s.token;
    var init = { method: method, headers: headers };
    if (raw) { init.body = raw; headers["Content-Type"] = raw.type || "application/octet-stream"; }
    else if (body !== undefined) { init.body = JSON.stringify(body); headers["Content-Type"] = "application/json"; }
    return fetch(path, init).then(function (r) {
      return r.text().then(function (t) {
        var j = null; try { j = t ? JSON.parse(t) : null; } catch (e) { j = null; }
        if (r.status === 401 && s.token) { signOut(); }
        if (!r.ok) { var err = new Error((j && j.error && (j.error.code + ": " + j.error.message)) || r.statusText); err.status = r.status; err.body = j; throw err; }
        return j;
      });
    });
  }
  function short(id) { return id ? String(id).slice(0, 8) : ""; }
  function showError(e) { $("chat-error").textContent = e ? (e.message || String(e)) : ""; }
  function live(text) { $("live").textContent = text; }

  // ----- sign in ---------------------------------------------------------------------------------
  $("signin-form").addEventListener("submit", function (e) {
    e.preventDefault();
    $("signin-error").textContent = "";
    api("POST", "/api/agent/sign-in", { login: $("login").value, password: $("password").value }).then(function (r) {
      s.token = r.token; sessionStorage.setItem(TOKEN_KEY, r.token); start();
    }).catch(function (err) { $("signin-error").textContent = err.status === 401 ? "Wrong login or password." : err.message; });
  });
  $("signout").addEventListener("click", signOut);
  function signOut() {
    sessionStorage.removeItem(TOKEN_KEY); s.token = null;
    if (s.socket) { s.socket.onclose = null; s.socket.close(); }
    if (s.board) { s.board.onclose = null; s.board.close(); }
    clearInterval(s.poll);
    $("app").hidden = true; $("signin").hidden = false; $("login").focus();
  }
  function start() {
    api("GET", "/api/agent/me").then(function (me) {
      s.me = me;
      $("signin").hidden = true; $("app").hidden = false;
      $("me").textContent = me.user.display_name + " (" + me.user.role + ")";
      $("presence").value = me.status.presence;
      var sup = me.user.role === "supervisor" || me.user.role === "admin";
      $("tab-board").hidden = !sup; $("tab-history").hidden = !sup;
      if (me.user.role === "admin") loadAgents();
      refreshLists();
      connect(0);
      s.poll = setInterval(refreshWaiting, WAITING_POLL_MS);
      $("app").setAttribute("data-ready", "true");
    }).catch(function () { signOut(); });
  }
  function loadAgents() {
    api("GET", "/api/admin/operators?limit=100").then(function (page) {
      var list = $("agents"); list.textContent = "";
      (page.items || []).forEach(function (u) { list.appendChild(el("option", { value: u.id, text: u.display_name + " (" + u.login + ")" })); });
    }).catch(function () { /* not an admin after all */ });
  }
  $("presence").addEventListener("change", function () {
    api("PUT", "/api/agent/presence", { presence: $("presence").value }).then(function (st) { $("presence").value = st.presence; live("You are " + st.presence + "."); }).catch(showError);
  });

  // ----- lists -----------------------------------------------------------------------------------
  function refreshLists() { refreshWaiting(); refreshMine(); }
  function refreshWaiting() {
    if (!s.token) return;
    api("GET", "/api/agent/waiting?limit=50").then(function (w) {
      var ul = $("waiting");
      // Redraw only on change: a button replaced under the pointer would swallow the click.
      var key = JSON.stringify(w);
      if (ul.getAttribute("data-key") === key) return;
      ul.setAttribute("data-key", key); ul.textContent = "";
      $("waiting-count").textContent = String(w.total);
      w.chats.forEach(function (c) {
        var who = (c.page && (c.page.firstname || "")) || "Visitor " + short(c.contact);
        ul.appendChild(el("li", { class: "item", "data-chat": c.chat }, [
          el("span", { text: who + " \u00b7 " + c.status + " since " + new Date(c.since).toLocaleTimeString() }),
          el("button", { type: "button", class: "take", "data-chat": c.chat, text: "Take", "aria-label": "Take the chat of " + who, onclick: function () { take(c.chat); } }),
        ]));
      });
    }).catch(function () { /* shown on the next poll */ });
  }
  function refreshMine() {
    return api("GET", "/api/agent/chats").then(function (m) {
      var ul = $("mine");
      var key = JSON.stringify(m) + s.selected;
      if (ul.getAttribute("data-key") === key) return;
      ul.setAttribute("data-key", key); ul.textContent = "";
      m.chats.forEach(function (c) {
        ul.appendChild(el("li", { class: "item" + (c.chat === s.selected ? " selected" : ""), "data-chat": c.chat }, [
          el("button", { type: "button", class: "open", "data-chat": c.chat, text: "Chat " + short(c.chat) + " \u00b7 " + c.messages + " messages", onclick: function () { select(c.chat); } }),
        ]));
      });
    }).catch(function () { /* next event */ });
  }
  function take(chat) {
    api("POST", "/api/agent/chats/" + chat + "/take", { command_id: uuid() }).then(function () { refreshLists(); select(chat); }).catch(function (e) { live(e.message); refreshWaiting(); });
  }

  // ----- one chat --------------------------------------------------------------------------------
  function select(chat) { s.selected = chat; $("no-chat").hidden = true; $("chat").hidden = false; showError(null); loadChat().then(function () { $("reply").focus(); }); refreshMine(); }
  function loadChat() {
    if (!s.selected) return Promise.resolve();
    return api("GET", "/api/agent/chats/" + s.selected).then(renderChat).catch(function (e) {
      if (e.status === 409 || e.status === 404) { s.selected = null; $("chat").hidden = true; $("no-chat").hidden = false; live("That chat is no longer yours."); } else showError(e);
    });
  }
  function authorOf(m) { return m.author === "Visitor" ? "visitor" : m.author === "System" ? "system" : "agent"; }
  function renderChat(v) {
    s.view = v;
    $("chat").setAttribute("data-chat", v.chat);
    $("chat").setAttribute("data-phase", v.phase);
    $("chat-title").textContent = "Chat " + short(v.chat);
    $("chat-phase").textContent = v.phase + (v.disposition ? " (" + v.disposition + ")" : "");
    var facts = $("chat-facts"); facts.textContent = "";
    function fact(k, val) { if (val === null || val === undefined || val === "") return; facts.appendChild(el("dt", { text: k })); facts.appendChild(el("dd", { text: typeof val === "string" ? val : JSON.stringify(val) })); }
    var answers = v.form_answers || {};
    Object.keys(answers).forEach(function (k) { var a = answers[k]; fact(k, a && typeof a === "object" && "value" in a ? a.value : a); });
    var page = v.page || {};
    fact("First name", page.firstname); fact("Last name", page.lastname); fact("Message", page.message);
    Object.keys(page.vars || {}).forEach(function (k) { fact(k, page.vars[k]); });
    var ol = $("transcript"); ol.textContent = "";
    v.messages.forEach(function (m) {
      var who = authorOf(m);
      var li = el("li", { class: "msg " + who, "data-id": m.id, "data-author": who });
      li.appendChild(el("span", { class: "who", text: who === "agent" ? "Agent" : who === "visitor" ? "Visitor" : "System" }));
      if (m.redaction) li.appendChild(el("em", { text: " (redacted)" }));
      else li.appendChild(el("span", { class: "text", text: " " + m.text }));
      (m.attachments || []).forEach(function (a) {
        var id = a.id || a.attachment;
        li.appendChild(el("button", { type: "button", class: "link", text: "Attachment: " + (a.file_name || a.name || "file"), onclick: function () { download(v.chat, id, a.file_name || "file"); } }));
      });
      if (m.article) li.appendChild(el("span", { class: "extra", text: " [article: " + m.article.title + "]" }));
      if (m.video_call_link) li.appendChild(el("span", { class: "extra", text: " [video call]" }));
      if ((m.quick_replies || []).length) li.appendChild(el("span", { class: "extra", text: " [quick replies: " + m.quick_replies.join(", ") + "]" }));
      if (!m.redaction && m.text) li.appendChild(el("button", { type: "button", class: "redact", "aria-label": "Redact this message", text: "Redact", onclick: function () { act("messages/" + m.id + "/redact", {}); } }));
      ol.appendChild(li);
    });
    ol.scrollTop = ol.scrollHeight;
    var open = v.phase === "Active";
    $("composer").hidden = !open;
    ["transfer", "end", "case"].forEach(function (id) { $(id).disabled = !open; });
    $("block").disabled = v.blocked;
  }
  function download(chat, id, name) {
    fetch("/api/agent/chats/" + chat + "/attachments/" + id, { headers: { Authorization: "Bearer " + s.token } }).then(function (r) { return r.blob(); }).then(function (b) {
      var a = el("a", { href: URL.createObjectURL(b), download: name }); document.body.appendChild(a); a.click(); a.remove();
    });
  }
  function act(path, body) {
    showError(null);
    body.command_id = uuid();
    return api("POST", "/api/agent/chats/" + s.selected + "/" + path, body).then(function (r) { live("Done: " + path.split("/").pop() + "."); loadChat(); refreshMine(); return r; }).catch(showError);
  }
  $("end").addEventListener("click", function () { act("end", {}); });
  $("block").addEventListener("click", function () { if (confirm("Block this visitor? They will not be able to start chats.")) act("block", {}); });
  $("case").addEventListener("click", function () { act("case", { template: {} }).then(function (r) { if (r && r.case_id) live("Case " + short(r.case_id) + " created."); }); });
  $("transfer").addEventListener("click", function () {
    var to = $("transfer-to").value.trim(); if (!to) { showError(new Error("Name the agent or queue id to transfer to.")); $("transfer-to").focus(); return; }
    var body = {}; body[$("transfer-kind").value] = to;
    act("transfer", body).then(function (r) { if (r) { s.selected = null; $("chat").hidden = true; $("no-chat").hidden = false; refreshLists(); } });
  });
  $("composer").addEventListener("submit", function (e) {
    e.preventDefault();
    var text = $("reply").value.trim();
    var quick = $("quick").value.split("\n").map(function (x) { return x.trim(); }).filter(Boolean);
    var title = $("article-title").value.trim(), link = $("article-link").value.trim(), video = $("video").value.trim();
    var file = $("agent-file").files[0];
    var up = file ? api("POST", "/api/agent/chats/" + s.selected + "/attachments?file_name=" + encodeURIComponent(file.name), undefined, file) : Promise.resolve(null);
    up.then(function (u) {
      var body = { text: text, quick_replies: quick, attachments: u ? [u.attachment] : [] };
      if (title) body.article = { title: title, link: link || null, body: null };
      if (video) body.video_call_link = video;
      return act("messages", body);
    }).then(function (r) {
      if (r) { $("reply").value = ""; $("quick").value = ""; $("article-title").value = ""; $("article-link").value = ""; $("video").value = ""; $("agent-file").value = ""; }
    }).catch(showError);
  });

  // ----- canned responses: "/" then arrows and Enter ---------------------------------------------
  var reply = $("reply");
  reply.addEventListener("input", function () {
    var t = reply.value;
    if (t.charAt(0) !== "/" || t.indexOf(" ") >= 0 || t.length > 65) { closeCanned(); return; }
    api("GET", "/api/agent/canned?prefix=" + encodeURIComponent(t)).then(function (r) {
      if (reply.value !== t) return;
      s.cannedItems = r.responses; s.cannedIndex = r.responses.length ? 0 : -1; drawCanned();
    }).catch(closeCanned);
  });
  reply.addEventListener("keydown", function (e) {
    if (!$("canned").hidden && s.cannedItems.length) {
      if (e.key === "ArrowDown") { e.preventDefault(); s.cannedIndex = (s.cannedIndex + 1) % s.cannedItems.length; drawCanned(); return; }
      if (e.key === "ArrowUp") { e.preventDefault(); s.cannedIndex = (s.cannedIndex - 1 + s.cannedItems.length) % s.cannedItems.length; drawCanned(); return; }
      if (e.key === "Enter" || e.key === "Tab") { e.preventDefault(); insertCanned(s.cannedItems[s.cannedIndex]); return; }
      if (e.key === "Escape") { closeCanned(); return; }
    }
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("composer").requestSubmit(); }
  });
  function drawCanned() {
    var ul = $("canned"); ul.textContent = "";
    s.cannedItems.forEach(function (c, i) {
      ul.appendChild(el("li", { role: "option", id: "canned-" + i, class: "canned-item", "aria-selected": i === s.cannedIndex ? "true" : "false", text: c.shortcut + " \u2014 " + c.title, onmousedown: function (e) { e.preventDefault(); insertCanned(c); } }));
    });
    ul.hidden = s.cannedItems.length === 0;
    reply.setAttribute("aria-activedescendant", s.cannedIndex >= 0 ? "canned-" + s.cannedIndex : "");
  }
  function insertCanned(c) { reply.value = c.body; closeCanned(); reply.focus(); }
  function closeCanned() { s.cannedItems = []; s.cannedIndex = -1; $("canned").hidden = true; }

  // ----- live ------------------------------------------------------------------------------------
  function wsUrl(path, after) { return location.origin.replace(/^http/, "ws") + path + "?token=" + encodeURIComponent(s.token) + "&after=" + after; }
  function connect(after) {
    var socket = new WebSocket(wsUrl("/api/agent/ws", after || s.position));
    s.socket = socket;
    socket.onopen = function () { s.reconnectMs = 500; $("app").setAttribute("data-connected", "true"); };
    socket.onmessage = function (m) {
      var f; try { f = JSON.parse(m.data); } catch (e) { return; }
      if (f.disconnected) { s.position = Math.max(s.position, f.disconnected.resume_after); return; }
      if (typeof f.position === "number") s.position = Math.max(s.position, f.position);
      refreshLists();
      if (s.selected) loadChat();
    };
    socket.onclose = function () {
      if (s.socket !== socket || !s.token) return;
      $("app").setAttribute("data-connected", "false");
      live("Connection lost: reconnecting\u2026");
      setTimeout(function () { if (s.token) connect(s.position); }, s.reconnectMs);
      s.reconnectMs = Math.min(s.reconnectMs * 2, RECONNECT_MS_MAX);
    };
  }

  // ----- supervisor: board and history -----------------------------------------------------------
  function showView(name) {
    ["chats", "board", "history"].forEach(function (v) { $("view-" + v).hidden = v !== name; $("tab-" + v).setAttribute("aria-pressed", v === name ? "true" : "false"); });
    if (name === "board") openBoard();
  }
  $("tab-chats").addEventListener("click", function () { showView("chats"); });
  $("tab-board").addEventListener("click", function () { showView("board"); });
  $("tab-history").addEventListener("click", function () { showView("history"); $("history-q").focus(); });
  function drawBoard() {
    api("GET", "/api/admin/board").then(function (b) {
      function fill(id, items) {
        var ul = $(id); ul.textContent = "";
        items.forEach(function (c) { ul.appendChild(el("li", { class: "item", "data-chat": c.chat, text: "Chat " + short(c.chat) + " \u00b7 " + c.status + (c.agent ? " \u00b7 agent " + short(c.agent) : "") + " \u00b7 since " + new Date(c.since).toLocaleTimeString() })); });
      }
      fill("board-waiting", b.waiting); fill("board-active", b.active);
    }).catch(showError);
  }
  function openBoard() {
    drawBoard();
    if (s.board) return;
    var after = s.position;
    var sock = new WebSocket(wsUrl("/api/supervisor/ws", after));
    s.board = sock;
    var pending = null;
    sock.onmessage = function () { if (!pending) pending = setTimeout(function () { pending = null; drawBoard(); }, 200); };
    sock.onclose = function () { if (s.board === sock) s.board = null; };
  }
  $("history-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var q = $("history-q").value.trim();
    api("GET", "/api/admin/chats" + (q ? "?text=" + encodeURIComponent(q) : "")).then(function (r) {
      var ul = $("history-results"); ul.textContent = "";
      if (!r.items.length) ul.appendChild(el("li", { class: "muted", text: "No chat matches." }));
      r.items.forEach(function (c) {
        var d = typeof c.disposition === "string" ? c.disposition : c.disposition ? Object.keys(c.disposition)[0] : "open";
        ul.appendChild(el("li", { class: "item", "data-chat": c.chat }, [
          el("button", { type: "button", class: "link", text: "Chat " + short(c.chat) + " \u00b7 " + d + " \u00b7 " + new Date(c.started_at).toLocaleString(), onclick: function () { showView("chats"); select(c.chat); } }),
        ]));
      });
    }).catch(showError);
  });

  var saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) { s.token = saved; start(); } else { $("login").focus(); }
})();
