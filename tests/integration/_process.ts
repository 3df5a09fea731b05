/**
 * The server as a child process on a data directory that outlives it, for tests that kill it
 * (SIGKILL) and start it again on the same data.
 * @module
 */

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

/** A running server process. */
export interface ServerProcess {
  readonly pid: number;
  /** Its c2s port (plain TCP, STARTTLS offered but not required). */
  readonly port: number;
  /** Everything it logged so far. */
  log(): string;
  /** SIGKILL, and wait for it to be gone. */
  kill(): Promise<void>;
  /** SIGTERM (a clean shutdown), and wait for it to be gone. */
  stop(): Promise<void>;
}

/** Writes a configuration for `dataDir` (TOML lines beside the test defaults); returns its path. */
export async function writeConfig(dataDir: string, extra: readonly string[] = []): Promise<string> {
  const path = `${dataDir}.toml`;
  await Deno.writeTextFile(
    path,
    [
      `hosts = ["localhost"]`,
      `data_dir = "${dataDir}"`,
      `interfaces = ["127.0.0.1"]`,
      `c2s_port = 0`,
      `c2s_direct_tls_port = false`,
      `component_port = false`,
      `s2s_port = false`,
      `http = { http_port = false, https_port = false }`,
      `require_encryption = false`,
      `log_level = "info"`,
      ...extra,
    ].join("\n") + "\n",
  );
  return path;
}

/** How to start the process. */
export interface ProcessOptions {
  /**
   * The largest file the server may write, in KiB (RLIMIT_FSIZE: a full disk's stand-in).
   * SIGXFSZ is ignored, so that a write past it fails with EFBIG instead of killing the server.
   */
  readonly maxFileKiB?: number;
}

/** Starts `main.ts serve --config CONFIG` and waits until it listens. */
export async function startServerProcess(
  config: string,
  opts: ProcessOptions = {},
): Promise<ServerProcess> {
  const serve = [Deno.execPath(), "run", "-A", MAIN, "serve", "--config", config];
  const [cmd, ...args] = opts.maxFileKiB === undefined
    ? serve
    : ["bash", "-c", `trap '' XFSZ; ulimit -f ${opts.maxFileKiB}; exec "$0" "$@"`, ...serve];
  const child = new Deno.Command(cmd, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  const dec = new TextDecoder();
  let onText: (() => void) | undefined;
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) {
      text += dec.decode(chunk, { stream: true });
      onText?.();
    }
  };
  const pumping = Promise.all([pump(child.stdout), pump(child.stderr)]);
  const status = child.status;
  let exited = false;
  status.then(() => {
    exited = true;
    onText?.();
  });
  const deadline = Date.now() + 30_000;
  let port: number | undefined;
  while (port === undefined) {
    // The whole line: a chunk may end in the middle of the port number.
    const m = /Listening for clients on [^ ]*:(\d+)\r?\n/.exec(text);
    if (m !== null) port = Number(m[1]);
    else {
      if (exited) throw new Error(`server exited before listening:\n${text}`);
      if (Date.now() > deadline) throw new Error(`server did not listen in time:\n${text}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 200);
        onText = () => {
          clearTimeout(t);
          r();
        };
      });
      onText = undefined;
    }
  }
  const end = async (signal: Deno.Signal) => {
    if (!exited) {
      try {
        child.kill(signal);
      } catch {
        // already gone
      }
    }
    await status;
    await pumping.catch(() => {});
  };
  return {
    pid: child.pid,
    port,
    log: () => text,
    kill: () => end("SIGKILL"),
    stop: () => end("SIGTERM"),
  };
}
