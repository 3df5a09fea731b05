/**
 * The node configuration of the pubsub service (XEP-0060 §16.4.4): its defaults. The form and
 * its reading are shared with PEP (`lib/pubsub/config.ts`); the service takes every field.
 * @module
 */
import type { NodeConfig } from "../../pubsub/node.ts";

/**
 * A new node's configuration (Prosody's defaults, which the conformance scripts read back):
 * open, 20 items, the last item never resent, notifications with payloads as headlines.
 */
export const SERVICE_DEFAULT_CONFIG: NodeConfig = {
  persistItems: true,
  accessModel: "open",
  maxItems: 20,
  sendLastPublishedItem: "never",
  notifyRetract: true,
  notifyDelete: true,
  itemreply: "none",
  publishModel: "publishers",
  rosterGroupsAllowed: [],
  deliverNotifications: true,
  deliverPayloads: true,
  notificationType: "headline",
};
