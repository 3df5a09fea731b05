/**
 * The live sessions of this process, by full JID and by bare JID. The only mutable map of
 * sessions; reducers see it through `resourcesOf`.
 * @module
 */
import type { Event, ResourceView } from "../core/types.ts";
import {
  isAvailable,
  isConnected,
  isHibernating,
  isInterested,
  type Session,
} from "../core/session.ts";

/** What the registry keeps of a connection. */
export interface SessionHandle {
  readonly id: string;
  /** The session record as it is now. */
  readonly session: () => Session;
  /** Queues an event for the connection. */
  readonly dispatch: (ev: Event) => void;
  /** When bytes last arrived (ms since the epoch). */
  readonly lastActivity: () => number;
}

/** The registry's operations. */
export interface Registry {
  /** Registers a bound session; returns the handle it replaced, if any. */
  bind(fullJid: string, h: SessionHandle): SessionHandle | undefined;
  /** Removes a session, only if the handle is still the one registered. */
  unbind(fullJid: string, h: SessionHandle): void;
  get(fullJid: string): SessionHandle | undefined;
  resourcesOf(bareJid: string): readonly ResourceView[];
  /**
   * Whether `bareJid` has a bound session: what `resourcesOf(bareJid).length > 0` says, without
   * making its views (the account hub asks after every op). Optional for stand-ins in tests.
   */
  hasResources?(bareJid: string): boolean;
  /** Every connection, bound or not. */
  connections(): readonly SessionHandle[];
  addConnection(h: SessionHandle): void;
  removeConnection(h: SessionHandle): void;
}

function bareOf(fullJid: string): string {
  const slash = fullJid.indexOf("/");
  return slash < 0 ? fullJid : fullJid.slice(0, slash);
}

/** A new, empty registry; `capsFeatures` (the caps cache) completes what resources can do. */
export function createRegistry(
  capsFeatures?: (ver: string) => readonly string[] | undefined,
): Registry {
  const byFull = new Map<string, SessionHandle>();
  const byBare = new Map<string, Set<string>>();
  const live = new Set<SessionHandle>();
  // The last view made of each resource, with the session it was made from. Routing asks for
  // the recipient's resources for every message, and most sessions change only in fields no
  // view shows (stream management counters), so a view is made again only when one it shows
  // changed. Entries go with the resource (`unbind`).
  const views = new Map<string, { session: Session; view: ResourceView }>();
  const viewOf = (full: string, s: Session): ResourceView => {
    const cached = views.get(full);
    const features = s.caps === undefined
      ? undefined
      : s.caps.features ?? capsFeatures?.(s.caps.ver);
    if (cached !== undefined) {
      if (cached.session === s && cached.view.features === features) return cached.view;
      if (sameView(cached.session, s) && cached.view.features === features) {
        cached.session = s;
        return cached.view;
      }
    }
    const view: ResourceView = {
      fullJid: full,
      resource: s.resource ?? "",
      priority: s.priority,
      available: isAvailable(s),
      interested: isInterested(s),
      presence: s.presence,
      features,
      modules: s.modules,
      blocklist: s.blocklist,
      blocklistInterested: s.blocklistInterested === true && isConnected(s),
      hibernatingSince: isHibernating(s) ? s.sm?.hibernatedAt ?? 0 : undefined,
      presenceAt: s.presenceAt,
    };
    if (cached === undefined) views.set(full, { session: s, view });
    else {
      cached.session = s;
      cached.view = view;
    }
    return view;
  };
  return {
    bind(fullJid, h) {
      const old = byFull.get(fullJid);
      byFull.set(fullJid, h);
      if (old !== h) views.delete(fullJid);
      const bare = bareOf(fullJid);
      let set = byBare.get(bare);
      if (set === undefined) byBare.set(bare, set = new Set());
      set.add(fullJid);
      return old === h ? undefined : old;
    },
    unbind(fullJid, h) {
      if (byFull.get(fullJid) !== h) return;
      byFull.delete(fullJid);
      views.delete(fullJid);
      const bare = bareOf(fullJid);
      const set = byBare.get(bare);
      set?.delete(fullJid);
      if (set?.size === 0) byBare.delete(bare);
    },
    get: (fullJid) => byFull.get(fullJid),
    resourcesOf(bareJid) {
      const set = byBare.get(bareJid);
      if (set === undefined) return [];
      const out: ResourceView[] = [];
      for (const full of set) out.push(viewOf(full, byFull.get(full)!.session()));
      return out;
    },
    hasResources: (bareJid) => byBare.has(bareJid),
    connections: () => [...live],
    addConnection: (h) => void live.add(h),
    removeConnection: (h) => void live.delete(h),
  };
}

/**
 * Whether two records of one session give the same resource view: every field the view reads
 * (or that its predicates read) is the same.
 */
function sameView(a: Session, b: Session): boolean {
  return a.resource === b.resource && a.priority === b.priority &&
    a.destroyed === b.destroyed && a.fullJid === b.fullJid && a.presence === b.presence &&
    a.interested === b.interested && a.caps === b.caps && a.modules === b.modules &&
    a.blocklist === b.blocklist && a.blocklistInterested === b.blocklistInterested &&
    a.presenceAt === b.presenceAt && a.sm?.hibernating === b.sm?.hibernating &&
    a.sm?.hibernatedAt === b.sm?.hibernatedAt;
}
