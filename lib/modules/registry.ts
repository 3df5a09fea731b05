/**
 * The one place where the server's modules are registered. Disco and the server's caps are
 * derived from this list, and the reducers run its hooks in this order: a module plugs in
 * with its file and one line here. Order matters only where hooks meet, and is said there.
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
import { CLIENT_CAPS } from "./client_caps.ts";
import { PEP } from "./pep.ts";
import { PRIVATE } from "./private.ts";
import { PUSH } from "./push.ts";
import { REGISTER } from "./register.ts";
import { STREAM_MANAGEMENT } from "./stream_management.ts";
import { VCARD } from "./vcard.ts";
import { MAM, STANZA_ID } from "./mam/mod.ts";
import {
  type AccountIqHandler,
  type AccountModule,
  type Ctx,
  type DeliveryHooks,
  type IqAccess,
  type IqHandler,
  isEnabled,
  type Module,
} from "../core/types.ts";

/** Roster and archive are handled by their own reducers; registered for their disco features. */
const ROSTER: Module = { name: "roster", accountFeatures: [] };
/**
 * Offline storage (XEP-0160) is the account reducer's; announced as Prosody's mod_offline does
 * (`msgoffline`, the registry's feature for XEP-0160), so clients know messages to them are kept.
 */
const OFFLINE: Module = { name: "offline", hostFeatures: ["msgoffline"] };

/** The modules disco and caps are derived from, in the order their hooks run. */
export const BASE_MODULES: readonly Module[] = [
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
  REGISTER,
  PUSH,
  EXTERNAL_SERVICES,
  pepWithAvatars(PEP),
  // Blocking first among the stanza hooks: what it refuses or drops, no later hook sees.
  BLOCKING,
  // Forged archive ids go before carbons copy the message.
  STANZA_ID,
  CARBONS,
  // Stream features after authentication come in this order: <csi/>, <sm/>, then caps' <c/>.
  CSI,
  STREAM_MANAGEMENT,
  LAST_ACTIVITY,
  CLIENT_CAPS,
];

/** A registry: `base` with disco and caps derived from it (so they announce exactly `base`). */
export function withDerived(base: readonly Module[]): readonly Module[] {
  return [...base, discoModule(base), capsModule(base)];
}

/** Every module, disco and caps (both derived from the others) included. */
export const MODULES: readonly Module[] = withDerived(BASE_MODULES);

/** A module's handler of one iq payload, with the module (whose `enabled` the dispatcher asks). */
export interface IqEntry {
  readonly module: Module;
  readonly handler: IqHandler;
}

/** The modules that have hook `K`, typed so that the hook can be called. */
export type Hooked<K extends keyof Module> =
  & Module
  & { readonly [P in K]-?: NonNullable<Module[P]> };

/** A registry compiled for the session reducer: its tables and hook lists, in registry order. */
export interface CompiledRegistry {
  readonly modules: readonly Module[];
  /** Iqs to the domain, by `namespace name` (who may ask: anyone with a session). */
  readonly hostIq: ReadonlyMap<string, IqEntry>;
  /** Iqs to the user's own account, by `namespace name` (who may ask: its own sessions). */
  readonly selfIq: ReadonlyMap<string, IqEntry>;
  /** Iqs to an account's stored data, answered by the account's queue. */
  readonly accountIq: ReadonlyMap<string, AccountIqEntry>;
  readonly outbound: readonly Hooked<"outbound">[];
  readonly inbound: readonly Hooked<"inbound">[];
  readonly nonza: readonly Hooked<"nonza">[];
  readonly presenceRoutes: readonly Hooked<"presenceRoutes">[];
  readonly authedFeatures: readonly Hooked<"authedFeatures">[];
}

function hooked<K extends keyof Module>(modules: readonly Module[], key: K): Hooked<K>[] {
  return modules.filter((m): m is Hooked<K> => m[key] !== undefined);
}

function iqTable(
  modules: readonly Module[],
  pick: (m: Module) => Readonly<Record<string, IqHandler>> | undefined,
): ReadonlyMap<string, IqEntry> {
  // A later module's handler of the same payload replaces an earlier one's.
  const out = new Map<string, IqEntry>();
  for (const module of modules) {
    for (const [key, handler] of Object.entries(pick(module) ?? {})) {
      out.set(key, { module, handler });
    }
  }
  return out;
}

function accountIqTable(modules: readonly Module[]): ReadonlyMap<string, AccountIqEntry> {
  return new Map(
    modules.flatMap((m) =>
      m.account === undefined ? [] : Object.entries(m.account.iq).map(([key, handler]) =>
        [key, {
          module: m,
          store: m.account!.store,
          alsoStores: m.account!.alsoStores ?? [],
          handler,
          access: m.account!.access?.[key],
        }] as const
      )
    ),
  );
}

/** Compiles a registry (see {@link withDerived}) for the session reducer. */
function compileRegistry(modules: readonly Module[]): CompiledRegistry {
  return {
    modules,
    hostIq: iqTable(modules, (m) => m.hostIq),
    selfIq: iqTable(modules, (m) => m.selfIq),
    accountIq: accountIqTable(modules),
    outbound: hooked(modules, "outbound"),
    inbound: hooked(modules, "inbound"),
    nonza: hooked(modules, "nonza"),
    presenceRoutes: hooked(modules, "presenceRoutes"),
    authedFeatures: hooked(modules, "authedFeatures"),
  };
}

/** The server's registry, compiled. */
const SERVER_REGISTRY: CompiledRegistry = compileRegistry(MODULES);

/** Registries a context carries (`Ctx.modules`), compiled once each. */
const COMPILED = new WeakMap<readonly Module[], CompiledRegistry>();

/** The compiled registry the session reducer runs under `ctx`: the server's unless it names one. */
export function registryOf(ctx: Ctx): CompiledRegistry {
  const modules = ctx.modules;
  if (modules === undefined || modules === MODULES) return SERVER_REGISTRY;
  let hit = COMPILED.get(modules);
  if (hit === undefined) {
    hit = compileRegistry(modules);
    COMPILED.set(modules, hit);
  }
  return hit;
}

/** The entry for `key` in a table, unless its module is off under `ctx` (then: none). */
export function enabledEntry<E extends { readonly module: Module }>(
  table: ReadonlyMap<string, E>,
  key: string,
  ctx: Ctx,
): E | undefined {
  const entry = table.get(key);
  return entry !== undefined && isEnabled(entry.module, ctx) ? entry : undefined;
}

/** An account handler with the store it works on. */
export interface AccountIqEntry {
  /** The module it belongs to: its iqs are answered only while it is on. */
  readonly module: Module;
  readonly store: string;
  /** The other stores the handler reads and may update (`AccountModule.alsoStores`). */
  readonly alsoStores: readonly string[];
  readonly handler: AccountIqHandler;
  /** Who may ask (`AccountModule.access`); absent: anyone, the handler decides. */
  readonly access?: IqAccess;
}

/** Handlers of iqs to an account's stored data, by `namespace name`. */
export const ACCOUNT_IQ: ReadonlyMap<string, AccountIqEntry> = SERVER_REGISTRY.accountIq;

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

/**
 * The modules' parts in delivering messages to local users, in registry order. Not switched
 * by `enabled`: the router and the account run them without a session context, so a module
 * that can be off keeps its delivery part a no-op while off (none has one today).
 */
export const DELIVERY: readonly DeliveryHooks[] = MODULES.flatMap((m) =>
  m.delivery === undefined ? [] : [m.delivery]
);

/** Modules with a presence hook (XEP-0153, XEP-0115, XEP-0012), in registry order. */
export const PRESENCE_MODULES: readonly Module[] = MODULES.filter((m) => m.presence !== undefined);

/** Account modules that record something when one of the user's resources goes (XEP-0012). */
export const ACCOUNT_LOGOUT: readonly AccountModule[] = MODULES.flatMap((m) =>
  m.account?.onLogout === undefined ? [] : [m.account]
);

/** Account modules told of messages waiting for an absent user (XEP-0357), in registry order. */
export const ACCOUNT_WAITING: readonly AccountModule[] = MODULES.flatMap((m) =>
  m.account?.onWaiting === undefined ? [] : [m.account]
);

/** Account modules that answer a resource's caps (XEP-0163 last items), in registry order. */
export const ACCOUNT_CAPS: readonly AccountModule[] = MODULES.flatMap((m) =>
  m.account?.onCaps === undefined ? [] : [m.account]
);
