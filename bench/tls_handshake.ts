/**
 * What one server-side TLS handshake costs on lib/transport/openssl.ts, in-process.
 *
 * `mem` (default): N handshakes against a client made with the same libssl over FFI, all in
 * memory (no socket): the time inside the server's calls (sslAccept, sslFeed, sslFree) is
 * measured alone (this thread's CPU time), so the figure is the engine's cost per handshake, FFI crossings included.
 * The client offers what node:tls 20 offers by default (TLS 1.3, an X25519 key share, SNI) and
 * reads the server's tickets. Then R round trips of a small record each way on one session
 * (sslFeed + sslEncrypt), the per-record cost of the message scenarios.
 *
 * `node`: N handshakes over loopback TCP from a node:tls client in a child process (C in
 * flight), the server being openssl.ts on Deno.listen as lib/transport/tcp.ts drives it; the
 * figure is this process's CPU (user + system) per handshake, socket I/O included.
 *
 *   deno run --allow-all bench/tls_handshake.ts [mem|node] [N]
 *
 * Run it on a copy of the code made before a change too (the imports are relative).
 * @module
 */
import process from "node:process";
import {
  sslAccept,
  sslContexts,
  sslEncrypt,
  sslFeed,
  sslFree,
  type SslSession,
} from "../lib/transport/openssl.ts";

const mode = Deno.args[0] ?? "mem";
const BATCH = 100;
const N = Number(Deno.args[1] ?? (mode === "mem" ? 3000 : 2000));

/** A self-signed ECDSA P-256 certificate, as the server makes for itself (lib/transport/certs.ts). */
async function material(): Promise<{ certPem: string; keyPem: string }> {
  const dir = await Deno.makeTempDir();
  const out = await new Deno.Command("openssl", {
    args: [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      `${dir}/key.pem`,
      "-out",
      `${dir}/cert.pem`,
      "-days",
      "30",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=DNS:localhost",
    ],
    stderr: "null",
  }).output();
  if (!out.success) throw new Error("openssl req failed");
  const m = {
    certPem: await Deno.readTextFile(`${dir}/cert.pem`),
    keyPem: await Deno.readTextFile(`${dir}/key.pem`),
  };
  await Deno.remove(dir, { recursive: true });
  return m;
}

// This thread's CPU time (clock_gettime(CLOCK_THREAD_CPUTIME_ID)), in ms: the server's calls
// timed by wall clock would count whatever else the machine's two cores run meanwhile.
const libc = Deno.dlopen("libc.so.6", {
  clock_gettime: { parameters: ["i32", "buffer"], result: "i32" },
}).symbols;
const ts = new BigInt64Array(2);
const threadMs = (): number => {
  libc.clock_gettime(3, ts);
  return Number(ts[0]) * 1e3 + Number(ts[1]) / 1e6;
};

const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

const made = sslContexts(new Map([["localhost", await material()]]));
if (made === undefined) throw new Error("OpenSSL is not available here (--allow-ffi?)");
const contexts = made;

// --- mem: an FFI client over memory BIOs -------------------------------------------------

function memBench(): void {
  const ssl = Deno.dlopen("libssl.so.3", {
    TLS_client_method: { parameters: [], result: "pointer" },
    SSL_CTX_new: { parameters: ["pointer"], result: "pointer" },
    SSL_new: { parameters: ["pointer"], result: "pointer" },
    SSL_free: { parameters: ["pointer"], result: "void" },
    SSL_ctrl: { parameters: ["pointer", "i32", "i64", "buffer"], result: "i64" },
    SSL_set_bio: { parameters: ["pointer", "pointer", "pointer"], result: "void" },
    SSL_set_connect_state: { parameters: ["pointer"], result: "void" },
    SSL_do_handshake: { parameters: ["pointer"], result: "i32" },
    SSL_read: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
    SSL_write: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  }).symbols;
  const cr = Deno.dlopen("libcrypto.so.3", {
    BIO_s_mem: { parameters: [], result: "pointer" },
    BIO_new: { parameters: ["pointer"], result: "pointer" },
    BIO_write: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
    BIO_read: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
    BIO_ctrl: { parameters: ["pointer", "i32", "i64", "pointer"], result: "i64" },
    ERR_clear_error: { parameters: [], result: "void" },
  }).symbols;
  const cctx = ssl.SSL_CTX_new(ssl.TLS_client_method())!;
  const host = new TextEncoder().encode("localhost\0");
  const buf = new Uint8Array(64 * 1024);
  const noop = () => {};

  const client = () => {
    const c = ssl.SSL_new(cctx)!;
    const rb = cr.BIO_new(cr.BIO_s_mem())!;
    const wb = cr.BIO_new(cr.BIO_s_mem())!;
    cr.BIO_ctrl(rb, 130, -1n, null); // empty means "retry"
    ssl.SSL_set_bio(c, rb, wb);
    ssl.SSL_set_connect_state(c);
    ssl.SSL_ctrl(c, 55, 0n, host); // SSL_set_tlsext_host_name
    return { c, rb, wb };
  };
  const take = (wb: Deno.PointerValue): Uint8Array => {
    const n = cr.BIO_read(wb, buf, buf.length);
    return n > 0 ? buf.slice(0, n) : new Uint8Array(0);
  };

  /** One handshake; returns the ms spent in the server's calls. */
  const one = (): number => {
    const { c, rb, wb } = client();
    let server = 0;
    ssl.SSL_do_handshake(c);
    const hello = take(wb);
    let t = threadMs();
    const s = sslAccept(contexts);
    const r1 = sslFeed(s, hello, noop, false);
    server += threadMs() - t;
    cr.BIO_write(rb, r1.out!, r1.out!.length);
    if (ssl.SSL_do_handshake(c) !== 1) throw new Error("client handshake");
    const fin = take(wb);
    t = threadMs();
    const r2 = sslFeed(s, fin, noop);
    server += threadMs() - t;
    if (!r2.established) throw new Error("server handshake");
    // The client reads what followed (tickets), as node:tls does.
    if (r2.out !== undefined) {
      cr.BIO_write(rb, r2.out, r2.out.length);
      ssl.SSL_read(c, buf, buf.length);
    }
    t = threadMs();
    sslFree(s);
    server += threadMs() - t;
    ssl.SSL_free(c);
    cr.ERR_clear_error();
    return server;
  };

  for (let i = 0; i < 200; i++) one(); // warm up (JIT, OpenSSL's caches)
  // In batches: the lowest batch is the least disturbed by whatever else the machine runs.
  const batches: number[] = [];
  const c0 = cpuMs();
  const w0 = performance.now();
  for (let b = 0; b < N / BATCH; b++) {
    let server = 0;
    for (let i = 0; i < BATCH; i++) server += one();
    batches.push(server / BATCH * 1000);
  }
  const wall = performance.now() - w0;
  const cpu = cpuMs() - c0;
  batches.sort((a, b) => a - b);
  console.log(
    `handshakes: ${N}; server calls µs per handshake (this thread's CPU): min batch ` +
      `${batches[0].toFixed(0)}, median ${batches[batches.length >> 1].toFixed(0)}; ` +
      `client + server CPU ${(cpu / N * 1000).toFixed(0)} µs, wall ${
        (wall / N * 1000).toFixed(0)
      } µs`,
  );

  // Records: a stanza-sized record each way on one established session.
  const { c, rb, wb } = client();
  ssl.SSL_do_handshake(c);
  const s: SslSession = sslAccept(contexts);
  const r1 = sslFeed(s, take(wb), noop, false);
  cr.BIO_write(rb, r1.out!, r1.out!.length);
  ssl.SSL_do_handshake(c);
  const r2 = sslFeed(s, take(wb), noop);
  if (r2.out) cr.BIO_write(rb, r2.out, r2.out.length);
  ssl.SSL_read(c, buf, buf.length);
  const stanza = new TextEncoder().encode(
    "<message to='b@localhost' id='x1' type='chat'><body>" + "x".repeat(120) +
      "</body><request xmlns='urn:xmpp:receipts'/></message>",
  );
  const R = N * 10;
  let got = 0;
  const recBatches: number[] = [];
  const onPlain = (p: Uint8Array) => got += p.length;
  for (let b = 0; b < R / 1000; b++) {
    let ms = 0;
    for (let i = 0; i < 1000; i++) {
      ssl.SSL_write(c, stanza, stanza.length);
      const rec = take(wb);
      const t = threadMs();
      sslFeed(s, rec, onPlain);
      const sealed = sslEncrypt(s, stanza)!;
      ms += threadMs() - t;
      cr.BIO_write(rb, sealed, sealed.length);
      ssl.SSL_read(c, buf, buf.length);
    }
    recBatches.push(ms);
  }
  if (got !== R * stanza.length) throw new Error("records lost");
  recBatches.sort((a, b) => a - b);
  console.log(
    `records: ${R} round trips of ${stanza.length} bytes; server sslFeed + sslEncrypt µs per ` +
      `pair: min batch ${recBatches[0].toFixed(2)}, median ${
        recBatches[recBatches.length >> 1].toFixed(2)
      }`,
  );
  sslFree(s);
}

// --- node: a node:tls client in a child process over loopback ----------------------------

const CLIENT = `
const tls = require("node:tls");
const [port, n, c] = process.argv.slice(1).map(Number);
let started = 0, done = 0;
function next() {
  if (started >= n) return;
  started++;
  const s = tls.connect({ port, host: "127.0.0.1", servername: "localhost", rejectUnauthorized: false }, () => {
    s.end();
  });
  s.on("data", () => {});
  s.on("error", () => {});
  s.on("close", () => { if (++done === n) process.exit(0); next(); });
}
for (let i = 0; i < c; i++) next();
`;

async function serveOne(conn: Deno.Conn): Promise<void> {
  const s = sslAccept(contexts);
  const buf = new Uint8Array(4096);
  try {
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) return;
      const r = sslFeed(s, buf.subarray(0, n), () => {});
      if (r.out !== undefined) await conn.write(r.out);
      if (r.error !== undefined || s.peerClosed) return;
    }
  } catch {
    // reset by the peer
  } finally {
    sslFree(s);
    try {
      conn.close();
    } catch {
      // closed
    }
  }
}

async function nodeBench(): Promise<void> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  (async () => {
    for await (const conn of listener) void serveOne(conn);
  })();
  const run = async (n: number) => {
    const out = await new Deno.Command("node", {
      args: ["-e", CLIENT, String(port), String(n), "10"],
      stdout: "inherit",
      stderr: "inherit",
    }).output();
    if (!out.success) throw new Error("client failed");
  };
  await run(200);
  const c0 = cpuMs();
  const w0 = performance.now();
  await run(N);
  const cpu = cpuMs() - c0;
  const wall = performance.now() - w0;
  console.log(
    `handshakes over loopback: ${N}; server process CPU ${(cpu / N * 1000).toFixed(0)} µs per ` +
      `connection (accept, handshake, close_notify, close); wall ${
        (wall / N * 1000).toFixed(0)
      } µs`,
  );
  listener.close();
}

if (mode === "mem") memBench();
else await nodeBench();
