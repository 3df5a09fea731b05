/**
 * The node configuration form (XEP-0060 §16.4.4) that PEP and the pubsub service both serve:
 * the `pubsub#node_config` form exactly as Prosody sends it (labels, option labels and the
 * xdata-validate range included: clients written against Prosody see the same form here, and
 * the conformance scripts compare it field by field), and the reading of a submitted form or of
 * publish-options. A pubsub service takes every field ({@link parseNodeConfig}); PEP takes the
 * same form but refuses the values it does not serve ({@link parsePepConfig}).
 * @module
 */
import { elem, type Element } from "../xml/element.ts";
import type { DataForm } from "../xmpp/forms.ts";
import { NS_DATA } from "../xmpp/namespaces.ts";
import { utf8Bytes } from "../limits.ts";
import {
  type AccessModel,
  FORM_NODE_CONFIG,
  type NodeConfig,
  parseBool,
  type PubsubLimits,
} from "./node.ts";

/** What a configuration form asks for, or why it cannot be taken. */
export type ConfigParse =
  | { readonly changes: Partial<NodeConfig> }
  | { readonly error: string };

/** The xdata-validate namespace (XEP-0122) of the `max_items` range. */
const NS_XDATA_VALIDATE = "http://jabber.org/protocol/xdata-validate";

/** Longest title, description or type, and most roster groups a node may name. */
export const TEXT_FIELD_BYTES = 1024;
export const ROSTER_GROUPS_ALLOWED = 64;

const ACCESS_MODELS: readonly AccessModel[] = [
  "authorize",
  "open",
  "presence",
  "roster",
  "whitelist",
];
const PUBLISH_MODELS = ["publishers", "subscribers", "open"] as const;
const SEND_LAST = ["never", "on_sub", "on_sub_and_presence"] as const;
const NOTIFICATION_TYPES = ["normal", "headline"] as const;
const ITEMREPLY = ["owner", "publisher", "none"] as const;

function oneOf<T extends string>(v: string, allowed: readonly T[]): v is T {
  return (allowed as readonly string[]).includes(v);
}

/**
 * The configuration changes a submitted node configuration form or publish-options form asks
 * for, every field of the form. Unknown fields are ignored (§8.2.4); a known field with a value
 * we cannot take is an error with its text. Empty texts clear the option.
 */
export function parseNodeConfig(form: DataForm, limits: PubsubLimits): ConfigParse {
  const c: { -readonly [K in keyof NodeConfig]?: NodeConfig[K] } = {};
  for (const [key, { values }] of form.byVar) {
    if (!key.startsWith("pubsub#")) continue;
    const field = key.slice("pubsub#".length);
    const v = values[0] ?? "";
    const bad = { error: `Invalid value for ${key}` };
    switch (field) {
      case "title":
      case "description":
      case "type": {
        if (utf8Bytes(v) > TEXT_FIELD_BYTES) {
          return { error: `${key} is limited to ${TEXT_FIELD_BYTES} bytes` };
        }
        c[field] = v === "" ? undefined : v;
        break;
      }
      case "max_items": {
        if (v === "max") {
          c.maxItems = "max";
          break;
        }
        const n = Number(v);
        if (!/^[0-9]+$/.test(v) || n < 1 || n > limits.items) {
          return { error: `pubsub#max_items must be 1 to ${limits.items} or max` };
        }
        c.maxItems = n;
        break;
      }
      case "persist_items":
      case "notify_retract":
      case "notify_delete":
      case "deliver_notifications":
      case "deliver_payloads": {
        const b = parseBool(v);
        if (b === undefined) return bad;
        if (field === "persist_items") c.persistItems = b;
        else if (field === "notify_retract") c.notifyRetract = b;
        else if (field === "notify_delete") c.notifyDelete = b;
        else if (field === "deliver_notifications") c.deliverNotifications = b;
        else c.deliverPayloads = b;
        break;
      }
      case "access_model":
        if (!oneOf(v, ACCESS_MODELS)) return bad;
        c.accessModel = v;
        break;
      case "publish_model":
        if (!oneOf(v, PUBLISH_MODELS)) return bad;
        c.publishModel = v;
        break;
      case "send_last_published_item":
        if (!oneOf(v, SEND_LAST)) return bad;
        c.sendLastPublishedItem = v;
        break;
      case "notification_type":
        if (!oneOf(v, NOTIFICATION_TYPES)) return bad;
        c.notificationType = v;
        break;
      case "itemreply":
        if (!oneOf(v, ITEMREPLY)) return bad;
        c.itemreply = v;
        break;
      case "roster_groups_allowed": {
        const groups = [...new Set(values)];
        if (
          groups.length > ROSTER_GROUPS_ALLOWED ||
          groups.some((g) => utf8Bytes(g) > TEXT_FIELD_BYTES)
        ) {
          return { error: `${key} names too many groups` };
        }
        c.rosterGroupsAllowed = groups;
        break;
      }
    }
  }
  return { changes: c };
}

/**
 * PEP's reading of the same form: every field, but only the values PEP serves. An account's
 * nodes have no subscriptions to authorize, only the account publishes, and notifications are
 * headlines with their payloads (XEP-0163 §4); a form that keeps those at their defaults (as a
 * client does when it sends back the form it got) is taken.
 */
export function parsePepConfig(form: DataForm, limits: PubsubLimits): ConfigParse {
  const parsed = parseNodeConfig(form, limits);
  if ("error" in parsed) return parsed;
  const c = parsed.changes;
  if (c.accessModel === "authorize") return { error: "Access model authorize is not supported" };
  if (c.publishModel !== undefined && c.publishModel !== "publishers") {
    return { error: `pubsub#publish_model ${c.publishModel} is not supported` };
  }
  if (c.deliverPayloads === false) return { error: "pubsub#deliver_payloads 0 is not supported" };
  if (c.notificationType === "normal") {
    return { error: "pubsub#notification_type normal is not supported" };
  }
  return parsed;
}

// --- the form --------------------------------------------------------------------------------

function value(v: string): Element {
  return elem("value", {}, [v]);
}

function field(
  v: string,
  type: string,
  label: string | undefined,
  children: readonly Element[] = [],
): Element {
  return elem("field", { var: v, type, label }, children);
}

/** `<option label><value/></option>`, labelled with its value unless told otherwise. */
function option(v: string, label = v): Element {
  return elem("option", { label }, [value(v)]);
}

function bool(b: boolean | undefined): Element {
  return value(b === false ? "0" : "1");
}

/** A text field with its value when there is one. */
function text(v: string, label: string, current: string | undefined): Element {
  return field(v, "text-single", label, current === undefined ? [] : [value(current)]);
}

/**
 * The node configuration form (XEP-0060 §8.2.1) filled with `config`, in Prosody's field order
 * and wording; absent optional fields show what they mean (`NodeConfig`), and
 * `pubsub#max_items` is validated against the service's item bound.
 */
export function configForm(c: NodeConfig, limits: PubsubLimits): Element {
  return elem("x", { xmlns: NS_DATA, type: "form" }, [
    field("FORM_TYPE", "hidden", undefined, [value(FORM_NODE_CONFIG)]),
    text("pubsub#title", "Title", c.title),
    text("pubsub#description", "Description", c.description),
    text(
      "pubsub#type",
      "The type of node data, usually specified by the namespace of the payload (if any)",
      c.type,
    ),
    field("pubsub#max_items", "text-single", "Max # of items to persist", [
      elem("validate", { xmlns: NS_XDATA_VALIDATE, datatype: "pubsub:integer-or-max" }, [
        elem("range", { min: "1", max: String(limits.items) }),
      ]),
      value(String(c.maxItems)),
    ]),
    field("pubsub#persist_items", "boolean", "Persist items to storage", [
      bool(c.persistItems),
    ]),
    field("pubsub#access_model", "list-single", "Specify the subscriber model", [
      ...ACCESS_MODELS.map((m) => option(m)),
      value(c.accessModel),
    ]),
    field(
      "pubsub#roster_groups_allowed",
      "list-multi",
      "Roster groups allowed to subscribe",
      (c.rosterGroupsAllowed ?? []).map(value),
    ),
    field("pubsub#publish_model", "list-single", "Specify the publisher model", [
      ...PUBLISH_MODELS.map((m) => option(m)),
      value(c.publishModel ?? "publishers"),
    ]),
    field("pubsub#send_last_published_item", "list-single", undefined, [
      ...SEND_LAST.map((m) => option(m)),
      value(c.sendLastPublishedItem),
    ]),
    field("pubsub#deliver_notifications", "boolean", "Whether to deliver event notifications", [
      bool(c.deliverNotifications),
    ]),
    field(
      "pubsub#deliver_payloads",
      "boolean",
      "Whether to deliver payloads with event notifications",
      [bool(c.deliverPayloads)],
    ),
    field(
      "pubsub#notification_type",
      "list-single",
      "Specify the delivery style for notifications",
      [
        option("normal", "Messages of type normal"),
        option("headline", "Messages of type headline"),
        value(c.notificationType ?? "headline"),
      ],
    ),
    field(
      "pubsub#notify_delete",
      "boolean",
      "Whether to notify subscribers when the node is deleted",
      [bool(c.notifyDelete)],
    ),
    field(
      "pubsub#notify_retract",
      "boolean",
      "Whether to notify subscribers when items are removed from the node",
      [bool(c.notifyRetract)],
    ),
    field(
      "pubsub#itemreply",
      "list-single",
      "Specify whose JID to include as the publisher of items",
      [
        option("owner", "Include the node owner's JID"),
        option("publisher", "Include the item publisher's JID"),
        option("none", "Don't include any JID with items"),
        value(c.itemreply ?? "none"),
      ],
    ),
  ]);
}
