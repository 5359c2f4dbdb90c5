// @ts-check
// The chat page. It talks to tollgate only through the SDK; it never sees an
// access token (login sets HttpOnly cookies) and keeps nothing secret in
// storage: localStorage holds only the names of the rooms a user had open.
import { TollgateClient } from "/sdk/tollgate.js";

const tg = new TollgateClient({ historyBacklog: 50 });

/** @param {string} id */
const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

const ui = {
  loading: $("loading"),
  auth: $("auth"),
  chat: $("chat"),
  conn: $("conn"),
  who: $("who"),
  logout: /** @type {HTMLButtonElement} */ ($("logout")),
  banner: $("banner"),
  bannerText: $("banner-text"),
  loginForm: /** @type {HTMLFormElement} */ ($("login-form")),
  registerForm: /** @type {HTMLFormElement} */ ($("register-form")),
  guest: /** @type {HTMLButtonElement} */ ($("guest")),
  joinForm: /** @type {HTMLFormElement} */ ($("join-form")),
  roomList: $("room-list"),
  roomTitle: $("room-title"),
  leave: /** @type {HTMLButtonElement} */ ($("leave")),
  lists: $("message-lists"),
  sendForm: /** @type {HTMLFormElement} */ ($("send-form")),
};

/** @type {Map<string, {list: HTMLOListElement, item: HTMLLIElement, unread: number}>} */
const rooms = new Map();
/** @type {string|null} */
let current = null;
/** @type {ReturnType<typeof setInterval>|undefined} */
let countdown;

// ---- banner ---------------------------------------------------------------

/**
 * @param {string} text
 * @param {"error"|"warn"|"info"} [kind]
 * @param {string} [code] the error code, for tests and styling
 */
function showBanner(text, kind = "error", code = "") {
  clearInterval(countdown);
  ui.banner.dataset.kind = kind;
  ui.banner.dataset.code = code;
  ui.bannerText.textContent = text;
  ui.banner.hidden = false;
}

function hideBanner() {
  clearInterval(countdown);
  ui.banner.hidden = true;
  ui.banner.dataset.code = "";
}

$("banner-close").addEventListener("click", hideBanner);

/**
 * describe turns an SDK error into a sentence for people.
 * @param {any} err
 */
function describe(err) {
  switch (err?.code) {
    case "invalid_credentials":
      return "Wrong username or password.";
    case "username_taken":
      return "That username is taken.";
    case "invalid_request":
      return err.message || "That was not accepted.";
    case "rate_limited":
      return `Slow down: rate limited. Retrying in ${err.retryAfter ?? "a few"} s.`;
    case "blocked":
      return "You are blocked for a while (too many refused requests).";
    case "forbidden":
      return err.message || "Not allowed.";
    case "session_revoked":
      return "You were logged out (the session ended elsewhere).";
    case "user_disabled":
      return "This account is disabled.";
    case "unauthenticated":
      return "Please log in.";
    case "network":
      return "Cannot reach the server.";
    case "too_long":
      return "The message is too long (at most 4000 characters).";
    default:
      return err?.message || String(err);
  }
}

/** @param {any} err */
function showError(err) {
  if (err?.code === "rate_limited" && err.retryAfter) {
    let left = err.retryAfter;
    showBanner(describe(err), "warn", "rate_limited");
    countdown = setInterval(() => {
      left--;
      if (left <= 0) {
        hideBanner();
        return;
      }
      ui.bannerText.textContent = `Slow down: rate limited. Retrying in ${left} s.`;
    }, 1000);
    return;
  }
  showBanner(describe(err), "error", err?.code ?? "");
}

// ---- connection state -------------------------------------------------------

tg.on("state", (ev) => {
  ui.conn.dataset.state = ev.state;
  switch (ev.state) {
    case "connecting":
      ui.conn.textContent = "connecting…";
      break;
    case "open":
      ui.conn.textContent = "connected";
      if (ui.banner.dataset.code === "disconnected") hideBanner();
      break;
    case "reconnecting": {
      const secs = Math.max(1, Math.ceil((ev.delay ?? 0) / 1000));
      ui.conn.textContent = `reconnecting (attempt ${ev.attempt})…`;
      ui.conn.title = `Next try in about ${secs} s`;
      if (ev.reason === "shutting_down") showBanner("The server is restarting; reconnecting…", "info", "disconnected");
      else showBanner("Connection lost; reconnecting…", "info", "disconnected");
      break;
    }
    case "closed":
      ui.conn.textContent = ev.reason === "blocked" ? "blocked" : "offline";
      if (ev.reason === "session_revoked" || ev.reason === "user_disabled" || ev.reason === "unauthenticated") {
        showError({ code: ev.reason, message: ev.error?.message });
        showAuth();
      } else if (ev.reason === "blocked") {
        showError({ code: "blocked" });
      }
      break;
    default:
      ui.conn.textContent = "offline";
  }
});

tg.on("error", (err) => {
  // Reconnect causes ride on the state event; these are refusals.
  showError(err);
});

// ---- rooms and messages -----------------------------------------------------

function roomsKey() {
  return "tollgate.rooms." + (tg.user?.anonymous ? "guest" : tg.user?.name ?? "");
}

function saveRooms() {
  try {
    localStorage.setItem(roomsKey(), JSON.stringify([...rooms.keys()]));
  } catch {
    // storage may be off; rooms are then not remembered
  }
}

/** @returns {string[]} */
function savedRooms() {
  try {
    const v = JSON.parse(localStorage.getItem(roomsKey()) ?? "[]");
    return Array.isArray(v) ? v.filter((x) => typeof x === "string") : [];
  } catch {
    return [];
  }
}

/** @param {string} name */
function addRoom(name) {
  let r = rooms.get(name);
  if (r) return r;
  const list = document.createElement("ol");
  list.className = "messages";
  list.dataset.room = name;
  list.hidden = true;
  ui.lists.append(list);
  const item = document.createElement("li");
  const btn = document.createElement("button");
  btn.type = "button";
  btn.className = "room-button";
  btn.dataset.room = name;
  btn.textContent = "#" + name;
  const badge = document.createElement("span");
  badge.className = "badge";
  badge.hidden = true;
  btn.append(badge);
  btn.addEventListener("click", () => selectRoom(name));
  item.append(btn);
  ui.roomList.append(item);
  r = { list, item, unread: 0 };
  rooms.set(name, r);
  saveRooms();
  return r;
}

/** @param {string} name */
function removeRoom(name) {
  const r = rooms.get(name);
  if (!r) return;
  r.list.remove();
  r.item.remove();
  rooms.delete(name);
  saveRooms();
  if (current === name) selectRoom(rooms.keys().next().value ?? null);
}

/** @param {string|null} name */
function selectRoom(name) {
  current = name;
  for (const [n, r] of rooms) {
    const on = n === name;
    r.list.hidden = !on;
    r.item.classList.toggle("active", on);
    if (on) {
      r.unread = 0;
      const badge = /** @type {HTMLElement} */ (r.item.querySelector(".badge"));
      badge.hidden = true;
      r.list.scrollTop = r.list.scrollHeight;
    }
  }
  ui.roomTitle.textContent = name ? "#" + name : "No room";
  ui.leave.hidden = !name;
  const input = /** @type {HTMLInputElement} */ (ui.sendForm.elements.namedItem("text"));
  input.disabled = !name;
  if (name) input.focus();
}

/**
 * @param {string} name
 * @param {{focus?: boolean}} [o]
 */
async function joinRoom(name, o = {}) {
  addRoom(name);
  if (o.focus || !current) selectRoom(name);
  try {
    await tg.join(name);
  } catch (err) {
    const e = /** @type {any} */ (err);
    if (e?.code === "closed" || e?.code === "disconnected") return;
    removeRoom(name);
    showError(e);
  }
}

/** @param {string} iso */
function timeOf(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

/** @param {import("/sdk/tollgate.js").Message} m */
function renderMessage(m) {
  const li = document.createElement("li");
  li.className = "msg";
  li.dataset.id = String(m.id);
  if (m.from?.id === tg.user?.id) li.classList.add("own");
  const from = document.createElement("span");
  from.className = "from";
  from.textContent = m.from?.name ?? "?";
  const time = document.createElement("time");
  time.dateTime = m.ts;
  time.textContent = timeOf(m.ts);
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = m.text; // text, never HTML
  li.append(from, time, text);
  return li;
}

tg.on("message", (m) => {
  const r = rooms.get(m.room);
  if (!r) return;
  const atBottom = r.list.scrollHeight - r.list.scrollTop - r.list.clientHeight < 40;
  const li = renderMessage(m);
  // Pending copies of own messages stay last until acknowledged.
  const firstPending = r.list.querySelector("li.pending");
  r.list.insertBefore(li, firstPending);
  if (m.room !== current && m.from?.id !== tg.user?.id) {
    r.unread++;
    const badge = /** @type {HTMLElement} */ (r.item.querySelector(".badge"));
    badge.textContent = String(r.unread);
    badge.hidden = false;
  } else if (atBottom) {
    r.list.scrollTop = r.list.scrollHeight;
  }
});

// ---- screens ----------------------------------------------------------------

function showAuth() {
  ui.loading.hidden = true;
  ui.chat.hidden = true;
  ui.auth.hidden = false;
  ui.logout.hidden = true;
  ui.who.textContent = "";
  for (const name of [...rooms.keys()]) {
    const r = rooms.get(name);
    r?.list.remove();
    r?.item.remove();
    rooms.delete(name);
  }
  // The next login may be someone else: the SDK must not rejoin these rooms.
  // (Offline, leave only forgets the room.)
  for (const name of tg.rooms) tg.leave(name).catch(() => {});
  current = null;
  const u = /** @type {HTMLInputElement} */ (ui.loginForm.elements.namedItem("username"));
  u.focus();
}

async function startChat() {
  ui.loading.hidden = true;
  ui.auth.hidden = true;
  ui.chat.hidden = false;
  ui.logout.hidden = false;
  const user = tg.user;
  ui.who.textContent = user ? (user.anonymous ? `${user.name} (guest)` : user.name) : "";
  selectRoom(null);
  const want = savedRooms();
  if (want.length === 0) want.push(user?.anonymous ? "lobby" : "general");
  for (const name of want) joinRoom(name);
  try {
    const u = await tg.connect();
    ui.who.textContent = u.anonymous ? `${u.name} (guest)` : u.name;
  } catch (err) {
    const e = /** @type {any} */ (err);
    if (e?.code === "closed") return;
    showError(e);
    if (e?.code === "unauthenticated") showAuth();
  }
}

/** @param {HTMLFormElement} form */
function credentials(form) {
  const data = new FormData(form);
  return { username: String(data.get("username") ?? "").trim(), password: String(data.get("password") ?? "") };
}

/**
 * @param {HTMLFormElement} form
 * @param {() => Promise<void>} action
 */
function onSubmit(form, action) {
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const button = /** @type {HTMLButtonElement} */ (form.querySelector("button[type=submit]"));
    button.disabled = true;
    try {
      await action();
    } catch (err) {
      showError(err);
    } finally {
      button.disabled = false;
    }
  });
}

onSubmit(ui.loginForm, async () => {
  const c = credentials(ui.loginForm);
  await tg.login(c.username, c.password);
  ui.loginForm.reset();
  hideBanner();
  await startChat();
});

onSubmit(ui.registerForm, async () => {
  const c = credentials(ui.registerForm);
  await tg.register(c.username, c.password);
  await tg.login(c.username, c.password);
  ui.registerForm.reset();
  hideBanner();
  await startChat();
});

ui.guest.addEventListener("click", async () => {
  ui.guest.disabled = true;
  try {
    await tg.anonymous();
    hideBanner();
    await startChat();
  } catch (err) {
    const e = /** @type {any} */ (err);
    if (e?.code === "forbidden" || e?.status === 404) showBanner("Guest access is off on this server.", "error", e.code);
    else showError(e);
  } finally {
    ui.guest.disabled = false;
  }
});

ui.logout.addEventListener("click", async () => {
  try {
    await tg.logout();
  } catch (err) {
    // The cookies are cleared by the server even when the session was gone.
    const e = /** @type {any} */ (err);
    if (e?.status !== 401) showError(e);
  }
  hideBanner();
  showAuth();
});

onSubmit(ui.joinForm, async () => {
  const input = /** @type {HTMLInputElement} */ (ui.joinForm.elements.namedItem("room"));
  const name = input.value.trim().toLowerCase();
  if (!name) return;
  input.value = "";
  await joinRoom(name, { focus: true });
});

ui.leave.addEventListener("click", async () => {
  const name = current;
  if (!name) return;
  removeRoom(name);
  try {
    await tg.leave(name);
  } catch (err) {
    const e = /** @type {any} */ (err);
    if (e?.code !== "disconnected") showError(e);
  }
});

ui.sendForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  const input = /** @type {HTMLInputElement} */ (ui.sendForm.elements.namedItem("text"));
  const text = input.value;
  const room = current;
  if (!room || !text.trim()) return;
  input.value = "";
  const r = rooms.get(room);
  if (!r) return;
  // Shown as pending until the server acknowledges it; the message itself
  // arrives as a "message" event like everyone else's.
  const li = document.createElement("li");
  li.className = "msg own pending";
  const from = document.createElement("span");
  from.className = "from";
  from.textContent = tg.user?.name ?? "me";
  const state = document.createElement("time");
  state.textContent = "sending…";
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  li.append(from, state, body);
  r.list.append(li);
  r.list.scrollTop = r.list.scrollHeight;
  tg.publish(room, text).then(
    () => li.remove(),
    (err) => {
      li.classList.remove("pending");
      li.classList.add("failed");
      state.textContent = "not sent";
      li.title = describe(err);
      if (err?.code !== "closed") showError(err);
    },
  );
});

// ---- start --------------------------------------------------------------------

async function boot() {
  try {
    const user = await tg.me();
    if (user) await startChat();
    else showAuth();
  } catch (err) {
    ui.loading.textContent = "Cannot reach the server; trying again…";
    showError(err);
    setTimeout(boot, 3000);
  }
}

boot();
