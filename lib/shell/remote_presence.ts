/**
 * What the resources of contacts on other servers can do, so that PEP (XEP-0163 §4.3) notifies
 * them as it does local contacts: their available presences as they come in over federation,
 * with the features their entity capabilities (XEP-0115) stand for. An unknown `ver` is asked
 * once with disco#info from our domain, and only an answer to our own question, whose features
 * hash to the `ver`, is learned into the process-wide caps cache.
 *
 * Everything is bounded: resources in all and per bare JID, questions in flight; the oldest go
 * first. A remote server that never says a resource went away leaves an entry until it is pushed
 * out, which costs a notification nobody reads, not a leak.
 * @module
 */
import type { ResourceView } from "../core/types.ts";
import { child, elem, type Element, stanza } from "../xml/element.ts";
import { parseJid } from "../xmpp/jid.ts";
import { NS_CAPS, NS_DISCO_INFO } from "../xmpp/namespaces.ts";
import type { CapsCache } from "./caps_cache.ts";

/** How much is kept. */
export interface RemotePresenceLimits {
  /** Remote resources tracked in all. */
  readonly resources: number;
  /** Per bare JID. */
  readonly perBare: number;
  /** Caps questions waiting for an answer. */
  readonly questions: number;
}

/** Remote contacts' resources, as PEP needs to see them. */
export interface RemotePresence {
  /**
   * A stanza that came from another server: presence is noted (and routed on as usual);
   * true when it was an answer to one of our caps questions, which goes no further.
   */
  observe(st: Element): boolean;
  /** The available resources of a remote bare JID, with their known features. */
  resourcesOf(bare: string): readonly ResourceView[];
  /** Tracked resources and open questions (for tests). */
  size(): { readonly resources: number; readonly questions: number };
}

interface Tracked {
  readonly fullJid: string;
  readonly bare: string;
  readonly resource: string;
  readonly ver?: string;
}

/** A tracker that asks through `route` and learns into `caps`. */
export function createRemotePresence(
  caps: CapsCache,
  route: (st: Element) => void,
  newId: () => string,
  limits: RemotePresenceLimits,
): RemotePresence {
  // Insertion order is age: the first entry is the oldest.
  const byFull = new Map<string, Tracked>();
  const byBare = new Map<string, Set<string>>();
  const questions = new Map<string, { readonly ver: string; readonly fullJid: string }>();
  const asked = new Set<string>();

  const forget = (fullJid: string) => {
    const t = byFull.get(fullJid);
    if (t === undefined) return;
    byFull.delete(fullJid);
    const set = byBare.get(t.bare);
    set?.delete(fullJid);
    if (set?.size === 0) byBare.delete(t.bare);
  };
  const track = (t: Tracked) => {
    forget(t.fullJid);
    const old = byBare.get(t.bare);
    if (old !== undefined && old.size >= limits.perBare) forget(old.values().next().value!);
    while (byFull.size >= limits.resources) forget(byFull.keys().next().value!);
    byFull.set(t.fullJid, t);
    let set = byBare.get(t.bare);
    if (set === undefined) byBare.set(t.bare, set = new Set());
    set.add(t.fullJid);
  };
  const ask = (from: string, to: string, node: string, ver: string) => {
    if (caps.get(ver) !== undefined || asked.has(ver)) return;
    while (questions.size >= limits.questions) {
      const [id, q] = questions.entries().next().value!;
      questions.delete(id);
      asked.delete(q.ver);
    }
    const id = `caps-${newId()}`;
    questions.set(id, { ver, fullJid: to });
    asked.add(ver);
    route(stanza("iq", { type: "get", id, from, to }, [
      elem("query", { xmlns: NS_DISCO_INFO, node: `${node}#${ver}` }),
    ]));
  };

  return {
    observe(st) {
      if (st.name === "iq") {
        const id = st.attrs.id;
        if (id === undefined || !id.startsWith("caps-")) return false;
        const q = questions.get(id);
        if (q === undefined || st.attrs.from !== q.fullJid) return false;
        questions.delete(id);
        asked.delete(q.ver);
        const query = st.attrs.type === "result" ? child(st, "query", NS_DISCO_INFO) : undefined;
        if (query !== undefined) caps.learn(q.ver, query);
        return true;
      }
      if (st.name !== "presence") return false;
      const from = st.attrs.from === undefined ? undefined : parseJid(st.attrs.from);
      if (from?.resource === undefined) return false;
      const fullJid = st.attrs.from!;
      const type = st.attrs.type;
      if (type === "unavailable") forget(fullJid);
      if (type !== undefined) return false;
      const c = child(st, "c", NS_CAPS);
      const ver = c?.attrs.ver;
      track({
        fullJid,
        bare: `${from.local === undefined ? "" : from.local + "@"}${from.domain}`,
        resource: from.resource,
        ...(ver === undefined ? {} : { ver }),
      });
      const to = st.attrs.to === undefined ? undefined : parseJid(st.attrs.to);
      if (ver !== undefined && c?.attrs.node !== undefined && to !== undefined) {
        ask(to.domain, fullJid, c.attrs.node, ver);
      }
      return false;
    },
    resourcesOf(bare) {
      const set = byBare.get(bare);
      if (set === undefined) return [];
      const out: ResourceView[] = [];
      for (const full of set) {
        const t = byFull.get(full)!;
        out.push({
          fullJid: t.fullJid,
          resource: t.resource,
          priority: 0,
          available: true,
          interested: false,
          features: t.ver === undefined ? undefined : caps.get(t.ver),
        });
      }
      return out;
    },
    size: () => ({ resources: byFull.size, questions: questions.size }),
  };
}
