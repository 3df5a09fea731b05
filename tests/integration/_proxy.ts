/**
 * A counting TCP forwarder for tests: what connects to it is piped to a target port on
 * 127.0.0.1, so a test sees how many connections one server opened to another.
 * @module
 */

/** A TCP forwarder that counts the connections it accepted and can refuse further ones. */
export interface Proxy {
  readonly port: number;
  /** Connections accepted and forwarded so far. */
  count(): number;
  /** Closes the forwarded connections and refuses new ones from now on. */
  block(): void;
  close(): Promise<void>;
}

/**
 * Forwards to `targetPort`; `blocked`: refuses every connection from the start; `port`: where
 * it listens (0: any free one).
 */
export function startProxy(targetPort: number, blocked = false, port = 0): Proxy {
  const listener = Deno.listen({ hostname: "127.0.0.1", port });
  const open = new Set<Deno.Conn>();
  const pipes: Promise<unknown>[] = [];
  let count = 0;
  const closeConn = (c: Deno.Conn) => {
    open.delete(c);
    try {
      c.close();
    } catch {
      // already closed
    }
  };
  const accepting = (async () => {
    for await (const conn of listener) {
      if (blocked) {
        closeConn(conn);
        continue;
      }
      count++;
      open.add(conn);
      const pipe = Deno.connect({ hostname: "127.0.0.1", port: targetPort }).then(
        async (target) => {
          open.add(target);
          await Promise.allSettled([
            conn.readable.pipeTo(target.writable),
            target.readable.pipeTo(conn.writable),
          ]);
          closeConn(target);
          closeConn(conn);
        },
        () => closeConn(conn),
      );
      pipes.push(pipe);
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    count: () => count,
    block() {
      blocked = true;
      for (const c of [...open]) closeConn(c);
    },
    async close() {
      listener.close();
      for (const c of [...open]) closeConn(c);
      await accepting;
      await Promise.allSettled(pipes);
    },
  };
}
