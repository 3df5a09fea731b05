/** Logged-in test clients that record what they receive, and the steps tests share with them. */
import type { TestServer } from "./_server.ts";
import { testClient, xml, type XmppClient } from "./_xmpp_client.ts";
import { NS_ROSTER } from "../../lib/xmpp/namespaces.ts";

/** A started client, its full JID, and ways to wait for what it received. */
export interface Peer {
  readonly xmpp: XmppClient;
  /** The full JID the server bound. */
  readonly jid: string;
  /** Every stanza received so far. */
  readonly received: readonly XmppClient[];
  /** Resolves with the first received stanza (past or future) matching `pred`. */
  waitFor(pred: (st: XmppClient) => boolean, what: string, ms?: number): Promise<XmppClient>;
  /** True when nothing matching `pred` has arrived `ms` from now. */
  never(pred: (st: XmppClient) => boolean, ms?: number): Promise<boolean>;
}

/** Options of {@linkcode connectPeer}. */
export interface PeerOptions {
  /** Called with the client before it starts: to add handlers that must see the login. */
  readonly beforeStart?: (xmpp: XmppClient) => void;
  /** The account's domain (default `localhost`). */
  readonly domain?: string;
}

/** Connects `username` (password "pw") with `resource` (the server's choice if absent). */
export async function connectPeer(
  server: TestServer,
  username: string,
  resource?: string,
  opts: PeerOptions = {},
): Promise<Peer> {
  const xmpp = testClient({
    port: server.c2sPort,
    username,
    password: "pw",
    resource,
    domain: opts.domain,
  });
  const received: XmppClient[] = [];
  const waiters: { pred: (st: XmppClient) => boolean; resolve: (st: XmppClient) => void }[] = [];
  xmpp.on("stanza", (st: XmppClient) => {
    received.push(st);
    for (const w of [...waiters]) {
      if (w.pred(st)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(st);
      }
    }
  });
  opts.beforeStart?.(xmpp);
  const jid = String(await xmpp.start());
  return {
    xmpp,
    jid,
    received,
    waitFor(pred, what, ms = 5000) {
      const seen = received.find(pred);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${jid}: no ${what}`)), ms);
        waiters.push({
          pred,
          resolve: (st) => {
            clearTimeout(timer);
            resolve(st);
          },
        });
      });
    },
    async never(pred, ms = 500) {
      await new Promise((r) => setTimeout(r, ms));
      return !received.some(pred);
    },
  };
}

/** Matches a presence from `jid` of `type` (absent: an available presence). */
export function presenceFrom(jid: string, type?: string): (st: XmppClient) => boolean {
  return (st: XmppClient) => st.is("presence") && st.attrs.from === jid && st.attrs.type === type;
}

/** The peer's roster, contact JID to subscription (`+ask` when a request is pending). */
export async function rosterOf(peer: Peer): Promise<Record<string, string>> {
  const res = await peer.xmpp.iqCaller.request(
    xml("iq", { type: "get" }, xml("query", { xmlns: NS_ROSTER })),
  );
  const out: Record<string, string> = {};
  for (const item of res.getChild("query", NS_ROSTER).getChildren("item")) {
    out[item.attrs.jid] = item.attrs.subscription + (item.attrs.ask ? "+ask" : "");
  }
  return out;
}

/** A ping to the server: its answer proves everything the peer sent before was processed. */
export async function sync(peer: Peer): Promise<void> {
  await peer.xmpp.iqCaller.request(
    xml("iq", { type: "get", to: "localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })),
  );
}

/** The condition of a rejected iq request ("no error" when it succeeded). */
export async function errorOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return (e as { condition?: string }).condition ?? String(e);
  }
  return "no error";
}

/** Stops every peer in turn; a stop that fails is ignored (this is cleanup). */
export async function closeAll(...peers: readonly Peer[]): Promise<void> {
  for (const p of peers) await p.xmpp.stop().catch(() => {});
}

function bare(jid: string): string {
  const slash = jid.indexOf("/");
  return slash === -1 ? jid : jid.slice(0, slash);
}

/**
 * `a` and `b`, both already available, subscribe to each other: `a` asks, `b` approves and asks
 * back, `a` approves. Resolves once each got the other's approval and `b` got `a`'s presence.
 */
export async function subscribeMutually(a: Peer, b: Peer): Promise<void> {
  const aBare = bare(a.jid);
  const bBare = bare(b.jid);
  await a.xmpp.send(xml("presence", { to: bBare, type: "subscribe" }));
  await b.waitFor(presenceFrom(aBare, "subscribe"), "subscription request");
  await b.xmpp.send(xml("presence", { to: aBare, type: "subscribed" }));
  await b.xmpp.send(xml("presence", { to: aBare, type: "subscribe" }));
  await a.waitFor(presenceFrom(bBare, "subscribed"), "approval");
  await a.waitFor(presenceFrom(bBare, "subscribe"), "subscription request back");
  await a.xmpp.send(xml("presence", { to: bBare, type: "subscribed" }));
  await b.waitFor(presenceFrom(aBare, "subscribed"), "approval back");
  await b.waitFor(presenceFrom(a.jid), `${a.jid}'s presence`);
}
