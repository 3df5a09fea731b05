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
  return {
    bind(fullJid, h) {
      const old = byFull.get(fullJid);
      byFull.set(fullJid, h);
      const bare = bareOf(fullJid);
      let set = byBare.get(bare);
      if (set === undefined) byBare.set(bare, set = new Set());
      set.add(fullJid);
      return old === h ? undefined : old;
    },
    unbind(fullJid, h) {
      if (byFull.get(fullJid) !== h) return;
      byFull.delete(fullJid);
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
      for (const full of set) {
        const s = byFull.get(full)!.session();
        out.push({
          fullJid: full,
          resource: s.resource ?? "",
          priority: s.priority,
          available: isAvailable(s),
          interested: isInterested(s),
          presence: s.presence,
          features: s.caps === undefined
            ? undefined
            : s.caps.features ?? capsFeatures?.(s.caps.ver),
          modules: s.modules,
          blocklist: s.blocklist,
          blocklistInterested: s.blocklistInterested === true && isConnected(s),
          hibernatingSince: isHibernating(s) ? s.sm?.hibernatedAt ?? 0 : undefined,
          presenceAt: s.presenceAt,
        });
      }
      return out;
    },
    connections: () => [...live],
    addConnection: (h) => void live.add(h),
    removeConnection: (h) => void live.delete(h),
  };
}
