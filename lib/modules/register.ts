/**
 * In-band registration (XEP-0077) and account management. Creating accounts on the
 * unauthenticated stream is off unless the configuration allows it; an authenticated user can
 * always change their password (§3.3) and remove their account (§3.2). Accounts are IO: the
 * reducer asks with `register-account` / `change-password` (answered by `registration-result`)
 * or with the account op `remove-account` (answered by `account-removed` on every session of
 * the account), and continues when the answer arrives.
 * @module
 */
import type { Session } from "../core/session.ts";
import { child, childElements, childText, elem, type Element } from "../xml/element.ts";
import { errorReply, iqResult } from "../xmpp/errors.ts";
import { prepLocalpart } from "../xmpp/jid.ts";
import { NS_CLIENT, NS_REGISTER, NS_REGISTER_FEATURE } from "../xmpp/namespaces.ts";
import type { Ctx, Module, RegistrationOutcome, Step } from "../core/types.ts";

function reply(s: Session, stanza: Element): Step {
  return [s, [{ kind: "send", stanza }]];
}

/** The request without its payload: what answers are built from, so no password is kept. */
function bare(iq: Element): Element {
  return { ...iq, children: [] };
}

/** True when accounts may be created on this stream now (under TLS when it is required). */
function registrationOpen(s: Session, ctx: Ctx): boolean {
  return ctx.settings.allowRegistration === true && (s.secure || !ctx.requireEncryption);
}

/** The `<register/>` stream feature, offered before authentication when registration is open. */
export function registerFeature(s: Session, ctx: Ctx): Element | undefined {
  return s.type === "c2s_unauthed" && registrationOpen(s, ctx)
    ? elem("register", { xmlns: NS_REGISTER_FEATURE })
    : undefined;
}

/** True for an iq whose payload is a registration query. */
export function isRegisterIq(el: Element): boolean {
  return el.name === "iq" && el.xmlns === NS_CLIENT &&
    child(el, "query", NS_REGISTER) !== undefined;
}

/** XEP-0077 §3.1 example 2: the fields needed to register. */
function registrationForm(): Element {
  return elem("query", { xmlns: NS_REGISTER }, [
    elem("instructions", {}, ["Choose a username and password for use with this service."]),
    elem("username"),
    elem("password"),
  ]);
}

/**
 * A registration iq on the unauthenticated stream (already checked well-formed): the form,
 * or the creation of an account.
 */
export function onUnauthedRegister(s: Session, iq: Element, ctx: Ctx): Step {
  const type = iq.attrs.type;
  if (type === "result" || type === "error") return [s, []];
  // XEP-0077 §3.1: a host without in-band registration answers service-unavailable.
  if (!registrationOpen(s, ctx)) return reply(s, errorReply(iq, "service-unavailable"));
  if (type === "get") return reply(s, iqResult(iq, registrationForm()));
  const query = child(iq, "query", NS_REGISTER)!;
  // Nobody is logged in: there is no account to remove or change yet.
  if (child(query, "remove") !== undefined) return reply(s, errorReply(iq, "not-authorized"));
  const given = childText(query, "username");
  const password = childText(query, "password");
  if (given === undefined || password === undefined || password === "") {
    return reply(
      s,
      errorReply(iq, "not-acceptable", { text: "A username and a password are required" }),
    );
  }
  const username = prepLocalpart(given);
  if (username === undefined) {
    return reply(s, errorReply(iq, "not-acceptable", { text: "The username is not allowed" }));
  }
  return [s, [{
    kind: "register-account",
    iq: bare(iq),
    host: s.host ?? ctx.hosts[0],
    username,
    password,
  }]];
}

/** XEP-0077 errors for what the shell answered. */
export function onRegistrationResult(
  s: Session,
  iq: Element,
  outcome: RegistrationOutcome,
): Step {
  switch (outcome) {
    case "ok":
      return reply(s, iqResult(iq));
    case "conflict":
      // The same answer for a taken name and a tombstoned one: nothing tells them apart.
      return reply(s, errorReply(iq, "conflict", { text: "The username is not available" }));
    case "throttled":
      return reply(
        s,
        errorReply(iq, "resource-constraint", { text: "Too many registrations; try later" }),
      );
    case "not-acceptable":
      return reply(s, errorReply(iq, "not-acceptable", { text: "The username is too long" }));
    case "failed":
      return reply(s, errorReply(iq, "internal-server-error"));
  }
}

/** A registration iq from an authenticated user, to the domain or to their own account. */
function onAuthedRegister(s: Session, iq: Element, query: Element, _ctx: Ctx): Step {
  if (iq.attrs.type === "get") {
    // XEP-0077 §3.1: an entity already registered is told so, with its username.
    return reply(
      s,
      iqResult(
        iq,
        elem("query", { xmlns: NS_REGISTER }, [
          elem("registered"),
          elem("username", {}, [s.username ?? ""]),
        ]),
      ),
    );
  }
  if (child(query, "remove") !== undefined) {
    // XEP-0077 §3.2: <remove/> must be the only child.
    if (childElements(query).length !== 1) return reply(s, errorReply(iq, "bad-request"));
    const account = `${s.username}@${s.host}`;
    // The account's queue deletes it, so that nothing it still does writes the data back.
    return [s, [{ kind: "account", bare: account, op: { kind: "remove-account", iq } }]];
  }
  const given = childText(query, "username");
  const password = childText(query, "password");
  // XEP-0077 §3.3: the username must be the user's own.
  if (given === undefined || password === undefined || prepLocalpart(given) !== s.username) {
    return reply(s, errorReply(iq, "bad-request"));
  }
  if (password === "") {
    return reply(s, errorReply(iq, "not-acceptable", { text: "The password is empty" }));
  }
  return [s, [{
    kind: "change-password",
    iq: bare(iq),
    host: s.host!,
    username: s.username!,
    password,
  }]];
}

/** Account management on the domain and on the user's own account. */
export const REGISTER: Module = {
  name: "register",
  hostFeatures: [NS_REGISTER],
  hostIq: { [`${NS_REGISTER} query`]: onAuthedRegister },
  selfIq: { [`${NS_REGISTER} query`]: onAuthedRegister },
};
