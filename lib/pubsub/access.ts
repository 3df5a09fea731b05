/**
 * Access models (XEP-0060 §4.5) and affiliations (§4.1) as pure decisions over who is asking.
 * The caller describes the requester in a {@link Requester} view (PEP from the account's roster;
 * a pubsub service from the node's affiliations and subscriptions and its owners' rosters), so
 * the rules are the same for both.
 * @module
 */
import type { AccessModel, Affiliation, NodeConfig } from "./node.ts";
import { type PubsubError, refusal } from "./errors.ts";

/**
 * Who is asking, as far as access goes. PEP fills the first two; a pubsub service fills the
 * rest too, and absent they mean "nothing more": no affiliation, no subscription, no roster.
 */
export interface Requester {
  /**
   * The requester owns the node (for PEP: the account itself; for a service: an owner, or a
   * service admin, who may do everything).
   */
  readonly owner: boolean;
  /** A node owner has a presence subscription from the requester (`from` or `both`). */
  readonly presenceSubscribed: boolean;
  /** The requester's affiliation with the node; absent means `none` (or `owner` by `owner`). */
  readonly affiliation?: Affiliation;
  /** The requester holds an approved subscription to the node (for `authorize`). */
  readonly subscribed?: boolean;
  /** The requester's groups in a node owner's roster (for `roster`). */
  readonly rosterGroups?: readonly string[];
}

/** The requester's affiliation, an owner's included. */
export function affiliationOf(who: Requester): Affiliation {
  return who.owner ? "owner" : who.affiliation ?? "none";
}

/** Owners configure, purge and delete nodes and manage who is affiliated (§4.1). */
export function isOwner(who: Requester): boolean {
  return affiliationOf(who) === "owner";
}

/**
 * True when `who` may see a node of this model (its items, its notifications). Owners,
 * publishers and members always may (XEP-0060 §4.1), outcasts never; `roster` checks the
 * requester's groups against `allowedGroups` (the node's `pubsub#roster_groups_allowed`).
 */
export function mayAccess(
  model: AccessModel,
  who: Requester,
  allowedGroups: readonly string[] = [],
): boolean {
  const aff = affiliationOf(who);
  if (aff === "owner" || aff === "publisher" || aff === "member") return true;
  if (aff === "outcast") return false;
  switch (model) {
    case "open":
      return true;
    case "presence":
      return who.presenceSubscribed;
    case "roster":
      return (who.rosterGroups ?? []).some((g) => allowedGroups.includes(g));
    case "authorize":
      return who.subscribed === true;
    case "whitelist":
      return false;
  }
}

/** The refusal of a requester that {@link mayAccess} turned away (XEP-0060 §6.1.3, §6.5.9). */
export function accessRefusal(config: NodeConfig, who?: Requester): PubsubError {
  if (who !== undefined && affiliationOf(who) === "outcast") return refusal("forbidden");
  switch (config.accessModel) {
    case "presence":
      return refusal("not-authorized", "presence-subscription-required");
    case "roster":
      return refusal("not-authorized", "not-in-roster-group");
    case "authorize":
      return refusal("not-authorized", "not-subscribed");
    default:
      return refusal("not-allowed", "closed-node");
  }
}

/**
 * True when `who` may publish to a node (XEP-0060 §4.1, §7.1.3.1): owners, publishers and
 * publish-only entities, anyone but outcasts on an `open` node, subscribers on a `subscribers`
 * one. PEP sets no publish model: only the account publishes.
 */
export function mayPublish(config: NodeConfig, who: Requester): boolean {
  const aff = affiliationOf(who);
  if (aff === "owner" || aff === "publisher" || aff === "publish-only") return true;
  if (aff === "outcast") return false;
  switch (config.publishModel ?? "publishers") {
    case "open":
      return true;
    case "subscribers":
      return who.subscribed === true;
    case "publishers":
      return false;
  }
}

/**
 * True when `who` may retract items (XEP-0060 §4.1: owners and publishers; publish-only
 * entities may retract only their own items, which we do not single out, so they may not).
 */
export function mayRetract(who: Requester): boolean {
  const aff = affiliationOf(who);
  return aff === "owner" || aff === "publisher";
}
