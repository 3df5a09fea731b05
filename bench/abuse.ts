/**
 * What one peer can make the server hold or compute: each attack of issue 9 run against a fresh
 * server process, with the server's CPU (utime+stime from /proc) and RSS before and after, and
 * what the attacker achieved. `--baseline REV` runs the same attacks against another commit (a
 * git worktree), so the table shows before and after a fix in one run on one machine.
 *
 * `deno run -A bench/abuse.ts [--attacks a,b] [--baseline REV] [--out FILE]`
 *
 * @module
 */
import { parseArgs } from "node:util";
import { openAccountStore } from "../lib/storage/accounts.ts";
import { elem, type Element, serialize, stanza } from "../lib/xml/element.ts";
import { capsInputOf, verificationString } from "../lib/modules/caps.ts";
import { RawClient } from "../tests/integration/_raw_client.ts";
import { freePort, run, SERVER_V8_FLAGS } from "./_servers.ts";

const HELP = `usage: deno run -A bench/abuse.ts [flags]
  --attacks LIST   comma-separated names (default: all): ${"" /* filled below */}
  --baseline REV   also run every attack against commit REV (a temporary git worktree)
  --out FILE       also write the Markdown table to FILE`;

/** A server process and its numbers. */
interface Proc {
  readonly pid: number;
  readonly port: number;
  stop(): Promise<void>;
}

function cpuMs(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  // Fields after the command name (which may hold spaces) start after the last ')'.
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) * 10; // clock ticks of 10 ms
}

function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(Deno.readTextFileSync(`/proc/${pid}/status`));
  return m === null ? 0 : Number(m[1]);
}

async function startServer(root: string, users: readonly string[]): Promise<Proc> {
  const dir = await Deno.makeTempDir({ prefix: "bench_abuse_" });
  const port = freePort();
  const config = `${dir}/xmpp.toml`;
  await Deno.writeTextFile(
    config,
    [
      `hosts = ["localhost"]`,
      `data_dir = "${dir}/data"`,
      `interfaces = ["127.0.0.1"]`,
      `c2s_port = ${port}`,
      `c2s_direct_tls_port = false`,
      `component_port = false`,
      `s2s_port = false`,
      `http = { http_port = false, https_port = false }`,
      `require_encryption = false`,
      `log_level = "error"`,
      `archive_policy = "always"`,
    ].join("\n"),
  );
  const accounts = openAccountStore(`${dir}/data`);
  for (const u of users) await accounts.create("localhost", u, "pw");
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `--v8-flags=${SERVER_V8_FLAGS}`,
      `${root}/main.ts`,
      "serve",
      "--config",
      config,
    ],
    cwd: root,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      break;
    } catch {
      if (Date.now() > deadline) throw new Error(`server in ${root} did not start`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    pid: child.pid,
    port,
    async stop() {
      try {
        child.kill("SIGKILL");
      } catch {
        // gone
      }
      await child.status;
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

async function login(port: number, user: string, resource = "r"): Promise<RawClient> {
  const c = await RawClient.connect(port);
  await c.login(user, "pw");
  await c.bind(resource);
  return c;
}

/** Reads until `pred` held `count` times or nothing came for `idleMs`; returns how many did. */
async function collect(
  c: RawClient,
  pred: (el: Element) => boolean,
  count: number,
  idleMs = 3000,
): Promise<number> {
  let n = 0;
  while (n < count) {
    const ev = await c.event(idleMs);
    if (ev === undefined) break;
    if (ev.kind === "stanza" && pred(ev.stanza)) n++;
  }
  return n;
}

const isError = (el: Element) => el.attrs.type === "error";
const isResult = (el: Element) => el.name === "iq" && el.attrs.type === "result";
const pad = (n: number) => "x".repeat(n);

function message(to: string, body: string): Element {
  return stanza("message", { to, type: "chat" }, [elem("body", {}, [body])]);
}

/** One attack: set up (not measured), then the measured part; returns what it achieved. */
interface Attack {
  readonly name: string;
  readonly what: string;
  readonly users: readonly string[];
  run(port: number, measure: <T>(fn: () => Promise<T>) => Promise<T>): Promise<string>;
}

const ATTACKS: readonly Attack[] = [
  {
    name: "blocklist",
    what: "block 20,000 JIDs, then 200 messages each way",
    users: ["alice", "bob"],
    async run(port, measure) {
      const a = await login(port, "alice");
      const b = await login(port, "bob");
      let refused = 0;
      for (let i = 0; i < 40; i++) {
        const items = Array.from(
          { length: 500 },
          (_, j) => elem("item", { jid: `u${i * 500 + j}@example.net` }),
        );
        a.send(stanza("iq", { type: "set", id: `b${i}` }, [
          elem("block", { xmlns: "urn:xmpp:blocking" }, items),
        ]));
        const r = await a.next("block result", 30_000);
        if (isError(r)) refused++;
      }
      await a.ping();
      return await measure(async () => {
        for (let i = 0; i < 200; i++) {
          a.send(message("bob@localhost/r", `m${i}`));
          b.send(message("alice@localhost/r", `m${i}`));
        }
        const got = await collect(b, (el) => el.name === "message", 200);
        await collect(a, (el) => el.name === "message", 200);
        return `${40 - refused}/40 block requests taken; ${got}/200 delivered`;
      });
    },
  },
  {
    name: "directed",
    what: "20,000 directed presences",
    users: ["alice"],
    async run(port, measure) {
      const a = await login(port, "alice");
      a.send(stanza("presence", {}));
      await a.ping();
      return await measure(async () => {
        for (let i = 0; i < 20000; i++) a.send(stanza("presence", { to: `d${i}@example.net` }));
        await a.ping(120_000);
        return "sent";
      });
    },
  },
  {
    name: "caps",
    what: "120 unsolicited disco#info answers of ~195 KB, then disconnect",
    users: ["alice"],
    async run(port, measure) {
      const a = await login(port, "alice");
      return await measure(async () => {
        for (let i = 0; i < 120; i++) {
          const features = Array.from(
            { length: 3000 },
            (_, j) => elem("feature", { var: `urn:x:${i}:${j}:${pad(40)}` }),
          );
          const q0 = elem("query", { xmlns: "http://jabber.org/protocol/disco#info" }, [
            elem("identity", { category: "client", type: "pc" }),
            ...features,
          ]);
          const ver = verificationString(capsInputOf(q0));
          const q = elem("query", {
            xmlns: "http://jabber.org/protocol/disco#info",
            node: `https://x.invalid#${ver}`,
          }, [elem("identity", { category: "client", type: "pc" }), ...features]);
          a.send(stanza("iq", { type: "result", id: "disco", to: "alice@localhost" }, [q]));
        }
        await a.ping(60_000);
        await a.close();
        return "sent";
      });
    },
  },
  {
    name: "pep",
    what: "40 PEP items of 200 KB",
    users: ["alice"],
    async run(port, measure) {
      const a = await login(port, "alice");
      return await measure(async () => {
        let ok = 0;
        for (let i = 0; i < 40; i++) {
          a.send(stanza("iq", { type: "set", id: `p${i}` }, [
            elem("pubsub", { xmlns: "http://jabber.org/protocol/pubsub" }, [
              elem("publish", { node: "urn:x:big" }, [
                elem("item", { id: `i${i}` }, [elem("data", { xmlns: "urn:x" }, [pad(200_000)])]),
              ]),
            ]),
          ]));
          const r = await a.next("publish result", 30_000);
          if (isResult(r)) ok++;
        }
        return `${ok}/40 items taken`;
      });
    },
  },
  {
    name: "roster",
    what: "22 roster items with 200 groups of 1 KB each, then a roster get",
    users: ["alice"],
    async run(port, measure) {
      const a = await login(port, "alice");
      return await measure(async () => {
        let ok = 0;
        for (let i = 0; i < 22; i++) {
          a.send(stanza("iq", { type: "set", id: `r${i}` }, [
            elem("query", { xmlns: "jabber:iq:roster" }, [
              elem(
                "item",
                { jid: `c${i}@example.net`, name: pad(1000) },
                Array.from({ length: 200 }, (_, g) => elem("group", {}, [`${g}${pad(990)}`])),
              ),
            ]),
          ]));
          const r = await collect(a, (el) => el.attrs.id === `r${i}` && isResult(el), 1, 10_000);
          ok += r;
        }
        a.send(stanza("iq", { type: "get", id: "get" }, [
          elem("query", { xmlns: "jabber:iq:roster" }),
        ]));
        const got = await collect(a, (el) => el.attrs.id === "get", 1, 10_000);
        return `${ok}/22 items taken; roster get ${got === 1 ? "answered" : "not answered"}`;
      });
    },
  },
  {
    name: "sm-queue",
    what: "450 messages of 200 KB to a session that never acks",
    users: ["alice", "bob"],
    async run(port, measure) {
      const a = await login(port, "alice");
      const b = await login(port, "bob");
      b.write(`<enable xmlns='urn:xmpp:sm:3' resume='true'/>`);
      await b.next("enabled");
      b.send(stanza("presence", {}));
      b.pause();
      return await measure(async () => {
        for (let i = 0; i < 450; i++) a.send(message("bob@localhost/r", pad(200_000)));
        await a.ping(60_000);
        await new Promise((r) => setTimeout(r, 1000));
        return "sent";
      });
    },
  },
  {
    name: "offline",
    what: "300 messages of 20 KB to an offline user",
    users: ["alice", "carol"],
    async run(port, measure) {
      const a = await login(port, "alice");
      return await measure(async () => {
        for (let i = 0; i < 300; i++) a.send(message("carol@localhost", pad(20_000)));
        const bounced = await collect(a, isError, 300, 3000);
        return `${300 - bounced}/300 stored`;
      });
    },
  },
  {
    name: "mam-ids",
    what: "a MAM query naming 240 ids in an archive of 3000",
    users: ["alice", "bob"],
    async run(port, measure) {
      const a = await login(port, "alice");
      for (let i = 0; i < 3000; i++) a.send(message("bob@localhost", `m${i}`));
      await a.ping(60_000);
      const ids = Array.from({ length: 240 }, (_, i) => elem("value", {}, [`nope${i}`]));
      const form = elem("x", { xmlns: "jabber:x:data", type: "submit" }, [
        elem("field", { var: "FORM_TYPE", type: "hidden" }, [
          elem("value", {}, ["urn:xmpp:mam:2"]),
        ]),
        elem("field", { var: "ids" }, ids),
      ]);
      return await measure(async () => {
        a.send(stanza("iq", { type: "set", id: "q" }, [
          elem("query", { xmlns: "urn:xmpp:mam:2", queryid: "q" }, [form]),
        ]));
        let type = "no answer";
        await collect(
          a,
          (el) => {
            const it = el.name === "iq" && el.attrs.id === "q";
            if (it) type = el.attrs.type ?? "?";
            return it;
          },
          1,
          30_000,
        );
        return `answered: ${type}`;
      });
    },
  },
  {
    name: "pep-constructor",
    what: "300 messages with 30 PEP requests for node 'constructor' interleaved",
    users: ["alice", "bob"],
    async run(port, measure) {
      const a = await login(port, "alice");
      const b = await login(port, "bob");
      b.send(stanza("presence", {}));
      await b.ping();
      return await measure(async () => {
        for (let i = 0; i < 300; i++) {
          a.send(message("bob@localhost", `m${i}`));
          if (i % 10 === 0) {
            a.send(stanza("iq", { type: "get", id: `c${i}`, to: "bob@localhost" }, [
              elem("pubsub", { xmlns: "http://jabber.org/protocol/pubsub" }, [
                elem("items", { node: "constructor" }),
              ]),
            ]));
          }
        }
        const got = await collect(b, (el) => el.name === "message", 300, 5000);
        return `${got}/300 delivered`;
      });
    },
  },
  {
    name: "flood",
    what: "800 messages of 50 KB as fast as possible (peak RSS)",
    users: ["alice", "bob"],
    async run(port, measure) {
      const a = await login(port, "alice");
      const b = await login(port, "bob");
      b.send(stanza("presence", {}));
      await b.ping();
      return await measure(async () => {
        const body = pad(50_000);
        const text = serialize(message("bob@localhost", body));
        a.write(text.repeat(800));
        const got = await collect(b, (el) => el.name === "message", 800, 10_000);
        return `${got}/800 delivered`;
      });
    },
  },
];

interface Row {
  readonly attack: string;
  readonly server: string;
  readonly cpuMs: number;
  readonly rssBeforeMb: number;
  readonly rssPeakMb: number;
  readonly rssAfterMb: number;
  readonly outcome: string;
}

async function runAttack(root: string, label: string, attack: Attack): Promise<Row> {
  const proc = await startServer(root, attack.users);
  try {
    let cpu = 0;
    let before = 0;
    let peak = 0;
    const measure = async <T>(fn: () => Promise<T>): Promise<T> => {
      before = rssKb(proc.pid);
      peak = before;
      const sampler = setInterval(() => {
        peak = Math.max(peak, rssKb(proc.pid));
      }, 20);
      const c0 = cpuMs(proc.pid);
      try {
        return await fn();
      } finally {
        cpu = cpuMs(proc.pid) - c0;
        clearInterval(sampler);
      }
    };
    const outcome = await attack.run(proc.port, measure).catch((err) => `failed: ${err}`);
    await new Promise((r) => setTimeout(r, 500));
    const after = rssKb(proc.pid);
    return {
      attack: attack.name,
      server: label,
      cpuMs: cpu,
      rssBeforeMb: before / 1024,
      rssPeakMb: Math.max(peak, after) / 1024,
      rssAfterMb: after / 1024,
      outcome,
    };
  } finally {
    await proc.stop();
  }
}

function table(rows: readonly Row[]): string {
  const lines = [
    "| attack | server | CPU ms | RSS before MB | peak MB | after MB | outcome |",
    "| --- | --- | --: | --: | --: | --: | --- |",
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.attack} | ${r.server} | ${r.cpuMs} | ${r.rssBeforeMb.toFixed(0)} | ${
        r.rssPeakMb.toFixed(0)
      } | ${r.rssAfterMb.toFixed(0)} | ${r.outcome} |`,
    );
  }
  return lines.join("\n");
}

async function main() {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      attacks: { type: "string" },
      baseline: { type: "string" },
      out: { type: "string" },
      help: { type: "boolean" },
    },
  });
  if (values.help) {
    console.log(HELP, ATTACKS.map((a) => a.name).join(","));
    return;
  }
  const names = values.attacks?.split(",") ?? ATTACKS.map((a) => a.name);
  const chosen = ATTACKS.filter((a) => names.includes(a.name));
  const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
  const servers: [string, string][] = [["this", root]];
  let worktree: string | undefined;
  if (values.baseline !== undefined) {
    worktree = await Deno.makeTempDir({ prefix: "bench_abuse_base_" });
    await run("git", ["-C", root, "worktree", "add", "--detach", worktree, values.baseline]);
    await Deno.copyFile(`${root}/deno.lock`, `${worktree}/deno.lock`).catch(() => {});
    servers.unshift([values.baseline.slice(0, 12), worktree]);
  }
  const rows: Row[] = [];
  try {
    for (const attack of chosen) {
      for (const [label, dir] of servers) {
        const row = await runAttack(dir, label, attack);
        rows.push(row);
        console.error(`${attack.name} on ${label}: ${row.cpuMs} ms CPU, ${row.outcome}`);
      }
    }
  } finally {
    if (worktree !== undefined) {
      await run("git", ["-C", root, "worktree", "remove", "--force", worktree]).catch(() => {});
    }
  }
  const out = [
    ...chosen.map((a) => `- ${a.name}: ${a.what}`),
    "",
    table(rows),
  ].join("\n");
  console.log(out);
  if (values.out !== undefined) await Deno.writeTextFile(values.out, out + "\n");
}

if (import.meta.main) await main();
