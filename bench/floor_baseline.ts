/**
 * The RSS floors of a started server, for bench/floor.ts: a Deno process started with our
 * server's flags that loads only what its level names, prints `listening <port>` and waits.
 *
 *   floor_baseline.ts empty                  nothing at all (a timer keeps the process alive)
 *   floor_baseline.ts imports                node:net, node:tls, node:crypto and the npm
 *                                            packages the server loads at start (saxes,
 *                                            @logtape/logtape, valibot, smol-toml), and a
 *                                            Deno.listen listener on 127.0.0.1
 *   floor_baseline.ts openssl cert=P key=P   the same, and OpenSSL loaded through
 *                                            lib/transport/openssl.ts with one context
 *
 * Each does the one compacting collection lib/cli.ts does once the server listens, so that the
 * figures compare with our baseline scenario.
 * @module
 */

type GcCall = (opts: {
  readonly type: "major";
  readonly execution: "sync";
  readonly flavor: "last-resort";
}) => void;

const level = Deno.args[0] ?? "empty";
const args: Record<string, string> = Object.fromEntries(
  Deno.args.slice(1).map((a) => [a.slice(0, a.indexOf("=")), a.slice(a.indexOf("=") + 1)]),
);
// Kept, so that nothing loaded can be collected as unused.
const loaded: unknown[] = [];
let port = 0;
if (level !== "empty") {
  loaded.push(
    await import("node:net"),
    await import("node:tls"),
    await import("node:crypto"),
    await import("saxes"),
    await import("@logtape/logtape"),
    await import("valibot"),
    await import("smol-toml"),
  );
  if (level === "openssl") {
    const { sslContexts } = await import("../lib/transport/openssl.ts");
    const material = {
      certPem: await Deno.readTextFile(args.cert),
      keyPem: await Deno.readTextFile(args.key),
    };
    const ctx = sslContexts(new Map([["localhost", material]]));
    if (ctx === undefined) throw new Error("OpenSSL cannot serve here");
    loaded.push(ctx);
  }
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  port = (listener.addr as Deno.NetAddr).port;
  (async () => {
    for await (const conn of listener) conn.close();
  })();
}
const gc = (globalThis as { gc?: GcCall }).gc;
if (typeof gc === "function") gc({ type: "major", execution: "sync", flavor: "last-resort" });
console.log(`listening ${port} (${loaded.length} modules)`);
setInterval(() => {}, 1 << 30);
