/**
 * One queue per account: operations on a user's roster, subscriptions and offline messages are
 * reduced one at a time, whether or not the user is online. The account's data is loaded on
 * first use and let go when the account is idle and nobody of it is online.
 * @module
 */
import type { Logger } from "../log.ts";
import {
  failedOpReplies,
  mamMetadataAnswer,
  mamPageAnswer,
  reduceAccount,
} from "../account/account.ts";
import {
  type AccountCtx,
  type AccountOp,
  type AccountOutput,
  type AccountState,
} from "../core/types.ts";
import { EMPTY_ROSTER, phaseOf, type Roster } from "../core/session.ts";
import type { AccountStore } from "../storage/accounts.ts";
import { childElements, type Element } from "../xml/element.ts";
import {
  ACCOUNT_BOUND,
  ACCOUNT_CAPS,
  ACCOUNT_IQ,
  ACCOUNT_SCREEN,
  ACCOUNT_WAITING,
  payloadKey,
} from "../modules/registry.ts";
import type { ArchivePrefs } from "../core/archive.ts";
import type { ArchiveStore, KeyvalStore, OfflineStore, SmStash } from "../storage/mod.ts";
import type { Registry } from "./registry.ts";

/** The hub's operations. */
export interface AccountHub {
  /**
   * Queues an operation for the account `bare` (user@host). Resolves (never rejects) once it
   * was carried out or answered, and what it routed on was too: its effects are durable.
   */
  submit(bare: string, op: AccountOp): Promise<void>;
  /**
   * Keeps a place in the queue of `bare` for an op not known yet: a message on its way
   * through its sender's archive keeps the place it arrived in, so that what reaches this
   * account after it (the recipient's own presence, say) is carried out after it, as the
   * server received them. The ops behind it wait until it is filled or given up.
   */
  reserve(bare: string): Reservation;
  /**
   * Operations waiting in the account's queue or still being carried out behind later ones
   * (for backpressure on its sessions).
   */
  queueLength(bare: string): number;
  /** Resolves when every queue is empty (for shutdown and tests). */
  idle(): Promise<void>;
}

/** A place kept in an account's queue (see {@link AccountHub.reserve}). */
export interface Reservation {
  /** Puts the op in the place (at the queue's end once given up); resolves as `submit` does. */
  fill(op: AccountOp): Promise<void>;
  /** Gives the place up (nothing if filled already). */
  cancel(): void;
}

/** What the hub needs. */
export interface AccountHubDeps {
  readonly accounts: AccountStore;
  readonly rosters: KeyvalStore<Roster>;
  readonly offline: OfflineStore;
  /** What hibernating sessions were sent, on disk (XEP-0198; none: memory only). */
  readonly smStash?: SmStash;
  readonly archive: ArchiveStore;
  readonly prefs: KeyvalStore<ArchivePrefs>;
  /** Opens the keyval store of a module's per-account data. */
  readonly openStore: (name: string) => KeyvalStore<unknown>;
  readonly registry: Registry;
  readonly ctx: AccountCtx;
  /**
   * Routes a stanza (the shell's router); resolves once what it caused is durable.
   * `senderArchived`: see `RouteOptions` in lib/router.ts.
   */
  readonly route: (
    stanza: Element,
    opts?: { readonly senderArchived?: boolean },
  ) => Promise<void> | void;
  /** True while the tombstone of a removed account stands (XEP-0077, tombstones). */
  readonly isTombstoned?: (host: string, user: string) => Promise<boolean>;
  /** Deletes an account with its data and leaves a tombstone. */
  readonly removeAccount?: (host: string, user: string) => Promise<void>;
  readonly log: Logger;
}

interface Entry {
  readonly bare: string;
  /** `bare` split once, for the stores' arguments. */
  readonly host: string;
  readonly user: string;
  state?: AccountState;
  /**
   * `state.lastArchived` holds the newest archived stamp. Read before the first op that may
   * archive, not at load: most loads are logins that archive nothing.
   */
  archiveTail: boolean;
  readonly queue: Queued[];
  running: boolean;
  /**
   * The outputs of earlier ops still being carried out after their archive appends (see
   * {@link runOp}): what the account's later ops output waits for it.
   */
  tail?: Promise<void>;
  /** How many ops that {@link tail} still carries out (they count in the queue's length). */
  deferred: number;
}

/** An op waiting in a queue, with whoever waits for its effects. */
interface Queued {
  /** The op, or, for a kept place, what it will be (`undefined`: given up). */
  readonly op: AccountOp | Promise<AccountOp | undefined>;
  readonly done: () => void;
}

const settled = (ps: readonly Promise<unknown>[]): Promise<void> =>
  Promise.allSettled(ps).then(() => {});

/** Outputs that send something to someone: once one went out, the op has had its answer. */
const ANSWERS: ReadonlySet<AccountOutput["kind"]> = new Set([
  "deliver",
  "route",
  "send-roster",
  "mam-query",
  "mam-metadata",
  // Answered inside: the reducer's answer to the deletion is carried out with it.
  "delete-account",
  "end-sessions",
]);

/**
 * Outputs an op may have and still be carried out after the account's next ops were reduced:
 * appends (see {@link isAppend}), routes and deliveries. None of them reads the account's state
 * or a store another op writes.
 */
const PIPELINED: ReadonlySet<AccountOutput["kind"]> = new Set(["route", "deliver"]);

/**
 * An append to one of the account's lists (its archive, its offline messages): started as soon
 * as its op is reduced, since the list keeps appends in the order they are made.
 */
function isAppend(out: AccountOutput): boolean {
  return out.kind === "archive-append" || (out.kind === "store-offline" && out.action === "append");
}

/**
 * Most ops of one account carried out behind its next ones at a time: past it, the next op
 * waits, so that what an account holds in flight stays bounded whoever feeds its queue.
 */
export const PIPELINE_MAX = 64;

/** The ops that may raise a `WaitingEvent` (see `onWaiting` in lib/account/account.ts). */
const WAITING_OPS: ReadonlySet<AccountOp["kind"]> = new Set([
  "session-bound",
  "offline-message",
  "incoming-message",
  "sm-stash",
  "sm-unstash",
  "iq-reply",
]);

function split(bare: string): [string, string] {
  const at = bare.indexOf("@");
  return [bare.slice(at + 1), bare.slice(0, at)];
}

const storesOf = (ms: readonly { readonly store: string }[]): string[] => ms.map((m) => m.store);
const unique = (names: readonly string[]): readonly string[] => [...new Set(names)];

// The module stores most ops need, made once: screening modules (XEP-0191 blocking) judge every
// op, and those watching for messages that wait (XEP-0357 push) the `WAITING_OPS` too.
const SCREEN_STORES = unique(storesOf(ACCOUNT_SCREEN));
const SCREEN_WAITING_STORES = unique([
  ...storesOf(ACCOUNT_SCREEN),
  ...storesOf(ACCOUNT_WAITING),
]);

/** The module stores `op` needs, screening modules' first. */
function storesFor(op: AccountOp): readonly string[] {
  let stores: string[];
  if (op.kind === "session-bound") stores = storesOf(ACCOUNT_BOUND);
  else if (op.kind === "module-iq") {
    const payload = childElements(op.iq)[0];
    const entry = payload === undefined ? undefined : ACCOUNT_IQ.get(payloadKey(payload));
    if (entry === undefined) stores = [];
    else stores = [entry.store, ...entry.alsoStores];
  } else if (op.kind === "resource-caps") stores = storesOf(ACCOUNT_CAPS);
  // The common case (messages, presence): a list made once, nothing allocated.
  else return WAITING_OPS.has(op.kind) ? SCREEN_WAITING_STORES : SCREEN_STORES;
  if (WAITING_OPS.has(op.kind)) stores = [...stores, ...storesOf(ACCOUNT_WAITING)];
  return unique([...storesOf(ACCOUNT_SCREEN), ...stores]);
}

/** The stores `op` needs that `state` lacks; undefined when it has them all (the common case). */
function missingStores(state: AccountState, op: AccountOp): string[] | undefined {
  let missing: string[] | undefined;
  for (const name of storesFor(op)) {
    if (!(name in state.modules)) (missing ??= []).push(name);
  }
  return missing;
}

/** A hub over the given stores. */
export function createAccountHub(deps: AccountHubDeps): AccountHub {
  const entries = new Map<string, Entry>();
  const running = new Set<Promise<void>>();
  // Resources whose initial presence waits in their account's queue: until it is carried out
  // (their offline messages sent), the account counts them unavailable, so that a message it
  // delivers meanwhile goes after those offline messages (stored with them), never before.
  const announcing = new Map<string, Set<string>>();
  const ctx: AccountCtx = {
    ...deps.ctx,
    resourcesOf(bare) {
      const all = deps.ctx.resourcesOf(bare);
      const waiting = announcing.get(bare);
      if (waiting === undefined) return all;
      return all.map((r) => waiting.has(r.fullJid) ? { ...r, available: false } : r);
    },
  };

  async function load(bare: string): Promise<AccountState> {
    const [host, user] = split(bare);
    const [exists, roster, offline, prefs] = await Promise.all([
      deps.accounts.exists(host, user),
      deps.rosters.get(host, user),
      // The count and bytes only: the messages are read when they are delivered.
      deps.offline.stat(host, user),
      deps.prefs.get(host, user),
    ]);
    const gone = !exists && (await deps.isTombstoned?.(host, user)) === true;
    return {
      bare,
      exists,
      gone,
      roster: { ...EMPTY_ROSTER, ...roster },
      offline,
      prefs,
      // Until withArchiveTail: nothing reads it before then.
      lastArchived: 0,
      modules: {},
    };
  }

  /** Whether `lastArchived` must be read from the archive before `op` (see `Entry`). */
  function needsArchiveTail(entry: Entry, state: AccountState, op: AccountOp): boolean {
    // Nothing is archived for a JID without an account (whose name may not even be storable).
    if (entry.archiveTail || !deps.ctx.archive.enabled || !state.exists) return false;
    return op.kind === "incoming-message" || op.kind === "outgoing-message";
  }

  /** Fills in `lastArchived` from the archive's newest item. */
  async function withArchiveTail(entry: Entry, state: AccountState): Promise<AccountState> {
    const { last } = await deps.archive.metadata(entry.host, entry.user);
    entry.archiveTail = true;
    return { ...state, lastArchived: Math.max(state.lastArchived, last?.ts ?? 0) };
  }

  const moduleStores = new Map<string, KeyvalStore<unknown>>();
  function moduleStore(name: string): KeyvalStore<unknown> {
    let store = moduleStores.get(name);
    if (store === undefined) moduleStores.set(name, store = deps.openStore(name));
    return store;
  }

  /** Loads the module data of `stores`, so that the reducer finds it in the state. */
  async function withModuleData(
    entry: Entry,
    state: AccountState,
    stores: readonly string[],
  ): Promise<AccountState> {
    const { host, user } = entry;
    const loaded = await Promise.all(stores.map((name) => moduleStore(name).get(host, user)));
    const modules = { ...state.modules };
    stores.forEach((name, i) => modules[name] = loaded[i]);
    return { ...state, modules };
  }

  /**
   * Carries out one output, in order with the others of its op: a promise when it waits for a
   * store, nothing when it is done already (a delivery, a route), so that an op awaits only
   * what is asynchronous. What it routes on is not waited for here (two accounts' queues must
   * never wait for each other) but added to `onward`, which the op's submitter waits for.
   */
  function execute(
    entry: Entry,
    out: AccountOutput,
    onward: Promise<void>[],
  ): Promise<void> | void {
    const { bare, host, user } = entry;
    switch (out.kind) {
      case "store-roster":
        return deps.rosters.set(host, user, out.roster);
      case "store-offline":
        // A session gone meanwhile must not cost the messages: failing reloads the account's
        // count from the store, where they still are.
        return out.action === "append"
          ? deps.offline.append(host, user, out.message)
          : sendOffline(entry, out.to);
      case "deliver":
        deps.registry.get(out.to)?.dispatch({ kind: "inbound", stanza: out.stanza });
        return;
      case "route": {
        const routed = deps.route(
          out.stanza,
          out.senderArchived ? { senderArchived: true } : undefined,
        );
        if (routed !== undefined) onward.push(routed);
        return;
      }
      case "roster-changed":
        for (const r of deps.registry.resourcesOf(bare)) {
          deps.registry.get(r.fullJid)?.dispatch({ kind: "roster-loaded", roster: out.roster });
        }
        return;
      case "send-roster":
        deps.registry.get(out.to)?.dispatch({ kind: "roster-loaded", roster: out.roster });
        return;
      case "blocklist": {
        const to = out.to === undefined
          ? deps.registry.resourcesOf(bare).map((r) => r.fullJid)
          : [out.to];
        for (const jid of to) {
          deps.registry.get(jid)?.dispatch({ kind: "blocklist", blocklist: out.blocklist });
        }
        return;
      }
      case "avatar-hash": {
        const to = out.to === undefined
          ? deps.registry.resourcesOf(bare).map((r) => r.fullJid)
          : [out.to];
        for (const jid of to) {
          deps.registry.get(jid)?.dispatch({ kind: "avatar-hash", hash: out.hash });
        }
        return;
      }
      case "delete-account":
        return removeAndAnswer(entry, out.iq, onward);
      case "end-sessions":
        endSessions(bare, out.reply);
        return;
      case "archive-append":
        return deps.archive.append(host, user, [out.item]);
      case "sm-stash":
        return deps.smStash?.append(host, user, out.sid, out.messages);
      case "sm-unstash":
        return deps.smStash?.drop(host, user, out.sid);
      case "store-prefs":
        return deps.prefs.set(host, user, out.prefs);
      case "store-module": {
        const store = moduleStore(out.store);
        return out.data === undefined ? store.delete(host, user) : store.set(host, user, out.data);
      }
      // The shell loads; the reducers decide what is sent.
      case "mam-query":
        return answerMamQuery(entry, out.iq, out.query, onward);
      case "mam-metadata":
        return answerMamMetadata(entry, out.iq, onward);
    }
  }

  /** Carries out `outputs` in order, each store finished before what follows it. */
  async function executeAll(
    entry: Entry,
    outputs: readonly AccountOutput[],
    onward: Promise<void>[],
  ): Promise<void> {
    for (const o of outputs) await execute(entry, o, onward);
  }

  async function sendOffline(entry: Entry, to: string): Promise<void> {
    const { host, user } = entry;
    const session = deps.registry.get(to);
    if (session === undefined) throw new Error(`${to} left before its offline messages`);
    for (const stanza of await deps.offline.all(host, user)) {
      session.dispatch({ kind: "inbound", stanza });
    }
    await deps.offline.delete(host, user);
  }

  async function removeAndAnswer(
    entry: Entry,
    iq: Element,
    onward: Promise<void>[],
  ): Promise<void> {
    const ok = await deleteAccount(entry.bare);
    // The reducer answers the deletion within the same op: nothing comes in between.
    const [next, outputs] = reduceAccount(entry.state!, { kind: "account-removed", iq, ok }, ctx);
    entry.state = next;
    await executeAll(entry, outputs, onward);
    if (!ok) {
      // Part of the data may be gone: what is cached is read again for the next op.
      entry.state = undefined;
      entry.archiveTail = false;
    }
  }

  async function answerMamQuery(
    entry: Entry,
    iq: Element,
    query: Extract<AccountOutput, { kind: "mam-query" }>["query"],
    onward: Promise<void>[],
  ): Promise<void> {
    const page = await deps.archive.query(entry.host, entry.user, query);
    await executeAll(entry, mamPageAnswer(iq, query, page), onward);
  }

  async function answerMamMetadata(
    entry: Entry,
    iq: Element,
    onward: Promise<void>[],
  ): Promise<void> {
    const { first, last } = await deps.archive.metadata(entry.host, entry.user);
    await executeAll(entry, mamMetadataAnswer(iq, first, last), onward);
  }

  /**
   * Deletes every store of the account's data, then the account (which leaves a tombstone).
   * Data goes before the account record, so a crash in between cannot leave data for a later
   * account of the same name. True when all of it is gone.
   */
  async function deleteAccount(bare: string): Promise<boolean> {
    const [host, user] = split(bare);
    try {
      if (deps.removeAccount === undefined) throw new Error("account removal is not available");
      const stores = new Set([...ACCOUNT_IQ.values()].map((e) => e.store));
      for (const store of stores) await moduleStore(store).delete(host, user);
      await deps.removeAccount(host, user);
    } catch (err) {
      deps.log.error("Account {bare}: removing it failed: {err}", { bare, err: String(err) });
      return false;
    }
    deps.log.info("{bare} removed their account", { bare });
    return true;
  }

  /** Every session of the account, bound or not, ends; `reply` goes to its session first. */
  function endSessions(
    bare: string,
    reply: { readonly to: string; readonly stanza: Element } | undefined,
  ): void {
    const [host, user] = split(bare);
    for (const h of deps.registry.connections()) {
      const s = h.session();
      const phase = phaseOf(s);
      if (phase === "ended" || phase === "unauthenticated") continue;
      if (s.username !== user || s.host !== host) continue;
      const mine = reply !== undefined && s.fullJid !== undefined && s.fullJid === reply.to;
      h.dispatch({ kind: "account-removed", reply: mine ? reply.stanza : undefined });
    }
  }

  /**
   * Runs the account's queue until it is empty. Each op's submitter hears once the op was
   * carried out and what it routed on is durable (`onward`).
   */
  async function drain(entry: Entry): Promise<void> {
    const { bare, queue } = entry;
    try {
      while (queue.length > 0) {
        const { op: next, done } = queue.shift()!;
        const onward: Promise<void>[] = [];
        // What of the op is still being carried out when the next op is taken.
        let tail: Promise<void> | undefined;
        const finish = () => {
          if (onward.length === 0) done();
          // One route onward (a message to one recipient): no list of outcomes to settle.
          else if (onward.length === 1) onward[0].then(done, done);
          else settled(onward).then(done);
        };
        try {
          // A kept place waits here, holding the ops behind it, until it is filled or given up.
          const op = next instanceof Promise ? await next : next;
          if (op !== undefined) {
            try {
              tail = (await runOp(entry, op, onward))?.tail;
            } finally {
              if (op.kind === "initial-presence") announced(bare, op.fullJid);
            }
          }
        } finally {
          if (tail === undefined) finish();
          else tail.then(finish);
        }
      }
    } finally {
      entry.running = false;
      if (queue.length > 0) start(entry);
      else forgetIfIdle(entry);
    }
  }

  /** Lets the account's data go when nothing of it runs, waits or is online. */
  function forgetIfIdle(entry: Entry): void {
    if (entry.running || entry.tail !== undefined || entry.queue.length > 0) return;
    if (!online(entry.bare) && entries.get(entry.bare) === entry) entries.delete(entry.bare);
  }

  /** Whether a session of `bare` is bound (its account's data is kept while one is). */
  function online(bare: string): boolean {
    const { registry } = deps;
    return registry.hasResources?.(bare) ?? registry.resourcesOf(bare).length > 0;
  }

  function announced(bare: string, fullJid: string): void {
    const waiting = announcing.get(bare);
    waiting?.delete(fullJid);
    if (waiting?.size === 0) announcing.delete(bare);
  }

  /**
   * Runs one op. Whatever fails (loading the account, a store, the reducer), the op gets the
   * answer {@link failedOpReplies} gives, unless something of it was sent already, and the
   * queue goes on with the next: one bad op never takes its neighbours with it. Only what is
   * asynchronous is awaited: an account in memory with its module data goes straight to its
   * reducer, and a delivery or a route is not a wait.
   *
   * An op that appends to a list (a message archived or stored offline) does not hold up the
   * next one: its appends start at once and the rest of its outputs, in order, once they are
   * durable and after what the account's earlier ops still carry out; the `tail` returned is
   * that rest. So the messages an account receives while one append is being synced go to
   * disk together in the next batch, instead of one per sync. An op that only routes and delivers (a receipt) queues behind such a rest
   * the same way; an op with any other output waits for the earlier ones to be carried out and
   * is carried out before the next op is taken.
   */
  async function runOp(
    entry: Entry,
    op: AccountOp,
    onward: Promise<void>[],
  ): Promise<{ readonly tail: Promise<void> } | undefined> {
    let outputs: readonly AccountOutput[];
    try {
      let state = entry.state ?? (entry.state = await load(entry.bare));
      const stores = missingStores(state, op);
      if (stores !== undefined) state = entry.state = await withModuleData(entry, state, stores);
      if (needsArchiveTail(entry, state, op)) {
        state = entry.state = await withArchiveTail(entry, state);
      }
      const [next, out] = reduceAccount(state, op, ctx);
      entry.state = next;
      outputs = out;
    } catch (err) {
      // A load or a reducer that threw changed nothing, so the cache stays.
      opFailed(entry, op, err);
      if (entry.tail !== undefined) await entry.tail;
      await answerFailed(entry, op, onward);
      return undefined;
    }
    let appends = false;
    let pipelined = true;
    for (const out of outputs) {
      if (isAppend(out)) appends = true;
      else if (!PIPELINED.has(out.kind)) pipelined = false;
    }
    // Nothing deferred and nothing to append: carried out now, as most ops are.
    if (!pipelined || (!appends && entry.tail === undefined) || entry.deferred >= PIPELINE_MAX) {
      if (entry.tail !== undefined) await entry.tail;
      await carryOut(entry, op, outputs, onward, undefined);
      return undefined;
    }
    // The appends join the list store's next batch now; failing, they are answered in order.
    const started = outputs.map((out) => {
      if (!isAppend(out)) return undefined;
      try {
        const p = execute(entry, out, onward) ?? undefined;
        p?.catch(() => {});
        return p;
      } catch (err) {
        const failed = Promise.reject(err);
        failed.catch(() => {});
        return failed;
      }
    });
    const before = entry.tail;
    const run = before === undefined
      ? carryOut(entry, op, outputs, onward, started)
      : before.then(() => carryOut(entry, op, outputs, onward, started));
    entry.tail = run;
    entry.deferred++;
    running.add(run);
    run.then(() => {
      entry.deferred--;
      running.delete(run);
      if (entry.tail !== run) return;
      entry.tail = undefined;
      forgetIfIdle(entry);
    });
    // In a record: an async function returning the promise itself would resolve with it.
    return { tail: run };
  }

  function opFailed(entry: Entry, op: AccountOp, err: unknown): void {
    deps.log.error("Account {bare}: {op} failed: {err}", {
      bare: entry.bare,
      op: op.kind,
      err: String(err),
    });
  }

  /**
   * Carries out an op's outputs in order, each store finished before what follows it is sent
   * (persist, then acknowledge); `started`: the promises of those already started, by index.
   * Never rejects: a failure is answered (see {@link runOp}).
   */
  async function carryOut(
    entry: Entry,
    op: AccountOp,
    outputs: readonly AccountOutput[],
    onward: Promise<void>[],
    started: readonly (Promise<void> | undefined)[] | undefined,
  ): Promise<void> {
    let sent = false;
    let executing = false;
    try {
      for (let i = 0; i < outputs.length; i++) {
        const out = outputs[i];
        executing = true;
        const stored = started?.[i] ?? execute(entry, out, onward);
        if (stored !== undefined) await stored;
        if (ANSWERS.has(out.kind)) sent = true;
      }
    } catch (err) {
      opFailed(entry, op, err);
      // What is cached may now differ from what is stored: read it again for the next op.
      if (executing) {
        entry.state = undefined;
        entry.archiveTail = false;
      }
      if (!sent) await answerFailed(entry, op, onward);
    }
  }

  async function answerFailed(entry: Entry, op: AccountOp, onward: Promise<void>[]) {
    for (const out of failedOpReplies(op)) {
      try {
        await execute(entry, out, onward);
      } catch (e) {
        deps.log.error("Account {bare}: answering a failed {op} failed: {err}", {
          bare: entry.bare,
          op: op.kind,
          err: String(e),
        });
      }
    }
  }

  function start(entry: Entry): void {
    entry.running = true;
    const p = drain(entry);
    running.add(p);
    p.finally(() => running.delete(p));
  }

  function enqueue(bare: string, op: Queued["op"]): Promise<void> {
    if (!(op instanceof Promise) && op.kind === "initial-presence") {
      let waiting = announcing.get(bare);
      if (waiting === undefined) announcing.set(bare, waiting = new Set());
      waiting.add(op.fullJid);
    }
    let entry = entries.get(bare);
    if (entry === undefined) {
      const [host, user] = split(bare);
      entry = { bare, host, user, queue: [], running: false, archiveTail: false, deferred: 0 };
      entries.set(bare, entry);
    }
    let done!: () => void;
    const effects = new Promise<void>((resolve) => (done = resolve));
    entry.queue.push({ op, done });
    if (!entry.running) start(entry);
    return effects;
  }

  return {
    submit: enqueue,
    reserve(bare) {
      let settle!: (op: AccountOp | undefined) => void;
      const effects = enqueue(bare, new Promise((resolve) => (settle = resolve)));
      let open = true;
      return {
        fill(op) {
          // Given up already: the op goes to the end of the queue, never nowhere.
          if (!open) return enqueue(bare, op);
          open = false;
          settle(op);
          return effects;
        },
        cancel() {
          if (open) {
            open = false;
            settle(undefined);
          }
        },
      };
    },
    queueLength(bare) {
      const entry = entries.get(bare);
      return entry === undefined ? 0 : entry.queue.length + entry.deferred;
    },
    async idle() {
      while (running.size > 0) await Promise.allSettled([...running]);
    },
  };
}
