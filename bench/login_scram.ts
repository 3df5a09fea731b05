/**
 * The login path alone, for before/after comparisons of its CPU cost: provisions `bench1..N`,
 * starts the server of `--main` (this tree's main.ts, or a copy's), warms it up with 20
 * logins, then runs xmppbench's login scenario `--rounds` times on fresh servers and prints
 * the server's CPU µs per login of each. `--cpu-prof FILE` keeps the V8 profile of one more
 * run (what `bench/profile_split.ts` reads), whole: its window is printed for `--from-us`.
 *
 * `deno run --allow-all bench/login_scram.ts [--main PATH] [--tls] [--users N]
 *  [--rounds N] [--cpu-prof FILE] [--strace FILE]`
 *
 * `--micro [--root DIR]`: no server, no sockets: the login's XML, reductions and SCRAM in this
 * process, with the code of the tree at DIR (this one by default, or a copy made to compare
 * with): a plain-TCP login's client bytes parsed, reduced by lib/c2s, the answers framed as
 * TCP writes them; credentials and the roster handed in as the shell would. Like the server
 * in bench:load, it measures `--users` logins after 20 of warm-up in a fresh process, so the
 * JIT is about as warm as there; it prints µs per login.
 * @module
 */
import { parseArgs } from "node:util";
import process from "node:process";
import { NOFILE, ourServer } from "./_servers.ts";
import { warmupArgs } from "./_cli.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    main: { type: "string", default: new URL("../main.ts", import.meta.url).pathname },
    tls: { type: "boolean", default: false },
    users: { type: "string", default: "300" },
    rounds: { type: "string", default: "1" },
    "cpu-prof": { type: "string" },
    strace: { type: "string" },
    micro: { type: "boolean", default: false },
    warmup: { type: "string", default: "20" },
    root: { type: "string", default: new URL("..", import.meta.url).pathname },
    xmppbench: {
      type: "string",
      default: new URL("../../shared/bench/xmppbench.mjs", import.meta.url).pathname,
    },
  },
});

async function bench(args: readonly string[]): Promise<{ ok: boolean; human: string }> {
  const out = await new Deno.Command("bash", {
    args: [
      "-c",
      `ulimit -n ${NOFILE} 2>/dev/null; exec node "$0" "$@"`,
      values.xmppbench,
      ...args,
      "--timeout",
      "300",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const lines = new TextDecoder().decode(out.stdout).split("\n");
  const json = lines.findLast((l) => l.startsWith("{"));
  return {
    ok: json !== undefined && JSON.parse(json).ok === true,
    human: lines.find((l) => l.startsWith("# "))?.slice(2) ?? "",
  };
}

/** utime+stime (clock ticks) of each thread of `pid`, with its name, by thread id. */
function threadTicks(pid: number): Map<string, [string, number]> {
  const out = new Map<string, [string, number]>();
  for (const e of Deno.readDirSync(`/proc/${pid}/task`)) {
    try {
      const stat = Deno.readTextFileSync(`/proc/${pid}/task/${e.name}/stat`);
      const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      out.set(e.name, [name, Number(f[11]) + Number(f[12])]);
    } catch {
      // The thread ended meanwhile.
    }
  }
  return out;
}

async function uptimeUs(): Promise<number> {
  return Math.round(Number((await Deno.readTextFile("/proc/uptime")).split(" ")[0]) * 1e6);
}

const users = Number(values.users);
if (values.micro) {
  await micro(values.root.endsWith("/") ? values.root : values.root + "/", users);
  Deno.exit(0);
}
const kind = await ourServer(values.main, "ours");
try {
  await kind.provision({ users: Math.max(users, Number(values.warmup)), fanContacts: 0 }, () => {
    throw new Error("no fanout");
  });
  const profDir = values["cpu-prof"] === undefined ? undefined : await Deno.makeTempDir();
  const rounds = Number(values.rounds) + (profDir === undefined ? 0 : 1);
  for (let r = 0; r < rounds; r++) {
    const profiled = profDir !== undefined && r === rounds - 1;
    const srv = await kind.start({
      archive: false,
      tls: values.tls,
      ...(profiled ? { cpuProfDir: profDir } : {}),
    });
    const base = ["--port", `${srv.port}`, "--mech", "SCRAM-SHA-1"].concat(
      values.tls ? ["--starttls"] : [],
    );
    let window: [number, number] = [0, 0];
    let strace: Deno.ChildProcess | undefined;
    try {
      // bench:load's warm-up (20 logins), or more: how far the JIT's warm-up is measured.
      const warm = warmupArgs(base);
      await bench(warm.map((a, k) => warm[k - 1] === "--users" ? values.warmup : a));
      if (values.strace !== undefined && r === 0) {
        // The file calls of the first measured round (how many reads, opens, syncs per login).
        strace = new Deno.Command("strace", {
          args: ["-f", "-p", `${srv.pid}`, "-e", "trace=%file,%desc,%network", "-o", values.strace],
          stderr: "null",
        }).spawn();
        await new Promise((ok) => setTimeout(ok, 500));
      }
      const t0 = await uptimeUs();
      const threads0 = threadTicks(srv.pid);
      const j = await bench([
        "--scenario",
        "login",
        ...base,
        "--users",
        `${users}`,
        "--concurrency",
        "20",
        "--server-pid",
        `${srv.pid}`,
      ]);
      window = [t0, await uptimeUs()];
      // CPU by thread name over the measured phase: the main thread against V8's compiler and
      // GC helpers and the runtime's I/O threads.
      const threads1 = threadTicks(srv.pid);
      const by = new Map<string, number>();
      for (const [tid, [name, ticks]] of threads1) {
        const d = ticks - (threads0.get(tid)?.[1] ?? 0);
        if (d > 0) by.set(name, (by.get(name) ?? 0) + d);
      }
      console.log(
        "  CPU ticks by thread: " +
          [...by].sort((a, b) => b[1] - a[1]).map(([n, t]) => `${n} ${t}`).join(", "),
      );
      console.log(`${profiled ? "profiled " : ""}round ${r + 1}: ok=${j.ok} ${j.human}`);
    } finally {
      if (strace !== undefined) {
        strace.kill("SIGINT");
        await strace.status;
      }
      await srv.stop();
    }
    if (profiled) {
      const file = [...Deno.readDirSync(profDir)].find((e) => e.name.endsWith(".cpuprofile"))!;
      await Deno.copyFile(`${profDir}/${file.name}`, values["cpu-prof"]!);
      console.log(`profile: ${values["cpu-prof"]} --from-us ${window[0]} --to-us ${window[1]}`);
    }
  }
} finally {
  await kind.cleanup();
}

/** The `--micro` mode (see the module comment). */
async function micro(root: string, logins: number): Promise<void> {
  const { testCtx } = await import(`${root}tests/_ctx.ts`);
  const { newSession, EMPTY_ROSTER } = await import(`${root}lib/core/session.ts`);
  const { reduce } = await import(`${root}lib/c2s/mod.ts`);
  const { createStreamParser } = await import(`${root}lib/xml/parser.ts`);
  const { tcpFrame } = await import(`${root}lib/transport/tcp_framing.ts`);
  const scram = await import(`${root}lib/xmpp/scram.ts`);
  const host = "localhost";
  let ids = 0;
  const ctx = {
    ...testCtx({ hosts: [host] }),
    newId: () => `id${++ids}`,
    // One server nonce, so that one client-final (PBKDF2 is the client's cost) fits every login.
    nonce: () => "c2VydmVyLW5vbmNlLWZvci1iZW5jaA",
  };
  const creds = scram.newCredentialSet("benchpass");
  const clientFirst = scram.clientFirstMessage("bench1", "Y2xpZW50LW5vbmNlLWJlbmNo");
  const first = scram.parseClientFirst(clientFirst);
  const serverFirst = scram.serverFirstMessage(first, ctx.nonce(), creds["SHA-1"]);
  const { message: clientFinal } = scram.clientFinalMessage({
    hash: "SHA-1",
    password: "benchpass",
    clientFirst,
    serverFirst,
  });
  const enc = new TextEncoder();
  const b64 = (t: string) => btoa(t);
  const header = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' " +
    `xmlns:stream='http://etherx.jabber.org/streams' to='${host}' version='1.0' xml:lang='en'>`;
  // What xmppbench writes, one write per step (its login without STARTTLS).
  const writes = [
    [header],
    [`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>${
      b64(clientFirst)
    }</auth>`],
    [`<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>${b64(clientFinal)}</response>`],
    [header],
    [
      "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>" +
      "<resource>bench-1</resource></bind></iq>",
    ],
    ["<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>"],
    ["<presence/>"],
    [`<iq type='get' id='p1' to='${host}'><ping xmlns='urn:xmpp:ping'/></iq>`],
  ].map(([t]) => enc.encode(t));

  // deno-lint-ignore no-explicit-any
  type Any = any;
  let written = 0;
  function login(i: number): void {
    let s = newSession(`s${i}`, { ip: "127.0.0.1", secure: false });
    let parser = createStreamParser({ maxStanzaBytes: 10000 });
    const run = (ev: Any) => {
      const queue = [ev];
      while (queue.length > 0) {
        const [next, outs] = reduce(s, queue.shift(), ctx);
        s = next;
        for (const o of outs as Any[]) {
          if (o.kind === "send" || o.kind === "open-stream" || o.kind === "close-stream") {
            written += tcpFrame(o, "jabber:client").length;
          } else if (o.kind === "load-credentials") {
            queue.push({ kind: "credentials-loaded", username: o.username, credentials: creds });
          } else if (o.kind === "reset-stream") {
            parser = createStreamParser({ maxStanzaBytes: 262144 });
          } else if (o.kind === "account" && o.op.kind === "session-bound") {
            queue.push({ kind: "roster-loaded", roster: EMPTY_ROSTER });
          }
        }
      }
    };
    for (const bytes of writes) {
      for (const pe of parser.push(bytes) as Any[]) {
        if (pe.kind === "stream-open") run(pe);
        else if (pe.kind === "stanza") run({ kind: "stanza", stanza: pe.stanza });
        else throw new Error(`login ${i}: ${JSON.stringify(pe)}`);
      }
    }
    if (s.fullJid === undefined || s.presence === undefined) throw new Error("login failed");
    run({ kind: "disconnected" });
  }
  const warm = Number(Deno.env.get("WARM") ?? 20);
  for (let i = 0; i < warm; i++) login(i);
  // Process CPU (every thread: V8 compiles and collects on its own), as the server is measured;
  // less disturbed than wall time by whatever else the machine runs.
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < logins; i++) login(warm + i);
  const wall = (performance.now() - t0) * 1000 / logins;
  const c1 = process.cpuUsage(c0);
  const cpu = (c1.user + c1.system) / logins;
  console.log(
    `micro ${root}: ${cpu.toFixed(1)} µs CPU per login, ${wall.toFixed(1)} µs wall ` +
      `(${logins} after ${warm}, ${written} bytes out)`,
  );
}
