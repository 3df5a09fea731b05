/**
 * XMPP over BOSH (XEP-0124, XEP-0206) at `/http-bind`: a BOSH session is one client connection
 * of the driver (./driver.ts) whose transport queues what is written and hands it to the HTTP
 * requests the client keeps waiting ("held"). Everything above the framing (features, SASL,
 * bind, limits, the destroy path) is the same as on TCP.
 *
 * Reading: each request `<body/>` is parsed with the WebSocket's one-message parser
 * (./websocket.ts `parseMessage`: the same size, depth and restricted-XML checks), and each of
 * its children is handed to the driver as one message of the driver's message parser, exactly
 * as a WebSocket message would be. Session creation and `xmpp:restart` become an `<open/>`,
 * `type='terminate'` a `<close/>`.
 *
 * Request ids (§14.3): rids up to twice `requests` ahead of the last one handled are read as
 * reordering and wait until the gap fills; more than `requests` waiting or held at once is
 * overactivity (`policy-violation`); a rid further ahead, or a repeat whose answer is no longer
 * kept, ends the session with `item-not-found`. The answers of the last `requests` rids are
 * kept for a client that repeats a request whose answer it lost.
 *
 * Pauses (§10): a request with `pause='N'` (N up to the `maxpause` we announce, else
 * `policy-violation`) is answered at once, and so is every request held, all with empty bodies
 * (what is pending waits for the client's return, since a pausing client may not read those
 * answers: a browser leaving a page); the session then survives N seconds without requests
 * instead of `inactivity` (a shorter N is allowed too: a client that fears losing its link asks
 * to be noticed gone sooner). The next request ends the pause.
 * @module
 */
import { type Element, escapeAttr } from "../xml/element.ts";
import { streamErrorElement } from "../xmpp/errors.ts";
import { NS_CLIENT, NS_FRAMING } from "../xmpp/namespaces.ts";
import { utf8Bytes } from "../limits.ts";
import { type Driver, type Frame, hangUp, receive, type Transport } from "./driver.ts";
import { type HttpPeer, originAllowed } from "./http.ts";
import { parseMessage, wsElement } from "./websocket.ts";

/** XEP-0124's namespace. */
export const NS_HTTPBIND = "http://jabber.org/protocol/httpbind";
/** XEP-0206's namespace (`xmpp:version`, `xmpp:restart`). */
export const NS_XBOSH = "urn:xmpp:xbosh";

/** A connection as BOSH drives it: the driver's record, whatever the kind keeps beside it. */
// deno-lint-ignore no-explicit-any
type AnyDriver = Driver<any, any, any>;

/** The shell's answer to a session creation. */
export type BoshAdmission =
  | {
    readonly ok: true;
    /** Starts the client connection over the transport `transport` makes; resolves when it ends. */
    start(transport: (d: AnyDriver) => Transport): Promise<void>;
  }
  | { readonly ok: false; readonly reason: string };

/** How the BOSH service is set up. */
export interface BoshOptions {
  /** Longest wait (seconds) a held request may be given (default 60). */
  readonly wait?: number;
  /** Requests held at once (default 1). */
  readonly hold?: number;
  /** Requests the client may keep open at once (default 2). */
  readonly requests?: number;
  /** Seconds without any request after which the session ends (default 60). */
  readonly inactivity?: number;
  /** Shortest seconds between two empty polls (default 2). */
  readonly polling?: number;
  /** Longest pause (seconds) a client may ask for (default 120). */
  readonly maxpause?: number;
  /** A request body over this many bytes ends the session with `policy-violation`. */
  readonly maxBodyBytes: number;
  /** Browser origins allowed besides the page's own; `"*"`: any. */
  readonly corsOrigins: readonly string[];
  /** Counts a new session in the connection limits and starts it, or refuses it. */
  readonly admit: (peer: HttpPeer) => BoshAdmission;
  /** Makes session ids (tests give fixed ones). */
  readonly newSid?: () => string;
}

/** A started BOSH service. */
export interface BoshService {
  /** Answers one request to `/http-bind`. */
  handle(req: Request, peer: HttpPeer): Promise<Response>;
  /** Live sessions. */
  readonly size: () => number;
}

/** A request waiting for its answer. */
interface Held {
  readonly rid: number;
  readonly resolve: (body: string) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
}

/** A request that came before the gap in front of it filled. */
interface Waiting {
  readonly body: Element;
  readonly resolve: (body: string) => void;
}

interface Session {
  readonly sid: string;
  driver: AnyDriver | undefined;
  readonly wait: number;
  readonly hold: number;
  readonly to: string;
  /** The last rid handled (processed in order). */
  lastRid: number;
  readonly held: Held[];
  readonly waiting: Map<number, Waiting>;
  /** Answers of the last rids, for repeats. */
  readonly answers: Map<number, string>;
  /** Serialized elements not yet handed to a request. */
  pending: string[];
  pendingBytes: number;
  taken: number;
  scheduled: boolean;
  /** Our stream header, until the session creation answer carries it. */
  creation: { readonly rid: number; id?: string; from?: string } | undefined;
  /** Set once the stream closed: the terminate body's attributes and content. */
  terminate: string | undefined;
  ended: boolean;
  inactivityTimer: ReturnType<typeof setTimeout> | undefined;
  /** Seconds the client asked to pause for (§10), until its next request. */
  pause: number | undefined;
}

const encoder = new TextEncoder();

/** An empty or terminating `<body/>` with extra attributes (already escaped) and content. */
function bodyXml(attrs: string, content = ""): string {
  const open = "<body xmlns='" + NS_HTTPBIND + "'" + attrs;
  return content === "" ? open + "/>" : open + ">" + content + "</body>";
}

/** The `<body type='terminate' condition=.../>` that ends a session (§17). */
export function terminateBody(condition?: string): string {
  return bodyXml(
    " type='terminate'" + (condition === undefined ? "" : " condition='" + condition + "'"),
  );
}

/** The text of one frame inside a `<body/>`; our stream header is the body's attributes. */
function frameText(frame: Frame): string {
  switch (frame.kind) {
    case "send":
      return wsElement(frame.stanza, NS_CLIENT);
    case "open-stream":
      return "";
    case "close-stream":
      return frame.error === undefined ? "" : wsElement(streamErrorElement(frame.error), NS_CLIENT);
  }
}

function intAttr(el: Element, name: string): number | undefined {
  const v = el.attrs[name];
  if (v === undefined || !/^\d{1,16}$/.test(v)) return undefined;
  return Number(v);
}

/** The BOSH service; sessions live until they terminate, time out or their connection ends. */
export function createBosh(opts: BoshOptions): BoshService {
  const maxWait = opts.wait ?? 60;
  const maxHold = opts.hold ?? 1;
  const requests = opts.requests ?? 2;
  const inactivity = opts.inactivity ?? 60;
  const polling = opts.polling ?? 2;
  const maxpause = opts.maxpause ?? 120;
  const newSid = opts.newSid ?? (() => crypto.randomUUID());
  const sessions = new Map<string, Session>();

  /** Keeps the answer to `rid` for a repeat, and forgets those too old to be asked again. */
  const keepAnswer = (s: Session, rid: number, body: string) => {
    s.answers.set(rid, body);
    for (const old of s.answers.keys()) if (old <= rid - requests) s.answers.delete(old);
  };

  const answerOldest = (s: Session, body: string) => {
    const h = s.held.shift();
    if (h === undefined) return false;
    clearTimeout(h.timer);
    keepAnswer(s, h.rid, body);
    h.resolve(body);
    if (s.held.length === 0 && !s.ended) armInactivity(s);
    return true;
  };

  const armInactivity = (s: Session) => {
    clearTimeout(s.inactivityTimer);
    // The client stopped polling: the session ends through the usual destroy path.
    s.inactivityTimer = setTimeout(() => {
      if (s.driver !== undefined) hangUp(s.driver, "BOSH inactivity");
      else end(s);
    }, (s.pause ?? inactivity) * 1000);
  };

  /** §10: every request is answered now, empty; the session may go `seconds` without one. */
  const pauseFor = (s: Session, rid: number, seconds: number, resolve: (body: string) => void) => {
    s.pause = seconds;
    while (s.held.length > 0) answerOldest(s, bodyXml(""));
    // §10: the answer to the pause request carries no payload.
    keepAnswer(s, rid, bodyXml(""));
    resolve(bodyXml(""));
    if (!s.ended) armInactivity(s);
  };

  /** Hands what is pending to the oldest held request; the last answers are terminate bodies. */
  const flush = (s: Session) => {
    s.scheduled = false;
    if (s.held.length === 0) return;
    if (s.pending.length > 0 || s.creation?.id !== undefined) {
      const content = s.pending.join("");
      s.taken += s.pendingBytes;
      s.pending = [];
      s.pendingBytes = 0;
      let attrs = "";
      if (s.creation?.id !== undefined) {
        const c = s.creation;
        s.creation = undefined;
        attrs = ` xmlns:xmpp='${NS_XBOSH}' xmlns:stream='http://etherx.jabber.org/streams'` +
          ` sid='${escapeAttr(s.sid)}' wait='${s.wait}' hold='${s.hold}'` +
          ` requests='${requests}' inactivity='${inactivity}' polling='${polling}'` +
          ` maxpause='${maxpause}' ver='1.11' xmpp:version='1.0' authid='${escapeAttr(c.id!)}'` +
          (c.from === undefined ? "" : ` from='${escapeAttr(c.from)}'`);
      }
      if (s.terminate !== undefined && s.held.length === 1) {
        answerOldest(s, bodyXml(attrs + s.terminate, content));
      } else answerOldest(s, bodyXml(attrs, content));
    }
    if (s.terminate !== undefined) {
      while (s.held.length > 0) answerOldest(s, bodyXml(s.terminate));
    }
  };

  const schedule = (s: Session) => {
    if (s.scheduled) return;
    s.scheduled = true;
    // Frames of one reduction (our header and the features) go out in one answer.
    queueMicrotask(() => flush(s));
  };

  const end = (s: Session) => {
    if (s.ended) return;
    s.ended = true;
    clearTimeout(s.inactivityTimer);
    sessions.delete(s.sid);
    s.terminate ??= " type='terminate'";
    for (const w of s.waiting.values()) w.resolve(bodyXml(s.terminate));
    s.waiting.clear();
    schedule(s);
  };

  const transportOf = (s: Session, d: AnyDriver): Transport => {
    s.driver = d;
    return {
      backlog: () => s.pendingBytes,
      taken: () => s.taken,
      send(frame) {
        if (s.ended) return;
        if (frame.kind === "open-stream" && s.creation !== undefined) {
          s.creation.id = frame.header.id;
          s.creation.from = frame.header.from;
        }
        if (frame.kind === "close-stream") {
          s.terminate ??= frame.error === undefined
            ? " type='terminate'"
            : " type='terminate' condition='remote-stream-error'";
        }
        const text = frameText(frame);
        if (text !== "") {
          s.pending.push(text);
          s.pendingBytes += utf8Bytes(text);
        }
        schedule(s);
      },
      // Requests, not a socket, bring what the client sends.
      read: () => d.finished,
      close: () => end(s),
      abort() {
        s.pending = [];
        s.pendingBytes = 0;
        end(s);
      },
    };
  };

  /** Feeds one message (an element, `<open/>` or `<close/>`) to the session's driver. */
  const feed = (s: Session, text: string) => {
    if (s.driver === undefined || s.driver.done) return;
    receive(s.driver, encoder.encode(text));
  };

  const openMessage = (s: Session, lang: string | undefined) =>
    `<open xmlns='${NS_FRAMING}' to='${escapeAttr(s.to)}' version='1.0'` +
    (lang === undefined ? "" : ` xml:lang='${escapeAttr(lang)}'`) + "/>";

  /** Handles one in-order body: what it carries goes to the driver. */
  const process = (s: Session, body: Element) => {
    if (body.attrs.type === "terminate") {
      for (const c of body.children) if (typeof c !== "string") feed(s, wsElement(c, NS_CLIENT));
      feed(s, `<close xmlns='${NS_FRAMING}'/>`);
      return;
    }
    if (body.attrs["xmpp:restart"] === "true") {
      feed(s, openMessage(s, body.attrs["xml:lang"]));
      return;
    }
    for (const c of body.children) if (typeof c !== "string") feed(s, wsElement(c, NS_CLIENT));
  };

  /** Holds a handled request until there is something to say or its wait is over. */
  const hold = (s: Session, rid: number, resolve: (body: string) => void) => {
    const h: Held = { rid, resolve, timer: undefined };
    s.held.push(h);
    h.timer = setTimeout(() => {
      const i = s.held.indexOf(h);
      if (i === -1) return;
      s.held.splice(i, 1);
      s.answers.set(rid, bodyXml(""));
      resolve(bodyXml(""));
      if (s.held.length === 0 && !s.ended) armInactivity(s);
    }, s.wait * 1000);
    // Never more than `hold` waiting: the oldest is answered with what is pending, if anything
    // (not before the creation answer, which carries the session's attributes).
    while (s.held.length > s.hold && s.creation === undefined) {
      const content = s.pending.join("");
      s.taken += s.pendingBytes;
      s.pending = [];
      s.pendingBytes = 0;
      answerOldest(s, bodyXml("", content));
    }
    if (s.pending.length > 0 || s.ended) schedule(s);
  };

  /** Handles the request `rid`, the next in order: a pause, or held for its answer. */
  const inOrder = (s: Session, rid: number, body: Element, resolve: (body: string) => void) => {
    s.lastRid = rid;
    process(s, body);
    const pause = intAttr(body, "pause");
    if (pause !== undefined && !s.ended) return pauseFor(s, rid, pause, resolve);
    // Any other request ends a pause: the usual inactivity applies again.
    s.pause = undefined;
    hold(s, rid, resolve);
  };

  const create = (body: Element, peer: HttpPeer): Promise<string> | string => {
    const rid = intAttr(body, "rid");
    const to = body.attrs.to;
    if (rid === undefined || to === undefined || to === "") return terminateBody("bad-request");
    const admitted = opts.admit(peer);
    if (!admitted.ok) return terminateBody("remote-connection-failed");
    const s: Session = {
      sid: newSid(),
      driver: undefined,
      wait: Math.max(1, Math.min(intAttr(body, "wait") ?? maxWait, maxWait)),
      hold: Math.max(0, Math.min(intAttr(body, "hold") ?? maxHold, maxHold)),
      to,
      lastRid: rid,
      held: [],
      waiting: new Map(),
      answers: new Map(),
      pending: [],
      pendingBytes: 0,
      taken: 0,
      scheduled: false,
      creation: { rid },
      terminate: undefined,
      ended: false,
      inactivityTimer: undefined,
      pause: undefined,
    };
    sessions.set(s.sid, s);
    void admitted.start((d) => transportOf(s, d)).finally(() => end(s));
    return new Promise((resolve) => {
      // The creation answer is held until our header (and the features) are written, even
      // when the client asked for hold='0'.
      s.held.push({ rid, resolve, timer: undefined });
      feed(s, openMessage(s, body.attrs["xml:lang"]));
    });
  };

  const request = (s: Session, body: Element): Promise<string> | string => {
    const rid = intAttr(body, "rid");
    if (rid === undefined) return terminateBody("bad-request");
    clearTimeout(s.inactivityTimer);
    if (s.driver !== undefined) s.driver.lastActivity = Date.now();
    if (rid <= s.lastRid) {
      const kept = s.answers.get(rid);
      if (kept !== undefined) return kept;
      fail(s, "item-not-found");
      return terminateBody("item-not-found");
    }
    if (rid > s.lastRid + 2 * requests || s.waiting.has(rid)) {
      fail(s, "item-not-found");
      return terminateBody("item-not-found");
    }
    if (body.attrs.pause !== undefined) {
      const pause = intAttr(body, "pause");
      // §10: no longer than the `maxpause` we announced.
      const condition = pause === undefined || pause < 1
        ? "bad-request"
        : pause > maxpause
        ? "policy-violation"
        : undefined;
      if (condition !== undefined) {
        fail(s, condition);
        return terminateBody(condition);
      }
    }
    return new Promise((resolve) => {
      if (rid !== s.lastRid + 1) {
        if (s.held.length + s.waiting.size >= requests) {
          fail(s, "policy-violation");
          resolve(terminateBody("policy-violation"));
          return;
        }
        s.waiting.set(rid, { body, resolve });
        return;
      }
      inOrder(s, rid, body, resolve);
      // The gap filled: the requests behind it, in order.
      for (let next = s.waiting.get(s.lastRid + 1); next !== undefined && !s.ended;) {
        s.waiting.delete(s.lastRid + 1);
        inOrder(s, s.lastRid + 1, next.body, next.resolve);
        next = s.waiting.get(s.lastRid + 1);
      }
    });
  };

  /** Ends a session for a broken rule: the client is told in the request that broke it. */
  const fail = (s: Session, condition: string) => {
    s.terminate = ` type='terminate' condition='${condition}'`;
    if (s.driver !== undefined) hangUp(s.driver, `BOSH ${condition}`);
    end(s);
  };

  const cors = (req: Request): Record<string, string> | undefined => {
    const origin = req.headers.get("origin");
    if (!originAllowed(origin, req.headers.get("host"), opts.corsOrigins)) return undefined;
    return origin === null ? {} : {
      "access-control-allow-origin": origin,
      "access-control-allow-methods": "POST, OPTIONS",
      "access-control-allow-headers": "content-type",
      "access-control-max-age": "86400",
      vary: "origin",
    };
  };

  const xmlResponse = (body: string, headers: Record<string, string>) =>
    new Response(body, {
      headers: { ...headers, "content-type": "text/xml; charset=utf-8" },
    });

  const readBody = async (req: Request): Promise<Uint8Array | undefined> => {
    const declared = Number(req.headers.get("content-length") ?? "0");
    if (declared > opts.maxBodyBytes) return undefined;
    const reader = req.body?.getReader();
    if (reader === undefined) return new Uint8Array(0);
    const chunks: Uint8Array[] = [];
    let n = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      n += value.length;
      if (n > opts.maxBodyBytes) {
        await reader.cancel().catch(() => {});
        return undefined;
      }
      chunks.push(value);
    }
    const all = new Uint8Array(n);
    let off = 0;
    for (const c of chunks) {
      all.set(c, off);
      off += c.length;
    }
    return all;
  };

  return {
    size: () => sessions.size,
    async handle(req, peer) {
      const headers = cors(req);
      if (headers === undefined) {
        return new Response("This origin may not connect\n", { status: 403 });
      }
      if (req.method === "OPTIONS") return new Response(null, { status: 204, headers });
      if (req.method !== "POST") {
        return new Response("BOSH (XEP-0124) takes POST\n", {
          status: 405,
          headers: { ...headers, allow: "POST, OPTIONS" },
        });
      }
      const bytes = await readBody(req);
      // Over the limit: refused unread, so the sid it names is unknown (the session ends by
      // inactivity if the client gives up).
      if (bytes === undefined) return xmlResponse(terminateBody("policy-violation"), headers);
      const ev = parseMessage(bytes, opts.maxBodyBytes);
      if (
        ev === undefined || ev.kind !== "stanza" || ev.stanza.name !== "body" ||
        ev.stanza.xmlns !== NS_HTTPBIND
      ) {
        return xmlResponse(terminateBody("bad-request"), headers);
      }
      const body = ev.stanza;
      const sid = body.attrs.sid;
      if (sid === undefined) return xmlResponse(await create(body, peer), headers);
      const s = sessions.get(sid);
      if (s === undefined) return xmlResponse(terminateBody("item-not-found"), headers);
      return xmlResponse(await request(s, body), headers);
    },
  };
}
