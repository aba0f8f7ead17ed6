// voice2anime studio: the page side of bot/web.py. Plain JavaScript, no build step, nothing from elsewhere.
//
// Events go to the server over one WebSocket (command / text / press / locale) or as uploads
// (POST /upload/voice|photo); replies come back as messages keyed by a reference and are drawn
// generically: text (line breaks kept), button rows, a picture. Every text is set with
// textContent — nothing the server or a user wrote is ever parsed as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const COMMANDS = ["settings", "style", "history", "help", "cancel"];
const RECORDER_TYPES = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/webm", "audio/ogg", "audio/mp4"];
// A press shorter than this is a click (record until the next click); longer is hold-to-talk.
const HOLD_MS = 450;

const state = {
  strings: {},
  lang: "en",
  socket: null,
  retry: 0,
  limits: { audio_bytes: 20 * 1024 * 1024, audio_seconds: 60, photo_bytes: 20 * 1024 * 1024 },
  elements: new Map(), // message ref -> <li>
  messages: new Map(), // message ref -> message
};

// ---------------------------------------------------------------- words

function chooseLanguage() {
  const saved = localStorage.getItem("v2a-lang");
  if (saved === "zh" || saved === "en") return saved;
  const wanted = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || "en"];
  for (const tag of wanted) {
    const code = String(tag).toLowerCase();
    if (code.startsWith("zh")) return "zh";
    if (code.startsWith("en")) return "en";
  }
  return "en";
}

function tr(key, params) {
  const words = state.strings[state.lang] || {};
  let text = words[key] !== undefined ? words[key] : (state.strings.en || {})[key] || key;
  for (const [name, value] of Object.entries(params || {})) text = text.split(`{${name}}`).join(String(value));
  return text;
}

function locale() {
  return state.lang === "zh" ? "zh-CN" : "en";
}

function applyStrings() {
  document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
  document.title = tr("title");
  for (const element of document.querySelectorAll("[data-i18n]")) element.textContent = tr(element.dataset.i18n);
  $("text").placeholder = tr("placeholder");
  $("text").setAttribute("aria-label", tr("placeholder"));
  const commands = $("commands");
  commands.replaceChildren();
  for (const name of COMMANDS) {
    const chip = document.createElement("button");
    chip.type = "button";
    chip.className = "chip";
    chip.dataset.command = name;
    chip.textContent = `/${name}`;
    chip.title = tr(`command.${name}`);
    chip.addEventListener("click", () => send({ type: "command", name, args: "" }));
    commands.append(chip);
  }
  updateMic();
}

function switchLanguage() {
  state.lang = state.lang === "zh" ? "en" : "zh";
  localStorage.setItem("v2a-lang", state.lang);
  applyStrings();
  send({ type: "locale", locale: locale() });
  if (!$("gallery").hidden) loadGallery();
}

// ---------------------------------------------------------------- little helpers

function toast(text, kind) {
  const note = document.createElement("div");
  note.className = `toast${kind ? ` ${kind}` : ""}`;
  note.textContent = text;
  $("toasts").append(note);
  setTimeout(() => note.remove(), 5000);
}

function setStatus(text) {
  $("status").textContent = text || "";
  $("status").hidden = !text;
}

function show(view) {
  for (const id of ["login", "studio", "gallery"]) $(id).hidden = id !== view;
  $("composer").hidden = view === "login";
  $("tab-studio").setAttribute("aria-selected", String(view === "studio"));
  $("tab-gallery").setAttribute("aria-selected", String(view === "gallery"));
  if (view === "gallery") loadGallery();
}

function nearBottom() {
  return window.innerHeight + window.scrollY >= document.body.scrollHeight - 160;
}

function scrollDown() {
  window.scrollTo({ top: document.body.scrollHeight });
}

// ---------------------------------------------------------------- the socket

function send(event) {
  if (state.socket && state.socket.readyState === WebSocket.OPEN) {
    state.socket.send(JSON.stringify(event));
    return true;
  }
  if (event.type !== "locale") toast(tr("connection.lost"), "error");
  return false;
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const socket = new WebSocket(`${scheme}${location.host}/ws`);
  state.socket = socket;
  socket.addEventListener("open", () => {
    state.retry = 0;
    setStatus("");
    document.body.dataset.connected = "true";
    socket.send(JSON.stringify({ type: "locale", locale: locale() }));
  });
  socket.addEventListener("message", (incoming) => {
    let message;
    try {
      message = JSON.parse(incoming.data);
    } catch {
      return;
    }
    receive(message);
  });
  socket.addEventListener("close", () => {
    document.body.dataset.connected = "false";
    if (state.socket !== socket) return;
    setStatus(tr("connection.lost"));
    state.retry = Math.min(state.retry + 1, 6);
    setTimeout(connect, 500 * 2 ** state.retry);
  });
}

function receive(message) {
  if (message.type === "hello") {
    $("feed").replaceChildren();
    state.elements.clear();
    state.messages.clear();
    for (const shown of message.feed || []) put(shown, false);
    updateEmpty();
    scrollDown();
  } else if (message.type === "message") {
    const follow = nearBottom() || message.op === "send";
    put(message, true);
    updateEmpty();
    if (follow) scrollDown();
  } else if (message.type === "notify") {
    toast(message.text);
  }
}

function updateEmpty() {
  $("empty").hidden = state.elements.size > 0;
}

// ---------------------------------------------------------------- drawing replies

function put(message, live) {
  state.messages.set(message.ref, message);
  const element = render(message);
  const old = state.elements.get(message.ref);
  if (old) old.replaceWith(element);
  else $("feed").append(element);
  state.elements.set(message.ref, element);
  if (message.kind === "edit_prompt") placeEditor(message, element, live);
}

function render(message) {
  const item = document.createElement("li");
  item.className = `msg kind-${message.kind}`;
  item.dataset.ref = message.ref;
  item.dataset.kind = message.kind;
  if (message.request_id) item.dataset.requestId = message.request_id;
  if (message.image) {
    const figure = document.createElement("figure");
    const picture = document.createElement("img");
    picture.src = message.image;
    picture.alt = "";
    picture.loading = "lazy";
    picture.addEventListener("load", () => {
      if (nearBottom()) scrollDown();
    });
    figure.append(picture);
    if (message.spoiler) {
      // The content policy flagged it: blurred until clicked, like a spoiler on Telegram or Discord.
      figure.classList.add("spoiler");
      figure.addEventListener("click", () => figure.classList.remove("spoiler"), { once: true });
    }
    item.append(figure);
  }
  if (message.text) {
    const text = document.createElement("p");
    text.className = "text";
    text.textContent = message.text;
    item.append(text);
  }
  const rows = message.buttons || [];
  if (rows.length || message.download) {
    const actions = document.createElement("div");
    actions.className = "actions";
    for (const row of rows) {
      const line = document.createElement("div");
      line.className = "row";
      for (const button of row) line.append(actionButton(button, message.ref));
      actions.append(line);
    }
    if (message.download) {
      const line = document.createElement("div");
      line.className = "row";
      const link = document.createElement("a");
      link.className = "button download";
      link.href = message.download;
      link.download = "";
      link.textContent = tr("download");
      line.append(link);
      actions.append(line);
    }
    item.append(actions);
  }
  return item;
}

function actionButton(button, ref) {
  const element = document.createElement("button");
  element.type = "button";
  element.textContent = button.label;
  element.dataset.action = button.data.split(":", 1)[0];
  element.addEventListener("click", () => {
    element.disabled = true;
    setTimeout(() => (element.disabled = false), 800);
    send({ type: "press", data: button.data, ref });
  });
  return element;
}

// "Edit": an inline text field in the card itself, filled with the current words.
function placeEditor(message, element, live) {
  const card = [...document.querySelectorAll(".msg.kind-card")].find((c) => c.dataset.requestId === message.request_id);
  if (!live && !card) {
    element.hidden = true; // an old edit prompt whose card is gone: nothing to edit any more
    return;
  }
  const form = document.createElement("form");
  form.className = "editor";
  const field = document.createElement("textarea");
  field.value = message.prefill || "";
  field.rows = 3;
  field.maxLength = 2000;
  field.setAttribute("aria-label", message.title || message.text);
  const row = document.createElement("div");
  row.className = "row";
  const save = document.createElement("button");
  save.type = "submit";
  save.className = "primary";
  save.textContent = tr("edit.save");
  const cancel = document.createElement("button");
  cancel.type = "button";
  cancel.textContent = tr("edit.cancel");
  row.append(save, cancel);
  form.append(field, row);
  form.addEventListener("submit", (submitted) => {
    submitted.preventDefault();
    const text = field.value.trim();
    if (!text) return;
    if (send({ type: "text", text, request_id: message.request_id })) form.remove();
  });
  field.addEventListener("keydown", (key) => {
    if (key.key === "Enter" && !key.shiftKey) {
      key.preventDefault();
      form.requestSubmit();
    }
  });
  cancel.addEventListener("click", () => form.remove());
  if (card) {
    card.querySelectorAll("form.editor").forEach((other) => other.remove());
    card.append(form);
    element.hidden = true; // the prompt's words are the field's label; the card holds the field
  } else {
    element.append(form);
  }
  if (live) field.focus();
}

// ---------------------------------------------------------------- typing

function submitText(submitted) {
  submitted.preventDefault();
  const input = $("text");
  const value = input.value.trim();
  if (!value) return;
  const command = /^\/([A-Za-z_]{1,32})(?:@\S+)?(?:\s+([\s\S]*))?$/.exec(value);
  const event = command
    ? { type: "command", name: command[1].toLowerCase(), args: command[2] || "" }
    : { type: "command", name: "anime", args: value };
  if (send(event)) input.value = "";
}

// ---------------------------------------------------------------- uploads

// Over its limit an upload is refused at once (from Content-Length) and the conversation says why.
async function upload(kind, blob) {
  try {
    const response = await fetch(`/upload/${kind}?locale=${encodeURIComponent(locale())}`, {
      method: "POST",
      body: blob,
      headers: { "Content-Type": blob.type || "application/octet-stream" },
      credentials: "same-origin",
    });
    if (!response.ok && response.status !== 413) toast(tr("upload.failed", { reason: response.status }), "error");
  } catch (error) {
    toast(tr("upload.failed", { reason: error.message || error }), "error");
  }
}

function uploadFile(file, forced) {
  if (!file) return;
  const type = (file.type || "").toLowerCase();
  const name = (file.name || "").toLowerCase();
  const kind =
    forced ||
    (type.startsWith("image/") ? "photo" : type.startsWith("audio/") || type.startsWith("video/") ? "voice" : null) ||
    (/\.(ogg|oga|opus|webm|m4a|mp3|wav|flac|aac)$/.test(name) ? "voice" : /\.(png|jpe?g|webp|gif|bmp)$/.test(name) ? "photo" : null);
  if (!kind) {
    toast(tr("drop.unknown"), "error");
    return;
  }
  show("studio");
  upload(kind, file);
}

function setUpDrop() {
  let depth = 0;
  const overlay = $("drop");
  const carriesFiles = (event) => event.dataTransfer && [...event.dataTransfer.types].includes("Files");
  window.addEventListener("dragenter", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    depth += 1;
    overlay.hidden = false;
  });
  window.addEventListener("dragover", (event) => {
    if (carriesFiles(event)) event.preventDefault();
  });
  window.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (!depth) overlay.hidden = true;
  });
  window.addEventListener("drop", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    depth = 0;
    overlay.hidden = true;
    for (const file of event.dataTransfer.files) uploadFile(file);
  });
}

// ---------------------------------------------------------------- the microphone

const mic = { recorder: null, stream: null, chunks: [], started: 0, downAt: 0, ignoreUp: false, timer: null, pending: false };

function updateMic() {
  const button = $("mic");
  const recording = Boolean(mic.recorder);
  button.classList.toggle("recording", recording);
  button.setAttribute("aria-pressed", String(recording));
  $("mic-label").textContent = recording
    ? tr("mic.recording", { seconds: Math.floor((Date.now() - mic.started) / 1000) })
    : mic.pending
      ? tr("mic.sending")
      : tr("mic.idle");
  $("mic-hint").hidden = recording || mic.pending;
}

function micProblem(reason) {
  toast(tr("mic.unavailable", { reason }), "error");
}

async function startRecording() {
  if (mic.recorder || mic.pending) return;
  if (!window.isSecureContext || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    micProblem(tr("mic.insecure"));
    return;
  }
  if (typeof MediaRecorder === "undefined") {
    micProblem("MediaRecorder");
    return;
  }
  mic.pending = true;
  updateMic();
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true } });
  } catch (error) {
    mic.pending = false;
    updateMic();
    micProblem(error.name || error.message || String(error));
    return;
  }
  mic.pending = false;
  const type = RECORDER_TYPES.find((candidate) => MediaRecorder.isTypeSupported(candidate));
  const recorder = new MediaRecorder(stream, type ? { mimeType: type } : undefined);
  mic.recorder = recorder;
  mic.stream = stream;
  mic.chunks = [];
  mic.started = Date.now();
  recorder.addEventListener("dataavailable", (event) => {
    if (event.data && event.data.size) mic.chunks.push(event.data);
  });
  recorder.addEventListener("stop", () => finishRecording(recorder));
  recorder.start();
  mic.timer = setInterval(() => {
    updateMic();
    if (Date.now() - mic.started >= state.limits.audio_seconds * 1000) stopRecording();
  }, 250);
  updateMic();
}

function stopRecording() {
  if (!mic.recorder) return;
  clearInterval(mic.timer);
  if (mic.recorder.state !== "inactive") mic.recorder.stop();
}

function finishRecording(recorder) {
  const seconds = (Date.now() - mic.started) / 1000;
  const blob = new Blob(mic.chunks, { type: recorder.mimeType || "audio/webm" });
  for (const track of mic.stream.getTracks()) track.stop();
  mic.recorder = null;
  mic.stream = null;
  mic.chunks = [];
  updateMic();
  if (seconds < 0.6 || !blob.size) {
    toast(tr("mic.too_short"));
    return;
  }
  mic.pending = true;
  updateMic();
  upload("voice", blob).finally(() => {
    mic.pending = false;
    updateMic();
  });
}

function setUpMic() {
  const button = $("mic");
  button.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    event.preventDefault();
    if (mic.recorder) {
      mic.ignoreUp = true; // this press ends a click-started recording
      stopRecording();
      return;
    }
    mic.downAt = Date.now();
    startRecording();
  });
  button.addEventListener("pointerup", () => {
    if (mic.ignoreUp) {
      mic.ignoreUp = false;
      return;
    }
    if (Date.now() - mic.downAt >= HOLD_MS) stopRecording(); // hold-to-talk: releasing sends
    // a short click: keep recording until the next click
  });
  button.addEventListener("contextmenu", (event) => event.preventDefault());
  button.addEventListener("click", (event) => {
    if (event.detail !== 0) return; // pointer clicks are handled above; this is the keyboard (Enter / Space)
    if (mic.recorder) stopRecording();
    else startRecording();
  });
}

// ---------------------------------------------------------------- gallery

async function loadGallery() {
  let items = [];
  try {
    const response = await fetch("/api/gallery", { credentials: "same-origin" });
    if (response.ok) items = await response.json();
  } catch {
    return;
  }
  const grid = $("gallery-grid");
  grid.replaceChildren();
  $("gallery-empty").hidden = items.length > 0;
  for (const item of items) {
    const tile = document.createElement("li");
    tile.className = "tile";
    tile.dataset.requestId = item.request_id;
    const open = document.createElement("button");
    open.type = "button";
    open.className = "open";
    open.title = tr("gallery.open");
    const picture = document.createElement("img");
    picture.src = item.image;
    picture.alt = item.description || "";
    picture.loading = "lazy";
    open.append(picture);
    if (item.spoiler) open.classList.add("spoiler"); // flagged by the content policy: blurred in the grid too
    open.addEventListener("click", () => {
      if (send({ type: "press", data: item.press, ref: "" })) show("studio");
    });
    const caption = document.createElement("p");
    caption.className = "caption";
    const style = (item.style && (item.style[state.lang] || item.style.en)) || "";
    const date = item.created ? new Date(item.created).toLocaleDateString(locale()) : "";
    caption.textContent = [item.description, style, date].filter(Boolean).join(" · ");
    const link = document.createElement("a");
    link.className = "button download";
    link.href = item.download;
    link.download = "";
    link.textContent = tr("download");
    tile.append(open, caption, link);
    grid.append(tile);
  }
}

// ---------------------------------------------------------------- start

async function signIn(submitted) {
  submitted.preventDefault();
  const response = await fetch("/api/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ password: $("password").value }),
    credentials: "same-origin",
  });
  if (response.ok) {
    $("password").value = "";
    show("studio");
    connect();
    return;
  }
  const error = $("login-error");
  error.textContent = tr(response.status === 429 ? "login.throttled" : "login.wrong");
  error.hidden = false;
}

async function start() {
  state.lang = chooseLanguage();
  try {
    state.strings = await (await fetch("/strings.json")).json();
  } catch {
    state.strings = {};
  }
  applyStrings();
  $("lang").addEventListener("click", switchLanguage);
  $("tab-studio").addEventListener("click", () => show("studio"));
  $("tab-gallery").addEventListener("click", () => show("gallery"));
  $("describe").addEventListener("submit", submitText);
  $("login-form").addEventListener("submit", signIn);
  $("audio-file").addEventListener("change", (event) => {
    uploadFile(event.target.files[0], "voice");
    event.target.value = "";
  });
  $("photo-file").addEventListener("change", (event) => {
    uploadFile(event.target.files[0], "photo");
    event.target.value = "";
  });
  setUpDrop();
  setUpMic();
  const session = await (await fetch("/api/session", { credentials: "same-origin" })).json();
  if (session.limits) state.limits = session.limits;
  if (!session.signed_in) {
    show("login");
    return;
  }
  show("studio");
  connect();
}

start();
