#!/usr/bin/env node
// floor_client.mjs — the load side of bench/floor.ts, against bench/floor_server.ts.
//
// Node.js >= 20, no npm dependencies. Arguments are key=value; the first is the mode:
//
//   relay  port= pid= tls=0|1 xml=0|1 pairs=20 messages=500 window=10 warmup=50
//     P pairs of connections (sender, then receiver, connected one after the other so that the
//     server pairs them by accept order). Each sender keeps W messages unacknowledged; a
//     receiver answers each message with a receipt; the bytes are those xmppbench's msg
//     scenario sends (../shared/bench/xmppbench.mjs scMsg). A stanza is counted at its
//     `</message>`. `warmup` messages per pair go first, unmeasured.
//     The archive floor (floor_server.ts archive) is driven by this mode too.
//   fanout port= pid= tls=0|1 xml=0|1 contacts=200 updates=300 warmup=20
//     one publisher connection, then R contacts (the server takes the first as the publisher).
//     The publisher sends xmppbench's fanout presence (../shared/bench/xmppbench.mjs
//     scFanout); the next goes once every contact has received it (counted at `</presence>`),
//     as xmppbench waits for all R deliveries of an update. `warmup` updates go first,
//     unmeasured.
//   login  port= pid= script=PATH starttls=0|1 logins=300 concurrency=20 warmup=20
//     L connections, C at a time, each through the steps of bench/fixtures/floor_login.json:
//     the step's client bytes, then wait for the step's server bytes (counted); TLS (node:tls,
//     certificate not verified) after the `starttls` step. All stay open until the last has
//     logged in, then close (the close step, then end): measured apart, as xmppbench measures
//     the login phase without the closes.
//   idle   port= tls=0|1 conns=1000 concurrency=50
//     opens N connections (direct TLS when tls=1), prints `held N` and keeps them until killed.
//
// The measured phases print one JSON line: the server's utime+stime (/proc/<pid>/stat) and the
// other load on the machine during the phase.

import net from "node:net";
import tls from "node:tls";
import fs from "node:fs";
import process from "node:process";
import { Buffer } from "node:buffer";
import { execFileSync } from "node:child_process";
import { performance } from "node:perf_hooks";

const args = Object.fromEntries(
  process.argv.slice(3).map((a) => {
    const i = a.indexOf("=");
    return [a.slice(0, i), a.slice(i + 1)];
  }),
);
const num = (k, d) => (args[k] === undefined ? d : Number(args[k]));
const PORT = num("port", 0);
const TLS = args.tls === "1";

let CLK_TCK = 100;
try {
  CLK_TCK = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
} catch { /* default */ }

function cpuS(pid) {
  const s = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}
function hostBusyS() {
  const l = fs.readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1)
    .map(Number);
  const total = l.slice(0, 8).reduce((a, b) => a + b, 0);
  return (total - l[3] - (l[4] || 0)) / CLK_TCK;
}
const selfCpuS = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
/** A snapshot of the server's CPU, the machine's and ours, for a phase. */
function snap() {
  return { t: performance.now(), server: cpuS(num("pid", 0)), host: hostBusyS(), self: selfCpuS() };
}
function phase(a, b) {
  const wall = (b.t - a.t) / 1000;
  const server = b.server - a.server;
  const other = b.host - a.host - server - (b.self - a.self);
  return {
    wall_s: +wall.toFixed(3),
    server_cpu_s: +server.toFixed(2),
    other_busy_cores: +Math.max(0, other / wall).toFixed(2),
  };
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/**
 * A measured phase of `n` items (`one`, `many`: their names), as relay and fanout print it:
 * the count, the phase, the server's CPU µs per item (to `digits`) and the items per second.
 */
function perItem(mode, xml, [one, many], n, ph, digits) {
  return {
    mode,
    tls: TLS,
    xml,
    [many]: n,
    ...ph,
    [`us_per_${one}`]: +(ph.server_cpu_s * 1e6 / n).toFixed(digits),
    [`${many}_per_s`]: Math.round(n / ph.wall_s),
  };
}

function open(starttlsLater = false) {
  return new Promise((resolve, reject) => {
    const onErr = (e) => reject(e);
    if (TLS && !starttlsLater) {
      const s = tls.connect(
        { host: "127.0.0.1", port: PORT, servername: "localhost", rejectUnauthorized: false },
        () => {
          s.off("error", onErr);
          resolve(s);
        },
      );
      s.once("error", onErr);
      s.setNoDelay(true);
      return;
    }
    const s = net.connect({ host: "127.0.0.1", port: PORT }, () => {
      s.off("error", onErr);
      resolve(s);
    });
    s.once("error", onErr);
    s.setNoDelay(true);
  });
}

// ---------------------------------------------------------------------------------- relay --

const STREAM = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' " +
  "xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0' xml:lang='en'>";

/** Calls `onStanza` with each complete `<message>…</message>` (or `close`) the socket delivers. */
function stanzas(sock, onStanza, close = "</message>") {
  let buf = "";
  sock.setEncoding("utf8");
  sock.on("data", (s) => {
    buf += s;
    let end;
    while ((end = buf.indexOf(close)) >= 0) {
      onStanza(buf.slice(0, end + close.length));
      buf = buf.slice(end + close.length);
    }
  });
}

async function relay() {
  const P = num("pairs", 20), M = num("messages", 500), W = num("window", 10);
  const WARM = num("warmup", 50);
  const xml = args.xml === "1";
  const runId = Math.random().toString(16).slice(2, 8);
  const pad = "x".repeat(24); // xmppbench: body-size 64 - 40
  const senders = [], receivers = [];
  for (let i = 0; i < P; i++) {
    senders.push(await open());
    receivers.push(await open());
  }
  if (xml) { for (const s of [...senders, ...receivers]) s.write(STREAM); }
  let target = 0, acked = 0, done = () => {};
  const st = senders.map(() => ({ sent: 0, inflight: 0 }));
  const pump = (i) => {
    const s = st[i];
    const to = `bench${P + i + 1}@localhost/xb-${runId}-${P + i}`;
    while (s.inflight < W && s.sent < target) {
      const seq = s.sent++;
      s.inflight++;
      const t = performance.now();
      senders[i].write(
        `<message to='${to}' type='chat' id='m${i}-${seq}'><body>xb ${i} ${seq} ${
          t.toFixed(3)
        } ${pad}</body><request xmlns='urn:xmpp:receipts'/></message>`,
      );
    }
  };
  senders.forEach((sock, i) =>
    stanzas(sock, () => {
      st[i].inflight--;
      if (++acked === target * P) done();
      else pump(i);
    })
  );
  receivers.forEach((sock, i) => {
    const from = `bench${i + 1}@localhost/xb-${runId}-${i}`;
    stanzas(sock, (el) => {
      const id = /id=["'](m[0-9]+-[0-9]+)["']/.exec(el)?.[1] ?? "";
      sock.write(
        `<message to='${from}' id='r${id}'><received xmlns='urn:xmpp:receipts' id='${id}'/></message>`,
      );
    });
  });
  const run = (n) =>
    new Promise((resolve) => {
      done = resolve;
      target += n;
      for (let i = 0; i < P; i++) pump(i);
    });
  const before = acked;
  await run(WARM);
  await sleep(500);
  const a = snap();
  await run(M);
  const b = snap();
  for (const s of [...senders, ...receivers]) s.destroy();
  return perItem("relay", xml, ["msg", "msgs"], acked - before - WARM * P, phase(a, b), 1);
}

// --------------------------------------------------------------------------------- fanout --

async function fanout() {
  const R = num("contacts", 200), K = num("updates", 300), WARM = num("warmup", 20);
  const xml = args.xml === "1";
  // The publisher first: the server tells it from its contacts by accept order.
  const hub = await open();
  const contacts = [];
  for (let i = 0; i < R; i++) contacts.push(await open());
  if (xml) hub.write(STREAM);
  let got = 0, want = 0, done = () => {};
  for (const c of contacts) {
    stanzas(c, () => {
      if (++got === want) done();
    }, "</presence>");
  }
  let k = 0;
  const update = () =>
    new Promise((resolve) => {
      done = resolve;
      want += R;
      // xmppbench's update k: show, then a status with its number and send time.
      hub.write(
        `<presence><show>${k % 2 ? "away" : "chat"}</show><status>xb ${k} ${
          performance.now().toFixed(3)
        }</status></presence>`,
      );
      k++;
    });
  for (let i = 0; i < WARM; i++) await update();
  await sleep(500);
  const before = got;
  const a = snap();
  for (let i = 0; i < K; i++) await update();
  const b = snap();
  for (const s of [hub, ...contacts]) s.destroy();
  return perItem("fanout", xml, ["delivery", "deliveries"], got - before, phase(a, b), 2);
}

// ---------------------------------------------------------------------------------- login --

async function login() {
  const script = JSON.parse(fs.readFileSync(args.script, "utf8"));
  const starttls = args.starttls === "1";
  const steps = starttls ? script.tls : script.tcp;
  const L = num("logins", 300), C = num("concurrency", 20), WARM = num("warmup", 20);

  /** Sends a step's client bytes and resolves once the server's bytes are in. */
  const step = (conn, s) =>
    new Promise((resolve, reject) => {
      let want = Buffer.byteLength(s.s);
      conn.expect = (n) => {
        want -= n;
        if (want <= 0) resolve();
      };
      conn.fail = reject;
      for (const c of s.c) conn.sock.write(c);
      if (want <= 0) resolve();
    });
  const attach = (conn, sock) => {
    conn.sock = sock;
    sock.on("data", (b) => conn.expect(b.length));
    sock.on("error", (e) => conn.fail(e));
  };
  const one = async () => {
    const conn = { sock: null, expect: () => {}, fail: () => {} };
    attach(conn, await open(true));
    for (const s of steps) {
      await step(conn, s);
      if (!s.starttls) continue;
      const raw = conn.sock;
      raw.removeAllListeners("data");
      const t = await new Promise((resolve, reject) => {
        const t = tls.connect(
          { socket: raw, servername: "localhost", rejectUnauthorized: false },
          () => resolve(t),
        );
        t.once("error", reject);
      });
      attach(conn, t);
    }
    return conn;
  };
  const close = async (conn) => {
    const closed = new Promise((r) => conn.sock.once("close", r));
    await step(conn, script.close);
    conn.sock.end();
    await closed;
  };
  const many = async (n) => {
    const conns = [];
    let next = 0;
    await Promise.all(Array.from({ length: Math.min(C, n) }, async () => {
      while (next < n) {
        next++;
        conns.push(await one());
      }
    }));
    return conns;
  };
  const closeAll = (conns) => Promise.all(conns.map(close));
  await closeAll(await many(WARM));
  await sleep(500);
  const a = snap();
  const conns = await many(L);
  const b = snap();
  await closeAll(conns);
  const c = snap();
  const ph = phase(a, b);
  const phClose = phase(b, c);
  return {
    mode: "login",
    starttls,
    logins: conns.length,
    ...ph,
    us_per_login: Math.round(ph.server_cpu_s * 1e6 / conns.length),
    logins_per_s: Math.round(conns.length / ph.wall_s),
    close: phClose,
    us_per_close: Math.round(phClose.server_cpu_s * 1e6 / conns.length),
  };
}

// ----------------------------------------------------------------------------------- idle --

async function idle() {
  const N = num("conns", 1000), C = num("concurrency", 50);
  const held = [];
  let next = 0;
  await Promise.all(Array.from({ length: C }, async () => {
    while (next < N) {
      next++;
      const s = await open();
      s.on("data", () => {});
      s.on("error", () => {});
      held.push(s);
    }
  }));
  console.log(`held ${held.length}`);
  await new Promise(() => {});
}

const modes = { relay, fanout, login, idle };
const mode = modes[process.argv[2]];
if (!mode) {
  console.error("usage: floor_client.mjs relay|fanout|login|idle key=value...");
  process.exit(2);
}
mode().then((r) => {
  if (r) console.log(JSON.stringify(r));
  process.exit(0);
}, (e) => {
  console.error(e?.stack ?? String(e));
  process.exit(1);
});
