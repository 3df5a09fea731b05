/**
 * A real older client: Debian 12's slixmpp 1.8.3 (`python3-slixmpp`, installed by .ci/run).
 * Against SCRAM-*-PLUS it offers `p=tls-unique` (no such binding under TLS 1.3), then the `y`
 * flag, which a server offering -PLUS must refuse, then falls back to PLAIN. Those refusals never
 * reached a password check, so they must not count towards the failed-login throttle: ten
 * logins in a row all succeed.
 * @module
 */
import assert from "node:assert/strict";
import { withServer } from "./_server.ts";

const PYTHON = "/usr/bin/python3";
const SCRIPT = new URL("./fixtures/slixmpp_login.py", import.meta.url).pathname;

function slixmppInstalled(): boolean {
  try {
    return new Deno.Command(PYTHON, { args: ["-c", "import slixmpp"], stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

Deno.test({
  name: "slixmpp 1.8.3 (Debian 12) logs in ten times in a row despite its refused mechanisms",
  // CI installs the package; elsewhere the test runs where it is installed.
  ignore: Deno.env.get("CI") === undefined && !slixmppInstalled(),
  async fn() {
    await withServer(["alice"], async (server) => {
      const out = await new Deno.Command(PYTHON, {
        args: [SCRIPT, String(server.c2sPort), "alice@localhost", "pw", "10"],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
      assert.equal(lines.length, 10, new TextDecoder().decode(out.stderr).slice(-2000));
      for (const line of lines) assert.match(line, /^ok /);
      // It did meet refusals each time (the mechanisms it cannot use), and got through anyway.
      assert.ok(lines.every((l) => /after [1-9]\d* refusals/.test(l)), lines.join("\n"));
      assert.equal(out.code, 0);
    });
  },
});
