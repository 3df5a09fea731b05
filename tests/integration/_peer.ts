/** A logged-in test client that records what it receives, for integration tests. */
import type { TestServer } from "./_server.ts";
import { testClient, type XmppClient } from "./_xmpp_client.ts";

/** A client and a way to wait for a stanza it received (before or after the call). */
export interface Peer {
  readonly xmpp: XmppClient;
  /** Every stanza received so far. */
  readonly received: readonly XmppClient[];
  waitFor(pred: (st: XmppClient) => boolean, what: string): Promise<XmppClient>;
}

/** Connects `username` (password "pw") with `resource`. */
export async function connectPeer(
  server: TestServer,
  username: string,
  resource: string,
): Promise<Peer> {
  const xmpp = testClient({ port: server.c2sPort, username, password: "pw", resource });
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
  await xmpp.start();
  return {
    xmpp,
    received,
    waitFor(pred, what) {
      const seen = received.find(pred);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${username}: no ${what}`)), 5000);
        waiters.push({
          pred,
          resolve: (st) => {
            clearTimeout(timer);
            resolve(st);
          },
        });
      });
    },
  };
}
