/**
 * Service discovery (XEP-0030) derived from the registered modules: disco#info of the domain
 * and of accounts lists exactly the features that are served, by the modules that are on under
 * the context (MAM only with archiving); XEP-0128 forms come from the modules that carry them.
 * @module
 */
import type { Session } from "../core/session.ts";
import { elem, type Element } from "../xml/element.ts";
import { errorReply, iqResult } from "../xmpp/errors.ts";
import { type Ctx, type Identity, isEnabled, type Module, type Step } from "../core/types.ts";
import { NS_DISCO_INFO, NS_DISCO_ITEMS } from "../xmpp/namespaces.ts";

function identityElement(i: Identity): Element {
  return elem("identity", { category: i.category, type: i.type, name: i.name });
}

function infoQuery(
  node: string | undefined,
  identities: readonly Identity[],
  features: readonly string[],
  forms: readonly Element[],
): Element {
  const unique = [...new Set(features)].sort();
  return elem("query", { xmlns: NS_DISCO_INFO, node }, [
    ...identities.map(identityElement),
    ...unique.map((f) => elem("feature", { var: f })),
    ...forms,
  ]);
}

/** What a disco#info answer lists: identities, features (unique, sorted) and XEP-0128 forms. */
export interface DiscoInfo {
  readonly identities: readonly Identity[];
  readonly features: readonly string[];
  readonly forms: readonly Element[];
}

/**
 * The domain's disco#info for a registry of the other modules (disco's own features included).
 * Entity capabilities (caps.ts) hash this same answer, so the two cannot disagree.
 */
export function hostDiscoInfo(all: readonly Module[], ctx: Ctx): DiscoInfo {
  const modules = all.filter((m) => isEnabled(m, ctx));
  const features = [NS_DISCO_INFO, NS_DISCO_ITEMS, ...modules.flatMap((m) => m.hostFeatures ?? [])];
  return {
    identities: [
      { category: "server", type: "im" },
      ...modules.flatMap((m) => m.hostIdentities ?? []),
    ],
    features: [...new Set(features)].sort(),
    forms: modules.flatMap((m) => m.hostForms?.(ctx) ?? []),
  };
}

/** The disco module for a registry of the other modules. */
export function discoModule(modules: readonly Module[]): Module {
  const base = [NS_DISCO_INFO, NS_DISCO_ITEMS];
  const accountInfo = (ctx: Ctx): Element => {
    const on = modules.filter((m) => isEnabled(m, ctx));
    const identities: readonly Identity[] = [
      { category: "account", type: "registered" },
      ...on.flatMap((m) => m.accountIdentities ?? []),
    ];
    const features = [...base, ...on.flatMap((m) => m.accountFeatures ?? [])];
    return infoQuery(undefined, identities, features, []);
  };
  const reply = (s: Session, stanza: Element): Step => [s, [{ kind: "send", stanza }]];
  const nodeError = (s: Session, iq: Element, payload: Element): Step | undefined =>
    payload.attrs.node !== undefined ? reply(s, errorReply(iq, "item-not-found")) : undefined;
  return {
    name: "disco",
    hostFeatures: base,
    accountFeatures: base,
    hostIq: {
      [`${NS_DISCO_INFO} query`]: (s, iq, payload, ctx: Ctx) => {
        const info = hostDiscoInfo(modules, ctx);
        return nodeError(s, iq, payload) ?? reply(
          s,
          iqResult(iq, infoQuery(undefined, info.identities, info.features, info.forms)),
        );
      },
      // XEP-0030 §4: the domain's items are the services beside it, here the external
      // components as configured (whether connected or not: their addresses exist either way).
      [`${NS_DISCO_ITEMS} query`]: (s, iq, payload, ctx: Ctx) =>
        nodeError(s, iq, payload) ?? reply(
          s,
          iqResult(
            iq,
            elem(
              "query",
              { xmlns: NS_DISCO_ITEMS },
              (ctx.settings.components ?? []).map((jid) => elem("item", { jid })),
            ),
          ),
        ),
    },
    selfIq: {
      // XEP-0030 §3.1: an account answers with its registered identity and features.
      [`${NS_DISCO_INFO} query`]: (s, iq, payload, ctx: Ctx) =>
        nodeError(s, iq, payload) ?? reply(s, iqResult(iq, accountInfo(ctx))),
      [`${NS_DISCO_ITEMS} query`]: (s, iq, payload) =>
        nodeError(s, iq, payload) ??
          reply(s, iqResult(iq, elem("query", { xmlns: NS_DISCO_ITEMS }))),
    },
  };
}
