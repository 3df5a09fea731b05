import assert from "node:assert/strict";
import { openMallocTrim } from "../../lib/shell/malloc_trim.ts";

const glibc = Deno.build.os === "linux" &&
  (() => {
    try {
      Deno.statSync("/lib/x86_64-linux-gnu/libc.so.6");
      return true;
    } catch {
      return false;
    }
  })();

Deno.test({
  name: "malloc_trim: callable on Linux with glibc when FFI is granted",
  ignore: !glibc,
  fn() {
    const trim = openMallocTrim();
    assert.ok(trim !== undefined, "tests run with --allow-all: FFI is granted");
    trim();
    // A second call finds nothing more to give back and must not fail either.
    trim();
  },
});

Deno.test("malloc_trim: skipped silently, without a prompt, where FFI is not granted", async () => {
  const dir = await Deno.makeTempDir({ prefix: "malloc_trim_test_" });
  try {
    const script = `${dir}/probe.ts`;
    const module = new URL("../../lib/shell/malloc_trim.ts", import.meta.url).href;
    await Deno.writeTextFile(
      script,
      `import { openMallocTrim } from ${JSON.stringify(module)};\n` +
        `console.log(typeof openMallocTrim());\n`,
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-prompt", "--no-config", "--allow-read", script],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    assert.equal(new TextDecoder().decode(out.stdout).trim(), "undefined");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
