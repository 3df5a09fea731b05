/** The file store against the storage contract. */
import { openArchiveStore } from "../../../lib/storage/file/archive.ts";
import { openKeyvalStore } from "../../../lib/storage/file/datamanager.ts";
import { openListStore } from "../../../lib/storage/file/list_store.ts";
import { openOfflineStore } from "../../../lib/storage/offline.ts";
import { openSmStash } from "../../../lib/storage/sm_stash.ts";
import {
  archiveContract,
  keyvalContract,
  listContract,
  offlineContract,
  type Open,
  smStashContract,
} from "./contract.ts";

/** A store opened on a fresh temporary data directory, removed when done. */
function inTempDir<S>(open: (dataDir: string) => S): Open<S> {
  return async () => {
    const dir = await Deno.makeTempDir({ prefix: "xmpp-contract-" });
    return { store: open(dir), close: () => Deno.remove(dir, { recursive: true }) };
  };
}

keyvalContract("file", inTempDir((dir) => openKeyvalStore<unknown>(dir, "kv")));
keyvalContract(
  "file (sole writer)",
  inTempDir((dir) => openKeyvalStore<unknown>(dir, "kv", { soleWriter: true })),
);
listContract("file", inTempDir((dir) => openListStore<unknown>(dir, "list")));
listContract(
  "file (copying)",
  inTempDir((dir) => openListStore<unknown>(dir, "list", { ffi: "off" })),
);
archiveContract("file", inTempDir((dir) => openArchiveStore(dir)));
offlineContract("file", inTempDir((dir) => openOfflineStore(dir, { soleWriter: true })));
smStashContract(
  "file",
  inTempDir((dir) => ({ stash: openSmStash(dir), offline: openOfflineStore(dir) })),
);
