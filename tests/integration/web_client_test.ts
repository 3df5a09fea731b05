/**
 * The built-in web client in a real browser: headless Chromium (Debian's `chromium`, installed
 * by .ci/run) driven by playwright-core opens the page, logs in as alice over WebSocket, sees a
 * message from bob (an `@xmpp/client` over TCP), replies, and uploads a file whose URL bob
 * fetches. The server runs with its defaults for `localhost`: `require_encryption` on, the
 * web client on and loopback counted as encrypted, so this is what a person gets from
 * `deno task start`.
 */
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { closeAll, connectPeer, subscribeMutually } from "./_peer.ts";
import { startTestServer } from "./_server.ts";
import { xml, type XmppClient } from "./_xmpp_client.ts";

/** Where Chromium is: `CHROMIUM_PATH`, else Debian's. */
function chromiumPath(): string | undefined {
  const candidates = [
    Deno.env.get("CHROMIUM_PATH"),
    "/usr/bin/chromium",
    "/usr/bin/chromium-browser",
  ];
  for (const c of candidates) {
    if (c === undefined || c === "") continue;
    try {
      if (Deno.statSync(c).isFile) return c;
    } catch {
      // not there
    }
  }
  return undefined;
}

const CHROMIUM = chromiumPath();
if (CHROMIUM === undefined) {
  console.warn(
    "web_client_test: skipped: no Chromium (install Debian's chromium or set CHROMIUM_PATH)",
  );
}

function bodyOf(st: XmppClient): string {
  return st.is("message") ? st.getChildText("body") ?? "" : "";
}

Deno.test({
  name: "web client: converse.js in Chromium logs in over WebSocket, chats and uploads a file",
  ignore: CHROMIUM === undefined,
  // playwright keeps its pipe to the browser process open until the process is reaped.
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const server = await startTestServer({ http: { http_port: 0 } });
    const tmp = await Deno.makeTempDir({ prefix: "web-client-test-" });
    let browser: Awaited<ReturnType<typeof chromium.launch>> | undefined;
    try {
      for (const u of ["alice", "bob"]) await server.accounts.create("localhost", u, "pw");
      // alice and bob are contacts, as people who chat usually are.
      const aliceTcp = await connectPeer(server, "alice");
      const bob = await connectPeer(server, "bob");
      await aliceTcp.xmpp.send(xml("presence"));
      await bob.xmpp.send(xml("presence"));
      await subscribeMutually(aliceTcp, bob);
      await closeAll(aliceTcp);

      try {
        browser = await chromium.launch({
          executablePath: CHROMIUM,
          // The slot URLs name "localhost", as a person's browser would see them.
          args: ["--no-sandbox", "--host-resolver-rules=MAP localhost 127.0.0.1"],
        });
      } catch (err) {
        console.warn(`web_client_test: skipped: Chromium cannot start: ${err}`);
        await closeAll(bob);
        return;
      }
      const page = await browser.newPage();
      const pageErrors: string[] = [];
      page.on("pageerror", (e) => pageErrors.push(e.message));
      const base = `http://localhost:${server.httpPort}`;

      await page.goto(`${base}/`);
      await page.fill("#converse-login-jid", "alice");
      await page.fill("#converse-login-password", "pw");
      await page.click("converse-login-form button[type=submit]");
      // Logged in: bob is listed among alice's contacts (alice herself is listed too).
      const bobInRoster = page.locator("converse-roster-contact", { hasText: "bob@localhost" });
      await bobInRoster.first().waitFor({ timeout: 15000 });

      const nonce = crypto.randomUUID().slice(0, 8);
      const hello = `Hello alice, bob here ${nonce}`;
      await bob.xmpp.send(
        xml("message", { to: "alice@localhost", type: "chat" }, xml("body", {}, hello)),
      );
      // The roster shows the unread message; its entry is drawn anew as it arrives, so the
      // click waits for that, and is repeated should it land on an entry being replaced.
      await bobInRoster.first().locator(".msgs-indicator").waitFor({ timeout: 10000 });
      for (let tries = 0;; tries++) {
        await bobInRoster.first().locator(".open-chat").click();
        try {
          await page.getByText(hello).waitFor({ timeout: 3000 });
          break;
        } catch (err) {
          if (tries === 2) throw err;
        }
      }

      const reply = `Hi bob, from the browser ${nonce}`;
      await page.fill("textarea.chat-textarea", reply);
      await page.press("textarea.chat-textarea", "Enter");
      const got = await bob.waitFor((st) => bodyOf(st) === reply, "the reply", 10000);
      assert.match(got.attrs.from, /^alice@localhost\//);

      // converse.js's paperclip: a slot from upload.localhost, the PUT, then the URL sent.
      const content = new TextEncoder().encode(`a file from the browser ${nonce}\n`);
      const file = `${tmp}/note-${nonce}.txt`;
      await Deno.writeFile(file, content);
      await page.setInputFiles("input.fileupload", file);
      const shared = await bob.waitFor(
        (st) => bodyOf(st).includes(`/note-${nonce}.txt`),
        "the upload's URL",
        15000,
      );
      const url = bodyOf(shared).trim();
      assert.ok(url.startsWith(`${base}/upload/`), url);
      const fetched = await fetch(url.replace("//localhost:", "//127.0.0.1:"));
      assert.equal(fetched.status, 200);
      assert.deepEqual(new Uint8Array(await fetched.arrayBuffer()), content);

      // What a person sees: both sides of the conversation and the link.
      await page.getByText(reply).waitFor({ timeout: 5000 });
      await page.locator(`a[href="${url}"]`).first().waitFor({ timeout: 10000 });
      const shot = `${tmp}/conversation.png`;
      await page.screenshot({ path: shot });
      const png = await Deno.readFile(shot);
      assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47]); // "PNG"
      const text = await page.locator("converse-chats").innerText();
      assert.ok(text.includes(hello) && text.includes(reply), text);
      assert.deepEqual(pageErrors, []);
      await closeAll(bob);
    } finally {
      await browser?.close().catch(() => {});
      await server.stop();
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
