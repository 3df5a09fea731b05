/**
 * The command line: `serve` (default), `adduser`, `passwd`, `deluser`, `check`. Every command
 * takes `--config FILE`.
 * @module
 */
import { type Config, ConfigError, loadConfig, parseCommonArgs } from "./config.ts";
import { getLogger, setupLogging } from "./log.ts";
import { AccountExistsError, AccountMissingError, openAccountStore } from "./storage/accounts.ts";
import { parseJid } from "./xmpp/jid.ts";
import { UnstorableNameError } from "./storage/file/datamanager.ts";

const USAGE = `usage:
  main.ts [serve] [--config FILE]          run the server
  main.ts adduser [--config FILE] JID [PASSWORD]
  main.ts passwd  [--config FILE] JID [PASSWORD]
  main.ts deluser [--config FILE] JID
  main.ts check   [--config FILE]          validate the configuration
The password is asked for when omitted (read from standard input when it is not a terminal).`;

/** Reads a password without echo from a terminal, or one line from piped input. */
async function readPassword(question: string): Promise<string> {
  const enc = new TextEncoder();
  if (!Deno.stdin.isTerminal()) {
    const buf = new Uint8Array(4096);
    const n = await Deno.stdin.read(buf);
    return new TextDecoder().decode(buf.subarray(0, n ?? 0)).split(/\r?\n/)[0];
  }
  await Deno.stdout.write(enc.encode(question));
  Deno.stdin.setRaw(true);
  let out = "";
  try {
    const buf = new Uint8Array(1);
    while (true) {
      const n = await Deno.stdin.read(buf);
      if (n === null || buf[0] === 13 || buf[0] === 10) break;
      if (buf[0] === 3) throw new Error("interrupted");
      if (buf[0] === 127 || buf[0] === 8) out = out.slice(0, -1);
      else out += String.fromCharCode(buf[0]);
    }
  } finally {
    Deno.stdin.setRaw(false);
    await Deno.stdout.write(enc.encode("\n"));
  }
  return new TextDecoder().decode(Uint8Array.from(out, (c) => c.charCodeAt(0)));
}

async function passwordArg(given: string | undefined, confirm: boolean): Promise<string> {
  if (given !== undefined) return given;
  const first = await readPassword("Password: ");
  if (confirm && Deno.stdin.isTerminal()) {
    const again = await readPassword("Again: ");
    if (again !== first) throw new UsageError("the passwords differ");
  }
  if (first === "") throw new UsageError("the password is empty");
  return first;
}

class UsageError extends Error {
  override name = "UsageError";
}

function accountJid(config: Config, arg: string | undefined): { host: string; username: string } {
  const jid = arg === undefined ? undefined : parseJid(arg);
  if (jid === undefined || jid.local === undefined || jid.resource !== undefined) {
    throw new UsageError(
      `expected an account JID like user@${config.hosts[0]}, got ${arg ?? "nothing"}`,
    );
  }
  if (!config.hosts.includes(jid.domain)) {
    throw new UsageError(
      `${jid.domain} is not one of the configured hosts (${config.hosts.join(", ")})`,
    );
  }
  return { host: jid.domain, username: jid.local };
}

/** The gc extension's call with options (V8 `--expose-gc`, which the `start` task passes). */
type GcCall = (options: {
  readonly type: "major";
  readonly execution: "sync";
  readonly flavor: "last-resort";
}) => void;

/**
 * One compacting collection once the server listens: loading ~150 modules and starting leaves
 * 4 MB of garbage and half-empty pages in the V8 heap, which an idle server would otherwise
 * keep resident for minutes (V8's memory reducer acts late, if at all). It runs once, as the
 * listeners open, when almost no client can be waiting on it.
 */
function compactAfterStart(): void {
  const gc = (globalThis as { gc?: GcCall }).gc;
  if (typeof gc === "function") gc({ type: "major", execution: "sync", flavor: "last-resort" });
}

async function serve(config: Config): Promise<number> {
  // Loaded here, not at the top: the account commands need none of the server's ~130 modules.
  const { startServer } = await import("./shell/server.ts");
  const server = await startServer(config);
  const log = getLogger("main");
  log.info("Serving {hosts}", { hosts: config.hosts.join(", ") });
  compactAfterStart();
  const stop = new Promise<string>((resolve) => {
    for (const sig of ["SIGINT", "SIGTERM"] as const) {
      Deno.addSignalListener(sig, () => resolve(sig));
    }
  });
  const sig = await stop;
  log.info("{sig}: shutting down", { sig });
  await server.shutdown();
  return 0;
}

/** Runs the command line; returns the exit code. */
export async function runCli(args: readonly string[]): Promise<number> {
  try {
    const { configPath, rest } = parseCommonArgs(args);
    const [command = "serve", ...params] = rest;
    if (command === "help" || command === "--help" || command === "-h") {
      console.log(USAGE);
      return 0;
    }
    const config = await loadConfig(configPath);
    await setupLogging(config.logLevel);
    const accounts = () =>
      openAccountStore(config.dataDir, { iterations: config.auth.scramIterations });
    switch (command) {
      case "serve":
        return await serve(config);
      case "check":
        console.log("configuration is valid");
        return 0;
      case "adduser": {
        const { host, username } = accountJid(config, params[0]);
        await accounts().create(host, username, await passwordArg(params[1], true));
        console.log(`created ${username}@${host}`);
        return 0;
      }
      case "passwd": {
        const { host, username } = accountJid(config, params[0]);
        const store = accounts();
        if (!(await store.exists(host, username))) throw new AccountMissingError(host, username);
        await store.setPassword(host, username, await passwordArg(params[1], true));
        console.log(`changed the password of ${username}@${host}`);
        return 0;
      }
      case "deluser": {
        const { host, username } = accountJid(config, params[0]);
        const [{ openTombstoneStore, removeAccount }, { MODULE_STORES }, { openUserData }] =
          await Promise.all([
            import("./storage/tombstones.ts"),
            import("./modules/registry.ts"),
            import("./storage/user_data.ts"),
          ]);
        // As when users remove their own account: the name stays taken for a while.
        await removeAccount(
          {
            accounts: accounts(),
            tombstones: openTombstoneStore(config.dataDir),
            data: openUserData(config.dataDir, MODULE_STORES),
          },
          host,
          username,
          Date.now(),
        );
        console.log(`deleted ${username}@${host}`);
        return 0;
      }
      default:
        throw new UsageError(`unknown command ${command}`);
    }
  } catch (err) {
    if (
      err instanceof ConfigError || err instanceof UsageError ||
      err instanceof AccountExistsError ||
      err instanceof AccountMissingError || err instanceof UnstorableNameError ||
      // The server's ListenError, by name: server.ts is loaded only to serve.
      (err instanceof Error && err.name === "ListenError")
    ) {
      console.error(`error: ${err.message}`);
      if (err instanceof UsageError) console.error(USAGE);
      return 2;
    }
    throw err;
  }
}
