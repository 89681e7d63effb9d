// finetrail console: the reviewer's Ed25519 key lives in this browser only (WebCrypto,
// non-extractable, IndexedDB). The server sends the exact bytes to sign and never sees the key.
"use strict";

const DB_NAME = "finetrail-console";
const STORE = "keys";

function csrf() {
  const m = document.querySelector('meta[name="csrf-token"]');
  return m ? m.content : "";
}
function currentUser() {
  const m = document.querySelector('meta[name="console-user"]');
  return m ? m.content : "";
}
function b64(bytes) {
  let s = "";
  new Uint8Array(bytes).forEach((b) => { s += String.fromCharCode(b); });
  return btoa(s);
}
function unb64(text) {
  const s = atob(text);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}
async function hex(buffer) {
  const d = await crypto.subtle.digest("SHA-256", buffer);
  return Array.from(new Uint8Array(d)).map((b) => b.toString(16).padStart(2, "0")).join("");
}

function openDb() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}
async function dbOp(mode, fn) {
  const db = await openDb();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(STORE, mode);
    const req = fn(tx.objectStore(STORE));
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}
const loadKey = (name) => dbOp("readonly", (s) => s.get(name));
const saveKey = (name, pair) => dbOp("readwrite", (s) => s.put(pair, name));

async function ed25519Supported() {
  if (!window.crypto || !crypto.subtle) return false;
  try {
    await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
    return true;
  } catch (e) {
    return false;
  }
}
async function publicRaw(pair) {
  return new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
}

async function postJson(url, body) {
  const resp = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
    body: JSON.stringify(body),
  });
  let data = {};
  try { data = await resp.json(); } catch (e) { data = { error: "bad response" }; }
  return { status: resp.status, data };
}

// -- enrolment ---------------------------------------------------------------------------------
async function showKey(pair) {
  const raw = await publicRaw(pair);
  const pub = b64(raw);
  document.getElementById("enrol-public").textContent = pub;
  document.getElementById("enrol-keyid").textContent = await hex(raw);
  document.getElementById("enrol-snippet").textContent =
    "  - name: " + currentUser() + "\n    roles: [REVIEW-ROLE]\n    public_key: " + pub +
    "\n    not_before: YYYY-MM-DDT00:00:00Z\n    not_after: YYYY-MM-DDT00:00:00Z";
  document.getElementById("enrol-key").hidden = false;
  const r = await postJson("/enrol", { public_key: pub });
  document.getElementById("enrol-status").textContent = r.status === 200
    ? "Key enrolled on your account. An admin adds the entry below to the trust file's reviewers."
    : "Could not record the key: " + (r.data.error || r.status);
}
async function initEnrol() {
  const button = document.getElementById("enrol-generate");
  if (!button) return;
  const status = document.getElementById("enrol-status");
  if (!(await ed25519Supported())) {
    status.textContent = "This browser's WebCrypto has no Ed25519: it cannot hold a finetrail " +
      "signing key. Use a current Chromium or Firefox, or sign with `finetrail review approve`.";
    button.disabled = true;
    return;
  }
  const existing = await loadKey(currentUser());
  if (existing) {
    button.textContent = "Key present in this browser";
    await showKey(existing);
    return;
  }
  button.disabled = false;  // enabled once this listener is in place
  button.addEventListener("click", async () => {
    button.disabled = true;
    const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
    await saveKey(currentUser(), pair);
    button.textContent = "Key present in this browser";
    await showKey(pair);
  });
}

// -- sign-off ----------------------------------------------------------------------------------
function say(text, ok) {
  const el = document.getElementById("sign-result");
  el.textContent = text;
  el.className = ok ? "ok" : "bad";
}
async function prepare(form, pair) {
  const pub = b64(await publicRaw(pair));
  return postJson("/r/" + form.dataset.release + "/sign/prepare", {
    decision: form.decision.value, role: form.role.value, note: form.note.value, public_key: pub,
  });
}
async function signAndSend(form, pair, prepared) {
  const bytes = unb64(prepared.signing_bytes);
  const sig = b64(await crypto.subtle.sign({ name: "Ed25519" }, pair.privateKey, bytes));
  const extra = [];
  let nonce = prepared.nonce;
  for (let round = 0; round < 3; round++) {
    const r = await postJson("/r/" + form.dataset.release + "/sign/complete", {
      nonce, signature: sig, extra,
    });
    if (!(r.status === 409 && r.data.sign_more)) return r;
    // the commit also writes the log checkpoint after the review: sign it with the same key
    const message = unb64(r.data.sign_more);
    document.getElementById("sign-bytes").textContent += "\n\n" + new TextDecoder().decode(message);
    const more = await crypto.subtle.sign({ name: "Ed25519" }, pair.privateKey, message);
    extra.push({ message: r.data.sign_more, signature: b64(more) });
    nonce = r.data.nonce;
  }
  return { status: 409, data: { error: "the commit kept asking for signatures" } };
}
function showDialog(prepared) {
  const p = prepared.payload;
  const dl = document.getElementById("sign-summary");
  dl.replaceChildren();
  for (const k of ["decision", "reviewer", "role", "model", "version", "manifest_sha256", "note"]) {
    const dt = document.createElement("dt"); dt.textContent = k;
    const dd = document.createElement("dd"); dd.textContent = String(p[k]);
    dl.append(dt, dd);
  }
  document.getElementById("sign-seq").textContent = "#" + prepared.seq;
  document.getElementById("sign-bytes").textContent = new TextDecoder().decode(unb64(prepared.signing_bytes));
  document.getElementById("sign-dialog").hidden = false;
}
// what the reviewer looked at; the log checkpoint fields follow the ledger and may move on
function reviewed(p) {
  return JSON.stringify(["decision", "reviewer", "role", "note", "manifest_sha256", "model",
    "version", "keyid", "workspace_sha256"].map((k) => p[k]));
}
async function initSignoff() {
  const form = document.getElementById("signoff-form");
  if (!form) return;
  let pending = null;
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!(await ed25519Supported())) { say("This browser's WebCrypto has no Ed25519.", false); return; }
    const pair = await loadKey(currentUser());
    if (!pair) { say("No signing key in this browser: enrol one first (signing key page).", false); return; }
    const r = await prepare(form, pair);
    if (r.status !== 200) { say((r.data.error || r.status) + (r.data.why ? ": " + r.data.why : ""), false); return; }
    pending = { pair, prepared: r.data, payload: reviewed(r.data.payload) };
    showDialog(r.data);
  });
  document.getElementById("sign-cancel").addEventListener("click", () => {
    pending = null;
    document.getElementById("sign-dialog").hidden = true;
  });
  document.getElementById("sign-confirm").addEventListener("click", async () => {
    if (!pending) return;
    const { pair, payload } = pending;
    let prepared = pending.prepared;
    let lastWhy = "";
    for (let attempt = 0; attempt < 4; attempt++) {
      const r = await signAndSend(form, pair, prepared);
      if (r.status === 200) {
        say("Signed and recorded as ledger entry #" + r.data.seq + ".", true);
        document.getElementById("sign-dialog").hidden = true;
        // the page again, from the ledger: the server confirms the entry it recorded
        window.location.assign("/r/" + form.dataset.release + "?signed=" + r.data.seq + "#approvals");
        return;
      }
      lastWhy = r.data.why || "";
      if (!(r.status === 409 && r.data.retry)) {
        say((r.data.error || r.status) + (r.data.why ? ": " + r.data.why : ""), false);
        return;
      }
      // the ledger moved on (another event, or the clock's second): the same review, new bytes
      const again = await prepare(form, pair);
      if (again.status !== 200 || reviewed(again.data.payload) !== payload) {
        say("The release changed while signing: review it again.", false);
        return;
      }
      prepared = again.data;
    }
    say("The ledger kept moving: try again.", false);
    console.error("sign-off kept moving", lastWhy);
  });
  document.getElementById("sign-button").disabled = false;  // the handlers are in place
}

document.addEventListener("DOMContentLoaded", () => {
  initEnrol().catch((e) => { const s = document.getElementById("enrol-status"); if (s) s.textContent = String(e); });
  initSignoff().catch((e) => say(String(e), false));
});
