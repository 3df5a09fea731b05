/** The built-in web client's page, settings script, files and headers; loopback as encrypted. */
import assert from "node:assert/strict";
import {
  ASSETS_PATH,
  createWebClient,
  pageCsp,
  webClientInit,
  webClientPage,
} from "../../lib/transport/web_client.ts";
import { loopbackSecured } from "../../lib/transport/http.ts";
import { withServer } from "../integration/_server.ts";

const BASE = "http://localhost:5280";

function get(path: string, method = "GET"): Request {
  return new Request(BASE + path, { method });
}

Deno.test("web client: the page loads converse.js as modules from our own paths", () => {
  const page = webClientPage({ domain: "example.org" });
  assert.match(page, /^<!DOCTYPE html>/);
  assert.ok(page.includes(`<script type="module" src="${ASSETS_PATH}/converse.min.js">`));
  assert.ok(page.includes(`<script type="module" src="${ASSETS_PATH}/init.js">`));
  assert.ok(page.includes("<title>Chat on example.org</title>"));
  // No inline script: the policy forbids them.
  assert.equal(page.match(/<script>/g), null);
});

Deno.test("web client: the domain is escaped in the page and the settings script", () => {
  const domain = `x"></title><script>alert(1)</script>`;
  const page = webClientPage({ domain });
  assert.ok(!page.includes("<script>alert"));
  assert.ok(page.includes("&lt;script&gt;"));
  const init = webClientInit({ domain });
  assert.ok(!init.includes("</script>"));
  const json = init.match(/var settings = (\{.*\});/)![1];
  assert.equal(JSON.parse(json).default_domain, domain);
});

Deno.test("web client: the settings point converse.js at this page's own WebSocket", () => {
  const init = webClientInit({ domain: "localhost" });
  const settings = JSON.parse(init.match(/var settings = (\{.*\});/)![1]);
  assert.equal(settings.assets_path, ASSETS_PATH);
  assert.equal(settings.view_mode, "fullscreen");
  assert.equal(settings.discover_connection_methods, false);
  assert.deepEqual(settings.blacklisted_plugins, ["converse-omemo"]);
  assert.ok(init.includes(`location.host + "/xmpp-websocket"`));
  assert.ok(init.includes(`"wss://" : "ws://"`));
});

Deno.test("web client: the policy allows our scripts only, and media from the upload origin", () => {
  const csp = pageCsp("http://localhost:5280");
  assert.ok(csp.includes("script-src 'self';"));
  assert.ok(csp.includes("img-src 'self' data: blob: http://localhost:5280;"));
  assert.ok(csp.includes("frame-ancestors 'none'"));
  assert.ok(!pageCsp(undefined).includes("http://"));
});

Deno.test("web client: / and /chat are the page, with safe headers", async () => {
  const handle = createWebClient({ domain: "localhost", uploadOrigin: () => BASE });
  for (const path of ["/", "/chat"]) {
    const res = (await handle(get(path)))!;
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "text/html; charset=utf-8");
    assert.equal(res.headers.get("x-frame-options"), "DENY");
    assert.equal(res.headers.get("x-content-type-options"), "nosniff");
    assert.equal(res.headers.get("content-security-policy"), pageCsp(BASE));
    assert.equal(await res.text(), webClientPage({ domain: "localhost" }));
  }
  const head = (await handle(get("/", "HEAD")))!;
  assert.equal(head.status, 200);
  assert.equal(await head.text(), "");
  const post = (await handle(get("/", "POST")))!;
  assert.equal(post.status, 405);
  assert.equal(post.headers.get("allow"), "GET, HEAD");
});

Deno.test("web client: converse.js's files are served from the npm package", async () => {
  const handle = createWebClient({ domain: "localhost" });
  const js = (await handle(get(`${ASSETS_PATH}/converse.min.js`)))!;
  assert.equal(js.status, 200);
  assert.equal(js.headers.get("content-type"), "text/javascript; charset=utf-8");
  const npm = (await import("converse.js/dist/converse.min.js", { with: { type: "text" } }))
    .default;
  assert.equal(await js.text(), npm);
  const css = (await handle(get(`${ASSETS_PATH}/converse.min.css`)))!;
  assert.equal(css.headers.get("content-type"), "text/css; charset=utf-8");
  assert.ok((await css.text()).length > 10000);
  const emoji = (await handle(get(`${ASSETS_PATH}/emoji.json`)))!;
  assert.equal(emoji.headers.get("content-type"), "application/json");
  assert.equal(typeof JSON.parse(await emoji.text()), "object");
  const logo = (await handle(get(`${ASSETS_PATH}/images/logo/conversejs-filled.svg`)))!;
  assert.match(await logo.text(), /<svg/);
  const init = (await handle(get(`${ASSETS_PATH}/init.js`)))!;
  assert.equal(await init.text(), webClientInit({ domain: "localhost" }));
  const local = (await handle(get(`${ASSETS_PATH}/local.css`)))!;
  assert.match(await local.text(), /--heading-font/);
});

Deno.test("web client: nothing outside the allow-list is served", () => {
  const handle = createWebClient({ domain: "localhost" });
  for (
    const path of [
      "/index.html",
      `${ASSETS_PATH}/`,
      `${ASSETS_PATH}/converse.js`,
      `${ASSETS_PATH}/converse.min.js.map`,
      `${ASSETS_PATH}/..%2fdeno.json`,
      `${ASSETS_PATH}/%2e%2e/%2e%2e/deno.json`,
      `${ASSETS_PATH}/__proto__`,
      `${ASSETS_PATH}/constructor`,
      `${ASSETS_PATH}/libomemo.esm.min.js`,
    ]
  ) {
    assert.equal(handle(get(path)), undefined, path);
  }
});

Deno.test("loopbackSecured: a loopback peer not behind a proxy counts as encrypted", () => {
  const on = { secureLoopback: true, trustedProxies: [] };
  const plain = (ip: string) => ({ ip, secure: false });
  const h = (init: Record<string, string> = {}) => new Headers(init);
  assert.deepEqual(loopbackSecured(plain("127.0.0.1"), h(), "127.0.0.1", on), {
    ip: "127.0.0.1",
    secure: true,
  });
  assert.deepEqual(loopbackSecured(plain("::1"), h(), "::1", on), { ip: "::1", secure: true });
  assert.deepEqual(loopbackSecured(plain("127.0.0.1"), h(), "::ffff:127.0.0.1", on), {
    ip: "127.0.0.1",
    secure: true,
  });
  // Off, another address, or a proxy speaking for someone: unchanged.
  const off = { secureLoopback: false, trustedProxies: [] };
  assert.deepEqual(loopbackSecured(plain("127.0.0.1"), h(), "127.0.0.1", off).secure, false);
  assert.equal(loopbackSecured(plain("192.0.2.1"), h(), "192.0.2.1", on).secure, false);
  for (const header of ["x-forwarded-for", "x-forwarded-proto", "forwarded", "x-real-ip"]) {
    const fwd = h({ [header]: "1" });
    assert.equal(loopbackSecured(plain("127.0.0.1"), fwd, "127.0.0.1", on).secure, false, header);
  }
  const proxied = { secureLoopback: true, trustedProxies: ["127.0.0.1"] };
  assert.equal(loopbackSecured(plain("127.0.0.1"), h(), "127.0.0.1", proxied).secure, false);
});

Deno.test("web client: served by a localhost server by default, not when turned off", async () => {
  await withServer([], async (server) => {
    const res = await fetch(`http://127.0.0.1:${server.httpPort}/`);
    assert.equal(res.status, 200);
    assert.match(await res.text(), /converse\.min\.js/);
  }, { http: { http_port: 0 } });
  await withServer([], async (server) => {
    const res = await fetch(`http://127.0.0.1:${server.httpPort}/`);
    assert.equal(res.status, 404);
    await res.body?.cancel();
    const js = await fetch(`http://127.0.0.1:${server.httpPort}${ASSETS_PATH}/converse.min.js`);
    assert.equal(js.status, 404);
    await js.body?.cancel();
  }, { http: { http_port: 0 }, web_client: { enabled: false } });
});
