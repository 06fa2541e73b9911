/* chat-engine widget: plain JavaScript, no build step (docs/WIDGET.md).
 *
 * Loaded by the embed snippet, which sets `window.ChatEngine = {module, reference, baseUrl,
 * data}` first. Everything the widget decides comes from the server: the trigger decision, the
 * form's validation (the server's refusal names the field; the widget shows it next to that
 * field), the chat's phase. The widget keeps only its place: the chat id, the resume token and
 * the last log position it has seen (localStorage), so a reload or a lost connection re-enters
 * the same chat and receives exactly what it missed (`after=`).
 */
(function () {
  "use strict";
  if (window.__chatEngineWidget) return; // loaded twice: keep the first
  window.__chatEngineWidget = true;

  var cfg = window.ChatEngine || {};
  var script = document.currentScript;
  if (!cfg.module && script) cfg.module = script.getAttribute("data-module");
  var base = (cfg.baseUrl || (script ? new URL(script.src).origin : location.origin)).replace(/\/+$/, "");
  var moduleKey = cfg.module || cfg.reference;
  var fullPage = cfg.mode === "page"; // the module's public link (M9)
  var storeKey = "chatengine:" + moduleKey;
  /** Longest pause between reconnect attempts, in milliseconds. */
  var RECONNECT_MS_MAX = 10000;
  /** Most messages rendered (the newest); older ones stay on the server. */
  var MESSAGES_SHOWN_MAX = 500;

  var state = {
    module: null, chat: null, token: null, position: 0, view: null,
    socket: null, reconnectMs: 500, startedAt: Date.now(), closedByUs: false,
  };

  // ----- small helpers ------------------------------------------------------------------------
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      var v = attrs[k];
      if (v === null || v === undefined || v === false) return;
      if (k === "text") node.textContent = v;
      else if (k.slice(0, 2) === "on") node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    });
    (children || []).forEach(function (c) { if (c) node.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return node;
  }
  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var b = new Uint8Array(16); crypto.getRandomValues(b);
    b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }
  function api(method, path, body, extraHeaders) {
    var headers = {};
    if (state.token) headers["X-Resume-Token"] = state.token;
    var init = { method: method, headers: headers };
    if (body instanceof Blob) { init.body = body; headers["Content-Type"] = body.type || "application/octet-stream"; }
    else if (body !== undefined) { init.body = JSON.stringify(body); headers["Content-Type"] = "application/json"; }
    Object.keys(extraHeaders || {}).forEach(function (k) { headers[k] = extraHeaders[k]; });
    return fetch(base + path, init).then(function (r) {
      return r.text().then(function (t) {
        var json = null; try { json = t ? JSON.parse(t) : null; } catch (e) { json = null; }
        if (!r.ok) { var err = new Error((json && json.error && json.error.message) || r.statusText); err.status = r.status; err.body = json; throw err; }
        return json;
      });
    });
  }
  function saved() { try { return JSON.parse(localStorage.getItem(storeKey) || "null"); } catch (e) { return null; } }
  function save() {
    try { localStorage.setItem(storeKey, JSON.stringify({ chat: state.chat, token: state.token, position: state.position })); } catch (e) { /* private mode: no resume */ }
  }
  function forget() { try { localStorage.removeItem(storeKey); } catch (e) { /* ignore */ } }
  function pagesViewed() {
    var k = "chatengine:pages"; var n = 1;
    try { n = (parseInt(sessionStorage.getItem(k) || "0", 10) || 0) + 1; sessionStorage.setItem(k, String(n)); } catch (e) { /* ignore */ }
    return n;
  }
  function returning() {
    try { var r = localStorage.getItem("chatengine:seen") === "1"; localStorage.setItem("chatengine:seen", "1"); return r; } catch (e) { return false; }
  }

  // ----- the frame ------------------------------------------------------------------------------
  var root = el("div", { id: "ce-root", class: "ce-root" + (fullPage ? " ce-full" : ""), "data-state": "loading" });
  var launcher = el("button", { id: "ce-launcher", class: "ce-launcher", type: "button", "aria-expanded": "false", "aria-controls": "ce-panel", hidden: true });
  var panel = el("section", { id: "ce-panel", class: "ce-panel", role: "dialog", "aria-labelledby": "ce-title", hidden: true });
  var header = el("header", { class: "ce-header" });
  var title = el("h2", { id: "ce-title", class: "ce-title" });
  var closeBtn = el("button", { id: "ce-close", class: "ce-close", type: "button", "aria-label": "Minimise the chat", text: "\u2013" });
  var status = el("p", { id: "ce-status", class: "ce-status", role: "status", "aria-live": "polite" });
  var body = el("div", { id: "ce-body", class: "ce-body" });
  header.appendChild(title);
  if (!fullPage) header.appendChild(closeBtn);
  panel.appendChild(header); panel.appendChild(status); panel.appendChild(body);
  root.appendChild(launcher); root.appendChild(panel);

  function setStatus(text) { status.textContent = text || ""; }
  function open() { panel.hidden = false; launcher.setAttribute("aria-expanded", "true"); root.setAttribute("data-open", "true"); if (!fullPage) launcher.hidden = true; }
  function minimise() { panel.hidden = true; launcher.hidden = false; launcher.setAttribute("aria-expanded", "false"); root.setAttribute("data-open", "false"); launcher.focus(); }
  launcher.addEventListener("click", function () { open(); var f = panel.querySelector("input,textarea,button:not(.ce-close)"); if (f) f.focus(); });
  closeBtn.addEventListener("click", minimise);
  panel.addEventListener("keydown", function (e) { if (e.key === "Escape" && !fullPage) minimise(); });

  function applyAppearance(m) {
    var a = m.appearance;
    root.style.setProperty("--ce-colour", a.module_colour);
    root.style.setProperty("--ce-button", a.button_colour);
    root.classList.add("ce-style-" + a.style);
    root.setAttribute("data-style", a.style);
    title.textContent = a.title || m.name;
    launcher.textContent = "";
    launcher.appendChild(el("span", { class: "ce-icon ce-icon-" + a.button_icon, "aria-hidden": "true" }));
    launcher.appendChild(el("span", { class: "ce-launcher-text", text: a.button_title || a.title || "Chat" }));
    if (a.style === "advanced") {
      var heading = el("div", { class: "ce-advanced" });
      var faces = el("div", { class: "ce-avatars" });
      (a.avatars || []).forEach(function (src, i) { faces.appendChild(el("img", { class: "ce-avatar", src: src, alt: "Team member " + (i + 1), width: "36", height: "36" })); });
      heading.appendChild(faces);
      if (a.heading) heading.appendChild(el("p", { class: "ce-heading", text: a.heading }));
      header.after(heading);
    }
  }

  // ----- forms (pre-chat and offline) -----------------------------------------------------------
  function renderForm(fields, opts) {
    var form = el("form", { id: opts.id, class: "ce-form", novalidate: true });
    if (opts.notice) form.appendChild(el("p", { id: opts.id + "-notice", class: "ce-notice", text: opts.notice }));
    fields.forEach(function (f) {
      var id = opts.id + "-" + f.name;
      var errId = "ce-err-" + f.name;
      var wrap = el("div", { class: "ce-field", "data-field": f.name });
      var req = f.required ? " *" : "";
      var input;
      if (f.kind === "label") { wrap.appendChild(el("p", { class: "ce-label-text", text: f.label })); form.appendChild(wrap); return; }
      if (f.kind === "radio" || f.kind === "checkboxes") {
        var fs = el("fieldset", { "aria-describedby": errId }, [el("legend", { text: f.label + req })]);
        f.options.forEach(function (o, i) {
          var oid = id + "-" + i;
          fs.appendChild(el("div", {}, [el("input", { type: f.kind === "radio" ? "radio" : "checkbox", id: oid, name: f.name, value: o }), el("label", { for: oid, text: o })]));
        });
        wrap.appendChild(fs);
      } else if (f.kind === "agreement") {
        input = el("input", { type: "checkbox", id: id, name: f.name, "aria-describedby": errId });
        wrap.appendChild(el("div", {}, [input, el("label", { for: id, text: f.label + req })]));
      } else {
        wrap.appendChild(el("label", { for: id, text: f.label + req }));
        if (f.kind === "textarea") input = el("textarea", { id: id, name: f.name, rows: "3" });
        else if (f.kind === "select") {
          input = el("select", { id: id, name: f.name }, [el("option", { value: "", text: "\u2014" })]);
          f.options.forEach(function (o) { input.appendChild(el("option", { value: o, text: o })); });
        } else if (f.kind === "attachment") {
          input = el("input", { type: "file", id: id, name: f.name, accept: f.accept || null, disabled: true, title: "Attach files in the chat once it started" });
        } else input = el("input", { id: id, name: f.name, type: f.input === "email" ? "email" : (f.input === "number" ? "number" : "text"), autocomplete: f.input === "email" ? "email" : null });
        input.setAttribute("aria-describedby", errId);
        if (f.required) input.setAttribute("aria-required", "true");
        wrap.appendChild(input);
      }
      wrap.appendChild(el("p", { id: errId, class: "ce-error", "aria-live": "polite" }));
      form.appendChild(wrap);
    });
    form.appendChild(el("p", { id: opts.id + "-error", class: "ce-error ce-form-error", role: "alert" }));
    form.appendChild(el("button", { type: "submit", id: opts.id + "-submit", class: "ce-primary", text: opts.submit }));
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var answers = {};
      fields.forEach(function (f) {
        if (f.kind === "label" || f.kind === "attachment") return;
        if (f.kind === "checkboxes") answers[f.name] = Array.prototype.map.call(form.querySelectorAll("input[name='" + f.name + "']:checked"), function (x) { return x.value; });
        else if (f.kind === "radio") { var c = form.querySelector("input[name='" + f.name + "']:checked"); answers[f.name] = c ? c.value : null; }
        else if (f.kind === "agreement") answers[f.name] = form.elements[f.name].checked;
        else { var v = form.elements[f.name].value; answers[f.name] = v === "" ? null : v; }
      });
      clearErrors(form);
      var button = form.querySelector("button[type=submit]"); button.disabled = true;
      opts.onSubmit(answers).catch(function (err) { showErrors(form, opts.id, err); }).then(function () { button.disabled = false; });
    });
    return form;
  }
  function clearErrors(form) {
    Array.prototype.forEach.call(form.querySelectorAll(".ce-error"), function (p) { p.textContent = ""; });
    Array.prototype.forEach.call(form.querySelectorAll("[aria-invalid]"), function (n) { n.removeAttribute("aria-invalid"); });
  }
  /** Puts the server's refusal next to the field it names (F1: the server is the one validator). */
  function showErrors(form, formId, err) {
    var e = err && err.body && err.body.error;
    var problems = (e && e.fields) || (e && e.field ? [{ field: e.field, problem: e.message }] : []);
    var placed = false;
    problems.forEach(function (p) {
      var name = String(p.field).replace(/^form\./, "");
      var slot = form.querySelector("#ce-err-" + CSS.escape(name));
      if (slot) {
        slot.textContent = p.problem; placed = true;
        var input = form.querySelector("[name='" + CSS.escape(name) + "']");
        if (input) { input.setAttribute("aria-invalid", "true"); }
      }
    });
    if (!placed) form.querySelector("#" + formId + "-error").textContent = (e && e.message) || String(err.message || err);
    var first = form.querySelector("[aria-invalid]"); if (first) first.focus();
  }

  function startBody(answers) {
    return { command_id: uuid(), form: answers, page: cfg.data || {}, origin: fullPage ? "link" : "widget" };
  }
  function showPreChat() {
    root.setAttribute("data-state", "form");
    body.textContent = "";
    setStatus("");
    body.appendChild(renderForm(state.module.pre_chat_form, {
      id: "ce-prechat", submit: "Start chat",
      onSubmit: function (answers) {
        return api("POST", "/api/visitor/modules/" + encodeURIComponent(moduleKey) + "/chats", startBody(answers)).then(function (started) {
          if (started.offline) { showOffline(started.offline_reason === "module_at_capacity" ? "All our agents are busy. Leave a message and we will answer by e-mail." : null); return; }
          enterChat(started.chat, started.resume_token, started.position, started.view);
        });
      },
    }));
  }
  function showOffline(notice) {
    root.setAttribute("data-state", "offline");
    body.textContent = "";
    setStatus("");
    body.appendChild(renderForm(state.module.offline_form, {
      id: "ce-offline", submit: "Send message",
      notice: notice || "We are offline right now. Leave a message and we will answer by e-mail.",
      onSubmit: function (answers) {
        return api("POST", "/api/visitor/modules/" + encodeURIComponent(moduleKey) + "/offline-messages", startBody(answers)).then(function (started) {
          if (!started.offline) { enterChat(started.chat, started.resume_token, started.position, started.view); return; }
          root.setAttribute("data-state", "offline-sent");
          body.textContent = "";
          body.appendChild(el("p", { id: "ce-offline-sent", class: "ce-notice", text: "Thank you: your message was sent." }));
        });
      },
    }));
  }

  // ----- the chat --------------------------------------------------------------------------------
  var chatBox = null;
  function buildChat() {
    body.textContent = "";
    var list = el("ol", { id: "ce-messages", class: "ce-messages", "aria-live": "polite", "aria-label": "Messages" });
    var notice = el("p", { id: "ce-chat-notice", class: "ce-notice", hidden: true });
    var quick = el("div", { id: "ce-quick", class: "ce-quick", role: "group", "aria-label": "Quick replies" });
    var text = el("textarea", { id: "ce-input", class: "ce-input", rows: "2", "aria-label": "Your message", maxlength: "4096" });
    var file = el("input", { type: "file", id: "ce-file", class: "ce-file", "aria-label": "Attach a file", accept: state.module.attachments.accept });
    var fileLabel = el("label", { for: "ce-file", class: "ce-attach", title: "Attach a file", text: "File" });
    var send = el("button", { type: "submit", id: "ce-send", class: "ce-primary", text: "Send" });
    var err = el("p", { id: "ce-send-error", class: "ce-error", role: "alert" });
    var composer = el("form", { id: "ce-composer", class: "ce-composer" }, [text, state.module.attachments.bytes_max > 0 ? fileLabel : null, state.module.attachments.bytes_max > 0 ? file : null, send]);
    var end = el("button", { type: "button", id: "ce-end", class: "ce-secondary", text: "End chat" });
    var after = el("div", { id: "ce-after", class: "ce-after" });
    text.addEventListener("keydown", function (e) { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); composer.requestSubmit(); } });
    composer.addEventListener("submit", function (e) {
      e.preventDefault();
      var t = text.value.trim(); var f = file.files && file.files[0];
      if (!t && !f) return;
      err.textContent = ""; send.disabled = true;
      var upload = f ? api("POST", "/api/visitor/chats/" + state.chat + "/attachments?name=" + encodeURIComponent(f.name), f) : Promise.resolve(null);
      upload.then(function (att) {
        return api("POST", "/api/visitor/chats/" + state.chat + "/messages", { command_id: uuid(), text: t, attachments: att ? [att.id] : [] });
      }).then(function (sent) { text.value = ""; file.value = ""; render(sent.view); })
        .catch(function (e2) { err.textContent = e2.message; })
        .then(function () { send.disabled = false; text.focus(); });
    });
    end.addEventListener("click", function () {
      api("POST", "/api/visitor/chats/" + state.chat + "/end", { command_id: uuid() }).then(function (r) { render(r.view); }).catch(function (e2) { err.textContent = e2.message; });
    });
    body.appendChild(list); body.appendChild(notice); body.appendChild(quick); body.appendChild(composer); body.appendChild(err); body.appendChild(end); body.appendChild(after);
    chatBox = { list: list, notice: notice, quick: quick, composer: composer, text: text, end: end, after: after, rendered: "" };
  }
  function author(m) {
    if (m.author === "Visitor") return "visitor";
    if (m.author === "System") return "system";
    return "agent";
  }
  function messageNode(m) {
    var who = author(m);
    var li = el("li", { class: "ce-msg ce-" + who, "data-id": m.id, "data-author": who });
    li.appendChild(el("span", { class: "ce-visually-hidden", text: who === "visitor" ? "You: " : (who === "agent" ? "Agent: " : "") }));
    if (m.redaction) li.appendChild(el("em", { class: "ce-redacted", text: "This message was removed." }));
    else if (m.text) li.appendChild(el("p", { class: "ce-text", text: m.text }));
    (m.attachments || []).forEach(function (a) {
      var id = a.id || a.attachment;
      li.appendChild(el("a", { class: "ce-attachment", href: base + "/api/visitor/chats/" + state.chat + "/attachments/" + id + "?token=" + encodeURIComponent(state.token), download: a.file_name || a.name || "file", text: "Attachment: " + (a.file_name || a.name || "attachment") }));
    });
    if (m.article) {
      var art = el("div", { class: "ce-article" }, [el("strong", { text: m.article.title })]);
      if (m.article.link) art.appendChild(el("a", { href: m.article.link, target: "_blank", rel: "noopener", text: " Read the article" }));
      if (m.article.body) art.appendChild(el("p", { text: m.article.body }));
      li.appendChild(art);
    }
    if (m.video_call_link) li.appendChild(el("a", { class: "ce-video", href: m.video_call_link, target: "_blank", rel: "noopener", text: "Join the video call" }));
    return li;
  }
  function render(view) {
    if (!view) return;
    state.view = view;
    if (!chatBox) buildChat();
    root.setAttribute("data-state", "chat");
    root.setAttribute("data-phase", view.phase);
    root.setAttribute("data-chat", view.chat);
    var msgs = view.messages.slice(-MESSAGES_SHOWN_MAX);
    var key = msgs.map(function (m) { return m.id + (m.redaction ? "r" : ""); }).join(",");
    if (key !== chatBox.rendered) {
      chatBox.list.textContent = "";
      msgs.forEach(function (m) { chatBox.list.appendChild(messageNode(m)); });
      chatBox.rendered = key;
      chatBox.list.scrollTop = chatBox.list.scrollHeight;
    }
    // Quick replies of the newest agent message are offered until the visitor answers.
    chatBox.quick.textContent = "";
    var last = msgs[msgs.length - 1];
    if (last && author(last) === "agent" && view.phase === "Active") {
      (last.quick_replies || []).forEach(function (q) {
        chatBox.quick.appendChild(el("button", { type: "button", class: "ce-quick-reply", text: q, onclick: function () { chatBox.text.value = q; chatBox.composer.requestSubmit(); } }));
      });
    }
    var ended = view.phase === "Ended";
    chatBox.composer.hidden = ended;
    chatBox.end.hidden = ended;
    chatBox.notice.hidden = true;
    if (view.phase === "Queued") setStatus("Waiting for an agent\u2026");
    else if (view.phase === "AsyncOpen") {
      setStatus("");
      chatBox.notice.hidden = false;
      chatBox.notice.textContent = "Nobody is available right now: leave a message here and we will reply as soon as we can.";
    } else if (view.phase === "Active") setStatus("You are chatting with an agent.");
    else if (ended) setStatus("The chat has ended.");
    renderAfter(view);
  }
  function renderAfter(view) {
    var a = chatBox.after;
    var want = view.phase !== "Ended" ? "" : (view.disposition === "Unmanaged" || view.disposition === "Offline") ? "unmanaged" : (!view.rated && view.disposition === "Managed") ? "rate" : "done";
    if (a.getAttribute("data-kind") === want) return;
    a.setAttribute("data-kind", want);
    a.textContent = "";
    if (want === "unmanaged") {
      a.appendChild(el("p", { id: "ce-unmanaged", class: "ce-notice", text: "Nobody could answer this chat. Leave a message and we will reply by e-mail." }));
      a.appendChild(el("button", { type: "button", class: "ce-primary", id: "ce-leave-message", text: "Leave a message", onclick: function () { leave(); showOffline(); } }));
    } else if (want === "rate") {
      var form = el("form", { id: "ce-rating", class: "ce-rating" });
      var fs = el("fieldset", {}, [el("legend", { text: "How was this chat?" })]);
      for (var i = 1; i <= 5; i++) {
        fs.appendChild(el("input", { type: "radio", name: "score", id: "ce-score-" + i, value: String(i) }));
        fs.appendChild(el("label", { for: "ce-score-" + i, class: "ce-star", title: i + " of 5", text: "\u2605" }, []));
      }
      form.appendChild(fs);
      form.appendChild(el("label", { for: "ce-rating-comment", text: "Comment (optional)" }));
      form.appendChild(el("textarea", { id: "ce-rating-comment", rows: "2", maxlength: "2000" }));
      form.appendChild(el("p", { id: "ce-rating-error", class: "ce-error", role: "alert" }));
      form.appendChild(el("button", { type: "submit", id: "ce-rate", class: "ce-primary", text: "Send rating" }));
      form.addEventListener("submit", function (e) {
        e.preventDefault();
        var c = form.querySelector("input[name=score]:checked");
        if (!c) { form.querySelector("#ce-rating-error").textContent = "Choose 1 to 5 stars."; return; }
        var comment = form.querySelector("#ce-rating-comment").value.trim();
        api("POST", "/api/visitor/chats/" + state.chat + "/rating", { command_id: uuid(), score: parseInt(c.value, 10), comment: comment || null })
          .then(function (r) { render(r.view); })
          .catch(function (e2) { form.querySelector("#ce-rating-error").textContent = e2.message; });
      });
      a.appendChild(form);
    } else if (want === "done") {
      a.appendChild(el("p", { id: "ce-thanks", class: "ce-notice", text: view.rated ? "Thank you for your rating." : "Thank you for chatting with us." }));
      a.appendChild(el("button", { type: "button", class: "ce-secondary", id: "ce-resume", text: "Continue this chat", onclick: function () {
        api("POST", "/api/visitor/chats/" + state.chat + "/resume", { command_id: uuid() }).then(function (r) { state.position = Math.max(state.position, r.position); render(r.view); }).catch(function (e2) { setStatus(e2.message); });
      } }));
      a.appendChild(el("button", { type: "button", class: "ce-secondary", id: "ce-new", text: "New chat", onclick: function () { leave(); showPreChat(); } }));
    }
  }
  function leave() {
    state.closedByUs = true;
    if (state.socket) state.socket.close();
    state.chat = null; state.token = null; state.view = null; chatBox = null;
    forget();
  }
  function enterChat(chat, token, position, view) {
    state.chat = chat; state.token = token; state.position = position || 0; state.closedByUs = false;
    save();
    chatBox = null;
    render(view);
    connect();
  }

  // ----- live updates ---------------------------------------------------------------------------
  var refreshing = null, again = false;
  /** One GET at a time; events arriving meanwhile ask for one more. */
  function refresh() {
    if (refreshing) { again = true; return refreshing; }
    refreshing = api("GET", "/api/visitor/chats/" + state.chat).then(function (r) { render(r.view); })
      .catch(function (e) { if (e.status === 403 || e.status === 401) { leave(); showPreChat(); } })
      .then(function () { refreshing = null; if (again) { again = false; refresh(); } });
    return refreshing;
  }
  function connect() {
    if (!state.chat) return;
    var url = base.replace(/^http/, "ws") + "/api/visitor/chats/" + state.chat + "/ws?token=" + encodeURIComponent(state.token) + "&after=" + state.position;
    var socket = new WebSocket(url);
    state.socket = socket;
    root.setAttribute("data-connected", "connecting");
    socket.onopen = function () { state.reconnectMs = 500; root.setAttribute("data-connected", "true"); };
    socket.onmessage = function (m) {
      var frame; try { frame = JSON.parse(m.data); } catch (e) { return; }
      if (frame.disconnected) { state.position = Math.max(state.position, frame.disconnected.resume_after); save(); return; }
      if (typeof frame.position === "number") { state.position = Math.max(state.position, frame.position); save(); }
      refresh();
    };
    socket.onclose = function () {
      if (state.socket !== socket) return;
      root.setAttribute("data-connected", "false");
      if (state.closedByUs || !state.chat) return;
      setStatus("Connection lost: reconnecting\u2026");
      setTimeout(function () { refresh().then(connect); }, state.reconnectMs);
      state.reconnectMs = Math.min(state.reconnectMs * 2, RECONNECT_MS_MAX);
    };
  }

  // ----- start -----------------------------------------------------------------------------------
  function boot() {
    document.body.appendChild(root);
    api("GET", "/api/visitor/modules/" + encodeURIComponent(moduleKey)).then(function (m) {
      state.module = m;
      applyAppearance(m);
      var mine = saved();
      if (mine && mine.chat && mine.token) {
        state.chat = mine.chat; state.token = mine.token;
        return api("GET", "/api/visitor/chats/" + mine.chat).then(function (r) {
          open(); root.setAttribute("data-resumed", "true");
          enterChat(mine.chat, mine.token, r.position, r.view);
        }).catch(function () { forget(); state.chat = null; state.token = null; return firstVisit(m); });
      }
      return firstVisit(m);
    }).catch(function (e) { root.setAttribute("data-state", "error"); root.setAttribute("data-error", String(e.message)); });
  }
  function firstVisit(m) {
    if (m.open_now) showPreChat(); else showOffline();
    if (fullPage) { open(); return; }
    var decide = function () {
      return api("POST", "/api/visitor/modules/" + encodeURIComponent(moduleKey) + "/triggers", {
        url: location.href.slice(0, 2048), time_on_page_s: Math.floor((Date.now() - state.startedAt) / 1000),
        pages_viewed: pages, returning: wasHere, events: [],
      }).then(function (d) {
        root.setAttribute("data-display", d.display);
        if (d.display === "open_chat") { open(); }
        else if (d.display === "show_icon") { if (panel.hidden) launcher.hidden = false; }
        return d;
      });
    };
    var pages = pagesViewed(), wasHere = returning();
    return decide();
  }
  var css = el("link", { rel: "stylesheet", href: base + "/widget.css" });
  document.head.appendChild(css);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot); else boot();
})();
