// The auditor's checks, done here in the browser with WebCrypto and trusting nothing the server says about the
// result: RFC 8785 canonical JSON, SHA-256 leaf and chain hashes, RFC 6962 inclusion proofs, Ed25519 signatures.

const encoder = new TextEncoder();

export function hexToBytes(hex) {
  if (typeof hex !== "string" || !/^([0-9a-f]{2})*$/i.test(hex)) throw new Error("not hex");
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i += 1) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function bytesToHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function base64ToBytes(text) {
  const raw = atob(String(text).trim());
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

export function bytesToBase64(bytes) {
  return btoa(String.fromCharCode(...bytes));
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

// RFC 8785 (JCS): object members sorted by their UTF-16 code units, no whitespace, strings and numbers as
// ECMAScript's JSON.stringify writes them (which is what JCS specifies). Amounts are integers below 2^53.
export function canonical(value) {
  if (value === null || typeof value === "boolean" || typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new Error("JCS has no spelling for a non-finite number");
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (typeof value === "object") {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(",")}}`;
  }
  throw new Error(`JCS cannot write a ${typeof value}`);
}

// The transaction as the hashes cover it: as served, without its `hash` and `prev_hash`.
export function canonicalTransaction(tx) {
  const { hash: _hash, prev_hash: _prev, ...rest } = tx;
  return encoder.encode(canonical(rest));
}

export async function leafHash(canonicalBytes) {
  return sha256(concat(new Uint8Array([0]), canonicalBytes));
}

export async function chainHash(prevHashHex, canonicalBytes) {
  return sha256(concat(hexToBytes(prevHashHex), canonicalBytes));
}

async function nodeHash(left, right) {
  return sha256(concat(new Uint8Array([1]), left, right));
}

// RFC 9162 §2.1.3.2 (the RFC 6962 tree): the root that the audit path leads to from leaf `index` of `size`.
export async function rootFromInclusionProof(index, size, leaf, path) {
  if (!(index >= 0 && index < size)) throw new Error("the leaf index is outside the tree");
  let fn = BigInt(index);
  let sn = BigInt(size - 1);
  let r = leaf;
  for (const hex of path) {
    const p = hexToBytes(hex);
    if (p.length !== 32) throw new Error("a path node is not 32 bytes");
    if (sn === 0n) throw new Error("the path is longer than the tree is deep");
    if ((fn & 1n) === 1n || fn === sn) {
      r = await nodeHash(p, r);
      if ((fn & 1n) === 0n) {
        while ((fn & 1n) === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new Error("the path is shorter than the tree is deep");
  return r;
}

// A checkpoint body is the three lines `<origin>\n<tree_size>\n<base64 root>\n` (C2SP checkpoint text).
export function parseCheckpointBody(body) {
  const lines = String(body).split("\n");
  if (lines.length !== 4 || lines[3] !== "" || !/^[1-9][0-9]*$/.test(lines[1])) throw new Error("not a checkpoint body");
  const root = base64ToBytes(lines[2]);
  if (root.length !== 32) throw new Error("the root is not 32 bytes");
  return { origin: lines[0], treeSize: Number(lines[1]), root };
}

export async function verifyEd25519(publicKeyBytes, signatureBytes, messageBytes) {
  if (publicKeyBytes.length !== 32) throw new Error("an Ed25519 public key is 32 bytes");
  const key = await crypto.subtle.importKey("raw", publicKeyBytes, { name: "Ed25519" }, false, ["verify"]);
  return crypto.subtle.verify({ name: "Ed25519" }, key, signatureBytes, messageBytes);
}

export async function fingerprint(publicKeyBytes) {
  return bytesToHex(await sha256(publicKeyBytes)).slice(0, 16);
}

export function utf8(text) {
  return encoder.encode(text);
}
