/**
 * The presence subscription state machine of RFC 6121 Appendix A, as data.
 *
 * One state per (user, contact) pair, seen from the user's side. The nine states of A.1 are
 * `subscription` plus the pending flags; `approved` is the pre-approval of §3.4, which the
 * appendix does not draw but which changes the handling of an outbound "subscribed" and of an
 * inbound "subscribe". Each table below is one table of the appendix, one row per state, so a
 * row can be checked against the RFC by eye. Pure: no I/O, the caller routes, delivers, replies
 * and pushes the roster.
 * @module
 */
import type { Subscription } from "./session.ts";

/** The subscription state between a user and one contact, from the user's side (RFC 6121 Appendix A). */
export interface SubState {
  readonly subscription: Subscription;
  /** The user asked the contact and has no answer yet (`ask="subscribe"`); only with none/from. */
  readonly pendingOut: boolean;
  /** The contact asked the user and has no answer yet; only with none/to. */
  readonly pendingIn: boolean;
  /** The user pre-approved a request from the contact (§3.4, `approved="true"`). */
  readonly approved: boolean;
}

/** No subscription either way, nothing pending, nothing pre-approved. */
export const NO_SUBSCRIPTION: SubState = {
  subscription: "none",
  pendingOut: false,
  pendingIn: false,
  approved: false,
};

/** The presence types that manage subscriptions (RFC 6121 §3). */
export type SubscriptionType = "subscribe" | "subscribed" | "unsubscribe" | "unsubscribed";

const SUBSCRIPTION_TYPES: ReadonlySet<string> = new Set([
  "subscribe",
  "subscribed",
  "unsubscribe",
  "unsubscribed",
]);

/** The subscription type of a presence `type` attribute, or undefined for any other. */
export function subscriptionTypeOf(type: string | undefined): SubscriptionType | undefined {
  return type !== undefined && SUBSCRIPTION_TYPES.has(type) ? type as SubscriptionType : undefined;
}

/** The nine states of RFC 6121 A.1, spelled as the RFC spells them. */
type StateName =
  | "None"
  | "None + Pending Out"
  | "None + Pending In"
  | "None + Pending Out+In"
  | "To"
  | "To + Pending In"
  | "From"
  | "From + Pending Out"
  | "Both";

/** What each A.1 state is as flags; `approved` is carried separately. */
const STATES: Readonly<Record<StateName, Omit<SubState, "approved">>> = {
  "None": { subscription: "none", pendingOut: false, pendingIn: false },
  "None + Pending Out": { subscription: "none", pendingOut: true, pendingIn: false },
  "None + Pending In": { subscription: "none", pendingOut: false, pendingIn: true },
  "None + Pending Out+In": { subscription: "none", pendingOut: true, pendingIn: true },
  "To": { subscription: "to", pendingOut: false, pendingIn: false },
  "To + Pending In": { subscription: "to", pendingOut: false, pendingIn: true },
  "From": { subscription: "from", pendingOut: false, pendingIn: false },
  "From + Pending Out": { subscription: "from", pendingOut: true, pendingIn: false },
  "Both": { subscription: "both", pendingOut: false, pendingIn: false },
};

/** One row of an A.2 table. */
interface OutboundRow {
  readonly route: boolean;
  readonly next: StateName;
  /** §3.4: this "subscribed" is a pre-approval, noted in `approved` instead of routed. */
  readonly preApprove?: true;
}

/** One row of an A.3 table. */
interface InboundRow {
  readonly deliver: boolean;
  readonly next: StateName;
  /** §3.1.3 step 2: the contact is already subscribed-from, so the server answers for the user. */
  readonly autoReply?: "subscribed";
}

type OutboundTable = Readonly<Record<StateName, OutboundRow>>;
type InboundTable = Readonly<Record<StateName, InboundRow>>;

/**
 * A.2.1, outbound "subscribe" (§3.1.2). RFC 6121 routes in every state, unlike RFC 3921's
 * implementations that dropped it when already pending or subscribed: the two servers may
 * disagree about the state, and a repeated request is how the user resynchronises them.
 */
const OUTBOUND_SUBSCRIBE: OutboundTable = {
  "None": { route: true, next: "None + Pending Out" },
  "None + Pending Out": { route: true, next: "None + Pending Out" },
  "None + Pending In": { route: true, next: "None + Pending Out+In" },
  "None + Pending Out+In": { route: true, next: "None + Pending Out+In" },
  "To": { route: true, next: "To" },
  "To + Pending In": { route: true, next: "To + Pending In" },
  "From": { route: true, next: "From + Pending Out" },
  "From + Pending Out": { route: true, next: "From + Pending Out" },
  "Both": { route: true, next: "Both" },
};

/** A.2.2, outbound "unsubscribe" (§3.3.2): always routed, for the same resynchronising reason. */
const OUTBOUND_UNSUBSCRIBE: OutboundTable = {
  "None": { route: true, next: "None" },
  "None + Pending Out": { route: true, next: "None" },
  "None + Pending In": { route: true, next: "None + Pending In" },
  "None + Pending Out+In": { route: true, next: "None + Pending In" },
  "To": { route: true, next: "None" },
  "To + Pending In": { route: true, next: "None + Pending In" },
  "From": { route: true, next: "From" },
  "From + Pending Out": { route: true, next: "From" },
  "Both": { route: true, next: "From" },
};

/**
 * A.2.3, outbound "subscribed" (§3.1.5 approval, §3.4 pre-approval). Routed only when it
 * answers a pending inbound request; with no request and no subscription-from it is a
 * pre-approval (§3.4 steps 3-4); with subscription-from already it is ignored (§3.4 step 1).
 */
const OUTBOUND_SUBSCRIBED: OutboundTable = {
  "None": { route: false, next: "None", preApprove: true },
  "None + Pending Out": { route: false, next: "None + Pending Out", preApprove: true },
  "None + Pending In": { route: true, next: "From" },
  "None + Pending Out+In": { route: true, next: "From + Pending Out" },
  "To": { route: false, next: "To", preApprove: true },
  "To + Pending In": { route: true, next: "Both" },
  "From": { route: false, next: "From" },
  "From + Pending Out": { route: false, next: "From + Pending Out" },
  "Both": { route: false, next: "Both" },
};

/**
 * A.2.4, outbound "unsubscribed" (§3.2.2 denial/cancellation). Routed only when there is
 * something to deny or cancel: a pending inbound request or a subscription-from. It also
 * cancels a pre-approval (§3.4), which the caller sees as `approved` going false.
 */
const OUTBOUND_UNSUBSCRIBED: OutboundTable = {
  "None": { route: false, next: "None" },
  "None + Pending Out": { route: false, next: "None + Pending Out" },
  "None + Pending In": { route: true, next: "None" },
  "None + Pending Out+In": { route: true, next: "None + Pending Out" },
  "To": { route: false, next: "To" },
  "To + Pending In": { route: true, next: "To" },
  "From": { route: true, next: "None" },
  "From + Pending Out": { route: true, next: "None + Pending Out" },
  "Both": { route: true, next: "To" },
};

/**
 * A.3.1, inbound "subscribe" (§3.1.3). A repeat of a request already pending is not delivered
 * again (the stored one is redelivered at the next initial presence); with subscription-from
 * already, the server answers "subscribed" itself (§3.1.3 step 2).
 */
const INBOUND_SUBSCRIBE: InboundTable = {
  "None": { deliver: true, next: "None + Pending In" },
  "None + Pending Out": { deliver: true, next: "None + Pending Out+In" },
  "None + Pending In": { deliver: false, next: "None + Pending In" },
  "None + Pending Out+In": { deliver: false, next: "None + Pending Out+In" },
  "To": { deliver: true, next: "To + Pending In" },
  "To + Pending In": { deliver: false, next: "To + Pending In" },
  "From": { deliver: false, next: "From", autoReply: "subscribed" },
  "From + Pending Out": { deliver: false, next: "From + Pending Out", autoReply: "subscribed" },
  "Both": { deliver: false, next: "Both", autoReply: "subscribed" },
};

/**
 * §3.4 (pre-approval processing): inbound "subscribe" in a state the user pre-approved. The
 * server approves on the user's behalf: subscription-from is added, the pre-approval is used
 * up, "subscribed" goes back, and the request is not delivered. Only the states where an
 * outbound "subscribed" can set `approved` (A.2.3 rows marked `preApprove`) appear.
 */
const INBOUND_SUBSCRIBE_PREAPPROVED: Readonly<Partial<Record<StateName, InboundRow>>> = {
  "None": { deliver: false, next: "From", autoReply: "subscribed" },
  "None + Pending Out": { deliver: false, next: "From + Pending Out", autoReply: "subscribed" },
  "To": { deliver: false, next: "Both", autoReply: "subscribed" },
};

/**
 * A.3.2, inbound "unsubscribe" (§3.3.3): the contact stops its subscription to the user, or
 * withdraws its pending request. Delivered when that changed something.
 */
const INBOUND_UNSUBSCRIBE: InboundTable = {
  "None": { deliver: false, next: "None" },
  "None + Pending Out": { deliver: false, next: "None + Pending Out" },
  "None + Pending In": { deliver: true, next: "None" },
  "None + Pending Out+In": { deliver: true, next: "None + Pending Out" },
  "To": { deliver: false, next: "To" },
  "To + Pending In": { deliver: true, next: "To" },
  "From": { deliver: true, next: "None" },
  "From + Pending Out": { deliver: true, next: "None + Pending Out" },
  "Both": { deliver: true, next: "To" },
};

/**
 * A.3.3, inbound "subscribed" (§3.1.6): delivered only when it answers the user's pending
 * request; an unsolicited approval is dropped so a contact cannot push itself into the roster.
 */
const INBOUND_SUBSCRIBED: InboundTable = {
  "None": { deliver: false, next: "None" },
  "None + Pending Out": { deliver: true, next: "To" },
  "None + Pending In": { deliver: false, next: "None + Pending In" },
  "None + Pending Out+In": { deliver: true, next: "To + Pending In" },
  "To": { deliver: false, next: "To" },
  "To + Pending In": { deliver: false, next: "To + Pending In" },
  "From": { deliver: false, next: "From" },
  "From + Pending Out": { deliver: true, next: "Both" },
  "Both": { deliver: false, next: "Both" },
};

/**
 * A.3.4, inbound "unsubscribed" (§3.2.3): the contact denies the user's pending request or
 * cancels the user's subscription-to. Delivered when there was one.
 */
const INBOUND_UNSUBSCRIBED: InboundTable = {
  "None": { deliver: false, next: "None" },
  "None + Pending Out": { deliver: true, next: "None" },
  "None + Pending In": { deliver: false, next: "None + Pending In" },
  "None + Pending Out+In": { deliver: true, next: "None + Pending In" },
  "To": { deliver: true, next: "None" },
  "To + Pending In": { deliver: true, next: "None + Pending In" },
  "From": { deliver: false, next: "From" },
  "From + Pending Out": { deliver: true, next: "From" },
  "Both": { deliver: true, next: "From" },
};

const OUTBOUND: Readonly<Record<SubscriptionType, OutboundTable>> = {
  subscribe: OUTBOUND_SUBSCRIBE,
  unsubscribe: OUTBOUND_UNSUBSCRIBE,
  subscribed: OUTBOUND_SUBSCRIBED,
  unsubscribed: OUTBOUND_UNSUBSCRIBED,
};

const INBOUND: Readonly<Record<SubscriptionType, InboundTable>> = {
  subscribe: INBOUND_SUBSCRIBE,
  unsubscribe: INBOUND_UNSUBSCRIBE,
  subscribed: INBOUND_SUBSCRIBED,
  unsubscribed: INBOUND_UNSUBSCRIBED,
};

/**
 * The A.1 name of a state, ignoring `approved`. A combination A.1 does not have (a stored
 * roster from an older or foreign server: `ask` with "to", a pending request with "from") is
 * read as the nearest A.1 state: a pending request towards a direction already subscribed is
 * moot, so it is ignored rather than refused.
 */
function baseName(s: SubState): StateName {
  switch (s.subscription) {
    case "none":
      if (s.pendingOut && s.pendingIn) return "None + Pending Out+In";
      if (s.pendingOut) return "None + Pending Out";
      if (s.pendingIn) return "None + Pending In";
      return "None";
    case "to":
      return s.pendingIn ? "To + Pending In" : "To";
    case "from":
      return s.pendingOut ? "From + Pending Out" : "From";
    case "both":
      return "Both";
  }
}

/**
 * The A.1 state `name` with the given pre-approval flag. A pre-approval only means something
 * while the contact is not subscribed-from (§3.4 step 1 ignores one then), so it is dropped
 * as soon as the contact is: that is how using it up looks in the state.
 */
function make(name: StateName, approved: boolean): SubState {
  const state = STATES[name];
  const from = state.subscription === "from" || state.subscription === "both";
  return { ...state, approved: approved && !from };
}

/**
 * The user sent this type to the contact (RFC 6121 A.2 and §3.1.2, §3.2.2, §3.3.2, §3.4,
 * §3.1.5). `route`: the server forwards the stanza to the contact.
 */
export function outbound(
  state: SubState,
  type: SubscriptionType,
): { readonly state: SubState; readonly route: boolean } {
  const row = OUTBOUND[type][baseName(state)];
  let approved: boolean;
  if (row.preApprove) {
    // §3.4 steps 3-4: note the pre-approval; the stanza is not routed (row.route is false).
    approved = true;
  } else if (type === "unsubscribed") {
    // §3.4: an "unsubscribed" cancels a pre-approval, whatever the state.
    approved = false;
  } else {
    approved = state.approved;
  }
  return { state: make(row.next, approved), route: row.route };
}

/**
 * The contact's stanza of this type arrived for the user (RFC 6121 A.3 and §3.1.3, §3.1.6,
 * §3.2.3, §3.3.3). `deliver`: the server passes it to the user's interested resources.
 * `autoReply`: the server answers the contact on the user's behalf without delivering.
 */
export function inbound(
  state: SubState,
  type: SubscriptionType,
): { readonly state: SubState; readonly deliver: boolean; readonly autoReply?: "subscribed" } {
  const name = baseName(state);
  // §3.4: a pre-approved request is approved at once and the pre-approval is used up.
  const preApproved = type === "subscribe" && state.approved
    ? INBOUND_SUBSCRIBE_PREAPPROVED[name]
    : undefined;
  const row = preApproved ?? INBOUND[type][name];
  const result = { state: make(row.next, state.approved), deliver: row.deliver };
  return row.autoReply ? { ...result, autoReply: row.autoReply } : result;
}

/**
 * A readable name per Appendix A ("None", "None + Pending Out", "To + Pending In", ...), for
 * tests and logs. A pre-approval, which A.1 does not name, is shown as " (approved)".
 */
export function stateName(s: SubState): string {
  const name = baseName(s);
  return s.approved ? `${name} (approved)` : name;
}
