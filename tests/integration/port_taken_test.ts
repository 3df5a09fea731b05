/**
 * A start that cannot listen (a port taken) fails with ListenError and leaves nothing open, so
 * tests that probe for free ports beforehand can try again with fresh ones.
 */
import assert from "node:assert/strict";
import { ListenError } from "../../lib/shell/server.ts";
import { retryWhenPortTaken, startTestServer } from "./_server.ts";

Deno.test("start: a port in use fails with ListenError, leaves nothing open, and is retried", async () => {
  const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const taken = (busy.addr as Deno.NetAddr).port;
  try {
    await assert.rejects(
      () => startTestServer({ s2s_port: taken }),
      (err: unknown) => err instanceof ListenError && /address is in use/.test(err.message),
    );
    let tries = 0;
    const server = await retryWhenPortTaken(() => {
      tries++;
      return startTestServer({ s2s_port: tries === 1 ? taken : 0 });
    });
    assert.equal(tries, 2);
    assert.ok(server.c2sPort > 0);
    await server.stop();
  } finally {
    busy.close();
  }
  // The test's resource sanitizer fails it if the failed starts left a listener or a file open.
});
