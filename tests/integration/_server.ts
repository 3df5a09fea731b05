/** A real server on 127.0.0.1 with ephemeral ports and a temporary data dir, for tests. */
import { configFromObject } from "../../lib/config.ts";
import { ListenError, type RunningServer, startServer } from "../../lib/shell/server.ts";

/** A started test server and its data dir. */
export interface TestServer extends RunningServer {
  readonly dataDir: string;
  /** Shuts down and removes the data dir. */
  stop(): Promise<void>;
}

/** Starts a server; `settings` uses the TOML key names and overrides the test defaults. */
export async function startTestServer(
  settings: Readonly<Record<string, unknown>> = {},
): Promise<TestServer> {
  const dataDir = await Deno.makeTempDir({ prefix: "xmpp-test-" });
  const config = configFromObject({
    hosts: ["localhost"],
    data_dir: dataDir,
    interfaces: ["127.0.0.1"],
    c2s_port: 0,
    c2s_direct_tls_port: 0,
    component_port: 0,
    s2s_port: false,
    // Off unless a test asks: two servers in one run would both want 5270.
    s2s_direct_tls_port: false,
    log_level: "error",
    ...settings,
    // Merged, so that a test turning on one HTTP port does not get a fixed 5281 beside it.
    http: { http_port: false, https_port: false, ...settings.http as object | undefined },
  }, "test");
  let server: RunningServer;
  try {
    server = await startServer(config);
  } catch (err) {
    await removeDataDir(dataDir);
    throw err;
  }
  return {
    ...server,
    dataDir,
    async stop() {
      await server.shutdown();
      await removeDataDir(dataDir);
    },
  };
}

/**
 * Runs `fn` against a fresh server where each of `users` has the password "pw", then stops the
 * server whatever `fn` did.
 */
export async function withServer(
  users: readonly string[],
  fn: (server: TestServer) => Promise<void>,
  settings: Readonly<Record<string, unknown>> = {},
): Promise<void> {
  const server = await startTestServer(settings);
  for (const u of users) await server.accounts.create("localhost", u, "pw");
  try {
    await fn(server);
  } finally {
    await server.stop();
  }
}

/** Everything a raw connection received until the server closed it (or the timeout). */
export async function rawExchange(
  port: number,
  send: string | readonly (string | Uint8Array)[],
  timeoutMs = 3000,
): Promise<{ readonly text: string; readonly closed: boolean }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const chunks = typeof send === "string" ? [send] : send;
  const enc = new TextEncoder();
  const writing = (async () => {
    for (const c of chunks) {
      try {
        await conn.write(typeof c === "string" ? enc.encode(c) : c);
      } catch {
        return; // the server may close before we finish: that is what some tests expect
      }
    }
  })();
  let text = "";
  let closed = false;
  const dec = new TextDecoder();
  const buf = new Uint8Array(65536);
  const timer = setTimeout(() => conn.close(), timeoutMs);
  try {
    while (true) {
      const n = await conn.read(buf);
      if (n === null) {
        closed = true;
        break;
      }
      text += dec.decode(buf.subarray(0, n), { stream: true });
    }
  } catch {
    // closed by the timer
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch {
      // already closed
    }
  }
  await writing;
  return { text, closed };
}

/** A stream header from a client to `to`. */
export function clientHeader(to = "localhost", extra = ""): string {
  return `<?xml version='1.0'?><stream:stream xmlns='jabber:client' ` +
    `xmlns:stream='http://etherx.jabber.org/streams' to='${to}' version='1.0'${extra}>`;
}

/**
 * Removes a stopped server's data directory. Shutdown closes the list stores (every lease ends
 * before it returns, none lapses later), but it waits at most a few seconds for the accounts'
 * last writes and for the stores' close, so on a loaded machine a write cut off by such a cap
 * can still create a file while the directory is being removed: tried again.
 */
export async function removeDataDir(dir: string): Promise<void> {
  for (let attempt = 0;; attempt++) {
    try {
      await Deno.remove(dir, { recursive: true });
      return;
    } catch (err) {
      if (attempt >= 50 || err instanceof Deno.errors.NotFound) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/**
 * Runs `start`, which picks its listening ports by probing for free ones (servers that must
 * know each other's ports before either starts), again with fresh ports when one was taken
 * between the probe and the listen: the other test files run at the same time and bind
 * ephemeral ports too.
 */
export async function retryWhenPortTaken<T>(start: () => Promise<T>, attempts = 5): Promise<T> {
  for (let attempt = 1;; attempt++) {
    try {
      return await start();
    } catch (err) {
      const taken = err instanceof ListenError && /address is in use/.test(err.message);
      if (!taken || attempt >= attempts) throw err;
    }
  }
}
