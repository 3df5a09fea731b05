/**
 * Stream management (XEP-0198, `urn:xmpp:sm:3`): acknowledgements and stream resumption.
 *
 * - `<sm/>` is offered after authentication; `<enable/>` after binding turns counting on, with
 *   `resume="true"` also resumption (`<enabled id max/>`).
 * - Counting is done in one place, `trackStanzas`, which sees every reduction's event and
 *   outputs: a stanza from the client raises `inbound` (our `h`), every stanza the session sends
 *   joins the `unacked` queue until the client's `<a h/>` covers it. We ask with `<r/>` after
 *   a reduction that sent stanzas when no request is outstanding, and again every
 *   `ACK_REQUEST_EVERY` stanzas while one is. Past `limits.smQueue` stanzas or
 *   `limits.smQueueBytes` bytes (each stanza measured once, when queued) the session ends with
 *   `resource-constraint`, as Prosody's mod_smacks does, and what was never acknowledged goes to
 *   offline storage as at the resume timeout: the client can neither keep up nor lose messages.
 * - When a resumable session's connection drops, the destroy path hibernates it instead
 *   (`hibernate`): it stays registered and keeps its presence; what is sent to it joins the
 *   queue. At the timeout it is destroyed, and its unacknowledged messages go to offline
 *   storage (`unackedToOffline`). An account keeps at most `limits.resumablePerAccount`
 *   hibernating sessions: one more ends the oldest, as at its timeout.
 * - Resumption needs the shell, since the session lives in another connection: the reducer asks
 *   with `sm-resume`; the shell finds the connection that holds `previd` for the same account,
 *   takes its session record (closing it) and answers `sm-resume-answer`; `onResumeAnswer`
 *   then adopts the record and resends what the client has not acknowledged. Everything that
 *   decides stays here, pure; the shell only moves the record.
 *
 * This module never ends a session itself (destroy.ts imports it): a protocol violation comes
 * back as an `SmEnd` and mod.ts sends it through the destroy path.
 * @module
 */
import { bareJid, isHibernating, type Session, type StreamManagement } from "../core/session.ts";
import { child, elem, type Element, withAttrs } from "../xml/element.ts";
import type { StreamError } from "../xmpp/errors.ts";
import { NS_STANZA_ERRORS } from "../xmpp/namespaces.ts";
import { NS_CLIENT, NS_MAM, NS_SM } from "../xmpp/namespaces.ts";
import { stanzaBytes } from "../core/stanza_size.ts";
import type { Ctx, Event, Module, Output, Step } from "../core/types.ts";

/** The default of `limits.smQueue`: unacknowledged stanzas a session may hold. */
export const MAX_UNACKED = 500;
/** While an `<r/>` is unanswered, another is sent after this many more stanzas. */
export const ACK_REQUEST_EVERY = 5;

/** XEP-0198 §2: offered after authentication, beside `<bind/>`. No disco feature. */
export const STREAM_MANAGEMENT: Module = {
  name: "stream-management",
  authedFeatures: () => [elem("sm", { xmlns: NS_SM })],
};

/** A violation that ends the session: mod.ts sends `session` through the destroy path. */
export interface SmEnd {
  readonly end: StreamError;
  readonly session: Session;
  /** What to do before the destroy path's outputs. */
  readonly before: readonly Output[];
}

const NONZAS = new Set(["enable", "resume", "r", "a"]);

/** True for the elements of XEP-0198 a client sends. */
export function isSmNonza(el: Element): boolean {
  return el.xmlns === NS_SM && NONZAS.has(el.name);
}

/** XEP-0198 §4: only stanzas count, not nonzas. */
function isCounted(el: Element): boolean {
  return el.xmlns === NS_CLIENT &&
    (el.name === "message" || el.name === "presence" || el.name === "iq");
}

/** Counters are unsigned 32-bit integers that wrap (XEP-0198 §4). */
function u32(n: number): number {
  return n >>> 0;
}

function parseCounter(v: string | undefined): number | undefined {
  if (v === undefined || !/^\d{1,10}$/.test(v)) return undefined;
  const n = Number(v);
  return n <= 0xffffffff ? n : undefined;
}

function send(stanza: Element): Output {
  return { kind: "send", stanza };
}

function failed(condition: string, h?: number): Output {
  return send(elem("failed", { xmlns: NS_SM, h: h === undefined ? undefined : String(h) }, [
    elem(condition, { xmlns: NS_STANZA_ERRORS }),
  ]));
}

/** The count of stanzas the client has acknowledged. */
function ackedCount(sm: StreamManagement): number {
  return u32(sm.outbound - sm.unacked.length);
}

/** `<enable/>`, `<resume/>`, `<r/>`, `<a/>` from an authenticated stream. */
export function onSmNonza(s: Session, el: Element, ctx: Ctx): Step | SmEnd {
  switch (el.name) {
    case "enable":
      return onEnable(s, el, ctx);
    case "resume":
      return onResume(s, el);
    case "r":
      // Before `<enable/>` there is nothing to count: ignored, as Prosody does.
      if (s.sm === undefined) return [s, []];
      // Acknowledged only once what those stanzas caused is durable (stored or delivered).
      return [s, [{
        kind: "send-durable",
        stanza: elem("a", { xmlns: NS_SM, h: String(s.sm.inbound) }),
      }]];
    default:
      return onAck(s, el);
  }
}

function onEnable(s: Session, el: Element, ctx: Ctx): Step {
  // XEP-0198 §3: only after binding, and only once per session.
  if (s.fullJid === undefined || s.sm !== undefined) return [s, [failed("unexpected-request")]];
  // With no hibernating session allowed, resumption is not offered (XEP-0198 §3: `<enabled/>`
  // without `resume` is counting only), rather than promised and then refused.
  const resume = (el.attrs.resume === "true" || el.attrs.resume === "1") &&
    ctx.limits.resumablePerAccount > 0;
  if (!resume) {
    return [{ ...s, sm: { inbound: 0, outbound: 0, unacked: [] } }, [
      send(elem("enabled", { xmlns: NS_SM })),
    ]];
  }
  // The client may ask for a shorter wait than ours, never a longer one.
  const asked = parseCounter(el.attrs.max);
  const max = asked !== undefined && asked > 0
    ? Math.min(asked, ctx.smResumeTimeout)
    : ctx.smResumeTimeout;
  const id = ctx.newId();
  return [{ ...s, sm: { id, max, inbound: 0, outbound: 0, unacked: [] } }, [
    send(elem("enabled", { xmlns: NS_SM, id, resume: "true", max: String(max) })),
    { kind: "sm-resumable", id },
  ]];
}

function onResume(s: Session, el: Element): Step {
  // XEP-0198 §5: instead of binding, on a stream that has not enabled anything yet.
  if (s.fullJid !== undefined || s.sm !== undefined) return [s, [failed("unexpected-request")]];
  const previd = el.attrs.previd;
  const h = parseCounter(el.attrs.h);
  if (previd === undefined || previd === "" || h === undefined) {
    return [s, [failed("bad-request")]];
  }
  return [s, [{ kind: "sm-resume", previd, h }]];
}

function tooHigh(h: number, sm: StreamManagement): StreamError {
  return {
    condition: "undefined-condition",
    text: "Acknowledged more stanzas than were sent",
    app: elem("handled-count-too-high", {
      xmlns: NS_SM,
      h: String(h),
      "send-count": String(sm.outbound),
    }),
  };
}

function onAck(s: Session, el: Element): Step | SmEnd {
  const sm = s.sm;
  const h = parseCounter(el.attrs.h);
  if (sm === undefined || h === undefined) return [s, []];
  const n = u32(h - ackedCount(sm));
  // Behind what was already acknowledged (a client that restarted its count: xmpp.js 0.14 does
  // when an <r/> shares a read with the stanzas before it): it acknowledges nothing new, as
  // with Prosody. Only a count far ahead, not one behind, is read as wrapped past 2^32.
  if (n >= 2 ** 31) return [s, []];
  // XEP-0198 §4: more than we sent is an error that ends the stream.
  if (n > sm.unacked.length) return { end: tooHigh(h, sm), session: s, before: [] };
  return [{ ...s, sm: { ...dropAcked(sm, n), requestedAt: undefined } }, []];
}

/** The sizes of the queued stanzas: as recorded, or measured when a record lacks them. */
function sizesOf(sm: StreamManagement): readonly number[] {
  const sizes = sm.unackedSizes ?? [];
  return sizes.length === sm.unacked.length ? sizes : sm.unacked.map(stanzaBytes);
}

/** `sm` with another queue; an empty queue has no sizes. */
function withQueue(
  sm: StreamManagement,
  unacked: readonly Element[],
  sizes: readonly number[],
  bytes: number,
): StreamManagement {
  const { unackedSizes: _s, unackedBytes: _b, ...rest } = sm;
  return unacked.length === 0
    ? { ...rest, unacked }
    : { ...rest, unacked, unackedSizes: sizes, unackedBytes: bytes };
}

/** The queue without its first `n` stanzas (acknowledged); the byte count follows. */
function dropAcked(sm: StreamManagement, n: number): StreamManagement {
  if (n === 0) return sm;
  if (n >= sm.unacked.length) return withQueue(sm, [], [], 0);
  const sizes = sizesOf(sm);
  let bytes = 0;
  for (let i = n; i < sizes.length; i++) bytes += sizes[i];
  return withQueue(sm, sm.unacked.slice(n), sizes.slice(n), bytes);
}

/**
 * Counts what a reduction received and sent (see the module comment). While the session
 * hibernates, nothing can be written: sends only join the queue.
 */
export function trackStanzas(prev: Session, ev: Event, step: Step, ctx: Ctx): Step | SmEnd {
  const [next, out] = step;
  const sm0 = next.sm;
  if (next.destroyed || sm0 === undefined) return step;
  // A stanza counts as handled once the session that enabled counting has reduced it.
  const received = ev.kind === "stanza" && prev.sm !== undefined && isCounted(ev.stanza);
  const hibernating = sm0.hibernating === true;
  const sends = out.filter((o) => o.kind === "send" && isCounted(o.stanza));
  if (!received && sends.length === 0) return step;
  const unacked = [...sm0.unacked];
  const sizes = sends.length === 0 ? undefined : [...sizesOf(sm0)];
  let bytes = sm0.unackedBytes ?? (sizes ?? []).reduce((a, b) => a + b, 0);
  let outbound = sm0.outbound;
  const kept: Output[] = [];
  for (const o of out) {
    if (o.kind === "send" && isCounted(o.stanza)) {
      unacked.push(o.stanza);
      // Measured once, here; acknowledgements subtract the recorded size.
      const size = stanzaBytes(o.stanza);
      sizes!.push(size);
      bytes += size;
      outbound = u32(outbound + 1);
    }
    // Nothing is written while hibernating, stream framing included.
    if (
      hibernating && (o.kind === "send" || o.kind === "open-stream" || o.kind === "close-stream")
    ) {
      continue;
    }
    kept.push(o);
  }
  if (hibernating && sends.length > 0) {
    kept.push(...stash(next, sends.map((o) => (o as { stanza: Element }).stanza)));
  }
  let requestedAt = sm0.requestedAt;
  if (
    sends.length > 0 && !hibernating &&
    (requestedAt === undefined || u32(outbound - requestedAt) >= ACK_REQUEST_EVERY)
  ) {
    kept.push(send(elem("r", { xmlns: NS_SM })));
    requestedAt = outbound;
  }
  const sm: StreamManagement = {
    ...(sizes === undefined ? sm0 : withQueue(sm0, unacked, sizes, bytes)),
    inbound: received ? u32(sm0.inbound + 1) : sm0.inbound,
    outbound,
    unacked,
    requestedAt,
  };
  const session: Session = { ...next, sm };
  const limits = ctx.limits;
  if (unacked.length > limits.smQueue || bytes > limits.smQueueBytes) {
    return {
      end: {
        condition: "resource-constraint",
        text: unacked.length > limits.smQueue
          ? "Too many unacknowledged stanzas"
          : "Too many unacknowledged bytes",
      },
      session,
      before: kept,
    };
  }
  return [session, kept];
}

/** True when a dropped connection leaves this session waiting to be resumed. */
export function canHibernate(s: Session, ctx: Ctx): boolean {
  return !s.destroyed && s.fullJid !== undefined && s.sm?.id !== undefined &&
    s.sm.hibernating !== true && ctx.limits.resumablePerAccount > 0;
}

/**
 * The user's other hibernating sessions that must end for this one to hibernate, oldest first:
 * an account keeps at most `limits.resumablePerAccount` (Prosody's mod_smacks likewise ends
 * the oldest past `smacks_max_hibernated_sessions`). Ending the oldest rather than refusing
 * resumption at `<enable/>` keeps every connected client resumable (most never drop), and what
 * the ended one never acknowledged still goes to offline storage, as at its timeout.
 */
function evicted(s: Session, ctx: Ctx): string[] {
  const others = ctx.resourcesOf(bareJid(s)!).filter((r) =>
    r.hibernatingSince !== undefined && r.fullJid !== s.fullJid
  );
  const excess = others.length + 1 - ctx.limits.resumablePerAccount;
  if (excess <= 0) return [];
  return others.sort((a, b) => a.hibernatingSince! - b.hibernatingSince!).slice(0, excess)
    .map((r) => r.fullJid);
}

/** The connection dropped: the session stays, bound and present, waiting to be resumed. */
export function hibernate(s: Session, ctx: Ctx): Step {
  const sm = s.sm!;
  const evict = evicted(s, ctx);
  const now = ctx.now();
  return [{ ...s, sm: { ...sm, hibernating: true, hibernatedAt: now, requestedAt: undefined } }, [
    ...stash(s, sm.unacked),
    {
      kind: "hibernate",
      seconds: sm.max ?? ctx.smResumeTimeout,
      ...(evict.length === 0 ? {} : { evict }),
    },
    { kind: "log", level: "debug", message: `${s.fullJid} hibernates (XEP-0198)` },
  ]];
}

/**
 * A copy whose original is elsewhere: one the server made on the account's behalf (from the
 * user's own bare JID, which no client can send from: c2s stamps full JIDs), such as the copies
 * for the user's other resources, or an archive page's result.
 */
function isCopy(el: Element, bare: string): boolean {
  return el.attrs.from === bare || child(el, "result", NS_MAM) !== undefined;
}

/**
 * XEP-0198 §5: when the session ends, the messages the client never acknowledged are treated as
 * messages for an unavailable resource: each chat or normal message goes to the account's
 * offline storage (addressed to the bare JID), delivered at the next initial presence of any of
 * the user's resources (XEP-0160), whether or not another resource is online now. Copies (see
 * `isCopy`) and archive results are skipped: their originals are with another resource or in
 * the archive.
 * Presence, iq and other message types are not kept, as for an offline user (RFC 6121 §8.5.2).
 */
export function unackedToOffline(s: Session): Output[] {
  const bare = bareJid(s);
  if (s.sm === undefined || bare === undefined) return [];
  const out = keptOffline(s.sm.unacked, bare).map((stanza): Output => ({
    kind: "account",
    bare,
    op: { kind: "offline-message", stanza },
  }));
  // Stored from memory: the copy kept on disk while it hibernated is no longer needed.
  if (s.sm.hibernating === true && s.sm.id !== undefined) out.push(unstash(bare, s.sm.id));
  return out;
}

/** The messages of `queue` that offline storage keeps, addressed to the bare JID. */
function keptOffline(queue: readonly Element[], bare: string): Element[] {
  return queue.flatMap((el) => {
    const type = el.attrs.type ?? "normal";
    if (el.name !== "message" || (type !== "chat" && type !== "normal") || isCopy(el, bare)) {
      return [];
    }
    return [withAttrs(el, { to: bare })];
  });
}

/**
 * Issue 10: while a session hibernates, what it is sent lives on disk too (lib/storage/
 * sm_stash.ts), so that a crash before it is resumed or ends cannot lose it.
 */
function stash(s: Session, queue: readonly Element[]): Output[] {
  const bare = bareJid(s)!;
  const messages = keptOffline(queue, bare);
  if (messages.length === 0 || s.sm?.id === undefined) return [];
  return [{ kind: "account", bare, op: { kind: "sm-stash", sid: s.sm.id, messages } }];
}

function unstash(bare: string, sid: string): Output {
  return { kind: "account", bare, op: { kind: "sm-unstash", sid } };
}

/** True when `old` is the session `previd` names and belongs to the account `s` logged in as. */
export function canResume(s: Session, old: Session, previd: string): boolean {
  return s.type === "c2s" && s.fullJid === undefined && !old.destroyed &&
    old.fullJid !== undefined && old.sm?.id === previd && old.username === s.username &&
    old.host === s.host;
}

/**
 * The shell's answer to `sm-resume`: the old session continues on this connection (keeping
 * what belongs to the connection: ids, TLS state, address, language), acknowledged stanzas are
 * dropped and the others sent again, in order, after `<resumed/>`.
 */
export function onResumeAnswer(
  s: Session,
  ev: Extract<Event, { kind: "sm-resume-answer" }>,
): Step | SmEnd {
  const old = ev.old;
  if (old === undefined || !canResume(s, old, ev.previd)) {
    // The client then binds a new resource (XEP-0198 §5).
    return [s, [failed("item-not-found")]];
  }
  const sm0 = old.sm!;
  const merged: Session = {
    ...old,
    id: s.id,
    notopen: s.notopen,
    streamId: s.streamId,
    secure: s.secure,
    channelBindings: s.channelBindings,
    ip: s.ip,
    lang: s.lang,
    sasl: undefined,
    sm: {
      id: sm0.id,
      max: sm0.max,
      inbound: sm0.inbound,
      outbound: sm0.outbound,
      unacked: sm0.unacked,
      ...(sm0.unackedSizes === undefined
        ? {}
        : { unackedSizes: sm0.unackedSizes, unackedBytes: sm0.unackedBytes }),
    },
  };
  // The registry must point here before anything else happens to the session, even its end.
  const rebind: Output = { kind: "bind", fullJid: old.fullJid! };
  const n = u32(ev.h - ackedCount(sm0));
  if (n > sm0.unacked.length) return { end: tooHigh(ev.h, sm0), session: merged, before: [rebind] };
  const resend = sm0.unacked.slice(n);
  // The resent stanzas are counted again by `trackStanzas`, from the client's h.
  const next: Session = { ...merged, sm: { ...withQueue(merged.sm!, [], [], 0), outbound: ev.h } };
  return [next, [
    rebind,
    // What it was sent while hibernating is in `resend` now, no longer needed on disk.
    ...(sm0.hibernating === true ? [unstash(bareJid(old)!, sm0.id!)] : []),
    { kind: "sm-resumable", id: sm0.id! },
    send(elem("resumed", { xmlns: NS_SM, previd: ev.previd, h: String(sm0.inbound) })),
    ...resend.map(send),
  ]];
}

/**
 * Another connection resumed this session: this connection ends, but the session does not (no
 * unavailable presence, no unbind: the registry already points at the new connection).
 */
export function onTakenOver(s: Session): Step {
  const out: Output[] = [];
  if (!isHibernating(s)) {
    out.push({
      kind: "close-stream",
      error: { condition: "conflict", text: "The session was resumed elsewhere" },
    });
  }
  out.push({ kind: "disconnect" });
  return [{ ...s, destroyed: true }, out];
}
