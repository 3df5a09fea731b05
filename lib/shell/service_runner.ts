/**
 * Runs the in-process pubsub service (lib/services/pubsub/) on its domain: one queue, the nodes
 * in memory (loaded at start from their keyval records), each step's records stored durably
 * before its stanzas are routed. The decisions are the reducer's; this only loads and stores.
 * @module
 */
import type { Logger } from "@logtape/logtape";
import type { Element } from "../xml/element.ts";
import { errorReply, type StanzaErrorCondition } from "../xmpp/errors.ts";
import { EMPTY_ROSTER, type Roster } from "../core/session.ts";
import type { KeyvalStore } from "../storage/mod.ts";
import {
  loadService,
  type PubsubOutput,
  type PubsubServiceCtx,
  reducePubsub,
  type ServiceState,
  type StoredNode,
} from "../services/pubsub/service.ts";

/** An in-process service as the router's executor sees it. */
export interface ServiceRunner {
  readonly domain: string;
  /** Takes a stanza for the domain or a JID at it; resolves once its effects are durable. */
  readonly submit: (stanza: Element) => Promise<void> | void;
}

/** What the pubsub runner needs from the server. */
export interface PubsubRunnerDeps {
  readonly store: KeyvalStore<StoredNode>;
  readonly rosters: KeyvalStore<Roster>;
  readonly ctx: Omit<PubsubServiceCtx, "rosterOf">;
  readonly route: (stanza: Element) => Promise<void> | void;
  /** Stanzas waiting in the queue past which new ones are refused (`wait` / resource-constraint). */
  readonly maxQueue: number;
  readonly log: Logger;
}

/** Rounds of roster loading one stanza may need (each names every owner it needs at once). */
const ROSTER_ROUNDS = 3;

function refuse(
  stanza: Element,
  condition: StanzaErrorCondition,
  text: string,
): Element | undefined {
  const type = stanza.attrs.type;
  if (type === "error" || type === "result" || stanza.name === "presence") return undefined;
  return errorReply(stanza, condition, { text });
}

/** Loads the service's nodes and starts its queue. */
export async function startPubsubRunner(deps: PubsubRunnerDeps): Promise<ServiceRunner> {
  const domain = deps.ctx.domain;
  const keys = await deps.store.users(domain);
  const records: [string, unknown][] = [];
  for (const key of keys) records.push([key, await deps.store.get(domain, key)]);
  let state: ServiceState = loadService(records);
  let tail: Promise<void> = Promise.resolve();
  let queued = 0;

  async function rosterOf(bare: string): Promise<Roster> {
    const at = bare.indexOf("@");
    if (at < 0) return EMPTY_ROSTER;
    return (await deps.rosters.get(bare.slice(at + 1), bare.slice(0, at))) ?? EMPTY_ROSTER;
  }

  async function step(stanza: Element): Promise<readonly PubsubOutput[]> {
    const rosters = new Map<string, Roster>();
    const ctx: PubsubServiceCtx = { ...deps.ctx, rosterOf: (bare) => rosters.get(bare) };
    for (let round = 0; round <= ROSTER_ROUNDS; round++) {
      const [next, outputs] = reducePubsub(state, stanza, ctx);
      const need = outputs.find((o) => o.kind === "need-roster");
      if (need === undefined || round === ROSTER_ROUNDS) {
        // Durable first: a notification never announces what a crash could take back.
        for (const o of outputs) {
          if (o.kind !== "store") continue;
          if (o.value === undefined) await deps.store.delete(domain, o.key);
          else await deps.store.set(domain, o.key, o.value);
        }
        state = next;
        return outputs;
      }
      for (const owner of need.owners) rosters.set(owner, await rosterOf(owner));
    }
    return [];
  }

  /**
   * One stanza on the queue. The effects of what it routes are returned, not awaited: the
   * queue must not wait for an account that may be routing to this service.
   */
  async function handle(stanza: Element): Promise<Promise<void>[]> {
    let outputs: readonly PubsubOutput[];
    try {
      outputs = await step(stanza);
    } catch (e) {
      // The state stays as it was (nothing after the failed write was applied): the request
      // alone gets an error.
      deps.log.error("Pubsub request failed: {error}", { error: String(e) });
      const reply = refuse(stanza, "internal-server-error", "The service could not store this");
      const routed = reply === undefined ? undefined : deps.route(withFrom(reply, domain));
      return routed === undefined ? [] : [routed];
    }
    const waits: Promise<void>[] = [];
    for (const o of outputs) {
      if (o.kind !== "route") continue;
      const routed = deps.route(o.stanza);
      if (routed !== undefined) waits.push(routed);
    }
    return waits;
  }

  function submit(stanza: Element): Promise<void> | void {
    if (queued >= deps.maxQueue) {
      const reply = refuse(stanza, "resource-constraint", "The service is busy; try again later");
      return reply === undefined ? undefined : deps.route(withFrom(reply, domain));
    }
    queued++;
    const done = tail.then(() => handle(stanza)).finally(() => queued--);
    tail = done.then(() => {}, () => {});
    return done.then((waits) => Promise.all(waits)).then(() => {});
  }

  return { domain, submit };
}

function withFrom(el: Element, from: string): Element {
  return { ...el, attrs: { ...el.attrs, from } };
}
