/**
 * Small informational modules: ping (XEP-0199), the legacy session (RFC 6121 Appendix E),
 * software version (XEP-0092, OS hidden), entity time (XEP-0202), server uptime through last
 * activity (XEP-0012), and contact addresses (XEP-0157).
 * @module
 */
import type { Session } from "../core/session.ts";
import { elem, type Element } from "../xml/element.ts";
import { formatDateTime } from "../xmpp/datetime.ts";
import { iqResult } from "../xmpp/errors.ts";
import { buildForm, formTypeField } from "../xmpp/forms.ts";
import {
  NS_LAST,
  NS_PING,
  NS_SERVERINFO,
  NS_SESSION,
  NS_TIME,
  NS_VERSION,
} from "../xmpp/namespaces.ts";
import type { Ctx, Module, Step } from "../core/types.ts";

function reply(s: Session, stanza: Element): Step {
  return [s, [{ kind: "send", stanza }]];
}

/** XEP-0199: answered for the domain and for the user's own account. */
export const PING: Module = {
  name: "ping",
  hostFeatures: [NS_PING],
  hostIq: { [`${NS_PING} ping`]: (s, iq) => reply(s, iqResult(iq)) },
  selfIq: { [`${NS_PING} ping`]: (s, iq) => reply(s, iqResult(iq)) },
};

/** RFC 6121 Appendix E: the session request succeeds and does nothing. */
export const SESSION: Module = {
  name: "session",
  hostIq: { [`${NS_SESSION} session`]: (s, iq) => reply(s, iqResult(iq)) },
  selfIq: { [`${NS_SESSION} session`]: (s, iq) => reply(s, iqResult(iq)) },
};

/** XEP-0092: name and version; the operating system is not disclosed. */
export const VERSION: Module = {
  name: "version",
  hostFeatures: [NS_VERSION],
  hostIq: {
    [`${NS_VERSION} query`]: (s, iq, _p, ctx) =>
      iq.attrs.type !== "get" ? reply(s, iqResult(iq)) : reply(
        s,
        iqResult(
          iq,
          elem("query", { xmlns: NS_VERSION }, [
            elem("name", {}, [ctx.serverName]),
            elem("version", {}, [ctx.serverVersion]),
          ]),
        ),
      ),
  },
};

/** XEP-0202: the server's time, in UTC. */
export const TIME: Module = {
  name: "time",
  hostFeatures: [NS_TIME],
  hostIq: {
    [`${NS_TIME} time`]: (s, iq, _p, ctx: Ctx) =>
      reply(
        s,
        iqResult(
          iq,
          elem("time", { xmlns: NS_TIME }, [
            elem("tzo", {}, ["+00:00"]),
            elem("utc", {}, [formatDateTime(ctx.now())]),
          ]),
        ),
      ),
  },
};

/** XEP-0012 on the domain: seconds since the server started. */
export const UPTIME: Module = {
  name: "uptime",
  hostFeatures: [NS_LAST],
  hostIq: {
    [`${NS_LAST} query`]: (s, iq, _p, ctx) => {
      const seconds = Math.max(0, Math.floor((ctx.now() - ctx.settings.startedAt) / 1000));
      return reply(s, iqResult(iq, elem("query", { xmlns: NS_LAST, seconds: String(seconds) })));
    },
  },
};

/** The kinds of XEP-0157 addresses, in the order they are listed. */
const CONTACT_KINDS = [
  "abuse",
  "admin",
  "feedback",
  "sales",
  "security",
  "status",
  "support",
] as const;

/** XEP-0157: contact addresses as XEP-0128 extended information of the domain. */
export const CONTACT_INFO: Module = {
  name: "contact_info",
  hostForms: (ctx) => {
    const info = ctx.settings.contactInfo;
    if (Object.keys(info).length === 0) return [];
    return [
      buildForm("result", [
        formTypeField(NS_SERVERINFO),
        ...CONTACT_KINDS.map((kind) => ({
          type: "list-multi",
          var: `${kind}-addresses`,
          values: info[kind] ?? [],
        })),
      ]),
    ];
  },
};
