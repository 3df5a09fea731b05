/**
 * Runs multi-user chat (lib/services/muc/) on its domain: the rooms in memory (persistent ones
 * loaded at start), one queue per room, each reduction's records stored and archived durably
 * before its stanzas are routed. The decisions are the reducers'; this only loads and stores.
 * @module
 */
import { createHmac } from "node:crypto";
import type { Logger } from "@logtape/logtape";
import type { Element } from "../xml/element.ts";
import { errorReply } from "../xmpp/errors.ts";
import { parseJid } from "../xmpp/jid.ts";
import type { ArchiveStore, KeyvalStore } from "../storage/mod.ts";
import { type ArchivedMessage, MAX_PAGE } from "../core/archive.ts";
import {
  destroyCommandResult,
  destroyRoom,
  isDead,
  mamAnswer,
  type MucCtx,
  reduceRoom,
  reduceService,
  type Room,
  roomFromStored,
  type RoomListing,
  type RoomOutput,
  type ServiceCtx,
  shutdownRoom,
  type StoredRoom,
} from "../services/muc/mod.ts";
import type { ServiceRunner } from "./service_runner.ts";
import { NS_MUC } from "../services/muc/namespaces.ts";

/** What the MUC runner needs from the server. */
export interface MucRunnerDeps {
  readonly store: KeyvalStore<StoredRoom>;
  readonly archive: ArchiveStore;
  /** The room context without what the runner supplies (occupant ids, rooms per creator). */
  readonly ctx: Omit<MucCtx, "occupantId" | "roomsCreatedBy">;
  /** The secret of XEP-0421 occupant ids (stable per room and user, unlinkable across rooms). */
  readonly occupantKey: Uint8Array;
  /** Room joins one user may make per second (`muc_joins_per_second`). */
  readonly joinsPerSecond: number;
  readonly route: (stanza: Element) => Promise<void> | void;
  /** Stanzas waiting for one room past which new ones are refused (resource-constraint). */
  readonly maxQueue: number;
  readonly log: Logger;
}

/** The MUC service as the server runs it. */
export interface MucRunner extends ServiceRunner {
  /** Tells every occupant the service is going (status 332); later stanzas are dropped. */
  readonly shutdown: () => Promise<void>;
  /** Rooms in memory (for tests and the admin). */
  readonly roomCount: () => number;
}

function refusal(stanza: Element, text: string): Element | undefined {
  const type = stanza.attrs.type;
  if (type === "error" || type === "result" || stanza.name === "presence") return undefined;
  return errorReply(stanza, "resource-constraint", { text });
}

/**
 * One room's queue. Stanzas are reduced in the order they came, each as soon as the one before
 * it was (`reduced`) if that one only broadcasts and archives, so that its archive append
 * starts while earlier ones are being synced and one sync takes many; what the reductions
 * output is carried out in the same order (`tail`), each after the one before it was.
 */
interface RoomQueue {
  reduced: Promise<void>;
  tail: Promise<void>;
  /** Stanzas queued and not yet carried out (at most `maxQueue`). */
  waiting: number;
}

/** Loads the persistent rooms and starts the service. */
export async function startMucRunner(deps: MucRunnerDeps): Promise<MucRunner> {
  const domain = deps.ctx.domain;
  const rooms = new Map<string, Room>();
  const queues = new Map<string, RoomQueue>();
  let stopping = false;

  const ctx: MucCtx = {
    ...deps.ctx,
    occupantId: (room, bare) =>
      createHmac("sha256", deps.occupantKey).update(`${room}\0${bare}`).digest("base64url")
        .slice(0, 22),
    // Rooms whose owners include the user: bounded by the rooms the service holds.
    roomsCreatedBy: (bare) => {
      let n = 0;
      for (const r of rooms.values()) if (r.affiliations.get(bare)?.affiliation === "owner") n++;
      return n;
    },
  };
  const serviceCtx: ServiceCtx = {
    ...ctx,
    publicRooms: (): RoomListing[] => {
      const out: RoomListing[] = [];
      for (const r of rooms.values()) {
        if (r.config.public && !r.locked) out.push({ jid: r.jid, name: r.config.name || r.jid });
      }
      return out;
    },
  };

  /** The newest `n` messages of a room's archive, oldest first, a page of at most MAX_PAGE at a time. */
  async function lastArchived(user: string, n: number): Promise<ArchivedMessage[]> {
    const items: ArchivedMessage[] = [];
    let before: string | true = true;
    while (items.length < n) {
      const max = Math.min(n - items.length, MAX_PAGE);
      const page = await deps.archive.query(domain, user, { max, before, flip: false });
      if ("error" in page || page.items.length === 0) break;
      items.unshift(...page.items);
      if (page.complete) break;
      before = page.items[0].id;
    }
    return items;
  }

  for (const user of await deps.store.users(domain)) {
    const data = await deps.store.get(domain, user);
    if (data === undefined) continue;
    const jid = `${user}@${domain}`;
    try {
      let room = roomFromStored(jid, data, ctx);
      // History is kept in memory only; a room that archives refills it from its archive,
      // so that newcomers after a restart still get the discussion so far.
      if (ctx.archiving && room.config.archiving && room.config.historyLength > 0) {
        try {
          room = roomFromStored(
            jid,
            data,
            ctx,
            await lastArchived(user, room.config.historyLength),
          );
        } catch (e) {
          deps.log.warn("History of room {jid} could not be read: {error}", {
            jid,
            error: String(e),
          });
        }
      }
      rooms.set(jid, room);
    } catch (e) {
      deps.log.error("Room {jid} could not be loaded: {error}", { jid, error: String(e) });
    }
  }

  const localOf = (roomJid: string) => roomJid.slice(0, roomJid.lastIndexOf("@"));

  /**
   * What the room routed to each user that is still on its way through the user's account
   * (messages pass the recipient's archive; presence and iqs are handed over at once): the
   * next stanza to that user waits for it, so that a user gets the room's stanzas in order
   * (RFC 6120 §10.1). Accounts never wait for services, so this wait cannot close a cycle.
   */
  const inFlight = new Map<string, Promise<void>>();

  async function routeInOrder(stanza: Element, waits: Promise<void>[]): Promise<void> {
    const to = stanza.attrs.to === undefined ? undefined : parseJid(stanza.attrs.to);
    const key = to?.local === undefined ? undefined : `${to.local}@${to.domain}`;
    const before = key === undefined ? undefined : inFlight.get(key);
    if (before !== undefined) await before;
    const routed = deps.route(stanza);
    if (routed === undefined) return;
    waits.push(routed);
    if (key === undefined) return;
    const settled = routed.catch(() => {});
    inFlight.set(key, settled);
    // Bounded by the users with a stanza on its way: each entry goes once it has arrived.
    settled.then(() => inFlight.get(key) === settled && inFlight.delete(key));
  }

  /** Starts a reduction's archive appends at once; their promises by output index. */
  function startAppends(outputs: readonly RoomOutput[]): (Promise<void> | undefined)[] {
    return outputs.map((o) => {
      if (o.kind !== "archive-append") return undefined;
      const p = deps.archive.append(domain, localOf(o.jid), [o.item]);
      p.catch(() => {});
      return p;
    });
  }

  /**
   * Executes a room's outputs in order: what is stored is durable before what follows, and
   * each user gets the room's stanzas in the order the room sent them. `started`: appends
   * already under way, by output index.
   */
  async function execute(
    outputs: readonly RoomOutput[],
    waits: Promise<void>[],
    started?: readonly (Promise<void> | undefined)[],
  ): Promise<void> {
    for (const [i, o] of outputs.entries()) {
      switch (o.kind) {
        case "route":
          await routeInOrder(o.stanza, waits);
          break;
        case "store-room":
          await deps.store.set(domain, localOf(o.jid), o.data);
          break;
        case "delete-room":
          await deps.store.delete(domain, localOf(o.jid));
          break;
        case "archive-append":
          await (started?.[i] ?? deps.archive.append(domain, localOf(o.jid), [o.item]));
          break;
        case "mam-query": {
          const page = await deps.archive.query(domain, localOf(o.jid), o.query);
          const answers = "error" in page
            ? [errorReply(o.iq, "item-not-found")]
            : mamAnswer(o.jid, o.iq, o.query, page);
          for (const a of answers) {
            await routeInOrder(a.attrs.from === undefined ? withFrom(a, o.jid) : a, waits);
          }
          break;
        }
      }
    }
  }

  /** The room's queue, or the refusal of a stanza past `maxQueue`. */
  function admit(
    roomJid: string,
    stanza: Element | undefined,
  ): RoomQueue | { readonly refused: Promise<void> | void } {
    let q = queues.get(roomJid);
    if (q === undefined) {
      q = { reduced: Promise.resolve(), tail: Promise.resolve(), waiting: 0 };
      queues.set(roomJid, q);
    }
    if (stanza !== undefined && q.waiting >= deps.maxQueue) {
      const reply = refusal(stanza, "The room is busy; try again later");
      return { refused: reply === undefined ? undefined : deps.route(withFrom(reply, roomJid)) };
    }
    q.waiting++;
    return q;
  }

  /**
   * Ends a queued stanza's turn once `run` settled: a failure answers the stanza; resolves
   * once the work and the effects of what it routed (the promises in `waits`) are durable.
   */
  function settle(
    roomJid: string,
    q: RoomQueue,
    stanza: Element | undefined,
    run: Promise<void>,
    waits: Promise<void>[],
  ): Promise<void> {
    const done = run.catch((e) => {
      deps.log.error("Room {jid} failed: {error}", { jid: roomJid, error: String(e) });
      const reply = stanza === undefined ? undefined : errorReply(stanza, "internal-server-error");
      if (reply !== undefined && stanza!.name !== "presence") {
        return deps.route(withFrom(reply, stanza!.attrs.to ?? roomJid));
      }
    }).finally(() => {
      // An idle room's queue goes, so that the map holds only rooms with work.
      if (--q.waiting === 0 && queues.get(roomJid) === q) queues.delete(roomJid);
    }) as Promise<void>;
    q.tail = done;
    return done.then(() => Promise.all(waits)).then(() => {});
  }

  /**
   * Runs `work` on the room's queue once everything queued for it before was carried out, and
   * before anything queued after it is reduced; resolves as {@link settle} says.
   */
  function enqueue(
    roomJid: string,
    stanza: Element | undefined,
    work: (waits: Promise<void>[]) => Promise<void>,
  ): Promise<void> | void {
    const q = admit(roomJid, stanza);
    if ("refused" in q) return q.refused;
    const waits: Promise<void>[] = [];
    const effects = settle(roomJid, q, stanza, q.tail.then(() => work(waits)), waits);
    q.reduced = q.tail;
    return effects;
  }

  /**
   * Reduces a stanza for the room as soon as the stanzas before it were, starting its archive
   * appends then, and carries out the rest of its outputs after theirs (see {@link RoomQueue}).
   */
  function enqueueReduction(
    roomJid: string,
    stanza: Element,
    reduce: () => readonly RoomOutput[],
  ): Promise<void> | void {
    const q = admit(roomJid, stanza);
    if ("refused" in q) return q.refused;
    const waits: Promise<void>[] = [];
    const reduced = q.reduced.then(() => {
      const outputs = reduce();
      return { outputs, started: startAppends(outputs) };
    });
    reduced.catch(() => {});
    const run = q.tail.then(() => reduced).then((r) => execute(r.outputs, waits, r.started));
    const effects = settle(roomJid, q, stanza, run, waits);
    const done = q.tail;
    // Only broadcasts and appends let the next stanza be reduced before they are carried out:
    // after anything else (an archive query, a stored configuration) the next one waits, so
    // that a query never sees a message that came after it.
    q.reduced = reduced.then(
      (r) =>
        r.outputs.every((o) => o.kind === "route" || o.kind === "archive-append")
          ? undefined
          : done,
      () => {},
    );
    return effects;
  }

  /** Joins per user in the current second; the map starts over each second, so it stays small. */
  let joinSecond = 0;
  const joins = new Map<string, number>();

  function tooManyJoins(stanza: Element): boolean {
    if (stanza.name !== "presence" || stanza.attrs.type !== undefined) return false;
    if (
      !stanza.children.some((c) => typeof c !== "string" && c.name === "x" && c.xmlns === NS_MUC)
    ) {
      return false;
    }
    const second = Math.floor(ctx.now() / 1000);
    if (second !== joinSecond) {
      joinSecond = second;
      joins.clear();
    }
    const from = stanza.attrs.from ?? "";
    const bare = from.includes("/") ? from.slice(0, from.indexOf("/")) : from;
    const n = (joins.get(bare) ?? 0) + 1;
    joins.set(bare, n);
    return n > deps.joinsPerSecond;
  }

  function onRoomStanza(roomJid: string, stanza: Element) {
    if (tooManyJoins(stanza)) {
      const reply = errorReply(stanza, "resource-constraint", {
        text: "Too many joins; slow down",
      });
      return deps.route(withFrom(reply, stanza.attrs.to ?? roomJid));
    }
    return enqueueReduction(roomJid, stanza, () => {
      const [next, outputs] = reduceRoom(rooms.get(roomJid), stanza, ctx);
      // The room as it now is serves the next stanza even while this one's writes finish:
      // they are in order on this queue.
      if (next === undefined || isDead(next)) rooms.delete(roomJid);
      else rooms.set(roomJid, next);
      return outputs;
    });
  }

  async function onServiceStanza(stanza: Element): Promise<void> {
    for (const o of reduceService(stanza, serviceCtx)) {
      if (o.kind === "route") {
        await deps.route(o.stanza);
        continue;
      }
      const destroyed: string[] = [];
      await Promise.all(o.rooms.map((roomJid) =>
        enqueue(roomJid, undefined, async (waits) => {
          const room = rooms.get(roomJid);
          if (room === undefined) return;
          const [, outputs] = destroyRoom(room, ctx, { reason: o.reason });
          rooms.delete(roomJid);
          destroyed.push(roomJid);
          await execute(outputs, waits);
        })
      ));
      await deps.route(destroyCommandResult(o.iq, destroyed, o.sessionId));
    }
  }

  function submit(stanza: Element): Promise<void> | void {
    if (stopping) return;
    const to = stanza.attrs.to === undefined ? undefined : parseJid(stanza.attrs.to);
    if (to === undefined) return;
    if (to.local === undefined) return onServiceStanza(stanza);
    return onRoomStanza(`${to.local}@${to.domain}`, stanza);
  }

  async function shutdown(): Promise<void> {
    if (stopping) return;
    stopping = true;
    const waits: Promise<void>[] = [];
    for (const room of rooms.values()) {
      if (room.occupants.size === 0) continue;
      waits.push(
        enqueue(room.jid, undefined, (w) => execute(shutdownRoom(room, ctx), w)) ??
          Promise.resolve(),
      );
    }
    await Promise.allSettled(waits);
  }

  return { domain, submit, shutdown, roomCount: () => rooms.size };
}

function withFrom(el: Element, from: string): Element {
  return { ...el, attrs: { ...el.attrs, from } };
}
