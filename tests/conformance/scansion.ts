/**
 * Runs scansion conversation scripts against a live XMPP server over TCP.
 *
 * CLI: `deno run -A tests/conformance/scansion.ts --host 127.0.0.1 --port 5222
 * [--domain localhost] [--timeout 5000] [FILES...]`; without files it runs every script in
 * `$SCANSION_DIR`, by default `../shared/conformance/scansion/` beside the repository.
 *
 * @module
 */
import { type Element, serialize } from "../../lib/xml/element.ts";
import { connectClient, type TestClient } from "./client.ts";
import { type Captures, matchStanza } from "./match.ts";
import {
  type ClientSpec,
  parseScript,
  type Script,
  ScriptError,
  type Step,
  substituteVariables,
  type VariableRef,
} from "./script.ts";

/** Where the server is, and how patient to be. */
export interface RunOptions {
  readonly host: string;
  readonly port: number;
  /** Stream `to` for every client; defaults to the domain of each client's JID. */
  readonly domain?: string;
  /** How long one step may wait (default 5000 ms). */
  readonly stepTimeoutMs?: number;
  /** How long `receives: nothing` listens after a ping round trip (default 300 ms). */
  readonly quietMs?: number;
}

/** The outcome of one script; `step` names the failing step by line number. */
export type RunResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly step: string; readonly message: string };

/** A failing step: its message is shown as is. */
class StepFailure extends Error {
  override name = "StepFailure";
}

interface ClientState {
  readonly spec: ClientSpec;
  client?: TestClient;
  state: "new" | "connected" | "disconnected";
}

function bare(jid: string): string {
  const slash = jid.indexOf("/");
  return slash < 0 ? jid : jid.slice(0, slash);
}

function splitJid(jid: string): { local: string; domain: string } {
  const b = bare(jid);
  const at = b.indexOf("@");
  return at < 0 ? { local: "", domain: b } : { local: b.slice(0, at), domain: b.slice(at + 1) };
}

function indent(s: string): string {
  return s.split("\n").map((l) => "    " + l).join("\n");
}

function describeArrivals(arrived: readonly Element[], ms: number): string {
  if (arrived.length === 0) return `nothing arrived within ${ms} ms`;
  return `received (${arrived.length}, none matching):\n` +
    arrived.map((s) => indent(serialize(s))).join("\n");
}

/** Parses and runs a script; never throws for a failing script or server. */
export async function runScript(scriptText: string, opts: RunOptions): Promise<RunResult> {
  let script: Script;
  try {
    script = parseScript(scriptText);
  } catch (e) {
    const line = e instanceof ScriptError ? `line ${e.line}` : "script";
    return { ok: false, step: line, message: `cannot parse the script: ${(e as Error).message}` };
  }
  return await runParsed(script, opts);
}

/** Runs an already parsed script. */
export async function runParsed(script: Script, opts: RunOptions): Promise<RunResult> {
  const timeoutMs = opts.stepTimeoutMs ?? 5000;
  const quietMs = opts.quietMs ?? 300;
  const clients = new Map<string, ClientState>(
    script.clients.map((spec) => [spec.name, { spec, state: "new" }]),
  );
  let captures: Captures = {};
  let previousStart = performance.now();

  const resolve = (ref: VariableRef): string => {
    const c = clients.get(ref.client);
    if (c === undefined) throw new StepFailure(`unknown client in a variable: ${ref.client}`);
    if (c.client !== undefined) return ref.full ? c.client.jid : bare(c.client.jid);
    if (!ref.full) return bare(c.spec.jid);
    throw new StepFailure(`${ref.client}'s full JID is not known: it has not connected`);
  };
  const connected = (c: ClientState, step: Step): TestClient => {
    if (c.state !== "connected" || c.client === undefined) {
      throw new StepFailure(`${step.client} is not connected`);
    }
    return c.client;
  };

  const runStep = async (step: Step, start: number) => {
    const c = clients.get(step.client)!;
    switch (step.kind) {
      case "connects": {
        if (c.state === "connected") throw new StepFailure(`${step.client} is already connected`);
        const { local, domain } = splitJid(c.spec.jid);
        c.client = await connectClient({
          host: opts.host,
          port: opts.port,
          domain: opts.domain ?? domain,
          username: local,
          password: c.spec.password,
          resource: c.spec.resource,
          timeoutMs,
        });
        c.state = "connected";
        return;
      }
      case "disconnects": {
        const client = connected(c, step);
        c.state = "disconnected";
        await client.close(timeoutMs);
        return;
      }
      case "sends": {
        // Scripts keep sending after a client left; scansion skips those.
        if (c.state === "disconnected") return;
        const client = connected(c, step);
        for (const st of step.stanzas) client.send(substituteVariables(st, resolve));
        // The ping's answer comes after anything the server did with what was sent, so the next
        // step cannot overtake it.
        try {
          await client.ping(timeoutMs);
        } catch (e) {
          // A server that closes the stream (an account removal) has handled what was sent.
          if (client.ended() === undefined) throw e;
        }
        return;
      }
      case "receives": {
        const client = connected(c, step);
        for (const raw of step.stanzas) {
          const expected = substituteVariables(raw, resolve);
          const deadline = performance.now() + timeoutMs;
          const passed: Element[] = [];
          for (;;) {
            const got = await client.next(deadline - performance.now());
            if (got === undefined) {
              const end = client.ended();
              throw new StepFailure(
                `expected:\n${indent(serialize(expected))}\n${describeArrivals(passed, timeoutMs)}${
                  end === undefined ? "" : `\n(stream ended: ${end})`
                }`,
              );
            }
            const caps = matchStanza(expected, got.stanza, captures);
            if (caps !== undefined) {
              captures = caps;
              break;
            }
            passed.push(got.stanza);
          }
        }
        return;
      }
      case "receives-nothing": {
        const client = connected(c, step);
        await client.ping(timeoutMs);
        await new Promise((r) => setTimeout(r, quietMs));
        // Leftovers from before the previous step were passed over by earlier expectations.
        const late = client.pending().filter((r) => r.at >= start);
        if (late.length > 0) {
          throw new StepFailure(
            `expected nothing, but received:\n${
              late.map((r) => indent(serialize(r.stanza))).join("\n")
            }`,
          );
        }
        return;
      }
    }
  };

  try {
    for (const step of script.steps) {
      const start = performance.now();
      try {
        await runStep(step, previousStart);
      } catch (e) {
        const message = e instanceof StepFailure ? e.message : `${(e as Error).message}`;
        return { ok: false, step: `line ${step.line}: ${step.source}`, message };
      }
      previousStart = start;
    }
    return { ok: true };
  } finally {
    await Promise.all(
      [...clients.values()].map((c) =>
        c.state === "connected" ? c.client?.close(1000).catch(() => {}) : undefined
      ),
    );
  }
}

/** The scripts directory: `$SCANSION_DIR`, or the shared one beside the repository. */
export function defaultScriptDir(): string {
  const env = Deno.env.get("SCANSION_DIR");
  if (env !== undefined && env !== "") return env;
  return new URL("../../../shared/conformance/scansion/", import.meta.url).pathname;
}

/** Every `.scs` file in a directory, sorted by name. */
export function listScripts(dir: string = defaultScriptDir()): string[] {
  const out: string[] = [];
  for (const entry of Deno.readDirSync(dir)) {
    if (entry.isFile && entry.name.endsWith(".scs")) {
      out.push(`${dir.replace(/\/$/, "")}/${entry.name}`);
    }
  }
  return out.sort();
}

function usage(): never {
  console.error(
    "usage: scansion.ts --host HOST --port PORT [--domain DOMAIN] [--timeout MS] [FILES...]",
  );
  Deno.exit(2);
}

async function main(args: readonly string[]): Promise<number> {
  let host = "127.0.0.1";
  let port: number | undefined;
  let domain: string | undefined;
  let stepTimeoutMs: number | undefined;
  const files: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const value = () => args[++i] ?? usage();
    if (a === "--host") host = value();
    else if (a === "--port") port = Number(value());
    else if (a === "--domain") domain = value();
    else if (a === "--timeout") stepTimeoutMs = Number(value());
    else if (a === "--help" || a === "-h") usage();
    else if (a.startsWith("--")) usage();
    else files.push(a);
  }
  if (port === undefined || !Number.isInteger(port)) usage();
  const scripts = files.length > 0 ? files : listScripts();
  let passed = 0;
  const failed: string[] = [];
  for (const file of scripts) {
    const name = file.slice(file.lastIndexOf("/") + 1);
    const result = await runScript(await Deno.readTextFile(file), {
      host,
      port,
      domain,
      stepTimeoutMs,
    });
    if (result.ok) {
      passed++;
      console.log(`PASS ${name}`);
    } else {
      failed.push(name);
      console.log(`FAIL ${name}: ${result.step}\n${indent(result.message)}`);
    }
  }
  console.log(
    `\n${passed} passed, ${failed.length} failed of ${scripts.length}` +
      (failed.length > 0 ? `\nfailed: ${failed.join(" ")}` : ""),
  );
  return failed.length === 0 ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
