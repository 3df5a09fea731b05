/**
 * The one place where the server's modules are registered. Disco is derived from this list.
 * @module
 */
import { pepWithAvatars, vcardWithAvatars } from "./avatar.ts";
import { BLOCKING } from "./blocking.ts";
import { capsModule } from "./caps.ts";
import { CARBONS } from "./carbons.ts";
import { CSI } from "./csi.ts";
import { discoModule } from "./disco.ts";
import { EXTERNAL_SERVICES } from "./external_services.ts";
import { CONTACT_INFO, PING, SESSION, TIME, UPTIME, VERSION } from "./info.ts";
import { LAST_ACTIVITY } from "./last_activity.ts";
import { PEP } from "./pep.ts";
import { PRIVATE } from "./private.ts";
import { REGISTER } from "./register.ts";
import { STREAM_MANAGEMENT } from "./stream_management.ts";
import { VCARD } from "./vcard.ts";
import { NS_MAM, NS_MAM_EXTENDED } from "../xmpp/namespaces.ts";
import type {
  AccountIqHandler,
  AccountModule,
  DeliveryHooks,
  IqHandler,
  Module,
} from "../core/types.ts";

/** Roster and archive are handled by their own reducers; registered for their disco features. */
const ROSTER: Module = { name: "roster", accountFeatures: [] };
/**
 * Offline storage (XEP-0160) is the account reducer's; announced as Prosody's mod_offline does
 * (`msgoffline`, the registry's feature for XEP-0160), so clients know messages to them are kept.
 */
const OFFLINE: Module = { name: "offline", hostFeatures: ["msgoffline"] };
const MAM: Module = {
  name: "mam",
  accountFeatures: [NS_MAM, NS_MAM_EXTENDED],
};

const BASE: readonly Module[] = [
  PING,
  SESSION,
  VERSION,
  TIME,
  UPTIME,
  CONTACT_INFO,
  ROSTER,
  OFFLINE,
  MAM,
  // XEP-0398: the vCard's photo and the PEP avatar follow each other.
  vcardWithAvatars(VCARD),
  PRIVATE,
  CSI,
  STREAM_MANAGEMENT,
  REGISTER,
  EXTERNAL_SERVICES,
  pepWithAvatars(PEP),
  CARBONS,
  BLOCKING,
  LAST_ACTIVITY,
];

/** Every module, disco and caps (both derived from the others) included. */
export const MODULES: readonly Module[] = [...BASE, discoModule(BASE), capsModule(BASE)];

function merged(pick: (m: Module) => Readonly<Record<string, IqHandler>> | undefined) {
  const out: Record<string, IqHandler> = {};
  for (const m of MODULES) Object.assign(out, pick(m) ?? {});
  return out;
}

/** Handlers of iqs to the domain, by `namespace name`. */
export const HOST_IQ: Readonly<Record<string, IqHandler>> = merged((m) => m.hostIq);
/** Handlers of iqs to the user's own account, by `namespace name`. */
export const SELF_IQ: Readonly<Record<string, IqHandler>> = merged((m) => m.selfIq);

/** An account handler with the store it works on. */
export interface AccountIqEntry {
  readonly store: string;
  /** The other stores the handler reads and may update (`AccountModule.alsoStores`). */
  readonly alsoStores: readonly string[];
  readonly handler: AccountIqHandler;
}

/** Handlers of iqs to an account's stored data, by `namespace name`. */
export const ACCOUNT_IQ: ReadonlyMap<string, AccountIqEntry> = new Map(
  MODULES.flatMap((m) =>
    m.account === undefined ? [] : Object.entries(m.account.iq).map(([key, handler]) =>
      [key, {
        store: m.account!.store,
        alsoStores: m.account!.alsoStores ?? [],
        handler,
      }] as const
    )
  ),
);

/** Account modules that tell a newly bound session something from their stored data. */
export const ACCOUNT_BOUND: readonly AccountModule[] = MODULES.flatMap((m) =>
  m.account?.onBound === undefined ? [] : [m.account]
);

/** Account modules that screen what others send the user (XEP-0191); their store is kept loaded. */
export const ACCOUNT_SCREEN: readonly AccountModule[] = MODULES.flatMap((m) =>
  m.account?.screen === undefined ? [] : [m.account]
);

/** The key of an iq's payload in the registries. */
export function payloadKey(payload: { readonly xmlns: string; readonly name: string }): string {
  return `${payload.xmlns} ${payload.name}`;
}

/** The keyval stores modules keep per account, so that deleting an account deletes them too. */
export const MODULE_STORES: readonly string[] = [
  ...new Set(MODULES.flatMap((m) => (m.account === undefined ? [] : [m.account.store]))),
];

/** The modules' parts in delivering messages to local users, in registry order. */
export const DELIVERY: readonly DeliveryHooks[] = MODULES.flatMap((m) =>
  m.delivery === undefined ? [] : [m.delivery]
);
