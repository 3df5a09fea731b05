/**
 * `@xmpp/client` set up for tests: trusts the test server's self-signed certificate and adds a
 * SCRAM-SHA-256 mechanism (the package ships SCRAM-SHA-1 only) built on our SCRAM helpers.
 */
import { client, xml } from "@xmpp/client";
import { clientFinalMessage, clientFirstMessage } from "../../lib/xmpp/scram.ts";

Deno.env.set("NODE_TLS_REJECT_UNAUTHORIZED", "0");

/** A saslmechanisms-style SCRAM-SHA-256 client. */
function scramSha256() {
  let clientFirst = "";
  let serverFirst = "";
  let stage = 0;
  return {
    name: "SCRAM-SHA-256",
    clientFirst: true,
    response(cred: { username: string; password: string }): string {
      if (stage === 0) {
        stage = 1;
        clientFirst = clientFirstMessage(cred.username, crypto.randomUUID().replace(/-/g, ""));
        return clientFirst;
      }
      return clientFinalMessage({
        hash: "SHA-256",
        password: cred.password,
        clientFirst,
        serverFirst,
      }).message;
    },
    challenge(chal: string) {
      serverFirst = chal;
    },
  };
}

/** Options of a test client. */
export interface TestClientOptions {
  readonly port: number;
  readonly username: string;
  readonly password: string;
  readonly resource?: string;
  /** The account's domain (default `localhost`). */
  readonly domain?: string;
  readonly directTls?: boolean;
  /** Which SASL mechanism to use (default SCRAM-SHA-256). */
  readonly mechanism?: "SCRAM-SHA-256" | "SCRAM-SHA-1" | "PLAIN";
}

// deno-lint-ignore no-explicit-any
export type XmppClient = any;

/** A client (not started) for the local test server. */
export function testClient(opts: TestClientOptions): XmppClient {
  const xmpp = client({
    service: `${opts.directTls ? "xmpps" : "xmpp"}://127.0.0.1:${opts.port}`,
    domain: opts.domain ?? "localhost",
    resource: opts.resource,
    credentials: async (
      authenticate: (c: unknown, m: string) => Promise<void>,
      mechanisms: string[],
    ) => {
      const wanted = opts.mechanism ?? "SCRAM-SHA-256";
      if (!mechanisms.includes(wanted)) throw new Error(`${wanted} not offered: ${mechanisms}`);
      await authenticate({ username: opts.username, password: opts.password }, wanted);
    },
  });
  xmpp.saslFactory.use("SCRAM-SHA-256", function () {
    return scramSha256();
  });
  // The package's reconnect would retry forever after a test closes the stream.
  xmpp.reconnect.stop();
  xmpp.on("error", () => {});
  return xmpp;
}

export { xml };
