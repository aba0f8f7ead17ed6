// voice2anime studio: the page side of bot/web.py. Plain JavaScript, no build step, nothing from elsewhere.
//
// Events go to the server over one WebSocket (command / text / press / locale) or as uploads
// (POST /upload/voice|photo); replies come back as messages keyed by a reference and are drawn
// generically: text (line breaks kept), button rows, a picture. Every text is set with
// textContent — nothing the server or a user wrote is ever parsed as HTML.
//
// A message that changes (a card becoming its status, progress, previews) is updated in place:
// the same elements stay, so focus and scroll position survive every update.
"use strict";

const $ = (id) => document.getElementById(id);
const RECORDER_TYPES = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/webm", "audio/ogg", "audio/mp4"];
// A press shorter than this is a click (record until the next press); longer is hold-to-talk.
const HOLD_MS = 450;
// A recording shorter than this is a slip, not a voice note.
const MIN_SECONDS = 0.6;
// Button actions the page gives a meaning of its own (handlers/actions.py).
const ACTIONS = { confirm: "ok", cancel: "x", reroll: "rr", restyleAs: "rsa", setLanguage: "lang" };
// The page's languages (handlers/i18n.py LANGUAGES) and the locale each tells the server when the browser has none of its own.
const LOCALES = { en: "en", "zh-Hans": "zh-CN", "zh-Hant": "zh-TW" };
// What a language was called before (a choice stored by an earlier page, a button sent by an earlier studio).
const LEGACY = { zh: "zh-Hans" };
// How long the page remembers descriptions of requests (for statuses and captions after a reload).
const ABOUT_KEPT = 200;

const state = {
  strings: {},
  lang: "en",
  commands: [], // the command chips, from the server (handlers/conversation/routes.py)
  socket: null,
  retry: 0,
  limits: { audio_bytes: 20 * 1024 * 1024, audio_seconds: 60, photo_bytes: 20 * 1024 * 1024 },
  elements: new Map(), // message ref -> <li>
  messages: new Map(), // message ref -> message
  about: new Map(), // request id -> the description the user gave (what the card and the picture quote)
  waiting: [], // descriptions of rerolls/restyles pressed, for the next new request
  used: {}, // picker message ref -> the button data chosen (the picker is retired)
  requestOf: {}, // message ref -> the request it was about
  revealed: new Set(), // refs of flagged pictures the user chose to see
  recent: [], // [text, time] of messages just shown (a toast repeating one is not shown)
  stick: true, // the view follows the newest message
  unseen: 0, // pictures finished while the tab was hidden
  gallery: { next: null, loading: false, shown: new Set() }, // the gallery's cursor (the next page's), and its tiles
  gesture: false, // the user pressed a key or the pointer on the page: spoken replies may play by themselves
};

// ---------------------------------------------------------------- words

// The chat's rule (engine/language/chinese.py script_for, handlers/i18n.py pick_language): Traditional for
// zh-TW, zh-HK, zh-MO, zh-Hant and Cantonese; Simplified for zh, zh-CN, zh-SG, zh-Hans; null: not ours.
function languageOf(tag) {
  const parts = String(tag || "").replace(/_/g, "-").toLowerCase().split("-");
  const rest = parts.slice(1);
  if (parts[0] === "yue") return rest.includes("hans") ? "zh-Hans" : "zh-Hant";
  if (parts[0] === "zh") {
    if (rest.includes("hans")) return "zh-Hans";
    return rest.some((part) => ["hant", "tw", "hk", "mo"].includes(part)) ? "zh-Hant" : "zh-Hans";
  }
  return parts[0] === "en" ? "en" : null;
}

function browserTags() {
  return navigator.languages && navigator.languages.length ? [...navigator.languages] : [navigator.language || "en"];
}

function chooseLanguage() {
  const stored = readStored(localStorage, "v2a-lang");
  const chosen = (stored && LEGACY[stored]) || stored;
  if (chosen && Object.hasOwn(LOCALES, chosen)) return chosen;
  for (const tag of browserTags()) {
    const lang = languageOf(tag);
    if (lang) return lang;
  }
  return "en";
}

// What the server is told: the browser's own tag when it reads this language (zh-HK stays zh-HK), else ours.
function locale() {
  return browserTags().find((tag) => languageOf(tag) === state.lang) || LOCALES[state.lang];
}

function touch() {
  return window.matchMedia("(pointer: coarse)").matches;
}

function tr(key, params) {
  const words = state.strings[state.lang] || {};
  const english = state.strings.en || {};
  const touchKey = `${key}.touch`;
  let text;
  if (touch() && (words[touchKey] !== undefined || english[touchKey] !== undefined)) text = words[touchKey] ?? english[touchKey];
  else text = words[key] ?? english[key] ?? key;
  for (const [name, value] of Object.entries(params || {})) text = text.split(`{${name}}`).join(String(value));
  return text;
}

// Every language's version of a chat template (a reply may come in the language the chat chose).
function chatTemplates(key) {
  return Object.values(state.strings).map((words) => words[`chat.${key}`]).filter(Boolean);
}

function applyStrings() {
  document.documentElement.lang = LOCALES[state.lang];
  document.title = state.unseen ? tr("ready.title") : tr("title");
  for (const element of document.querySelectorAll("[data-i18n]")) element.textContent = tr(element.dataset.i18n);
  for (const element of document.querySelectorAll("[data-i18n-label]")) element.setAttribute("aria-label", tr(element.dataset.i18nLabel));
  $("lang").value = state.lang;
  $("text").placeholder = tr("placeholder");
  $("text").setAttribute("aria-label", tr("placeholder"));
  $("mic").title = touch() ? "" : tr("mic.keys");
  showCommands();
  updateMic();
  for (const message of state.messages.values()) put(message); // the page's own words in the feed (alt texts, Download)
}

function showCommands() {
  const commands = $("commands");
  commands.replaceChildren();
  for (const name of state.commands) {
    const chip = document.createElement("button");
    chip.type = "button";
    chip.className = "chip";
    chip.dataset.command = name;
    chip.textContent = `/${name}`;
    chip.title = tr(`command.${name}`);
    chip.addEventListener("click", () => send({ type: "command", name, args: "" }));
    commands.append(chip);
  }
}

function setLanguage(lang, remember) {
  if (!Object.hasOwn(LOCALES, lang)) return;
  state.lang = lang;
  if (remember) store(localStorage, "v2a-lang", lang);
  applyStrings();
  send({ type: "locale", locale: locale() });
  if (!$("gallery").hidden) loadGallery();
}

// ---------------------------------------------------------------- little helpers

function element(tag, properties, ...children) {
  const made = document.createElement(tag);
  for (const [name, value] of Object.entries(properties || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") made.textContent = value;
    else if (name === "dataset") Object.assign(made.dataset, value);
    else made.setAttribute(name, value === true ? "" : String(value));
  }
  made.append(...children.filter(Boolean));
  return made;
}

function toast(text, kind) {
  const note = element("div", { class: `toast${kind ? ` ${kind}` : ""}`, text });
  $("toasts").append(note);
  setTimeout(() => note.remove(), kind === "error" ? 9000 : 5000);
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
  measure();
  if (view === "gallery") loadGallery();
  if (view === "studio") follow();
}

// Storage may be off or full: the page then just forgets sooner.
function store(storage, key, value) {
  try {
    if (value === null) storage.removeItem(key);
    else storage.setItem(key, typeof value === "string" ? value : JSON.stringify(value));
  } catch {
    // nothing to do
  }
}

function readStored(storage, key) {
  try {
    return storage.getItem(key);
  } catch {
    return null;
  }
}

function saved(key, fallback) {
  try {
    return JSON.parse(readStored(sessionStorage, key) || readStored(localStorage, key) || "null") ?? fallback;
  } catch {
    return fallback;
  }
}

// ---------------------------------------------------------------- layout and scrolling

// The sizes of the sticky header and the fixed composer, as CSS variables: the feed leaves room for the
// composer, and a finished picture is sized so it fits between them with its caption and buttons.
function measure() {
  const root = document.documentElement.style;
  const bar = $("bar").getBoundingClientRect().height;
  const composer = $("composer").hidden ? 0 : $("composer").getBoundingClientRect().height;
  root.setProperty("--bar-h", `${Math.round(bar)}px`);
  root.setProperty("--composer-h", `${Math.round(composer)}px`);
  root.setProperty("--room", `${Math.max(240, Math.round(window.innerHeight - bar - composer))}px`);
}

function atBottom() {
  return window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 48;
}

function scrollDown() {
  window.scrollTo({ top: document.documentElement.scrollHeight, behavior: "instant" });
}

// Show the newest message from now on (also while its pictures load and it grows).
function follow() {
  state.stick = true;
  scrollDown();
}

function setUpLayout() {
  measure();
  const watcher = new ResizeObserver(() => {
    measure();
    if (state.stick && !$("studio").hidden) scrollDown();
  });
  watcher.observe($("bar"));
  watcher.observe($("composer"));
  watcher.observe($("feed"));
  window.addEventListener("resize", () => {
    measure();
    if (state.stick) scrollDown();
  });
  // Only the reader moves the view away from the newest message — wheel, touch, keys, the scrollbar —
  // never a change of layout (a picture loading, a status folding away), however the scroll events fall.
  let readerAt = 0;
  const reader = () => {
    readerAt = Date.now();
  };
  window.addEventListener("wheel", reader, { passive: true });
  window.addEventListener("touchmove", reader, { passive: true });
  window.addEventListener("keydown", (event) => {
    const control = event.target.closest && event.target.closest("input, textarea, select, button, audio, [contenteditable]");
    if (!control && ["PageUp", "PageDown", "ArrowUp", "ArrowDown", "Home", "End", " "].includes(event.key)) reader();
  });
  window.addEventListener("pointerdown", (event) => {
    if (event.target === document.documentElement) reader(); // the page's scrollbar
  });
  window.addEventListener(
    "scroll",
    () => {
      if (atBottom()) state.stick = true;
      else if (Date.now() - readerAt < 1500) state.stick = false;
    },
    { passive: true },
  );
  window.matchMedia("(pointer: coarse)").addEventListener("change", applyStrings);
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
  // The locale goes along: what the studio shows again from its history is in the page's language.
  const socket = new WebSocket(`${scheme}${location.host}/ws?locale=${encodeURIComponent(locale())}`);
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
    const shown = new Set();
    for (const item of message.feed || []) {
      put(item, "hello");
      shown.add(item.ref);
    }
    for (const [ref, item] of state.elements) {
      if (!shown.has(ref)) {
        item.remove();
        state.elements.delete(ref);
        state.messages.delete(ref);
      }
    }
    inFeedOrder(message.feed || []);
    for (const item of message.feed || []) if (item.voice) restoreVoice(item);
    // What the page noted about messages the server no longer has (it restarted) would mislead new ones.
    for (const [key, notes] of [["v2a-used", state.used], ["v2a-requests", state.requestOf]]) {
      for (const ref of Object.keys(notes)) if (!shown.has(ref)) delete notes[ref];
      store(sessionStorage, key, notes);
    }
    updateEmpty();
    follow();
  } else if (message.type === "message") {
    put(message, message.op);
    state.recent.push([message.text, Date.now()]);
    updateEmpty();
    if (message.op === "send") follow();
    else if (state.stick) scrollDown();
    if (message.op === "send" && message.kind === "image") pictureArrived(message);
  } else if (message.type === "voice") {
    speak(message);
  } else if (message.type === "notify") {
    const now = Date.now();
    state.recent = state.recent.filter(([, at]) => now - at < 5000);
    // One confirmation: a toast that repeats what a message in the feed just said is not shown again.
    if (!state.recent.some(([text]) => text === message.text)) toast(message.text);
  }
}

// ---------------------------------------------------------------- voice replies

// Browsers let a page make sounds only after the user's gesture (a key, a press; not a drop or a script):
// until then a spoken reply waits for its 🔊 button.
function setUpSound() {
  const used = (event) => {
    if (event.isTrusted && event.key !== "Escape") state.gesture = true;
  };
  for (const type of ["pointerdown", "keydown"]) document.addEventListener(type, used, { capture: true, passive: true });
}

// Where a spoken reply's player goes: under message `ref` (the newest about the request when it was spoken),
// else under the newest shown message about the request.
function voiceHome(requestId, ref) {
  const own = ref ? state.elements.get(ref) : null;
  if (own && !own.hidden) return own;
  const items = [...$("feed").querySelectorAll(".msg:not([hidden])")].filter((item) => item.dataset.requestId === requestId);
  return items.pop() || null;
}

// A message the server says was spoken (its feed after a reload, or a second tab): its player again, not playing.
function restoreVoice(message) {
  const item = voiceHome(message.request_id, message.ref);
  if (item && !item.querySelector(".voice")) speak({ request_id: message.request_id, ref: message.ref, ...message.voice }, false);
}

// A spoken reply: a player under its message (kept there through updates: data-keep), with a 🔊 button that
// plays it again. A new one plays at once after the user's gesture (setUpSound); a restored one waits for 🔊.
async function speak(message, play = true) {
  const item = voiceHome(message.request_id, message.ref);
  if (!item) return;
  let blob;
  try {
    const response = await fetch(message.audio);
    if (!response.ok) return;
    blob = await response.blob();
  } catch {
    return; // the text is there; the voice is a bonus
  }
  for (const old of item.querySelectorAll(".voice")) {
    URL.revokeObjectURL(old.querySelector("audio").src);
    old.remove();
  }
  const audio = element("audio", { src: URL.createObjectURL(blob), preload: "auto", "aria-label": tr("voice.label"), title: message.text });
  const replay = element("button", { type: "button", class: "button replay", text: tr("voice.replay"), title: message.text });
  replay.addEventListener("click", () => {
    audio.currentTime = 0;
    audio.play().catch(() => {});
  });
  item.append(element("div", { class: "voice", dataset: { keep: "" } }, audio, replay));
  if (play && state.gesture) audio.play().catch(() => {});
}

function updateEmpty() {
  $("empty").hidden = $("feed").children.length > 0;
}

// The feed's messages in the server's order (requests it showed again from its history go where they
// belong, not at the end). Only what is out of place moves; this tab's own bubbles stay where they are.
function inFeedOrder(feed) {
  const items = feed.map((message) => state.elements.get(message.ref)).filter(Boolean);
  for (let i = items.length - 2; i >= 0; i -= 1) {
    if (items[i].compareDocumentPosition(items[i + 1]) & Node.DOCUMENT_POSITION_PRECEDING) $("feed").insertBefore(items[i], items[i + 1]);
  }
}

// ---------------------------------------------------------------- what the messages are about

// The description a text quotes on a line of its own (the card's “…”, a picture's caption), else null.
function quotedIn(text) {
  for (const line of String(text || "").split("\n")) {
    for (const quote of chatTemplates("card.quote")) {
      const [open, close] = quote.split("{text}");
      if (line.length > open.length + close.length && line.startsWith(open) && line.endsWith(close)) {
        return line.slice(open.length, line.length - close.length).replace(/\[([^\]\n]*)\]/g, "$1");
      }
    }
  }
  return null;
}

function quote(text) {
  return tr("chat.card.quote", { text });
}

function shorten(text, limit) {
  const words = String(text).replace(/\s+/g, " ").trim();
  if (words.length <= limit) return words;
  let head = words.slice(0, limit - 1);
  if (head.includes(" ") && /\w/.test(words[limit - 1] || "")) head = head.slice(0, head.lastIndexOf(" "));
  return `${head.replace(/[\s,.;:，。]+$/, "")}…`;
}

function remember(requestId, description) {
  if (!requestId || !description || state.about.get(requestId) === description) return;
  state.about.delete(requestId);
  state.about.set(requestId, description);
  while (state.about.size > ABOUT_KEPT) state.about.delete(state.about.keys().next().value);
  store(localStorage, "v2a-about", [...state.about]);
}

function learn(message, op) {
  const requestId = message.request_id;
  if (!requestId) return;
  const said = message.kind === "card" || message.kind === "image" ? quotedIn(message.text) : null;
  if (said) remember(requestId, said);
  else if (op === "send" && !state.about.has(requestId) && state.waiting.length) remember(requestId, state.waiting.shift());
}

// A status at its end, "Done — your picture is below" (with the last preview, or none): the picture says it.
// The sketch's own ending ("The sketch, before the anime style…") stays, small.
function isDone(message) {
  return message.kind === "text" && !(message.buttons || []).length && chatTemplates("progress.done").includes(message.text);
}

// A picker (the server says so): every button does the same thing with a different value (a style, a language).
function isPicker(message) {
  return message.kind === "picker" && (message.buttons || []).flat().length > 1;
}

// ---------------------------------------------------------------- drawing replies

function put(message, op) {
  // A status keeps the request it is about when its last words carry none ("Cancelled.", a failure).
  const requestId = message.request_id || state.requestOf[message.ref];
  if (requestId && !message.request_id) message = { ...message, request_id: requestId };
  else if (requestId && state.requestOf[message.ref] !== requestId) {
    state.requestOf[message.ref] = requestId;
    store(sessionStorage, "v2a-requests", state.requestOf);
  }
  state.messages.set(message.ref, message);
  if (op) learn(message, op);
  const fresh = render(message);
  const old = state.elements.get(message.ref);
  if (!old) {
    $("feed").append(fresh);
    state.elements.set(message.ref, fresh);
  } else {
    const focused = old.contains(document.activeElement) ? document.activeElement : null;
    patch(old, fresh);
    if (focused && !old.contains(document.activeElement)) keepFocus(old);
  }
  if (message.kind === "edit_prompt") placeEditor(message, state.elements.get(message.ref), op === "send" || (op === "hello" && message.live), op === "hello");
}

// The focused control went away with an update: focus what took its place (the message's first
// button, the message, or the picture it turned into) instead of letting focus fall to the page.
function keepFocus(item) {
  const target = (candidate) => candidate && !candidate.hidden && (candidate.querySelector(".actions button:not([aria-disabled='true'])") || candidate);
  let next = item.hidden ? null : target(item);
  if (!next) {
    const sameRequest = [...$("feed").querySelectorAll(".msg:not([hidden])")].filter(
      (other) => other.dataset.requestId && other.dataset.requestId === item.dataset.requestId,
    );
    next = target(sameRequest.pop()) || $("text");
  }
  next.focus({ preventScroll: true });
}

function render(message) {
  if (message.kind === "mine") return mineBubble("photo", message.image, 0, message.ref);
  const requestId = message.request_id || "";
  const about = requestId ? state.about.get(requestId) : null;
  // A picker the user chose from (while it still is that picker: an update may turn it into something else).
  const chosen = state.used[message.ref];
  const used = chosen && isPicker(message) && message.buttons.flat().some((button) => button.data === chosen) ? chosen : null;
  // A picker the server then replaced with what was chosen ("Style set to …") stays as compact.
  const settled = Boolean(chosen) && !(message.buttons || []).length && message.kind === "text";
  const classes = ["msg", `kind-${message.kind}`];
  if (message.image && message.kind !== "image") classes.push("with-preview");
  if (used || settled) classes.push("used");
  const item = element("li", {
    class: classes.join(" "),
    tabindex: -1,
    hidden: isDone(message),
    dataset: { ref: message.ref, kind: message.kind, ...(requestId ? { requestId } : {}) },
  });

  let text = message.text || "";
  let heading = null;
  if (message.kind === "image") {
    const said = quotedIn(text);
    if (said) {
      heading = said;
      text = text.split("\n").filter((line) => quotedIn(line) === null).join("\n");
    } else {
      heading = about; // a reroll or restyle: its caption does not repeat the description
    }
  } else if (!["card", "edit_prompt"].includes(message.kind) && !isPicker(message) && !settled && !quotedIn(text)) {
    heading = about; // a status, a cancelled or retired card: what it was about
  }

  const tiles = message.tiles || [];
  if (message.image && !tiles.length) item.append(picture(message, heading || about));
  if (tiles.length) item.append(tileGrid(message, heading || about));
  if (heading) item.append(element("p", { class: "about", title: heading, text: quote(shorten(heading, 120)), dataset: { key: "about" } }));
  if (text) item.append(element("p", { class: "text", text, dataset: { key: "text" } }));
  if (message.fix) item.append(fixPanel(message.fix));
  const percent = message.kind === "progress" ? /(\d{1,3})\s*%/.exec(text) : null;
  if (percent) {
    item.append(
      element("progress", { class: "bar", max: 100, value: Math.min(100, Number(percent[1])), "aria-label": heading || text, dataset: { key: "bar" } }),
    );
  }
  const actions = element("div", { class: "actions", dataset: { key: "actions" } });
  for (const [index, row] of (message.buttons || []).entries()) {
    const line = element("div", { class: "row", dataset: { key: `row${index}` } });
    for (const button of row) {
      if (used && button.data !== used) continue; // a used picker keeps only its choice
      if (tiles.some((tile) => tile.keep === button.data)) continue; // it sits under its tile
      line.append(
        element("button", {
          type: "button",
          text: button.label,
          "aria-pressed": used ? "true" : null,
          "aria-disabled": used ? "true" : null,
          dataset: { press: button.data, action: button.data.split(":", 1)[0], key: `b:${button.data}` },
        }),
      );
    }
    if (line.children.length) actions.append(line);
  }
  if (message.download) {
    const link = element("a", { class: "button download", href: message.download, download: "", text: tr("download"), dataset: { key: "download" } });
    (actions.lastElementChild || actions.appendChild(element("div", { class: "row", dataset: { key: "row-download" } }))).append(link);
  }
  if (actions.children.length) item.append(actions);
  return item;
}

// A model this studio needs is missing: what the operator (the person at this page) puts where, to copy.
function fixPanel(fix) {
  const panel = element("div", { class: "fix", role: "note", dataset: { key: "fix" } });
  panel.append(element("p", { class: "fix-title", text: tr("fix.title") }));
  panel.append(element("pre", { class: "fix-text", text: fix }));
  panel.append(element("p", { class: "fix-after", text: tr("fix.after") }));
  return panel;
}

// Variations: each picture of the grid as a tile with the button that keeps it (V1 .. V4) and its own download.
function tileGrid(message, description) {
  const grid = element("div", { class: "tiles", dataset: { key: "tiles" } });
  const buttons = (message.buttons || []).flat();
  for (const [index, tile] of message.tiles.entries()) {
    const keep = buttons.find((button) => button.data === tile.keep);
    const label = keep ? keep.label : `V${index + 1}`;
    const cell = element("div", { class: "tile", dataset: { key: `tile${index}` } });
    cell.append(element("img", { src: tile.image, alt: `${description || tr("picture.alt")} · ${label}`, loading: "lazy", decoding: "async" }));
    const row = element("div", { class: "row" });
    if (keep) {
      row.append(element("button", { type: "button", text: label, dataset: { press: keep.data, action: keep.data.split(":", 1)[0], key: `b:${keep.data}` } }));
    }
    row.append(element("a", { class: "button download", href: tile.download, download: "", text: tr("download") }));
    cell.append(row);
    grid.append(cell);
  }
  return grid;
}

function picture(message, description) {
  const figure = element("figure", { dataset: { key: "figure" } });
  const alt = description || (message.kind === "image" && !message.text ? tr("picture.alt") : message.text || tr("picture.alt"));
  const image = element("img", { src: message.image, alt, loading: "lazy", decoding: "async", dataset: { key: "img" } });
  figure.append(image);
  if (message.spoiler && !state.revealed.has(message.ref)) {
    // The content policy flagged it: blurred until chosen, like a spoiler on Telegram or Discord.
    figure.classList.add("spoiler");
    figure.setAttribute("role", "button");
    figure.setAttribute("tabindex", "0");
    figure.setAttribute("aria-label", tr("picture.reveal"));
  }
  return figure;
}

// Update ``from`` in place to look like ``to``: matching children (same tag and data-key) are kept and
// updated, so a focused button or a loaded picture survives; an inline editor (data-keep) is left alone.
function patch(from, to) {
  for (const { name } of [...from.attributes]) {
    if (name !== "style" && !to.hasAttribute(name)) from.removeAttribute(name);
  }
  for (const { name, value } of [...to.attributes]) {
    if (from.getAttribute(name) !== value) from.setAttribute(name, value);
  }
  if (from instanceof HTMLProgressElement) from.value = to.value;
  const kept = (node) => node && node.nodeType === Node.ELEMENT_NODE && node.dataset.keep !== undefined;
  const same = (a, b) => a.nodeName === b.nodeName && (a.nodeType !== Node.ELEMENT_NODE || a.dataset.key === b.dataset.key);
  let cursor = from.firstChild;
  for (const node of [...to.childNodes]) {
    while (kept(cursor)) cursor = cursor.nextSibling;
    let match = cursor && same(cursor, node) ? cursor : null;
    if (!match && node.nodeType === Node.ELEMENT_NODE && node.dataset.key !== undefined) {
      match = [...from.children].find((child) => !kept(child) && same(child, node)) || null;
    }
    if (!match) {
      from.insertBefore(node, cursor);
      continue;
    }
    if (match === cursor) cursor = cursor.nextSibling;
    else from.insertBefore(match, cursor);
    if (node.nodeType === Node.ELEMENT_NODE) patch(match, node);
    else if (match.nodeValue !== node.nodeValue) match.nodeValue = node.nodeValue;
  }
  while (cursor) {
    const next = cursor.nextSibling;
    if (!kept(cursor)) cursor.remove();
    cursor = next;
  }
}

function press(button) {
  if (button.getAttribute("aria-disabled") === "true") return;
  const item = button.closest(".msg");
  const ref = item.dataset.ref;
  const data = button.dataset.press;
  const [action, requestId, value] = data.split(":");
  if (!send({ type: "press", data, ref })) return;
  // A second press of the same button is ignored for a moment (focus stays on it: no `disabled`).
  button.setAttribute("aria-disabled", "true");
  setTimeout(() => button.isConnected && !state.used[ref] && button.removeAttribute("aria-disabled"), 800);
  const message = state.messages.get(ref);
  if (message && isPicker(message)) {
    state.used[ref] = data;
    store(sessionStorage, "v2a-used", state.used);
    put(message);
  }
  if ((action === ACTIONS.reroll || action === ACTIONS.restyleAs) && state.about.has(requestId)) {
    state.waiting.push(state.about.get(requestId));
  }
  if (action === ACTIONS.confirm) askToNotify();
  if (action === ACTIONS.setLanguage && value) {
    // The chat's language chosen in /settings: the page follows it ("auto": the browser's again).
    if (value === "auto") {
      store(localStorage, "v2a-lang", null);
      setLanguage(chooseLanguage(), false);
    } else {
      setLanguage(LEGACY[value] || value, true);
    }
  }
}

function setUpFeed() {
  const feed = $("feed");
  feed.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-press]");
    if (button) {
      press(button);
      return;
    }
    const figure = event.target.closest("figure.spoiler");
    if (figure) reveal(figure);
  });
  feed.addEventListener("keydown", (event) => {
    const figure = event.target.closest && event.target.closest("figure.spoiler");
    if (figure && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault();
      reveal(figure);
    }
  });
  // A picture's real shape, once known, sizes its box (before that it is square, like most pictures).
  feed.addEventListener(
    "load",
    (event) => {
      const image = event.target;
      if (image instanceof HTMLImageElement && image.naturalWidth && image.naturalHeight) {
        image.style.setProperty("--ratio", (image.naturalWidth / image.naturalHeight).toFixed(4));
      }
    },
    true,
  );
}

function reveal(figure) {
  const item = figure.closest(".msg");
  state.revealed.add(item.dataset.ref);
  put(state.messages.get(item.dataset.ref));
  item.focus({ preventScroll: true });
}

// "Edit": an inline text field in the card itself, filled with the current words.
function placeEditor(message, item, live, restored) {
  const card = [...document.querySelectorAll(".msg.kind-card")].find((c) => c.dataset.requestId === message.request_id);
  // Edit: the card holds the field, the prompt's words are its label. Without a card (Remix: new words for a
  // picture) the prompt itself holds it. An old prompt (a reload): nothing to edit any more, unless the server
  // says it still waits for its words (live): its field again, or the one this tab already shows (a reconnect).
  const host = card || item;
  item.hidden = Boolean(card) || !live;
  if (!live || (restored && host.querySelector("form.editor"))) return;
  const field = element("textarea", { rows: 3, maxlength: 2000, "aria-label": message.title || message.text });
  field.value = message.prefill || "";
  const save = element("button", { type: "submit", class: "primary", text: tr("edit.save") });
  const cancel = element("button", { type: "button", text: tr("edit.cancel") });
  const form = element("form", { class: "editor", dataset: { keep: "" } }, field, element("div", { class: "row" }, save, cancel));
  form.addEventListener("submit", (submitted) => {
    submitted.preventDefault();
    const text = field.value.trim();
    if (!text) return;
    if (send({ type: "text", text, request_id: message.request_id })) {
      form.remove();
      keepFocus(host);
    }
  });
  field.addEventListener("keydown", (key) => {
    if (key.key === "Enter" && !key.shiftKey) {
      key.preventDefault();
      form.requestSubmit();
    } else if (key.key === "Escape") {
      key.preventDefault();
      cancel.click();
    }
  });
  cancel.addEventListener("click", () => {
    form.remove();
    keepFocus(host);
  });
  host.querySelectorAll("form.editor").forEach((other) => other.remove());
  host.append(form);
  field.focus();
}

// The user's own voice note or photo, as their bubble in the feed. A photo or sketch the studio kept (the upload's
// answer names it) is that message of the feed: a reload or a new tab shows it too; a voice note is this tab's only.
function addMine(kind, blob, seconds) {
  const bubble = mineBubble(kind, URL.createObjectURL(blob), seconds);
  $("feed").append(bubble);
  updateEmpty();
  follow();
  return bubble;
}

function mineBubble(kind, url, seconds, ref) {
  const label = tr(kind === "voice" ? "mine.voice" : "mine.photo");
  const media =
    kind === "voice"
      ? element("audio", { controls: true, preload: "metadata", src: url, "aria-label": label })
      : element("img", { src: url, alt: label });
  const note = kind === "voice" && seconds ? element("p", { class: "text", text: `🎙 ${clock(seconds)}` }) : null;
  return element("li", { class: `msg mine mine-${kind}`, tabindex: -1, "aria-label": label, dataset: ref ? { ref } : {} }, media, note);
}

// The studio kept the photo this tab shows as message ``ref``: the bubble is that message from now on.
function adopt(bubble, ref) {
  if (state.elements.has(ref)) {
    bubble.remove(); // the feed came first (a reconnect): it shows the kept one
    return;
  }
  bubble.dataset.ref = ref;
  state.elements.set(ref, bubble);
  state.messages.set(ref, { ref, kind: "mine", text: "", buttons: [], image: bubble.querySelector("img").src });
}

// ---------------------------------------------------------------- background tabs

function askToNotify() {
  if (!("Notification" in window) || Notification.permission !== "default" || readStored(localStorage, "v2a-asked")) return;
  store(localStorage, "v2a-asked", "1");
  Notification.requestPermission().catch(() => {});
}

// A badge on the icon: a finished picture is waiting in this (hidden) tab.
const READY_ICON =
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64"><rect width="64" height="64" rx="14" fill="#6d3ef5"/>' +
  '<rect x="24" y="10" width="16" height="28" rx="8" fill="#fff"/><path d="M16 30a16 16 0 0 0 32 0" fill="none" stroke="#fff" stroke-width="4" stroke-linecap="round"/>' +
  '<path d="M32 46v8" stroke="#fff" stroke-width="4" stroke-linecap="round"/><circle cx="50" cy="14" r="13" fill="#1f9d55" stroke="#fff" stroke-width="3"/>' +
  '<path d="M44 14l4 4 8-8" fill="none" stroke="#fff" stroke-width="4" stroke-linecap="round" stroke-linejoin="round"/></svg>';
let readyIconUrl = null;

function setIcon(ready) {
  if (ready && !readyIconUrl) readyIconUrl = URL.createObjectURL(new Blob([READY_ICON], { type: "image/svg+xml" }));
  $("favicon").href = ready ? readyIconUrl : "/static/icon.svg";
}

function pictureArrived(message) {
  if (!document.hidden) return;
  state.unseen += 1;
  document.title = tr("ready.title");
  setIcon(true);
  if ("Notification" in window && Notification.permission === "granted") {
    try {
      const about = state.about.get(message.request_id);
      new Notification(tr("ready.title"), { body: about ? quote(shorten(about, 120)) : tr("title"), icon: "/static/icon.svg", tag: "v2a" });
    } catch {
      // some browsers only notify from a service worker: the title and the icon still say it
    }
  }
}

function setUpVisibility() {
  document.addEventListener("visibilitychange", () => {
    if (document.hidden || !state.unseen) return;
    state.unseen = 0;
    document.title = tr("title");
    setIcon(false);
  });
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
  if (send(event)) {
    input.value = "";
    follow();
  }
}

// ---------------------------------------------------------------- uploads

// Over its limit an upload is refused at once (from Content-Length) and the conversation says why.
// ``extra``: a photo's ``caption`` (words drawn keeping its composition) and ``sketch: "1"`` for the sketch pad's drawing.
async function upload(kind, blob, extra, bubble) {
  try {
    const query = new URLSearchParams({ locale: locale(), ...(extra || {}) });
    const response = await fetch(`/upload/${kind}?${query}`, {
      method: "POST",
      body: blob,
      headers: { "Content-Type": blob.type || "application/octet-stream" },
      credentials: "same-origin",
    });
    if (!response.ok && response.status !== 413 && !(await toldWhy(response))) toast(tr("upload.failed", { reason: response.status }), "error");
    const kept = response.ok && bubble ? (await response.json()).ref : null;
    if (kept) adopt(bubble, kept);
  } catch (error) {
    toast(tr("upload.failed", { reason: error.message || error }), "error");
  }
}

// Whether the studio itself said why an upload was refused, so the page adds nothing: too big (413, in the
// feed), stalled (408) or too many at once (503), told as a notice of its own; a 503 in plain words is the
// studio turning away a connection over its caps, whose words the page has too.
async function toldWhy(response) {
  if (response.status !== 408 && response.status !== 503) return false;
  let answer = null;
  try {
    answer = await response.json();
  } catch {
    answer = null;
  }
  if (answer && answer.reason) return true;
  if (response.status === 503) {
    toast(tr("connections.busy"), "error");
    return true;
  }
  return false;
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
  const bubble = addMine(kind, file);
  // A photo sent with words typed in the box: draw the words keeping the photo's composition.
  const caption = kind === "photo" ? $("text").value.trim() : "";
  if (caption) $("text").value = "";
  upload(kind, file, caption ? { caption } : undefined, bubble);
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

// ---------------------------------------------------------------- the sketch pad
//
// Strokes (pen or eraser, pointer events: mouse, pen and touch alike) on a white canvas, kept as lists of
// points so Undo can take the last one back; the picture goes as a PNG with its description and the
// conversation draws it with the scribble ControlNet.

const pad = { strokes: [], current: null, eraser: false };
const PEN_WIDTH = 5;
const ERASER_WIDTH = 28;

function padContext() {
  const context = $("sketch-canvas").getContext("2d");
  context.lineCap = "round";
  context.lineJoin = "round";
  return context;
}

function paintPad() {
  const canvas = $("sketch-canvas");
  const context = padContext();
  context.fillStyle = "#fff";
  context.fillRect(0, 0, canvas.width, canvas.height);
  for (const stroke of pad.strokes) {
    stroke.points.forEach((point, index) => paintSegment(context, stroke, stroke.points[index - 1] || point, point));
  }
  $("sketch-undo").disabled = $("sketch-clear").disabled = !pad.strokes.length;
}

function paintSegment(context, stroke, from, to) {
  context.strokeStyle = stroke.eraser ? "#fff" : "#000";
  context.lineWidth = stroke.eraser ? ERASER_WIDTH : PEN_WIDTH;
  context.beginPath();
  context.moveTo(from.x, from.y);
  context.lineTo(to.x + (from === to ? 0.01 : 0), to.y);
  context.stroke();
}

function padPoint(event) {
  const canvas = $("sketch-canvas");
  const box = canvas.getBoundingClientRect();
  return { x: ((event.clientX - box.left) * canvas.width) / box.width, y: ((event.clientY - box.top) * canvas.height) / box.height };
}

function setEraser(on) {
  pad.eraser = on;
  $("sketch-pen").setAttribute("aria-pressed", String(!on));
  $("sketch-eraser").setAttribute("aria-pressed", String(on));
}

function sendSketch(submitted) {
  submitted.preventDefault();
  const words = $("sketch-text").value.trim();
  if (!pad.strokes.some((stroke) => !stroke.eraser)) {
    toast(tr("sketch.empty"), "error");
    return;
  }
  $("sketch-canvas").toBlob((blob) => {
    if (!blob) return;
    $("sketch").close();
    show("studio");
    const bubble = addMine("photo", blob);
    // Without words the studio asks what it is: the next description, typed or said, draws it.
    upload("photo", blob, words ? { caption: words, sketch: "1" } : { sketch: "1" }, bubble);
    pad.strokes = [];
    $("sketch-text").value = "";
  }, "image/png");
}

function setUpSketch() {
  const dialog = $("sketch");
  const canvas = $("sketch-canvas");
  $("sketch-open").addEventListener("click", () => {
    paintPad();
    $("sketch-text").placeholder = tr("sketch.placeholder");
    $("sketch-text").setAttribute("aria-label", tr("sketch.placeholder"));
    if (!$("sketch-text").value) $("sketch-text").value = $("text").value.trim();
    dialog.showModal();
  });
  canvas.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    const point = padPoint(event);
    pad.current = { eraser: pad.eraser, points: [point] };
    pad.strokes.push(pad.current);
    paintSegment(padContext(), pad.current, point, point);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!pad.current) return;
    const points = pad.current.points;
    const point = padPoint(event);
    paintSegment(padContext(), pad.current, points[points.length - 1], point);
    points.push(point);
  });
  const finish = () => {
    if (!pad.current) return;
    pad.current = null;
    $("sketch-undo").disabled = $("sketch-clear").disabled = false;
  };
  canvas.addEventListener("pointerup", finish);
  canvas.addEventListener("pointercancel", finish);
  $("sketch-pen").addEventListener("click", () => setEraser(false));
  $("sketch-eraser").addEventListener("click", () => setEraser(true));
  $("sketch-undo").addEventListener("click", () => {
    pad.strokes.pop();
    paintPad();
  });
  $("sketch-clear").addEventListener("click", () => {
    pad.strokes = [];
    paintPad();
  });
  $("sketch-close").addEventListener("click", () => dialog.close());
  $("sketch-form").addEventListener("submit", sendSketch);
}

// ---------------------------------------------------------------- the microphone
//
// Pointer or Space/Enter on the button: pressed and held = push to talk (letting go sends); a short
// press starts a recording that the next press sends. Esc or ✖ discards it; "Listen first" stops it
// for playback, then Send or Discard. At the length limit it stops for playback too.

const mic = {
  phase: "idle", // idle | starting | recording | review | sending
  mode: "hold", // hold | toggle
  downAt: 0,
  ignoreUp: false,
  released: false, // let go (after a hold) while the microphone was still starting
  keyAt: 0,
  outcome: "send", // what the recording's stop leads to: send | review | discard
  recorder: null,
  stream: null,
  chunks: [],
  started: 0,
  seconds: 0,
  blob: null,
  url: null,
  timer: null,
  audio: null, // { context, analyser, samples } for the level meter
};

function clock(seconds) {
  const whole = Math.max(0, Math.floor(seconds));
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")}`;
}

function setMode(mode) {
  const composer = $("composer");
  composer.dataset.mode = mode;
  $("recorder").hidden = mode === "idle";
  const review = mode === "review";
  $("review").hidden = !review;
  $("review-send").hidden = !review;
  $("listen").hidden = review;
  $("level").hidden = review;
  $("elapsed").hidden = review;
}

function updateMic() {
  const button = $("mic");
  const live = mic.phase === "recording" || mic.phase === "starting";
  button.classList.toggle("recording", live);
  button.setAttribute("aria-pressed", String(live));
  const label = live ? (mic.mode === "hold" ? tr("mic.hold") : tr("mic.toggle")) : mic.phase === "sending" ? tr("mic.sending") : tr("mic.idle");
  $("mic-label").textContent = label;
  $("mic-hint").textContent = tr("mic.hint");
  $("mic-hint").hidden = mic.phase !== "idle";
  const limit = state.limits.audio_seconds;
  $("elapsed").textContent = `${clock(live && mic.started ? (Date.now() - mic.started) / 1000 : mic.seconds)} / ${clock(limit)}`;
}

function micProblem(error) {
  const name = (error && error.name) || "";
  if (name === "NotAllowedError" || name === "SecurityError" || name === "PermissionDeniedError") toast(tr("mic.denied"), "error");
  else if (name === "NotFoundError" || name === "DevicesNotFoundError" || name === "OverconstrainedError") toast(tr("mic.missing"), "error");
  else if (name === "NotReadableError" || name === "TrackStartError" || name === "AbortError") toast(tr("mic.busy"), "error");
  else toast(tr("mic.unavailable", { reason: name || (error && error.message) || String(error) }), "error");
}

function startMeter(stream) {
  try {
    const context = new AudioContext();
    const analyser = context.createAnalyser();
    analyser.fftSize = 1024;
    context.createMediaStreamSource(stream).connect(analyser);
    mic.audio = { context, analyser, samples: new Float32Array(analyser.fftSize) };
  } catch {
    mic.audio = null; // no meter, the recording works all the same
  }
}

function showLevel() {
  const meter = $("level");
  let level = 0;
  if (mic.audio) {
    mic.audio.analyser.getFloatTimeDomainData(mic.audio.samples);
    let sum = 0;
    for (const sample of mic.audio.samples) sum += sample * sample;
    level = Math.min(1, Math.sqrt(sum / mic.audio.samples.length) * 4);
  }
  meter.style.setProperty("--level", level.toFixed(3));
  meter.dataset.level = level.toFixed(3);
}

function stopMeter() {
  if (mic.audio) mic.audio.context.close().catch(() => {});
  mic.audio = null;
  $("level").style.setProperty("--level", "0");
}

async function startRecording() {
  if (!window.isSecureContext || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    toast(tr("mic.unavailable", { reason: tr("mic.insecure") }), "error");
    return;
  }
  if (typeof MediaRecorder === "undefined") {
    toast(tr("mic.unavailable", { reason: "MediaRecorder" }), "error");
    return;
  }
  mic.phase = "starting";
  mic.released = false;
  mic.outcome = "send";
  setMode("recording");
  updateMic();
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true } });
  } catch (error) {
    mic.phase = "idle";
    setMode("idle");
    updateMic();
    micProblem(error);
    return;
  }
  if (mic.phase !== "starting") {
    // discarded while the microphone was starting
    for (const track of stream.getTracks()) track.stop();
    return;
  }
  const type = RECORDER_TYPES.find((candidate) => MediaRecorder.isTypeSupported(candidate));
  const recorder = new MediaRecorder(stream, type ? { mimeType: type } : undefined);
  Object.assign(mic, { recorder, stream, chunks: [], started: Date.now(), phase: "recording" });
  recorder.addEventListener("dataavailable", (event) => {
    if (event.data && event.data.size) mic.chunks.push(event.data);
  });
  recorder.addEventListener("stop", () => stopped(recorder));
  recorder.start(250);
  startMeter(stream);
  mic.timer = setInterval(() => {
    updateMic();
    showLevel();
    if (Date.now() - mic.started >= state.limits.audio_seconds * 1000) {
      toast(tr("recorder.limit", { seconds: Math.round(state.limits.audio_seconds) }));
      finish("review");
    }
  }, 100);
  updateMic();
  if (mic.released) finish("send"); // held and let go before the microphone was ready
}

// End the recording: "send" it, stop it for "review", or "discard" it.
function finish(outcome) {
  if (mic.phase === "starting") {
    if (outcome === "discard") {
      mic.phase = "idle";
      setMode("idle");
      updateMic();
    } else {
      mic.released = true;
    }
    return;
  }
  if (mic.phase !== "recording") return;
  mic.outcome = outcome;
  mic.seconds = (Date.now() - mic.started) / 1000;
  clearInterval(mic.timer);
  stopMeter();
  if (mic.recorder.state !== "inactive") mic.recorder.stop();
}

function stopped(recorder) {
  const blob = new Blob(mic.chunks, { type: recorder.mimeType || "audio/webm" });
  for (const track of mic.stream.getTracks()) track.stop();
  Object.assign(mic, { recorder: null, stream: null, chunks: [], started: 0 });
  const inComposer = $("composer").contains(document.activeElement);
  if (mic.outcome === "discard") {
    mic.phase = "idle";
    setMode("idle");
    toast(tr("recorder.discarded"));
  } else if (mic.seconds < MIN_SECONDS || !blob.size) {
    mic.phase = "idle";
    setMode("idle");
    toast(tr("mic.too_short"));
  } else if (mic.outcome === "review") {
    mic.phase = "review";
    mic.blob = blob;
    mic.url = URL.createObjectURL(blob);
    $("review").src = mic.url;
    setMode("review");
    updateMic();
    $("review-send").focus({ preventScroll: true });
    return;
  } else {
    sendRecording(blob);
  }
  updateMic();
  if (inComposer && (document.activeElement === document.body || $("recorder").contains(document.activeElement) || !document.activeElement)) {
    $("mic").focus({ preventScroll: true });
  }
}

function sendRecording(blob) {
  mic.phase = "sending";
  setMode("idle");
  updateMic();
  addMine("voice", blob, mic.seconds);
  upload("voice", blob).finally(() => {
    mic.phase = "idle";
    updateMic();
  });
}

function endReview(sending) {
  if (mic.phase !== "review") return;
  const blob = mic.blob;
  $("review").pause();
  $("review").removeAttribute("src");
  if (mic.url) URL.revokeObjectURL(mic.url);
  Object.assign(mic, { blob: null, url: null });
  if (sending) sendRecording(blob);
  else {
    mic.phase = "idle";
    setMode("idle");
    updateMic();
    toast(tr("recorder.discarded"));
  }
  $("mic").focus({ preventScroll: true });
}

function discard() {
  if (mic.phase === "review") endReview(false);
  else finish("discard");
}

// A press of the button (pointer down, Space or Enter down).
function pressDown() {
  if (mic.phase === "recording" || mic.phase === "starting") {
    if (mic.mode === "toggle") {
      mic.ignoreUp = true; // this press ends a recording started by a short press
      finish("send");
    }
    return;
  }
  if (mic.phase !== "idle") return;
  mic.downAt = Date.now();
  mic.mode = "hold";
  mic.ignoreUp = false;
  startRecording();
}

// Letting go of the button: after a hold it sends; after a short press the recording goes on.
function pressUp() {
  if (mic.ignoreUp) {
    mic.ignoreUp = false;
    return;
  }
  if ((mic.phase !== "recording" && mic.phase !== "starting") || mic.mode !== "hold") return;
  if (Date.now() - mic.downAt >= HOLD_MS) finish("send");
  else mic.mode = "toggle";
  updateMic();
}

function setUpMic() {
  const button = $("mic");
  const isKey = (event) => event.key === " " || event.key === "Enter";
  button.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    event.preventDefault();
    button.focus({ preventScroll: true });
    try {
      button.setPointerCapture(event.pointerId); // letting go outside the button still counts
    } catch {
      // not capturable (a synthetic pointer): the release still reaches the button
    }
    pressDown();
  });
  button.addEventListener("pointerup", pressUp);
  button.addEventListener("pointercancel", pressUp);
  button.addEventListener("contextmenu", (event) => event.preventDefault());
  button.addEventListener("keydown", (event) => {
    if (!isKey(event)) return;
    event.preventDefault(); // no click from the key: the press is handled here
    mic.keyAt = Date.now();
    if (!event.repeat) pressDown();
  });
  button.addEventListener("keyup", (event) => {
    if (!isKey(event)) return;
    event.preventDefault();
    mic.keyAt = Date.now();
    pressUp();
  });
  button.addEventListener("click", (event) => {
    // Pointer and keys are handled above; a click with neither (assistive technology) starts or sends.
    if (event.detail !== 0 || Date.now() - mic.keyAt < 1000) return;
    if (mic.phase === "recording") finish("send");
    else if (mic.phase === "idle") {
      mic.mode = "toggle";
      startRecording();
    }
  });
  $("discard").addEventListener("click", discard);
  $("listen").addEventListener("click", () => finish("review"));
  $("review-send").addEventListener("click", () => endReview(true));
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && mic.phase !== "idle" && mic.phase !== "sending") {
      event.preventDefault();
      discard();
    }
  });
}

// ---------------------------------------------------------------- gallery

// The newest pictures, then a page at a time with "More" (the cursor: the last request shown).
async function loadGallery(more) {
  const gallery = state.gallery;
  if (more && (gallery.loading || !gallery.next)) return;
  const cursor = more ? gallery.next : null;
  gallery.loading = true;
  let page = null;
  try {
    const response = await fetch(`/api/gallery${cursor ? `?before=${encodeURIComponent(cursor)}` : ""}`, { credentials: "same-origin" });
    if (response.ok) page = await response.json();
  } catch {
    page = null;
  } finally {
    gallery.loading = false;
  }
  if (!page || (more && gallery.next !== cursor)) return; // failed, or the gallery was loaded afresh meanwhile
  const grid = $("gallery-grid");
  if (!more) {
    grid.replaceChildren();
    gallery.shown.clear();
  }
  gallery.next = page.next || null;
  moreButton().hidden = !gallery.next;
  const count = grid.children.length;
  for (const item of page.items || []) {
    if (gallery.shown.has(item.request_id)) continue;
    gallery.shown.add(item.request_id);
    const open = element("button", { type: "button", class: `open${item.spoiler ? " spoiler" : ""}`, title: tr("gallery.open") });
    open.append(element("img", { src: item.image, alt: item.description || tr("picture.alt"), loading: "lazy" }));
    open.addEventListener("click", () => {
      if (send({ type: "press", data: item.press, ref: "" })) show("studio");
    });
    const style = (item.style && (item.style[state.lang] || item.style.en)) || "";
    const date = item.created ? new Date(item.created).toLocaleDateString(LOCALES[state.lang]) : "";
    const kind = (item.kind && (item.kind[state.lang] || item.kind.en)) || "";
    const caption = element("p", { class: "caption", text: [kind, item.description, style, date].filter(Boolean).join(" · ") });
    const link = element("a", { class: "button download", href: item.download, download: "", text: tr("download") });
    grid.append(element("li", { class: "tile", dataset: { requestId: item.request_id } }, open, caption, link));
  }
  const firstNew = grid.children[count];
  $("gallery-empty").hidden = grid.children.length > 0;
  // "More" pressed for the last page went away: focus goes on to the first picture it brought, not to the page.
  if (more && !gallery.next && document.activeElement === document.body) firstNew?.querySelector("button")?.focus();
}

// The gallery's "More" button, below its grid (made once).
function moreButton() {
  let button = $("gallery-more");
  if (!button) {
    button = element("button", { id: "gallery-more", type: "button", class: "more", hidden: true, text: tr("gallery.more") });
    button.dataset.i18n = "gallery.more";
    button.addEventListener("click", () => loadGallery(true));
    $("gallery-grid").after(button);
  }
  return button;
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
  state.about = new Map(saved("v2a-about", []));
  state.used = saved("v2a-used", {});
  state.requestOf = saved("v2a-requests", {});
  try {
    state.strings = await (await fetch("/strings.json")).json();
  } catch {
    state.strings = {};
  }
  applyStrings();
  $("lang").addEventListener("change", (event) => setLanguage(event.target.value, true));
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
  setUpLayout();
  setUpFeed();
  setUpDrop();
  setUpSketch();
  setUpMic();
  setUpVisibility();
  setUpSound();
  const session = await (await fetch("/api/session", { credentials: "same-origin" })).json();
  if (session.limits) state.limits = session.limits;
  state.commands = session.commands || [];
  showCommands();
  updateMic();
  if (!session.signed_in) {
    show("login");
    return;
  }
  show("studio");
  connect();
}

start();
