/** XEP-0363 HTTP upload end to end: a slot over XMPP, the bytes over real HTTP. */
import assert from "node:assert/strict";
import { closeAll, connectPeer, errorOf } from "./_peer.ts";
import { withServer } from "./_server.ts";
import { xml, type XmppClient } from "./_xmpp_client.ts";
import { NS_DISCO_INFO, NS_DISCO_ITEMS } from "../../lib/xmpp/namespaces.ts";
import { parseRange, startUploadService } from "../../lib/transport/upload_http.ts";
import { elem, type Element, stanza } from "../../lib/xml/element.ts";

const SERVICE = "upload.localhost";
const NS_UPLOAD = "urn:xmpp:http:upload:0";
const SETTINGS = {
  http: { http_port: 0, https_port: false },
  upload: { max_file_size: 1000, allowed_types: ["text/plain", "image/*"], quota_per_user: 1500 },
};

interface Granted {
  readonly put: string;
  readonly get: string;
  readonly auth: string;
}

async function requestSlot(
  xmpp: XmppClient,
  filename: string,
  size: number,
  contentType: string,
): Promise<Granted> {
  const res = await xmpp.iqCaller.request(
    xml(
      "iq",
      { type: "get", to: SERVICE },
      xml("request", {
        xmlns: NS_UPLOAD,
        filename,
        size: String(size),
        "content-type": contentType,
      }),
    ),
  );
  const slot = res.getChild("slot", NS_UPLOAD);
  const put = slot.getChild("put");
  // The slot names "localhost", which may resolve to ::1: the server listens on 127.0.0.1.
  const local = (url: string) => url.replace("//localhost:", "//127.0.0.1:");
  return {
    put: local(put.attrs.url),
    get: local(slot.getChild("get").attrs.url),
    auth: put.getChild("header").text(),
  };
}

async function putFile(
  slot: Granted,
  body: Uint8Array<ArrayBuffer>,
  headers: Record<string, string> = {},
): Promise<[number, string]> {
  const res = await fetch(slot.put, {
    method: "PUT",
    body,
    headers: { authorization: slot.auth, "content-type": "text/plain", ...headers },
  });
  return [res.status, await res.text()];
}

Deno.test("upload: slot, PUT, GET with safe headers, ranges, and every refusal", async () => {
  await withServer(["romeo"], async (server) => {
    assert.ok(server.httpPort !== undefined);
    const romeo = await connectPeer(server, "romeo", "r");
    try {
      // The host lists the service; the service says what it is and its limit.
      const items = await romeo.xmpp.iqCaller.request(
        xml("iq", { type: "get", to: "localhost" }, xml("query", { xmlns: NS_DISCO_ITEMS })),
      );
      const jids = items.getChild("query").getChildren("item").map((i: XmppClient) => i.attrs.jid);
      assert.ok(jids.includes(SERVICE), `disco#items: ${jids}`);
      const info = await romeo.xmpp.iqCaller.request(
        xml("iq", { type: "get", to: SERVICE }, xml("query", { xmlns: NS_DISCO_INFO })),
      );
      const q = info.getChild("query");
      assert.equal(q.getChild("identity").attrs.category, "store");
      const fields = q.getChild("x").getChildren("field");
      const max = fields.find((f: XmppClient) => f.attrs.var === "max-file-size");
      assert.equal(max.getChildText("value"), "1000");

      const body = new TextEncoder().encode("hello, upload world\n");
      const slot = await requestSlot(romeo.xmpp, "hello world.txt", body.length, "text/plain");
      assert.match(
        slot.put,
        /^http:\/\/127\.0\.0\.1:\d+\/upload\/[A-Za-z0-9_-]+\/hello%20world\.txt$/,
      );
      assert.equal(slot.get, slot.put);
      assert.match(slot.auth, /^Bearer /);

      // Before the PUT there is nothing to get.
      assert.equal((await fetch(slot.get).then(async (r) => [r.status, await r.text()]))[0], 404);
      // Refusals that leave the slot usable: no or a wrong token, wrong size, wrong type.
      assert.deepEqual((await putFile(slot, body, { authorization: "" }))[0], 403);
      assert.deepEqual((await putFile(slot, body, { authorization: "Bearer nope" }))[0], 403);
      const [tooBig, tooBigText] = await putFile(slot, new Uint8Array(body.length + 1));
      assert.equal(tooBig, 413);
      assert.match(tooBigText, /20 bytes/);
      assert.equal((await putFile(slot, body.subarray(1)))[0], 400);
      const [badType, badTypeText] = await putFile(slot, body, { "content-type": "text/html" });
      assert.equal(badType, 415);
      assert.match(badTypeText, /text\/plain/);

      assert.deepEqual(await putFile(slot, body), [201, "Created\n"]);
      // One PUT per slot.
      assert.equal((await putFile(slot, body))[0], 409);

      const got = await fetch(slot.get);
      assert.equal(got.status, 200);
      assert.deepEqual(new Uint8Array(await got.arrayBuffer()), body);
      assert.equal(got.headers.get("content-type"), "text/plain");
      assert.equal(got.headers.get("content-length"), String(body.length));
      assert.equal(got.headers.get("x-content-type-options"), "nosniff");
      assert.match(got.headers.get("content-disposition")!, /^attachment;/);
      assert.match(got.headers.get("content-security-policy")!, /^default-src 'none'/);

      const head = await fetch(slot.get, { method: "HEAD" });
      assert.equal(head.status, 200);
      assert.equal(head.headers.get("content-length"), String(body.length));
      assert.equal(await head.text(), "");

      const part = await fetch(slot.get, { headers: { range: "bytes=7-12" } });
      assert.equal(part.status, 206);
      assert.equal(part.headers.get("content-range"), `bytes 7-12/${body.length}`);
      assert.equal(await part.text(), "upload");
      const tail = await fetch(slot.get, { headers: { range: "bytes=-6" } });
      assert.equal(tail.status, 206);
      assert.equal(await tail.text(), "world\n");
      const outside = await fetch(slot.get, { headers: { range: "bytes=100-" } });
      assert.equal(outside.status, 416);
      assert.equal(outside.headers.get("content-range"), `bytes */${body.length}`);
      await outside.body?.cancel();

      // Another name on the same slot, an unknown slot, path tricks: not found.
      for (const path of ["other.txt", "..%2F..%2Fupload.key"]) {
        const r = await fetch(slot.get.replace(/[^/]+$/, path));
        assert.equal(r.status, 404, path);
        await r.body?.cancel();
      }
      const unknown = await fetch(slot.get.replace(/upload\/[^/]+\//, "upload/AAAAAAAAAAAA/"));
      assert.equal(unknown.status, 404);
      await unknown.body?.cancel();

      // Images are shown inline, still without sniffing.
      const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47]);
      const image = await requestSlot(romeo.xmpp, "p.png", png.length, "image/png");
      assert.equal((await putFile(image, png, { "content-type": "image/png" }))[0], 201);
      const shown = await fetch(image.get);
      assert.match(shown.headers.get("content-disposition")!, /^inline;/);
      assert.equal(shown.headers.get("content-type"), "image/png");
      await shown.body?.cancel();

      // XMPP refusals: too large (with the limit), a type not allowed, the quota.
      const tooLarge = await errorOf(requestSlot(romeo.xmpp, "big.txt", 1001, "text/plain"));
      assert.equal(tooLarge, "not-acceptable");
      const big = await romeo.xmpp.iqCaller.request(
        xml(
          "iq",
          { type: "get", to: SERVICE },
          xml("request", {
            xmlns: NS_UPLOAD,
            filename: "b",
            size: "5000",
            "content-type": "text/plain",
          }),
        ),
      ).catch((e: { element?: XmppClient }) => e.element);
      assert.equal(
        (big?.name === "error" ? big : big?.getChild("error"))
          ?.getChild("file-too-large", NS_UPLOAD)?.getChildText(
            "max-file-size",
          ),
        "1000",
      );
      assert.equal(
        await errorOf(requestSlot(romeo.xmpp, "x.exe", 10, "application/x-executable")),
        "not-acceptable",
      );
      // 24 bytes stored, 1000 reserved by this open slot: 1000 more is over 1500.
      await requestSlot(romeo.xmpp, "a.txt", 1000, "text/plain");
      assert.equal(
        await errorOf(requestSlot(romeo.xmpp, "b.txt", 1000, "text/plain")),
        "resource-constraint",
      );
    } finally {
      await closeAll(romeo);
    }
  }, SETTINGS);
});

Deno.test("upload: stored files survive a restart, count against quotas, and expire", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "upload-" });
  let now = 1_000_000_000;
  const routed: Element[] = [];
  const start = () =>
    startUploadService({
      domain: SERVICE,
      maxFileSize: 100,
      allowedTypes: [],
      quotaPerUser: 150,
      quotaTotal: 1000,
      expiresAfter: 3600,
      dataDir,
      key: new Uint8Array(32).fill(1),
      isLocal: () => true,
      baseUrl: () => "http://h",
      newId: () => crypto.randomUUID().replaceAll("-", ""),
      now: () => now,
      route: (st) => void routed.push(st),
    });
  const ask = (size: number) =>
    stanza("iq", { type: "get", id: "q", from: "r@localhost/x", to: SERVICE }, [
      elem("request", { xmlns: NS_UPLOAD, filename: "f.bin", size: String(size) }),
    ]);
  const lastSlot = () => {
    const st = routed.at(-1)!;
    assert.equal(st.attrs.type, "result");
    const slot = st.children[0] as Element;
    const put = slot.children[1] as Element;
    return { url: put.attrs.url, auth: put.children[0] as Element };
  };
  try {
    let service = await start();
    service.submit(ask(100));
    const { url, auth } = lastSlot();
    const res = await service.handle(
      new Request(url, {
        method: "PUT",
        body: new Uint8Array(100),
        headers: { authorization: String(auth.children[0]), "content-length": "100" },
      }),
    );
    assert.equal(res.status, 201);
    await service.stop();

    // After a restart the file is still served and still counts: 100 + 100 > 150.
    service = await start();
    assert.equal((await service.handle(new Request(url))).status, 200);
    service.submit(ask(100));
    assert.equal(routed.at(-1)!.attrs.type, "error");
    service.submit(ask(50));
    assert.equal(routed.at(-1)!.attrs.type, "result");

    // Past expires_after the sweep deletes it, and the quota is free again.
    now += 3601_000;
    assert.equal(await service.sweep(), 1);
    assert.equal((await service.handle(new Request(url))).status, 404);
    service.submit(ask(100));
    assert.equal(routed.at(-1)!.attrs.type, "result");
    await service.stop();
    const left = [...Deno.readDirSync(`${dataDir}/${SERVICE}/upload`)];
    assert.deepEqual(left, []);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("upload: an expired slot is refused; ranges are parsed as RFC 9110 says", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "upload-" });
  let now = 5_000_000;
  const routed: Element[] = [];
  try {
    const service = await startUploadService({
      domain: SERVICE,
      maxFileSize: 100,
      allowedTypes: [],
      quotaPerUser: 1000,
      quotaTotal: 1000,
      expiresAfter: 3600,
      dataDir,
      key: new Uint8Array(32).fill(2),
      isLocal: () => true,
      baseUrl: () => "http://h",
      newId: () => "expiredslot01",
      now: () => now,
      route: (st) => void routed.push(st),
    });
    service.submit(
      stanza("iq", { type: "get", id: "q", from: "r@localhost/x", to: SERVICE }, [
        elem("request", { xmlns: NS_UPLOAD, filename: "f", size: "3" }),
      ]),
    );
    const put = (routed[0].children[0] as Element).children[1] as Element;
    now += 5 * 60_000 + 1;
    const res = await service.handle(
      new Request(put.attrs.url, {
        method: "PUT",
        body: "abc",
        headers: { authorization: String((put.children[0] as Element).children[0]) },
      }),
    );
    assert.equal(res.status, 403);
    assert.match(await res.text(), /expired/);
    // Unknown methods and malformed paths.
    const del = await service.handle(new Request(put.attrs.url, { method: "DELETE" }));
    assert.equal(del.status, 405);
    await del.body?.cancel();
    const deep = await service.handle(new Request("http://h/upload/expiredslot01/a/b"));
    assert.equal(deep.status, 404);
    await deep.body?.cancel();
    await service.stop();
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
  assert.deepEqual(parseRange(null, 10), "none");
  assert.deepEqual(parseRange("bytes=0-0", 10), [0, 0]);
  assert.deepEqual(parseRange("bytes=5-", 10), [5, 9]);
  assert.deepEqual(parseRange("bytes=5-100", 10), [5, 9]);
  assert.deepEqual(parseRange("bytes=-3", 10), [7, 9]);
  assert.deepEqual(parseRange("bytes=-30", 10), [0, 9]);
  assert.deepEqual(parseRange("bytes=10-", 10), "unsatisfiable");
  assert.deepEqual(parseRange("bytes=4-2", 10), "unsatisfiable");
  assert.deepEqual(parseRange("bytes=0-1,3-4", 10), "none");
  assert.deepEqual(parseRange("items=0-1", 10), "none");
});
