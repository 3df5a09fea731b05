/**
 * A raw XMPP client over plain TCP for tests that drive the stream themselves (XEP-0198): it
 * authenticates with SCRAM-SHA-256 and then leaves binding, resumption and everything else to
 * the test. Needs a server started with `require_encryption: false`.
 * @module
 */
import { clientFinalMessage, clientFirstMessage } from "../../lib/xmpp/scram.ts";
import { createStreamParser, type ParseEvent, type StreamParser } from "../../lib/xml/parser.ts";
import { child, elem, type Element, serialize, text } from "../../lib/xml/element.ts";
import { NS_BIND, NS_SASL, NS_STREAMS } from "../../lib/xmpp/namespaces.ts";

const enc = new TextEncoder();

function b64(s: string): string {
  let bin = "";
  for (const b of enc.encode(s)) bin += String.fromCharCode(b);
  return btoa(bin);
}

function unb64(s: string): string {
  return new TextDecoder().decode(Uint8Array.from(atob(s.trim()), (c) => c.charCodeAt(0)));
}

/** A connected raw client. */
export class RawClient {
  #conn: Deno.TcpConn;
  #parser: StreamParser = createStreamParser({ maxStanzaBytes: 1 << 24 });
  #events: ParseEvent[] = [];
  #wake: (() => void) | undefined;
  #closed = false;
  #writing: Promise<void> = Promise.resolve();
  #gate: Promise<void> | undefined;
  #open: (() => void) | undefined;

  private constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
    this.#read();
  }

  /** Connects to the test server on 127.0.0.1. */
  static async connect(port: number): Promise<RawClient> {
    return new RawClient(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  /** Connects, logs in as `user` (password "pw") and binds `resource`. */
  static async online(port: number, user: string, resource = "r"): Promise<RawClient> {
    const c = await RawClient.connect(port);
    await c.login(user, "pw");
    await c.bind(resource);
    return c;
  }

  async #read(): Promise<void> {
    const buf = new Uint8Array(65536);
    try {
      for (;;) {
        if (this.#gate !== undefined) await this.#gate;
        const n = await this.#conn.read(buf);
        if (n === null) break;
        this.#events.push(...this.#parser.push(buf.subarray(0, n)));
        this.#wake?.();
      }
    } catch {
      // closed by us
    }
    this.#closed = true;
    this.#wake?.();
  }

  /** Stops reading from the socket (after the read under way), as a client that hangs. */
  pause(): void {
    this.#gate ??= new Promise((resolve) => (this.#open = resolve));
  }

  /** Reads again after {@link pause}. */
  resume(): void {
    this.#open?.();
    this.#gate = undefined;
  }

  /** True once the server closed the connection (or we cut it). */
  get closed(): boolean {
    return this.#closed;
  }

  /** Writes raw text. */
  write(s: string): void {
    // In order and whole: a write may take only part of a large buffer.
    const data = enc.encode(s);
    this.#writing = this.#writing.then(async () => {
      let off = 0;
      while (off < data.length) off += await this.#conn.write(data.subarray(off));
    }).catch(() => {});
  }

  /** Writes an element (stanzas default to jabber:client). */
  send(el: Element): void {
    this.write(serialize(el));
  }

  /** The next parse event, or undefined when none came within `ms`. */
  async event(ms = 5000): Promise<ParseEvent | undefined> {
    const deadline = performance.now() + ms;
    while (this.#events.length === 0) {
      const left = deadline - performance.now();
      if (left <= 0 || this.#closed) return undefined;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = undefined;
    }
    return this.#events.shift();
  }

  /** The next top-level element (stream headers skipped); throws when none comes. */
  async next(what: string, ms = 5000): Promise<Element> {
    for (;;) {
      const ev = await this.event(ms);
      if (ev === undefined) throw new Error(`timed out waiting for ${what}`);
      if (ev.kind === "stanza") return ev.stanza;
      if (ev.kind === "stream-close") throw new Error(`stream closed waiting for ${what}`);
      if (ev.kind === "error") throw new Error(`parse error waiting for ${what}: ${ev.text}`);
    }
  }

  /** The next stanza matching `pred`; others arriving first are passed over. */
  async until(what: string, pred: (el: Element) => boolean, ms = 5000): Promise<Element> {
    for (;;) {
      const el = await this.next(what, ms);
      if (pred(el)) return el;
    }
  }

  /** Everything that arrives before the answer to a ping (sent now): a barrier. */
  async barrier(): Promise<Element[]> {
    const id = `barrier-${crypto.randomUUID()}`;
    this.send(elem("iq", { xmlns: "jabber:client", type: "get", id, to: "localhost" }, [
      elem("ping", { xmlns: "urn:xmpp:ping" }),
    ]));
    const got: Element[] = [];
    for (;;) {
      const el = await this.next("the barrier");
      if (el.name === "iq" && el.attrs.id === id) return got;
      got.push(el);
    }
  }

  /** Opens a stream (restarting the parser) and returns the features. */
  async open(domain = "localhost"): Promise<Element> {
    this.#parser = createStreamParser({ maxStanzaBytes: 1 << 24 });
    this.write(
      `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='${NS_STREAMS}'` +
        ` to='${domain}' version='1.0'>`,
    );
    const features = await this.next("stream features");
    if (features.name !== "features") throw new Error(`expected features: ${serialize(features)}`);
    return features;
  }

  /** Opens the stream, authenticates with SCRAM-SHA-256, restarts; returns the new features. */
  async login(username: string, password: string): Promise<Element> {
    await this.open();
    const nonce = b64(crypto.randomUUID());
    const clientFirst = clientFirstMessage(username, nonce);
    this.send(elem("auth", { xmlns: NS_SASL, mechanism: "SCRAM-SHA-256" }, [b64(clientFirst)]));
    const challenge = await this.next("the SCRAM challenge");
    if (challenge.name !== "challenge") throw new Error(`auth failed: ${serialize(challenge)}`);
    const final = clientFinalMessage({
      hash: "SHA-256",
      password,
      clientFirst,
      serverFirst: unb64(text(challenge)),
    });
    this.send(elem("response", { xmlns: NS_SASL }, [b64(final.message)]));
    const outcome = await this.next("the SASL outcome");
    if (outcome.name !== "success") throw new Error(`auth failed: ${serialize(outcome)}`);
    return await this.open();
  }

  /** Binds `resource`; returns the full JID. */
  async bind(resource: string): Promise<string> {
    this.send(elem("iq", { xmlns: "jabber:client", type: "set", id: "bind" }, [
      elem("bind", { xmlns: NS_BIND }, [elem("resource", {}, [resource])]),
    ]));
    const result = await this.next("the bind result");
    const jid = child(child(result, "bind", NS_BIND) ?? elem("x"), "jid", NS_BIND);
    if (result.attrs.type !== "result" || jid === undefined) {
      throw new Error(`bind failed: ${serialize(result)}`);
    }
    return text(jid);
  }

  /** A ping round trip to the server; other stanzas arriving meanwhile are passed over. */
  async ping(ms = 10_000): Promise<void> {
    const id = `ping-${crypto.randomUUID()}`;
    this.send(elem("iq", { xmlns: "jabber:client", type: "get", id, to: "localhost" }, [
      elem("ping", { xmlns: "urn:xmpp:ping" }),
    ]));
    for (;;) {
      const st = await this.next("the ping result", ms);
      if (st.name === "iq" && st.attrs.id === id) return;
    }
  }

  /** Cuts the TCP connection without closing the stream. */
  cut(): void {
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
  }

  /** Closes the stream cleanly and waits (bounded) for the server to close. */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.write("</stream:stream>");
      while (!this.#closed && (await this.event(2000)) !== undefined) {
        // drain until the server closes
      }
    }
    this.cut();
  }
}
