#!/usr/bin/env node
// muc_load.mjs — multi-user chat (XEP-0045) load generator for `bench/load.ts` (scenario `muc`).
//
// Node.js >= 20, no npm dependencies, like ../shared/bench/xmppbench.mjs, whose approach it
// follows (raw XMPP over plain TCP, SASL SCRAM-SHA-1 or PLAIN, CPU from /proc/<pid>/stat) and
// whose JSON field conventions it keeps (ok, ops, expected, rate_per_s, lat_ms.{p50,p99},
// phase.{server_cpu_s,other_busy_cores}, cpu_us_per_op, error/errors), so that load.ts reads
// both the same way. xmppbench has no MUC scenario and is shared data, hence this file.
//
// What it does: R rooms of N occupants (accounts <prefix>1..<prefix>R*N). In each room the
// first occupant creates it and submits the instant-room form (a new room is locked until then),
// then the others join. Every occupant sends K unrecorded warm-up messages, then, measured, M
// groupchat messages with at most W of its own unacknowledged at once: a message is acknowledged
// by the room's reflection of it to its sender. A delivery is one occupant's receipt of one
// reflected message, so the measured phase has M x R x N messages and M x R x N x N deliveries.
// Reported: the server's utime+stime per delivery (cpu_us_per_op), deliveries/s, and the
// end-to-end latency from send to each occupant's receipt (lat_ms; the sender's own echo is in
// it and is also reported alone as rtt_ms).
//
// Output: one JSON line on stdout, then a human-readable line starting with "# ". Progress goes
// to stderr. `--help` lists the flags.

import net from "node:net";
import tls from "node:tls";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import process from "node:process";
import { Buffer } from "node:buffer";
import { StringDecoder } from "node:string_decoder";
import { execFileSync } from "node:child_process";
import { performance } from "node:perf_hooks";

const VERSION = "1.0.0";

// [flag, default, description]; the type of the default is the type of the flag.
const OPTIONS = [
  ["host", "127.0.0.1", "server address (loopback only unless --allow-remote)"],
  ["port", 5222, "c2s port"],
  ["domain", "localhost", "XMPP domain (stream to=)"],
  ["muc-domain", "", "MUC service domain [conference.<domain>]"],
  ["user-prefix", "bench", "accounts are <prefix><n>"],
  ["user-start", 1, "first <n>"],
  ["password", "benchpass", "password of every account"],
  ["mech", "PLAIN", "PLAIN | SCRAM-SHA-1"],
  ["starttls", false, "negotiate STARTTLS (certificate is not verified), as xmppbench does"],
  ["resource", "mb", "resource prefix (a run id and index are appended)"],
  ["rooms", 10, "R rooms"],
  ["occupants", 10, "N occupants per room (R x N accounts are used)"],
  ["messages", 50, "M measured groupchat messages per occupant"],
  ["window", 5, "unacknowledged (not yet reflected) messages per sender"],
  ["warmup", 50, "unrecorded warm-up messages per occupant before the measured phase"],
  ["body-size", 64, "approximate body length in characters"],
  ["room-prefix", "xbroom", "rooms are <prefix>-<run id>-<r>@<muc-domain>"],
  ["concurrency", 20, "logins and joins in flight"],
  ["roster-get", true, "fetch the roster during login, like a real client"],
  ["login-barrier", "ping", "ping | none: after initial presence, wait for an XEP-0199 ping reply"],
  ["server-pid", "", "comma-separated pids whose CPU is sampled"],
  ["label", "", "free text: which server, e.g. prosody-0.12.3"],
  ["tag", "", "free text: which variant/measurement"],
  ["timeout", 300, "hard timeout (s): the tool always exits by then"],
  ["step-timeout", 30, "per protocol step (s)"],
  ["quiesce-max", 15, "s to wait for the server to go idle before measuring"],
  ["quiesce-cores", 0.05, "server counts as idle below this many cores"],
  ["json-out", "", "also append the JSON line to this file"],
  ["allow-remote", false, "refuse non-loopback hosts unless set"],
  ["verbose", false, "dump the XML of the first connection to stderr"],
];
const DEFAULTS = Object.fromEntries(OPTIONS.map(([k, v]) => [k, v]));

const HELP = `muc_load ${VERSION} — XEP-0045 groupchat load generator (no dependencies)

usage: node bench/muc_load.mjs [flags]

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
  for (const k of ["rooms", "occupants", "messages", "window", "concurrency"]) {
    if (!Number.isInteger(o[k]) || o[k] < 1) throw new Error(`--${k}: expected a positive integer`);
  }
  if (!Number.isInteger(o.warmup) || o.warmup < 0) {
    throw new Error("--warmup: expected an integer >= 0");
  }
  if (!o["muc-domain"]) o["muc-domain"] = `conference.${o.domain}`;
  return o;
}

// ------------------------------------------------------------- utilities --

const now = () => performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) =>
  process.stderr.write(`[muc_load ${new Date().toISOString().slice(11, 19)}] ${a.join(" ")}\n`);

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
const bare = (jid) => {
  const i = (jid || "").indexOf("/");
  return i < 0 ? (jid || "") : jid.slice(0, i);
};

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

/** Runs fn(i) for i in [0, n) with at most `conc` in flight; the first failure rejects. */
async function pool(n, conc, fn) {
  let next = 0;
  async function worker() {
    while (next < n) await fn(next++);
  }
  await Promise.all(Array.from({ length: Math.max(1, Math.min(conc, n)) }, worker));
}

/** Distinct error texts with their counts, digits folded, at most 8. */
function errSummary(list) {
  const m = new Map();
  for (const e of list) {
    const k = String(e && e.message ? e.message : e).replace(/[0-9]+/g, "N").slice(0, 200);
    m.set(k, (m.get(k) || 0) + 1);
  }
  return [...m.entries()].map(([k, v]) => `${v}x ${k}`).slice(0, 8);
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
  return { snap, diff, quiesce };
}

// ---------------------------------------------------- XML stream parser --

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
 * Incremental tokenizer (xmppbench's): builds a small tree for every top-level child of the
 * stream and hands it to cb.element; handles split chunks, quoted '>', entities, CDATA,
 * comments and processing instructions.
 */
function makeXmlStream(cb) {
  let buf = "", stack = [], open = false, gen = 0;
  function reset() {
    buf = "";
    stack = [];
    open = false;
    gen++;
  }
  function feed(chunk) {
    const b = buf ? buf + chunk : chunk;
    const n = b.length;
    const g = gen;
    let pos = 0;
    while (pos < n) {
      const lt = b.indexOf("<", pos);
      if (lt === -1) {
        if (stack.length === 0) pos = n; // whitespace keepalive between stanzas
        break;
      }
      if (lt > pos) {
        if (stack.length) stack[stack.length - 1].text += unesc(b.slice(pos, lt));
        pos = lt;
      }
      if (pos + 1 >= n) break;
      const c1 = b.charCodeAt(pos + 1);
      if (c1 === 63 /* ? */) {
        const e = b.indexOf("?>", pos + 2);
        if (e < 0) break;
        pos = e + 2;
        continue;
      }
      if (c1 === 33 /* ! */) {
        if (b.startsWith("<!--", pos)) {
          const e = b.indexOf("-->", pos + 4);
          if (e < 0) break;
          pos = e + 3;
          continue;
        }
        if (b.startsWith("<![CDATA[", pos)) {
          const e = b.indexOf("]]>", pos + 9);
          if (e < 0) break;
          if (stack.length) stack[stack.length - 1].text += b.slice(pos + 9, e);
          pos = e + 3;
          continue;
        }
        if (n - pos < 9) break;
        cb.error(new Error("unsupported XML markup: " + b.slice(pos, pos + 20)));
        pos = n;
        break;
      }
      let i = pos + 1, q = 0;
      for (; i < n; i++) {
        const ch = b.charCodeAt(i);
        if (q !== 0) {
          if (ch === q) q = 0;
        } else if (ch === 62 /* > */) break;
        else if (ch === 34 || ch === 39) q = ch;
      }
      if (i >= n) break; // incomplete tag
      const inner = b.slice(pos + 1, i);
      pos = i + 1;
      if (inner.charCodeAt(0) === 47 /* / */) {
        if (stack.length === 0) {
          if (open) {
            open = false;
            cb.streamEnd();
            if (g !== gen) return;
          }
          continue;
        }
        const el = stack.pop();
        if (stack.length === 0) {
          cb.element(el);
          if (g !== gen) return;
        }
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
      const name = body.slice(0, j);
      const attrs = parseAttrs(body, j);
      if (!open) {
        open = true;
        if (selfClose) {
          open = false;
          cb.streamEnd();
          if (g !== gen) return;
        }
        continue;
      }
      const el = makeEl(name, attrs);
      if (stack.length) stack[stack.length - 1].children.push(el);
      if (!selfClose) stack.push(el);
      else if (stack.length === 0) {
        cb.element(el);
        if (g !== gen) return;
      }
    }
    buf = pos < n ? b.slice(pos) : "";
  }
  return { feed, reset };
}

// ---------------------------------------------------------------- client --

const NS = {
  sasl: "urn:ietf:params:xml:ns:xmpp-sasl",
  tls: "urn:ietf:params:xml:ns:xmpp-tls",
  bind: "urn:ietf:params:xml:ns:xmpp-bind",
  session: "urn:ietf:params:xml:ns:xmpp-session",
  roster: "jabber:iq:roster",
  ping: "urn:xmpp:ping",
  stanzas: "urn:ietf:params:xml:ns:xmpp-stanzas",
  muc: "http://jabber.org/protocol/muc",
  mucUser: "http://jabber.org/protocol/muc#user",
  mucOwner: "http://jabber.org/protocol/muc#owner",
  data: "jabber:x:data",
};

const scramCache = new Map(); // (password, salt, iterations) -> SaltedPassword

/** The condition and text of a stanza error, e.g. `resource-constraint: The room is busy`. */
function errorText(el) {
  const e = el.child("error");
  if (!e) return `${el.name} type=error without <error/>`;
  const cond = e.children.find((c) => c.local !== "text" && c.attrs.xmlns === NS.stanzas)?.local ??
    "undefined-condition";
  const t = e.child("text", NS.stanzas)?.text;
  return `${el.name} error ${cond}${t ? `: ${t}` : ""}`;
}

/**
 * One c2s connection: login (RFC 6120: SASL, bind, optional session, roster get, presence,
 * ping barrier), iq with id matching, and `onStanza` for everything else once bound.
 */
function makeClient(o, user, resource, debug = false) {
  let sock = null, waiter = null, idc = 0, ready = false, closeErr = null;
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
  const parser = makeXmlStream({
    streamEnd: () => {
      fail(new Error("stream closed by server"));
      c.end();
    },
    element: (el) => onElement(el),
    error: (e) => {
      fail(e);
      c.destroy();
    },
  });

  c.send = (s) => {
    if (c.closed || !sock || sock.destroyed) return false;
    if (debug) process.stderr.write(`C>> ${s}\n`);
    return sock.write(s);
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

  function onElement(el) {
    if (el.name === "iq" && (el.attrs.type === "result" || el.attrs.type === "error")) {
      const p = pending.get(el.attrs.id);
      if (p) {
        pending.delete(el.attrs.id);
        if (el.attrs.type === "result") p.resolve(el);
        else p.reject(new Error(`${user}: iq ${errorText(el)}`));
        return;
      }
    }
    if (el.local === "error" && el.name.startsWith("stream")) {
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

  function connect() {
    return new Promise((resolve, reject) => {
      sock = net.connect({ host: o.host, port: o.port });
      sock.setNoDelay(true);
      const onErr = (e) => reject(e);
      sock.once("error", onErr);
      sock.once("connect", () => {
        sock.removeListener("error", onErr);
        sock.on("error", (e) => fail(e));
        resolve();
      });
      sock.on("close", () => {
        c.closed = true;
        fail(new Error("connection closed"));
        closedResolve();
      });
      attach(sock);
    });
  }

  function attach(s) {
    const dec = new StringDecoder("utf8");
    s.on("data", (b) => {
      const text = dec.write(b);
      if (debug) process.stderr.write(`S<< ${text}\n`);
      parser.feed(text);
    });
  }

  // RFC 6120 5.4: <starttls/>, <proceed/>, then TLS over the same socket and a new stream.
  async function startTls(feats) {
    if (!feats.child("starttls", NS.tls)) {
      throw new Error("--starttls given but the server does not offer STARTTLS");
    }
    c.send(`<starttls xmlns='${NS.tls}'/>`);
    const r = await next("starttls proceed");
    if (r.local !== "proceed") throw new Error(`STARTTLS refused: ${r}`);
    const raw = sock;
    raw.removeAllListeners("data");
    const ts = await new Promise((resolve, reject) => {
      const t = tls.connect(
        { socket: raw, servername: o.domain, rejectUnauthorized: false },
        () => resolve(t),
      );
      t.once("error", reject);
    });
    ts.on("error", (e) => fail(e));
    sock = ts;
    attach(ts);
    openStream();
    return await expect("features", "stream features after STARTTLS");
  }

  function openStream() {
    parser.reset();
    c.send(
      `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='${
        esc(o.domain)
      }' version='1.0' xml:lang='en'>`,
    );
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

  c.login = async () => {
    await connect();
    openStream();
    let feats = await expect("features", "stream features");
    if (o.starttls) feats = await startTls(feats);
    await saslAuth(feats);
    openStream();
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
  };

  // Polite close: end the stream, then drop after a while.
  c.end = () => {
    if (!sock || sock.destroyed) return;
    if (!c.closed) {
      try {
        sock.write("</stream:stream>");
      } catch { /* already gone */ }
    }
    c.closed = true;
    try {
      sock.end();
    } catch { /* already gone */ }
    const s = sock;
    setTimeout(() => s.destroy(), 3000).unref();
  };
  c.destroy = () => {
    if (sock) sock.destroy();
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

// --------------------------------------------------------------- scenario --

async function scMuc(o, ctx) {
  const R = o.rooms, N = o.occupants, M = o.messages, W = o.window, K = o.warmup;
  ctx.params = {
    rooms: R,
    occupants: N,
    messages: M,
    window: W,
    warmup: K,
    body_size: o["body-size"],
    mech: o.mech,
    muc_domain: o["muc-domain"],
  };
  const U = R * N;
  const roomJid = (r) => `${o["room-prefix"]}-${ctx.runId}-${r}@${o["muc-domain"]}`;
  const nick = (k) => `o${k}`;
  const pad = "x".repeat(Math.max(0, o["body-size"] - 40));

  // --- setup 1: logins.
  log(`muc: logging in ${U} clients`);
  const clients = new Array(U).fill(null);
  const loginErrors = [];
  await pool(U, o.concurrency, async (u) => {
    const c = makeClient(
      o,
      `${o["user-prefix"]}${o["user-start"] + u}`,
      `${o.resource}-${ctx.runId}-${u}`,
      o.verbose && u === 0,
    );
    try {
      await c.login();
      clients[u] = c;
    } catch (e) {
      loginErrors.push(e);
      c.destroy();
    }
  });
  ctx.cleanup = () => closeAll(clients);
  if (loginErrors.length) throw new Error(`logins failed: ${errSummary(loginErrors).join("; ")}`);

  // One dispatcher per client: join waiters, then the groupchat handler of the current phase.
  // Stanza errors are recorded with their condition and text, whatever the phase.
  const stanzaErrors = [];
  const joinWait = new Array(U).fill(null);
  let onGroupchat = null;
  const onError = new Array(U).fill(null);
  clients.forEach((c, u) => {
    const r = Math.floor(u / N), k = u % N;
    const room = roomJid(r), self = `${room}/${nick(k)}`;
    c.onStanza = (el) => {
      if (el.name === "message") {
        if (el.attrs.type === "error") {
          stanzaErrors.push(`${errorText(el)} (to ${c.user}, id ${el.attrs.id ?? "-"})`);
          if (onError[u]) onError[u](el);
          return;
        }
        if (el.attrs.type === "groupchat" && onGroupchat) onGroupchat(u, el);
        return;
      }
      if (el.name !== "presence" || joinWait[u] === null) return;
      if (el.attrs.type === "error" && bare(el.attrs.from) === room) {
        const w = joinWait[u];
        joinWait[u] = null;
        w.reject(new Error(`join ${self}: ${errorText(el)}`));
        return;
      }
      if (el.attrs.from !== self || el.attrs.type === "unavailable") return;
      const x = el.child("x", NS.mucUser);
      const codes = new Set(
        (x ? x.children : []).filter((s) => s.local === "status").map((s) => s.attrs.code),
      );
      if (!codes.has("110")) return;
      const w = joinWait[u];
      joinWait[u] = null;
      w.resolve(codes);
    };
  });
  const join = (u) => {
    const r = Math.floor(u / N), k = u % N;
    const p = new Promise((resolve, reject) => {
      joinWait[u] = { resolve, reject };
    });
    clients[u].send(
      `<presence to='${
        esc(`${roomJid(r)}/${nick(k)}`)
      }'><x xmlns='${NS.muc}'><history maxstanzas='0'/></x></presence>`,
    );
    return withTimeout(p, o["step-timeout"] * 1000, `join of ${clients[u].user} to ${roomJid(r)}`);
  };

  // --- setup 2: rooms. The first occupant creates the room and unlocks it with the instant-room
  // form (XEP-0045 §10.1.2); the others join once it is unlocked.
  log(`muc: creating ${R} rooms and joining ${N} occupants to each`);
  const tJoin = now();
  let created = 0;
  await pool(R, Math.max(1, Math.ceil(o.concurrency / N)), async (r) => {
    const owner = r * N;
    const codes = await join(owner);
    if (codes.has("201")) {
      created++;
      await clients[owner].iq(
        "set",
        `<query xmlns='${NS.mucOwner}'><x xmlns='${NS.data}' type='submit'/></query>`,
        roomJid(r),
      );
    }
    await Promise.all(Array.from({ length: N - 1 }, (_, k) => join(owner + 1 + k)));
  });
  const joinWall = (now() - tJoin) / 1000;
  log(`muc: ${U} occupants in ${R} rooms (${created} created) in ${joinWall.toFixed(1)} s`);

  // --- the message phases. A body is "xb <phase> <u> <seq> <send time>"; the reflection to its
  // sender acknowledges it and frees a window slot; an error for it frees the slot too (the
  // message then counts as failed: N deliveries missing).
  async function phase(tag, perSender, record) {
    const total = U * perSender;
    const expected = total * N;
    const seen = Array.from({ length: U }, () => new Uint8Array(N * perSender));
    const sent = new Int32Array(U),
      inflight = new Int32Array(U),
      sendT = Array.from({ length: U }, () => new Map());
    const e2e = [], rtt = [];
    let delivered = 0, acked = 0, failed = 0, dup = 0, stray = 0;
    let done;
    const allDone = new Promise((res) => {
      done = res;
    });
    const check = () => {
      if (delivered + failed * N >= expected) done();
    };
    const pump = (u) => {
      const c = clients[u], to = roomJid(Math.floor(u / N));
      while (inflight[u] < W && sent[u] < perSender) {
        const seq = sent[u]++;
        inflight[u]++;
        const t = now();
        sendT[u].set(seq, t);
        c.send(
          `<message to='${to}' type='groupchat' id='${tag}${u}-${seq}'><body>xb ${tag} ${u} ${seq} ${
            t.toFixed(3)
          } ${pad}</body></message>`,
        );
      }
    };
    onGroupchat = (u, el) => {
      const body = el.child("body");
      if (!body) return; // the subject after a join
      const f = body.text.split(" ");
      if (f[0] !== "xb" || f[1] !== tag) return;
      const from = Number(f[2]), seq = Number(f[3]);
      const t = now();
      if (Math.floor(from / N) !== Math.floor(u / N) || !(seq >= 0 && seq < perSender)) {
        stray++;
        return;
      }
      const i = (from % N) * perSender + seq;
      if (seen[u][i]) {
        dup++;
        return;
      }
      seen[u][i] = 1;
      delivered++;
      if (record) e2e.push(t - Number(f[4]));
      if (from === u && sendT[u].has(seq)) {
        if (record) rtt.push(t - sendT[u].get(seq));
        sendT[u].delete(seq);
        inflight[u]--;
        acked++;
        pump(u);
      }
      check();
    };
    for (let u = 0; u < U; u++) {
      onError[u] = (el) => {
        const m = /^[a-z]+(\d+)-(\d+)$/.exec(el.attrs.id ?? "");
        if (!m || Number(m[1]) !== u || !sendT[u].has(Number(m[2]))) return;
        sendT[u].delete(Number(m[2]));
        inflight[u]--;
        failed++;
        pump(u);
        check();
      };
    }
    for (let u = 0; u < U; u++) pump(u);
    check();
    const remaining = Math.max(1000, ctx.deadline - now() - 10000);
    let timedOut = false;
    await withTimeout(allDone, remaining, `${tag} phase`).catch(() => {
      timedOut = true;
    });
    onGroupchat = null;
    return { total, expected, delivered, acked, failed, dup, stray, timedOut, e2e, rtt };
  }

  if (K > 0) {
    log(`muc: warm-up: ${K} messages per occupant`);
    const w = await phase("w", K, false);
    if (w.timedOut || w.failed) {
      throw new Error(
        `warm-up incomplete: ${w.delivered}/${w.expected} deliveries, ${w.failed} messages refused` +
          (stanzaErrors.length ? `: ${errSummary(stanzaErrors).join("; ")}` : ""),
      );
    }
  }
  const errorsBefore = stanzaErrors.length;
  ctx.quiesce = await ctx.meter.quiesce(o["quiesce-max"], o["quiesce-cores"]);
  log(`muc: sending ${U * M} groupchat messages (${U * M * N} deliveries)`);
  const a = ctx.meter.snap();
  const res = await phase("g", M, true);
  const b = ctx.meter.snap();
  const ph = ctx.meter.diff(a, b);
  await closeAll(clients);
  ctx.cleanup = null;
  const lat = stats(res.e2e);
  const measuredErrors = stanzaErrors.slice(errorsBefore);
  const cpu = ph.server_cpu_s === null || !res.delivered
    ? null
    : +(ph.server_cpu_s * 1e6 / res.delivered).toFixed(2);
  const rate = res.delivered / ph.wall_s;
  return {
    op: "groupchat_delivery",
    ops: res.delivered,
    expected: res.expected,
    messages: res.total,
    acked: res.acked,
    refused: res.failed,
    timed_out: res.timedOut,
    stanza_errors: measuredErrors.length,
    errors: errSummary(measuredErrors),
    duplicates: res.dup,
    stray: res.stray,
    rooms_created: created,
    join_wall_s: +joinWall.toFixed(3),
    rate_per_s: +rate.toFixed(2),
    msgs_per_s: +(res.acked / ph.wall_s).toFixed(2),
    lat_ms: lat,
    rtt_ms: stats(res.rtt),
    phase: ph,
    cpu_us_per_op: cpu,
    cpu_us_per_msg: ph.server_cpu_s === null || !res.acked
      ? null
      : Math.round(ph.server_cpu_s * 1e6 / res.acked),
    note:
      "a delivery is one occupant receiving one reflected groupchat message, the sender included",
    human:
      `${res.delivered}/${res.expected} deliveries of ${res.total} groupchat msgs (R=${R} N=${N} M=${M} W=${W}) in ${ph.wall_s}s = ${
        rate.toFixed(0)
      } deliveries/s; e2e p50 ${lat.p50 ?? "n/a"} ms p99 ${lat.p99 ?? "n/a"} ms; server CPU ${
        ph.server_cpu_s === null ? "n/a (no --server-pid)" : `${ph.server_cpu_s}s = ${cpu}`
      } us/delivery${measuredErrors.length ? `; ${measuredErrors.length} stanza errors` : ""}`,
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
    cleanup: null,
  };
  const base = {
    tool: "muc_load",
    version: VERSION,
    date: new Date().toISOString(),
    label: o.label,
    tag: o.tag || "muc",
    scenario: "muc",
    target: { host: o.host, port: o.port, domain: o.domain, starttls: o.starttls, mech: o.mech },
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
  let code = 0;
  try {
    const res = await scMuc(o, ctx);
    const ok = !res.timed_out && res.ops === res.expected && res.stanza_errors === 0;
    emit(res, ok);
    code = ok ? 0 : 1;
  } catch (e) {
    if (ctx.cleanup) await ctx.cleanup();
    emit({ error: String(e && e.stack ? e.stack.split("\n").slice(0, 3).join(" | ") : e) }, false);
    code = 1;
  }
  process.exit(code);
}

main();
