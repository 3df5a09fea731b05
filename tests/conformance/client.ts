/**
 * A minimal XMPP client for conformance scripts: TCP, STARTTLS when offered, SASL PLAIN (or
 * SCRAM-SHA-256 / SCRAM-SHA-1 when PLAIN is not offered), resource binding, then a queue
 * of received stanzas. It never sends anything by itself after binding, as scansion's client.
 *
 * @module
 */
import * as net from "node:net";
import * as tls from "node:tls";
import { Buffer } from "node:buffer";
import { createStreamParser, type ParseEvent } from "../../lib/xml/parser.ts";
import { clientFinalMessage, clientFirstMessage, type ScramHash } from "../../lib/xmpp/scram.ts";
import {
  child,
  childElements,
  childText,
  elem,
  type Element,
  serialize,
  stanza,
  text,
} from "../../lib/xml/element.ts";
import {
  NS_BIND,
  NS_PING,
  NS_SASL,
  NS_SESSION,
  NS_STREAMS,
  NS_TLS,
} from "../../lib/xmpp/namespaces.ts";

/** Where and as whom to connect. */
export interface ClientOptions {
  readonly host: string;
  readonly port: number;
  /** The stream's `to`: the account's domain. */
  readonly domain: string;
  readonly username: string;
  readonly password: string;
  /** Requested resource; the server chooses one when absent. */
  readonly resource?: string;
  /** Timeout of each negotiation step (default 5000 ms). */
  readonly timeoutMs?: number;
  /** Whether to upgrade with STARTTLS when the server offers it (default true). */
  readonly starttls?: boolean;
}

/** A stanza on the queue, with its arrival time (`performance.now()`). */
export interface Received {
  readonly stanza: Element;
  readonly at: number;
}

/** A connected, bound client. */
export interface TestClient {
  /** The full JID the server bound. */
  readonly jid: string;
  /** Whether the stream was encrypted with STARTTLS. */
  readonly secure: boolean;
  /** The SASL mechanism that authenticated. */
  readonly mechanism: string;
  /** Writes one stanza. */
  send(el: Element): void;
  /** The next queued stanza, removed from the queue; undefined on timeout or a closed stream. */
  next(timeoutMs: number): Promise<Received | undefined>;
  /** The stanzas queued now, without removing them. */
  pending(): readonly Received[];
  /** Sends an XEP-0199 ping to the domain and waits for its answer (kept off the queue). */
  ping(timeoutMs?: number): Promise<void>;
  /** Closes the stream, waits (bounded) for the server's close, and ends the socket. */
  close(timeoutMs?: number): Promise<void>;
  /** Why the stream ended, once it has. */
  ended(): string | undefined;
}

/** Negotiation failed or timed out. */
export class ClientError extends Error {
  override name = "ClientError";
}

type Socket = net.Socket | tls.TLSSocket;

function openSocket(host: string, port: number, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new ClientError(`connect to ${host}:${port} timed out`));
    }, timeoutMs);
    sock.once("connect", () => {
      clearTimeout(timer);
      resolve(sock);
    });
    sock.once("error", (e: Error) => {
      clearTimeout(timer);
      reject(new ClientError(`connect to ${host}:${port}: ${e.message}`));
    });
  });
}

function upgrade(raw: net.Socket, servername: string, timeoutMs: number): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    // The test servers use self-signed certificates; what is tested here is XMPP, not PKIX.
    const t = tls.connect({ socket: raw, rejectUnauthorized: false, servername });
    const timer = setTimeout(() => {
      t.destroy();
      reject(new ClientError("TLS handshake timed out"));
    }, timeoutMs);
    t.once("secureConnect", () => {
      clearTimeout(timer);
      resolve(t);
    });
    t.once("error", (e: Error) => {
      clearTimeout(timer);
      reject(new ClientError(`TLS handshake: ${e.message}`));
    });
  });
}

function b64(s: string): string {
  return Buffer.from(s, "utf8").toString("base64");
}

function unb64(s: string): string {
  return Buffer.from(s.trim(), "base64").toString("utf8");
}

/** Connects, negotiates the stream and binds a resource. */
export async function connectClient(opts: ClientOptions): Promise<TestClient> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  const raw = await openSocket(opts.host, opts.port, timeoutMs);
  let sock: Socket = raw;
  let parser = createStreamParser({ maxStanzaBytes: 1 << 24 });
  const negotiation: ParseEvent[] = [];
  const queue: Received[] = [];
  const pings = new Map<string, () => void>();
  let bound = false;
  let endReason: string | undefined;
  let serverClosed = false;
  let socketClosed = false;
  let listeners: (() => void)[] = [];
  let counter = 0;

  const notify = () => {
    const ls = listeners;
    listeners = [];
    for (const l of ls) l();
  };
  /** Resolves at the next arrival or end, or after `ms`; true unless it timed out. */
  const changed = (ms: number) =>
    new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        listeners = listeners.filter((l) => l !== wake);
        resolve(false);
      }, Math.max(0, ms));
      const wake = () => {
        clearTimeout(timer);
        resolve(true);
      };
      listeners.push(wake);
    });

  const deliver = (ev: ParseEvent) => {
    if (ev.kind === "stream-close") {
      serverClosed = true;
      endReason ??= "the server closed the stream";
    } else if (ev.kind === "error") {
      endReason ??= `unparsable input from the server: ${ev.condition} ${ev.text ?? ""}`;
      sock.destroy();
    } else if (!bound) {
      negotiation.push(ev);
    } else if (ev.kind === "stanza") {
      const st = ev.stanza;
      if (st.name === "error" && st.xmlns === NS_STREAMS) {
        const cond = childElements(st)[0]?.name ?? "unknown";
        endReason ??= `stream error: ${cond}`;
      } else {
        const id = st.attrs.id;
        const done = st.name === "iq" && id !== undefined && (st.attrs.type === "result" ||
            st.attrs.type === "error")
          ? pings.get(id)
          : undefined;
        if (done !== undefined) {
          pings.delete(id!);
          done();
        } else {
          queue.push({ stanza: st, at: performance.now() });
        }
      }
    }
    notify();
  };
  const onData = (chunk: Uint8Array) => {
    for (const ev of parser.push(chunk)) deliver(ev);
  };
  const onClose = () => {
    socketClosed = true;
    endReason ??= "the connection closed";
    notify();
  };
  const onError = (e: Error) => {
    endReason ??= `socket error: ${e.message}`;
    notify();
  };
  const attach = (s: Socket) => {
    s.on("data", onData);
    s.on("close", onClose);
    s.on("error", onError);
  };
  attach(raw);

  const write = (s: string) => {
    if (!socketClosed) sock.write(s);
  };
  const restart = () => {
    parser = createStreamParser({ maxStanzaBytes: 1 << 24 });
    write(
      `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='${NS_STREAMS}'` +
        ` to='${opts.domain}' version='1.0' xml:lang='en'>`,
    );
  };
  const nextEvent = async (what: string): Promise<ParseEvent> => {
    const deadline = performance.now() + timeoutMs;
    while (negotiation.length === 0) {
      if (endReason !== undefined) throw new ClientError(`${endReason} (waiting for ${what})`);
      const left = deadline - performance.now();
      if (left <= 0 || !(await changed(left))) {
        throw new ClientError(`timed out waiting for ${what}`);
      }
    }
    return negotiation.shift()!;
  };
  const nextStanza = async (what: string): Promise<Element> => {
    for (;;) {
      const ev = await nextEvent(what);
      if (ev.kind !== "stanza") continue;
      const st = ev.stanza;
      if (st.name === "error" && st.xmlns === NS_STREAMS) {
        throw new ClientError(
          `stream error while waiting for ${what}: ${serialize(st, NS_STREAMS)}`,
        );
      }
      return st;
    }
  };
  const openStream = async (): Promise<Element> => {
    restart();
    for (;;) {
      const ev = await nextEvent("the stream header");
      if (ev.kind === "stream-open") break;
    }
    const features = await nextStanza("stream features");
    if (features.name !== "features" || features.xmlns !== NS_STREAMS) {
      throw new ClientError(`expected stream features, got ${serialize(features)}`);
    }
    return features;
  };

  try {
    let features = await openStream();
    let secure = false;
    if (child(features, "starttls", NS_TLS) !== undefined && opts.starttls !== false) {
      write(serialize(elem("starttls", { xmlns: NS_TLS })));
      const answer = await nextStanza("the STARTTLS answer");
      if (answer.name !== "proceed") {
        throw new ClientError(`STARTTLS refused: ${serialize(answer)}`);
      }
      raw.removeListener("data", onData);
      const t = await upgrade(raw, opts.domain, timeoutMs);
      t.on("data", onData);
      t.on("error", onError);
      sock = t;
      secure = true;
      features = await openStream();
    }

    const mechs = childElements(child(features, "mechanisms", NS_SASL) ?? elem("none"))
      .map(text).map((m) => m.trim());
    let mechanism: string;
    let expectedServerFinal: string | undefined;
    if (mechs.includes("PLAIN")) {
      mechanism = "PLAIN";
      const creds = b64(`\0${opts.username}\0${opts.password}`);
      write(serialize(elem("auth", { xmlns: NS_SASL, mechanism }, [creds])));
    } else {
      const hash: ScramHash | undefined = mechs.includes("SCRAM-SHA-256")
        ? "SHA-256"
        : mechs.includes("SCRAM-SHA-1")
        ? "SHA-1"
        : undefined;
      if (hash === undefined) {
        throw new ClientError(`no usable SASL mechanism among [${mechs.join(", ")}]`);
      }
      mechanism = `SCRAM-${hash}`;
      const nonce = Buffer.from(crypto.getRandomValues(new Uint8Array(18))).toString("base64");
      const clientFirst = clientFirstMessage(opts.username, nonce);
      write(serialize(elem("auth", { xmlns: NS_SASL, mechanism }, [b64(clientFirst)])));
      const challenge = await nextStanza("the SCRAM challenge");
      if (challenge.name !== "challenge") {
        throw new ClientError(`authentication failed: ${serialize(challenge, NS_SASL)}`);
      }
      const final = clientFinalMessage({
        hash,
        password: opts.password,
        clientFirst,
        serverFirst: unb64(text(challenge)),
      });
      expectedServerFinal = final.expectedServerFinal;
      write(serialize(elem("response", { xmlns: NS_SASL }, [b64(final.message)])));
    }
    const outcome = await nextStanza("the SASL outcome");
    if (outcome.name !== "success") {
      throw new ClientError(`authentication failed: ${serialize(outcome, NS_SASL)}`);
    }
    if (expectedServerFinal !== undefined && unb64(text(outcome)) !== expectedServerFinal) {
      throw new ClientError("the server's SCRAM signature is wrong");
    }

    features = await openStream();
    const bindFeature = child(features, "bind", NS_BIND);
    if (bindFeature === undefined) throw new ClientError("the server offers no resource binding");
    write(serialize(stanza("iq", { type: "set", id: "bind_1" }, [
      elem("bind", { xmlns: NS_BIND }, [
        opts.resource === undefined ? undefined : elem("resource", {}, [opts.resource]),
      ]),
    ])));
    const bindResult = await nextStanza("the bind result");
    const jid = childText(child(bindResult, "bind", NS_BIND) ?? elem("none"), "jid", NS_BIND);
    if (bindResult.attrs.type !== "result" || jid === undefined) {
      throw new ClientError(`resource binding failed: ${serialize(bindResult)}`);
    }
    // RFC 3921 sessions only where the server still requires them.
    const session = child(features, "session", NS_SESSION);
    if (session !== undefined && child(session, "optional", NS_SESSION) === undefined) {
      write(serialize(stanza("iq", { type: "set", id: "session_1" }, [
        elem("session", { xmlns: NS_SESSION }),
      ])));
      const res = await nextStanza("the session result");
      if (res.attrs.type !== "result") {
        throw new ClientError(`session establishment failed: ${serialize(res)}`);
      }
    }
    bound = true;
    for (const ev of negotiation.splice(0)) deliver(ev);

    return {
      jid: jid.trim(),
      secure,
      mechanism,
      send(el) {
        write(serialize(el));
      },
      async next(ms) {
        const deadline = performance.now() + ms;
        while (queue.length === 0) {
          if (endReason !== undefined) return undefined;
          const left = deadline - performance.now();
          if (left <= 0 || !(await changed(left))) return queue.shift();
        }
        return queue.shift();
      },
      pending() {
        return [...queue];
      },
      async ping(ms = timeoutMs) {
        const id = `scansion_ping_${++counter}`;
        let answered = false;
        pings.set(id, () => answered = true);
        write(serialize(stanza("iq", { type: "get", id, to: opts.domain }, [
          elem("ping", { xmlns: NS_PING }),
        ])));
        const deadline = performance.now() + ms;
        while (!answered) {
          if (endReason !== undefined) {
            pings.delete(id);
            throw new ClientError(`${endReason} (waiting for a ping answer)`);
          }
          const left = deadline - performance.now();
          if (left <= 0 || !(await changed(left))) {
            if (answered) break;
            pings.delete(id);
            throw new ClientError("timed out waiting for a ping answer");
          }
        }
      },
      async close(ms = timeoutMs) {
        if (!socketClosed && !serverClosed) write("</stream:stream>");
        const deadline = performance.now() + ms;
        while (!serverClosed && !socketClosed) {
          const left = deadline - performance.now();
          if (left <= 0 || !(await changed(left))) break;
        }
        endReason ??= "closed by the client";
        await destroy(sock, raw, socketClosed);
      },
      ended() {
        return endReason;
      },
    };
  } catch (e) {
    await destroy(sock, raw, socketClosed);
    throw e;
  }
}

/** Ends the sockets and waits for them to close, so that tests leak nothing. */
async function destroy(sock: Socket, raw: net.Socket, alreadyClosed: boolean): Promise<void> {
  if (alreadyClosed && raw.destroyed) return;
  const closed = new Promise<void>((resolve) => {
    if (raw.destroyed) resolve();
    else raw.once("close", () => resolve());
  });
  sock.destroy();
  raw.destroy();
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([closed, new Promise<void>((r) => timer = setTimeout(r, 1000))]);
  clearTimeout(timer);
}
