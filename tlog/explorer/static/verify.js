// In-browser check of one log entry against the signed checkpoint on its page.
//
// Reads the JSON in #verify-data (body, proof, checkpoint, log keys) when the
// button is pressed and, with WebCrypto only:
//   1. recomputes the RFC 6962 leaf hash SHA-256(0x00 || body);
//   2. parses the checkpoint note (origin, size, root) and checks origin and size;
//   3. folds the inclusion proof into a root (RFC 9162 section 2.1.3.2) and
//      compares it with the checkpoint's root;
//   4. verifies the checkpoint's ECDSA P-256 signature line (key ID =
//      SHA-256(SPKI)[:4]) with the log's SubjectPublicKeyInfo;
//   5. verifies the Ed25519 signature line (key ID = SHA-256(name \n 0x01 key)[:4])
//      where the browser's WebCrypto has Ed25519; otherwise says it skipped it.
// Each step is listed in #verify-steps; the outcome is #verify-outcome, whose
// data-status ends as "ok" or "fail". No network requests; no innerHTML.
(function () {
  "use strict";

  var OK = "\u2713", FAIL = "\u2717", SKIP = "\u2013";
  var encoder = new TextEncoder();

  function b64decode(text) {
    if (typeof text !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) {
      throw new Error("not standard base64");
    }
    var bin = atob(text);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  function hexdecode(text) {
    if (typeof text !== "string" || !/^(?:[0-9a-fA-F]{2})*$/.test(text)) throw new Error("not hex: " + String(text).slice(0, 20));
    var out = new Uint8Array(text.length / 2);
    for (var i = 0; i < out.length; i++) out[i] = parseInt(text.substr(2 * i, 2), 16);
    return out;
  }

  function hex(bytes) {
    return Array.prototype.map.call(bytes, function (b) { return b.toString(16).padStart(2, "0"); }).join("");
  }

  function concat() {
    var total = 0, i;
    for (i = 0; i < arguments.length; i++) total += arguments[i].length;
    var out = new Uint8Array(total), offset = 0;
    for (i = 0; i < arguments.length; i++) { out.set(arguments[i], offset); offset += arguments[i].length; }
    return out;
  }

  function equal(a, b) {
    if (a.length !== b.length) return false;
    var diff = 0;
    for (var i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
    return diff === 0;
  }

  async function sha256(bytes) {
    return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  }

  function leafHash(body) { return sha256(concat(Uint8Array.of(0), body)); }
  function nodeHash(left, right) { return sha256(concat(Uint8Array.of(1), left, right)); }

  // RFC 9162 section 2.1.3.2: the root an inclusion proof implies.
  async function rootFromInclusionProof(index, size, leaf, proof) {
    if (!(Number.isSafeInteger(index) && Number.isSafeInteger(size) && index >= 0 && index < size)) {
      throw new Error("log index " + index + " is not below tree size " + size);
    }
    // BigInt: tree sizes may exceed 2^32, where JS bit operators break.
    var fn = BigInt(index), sn = BigInt(size - 1), r = leaf;
    for (var i = 0; i < proof.length; i++) {
      var p = proof[i];
      if (p.length !== 32) throw new Error("proof hash " + i + " is not 32 bytes");
      if (sn === 0n) throw new Error("the proof is longer than the tree is deep");
      if ((fn & 1n) === 1n || fn === sn) {
        r = await nodeHash(p, r);
        if ((fn & 1n) === 0n) {
          while (fn !== 0n && (fn & 1n) === 0n) { fn >>= 1n; sn >>= 1n; }
        }
      } else {
        r = await nodeHash(r, p);
      }
      fn >>= 1n; sn >>= 1n;
    }
    if (sn !== 0n) throw new Error("the proof is shorter than the tree is deep");
    return r;
  }

  // A C2SP signed note: text (ending in \n), a blank line, signature lines.
  function parseCheckpoint(note) {
    if (typeof note !== "string" || !note.endsWith("\n")) throw new Error("the checkpoint does not end in a newline");
    var split = note.lastIndexOf("\n\n");
    if (split < 0) throw new Error("the checkpoint has no blank line before its signatures");
    var text = note.slice(0, split + 1);
    var lines = text.split("\n").slice(0, -1);
    if (lines.length < 3) throw new Error("the checkpoint text has fewer than three lines");
    if (!/^(0|[1-9][0-9]*)$/.test(lines[1])) throw new Error("bad tree size line " + JSON.stringify(lines[1]));
    var root = b64decode(lines[2]);
    if (root.length !== 32) throw new Error("the root hash is not 32 bytes");
    var signatures = note.slice(split + 2, -1).split("\n").map(function (line) {
      var m = /^\u2014 (\S+) ([A-Za-z0-9+/=]+)$/.exec(line);
      if (!m) throw new Error("bad signature line " + JSON.stringify(line.slice(0, 60)));
      var raw = b64decode(m[2]);
      if (raw.length <= 4) throw new Error("signature line too short");
      return { name: m[1], keyId: raw.slice(0, 4), sig: raw.slice(4) };
    });
    return { text: encoder.encode(text), origin: lines[0], size: lines[1], root: root, signatures: signatures };
  }

  // DER ECDSA-Sig-Value SEQUENCE { r INTEGER, s INTEGER } -> r || s, each `size` bytes.
  function derToRaw(der, size) {
    var pos = 0;
    function readLength() {
      var first = der[pos++];
      if (first === undefined) throw new Error("truncated DER signature");
      if (first < 0x80) return first;
      var n = first & 0x7f;
      if (n < 1 || n > 2) throw new Error("bad DER length");
      var len = 0;
      for (var i = 0; i < n; i++) {
        if (pos >= der.length) throw new Error("truncated DER signature");
        len = (len << 8) | der[pos++];
      }
      return len;
    }
    function readInteger() {
      if (der[pos++] !== 0x02) throw new Error("DER signature: expected an INTEGER");
      var len = readLength();
      if (len < 1 || pos + len > der.length) throw new Error("DER signature: bad INTEGER length");
      var value = der.slice(pos, pos + len);
      pos += len;
      if (value[0] & 0x80) throw new Error("DER signature: negative INTEGER");
      var start = 0;
      while (start < value.length - 1 && value[start] === 0) start++;
      value = value.slice(start);
      if (value.length > size) throw new Error("DER signature: INTEGER too large");
      var out = new Uint8Array(size);
      out.set(value, size - value.length);
      return out;
    }
    if (der[pos++] !== 0x30) throw new Error("DER signature: expected a SEQUENCE");
    var seqLen = readLength();
    if (pos + seqLen !== der.length) throw new Error("DER signature: trailing or missing bytes");
    var r = readInteger(), s = readInteger();
    if (pos !== der.length) throw new Error("DER signature: trailing bytes");
    return concat(r, s);
  }

  async function ed25519KeyId(name, rawKey) {
    var digest = await sha256(concat(encoder.encode(name), Uint8Array.of(0x0a, 0x01), rawKey));
    return digest.slice(0, 4);
  }

  // --- page --------------------------------------------------------------------------

  function addStep(list, mark, text) {
    var li = document.createElement("li");
    li.className = mark === OK ? "ok" : mark === FAIL ? "fail" : "skip";
    var symbol = document.createElement("span");
    symbol.className = "mark";
    symbol.textContent = mark;
    li.appendChild(symbol);
    li.appendChild(document.createTextNode(" " + text));
    list.appendChild(li);
  }

  async function run(button) {
    var list = document.getElementById("verify-steps");
    var outcome = document.getElementById("verify-outcome");
    list.textContent = "";
    outcome.dataset.status = "running";
    outcome.className = "";
    outcome.textContent = "Verifying\u2026";
    button.disabled = true;
    var failed = false;
    function step(ok, text) { addStep(list, ok ? OK : FAIL, text); if (!ok) failed = true; return ok; }
    try {
      if (!window.crypto || !crypto.subtle) {
        throw new Error("WebCrypto is not available: the page must be loaded over HTTPS (or from localhost)");
      }
      var data = JSON.parse(document.getElementById("verify-data").textContent);
      var body = b64decode(data.body);
      var proof = data.proof.map(hexdecode);

      var leaf = await leafHash(body);
      step(equal(leaf, hexdecode(data.leafHash)),
        "Leaf hash SHA-256(0x00 \u2016 body) of the " + body.length + "-byte body is " + hex(leaf) +
        (equal(leaf, hexdecode(data.leafHash)) ? ", as in the entry UUID" : ", but the entry says " + data.leafHash));

      var cp = parseCheckpoint(data.checkpoint);
      step(cp.origin === data.origin, "Checkpoint origin is " + JSON.stringify(cp.origin) +
        (cp.origin === data.origin ? "" : ", not this log's " + JSON.stringify(data.origin)));
      step(cp.size === String(data.treeSize), "Checkpoint tree size " + cp.size +
        (cp.size === String(data.treeSize) ? " matches the proof's tree size" : " differs from the proof's tree size " + data.treeSize));

      var root = await rootFromInclusionProof(data.logIndex, data.treeSize, leaf, proof);
      step(equal(root, cp.root), "Inclusion proof (" + proof.length + " hash" + (proof.length === 1 ? "" : "es") +
        ") for index " + data.logIndex + " folds to root " + hex(root) +
        (equal(root, cp.root) ? ", the checkpoint's root" : ", but the checkpoint's root is " + hex(cp.root)));

      // ECDSA P-256: the Rekor v1 signature line, key ID = SHA-256(SPKI)[:4].
      var spki = b64decode(data.ecdsaSpki);
      var ecdsaId = (await sha256(spki)).slice(0, 4);
      var ecdsaLine = cp.signatures.find(function (s) { return s.name === data.origin && equal(s.keyId, ecdsaId); });
      if (step(!!ecdsaLine, "Found the ECDSA signature line of " + data.origin + " (key ID " + hex(ecdsaId) + ")")) {
        var ecKey = await crypto.subtle.importKey("spki", spki, { name: "ECDSA", namedCurve: "P-256" }, false, ["verify"]);
        var rawSig = derToRaw(ecdsaLine.sig, 32);
        var ecOk = await crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, ecKey, rawSig, cp.text);
        step(ecOk, "ECDSA P-256 checkpoint signature " + (ecOk ? "verifies" : "does NOT verify") + " with the log key");
      }

      // Ed25519: the C2SP signature line, if this browser's WebCrypto can check it.
      var edRaw = b64decode(data.ed25519);
      var edId = await ed25519KeyId(data.origin, edRaw);
      var edLine = cp.signatures.find(function (s) { return s.name === data.origin && equal(s.keyId, edId); });
      var edKey = null;
      try {
        edKey = await crypto.subtle.importKey("raw", edRaw, { name: "Ed25519" }, false, ["verify"]);
      } catch (e) {
        addStep(list, SKIP, "Ed25519 signature not checked: this browser's WebCrypto has no Ed25519");
      }
      if (edKey !== null) {
        if (step(!!edLine, "Found the Ed25519 signature line of " + data.origin + " (key ID " + hex(edId) + ")")) {
          var edOk = await crypto.subtle.verify({ name: "Ed25519" }, edKey, edLine.sig, cp.text);
          step(edOk, "Ed25519 checkpoint signature " + (edOk ? "verifies" : "does NOT verify") + " with the log key");
        }
      }

      var others = cp.signatures.filter(function (s) {
        return !(s.name === data.origin && (equal(s.keyId, ecdsaId) || equal(s.keyId, edId)));
      });
      if (others.length) {
        addStep(list, SKIP, others.length + " other signature line" + (others.length === 1 ? "" : "s") +
          " (witness cosignatures: " + others.map(function (s) { return s.name; }).join(", ") + ") not checked: no witness keys here");
      }
    } catch (err) {
      step(false, "Error: " + (err && err.message ? err.message : String(err)));
    }
    outcome.dataset.status = failed ? "fail" : "ok";
    outcome.className = failed ? "fail" : "ok";
    outcome.textContent = failed
      ? FAIL + " Verification FAILED: this entry is not proven to be in the log under the signed checkpoint."
      : OK + " Verified: the entry is included in the tree whose checkpoint the log key signed.";
    button.disabled = false;
  }

  function init() {
    var button = document.getElementById("verify-button");
    if (!button || !document.getElementById("verify-data")) return;
    button.hidden = false;
    button.addEventListener("click", function () { run(button); });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
