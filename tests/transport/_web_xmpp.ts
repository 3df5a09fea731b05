/**
 * Raw XMPP clients over WebSocket (RFC 7395) and BOSH (XEP-0206) for tests that drive the stream
 * themselves (XEP-0198, XEP-0352): real XML on the wire, SCRAM-SHA-256, and a stanza count (`h`)
 * that answers the server's `<r/>` when told to, as tests/integration/stream_management_test.ts
 * does over TCP. Needs a server started with `require_encryption: false`.
 * @module
 */
import { child, elem, type Element, serialize, stanza, text } from "../../lib/xml/element.ts";
import { parseMessage } from "../../lib/transport/websocket.ts";
import { clientFinalMessage, clientFirstMessage } from "../../lib/xmpp/scram.ts";
import { NS_BIND, NS_FRAMING, NS_PING, NS_SASL, NS_SM } from "../../lib/xmpp/namespaces.ts";

export const NS_HTTPBIND = "http://jabber.org/protocol/httpbind";
const NS_XBOSH = "urn:xmpp:xbosh";

const enc = new TextEncoder();

const b64 = (s: string) => {
  let bin = "";
  for (const b of enc.encode(s)) bin += String.fromCharCode(b);
  return btoa(bin);
};
const unb64 = (s: string) =>
  new TextDecoder().decode(Uint8Array.from(atob(s.trim()), (c) => c.charCodeAt(0)));

/** A stanza in the sense of XEP-0198 §4: what `h` counts. */
export function isStanza(el: Element): boolean {
  return el.xmlns === "jabber:client" &&
    (el.name === "message" || el.name === "presence" || el.name === "iq");
}

/** The body of a message, or "". */
export function bodyOf(el: Element): string {
  const b = child(el, "body", "jabber:client");
  return b === undefined ? "" : text(b);
}

/** What both clients offer a test. */
export interface WebXmpp {
  /** Stanzas received and read (XEP-0198 `h`). */
  h: number;
  /** Answer the server's `<r/>` with `<a h/>` as they are read. */
  answerRequests: boolean;
  /** Every element read, in order. */
  readonly read: Element[];
  /** Sends elements (in order, each with its namespaces declared). */
  send(...els: Element[]): Promise<void>;
  /** The next element; throws when none comes within `ms` or the stream ended. */
  next(what: string, ms?: number): Promise<Element>;
  /** Opens (or restarts) the stream; resolves with the features. */
  open(): Promise<Element>;
}

/** Notes an element read: counts stanzas, answers `<r/>`. */
function note(c: WebXmpp, el: Element, answer: (a: Element) => void): void {
  c.read.push(el);
  if (isStanza(el)) c.h++;
  else if (el.xmlns === NS_SM && el.name === "r" && c.answerRequests) {
    answer(elem("a", { xmlns: NS_SM, h: String(c.h) }));
  }
}

/** The first element `pred` accepts; the others read meanwhile are noted and passed over. */
export async function until(
  c: WebXmpp,
  what: string,
  pred: (el: Element) => boolean,
  ms = 5000,
): Promise<Element> {
  for (;;) {
    const el = await c.next(what, ms);
    if (pred(el)) return el;
  }
}

/** Everything read within `ms`. */
export async function drain(c: WebXmpp, ms: number): Promise<Element[]> {
  const got: Element[] = [];
  const deadline = performance.now() + ms;
  for (;;) {
    const left = deadline - performance.now();
    if (left <= 0) return got;
    try {
      got.push(await c.next("anything", left));
    } catch {
      return got;
    }
  }
}

/** Logs in with SCRAM-SHA-256 and restarts the stream; resolves with the new features. */
export async function login(c: WebXmpp, user: string, password = "pw"): Promise<Element> {
  await c.open();
  const clientFirst = clientFirstMessage(user, b64(crypto.randomUUID()));
  await c.send(elem("auth", { xmlns: NS_SASL, mechanism: "SCRAM-SHA-256" }, [b64(clientFirst)]));
  const challenge = await until(c, "the challenge", (el) => el.xmlns === NS_SASL);
  if (challenge.name !== "challenge") throw new Error(`auth failed: ${serialize(challenge, "")}`);
  const final = clientFinalMessage({
    hash: "SHA-256",
    password,
    clientFirst,
    serverFirst: unb64(text(challenge)),
  });
  await c.send(elem("response", { xmlns: NS_SASL }, [b64(final.message)]));
  const outcome = await until(c, "the SASL outcome", (el) => el.xmlns === NS_SASL);
  if (outcome.name !== "success") throw new Error(`auth failed: ${serialize(outcome, "")}`);
  return await c.open();
}

/** Binds `resource`; resolves with the full JID. */
export async function bind(c: WebXmpp, resource: string): Promise<string> {
  await c.send(stanza("iq", { type: "set", id: "bind" }, [
    elem("bind", { xmlns: NS_BIND }, [elem("resource", {}, [resource])]),
  ]));
  const result = await until(c, "the bind result", (el) => el.name === "iq");
  const jid = child(child(result, "bind", NS_BIND) ?? elem("x"), "jid", NS_BIND);
  if (result.attrs.type !== "result" || jid === undefined) {
    throw new Error(`bind failed: ${serialize(result, "")}`);
  }
  return text(jid);
}

/** A ping to the server: its answer proves that what was sent before it was handled. */
export async function sync(c: WebXmpp, id = `sync-${crypto.randomUUID()}`): Promise<Element[]> {
  await c.send(
    stanza("iq", { type: "get", id, to: "localhost" }, [elem("ping", { xmlns: NS_PING })]),
  );
  const before: Element[] = [];
  await until(c, `ping ${id}`, (el) => {
    if (el.name === "iq" && el.attrs.id === id) return true;
    before.push(el);
    return false;
  });
  return before;
}

/** A client over `/xmpp-websocket`. */
export interface WsXmpp extends WebXmpp {
  readonly ws: WebSocket;
  /** Resolves with the close code once the socket closed. */
  readonly closed: Promise<number>;
  /** Drops the WebSocket without `<close/>`: the transport goes, the stream was never closed. */
  cut(): Promise<void>;
  /** Sends `<close/>` and waits for the server's and the socket's end. */
  close(): Promise<void>;
}

/** Opens a WebSocket with the `xmpp` subprotocol. */
export async function wsXmpp(httpPort: number): Promise<WsXmpp> {
  const ws = new WebSocket(`ws://127.0.0.1:${httpPort}/xmpp-websocket`, ["xmpp"]);
  const inbox: Element[] = [];
  let wake: (() => void) | undefined;
  const closed = new Promise<number>((resolve) => {
    ws.onclose = (e) => {
      resolve(e.code);
      wake?.();
    };
  });
  ws.onmessage = (e) => {
    const ev = parseMessage(enc.encode(String(e.data)), 1 << 24);
    // `<open/>` and `<close/>` are read as what they are, elements of the framing namespace.
    if (ev?.kind === "stanza") inbox.push(ev.stanza);
    else if (ev?.kind === "stream-open") {
      inbox.push(elem("open", { xmlns: NS_FRAMING, ...ev.attrs }));
    } else if (ev?.kind === "stream-close") inbox.push(elem("close", { xmlns: NS_FRAMING }));
    else throw new Error(`not one element: ${e.data}`);
    wake?.();
  };
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = () => reject(new Error("the WebSocket did not open"));
  });
  const write = (el: Element) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(serialize(el, ""));
  };
  const c: WsXmpp = {
    ws,
    closed,
    h: 0,
    answerRequests: true,
    read: [],
    send(...els) {
      for (const el of els) write(el);
      return Promise.resolve();
    },
    async next(what, ms = 5000) {
      const deadline = performance.now() + ms;
      while (inbox.length === 0) {
        const left = deadline - performance.now();
        if (left <= 0) throw new Error(`timed out waiting for ${what}`);
        if (ws.readyState === WebSocket.CLOSED) throw new Error(`closed waiting for ${what}`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = undefined;
      }
      const el = inbox.shift()!;
      note(c, el, write);
      return el;
    },
    async open() {
      write(elem("open", { xmlns: NS_FRAMING, to: "localhost", version: "1.0" }));
      await until(c, "<open/>", (el) => el.xmlns === NS_FRAMING && el.name === "open");
      return await until(c, "features", (el) => el.name === "features");
    },
    async cut() {
      ws.close();
      await closed;
    },
    async close() {
      write(elem("close", { xmlns: NS_FRAMING }));
      await until(c, "<close/>", (el) => el.xmlns === NS_FRAMING && el.name === "close")
        .catch(() => {});
      await closed;
    },
  };
  return c;
}

/** A client over `/http-bind`: one request at a time, long polls of `wait` seconds. */
export interface BoshXmpp extends WebXmpp {
  sid: string;
  /** The next request id. */
  rid: number;
  /** The session creation answer. */
  created: Element | undefined;
  /** Set once a request was answered with `type='terminate'` (its condition, or ""). */
  terminated: string | undefined;
  /** Posts one request `<body/>` with `attrs` (sid and rid added) carrying `children`. */
  post(attrs: Record<string, string>, children?: readonly Element[]): Promise<Element>;
}

/** A BOSH client; `wait` is what it asks for at session creation. */
export function boshXmpp(httpPort: number, wait = 1): BoshXmpp {
  const url = `http://127.0.0.1:${httpPort}/http-bind`;
  const inbox: Element[] = [];
  // `<a/>` answers, sent with the next request.
  const outbox: Element[] = [];
  let opened = false;
  const c: BoshXmpp = {
    sid: "",
    rid: 1_000_000 + Math.floor(Math.random() * 1_000_000),
    created: undefined,
    terminated: undefined,
    h: 0,
    answerRequests: true,
    read: [],
    async post(attrs, children = []) {
      const body = elem("body", {
        xmlns: NS_HTTPBIND,
        ...(c.sid === "" ? {} : { sid: c.sid }),
        rid: String(c.rid++),
        ...attrs,
      }, [...outbox.splice(0), ...children]);
      const res = await fetch(url, {
        method: "POST",
        headers: { "content-type": "text/xml; charset=utf-8" },
        body: serialize(body, ""),
      });
      const xml = await res.text();
      const ev = parseMessage(enc.encode(xml), 1 << 24);
      if (ev?.kind !== "stanza" || ev.stanza.name !== "body") throw new Error(`not a body: ${xml}`);
      const answer = ev.stanza;
      for (const ch of answer.children) if (typeof ch !== "string") inbox.push(ch);
      if (answer.attrs.type === "terminate") c.terminated = answer.attrs.condition ?? "";
      return answer;
    },
    async send(...els) {
      await c.post({}, els);
    },
    async next(what, ms = 5000) {
      const deadline = performance.now() + ms;
      while (inbox.length === 0) {
        if (c.terminated !== undefined) {
          throw new Error(`terminated (${c.terminated}) waiting for ${what}`);
        }
        if (performance.now() >= deadline) throw new Error(`timed out waiting for ${what}`);
        await c.post({});
      }
      const el = inbox.shift()!;
      note(c, el, (a) => outbox.push(a));
      return el;
    },
    async open() {
      if (!opened) {
        opened = true;
        c.created = await c.post({
          to: "localhost",
          wait: String(wait),
          hold: "1",
          ver: "1.6",
          "xml:lang": "en",
          "xmlns:xmpp": NS_XBOSH,
          "xmpp:version": "1.0",
        });
        c.sid = c.created.attrs.sid;
      } else {
        await c.post({ "xmpp:restart": "true", "xmlns:xmpp": NS_XBOSH, to: "localhost" });
      }
      return await until(c, "features", (el) => el.name === "features");
    },
  };
  return c;
}
