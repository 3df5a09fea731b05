/**
 * The one place where the server's modules are registered. Disco is derived from this list.
 * @module
 */
import { discoModule } from "./disco.ts";
import { CONTACT_INFO, PING, SESSION, TIME, UPTIME, VERSION } from "./info.ts";
import type { AccountIqHandler, IqHandler, Module } from "./types.ts";

/** Roster and archive are handled by their own reducers; registered for their disco features. */
const ROSTER: Module = { name: "roster", accountFeatures: [] };
const MAM: Module = {
  name: "mam",
  accountFeatures: ["urn:xmpp:mam:2", "urn:xmpp:mam:2#extended"],
};

const BASE: readonly Module[] = [PING, SESSION, VERSION, TIME, UPTIME, CONTACT_INFO, ROSTER, MAM];

/** Every module, disco included. */
export const MODULES: readonly Module[] = [...BASE, discoModule(BASE)];

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
  readonly handler: AccountIqHandler;
}

/** Handlers of iqs to an account's stored data, by `namespace name`. */
export const ACCOUNT_IQ: ReadonlyMap<string, AccountIqEntry> = new Map(
  MODULES.flatMap((m) =>
    m.account === undefined
      ? []
      : Object.entries(m.account.iq).map(([key, handler]) =>
        [key, { store: m.account!.store, handler }] as const
      )
  ),
);

/** The key of an iq's payload in the registries. */
export function payloadKey(payload: { readonly xmlns: string; readonly name: string }): string {
  return `${payload.xmlns} ${payload.name}`;
}
