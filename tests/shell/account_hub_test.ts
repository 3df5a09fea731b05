import { DEFAULT_LIMITS } from "../../lib/limits.ts";
import assert from "node:assert/strict";
import { createAccountHub } from "../../lib/shell/account_hub.ts";
import { createRegistry } from "../../lib/shell/registry.ts";
import { getLogger } from "../../lib/log.ts";
import { type ArchivedMessage, newArchiveId } from "../../lib/mam.ts";
import { openAccountStore } from "../../lib/storage/accounts.ts";
import { openKeyvalStore } from "../../lib/storage/datamanager.ts";
import { openListStore } from "../../lib/storage/list_store.ts";
import type { ListStore } from "../../lib/storage/mod.ts";
import { elem, stanza } from "../../lib/xml/element.ts";

const NOW = 1_700_000_000_000;

Deno.test("account hub: the archive's newest stamp is read before the first archived message, not at load", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const accounts = openAccountStore(dir);
    await accounts.create("h", "juliet", "secret");
    const archive = openListStore<ArchivedMessage>(dir, "archive", { ffi: "off" });
    // An item stamped later than the clock: new stamps must not go below it.
    const future = NOW + 60_000;
    const old = stanza("message", { to: "romeo@h", type: "chat" }, [elem("body", {}, ["hi"])]);
    await archive.append("h", "juliet", [
      { id: newArchiveId(future, "x"), ts: future, peer: "romeo@h", stanza: old },
    ]);
    let reads = 0;
    const counted: ListStore<ArchivedMessage> = {
      ...archive,
      count: (host, user) => (reads++, archive.count(host, user)),
    };
    const registry = createRegistry();
    const hub = createAccountHub({
      accounts,
      rosters: openKeyvalStore(dir, "roster", { soleWriter: true }),
      offline: openKeyvalStore(dir, "offline", { soleWriter: true }),
      archive: counted,
      prefs: openKeyvalStore(dir, "archive_prefs", { soleWriter: true }),
      openStore: (name) => openKeyvalStore(dir, name, { soleWriter: true }),
      registry,
      ctx: {
        now: () => NOW,
        newId: () => "id",
        resourcesOf: registry.resourcesOf,
        limits: { ...DEFAULT_LIMITS, offlineMessages: 100 },
        archive: { enabled: true, policy: "always" },
        random: () => "r",
      },
      route: () => {},
      log: getLogger("test"),
    });
    const rosterGet = stanza("iq", { type: "get", id: "1", from: "juliet@h/r" }, [
      elem("query", { xmlns: "jabber:iq:roster" }),
    ]);
    hub.submit("juliet@h", { kind: "roster-get", iq: rosterGet });
    await hub.idle();
    assert.equal(reads, 0);

    const sent = stanza("message", { from: "juliet@h/r", to: "romeo@h", type: "chat" }, [
      elem("body", {}, ["again"]),
    ]);
    hub.submit("juliet@h", { kind: "outgoing-message", stanza: sent });
    hub.submit("juliet@h", { kind: "outgoing-message", stanza: sent });
    await hub.idle();
    assert.equal(reads, 1);
    const items = await archive.range("h", "juliet", 0, 10);
    assert.deepEqual(items.map((i) => i.ts), [future, future, future]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
