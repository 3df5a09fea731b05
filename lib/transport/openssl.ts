/**
 * Server-side TLS with the system's OpenSSL (libssl.so.3) through Deno FFI, over memory BIOs:
 * the connection's bytes go in with {@link sslFeed}, plaintext and the bytes to send come out,
 * all synchronously on the JS thread.
 *
 * Why not `node:tls`: in Deno its server sockets cost ~30 KB per idle connection (a Rust
 * TLSWrap with its buffers, a JS stream pair and their states), more than the rest of an XMPP
 * session, and every record crosses several JS streams. Here an idle session holds an `SSL`
 * whose record buffers are released while idle (`SSL_MODE_RELEASE_BUFFERS`) and two memory BIOs
 * that are replaced after a large record so that they do not keep its size.
 *
 * Everything is optional: without `--allow-ffi`, off Linux, or without libssl 3 the answer is
 * `undefined` and the caller uses node:tls.
 * @module
 */

const SSL_SYMBOLS = {
  OPENSSL_init_ssl: { parameters: ["u64", "pointer"], result: "i32" },
  TLS_server_method: { parameters: [], result: "pointer" },
  SSL_CTX_new: { parameters: ["pointer"], result: "pointer" },
  SSL_CTX_free: { parameters: ["pointer"], result: "void" },
  SSL_CTX_ctrl: { parameters: ["pointer", "i32", "i64", "pointer"], result: "i64" },
  SSL_CTX_callback_ctrl: { parameters: ["pointer", "i32", "function"], result: "i64" },
  SSL_CTX_set_options: { parameters: ["pointer", "u64"], result: "u64" },
  SSL_CTX_use_certificate: { parameters: ["pointer", "pointer"], result: "i32" },
  SSL_CTX_use_PrivateKey: { parameters: ["pointer", "pointer"], result: "i32" },
  SSL_CTX_check_private_key: { parameters: ["pointer"], result: "i32" },
  SSL_CTX_set_alpn_select_cb: { parameters: ["pointer", "function", "pointer"], result: "void" },
  SSL_CTX_set_num_tickets: { parameters: ["pointer", "usize"], result: "i32" },
  SSL_new: { parameters: ["pointer"], result: "pointer" },
  SSL_free: { parameters: ["pointer"], result: "void" },
  SSL_set_bio: { parameters: ["pointer", "pointer", "pointer"], result: "void" },
  SSL_set0_rbio: { parameters: ["pointer", "pointer"], result: "void" },
  SSL_set0_wbio: { parameters: ["pointer", "pointer"], result: "void" },
  SSL_set_accept_state: { parameters: ["pointer"], result: "void" },
  // The handshake calls back into JS (SNI, ALPN), synchronously on this thread.
  SSL_do_handshake: { parameters: ["pointer"], result: "i32" },
  SSL_read: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  SSL_write: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  SSL_get_error: { parameters: ["pointer", "i32"], result: "i32" },
  SSL_has_pending: { parameters: ["pointer"], result: "i32" },
  SSL_shutdown: { parameters: ["pointer"], result: "i32" },
  SSL_get_servername: { parameters: ["pointer", "i32"], result: "pointer" },
  SSL_get_SSL_CTX: { parameters: ["pointer"], result: "pointer" },
  SSL_set_SSL_CTX: { parameters: ["pointer", "pointer"], result: "pointer" },
  SSL_get_version: { parameters: ["pointer"], result: "pointer" },
  SSL_get0_alpn_selected: { parameters: ["pointer", "buffer", "buffer"], result: "void" },
  SSL_select_next_proto: {
    parameters: ["pointer", "pointer", "buffer", "u32", "pointer", "u32"],
    result: "i32",
  },
  SSL_export_keying_material: {
    parameters: ["pointer", "buffer", "usize", "buffer", "usize", "pointer", "usize", "i32"],
    result: "i32",
  },
} as const satisfies Deno.ForeignLibraryInterface;

const CRYPTO_SYMBOLS = {
  BIO_s_mem: { parameters: [], result: "pointer" },
  BIO_new: { parameters: ["pointer"], result: "pointer" },
  BIO_new_mem_buf: { parameters: ["buffer", "i32"], result: "pointer" },
  BIO_free: { parameters: ["pointer"], result: "i32" },
  BIO_write: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  BIO_read: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  BIO_ctrl: { parameters: ["pointer", "i32", "i64", "pointer"], result: "i64" },
  PEM_read_bio_X509: {
    parameters: ["pointer", "pointer", "pointer", "pointer"],
    result: "pointer",
  },
  PEM_read_bio_PrivateKey: {
    parameters: ["pointer", "pointer", "pointer", "pointer"],
    result: "pointer",
  },
  X509_free: { parameters: ["pointer"], result: "void" },
  EVP_PKEY_free: { parameters: ["pointer"], result: "void" },
  ERR_get_error: { parameters: [], result: "u64" },
  ERR_error_string_n: { parameters: ["u64", "buffer", "usize"], result: "void" },
  ERR_clear_error: { parameters: [], result: "void" },
} as const satisfies Deno.ForeignLibraryInterface;

type SslLib = Deno.DynamicLibrary<typeof SSL_SYMBOLS>["symbols"];
type CryptoLib = Deno.DynamicLibrary<typeof CRYPTO_SYMBOLS>["symbols"];
type Ptr = NonNullable<Deno.PointerValue>;

// From <openssl/ssl.h>, <openssl/bio.h>, <openssl/tls1.h> (stable across OpenSSL 3).
const SSL_CTRL_EXTRA_CHAIN_CERT = 14;
const SSL_CTRL_MODE = 33;
const SSL_CTRL_SET_SESS_CACHE_MODE = 44;
const SSL_CTRL_SET_TLSEXT_SERVERNAME_CB = 53;
const SSL_CTRL_SET_MIN_PROTO_VERSION = 123;
const SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER = 0x2n;
const SSL_MODE_NO_AUTO_CHAIN = 0x8n;
const SSL_MODE_RELEASE_BUFFERS = 0x10n;
const SSL_SESS_CACHE_OFF = 0n;
const TLS1_2_VERSION = 0x0303n;
const SSL_OP_NO_COMPRESSION = 1n << 17n;
const SSL_OP_NO_RENEGOTIATION = 1n << 30n;
const SSL_ERROR_WANT_READ = 2;
const SSL_ERROR_WANT_WRITE = 3;
const SSL_ERROR_ZERO_RETURN = 6;
const TLSEXT_NAMETYPE_host_name = 0;
const SSL_TLSEXT_ERR_OK = 0;
const SSL_TLSEXT_ERR_NOACK = 3;
const OPENSSL_NPN_NEGOTIATED = 1;
const BIO_CTRL_PENDING = 10;
const BIO_C_SET_BUF_MEM_EOF_RETURN = 130;
const OPENSSL_INIT_NO_ATEXIT = 0x00080000n;

const SNI_CALLBACK = { parameters: ["pointer", "pointer", "pointer"], result: "i32" } as const;
const ALPN_CALLBACK = {
  parameters: ["pointer", "pointer", "pointer", "pointer", "u32", "pointer"],
  result: "i32",
} as const;

/** The loaded libraries, and the callbacks every context shares. */
interface Engine {
  readonly ssl: SslLib;
  readonly crypto: CryptoLib;
  readonly memMethod: Ptr;
  readonly sniCallback: Deno.UnsafeCallback<typeof SNI_CALLBACK>;
  readonly alpnCallback: Deno.UnsafeCallback<typeof ALPN_CALLBACK>;
}

// undefined: not tried yet; null: tried and unavailable.
let engine: Engine | null | undefined;

/** Each default context's address, to the contexts its SNI may switch to. */
const sniTables = new Map<bigint, ReadonlyMap<string, Ptr>>();
/** ALPN protocol lists (wire format) of sessions in their handshake, by `SSL` address. */
const alpnOffers = new Map<bigint, Uint8Array>();

function loadEngine(): Engine | null {
  if (engine !== undefined) return engine;
  engine = null;
  if (Deno.build.os !== "linux") return engine;
  // querySync never prompts; "prompt" means the process was not started with --allow-ffi.
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return engine;
  try {
    const ssl = Deno.dlopen("libssl.so.3", SSL_SYMBOLS).symbols;
    const crypto = Deno.dlopen("libcrypto.so.3", CRYPTO_SYMBOLS).symbols;
    // No cleanup handler at exit: the runtime tears down its threads and libraries in its own
    // order, and OpenSSL's global state may as well go with the process.
    if (ssl.OPENSSL_init_ssl(OPENSSL_INIT_NO_ATEXIT, null) !== 1) return engine;
    const memMethod = crypto.BIO_s_mem();
    if (memMethod === null) return engine;
    const loaded: Engine = {
      ssl,
      crypto,
      memMethod,
      sniCallback: new Deno.UnsafeCallback(SNI_CALLBACK, (s) => selectContext(ssl, s)),
      alpnCallback: new Deno.UnsafeCallback(
        ALPN_CALLBACK,
        (s, out, outLen, offered, offeredLen) =>
          selectProtocol(ssl, s, out, outLen, offered, offeredLen),
      ),
    };
    // The callbacks live as long as the process: contexts made later use them too.
    loaded.sniCallback.unref();
    loaded.alpnCallback.unref();
    engine = loaded;
  } catch {
    // No libssl 3 (or musl): node:tls serves instead.
    engine = null;
  }
  return engine;
}

function selectContext(ssl: SslLib, s: Deno.PointerValue): number {
  if (s === null) return SSL_TLSEXT_ERR_OK;
  const namePtr = ssl.SSL_get_servername(s, TLSEXT_NAMETYPE_host_name);
  if (namePtr === null) return SSL_TLSEXT_ERR_OK;
  const table = sniTables.get(BigInt(Deno.UnsafePointer.value(ssl.SSL_get_SSL_CTX(s))));
  const name = new Deno.UnsafePointerView(namePtr).getCString().toLowerCase();
  const ctx = table?.get(name);
  // An unknown name keeps the default certificate, as node:tls and Prosody do.
  if (ctx !== undefined) ssl.SSL_set_SSL_CTX(s, ctx);
  return SSL_TLSEXT_ERR_OK;
}

function selectProtocol(
  ssl: SslLib,
  s: Deno.PointerValue,
  out: Deno.PointerValue,
  outLen: Deno.PointerValue,
  offered: Deno.PointerValue,
  offeredLen: number,
): number {
  if (s === null) return SSL_TLSEXT_ERR_NOACK;
  const ours = alpnOffers.get(BigInt(Deno.UnsafePointer.value(s)));
  if (ours === undefined) return SSL_TLSEXT_ERR_NOACK;
  const r = ssl.SSL_select_next_proto(out, outLen, ours, ours.length, offered, offeredLen);
  // No protocol in common: carry on without ALPN rather than fail (RFC 7301 allows either).
  return r === OPENSSL_NPN_NEGOTIATED ? SSL_TLSEXT_ERR_OK : SSL_TLSEXT_ERR_NOACK;
}

/** Whether OpenSSL can serve here. */
export function opensslAvailable(): boolean {
  return loadEngine() !== null;
}

/** OpenSSL's error queue as text (and emptied, so the next call starts clean). */
function takeErrors(c: CryptoLib): string {
  const parts: string[] = [];
  const buf = new Uint8Array(256);
  for (let code = c.ERR_get_error(); code !== 0n; code = c.ERR_get_error()) {
    c.ERR_error_string_n(code, buf, BigInt(buf.length));
    const end = buf.indexOf(0);
    parts.push(new TextDecoder().decode(buf.subarray(0, end < 0 ? buf.length : end)));
  }
  return parts.join("; ") || "unknown OpenSSL error";
}

function memBio(e: Engine, data: Uint8Array): Ptr {
  const bio = e.crypto.BIO_new_mem_buf(data, data.length);
  if (bio === null) throw new Error(`BIO_new_mem_buf: ${takeErrors(e.crypto)}`);
  return bio;
}

/** Server contexts by host name (the first is the default), made from PEM material. */
export interface SslContexts {
  readonly byHost: ReadonlyMap<string, Ptr>;
  readonly defaultContext: Ptr;
}

function newContext(e: Engine, certPem: string, keyPem: string): Ptr {
  const { ssl, crypto } = e;
  const ctx = ssl.SSL_CTX_new(ssl.TLS_server_method());
  if (ctx === null) throw new Error(`SSL_CTX_new: ${takeErrors(crypto)}`);
  try {
    const pem = new TextEncoder().encode(certPem);
    const bio = memBio(e, pem);
    try {
      const leaf = crypto.PEM_read_bio_X509(bio, null, null, null);
      if (leaf === null) throw new Error(`certificate: ${takeErrors(crypto)}`);
      const ok = ssl.SSL_CTX_use_certificate(ctx, leaf);
      crypto.X509_free(leaf);
      if (ok !== 1) throw new Error(`certificate: ${takeErrors(crypto)}`);
      // The rest of the file is the chain; the context owns what it is given.
      for (;;) {
        const extra = crypto.PEM_read_bio_X509(bio, null, null, null);
        if (extra === null) break;
        if (ssl.SSL_CTX_ctrl(ctx, SSL_CTRL_EXTRA_CHAIN_CERT, 0n, extra) !== 1n) {
          crypto.X509_free(extra);
          throw new Error(`certificate chain: ${takeErrors(crypto)}`);
        }
      }
      crypto.ERR_clear_error(); // the end of the PEM file is reported as an error
    } finally {
      crypto.BIO_free(bio);
    }
    const keyBio = memBio(e, new TextEncoder().encode(keyPem));
    try {
      const key = crypto.PEM_read_bio_PrivateKey(keyBio, null, null, null);
      if (key === null) throw new Error(`private key: ${takeErrors(crypto)}`);
      const ok = ssl.SSL_CTX_use_PrivateKey(ctx, key);
      crypto.EVP_PKEY_free(key);
      if (ok !== 1 || ssl.SSL_CTX_check_private_key(ctx) !== 1) {
        throw new Error(`private key: ${takeErrors(crypto)}`);
      }
    } finally {
      crypto.BIO_free(keyBio);
    }
    // No automatic chain: the chain is what the PEM file holds (added above), and building one
    // would run a certificate verification against the (empty) store on every handshake.
    ssl.SSL_CTX_ctrl(
      ctx,
      SSL_CTRL_MODE,
      SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_NO_AUTO_CHAIN,
      null,
    );
    ssl.SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, TLS1_2_VERSION, null);
    // Clients resume with tickets if at all; a server-side cache would hold every session.
    ssl.SSL_CTX_ctrl(ctx, SSL_CTRL_SET_SESS_CACHE_MODE, SSL_SESS_CACHE_OFF, null);
    // No TLS 1.3 tickets. Each costs every handshake a serialised, encrypted and MACed session
    // (about 7 % of the server's handshake instructions with OpenSSL 3.0) and a write of its
    // own once the client's Finished is in, while a TLS 1.3 resumption spares the server little
    // (it still does the key exchange; only the certificate signature goes) and XMPP sessions
    // resume at their own level (XEP-0198). Prosody does not resume either: LuaSec turns the
    // session cache off and Prosody sets `no_ticket`, so the ticket it sends cannot be used.
    // TLS 1.2 clients still get a ticket when they ask: resuming there skips the whole handshake.
    ssl.SSL_CTX_set_num_tickets(ctx, 0n);
    ssl.SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    ssl.SSL_CTX_callback_ctrl(ctx, SSL_CTRL_SET_TLSEXT_SERVERNAME_CB, e.sniCallback.pointer);
    ssl.SSL_CTX_set_alpn_select_cb(ctx, e.alpnCallback.pointer, null);
    return ctx;
  } catch (err) {
    ssl.SSL_CTX_free(ctx);
    throw err;
  }
}

/**
 * OpenSSL contexts for PEM material per host (the first is the default), or undefined where
 * OpenSSL cannot serve. Throws when the material is refused (a bad certificate or key).
 */
export function sslContexts(
  material: ReadonlyMap<string, { readonly certPem: string; readonly keyPem: string }>,
): SslContexts | undefined {
  const e = loadEngine();
  if (e === null || material.size === 0) return undefined;
  const byHost = new Map<string, Ptr>();
  for (const [host, m] of material) byHost.set(host, newContext(e, m.certPem, m.keyPem));
  const defaultContext = byHost.values().next().value!;
  sniTables.set(BigInt(Deno.UnsafePointer.value(defaultContext)), byHost);
  return { byHost, defaultContext };
}

/** One server-side TLS session over memory BIOs. */
export interface SslSession {
  ssl: Ptr | null;
  rbio: Ptr;
  wbio: Ptr;
  established: boolean;
  /** The peer sent close_notify. */
  peerClosed: boolean;
  /** Bytes that went into `rbio` since it was last replaced. */
  rbioBytes: number;
}

// A BIO keeps the capacity its largest burst needed; past this many bytes it is replaced once
// drained, so that an idle session does not hold the size of its login's largest record.
const BIO_KEEP = 4096;
// SSL_read's target: one record's plaintext at most. Shared, since every call is synchronous.
const plainBuf = new Uint8Array(16 * 1024 + 256);
// BIO_read's target for what goes to the peer: a few records. Shared, as plainBuf.
const sealBuf = new Uint8Array(64 * 1024);
const lenBuf = new Uint8Array(4);
const ptrBuf = new BigUint64Array(1);

function newMemBio(e: Engine, read: boolean): Ptr {
  const bio = e.crypto.BIO_new(e.memMethod);
  if (bio === null) throw new Error(`BIO_new: ${takeErrors(e.crypto)}`);
  // An empty read BIO means "wait for more", not end of file.
  if (read) e.crypto.BIO_ctrl(bio, BIO_C_SET_BUF_MEM_EOF_RETURN, -1n, null);
  return bio;
}

/** Encodes protocol names in ALPN's wire format (length-prefixed). */
export function alpnWire(protocols: readonly string[]): Uint8Array {
  const parts = protocols.map((p) => new TextEncoder().encode(p));
  const out = new Uint8Array(parts.reduce((n, p) => n + 1 + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out[off++] = p.length;
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** A new server session in the accept state, offering `alpn` if the client asks. */
export function sslAccept(contexts: SslContexts, alpn?: readonly string[]): SslSession {
  const e = loadEngine()!;
  const ssl = e.ssl.SSL_new(contexts.defaultContext);
  if (ssl === null) throw new Error(`SSL_new: ${takeErrors(e.crypto)}`);
  const rbio = newMemBio(e, true);
  const wbio = newMemBio(e, false);
  e.ssl.SSL_set_bio(ssl, rbio, wbio);
  e.ssl.SSL_set_accept_state(ssl);
  if (alpn !== undefined && alpn.length > 0) {
    alpnOffers.set(BigInt(Deno.UnsafePointer.value(ssl)), alpnWire(alpn));
  }
  return { ssl, rbio, wbio, established: false, peerClosed: false, rbioBytes: 0 };
}

/** What one batch of received bytes produced. */
export interface FeedResult {
  /** Bytes to send to the peer (handshake messages, tickets, alerts), if any. */
  readonly out?: Uint8Array;
  /** The handshake finished during this call. */
  readonly established: boolean;
  /** A fatal TLS error (the session is unusable). */
  readonly error?: string;
}

// The results that carry nothing, made once: a feed returns one of them for most reads.
const NOTHING: FeedResult = Object.freeze({ established: false });
const CLOSED: FeedResult = Object.freeze({ established: false, error: "session closed" });

/** What a step that wrote `out` (if anything) for the peer returns. */
function wrote(out: Uint8Array | undefined): FeedResult {
  return out === undefined ? NOTHING : { out, established: false };
}

/**
 * Takes whatever OpenSSL wrote for the peer: read straight into a shared buffer and copied out
 * at its size (the copy goes to an asynchronous write). One call when there is nothing, which
 * is the common case after a read, rather than asking for the size first.
 */
function drain(e: Engine, s: SslSession): Uint8Array | undefined {
  let n = e.crypto.BIO_read(s.wbio, sealBuf, sealBuf.length);
  if (n <= 0) return undefined;
  let out: Uint8Array;
  if (n < sealBuf.length) out = sealBuf.slice(0, n);
  else {
    // More than the buffer holds (a large batch): gathered in parts.
    const parts = [sealBuf.slice()];
    let total = n;
    while ((n = e.crypto.BIO_read(s.wbio, sealBuf, sealBuf.length)) > 0) {
      parts.push(sealBuf.slice(0, n));
      total += n;
    }
    out = new Uint8Array(total);
    let off = 0;
    for (const p of parts) {
      out.set(p, off);
      off += p.length;
    }
  }
  if (out.length > BIO_KEEP && s.ssl !== null) {
    const fresh = newMemBio(e, false);
    e.ssl.SSL_set0_wbio(s.ssl, fresh); // frees the old one
    s.wbio = fresh;
  }
  return out;
}

function fatal(e: Engine, s: SslSession, call: string, code: number): FeedResult {
  const error = `${call}: ${code === 5 ? "protocol error" : takeErrors(e.crypto)}`;
  e.crypto.ERR_clear_error();
  return { out: drain(e, s), established: false, error };
}

/**
 * Feeds bytes read from the peer. Before the handshake is done this advances it (and nothing
 * is read); after, each record's plaintext goes to `onPlain` (a view into a shared buffer,
 * valid only during the call). `read: false` stops after the handshake, leaving what follows
 * inside the session for a later {@link sslPump}.
 */
export function sslFeed(
  s: SslSession,
  data: Uint8Array,
  onPlain: (plain: Uint8Array) => void,
  read = true,
): FeedResult {
  const e = loadEngine()!;
  if (s.ssl === null) return CLOSED;
  if (data.length > 0) {
    e.crypto.BIO_write(s.rbio, data, data.length);
    s.rbioBytes += data.length;
  }
  let established = false;
  if (!s.established) {
    const r = e.ssl.SSL_do_handshake(s.ssl);
    if (r !== 1) {
      const code = e.ssl.SSL_get_error(s.ssl, r);
      if (code !== SSL_ERROR_WANT_READ && code !== SSL_ERROR_WANT_WRITE) {
        return fatal(e, s, "handshake", code);
      }
      return wrote(drain(e, s));
    }
    s.established = established = true;
    alpnOffers.delete(BigInt(Deno.UnsafePointer.value(s.ssl)));
    if (!read) return { out: drain(e, s), established };
  }
  const pumped = sslPumpInner(e, s, onPlain);
  return established && pumped.error === undefined ? { out: pumped.out, established } : pumped;
}

/** Reads whatever plaintext the session already holds (after {@link sslFeed} with `read: false`). */
export function sslPump(s: SslSession, onPlain: (plain: Uint8Array) => void): FeedResult {
  return sslPumpInner(loadEngine()!, s, onPlain);
}

function sslPumpInner(
  e: Engine,
  s: SslSession,
  onPlain: (plain: Uint8Array) => void,
): FeedResult {
  if (s.ssl === null) return CLOSED;
  let drained = false;
  for (;;) {
    const n = e.ssl.SSL_read(s.ssl, plainBuf, plainBuf.length);
    if (n > 0) {
      onPlain(plainBuf.subarray(0, n));
      if (s.ssl === null) return NOTHING; // closed by onPlain
      // Nothing left, neither received bytes in the BIO nor a record OpenSSL has read but not
      // yet returned: asked directly, since a read that finds nothing costs more than both
      // questions (a read usually brings one record).
      if (
        e.ssl.SSL_has_pending(s.ssl) === 0 &&
        Number(e.crypto.BIO_ctrl(s.rbio, BIO_CTRL_PENDING, 0n, null)) === 0
      ) {
        drained = true;
        break;
      }
      continue;
    }
    const code = e.ssl.SSL_get_error(s.ssl, n);
    if (code === SSL_ERROR_ZERO_RETURN) {
      s.peerClosed = true;
      break;
    }
    if (code !== SSL_ERROR_WANT_READ && code !== SSL_ERROR_WANT_WRITE) {
      return fatal(e, s, "read", code);
    }
    break;
  }
  if (
    s.rbioBytes > BIO_KEEP &&
    (drained || Number(e.crypto.BIO_ctrl(s.rbio, BIO_CTRL_PENDING, 0n, null)) === 0)
  ) {
    const fresh = newMemBio(e, true);
    e.ssl.SSL_set0_rbio(s.ssl, fresh); // frees the old one
    s.rbio = fresh;
    s.rbioBytes = 0;
  }
  return wrote(drain(e, s));
}

/** Encrypts `plain` into the bytes to send. */
export function sslEncrypt(s: SslSession, plain: Uint8Array): Uint8Array | undefined {
  const e = loadEngine()!;
  if (s.ssl === null || plain.length === 0) return undefined;
  const n = e.ssl.SSL_write(s.ssl, plain, plain.length);
  if (n !== plain.length) {
    e.crypto.ERR_clear_error();
    return undefined;
  }
  return drain(e, s);
}

/** Our close_notify, to send before closing the connection. */
export function sslShutdown(s: SslSession): Uint8Array | undefined {
  const e = loadEngine()!;
  if (s.ssl === null || !s.established) return undefined;
  e.ssl.SSL_shutdown(s.ssl);
  e.crypto.ERR_clear_error();
  return drain(e, s);
}

/** Frees the session; later calls on it do nothing. */
export function sslFree(s: SslSession): void {
  if (s.ssl === null) return;
  const e = loadEngine()!;
  alpnOffers.delete(BigInt(Deno.UnsafePointer.value(s.ssl)));
  e.ssl.SSL_free(s.ssl); // frees both BIOs
  s.ssl = null;
}

/** The negotiated protocol version ("TLSv1.3"). */
export function sslVersion(s: SslSession): string | undefined {
  if (s.ssl === null) return undefined;
  const p = loadEngine()!.ssl.SSL_get_version(s.ssl);
  return p === null ? undefined : new Deno.UnsafePointerView(p).getCString();
}

/** The host name the client asked for (SNI), lower-cased. */
export function sslServerName(s: SslSession): string | undefined {
  if (s.ssl === null) return undefined;
  const p = loadEngine()!.ssl.SSL_get_servername(s.ssl, TLSEXT_NAMETYPE_host_name);
  return p === null ? undefined : new Deno.UnsafePointerView(p).getCString().toLowerCase();
}

/** The protocol ALPN settled on. */
export function sslAlpn(s: SslSession): string | undefined {
  if (s.ssl === null) return undefined;
  loadEngine()!.ssl.SSL_get0_alpn_selected(s.ssl, new Uint8Array(ptrBuf.buffer), lenBuf);
  const len = new DataView(lenBuf.buffer).getUint32(0, true);
  const p = Deno.UnsafePointer.create(ptrBuf[0]);
  if (p === null || len === 0) return undefined;
  return new TextDecoder().decode(new Deno.UnsafePointerView(p).getArrayBuffer(len).slice(0));
}

/** RFC 5705 keying material (RFC 9266 tls-exporter uses it), or undefined if refused. */
export function sslExportKeyingMaterial(
  s: SslSession,
  length: number,
  label: string,
): Uint8Array | undefined {
  if (s.ssl === null) return undefined;
  const e = loadEngine()!;
  const out = new Uint8Array(length);
  const l = new TextEncoder().encode(label);
  const ok = e.ssl.SSL_export_keying_material(
    s.ssl,
    out,
    BigInt(length),
    l,
    BigInt(l.length),
    null,
    0n,
    0,
  );
  if (ok !== 1) {
    e.crypto.ERR_clear_error();
    return undefined;
  }
  return out;
}
