/**
 * The IO of in-band registration (XEP-0077): creating accounts (throttled per address, refused
 * for names that are taken or tombstoned) and changing passwords. Passwords go to the account
 * store and nowhere else: never into a log line.
 * @module
 */
import type { Logger } from "../log.ts";
import type { Tombstone } from "../core/tombstones.ts";
import type { RegistrationOutcome } from "../core/types.ts";
import { UnstorableNameError } from "../storage/file/datamanager.ts";
import { AccountExistsError, AccountMissingError, type AccountStore } from "../storage/accounts.ts";
import type { KeyvalStore } from "../storage/mod.ts";
import { hasTombstone } from "../storage/tombstones.ts";
import { createAuthThrottle } from "./throttle.ts";

/** The registration operations a connection needs. */
export interface Registration {
  /** Creates an account for a client at `ip`. */
  register(
    ip: string,
    host: string,
    username: string,
    password: string,
  ): Promise<RegistrationOutcome>;
  /** Replaces the password of an existing account. */
  changePassword(host: string, username: string, password: string): Promise<RegistrationOutcome>;
}

/** What registration needs. */
export interface RegistrationDeps {
  readonly accounts: AccountStore;
  readonly tombstones: KeyvalStore<Tombstone>;
  /** Account creations allowed per address and minute. */
  readonly perMinute: number;
  /** Seconds a tombstone keeps its name taken (Infinity: forever). */
  readonly tombstoneExpiry: number;
  readonly now: () => number;
  readonly log: Logger;
}

/** Registration over the given stores. */
export function createRegistration(deps: RegistrationDeps): Registration {
  // The login throttle's sliding window, counting every creation attempt as a "failure", so
  // that one address cannot create (or probe for) names faster than the limit.
  const attempts = createAuthThrottle({ maxFailures: deps.perMinute, windowMs: 60_000 });
  return {
    async register(ip, host, username, password) {
      const now = deps.now();
      if (attempts.isThrottled(ip, undefined, now)) return "throttled";
      attempts.record(ip, undefined, false, now);
      try {
        const opts = { now, expiry: deps.tombstoneExpiry };
        if (await hasTombstone(deps.tombstones, host, username, opts)) return "conflict";
        await deps.accounts.create(host, username, password);
      } catch (err) {
        if (err instanceof AccountExistsError) return "conflict";
        if (err instanceof UnstorableNameError) return "not-acceptable";
        deps.log.error("Registering {user}@{host} failed: {err}", {
          user: username,
          host,
          err: String(err),
        });
        return "failed";
      }
      deps.log.info("{ip} registered {user}@{host}", { ip, user: username, host });
      return "ok";
    },
    async changePassword(host, username, password) {
      try {
        await deps.accounts.setPassword(host, username, password);
      } catch (err) {
        if (!(err instanceof AccountMissingError)) {
          deps.log.error("Changing the password of {user}@{host} failed: {err}", {
            user: username,
            host,
            err: String(err),
          });
        }
        return "failed";
      }
      deps.log.info("{user}@{host} changed their password", { user: username, host });
      return "ok";
    },
  };
}
