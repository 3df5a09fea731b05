/**
 * Child process for log_keyval_test.ts.
 *
 * `logouts <dataDir> <users> <workers> <first>`: the sole writer of store `lastlog` on host `h`, with
 * rewrites every few lines; `workers` loops set `u<k>` (k random below `users`) to `{ at: n }`
 * with `n` rising from `first`, forever, and print `u<k> <n>` only after the set resolved (durable). The
 * parent kills this process at a random moment.
 *
 * `delete <dataDir> <user>`: deletes the user's value as the CLI's `deluser` does (another
 * writer, not the sole one) and prints `deleted`.
 * @module
 */
import { openLogKeyvalStore } from "../../lib/storage/log_keyval.ts";

const encoder = new TextEncoder();

async function say(line: string): Promise<void> {
  // Unbuffered: what the parent reads before the kill is exactly what was acknowledged.
  const bytes = encoder.encode(`${line}\n`);
  for (let done = 0; done < bytes.length;) done += await Deno.stdout.write(bytes.subarray(done));
}

async function logouts(
  dataDir: string,
  users: number,
  workers: number,
  first: number,
): Promise<void> {
  const store = openLogKeyvalStore<{ at: number }>(dataDir, "lastlog", {
    soleWriter: true,
    compactMinLines: 16,
  });
  let next = first;
  await Promise.all(Array.from({ length: workers }, async () => {
    for (;;) {
      const user = `u${Math.floor(Math.random() * users)}`;
      const at = next++;
      await store.set("h", user, { at });
      await say(`${user} ${at}`);
    }
  }));
}

const [mode, dataDir, a, b, c] = Deno.args;
if (mode === "logouts") await logouts(dataDir, Number(a), Number(b), Number(c));
else if (mode === "delete") {
  await openLogKeyvalStore(dataDir, "lastlog").delete("h", a);
  await say("deleted");
} else throw new Error(`unknown mode ${mode}`);
