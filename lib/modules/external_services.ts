/**
 * External service discovery (XEP-0215): the STUN/TURN (and other) services of the
 * configuration, listed on the server's domain with `services` and `credentials` queries.
 * TURN services with a shared secret get short-lived REST credentials
 * (draft-uberti-behave-turn-rest-00, XEP-0215 §3.2): the username is the expiry time in Unix
 * seconds (with `:user` when a username is configured) and the password is
 * base64(HMAC-SHA1(secret, username)).
 * @module
 */
import { createHmac } from "node:crypto";
import type { Session } from "../core/session.ts";
import { childElements, elem, type Element } from "../xml/element.ts";
import { errorReply, iqResult } from "../xmpp/errors.ts";
import type { Ctx, ExternalService, Module, Step } from "../core/types.ts";
import { NS_EXTDISCO } from "../xmpp/namespaces.ts";

/** REST credentials live one day unless the service says otherwise (as in Prosody). */
const DEFAULT_TTL = 86400;

/** A service as announced: what the XML shows, credentials computed. */
export interface AnnouncedService {
  readonly type: string;
  readonly host: string;
  readonly port?: number;
  readonly transport?: string;
  readonly username?: string;
  readonly password?: string;
  readonly restricted: boolean;
}

/** TURN REST credentials valid until `now` (ms) plus `ttl` seconds. */
export function turnRestCredentials(
  secret: string,
  now: number,
  ttl: number,
  user?: string,
): { readonly username: string; readonly password: string } {
  const expires = Math.floor(now / 1000) + ttl;
  const username = user === undefined ? String(expires) : `${expires}:${user}`;
  const password = createHmac("sha1", secret).update(username).digest("base64");
  return { username, password };
}

/** A configured service with its credentials for this moment. */
export function announce(service: ExternalService, now: number): AnnouncedService {
  const base = {
    type: service.type,
    host: service.host,
    port: service.port,
    transport: service.transport,
  };
  if (service.secret !== undefined) {
    const creds = turnRestCredentials(
      service.secret,
      now,
      service.ttl ?? DEFAULT_TTL,
      service.username,
    );
    return { ...base, ...creds, restricted: true };
  }
  return {
    ...base,
    username: service.username,
    password: service.password,
    // A service with a password needs credentials, whether or not the configuration says so.
    restricted: service.restricted === true || service.password !== undefined,
  };
}

function serviceElement(s: AnnouncedService): Element {
  return elem("service", {
    type: s.type,
    transport: s.transport,
    host: s.host,
    port: s.port === undefined ? undefined : String(s.port),
    username: s.username,
    password: s.password,
    restricted: s.restricted ? "1" : undefined,
  });
}

function reply(s: Session, stanza: Element): Step {
  return [s, [{ kind: "send", stanza }]];
}

function configured(ctx: Ctx): AnnouncedService[] {
  const now = ctx.now();
  return (ctx.settings.externalServices ?? []).map((service) => announce(service, now));
}

/** XEP-0215 §3.1: every service, or those of the requested type. */
function onServices(s: Session, iq: Element, payload: Element, ctx: Ctx): Step {
  if (iq.attrs.type !== "get") return reply(s, errorReply(iq, "bad-request"));
  const type = payload.attrs.type;
  const services = configured(ctx).filter((srv) => type === undefined || srv.type === type);
  return reply(
    s,
    iqResult(iq, elem("services", { xmlns: NS_EXTDISCO }, services.map(serviceElement))),
  );
}

/** XEP-0215 §3.2: credentials of the restricted services named by type and host (and port). */
function onCredentials(s: Session, iq: Element, payload: Element, ctx: Ctx): Step {
  if (iq.attrs.type !== "get") return reply(s, errorReply(iq, "bad-request"));
  const wanted = childElements(payload, NS_EXTDISCO).filter((c) => c.name === "service");
  // Each requested service must say which one it is: type and host are required.
  if (wanted.length === 0 || wanted.some((w) => !w.attrs.type || !w.attrs.host)) {
    return reply(s, errorReply(iq, "bad-request"));
  }
  const restricted = configured(ctx).filter((srv) => srv.restricted);
  const found = wanted.flatMap((w) =>
    restricted.filter((srv) =>
      srv.type === w.attrs.type && srv.host === w.attrs.host &&
      (w.attrs.port === undefined || String(srv.port) === w.attrs.port)
    )
  );
  return reply(
    s,
    iqResult(iq, elem("credentials", { xmlns: NS_EXTDISCO }, found.map(serviceElement))),
  );
}

/** XEP-0215 on the server's domain. */
export const EXTERNAL_SERVICES: Module = {
  name: "external_services",
  hostFeatures: [NS_EXTDISCO],
  hostIq: {
    [`${NS_EXTDISCO} services`]: onServices,
    [`${NS_EXTDISCO} credentials`]: onCredentials,
  },
};
