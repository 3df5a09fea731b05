#!/usr/bin/env node
// ws_load.mjs — XMPP over WebSocket (RFC 7395) load generator for `bench/load.ts` (scenarios
// `ws-idle` and `ws-msg`).
//
// Node.js >= 20, no npm dependencies, like ../shared/bench/xmppbench.mjs, which speaks only TCP:
// this file carries its own RFC 6455 client over node:net (the upgrade handshake, masked client
// frames, text frames, continuation frames on receipt, ping/pong, close), since Node 20 has no
// stable WebSocket client. XMPP on top follows RFC 7395: subprotocol `xmpp`, `<open/>` and
// `<close/>` in the urn:ietf:params:xml:ns:xmpp-framing namespace, one stanza per text frame,
// and a new `<open/>` after SASL. Login is xmppbench's (SASL SCRAM-SHA-1 or PLAIN, bind, optional
// session, roster get, presence, XEP-0199 ping barrier); so are the scenarios and the JSON
// fields they write (ok, ops, expected, rate_per_s, lat_ms.{p50,p99}, phase.{server_cpu_s,
// other_busy_cores}, cpu_us_per_op, kb_per_conn, rss_*_kb, hold_server_cpu_s, error/errors),
// so that load.ts reads both the same way:
//   login  L logins over WebSocket (load.ts uses it as the unrecorded warm-up)
//   idle   N sessions logged in and held: server RSS delta / N (kb_per_conn), from /proc
//   msg    P sender/receiver pairs, M chat messages each with at most W unacknowledged; the
//          receiver's XEP-0184 receipt is the ack: server utime+stime per message
//
// Output: one JSON line on stdout, then a human-readable line starting with "# ". Progress goes
// to stderr. `--help` lists the flags.

import net from "node:net";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import process from "node:process";
import { Buffer } from "node:buffer";
import { execFileSync } from "node:child_process";
import { performance } from "node:perf_hooks";

const VERSION = "1.0.0";

// [flag, default, description]; the type of the default is the type of the flag.
const OPTIONS = [
  ["scenario", "login", "login | idle | msg"],
  ["host", "127.0.0.1", "server address (loopback only unless --allow-remote)"],
  ["port", 5280, "HTTP port that serves the WebSocket endpoint"],
  ["path", "/xmpp-websocket", "WebSocket endpoint path"],
  ["domain", "localhost", "XMPP domain (<open to=/>)"],
  ["user-prefix", "bench", "accounts are <prefix><n>"],
  ["user-start", 1, "first <n>"],
  ["password", "benchpass", "password of every account"],
  ["mech", "PLAIN", "PLAIN | SCRAM-SHA-1"],
  ["resource", "wb", "resource prefix (a run id and index are appended)"],
  ["users", 500, "login/idle: number of accounts"],
  ["concurrency", 20, "logins in flight"],
  ["pairs", 20, "msg: P sender/receiver pairs (users 1..P send to P+1..2P)"],
  ["messages", 500, "msg: M messages per pair"],
  ["window", 10, "msg: unacked messages in flight per pair"],
  ["body-size", 64, "msg: approximate body length in characters"],
  ["hold", 10, "idle: seconds to hold the connections"],
  ["close-wait", 5, "idle: seconds to wait after closing before the last RSS sample"],
  ["roster-get", true, "fetch the roster during login, like a real client"],
  ["login-barrier", "ping", "ping | none: after initial presence, wait for an XEP-0199 ping reply"],
  ["server-pid", "", "comma-separated pids whose CPU/RSS is sampled"],
  ["label", "", "free text: which server, e.g. prosody-0.12.3"],
  ["tag", "", "free text: which variant/measurement"],
  ["timeout", 120, "hard timeout (s): the tool always exits by then"],
  ["step-timeout", 30, "per protocol step (s)"],
  ["quiesce-max", 15, "s to wait for the server to go idle before measuring"],
  ["quiesce-cores", 0.05, "server counts as idle below this many cores"],
  ["json-out", "", "also append the JSON line to this file"],
  ["allow-remote", false, "refuse non-loopback hosts unless set"],
  ["verbose", false, "dump the XML of the first connection to stderr"],
];
const DEFAULTS = Object.fromEntries(OPTIONS.map(([k, v]) => [k, v]));

const HELP = `ws_load ${VERSION} — XMPP over WebSocket (RFC 7395) load generator (no dependencies)

usage: node bench/ws_load.mjs --scenario login|idle|msg [flags]

${
  OPTIONS.map(([k, v, d]) =>
    `  --${k}${" ".repeat(Math.max(1, 17 - k.length))}${d} [${JSON.stringify(v)}]`
  )
    .join("\n")
}

Boolean flags take --no-<flag> to turn them off.
`;

function coerce(k, v) {
  const d = DEFAULTS[k];
  if (typeof d === "number") {
    const n = Number(v);
    if (!Number.isFinite(n)) throw new Error(`--${k}: not a number: ${v}`);
    return n;
  }
  if (typeof d === "boolean") return v === true || v === "true" || v === "1" || v === "yes";
  return String(v);
}

function parseArgs(argv) {
  const o = { ...DEFAULTS };
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i];
    if (a === "-h" || a === "--help") {
      process.stdout.write(HELP);
      process.exit(0);
    }
    if (!a.startsWith("--")) throw new Error(`unexpected argument ${a}`);
    a = a.slice(2);
    let v;
    const eq = a.indexOf("=");
    if (eq >= 0) {
      v = a.slice(eq + 1);
      a = a.slice(0, eq);
    }
    if (a.startsWith("no-") && typeof DEFAULTS[a.slice(3)] === "boolean") {
      o[a.slice(3)] = false;
      continue;
    }
    if (!(a in DEFAULTS)) throw new Error(`unknown flag --${a} (see --help)`);
    if (typeof DEFAULTS[a] === "boolean" && v === undefined) {
      const nx = argv[i + 1];
      if (nx === "true" || nx === "false") {
        v = nx;
        i++;
      } else v = "true";
    }
    if (v === undefined) {
      if (i + 1 >= argv.length) throw new Error(`flag --${a} needs a value`);
      v = argv[++i];
    }
    o[a] = coerce(a, v);
  }
  for (const k of ["users", "pairs", "messages", "window", "concurrency"]) {
    if (!Number.isInteger(o[k]) || o[k] < 1) throw new Error(`--${k}: expected a positive integer`);
  }
  if (!["login", "idle", "msg"].includes(o.scenario)) {
    throw new Error(`--scenario: expected login, idle or msg, not ${o.scenario}`);
  }
  return o;
}

// ------------------------------------------------------------- utilities --

const now = () => performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) =>
  process.stderr.write(`[ws_load ${new Date().toISOString().slice(11, 19)}] ${a.join(" ")}\n`);

const ESC = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" };
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ESC[c]);
const UNESC = { lt: "<", gt: ">", amp: "&", quot: '"', apos: "'" };
function unesc(s) {
  if (s.indexOf("&") === -1) return s;
  return s.replace(
    /&(?:#x([0-9a-fA-F]+)|#([0-9]+)|(lt|gt|amp|quot|apos));/g,
    (_m, hex, dec, name) =>
      hex
        ? String.fromCodePoint(parseInt(hex, 16))
        : dec
        ? String.fromCodePoint(parseInt(dec, 10))
        : UNESC[name],
  );
}

/** min/p50/p90/p99/max/mean of a sample, as xmppbench reports them. */
function stats(arr) {
  if (!arr.length) return { n: 0 };
  const s = Float64Array.from(arr).sort();
  const q = (p) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))];
  let sum = 0;
  for (const x of s) sum += x;
  const r3 = (x) => Math.round(x * 1000) / 1000;
  return {
    n: s.length,
    min: r3(s[0]),
    p50: r3(q(0.5)),
    p90: r3(q(0.9)),
    p99: r3(q(0.99)),
    max: r3(s[s.length - 1]),
    mean: r3(sum / s.length),
  };
}

function withTimeout(p, ms, what) {
  let t;
  return Promise.race([
    p,
    new Promise((_, rej) => {
      t = setTimeout(() => rej(new Error(`timeout: ${what} (${ms} ms)`)), ms);
    }),
  ]).finally(() => clearTimeout(t));
}

/**
 * Runs fn(i) for i in [0, n) with at most `conc` in flight; stops starting new work after
 * `deadline` (performance.now() ms), as xmppbench's pool does. fn handles its own errors.
 */
async function pool(n, conc, fn, deadline = Infinity) {
  let next = 0;
  async function worker() {
    while (next < n) {
      if (now() > deadline) return;
      await fn(next++);
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, Math.min(conc, n)) }, worker));
}

/** Distinct error texts with their counts, digits folded, at most 5 (xmppbench's summary). */
function errSummary(list) {
  const m = new Map();
  for (const e of list) {
    const k = String(e && e.message ? e.message : e).replace(/[0-9]+/g, "N").slice(0, 160);
    m.set(k, (m.get(k) || 0) + 1);
  }
  return [...m.entries()].map(([k, v]) => `${v}x ${k}`).slice(0, 5);
}

// ------------------------------------------------------ /proc sampling --

let CLK_TCK = 100;
try {
  CLK_TCK = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
} catch { /* the Linux default */ }

function procCpuSeconds(pids) {
  let ticks = 0;
  for (const pid of pids) {
    const s = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    ticks += Number(f[11]) + Number(f[12]); // utime, stime (fields 14, 15)
  }
  return ticks / CLK_TCK;
}

function procRssKb(pids) {
  let kb = 0;
  for (const pid of pids) {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
    if (m) kb += Number(m[1]);
  }
  return kb;
}

function hostCpu() {
  const l = fs.readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(
    Number,
  );
  const total = l.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = l[3] + (l[4] || 0);
  return { busy: (total - idle) / CLK_TCK, total: total / CLK_TCK };
}

function makeMeter(pids) {
  const snap = () => ({
    t: now(),
    server: pids.length ? procCpuSeconds(pids) : null,
    client: process.cpuUsage(),
    host: hostCpu(),
  });
  const diff = (a, b) => {
    const wall = (b.t - a.t) / 1000;
    const server = a.server === null ? null : b.server - a.server;
    const client = ((b.client.user - a.client.user) + (b.client.system - a.client.system)) / 1e6;
    const hostBusy = b.host.busy - a.host.busy;
    const r = (x, d = 3) => (x === null ? null : Math.round(x * 10 ** d) / 10 ** d);
    return {
      wall_s: r(wall),
      server_cpu_s: r(server),
      server_cores: server === null ? null : r(server / wall),
      client_cpu_s: r(client),
      host_busy_cores: r(hostBusy / wall),
      // CPU used by everything except the server and this tool during the phase.
      other_busy_cores: server === null ? null : r(Math.max(0, hostBusy - server - client) / wall),
    };
  };
  const rss = () => (pids.length ? procRssKb(pids) : null);
  // Waits until the server uses < `cores` CPU over 0.5 s, at most maxS s.
  const quiesce = async (maxS, cores) => {
    if (!pids.length) return null;
    const t0 = now();
    let rate = null;
    for (let i = 0; i < Math.max(1, Math.ceil(maxS / 0.5)); i++) {
      const a = procCpuSeconds(pids);
      await sleep(500);
      rate = (procCpuSeconds(pids) - a) / 0.5;
      if (rate < cores) break;
    }
    return { waited_s: Math.round(now() - t0) / 1000, last_cores: rate };
  };
  return { snap, diff, rss, quiesce };
}

// ------------------------------------------------------------ XML frames --

function makeEl(name, attrs) {
  const c = name.indexOf(":");
  const el = { name, local: c < 0 ? name : name.slice(c + 1), attrs, children: [], text: "" };
  el.child = (local, xmlns) =>
    el.children.find((x) => x.local === local && (!xmlns || x.attrs.xmlns === xmlns)) ??
      null;
  el.toString = () => {
    const a = Object.entries(el.attrs).map(([k, v]) => ` ${k}='${esc(v)}'`).join("");
    const inner = esc(el.text) + el.children.map(String).join("");
    return inner ? `<${el.name}${a}>${inner}</${el.name}>` : `<${el.name}${a}/>`;
  };
  return el;
}

const ATTR_RE = /([^\s=/>]+)\s*=\s*(?:"([^"]*)"|'([^']*)')/g;
function parseAttrs(s, from) {
  const a = {};
  ATTR_RE.lastIndex = from;
  let m;
  while ((m = ATTR_RE.exec(s)) !== null) a[m[1]] = unesc(m[2] !== undefined ? m[2] : m[3]);
  return a;
}

/**
 * The one element of a WebSocket text frame (RFC 7395 §3.3.3: every message is a complete XML
 * element), as a small tree; xmppbench's tokenizer without the streaming state, since a frame
 * never splits an element. Throws on a frame without one complete element.
 */
function parseFrame(s) {
  const stack = [];
  const n = s.length;
  let pos = 0;
  while (pos < n) {
    const lt = s.indexOf("<", pos);
    if (lt === -1) break;
    if (lt > pos && stack.length) stack[stack.length - 1].text += unesc(s.slice(pos, lt));
    pos = lt;
    if (s.startsWith("<?", pos)) {
      const e = s.indexOf("?>", pos + 2);
      if (e < 0) break;
      pos = e + 2;
      continue;
    }
    if (s.startsWith("<!--", pos)) {
      const e = s.indexOf("-->", pos + 4);
      if (e < 0) break;
      pos = e + 3;
      continue;
    }
    if (s.startsWith("<![CDATA[", pos)) {
      const e = s.indexOf("]]>", pos + 9);
      if (e < 0) break;
      if (stack.length) stack[stack.length - 1].text += s.slice(pos + 9, e);
      pos = e + 3;
      continue;
    }
    let i = pos + 1, q = 0;
    for (; i < n; i++) {
      const ch = s.charCodeAt(i);
      if (q !== 0) {
        if (ch === q) q = 0;
      } else if (ch === 62 /* > */) break;
      else if (ch === 34 || ch === 39) q = ch;
    }
    if (i >= n) break; // incomplete tag
    const inner = s.slice(pos + 1, i);
    pos = i + 1;
    if (inner.charCodeAt(0) === 47 /* / */) {
      const el = stack.pop();
      if (!el) break;
      if (stack.length === 0) return el;
      continue;
    }
    let body = inner, selfClose = false;
    if (body.charCodeAt(body.length - 1) === 47) {
      selfClose = true;
      body = body.slice(0, -1);
    }
    let j = 0;
    while (j < body.length) {
      const ch = body.charCodeAt(j);
      if (ch === 32 || ch === 9 || ch === 10 || ch === 13) break;
      j++;
    }
    const el = makeEl(body.slice(0, j), parseAttrs(body, j));
    if (stack.length) stack[stack.length - 1].children.push(el);
    if (!selfClose) stack.push(el);
    else if (stack.length === 0) return el;
  }
  throw new Error(`no complete element in a WebSocket frame: ${s.slice(0, 200)}`);
}

// -------------------------------------------------------- RFC 6455 client --

const WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const OP = { cont: 0x0, text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa };

// Client frames are masked with unpredictable keys (RFC 6455 §5.3); one random fill serves
// many frames instead of a system call per frame.
const maskPool = Buffer.alloc(4096);
let maskAt = maskPool.length;
function nextMask() {
  if (maskAt + 4 > maskPool.length) {
    crypto.randomFillSync(maskPool);
    maskAt = 0;
  }
  maskAt += 4;
  return maskPool.subarray(maskAt - 4, maskAt);
}

/** One masked, unfragmented client frame. */
function encodeFrame(opcode, payload) {
  const len = payload.length;
  const hdr = len < 126 ? 2 : len < 65536 ? 4 : 10;
  const f = Buffer.allocUnsafe(hdr + 4 + len);
  f[0] = 0x80 | opcode;
  if (len < 126) f[1] = 0x80 | len;
  else if (len < 65536) {
    f[1] = 0x80 | 126;
    f.writeUInt16BE(len, 2);
  } else {
    f[1] = 0x80 | 127;
    f.writeBigUInt64BE(BigInt(len), 2);
  }
  const mask = nextMask();
  mask.copy(f, hdr);
  for (let i = 0; i < len; i++) f[hdr + 4 + i] = payload[i] ^ mask[i & 3];
  return f;
}

/**
 * Opens a WebSocket with subprotocol `xmpp` over node:net and resolves once the server has
 * answered 101 with the right accept key and protocol. Callbacks: onText(string) for each
 * complete text message (continuations joined), onGone(Error) once, when the connection is over
 * or breaks the protocol.
 */
function openWebSocket(o, { onText, onGone, debug }) {
  return new Promise((resolve, reject) => {
    const key = crypto.randomBytes(16).toString("base64");
    const accept = crypto.createHash("sha1").update(key + WS_GUID).digest("base64");
    // The XMPP domain as the HTTP host, as a browser at http://<domain>:<port>/ sends it:
    // Prosody's HTTP server routes by Host (127.0.0.1 would not reach the host's module).
    const hostHeader = `${o.domain}:${o.port}`;
    const sock = net.connect({ host: o.host, port: o.port });
    sock.setNoDelay(true);
    let upgraded = false, settled = false, closeSent = false, gone = false;
    let head = Buffer.alloc(0), rbuf = null, fragments = null;
    const ws = { sock, closed: false };
    const goneOnce = (e) => {
      if (gone) return;
      gone = true;
      ws.closed = true;
      onGone(e);
    };
    const settle = (e) => {
      if (settled) return;
      settled = true;
      if (e) {
        reject(e);
        sock.destroy();
      } else resolve(ws);
    };
    ws.sendText = (s) => {
      if (ws.closed || sock.destroyed) return false;
      if (debug) process.stderr.write(`C>> ${s}\n`);
      return sock.write(encodeFrame(OP.text, Buffer.from(s, "utf8")));
    };
    // Starts or answers the closing handshake: a close frame (1000), then the server closes.
    ws.close = () => {
      if (closeSent || sock.destroyed) return;
      closeSent = true;
      const code = Buffer.alloc(2);
      code.writeUInt16BE(1000);
      sock.write(encodeFrame(OP.close, code));
      setTimeout(() => sock.destroy(), 3000).unref();
    };
    ws.destroy = () => sock.destroy();

    const protocolError = (why) => {
      goneOnce(new Error(`WebSocket: ${why}`));
      sock.destroy();
    };
    function onFrame(fin, op, payload) {
      if (op === OP.text || op === OP.cont) {
        if (op === OP.text && fragments !== null) {
          return protocolError("text frame inside a fragmented message");
        }
        if (op === OP.cont && fragments === null) {
          return protocolError("continuation without a start");
        }
        if (fin && op === OP.text) return onText(payload.toString("utf8"));
        fragments = [...(fragments ?? []), Buffer.from(payload)];
        if (!fin) return;
        const whole = Buffer.concat(fragments);
        fragments = null;
        return onText(whole.toString("utf8"));
      }
      if (op === OP.ping) {
        if (!closeSent) sock.write(encodeFrame(OP.pong, payload));
        return;
      }
      if (op === OP.pong) return;
      if (op === OP.close) {
        ws.closed = true;
        ws.close();
        sock.end();
        const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
        goneOnce(new Error(`WebSocket closed by server (${code})`));
        return;
      }
      return protocolError(op === OP.binary ? "binary frame" : `opcode ${op}`);
    }
    function feedFrames(chunk) {
      rbuf = rbuf === null ? chunk : Buffer.concat([rbuf, chunk]);
      let pos = 0;
      while (!sock.destroyed) {
        const avail = rbuf.length - pos;
        if (avail < 2) break;
        const b0 = rbuf[pos], b1 = rbuf[pos + 1];
        let len = b1 & 0x7f, hdr = 2;
        if (len === 126) {
          if (avail < 4) break;
          len = rbuf.readUInt16BE(pos + 2);
          hdr = 4;
        } else if (len === 127) {
          if (avail < 10) break;
          len = Number(rbuf.readBigUInt64BE(pos + 2));
          hdr = 10;
        }
        // A server must not mask (RFC 6455 §5.1); unmask anyway rather than misread.
        const masked = (b1 & 0x80) !== 0;
        if (masked) hdr += 4;
        if (avail < hdr + len) break;
        let payload = rbuf.subarray(pos + hdr, pos + hdr + len);
        if (masked) {
          const m = rbuf.subarray(pos + hdr - 4, pos + hdr);
          payload = Buffer.from(payload);
          for (let i = 0; i < payload.length; i++) payload[i] ^= m[i & 3];
        }
        pos += hdr + len;
        onFrame((b0 & 0x80) !== 0, b0 & 0x0f, payload);
      }
      rbuf = pos < rbuf.length ? rbuf.subarray(pos) : null;
    }
    function onHandshake(chunk) {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) {
        if (head.length > 16384) settle(new Error("WebSocket: response head over 16 KB"));
        return;
      }
      const lines = head.subarray(0, end).toString("latin1").split("\r\n");
      const headers = new Map();
      for (const l of lines.slice(1)) {
        const c = l.indexOf(":");
        if (c > 0) headers.set(l.slice(0, c).trim().toLowerCase(), l.slice(c + 1).trim());
      }
      if (!/^HTTP\/1\.1 101\b/.test(lines[0])) {
        const body = head.subarray(end + 4).toString("utf8").slice(0, 200);
        return settle(new Error(`WebSocket upgrade refused: ${lines[0]} ${body}`.trim()));
      }
      if (headers.get("sec-websocket-accept") !== accept) {
        return settle(new Error("WebSocket: wrong Sec-WebSocket-Accept"));
      }
      if (headers.get("sec-websocket-protocol") !== "xmpp") {
        return settle(new Error(`WebSocket: subprotocol ${headers.get("sec-websocket-protocol")}`));
      }
      upgraded = true;
      settle();
      const rest = head.subarray(end + 4);
      head = null;
      if (rest.length) feedFrames(rest);
    }

    sock.on("connect", () => {
      sock.write(
        `GET ${o.path} HTTP/1.1\r\nHost: ${hostHeader}\r\nUpgrade: websocket\r\n` +
          `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n` +
          `Sec-WebSocket-Protocol: xmpp\r\n\r\n`,
      );
    });
    sock.on("data", (b) => (upgraded ? feedFrames(b) : onHandshake(b)));
    sock.on("error", (e) => {
      settle(e);
      goneOnce(e);
    });
    sock.on("close", () => {
      settle(new Error("connection closed during the WebSocket upgrade"));
      goneOnce(new Error("connection closed"));
      ws.onClosed?.();
    });
  });
}

// ---------------------------------------------------------------- client --

const NS = {
  framing: "urn:ietf:params:xml:ns:xmpp-framing",
  client: "jabber:client",
  streams: "http://etherx.jabber.org/streams",
  sasl: "urn:ietf:params:xml:ns:xmpp-sasl",
  bind: "urn:ietf:params:xml:ns:xmpp-bind",
  session: "urn:ietf:params:xml:ns:xmpp-session",
  roster: "jabber:iq:roster",
  ping: "urn:xmpp:ping",
  stanzas: "urn:ietf:params:xml:ns:xmpp-stanzas",
  receipts: "urn:xmpp:receipts",
};

// RFC 7395 §3.3.3: with no stream element to inherit it from, every stanza names its namespace
// (Prosody closes the stream with unsupported-stanza-type otherwise).
const STANZA_START = /^<(?:iq|message|presence)(?=[\s/>])/;

const scramCache = new Map(); // (password, salt, iterations) -> SaltedPassword

/** The condition and text of a stanza error, e.g. `service-unavailable: ...`. */
function errorText(el) {
  const e = el.child("error");
  if (!e) return `${el.name} type=error without <error/>`;
  const cond = e.children.find((c) => c.local !== "text" && c.attrs.xmlns === NS.stanzas)?.local ??
    "undefined-condition";
  const t = e.child("text", NS.stanzas)?.text;
  return `${el.name} error ${cond}${t ? `: ${t}` : ""}`;
}

/**
 * One c2s session over WebSocket: login (RFC 6120 steps over RFC 7395 framing), iq with id
 * matching, and `onStanza` for everything else once bound.
 */
function makeClient(o, user, resource, debug = false) {
  let ws = null, waiter = null, idc = 0, ready = false, closeErr = null;
  const queue = [];
  const pending = new Map();
  let closedResolve;
  const c = {
    user,
    jid: null,
    closed: false,
    onStanza: null,
    closedP: new Promise((r) => {
      closedResolve = r;
    }),
  };

  c.send = (s) => {
    if (c.closed || !ws || ws.closed) return false;
    return ws.sendText(s.replace(STANZA_START, `$& xmlns='${NS.client}'`));
  };

  function fail(e) {
    if (!closeErr) closeErr = e;
    if (waiter) {
      const w = waiter;
      waiter = null;
      w.reject(e);
    }
    for (const [, p] of pending) p.reject(e);
    pending.clear();
  }

  function onText(s) {
    if (debug) process.stderr.write(`S<< ${s}\n`);
    let el;
    try {
      el = parseFrame(s);
    } catch (e) {
      fail(e);
      c.destroy();
      return;
    }
    onElement(el);
  }

  function onElement(el) {
    if (el.attrs.xmlns === NS.framing) {
      // <open/> starts each stream (nothing in it is needed); <close/> ends it: answer with
      // the WebSocket close, after which the server drops the connection.
      if (el.local === "close") {
        fail(new Error("stream closed by server"));
        c.closed = true;
        ws.close();
      }
      return;
    }
    if (el.name === "iq" && (el.attrs.type === "result" || el.attrs.type === "error")) {
      const p = pending.get(el.attrs.id);
      if (p) {
        pending.delete(el.attrs.id);
        if (el.attrs.type === "result") p.resolve(el);
        else p.reject(new Error(`${user}: iq ${errorText(el)}`));
        return;
      }
    }
    if (el.local === "error" && (el.name.startsWith("stream") || el.attrs.xmlns === NS.streams)) {
      const cond = el.children.map((x) => x.local).find((x) => x !== "text") || "unknown";
      fail(new Error(`stream error: ${cond}`));
      c.end();
      return;
    }
    if (!ready) {
      if (waiter) {
        const w = waiter;
        waiter = null;
        w.resolve(el);
      } else queue.push(el);
      return;
    }
    if (c.onStanza) c.onStanza(el);
    if (el.name === "iq" && (el.attrs.type === "get" || el.attrs.type === "set")) autoIq(el);
  }

  // A minimal client's answers: pings and roster pushes get a result, the rest an error.
  function autoIq(el) {
    const to = el.attrs.from ? ` to='${esc(el.attrs.from)}'` : "";
    const q = el.children[0];
    if (
      q &&
      ((q.local === "query" && q.attrs.xmlns === NS.roster) ||
        (q.local === "ping" && q.attrs.xmlns === NS.ping))
    ) {
      c.send(`<iq type='result' id='${esc(el.attrs.id || "")}'${to}/>`);
    } else {
      c.send(
        `<iq type='error' id='${
          esc(el.attrs.id || "")
        }'${to}><error type='cancel'><service-unavailable xmlns='${NS.stanzas}'/></error></iq>`,
      );
    }
  }

  function next(what) {
    if (queue.length) return Promise.resolve(queue.shift());
    if (closeErr) return Promise.reject(closeErr);
    const p = new Promise((resolve, reject) => {
      waiter = { resolve, reject };
    });
    return withTimeout(p, o["step-timeout"] * 1000, `${user}: waiting for ${what}`);
  }

  async function expect(local, what) {
    const el = await next(what);
    if (el.local !== local) {
      throw new Error(`${user}: expected <${local}>, got ${String(el).slice(0, 300)}`);
    }
    return el;
  }

  c.iq = (type, inner, to) => {
    const id = `q${++idc}`;
    const p = new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
    c.send(`<iq type='${type}' id='${id}'${to ? ` to='${esc(to)}'` : ""}>${inner}</iq>`);
    return withTimeout(p, o["step-timeout"] * 1000, `${user}: iq ${id}`);
  };

  async function connect() {
    ws = await withTimeout(
      openWebSocket(o, {
        debug,
        onText,
        onGone: (e) => {
          c.closed = true;
          fail(e);
        },
      }),
      o["step-timeout"] * 1000,
      `${user}: WebSocket upgrade`,
    );
    if (ws.closed || ws.sock.destroyed) closedResolve();
    else ws.onClosed = closedResolve;
  }

  function openStream() {
    c.send(`<open xmlns='${NS.framing}' to='${esc(o.domain)}' version='1.0' xml:lang='en'/>`);
  }

  async function saslAuth(feats) {
    const mechs = feats.child("mechanisms", NS.sasl);
    const offered = mechs
      ? mechs.children.filter((x) => x.local === "mechanism").map((x) => x.text.trim())
      : [];
    const mech = o.mech.toUpperCase();
    if (!offered.includes(mech)) {
      throw new Error(`mechanism ${mech} not offered (offered: ${offered.join(" ") || "none"})`);
    }
    if (mech === "PLAIN") {
      const b = Buffer.from(`\0${user}\0${o.password}`, "utf8").toString("base64");
      c.send(`<auth xmlns='${NS.sasl}' mechanism='PLAIN'>${b}</auth>`);
      const r = await next("SASL result");
      if (r.local !== "success") throw new Error(`SASL PLAIN failed for ${user}: ${r}`);
      return;
    }
    if (mech === "SCRAM-SHA-1") return await scramSha1();
    throw new Error(`unsupported mechanism ${mech}`);
  }

  async function scramSha1() {
    const saslname = user.replace(/=/g, "=3D").replace(/,/g, "=2C");
    const cnonce = crypto.randomBytes(18).toString("base64");
    const clientFirstBare = `n=${saslname},r=${cnonce}`;
    c.send(
      `<auth xmlns='${NS.sasl}' mechanism='SCRAM-SHA-1'>${
        Buffer.from("n,," + clientFirstBare).toString("base64")
      }</auth>`,
    );
    const ch = await next("SCRAM challenge");
    if (ch.local !== "challenge") throw new Error(`SCRAM: expected challenge, got ${ch}`);
    const serverFirst = Buffer.from(ch.text.trim(), "base64").toString("utf8");
    const f = Object.fromEntries(serverFirst.split(",").map((kv) => [kv[0], kv.slice(2)]));
    if (!f.r || !f.r.startsWith(cnonce) || !f.s || !f.i) {
      throw new Error(`SCRAM: bad server-first ${serverFirst}`);
    }
    const salt = Buffer.from(f.s, "base64");
    const iters = Number(f.i);
    const key = `${o.password}\0${f.s}\0${iters}`;
    let salted = scramCache.get(key);
    if (!salted) {
      salted = await new Promise((res, rej) =>
        crypto.pbkdf2(o.password, salt, iters, 20, "sha1", (e, k) => (e ? rej(e) : res(k)))
      );
      scramCache.set(key, salted);
    }
    const hmac = (k, d) => crypto.createHmac("sha1", k).update(d).digest();
    const clientKey = hmac(salted, "Client Key");
    const storedKey = crypto.createHash("sha1").update(clientKey).digest();
    const finalNoProof = `c=biws,r=${f.r}`;
    const authMsg = `${clientFirstBare},${serverFirst},${finalNoProof}`;
    const sig = hmac(storedKey, authMsg);
    const proof = Buffer.alloc(20);
    for (let i = 0; i < 20; i++) proof[i] = clientKey[i] ^ sig[i];
    const serverSig = hmac(hmac(salted, "Server Key"), authMsg).toString("base64");
    c.send(
      `<response xmlns='${NS.sasl}'>${
        Buffer.from(`${finalNoProof},p=${proof.toString("base64")}`).toString("base64")
      }</response>`,
    );
    let r = await next("SCRAM result");
    let data = r.text.trim();
    if (r.local === "challenge") { // server-final as a challenge; an empty success follows
      c.send(`<response xmlns='${NS.sasl}'/>`);
      r = await next("SCRAM success");
    }
    if (r.local !== "success") throw new Error(`SCRAM failed for ${user}: ${r}`);
    if (r.text.trim()) data = r.text.trim();
    const v = Buffer.from(data, "base64").toString("utf8");
    if (v !== `v=${serverSig}`) throw new Error(`SCRAM: server signature mismatch (${v})`);
  }

  /** The full login; resolves with its wall time and that of the SASL exchange (ms). */
  c.login = async () => {
    const t0 = now();
    await connect();
    openStream();
    let feats = await expect("features", "stream features");
    const tAuth0 = now();
    await saslAuth(feats);
    const tAuth = now();
    openStream(); // RFC 7395 §3.5: the restart after SASL is a new <open/>
    feats = await expect("features", "stream features");
    if (!feats.child("bind", NS.bind)) throw new Error(`no resource binding offered: ${feats}`);
    ready = true; // from here on iq results are matched by id
    const b = await c.iq(
      "set",
      `<bind xmlns='${NS.bind}'><resource>${esc(resource)}</resource></bind>`,
    );
    const jidEl = b.child("bind", NS.bind)?.child("jid");
    c.jid = jidEl ? jidEl.text.trim() : `${user}@${o.domain}/${resource}`;
    const sess = feats.child("session", NS.session);
    if (sess && !sess.child("optional")) await c.iq("set", `<session xmlns='${NS.session}'/>`);
    if (o["roster-get"]) await c.iq("get", `<query xmlns='${NS.roster}'/>`);
    c.send("<presence/>");
    if (o["login-barrier"] === "ping") await c.iq("get", `<ping xmlns='${NS.ping}'/>`, o.domain);
    return { ms: now() - t0, auth_ms: tAuth - tAuth0 };
  };

  // Polite close (RFC 7395 §3.6): <close/>, the server answers with its own and the WebSocket
  // closing handshake follows; dropped after 3 s in any case.
  c.end = () => {
    if (!ws || ws.sock.destroyed) return;
    if (!c.closed) c.send(`<close xmlns='${NS.framing}'/>`);
    c.closed = true;
    const s = ws.sock;
    setTimeout(() => s.destroy(), 3000).unref();
  };
  c.destroy = () => {
    if (ws) ws.destroy();
  };
  return c;
}

async function closeAll(clients, maxMs = 10000) {
  const live = clients.filter(Boolean);
  for (const c of live) c.end();
  await withTimeout(Promise.all(live.map((c) => c.closedP)), maxMs, "closing connections").catch(
    () => {
      for (const c of live) c.destroy();
    },
  );
}

// -------------------------------------------------------------- scenarios --

const cpuTxt = (s, per) => (s === null ? "n/a (no --server-pid)" : `${s}s = ${per}`);
const userName = (o, i) => `${o["user-prefix"]}${o["user-start"] + i}`;

async function loginMany(o, users, conc, deadline, runId) {
  const clients = new Array(users.length).fill(null);
  const errors = [], times = [], authTimes = [];
  await pool(users.length, conc, async (i) => {
    const c = makeClient(o, users[i], `${o.resource}-${runId}-${i}`, o.verbose && i === 0);
    try {
      const r = await c.login();
      clients[i] = c;
      times.push(r.ms);
      authTimes.push(r.auth_ms);
    } catch (e) {
      errors.push(e);
      c.destroy();
    }
  }, deadline);
  return { clients, errors, times, authTimes };
}

async function scLogin(o, ctx) {
  const users = Array.from({ length: o.users }, (_, i) => userName(o, i));
  ctx.params = {
    users: o.users,
    concurrency: o.concurrency,
    mech: o.mech,
    roster_get: o["roster-get"],
    barrier: o["login-barrier"],
  };
  ctx.quiesce = await ctx.meter.quiesce(o["quiesce-max"], o["quiesce-cores"]);
  const a = ctx.meter.snap();
  const r = await loginMany(o, users, o.concurrency, ctx.deadline, ctx.runId);
  const b = ctx.meter.snap();
  const ph = ctx.meter.diff(a, b);
  await closeAll(r.clients);
  const ok = r.times.length;
  const lat = stats(r.times);
  const cpu = ph.server_cpu_s === null || !ok ? null : Math.round(ph.server_cpu_s * 1e6 / ok);
  return {
    op: "login",
    ops: ok,
    failed: r.errors.length,
    errors: errSummary(r.errors),
    rate_per_s: +(ok / ph.wall_s).toFixed(2),
    lat_ms: lat,
    auth_ms: stats(r.authTimes),
    phase: ph,
    cpu_us_per_op: cpu,
    human:
      `${ok}/${o.users} logins over WebSocket (C=${o.concurrency}, ${o.mech}) in ${ph.wall_s}s = ${
        (ok / ph.wall_s).toFixed(1)
      }/s; login p50 ${lat.p50 ?? "n/a"} ms p99 ${lat.p99 ?? "n/a"} ms; server CPU ${
        cpuTxt(ph.server_cpu_s, cpu)
      } us/login`,
  };
}

async function scIdle(o, ctx) {
  const N = o.users;
  ctx.params = { users: N, concurrency: o.concurrency, hold_s: o.hold, mech: o.mech };
  const users = Array.from({ length: N }, (_, i) => userName(o, i));
  ctx.quiesce = await ctx.meter.quiesce(o["quiesce-max"], o["quiesce-cores"]);
  const rssBefore = ctx.meter.rss();
  const a = ctx.meter.snap();
  log(`idle: opening ${N} WebSocket sessions (C=${o.concurrency})`);
  const r = await loginMany(
    o,
    users,
    o.concurrency,
    ctx.deadline - (o.hold + o["close-wait"] + 15) * 1000,
    ctx.runId,
  );
  const b = ctx.meter.snap();
  const ok = r.times.length;
  log(`idle: ${ok} connected (${r.errors.length} failed), holding ${o.hold}s`);
  // Hold, bounded by --hold and by the hard deadline; sample RSS once a second.
  const holdMs = Math.max(
    0,
    Math.min(o.hold * 1000, ctx.deadline - now() - (o["close-wait"] + 10) * 1000),
  );
  const rssTrend = [];
  const holdEnd = now() + holdMs;
  for (let i = 0; i < Math.ceil(holdMs / 1000) + 1 && now() < holdEnd; i++) {
    rssTrend.push(ctx.meter.rss());
    await sleep(Math.min(1000, Math.max(0, holdEnd - now())));
  }
  const alive = r.clients.filter((c) => c && !c.closed).length;
  const rssAfter = ctx.meter.rss();
  const c2 = ctx.meter.snap();
  await closeAll(r.clients, 20000);
  await sleep(Math.max(0, Math.min(o["close-wait"] * 1000, ctx.deadline - now() - 3000)));
  const rssClosed = ctx.meter.rss();
  const ramp = ctx.meter.diff(a, b), hold = ctx.meter.diff(b, c2);
  const kbPer = rssBefore === null || !ok ? null : +((rssAfter - rssBefore) / ok).toFixed(2);
  const cpu = ramp.server_cpu_s === null || !ok ? null : Math.round(ramp.server_cpu_s * 1e6 / ok);
  const lat = stats(r.times);
  return {
    op: "connection",
    ops: ok,
    failed: r.errors.length,
    errors: errSummary(r.errors),
    alive_after_hold: alive,
    rss_before_kb: rssBefore,
    rss_after_kb: rssAfter,
    rss_after_close_kb: rssClosed,
    kb_per_conn: kbPer,
    rss_hold_trend_kb: rssTrend,
    rate_per_s: +(ok / ramp.wall_s).toFixed(2),
    lat_ms: lat,
    phase: ramp,
    hold_phase: hold,
    cpu_us_per_op: cpu,
    hold_server_cpu_s: hold.server_cpu_s,
    human:
      `${ok}/${N} idle WebSocket sessions (alive ${alive}); RSS ${rssBefore} -> ${rssAfter} kB (${kbPer} kB/conn), after close ${rssClosed} kB; ramp ${ramp.wall_s}s, ${
        cpu ?? "n/a"
      } us/login; hold ${hold.wall_s}s server CPU ${hold.server_cpu_s ?? "n/a"}s`,
  };
}

async function scMsg(o, ctx) {
  const P = o.pairs, M = o.messages, W = o.window;
  ctx.params = { pairs: P, messages: M, window: W, body_size: o["body-size"], mech: o.mech };
  const users = Array.from({ length: 2 * P }, (_, i) => userName(o, i));
  log(`msg: logging in ${2 * P} WebSocket clients`);
  const r = await loginMany(o, users, o.concurrency, ctx.deadline, ctx.runId);
  if (r.errors.length) {
    await closeAll(r.clients);
    throw new Error(`setup logins failed: ${errSummary(r.errors).join("; ")}`);
  }
  const senders = r.clients.slice(0, P), receivers = r.clients.slice(P);
  const pad = "x".repeat(Math.max(0, o["body-size"] - 40));
  const e2e = [], rtt = [];
  let delivered = 0, acked = 0, errors = 0, dup = 0;
  const total = P * M;
  let done;
  const allDone = new Promise((res) => {
    done = res;
  });
  const st = senders.map(() => ({ sent: 0, inflight: 0, sendT: new Map() }));
  const rseen = receivers.map(() => new Set());
  const pump = (i) => {
    const s = st[i], c = senders[i], to = receivers[i].jid;
    while (s.inflight < W && s.sent < M) {
      const seq = s.sent++;
      s.inflight++;
      const t = now();
      s.sendT.set(seq, t);
      c.send(
        `<message to='${esc(to)}' type='chat' id='m${i}-${seq}'><body>xb ${i} ${seq} ${
          t.toFixed(3)
        } ${pad}</body><request xmlns='${NS.receipts}'/></message>`,
      );
    }
  };
  senders.forEach((c, i) => {
    c.onStanza = (el) => {
      if (el.name !== "message") return;
      if (el.attrs.type === "error") {
        errors++;
        return;
      }
      const rc = el.child("received", NS.receipts);
      if (!rc) return;
      const seq = Number(String(rc.attrs.id || "").split("-")[1]);
      const s = st[i];
      const t = s.sendT.get(seq);
      if (t === undefined) return;
      s.sendT.delete(seq);
      rtt.push(now() - t);
      s.inflight--;
      acked++;
      if (acked === total) done();
      else pump(i);
    };
  });
  receivers.forEach((c, i) => {
    c.onStanza = (el) => {
      if (el.name !== "message" || el.attrs.type === "error") {
        if (el.attrs.type === "error") errors++;
        return;
      }
      const body = el.child("body");
      if (!body) return;
      const f = body.text.split(" ");
      if (f[0] !== "xb") return;
      const seq = Number(f[2]);
      if (rseen[i].has(seq)) dup++;
      else {
        rseen[i].add(seq);
        delivered++;
        e2e.push(now() - Number(f[3]));
      }
      if (el.child("request", NS.receipts) && el.attrs.id) {
        c.send(
          `<message to='${
            esc(el.attrs.from)
          }' id='r${el.attrs.id}'><received xmlns='${NS.receipts}' id='${
            esc(el.attrs.id)
          }'/></message>`,
        );
      }
    };
  });
  ctx.quiesce = await ctx.meter.quiesce(o["quiesce-max"], o["quiesce-cores"]);
  log(`msg: sending ${total} messages over WebSocket`);
  const a = ctx.meter.snap();
  for (let i = 0; i < P; i++) pump(i);
  const remaining = Math.max(1000, ctx.deadline - now() - 5000);
  let timedOut = false;
  await withTimeout(allDone, remaining, "message phase").catch(() => {
    timedOut = true;
  });
  const b = ctx.meter.snap();
  const ph = ctx.meter.diff(a, b);
  await closeAll(r.clients);
  const lat = stats(e2e);
  const cpu = ph.server_cpu_s === null || !delivered
    ? null
    : Math.round(ph.server_cpu_s * 1e6 / delivered);
  return {
    op: "message",
    ops: delivered,
    acked,
    expected: total,
    timed_out: timedOut,
    stanza_errors: errors,
    duplicates: dup,
    rate_per_s: +(delivered / ph.wall_s).toFixed(2),
    lat_ms: lat,
    rtt_ms: stats(rtt),
    phase: ph,
    cpu_us_per_op: cpu,
    note:
      "each message is followed by one XEP-0184 receipt routed back, so the server routes 2 stanzas per message",
    human: `${delivered}/${total} msgs over WebSocket (P=${P} M=${M} W=${W}) in ${ph.wall_s}s = ${
      (delivered / ph.wall_s).toFixed(0)
    } msg/s; e2e p50 ${lat.p50 ?? "n/a"} ms p99 ${lat.p99 ?? "n/a"} ms; server CPU ${
      cpuTxt(ph.server_cpu_s, cpu)
    } us/msg (incl. its receipt)`,
  };
}

// ------------------------------------------------------------------ main --

async function main() {
  let o;
  try {
    o = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`${e.message}\n`);
    process.exit(2);
  }
  const loopback = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/.test(o.host);
  if (!loopback && !o["allow-remote"]) {
    process.stderr.write(`refusing non-loopback host ${o.host} (use --allow-remote)\n`);
    process.exit(2);
  }
  const pids = o["server-pid"]
    ? String(o["server-pid"]).split(",").map((s) => s.trim()).filter(Boolean).map(Number)
    : [];
  for (const p of pids) {
    if (!fs.existsSync(`/proc/${p}/stat`)) {
      process.stderr.write(`no such process ${p}\n`);
      process.exit(2);
    }
  }
  const t0 = now();
  const ctx = {
    meter: makeMeter(pids),
    deadline: t0 + o.timeout * 1000,
    runId: crypto.randomBytes(3).toString("hex"),
    params: {},
    quiesce: null,
  };
  const scenario = `ws-${o.scenario}`;
  const base = {
    tool: "ws_load",
    version: VERSION,
    date: new Date().toISOString(),
    label: o.label,
    tag: o.tag || scenario,
    scenario,
    target: {
      host: o.host,
      port: o.port,
      url: `ws://${o.host}:${o.port}${o.path}`,
      domain: o.domain,
      mech: o.mech,
    },
    server_pids: pids,
    machine: {
      nproc: os.cpus().length,
      mem_gb: +(os.totalmem() / 2 ** 30).toFixed(1),
      loadavg: os.loadavg().map((x) => +x.toFixed(2)),
    },
  };
  const emit = (res, ok) => {
    const rec = {
      ...base,
      params: ctx.params,
      quiesce: ctx.quiesce,
      ok,
      ...res,
      total_wall_s: +((now() - t0) / 1000).toFixed(3),
    };
    const human = rec.human;
    delete rec.human;
    const line = JSON.stringify(rec);
    process.stdout.write(line + "\n");
    process.stdout.write(
      `# [${o.label || o.host + ":" + o.port}] ${rec.tag}: ${ok ? "" : "FAILED: "}${
        human || rec.error
      }\n`,
    );
    if (o["json-out"]) fs.appendFileSync(o["json-out"], line + "\n");
  };
  const hard = setTimeout(() => {
    emit({ error: `hard timeout after ${o.timeout}s` }, false);
    process.exit(3);
  }, o.timeout * 1000 + 2000);
  hard.unref();
  const fn = { login: scLogin, idle: scIdle, msg: scMsg }[o.scenario];
  let code = 0;
  try {
    const res = await fn(o, ctx);
    // xmppbench's rule, so that load.ts judges both tools' runs alike.
    const ok = !res.failed && !res.timed_out &&
      (res.expected === undefined || res.ops === res.expected);
    emit(res, ok);
    code = ok ? 0 : 1;
  } catch (e) {
    emit({ error: String(e && e.stack ? e.stack.split("\n").slice(0, 3).join(" | ") : e) }, false);
    code = 1;
  }
  process.exit(code);
}

main();
