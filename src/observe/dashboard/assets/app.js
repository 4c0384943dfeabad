// dropreel dashboard: one EventSource; every change of the studio arrives as a "state" event.
// The page draws it, keeping what did not change (a playing video keeps playing).
"use strict";

const $ = (id) => document.getElementById(id);
let state = null;
let clockOffset = 0; // server time - local time, for elapsed times
let ticker = null;

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = text;
  return e;
}

function duration(s) {
  s = Math.max(0, Math.round(s));
  if (s < 60) return s + "s";
  const m = Math.floor(s / 60);
  if (m < 60) return m + "m " + String(s % 60).padStart(2, "0") + "s";
  return Math.floor(m / 60) + "h " + String(m % 60).padStart(2, "0") + "m";
}

// Keeps the children of `box` in the order of `items`, made by `make` and updated by `update`,
// keyed by `key` (an element is reused while its key stays).
function keyed(box, items, key, make, update) {
  const old = new Map();
  for (const c of Array.from(box.children)) old.set(c.dataset.key, c);
  let at = 0;
  for (const item of items) {
    const k = key(item);
    let node = old.get(k);
    if (node) old.delete(k);
    else { node = make(item); node.dataset.key = k; }
    update(node, item);
    if (box.children[at] !== node) box.insertBefore(node, box.children[at] || null);
    at++;
  }
  for (const gone of old.values()) gone.remove();
}

// What a refusal says, whatever its form: the "error" of a JSON answer, else its plain text
// (a 401 or 403 of the dashboard, or of a proxy in front), else its HTTP status.
function refusal(status, text) {
  try {
    const error = JSON.parse(text).error;
    if (error) return String(error);
  } catch (_) { /* not JSON */ }
  const plain = (text || "").trim();
  return plain ? plain.slice(0, 300) : "HTTP " + status;
}

function credits(n) {
  return n === null || n === undefined ? "–" : String(n);
}

function draw(s) {
  state = s;
  clockOffset = s.now_ms - Date.now();
  $("backend").textContent = s.backend === "local" ? "local renderer" : "Runway";

  const hold = $("hold");
  hold.hidden = !s.hold;
  if (s.hold) {
    $("hold-text").textContent = s.hold.text;
    $("hold-detail").textContent = s.hold.detail;
    $("hold-next").textContent = s.hold.next_try;
  }

  const t = s.totals;
  $("n-flight").textContent = s.jobs.length;
  $("n-waiting").textContent = t.waiting;
  $("n-done").textContent = t.done;
  $("n-failed").textContent = t.failed;
  $("eta").textContent = t.eta_s === null ? "–" : duration(t.eta_s);
  const b = s.budget;
  $("spend-today").textContent = credits(b.today);
  $("spend-today-of").textContent = b.daily_limit ? "of " + b.daily_limit + " credits today" : "credits today";
  $("spend-month").textContent = credits(b.month);
  $("spend-month-of").textContent = b.monthly_limit ? "of " + b.monthly_limit + " credits this month" : "credits this month";
  // The organisation's balance and each model's limits, as Runway last said (none: not known).
  const o = s.organization;
  $("org").hidden = !o;
  if (o) {
    $("org-balance").textContent = o.balance === null ? "?" : o.balance;
    const lim = (v) => (v === null ? "?" : v === "unlimited" ? "no limit" : v);
    $("org-limits").textContent = o.models
      .map((m) => m.model + ": " + lim(m.at_once) + " at once, " + (m.used === null ? "?" : m.used) + " of " + lim(m.daily) + " today")
      .join("; ");
  }

  keyed($("inflight"), s.jobs, (j) => j.id, makeJob, updateJob);
  $("inflight-empty").hidden = s.jobs.length > 0;

  // Files not whole yet first (a path under inbox/ never starts with "/", so their keys are apart).
  const waiting = s.not_whole.map((f) => ({ key: "/" + f.file, f }));
  for (const n of s.waiting) waiting.push({ key: n, n });
  const more = t.waiting - s.waiting.length;
  if (more > 0) waiting.push({ key: "+more", n: "+" + more + " more" });
  keyed($("waiting"), waiting, (w) => w.key, makeWaiting, updateWaiting);
  $("waiting-empty").hidden = waiting.length > 0;

  keyed($("results"), s.results, (r) => r.job, makeResult, () => {});
  $("results-empty").hidden = s.results.length > 0;

  keyed($("failed"), s.failed, (f) => f.job, makeFailure, updateFailure);
  $("failed-empty").hidden = s.failed.length > 0;

  tick();
  if (s.jobs.length && !ticker) ticker = setInterval(tick, 1000);
  if (!s.jobs.length && ticker) { clearInterval(ticker); ticker = null; }
}

function makeJob() {
  const li = el("li", "job");
  li.append(el("span", "name"), el("span", "kind"));
  const mid = el("div");
  const bar = el("div", "bar");
  bar.append(el("span"));
  mid.append(el("span", "step"), bar);
  li.append(mid, el("span", "elapsed"));
  return li;
}

function updateJob(li, j) {
  li.dataset.id = j.id;
  li.dataset.started = j.started_ms;
  li.querySelector(".name").textContent = j.name;
  li.querySelector(".name").title = j.name;
  li.querySelector(".kind").textContent = j.kind;
  const pct = j.progress === null ? null : Math.round(j.progress * 100);
  li.querySelector(".step").textContent = pct === null ? j.step : j.step + " · " + pct + "%";
  const bar = li.querySelector(".bar");
  bar.classList.toggle("busy", pct === null);
  bar.firstChild.style.width = pct === null ? "" : pct + "%";
  bar.dataset.progress = pct === null ? "" : String(pct);
}

function makeWaiting(w) {
  if (!w.f) return el("li", "", w.n);
  const li = el("li", "not-whole");
  li.append(el("span", "name"), el("span", "why"));
  return li;
}

function updateWaiting(li, w) {
  if (!w.f) return;
  li.querySelector(".name").textContent = w.f.file;
  li.querySelector(".name").title = w.f.file;
  li.querySelector(".why").textContent =
    "not whole yet: " + w.f.why + "; goes to failed/ at " + w.f.gives_up_at + " unless the rest of it arrives";
}

function tick() {
  const now = Date.now() + clockOffset;
  for (const li of $("inflight").children) {
    li.querySelector(".elapsed").textContent = duration((now - Number(li.dataset.started)) / 1000);
  }
}

function makeResult(r) {
  const card = el("article", "card");
  card.dataset.job = r.job;
  const frame = el("div", "frame");
  const takes = el("div", "takes");
  // The poster is a button (Tab reaches it, Enter or Space plays); the player then takes the focus.
  const show = (take) => {
    const play = el("button", "start");
    play.type = "button";
    play.setAttribute("aria-label", "play " + take.name);
    if (take.poster) {
      const img = el("img", "poster");
      img.src = take.poster;
      img.alt = "";
      img.loading = "lazy";
      play.append(img, el("span", "play", "▶"));
    } else {
      play.append(el("span", "none", "▶ " + take.name));
    }
    play.onclick = () => {
      const v = el("video");
      v.src = take.video;
      v.controls = true;
      v.autoplay = true;
      v.playsInline = true;
      v.tabIndex = 0;
      v.setAttribute("aria-label", take.name);
      frame.replaceChildren(v);
      v.focus();
    };
    frame.replaceChildren(play);
  };
  if (r.takes.length > 1) {
    r.takes.forEach((take, i) => {
      const b = el("button", "", "take " + (i + 1));
      b.onclick = () => show(take);
      takes.append(b);
    });
  }
  if (r.takes.length) show(r.takes[0]);
  const meta = el("div", "meta");
  const name = el("span", "name", r.file);
  name.title = r.file;
  const info = [r.kind, r.model || "local renderer", r.credits === null ? null : r.credits + " credits"].filter(Boolean).join(" · ");
  meta.append(name, el("span", "info", info));
  if (r.prompt) meta.append(el("span", "prompt", r.prompt));
  card.append(frame);
  if (r.takes.length > 1) card.append(takes);
  card.append(meta);
  return card;
}

function makeFailure(f) {
  const box = el("article", "failure");
  box.dataset.job = f.job;
  const retry = el("button", "retry", "Retry");
  retry.onclick = async () => {
    retry.disabled = true;
    const note = box.querySelector(".note");
    note.textContent = "";
    try {
      const r = await fetch("/api/retry/" + encodeURIComponent(f.job), { method: "POST" });
      if (r.ok) {
        note.textContent = "back in inbox/";
        box.classList.add("retried");
      } else {
        note.textContent = "could not retry: " + refusal(r.status, await r.text());
        retry.disabled = false;
      }
    } catch (e) {
      note.textContent = "the dashboard cannot be reached: " + e.message;
      retry.disabled = false;
    }
  };
  box.append(el("span", "name"), retry, el("span", "error"), el("span", "note"));
  return box;
}

function updateFailure(box, f) {
  box.querySelector(".name").textContent = f.file;
  box.querySelector(".error").textContent = f.error;
}

// Uploads: each file streams into inbox/ under a temp name, then takes its own.
function upload(file) {
  const li = el("li", "", file.name + ": uploading…");
  $("uploads").prepend(li);
  if (state && file.size > state.max_upload) {
    li.className = "bad";
    li.textContent = file.name + ": larger than the dashboard takes; copy it into inbox/ instead";
    return;
  }
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/api/upload?name=" + encodeURIComponent(file.name));
  xhr.upload.onprogress = (e) => {
    if (e.lengthComputable) li.textContent = file.name + ": " + Math.round((100 * e.loaded) / e.total) + "%";
  };
  xhr.onload = () => {
    if (xhr.status === 201) {
      li.className = "ok";
      li.textContent = file.name + ": in inbox/";
    } else {
      li.className = "bad";
      li.textContent = file.name + ": " + refusal(xhr.status, xhr.responseText);
    }
  };
  xhr.onerror = () => {
    li.className = "bad";
    li.textContent = file.name + ": the dashboard cannot be reached";
  };
  xhr.send(file);
}

function setup() {
  const drop = $("drop");
  const input = $("upload-input");
  // The drop zone by keyboard: Enter or Space opens the file chooser, as a click does.
  drop.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      input.click();
    }
  });
  input.addEventListener("change", () => {
    for (const f of input.files) upload(f);
    input.value = "";
  });
  for (const ev of ["dragenter", "dragover"]) {
    drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const ev of ["dragleave", "drop"]) {
    drop.addEventListener(ev, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    for (const f of e.dataTransfer.files) upload(f);
  });

  const link = $("link");
  const events = new EventSource("/events");
  events.addEventListener("state", (e) => {
    if (!state) performance.mark("dropreel-first-state");
    link.textContent = "live";
    link.className = "pill on";
    draw(JSON.parse(e.data));
  });
  events.onerror = () => {
    link.textContent = "reconnecting…";
    link.className = "pill off";
  };
}

setup();
