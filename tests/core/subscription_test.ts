/**
 * RFC 6121 Appendix A, row by row. The expected tables are written here again from the RFC
 * text, not imported, so a wrong row in lib/subscription.ts shows up as a disagreement.
 */
import assert from "node:assert/strict";
import {
  inbound,
  NO_SUBSCRIPTION,
  outbound,
  stateName,
  type SubscriptionType,
  type SubState,
} from "../../lib/core/subscription.ts";

/** The nine A.1 states, built by hand rather than from the module's own map. */
const S = {
  none: { subscription: "none", pendingOut: false, pendingIn: false, approved: false },
  noneOut: { subscription: "none", pendingOut: true, pendingIn: false, approved: false },
  noneIn: { subscription: "none", pendingOut: false, pendingIn: true, approved: false },
  noneOutIn: { subscription: "none", pendingOut: true, pendingIn: true, approved: false },
  to: { subscription: "to", pendingOut: false, pendingIn: false, approved: false },
  toIn: { subscription: "to", pendingOut: false, pendingIn: true, approved: false },
  from: { subscription: "from", pendingOut: false, pendingIn: false, approved: false },
  fromOut: { subscription: "from", pendingOut: true, pendingIn: false, approved: false },
  both: { subscription: "both", pendingOut: false, pendingIn: false, approved: false },
} as const satisfies Record<string, SubState>;

type Key = keyof typeof S;
const KEYS = Object.keys(S) as Key[];

const NAMES: Readonly<Record<Key, string>> = {
  none: "None",
  noneOut: "None + Pending Out",
  noneIn: "None + Pending In",
  noneOutIn: "None + Pending Out+In",
  to: "To",
  toIn: "To + Pending In",
  from: "From",
  fromOut: "From + Pending Out",
  both: "Both",
};

/** [existing state, ROUTE?, new state]: one row of an A.2 table. */
type OutRow = readonly [Key, boolean, Key];
/** [existing state, DELIVER?, new state, auto-reply]: one row of an A.3 table. */
type InRow = readonly [Key, boolean, Key, "subscribed"?];

// A.2.1 Client generates outbound subscription request.
const A_2_1: readonly OutRow[] = [
  ["none", true, "noneOut"],
  ["noneOut", true, "noneOut"],
  ["noneIn", true, "noneOutIn"],
  ["noneOutIn", true, "noneOutIn"],
  ["to", true, "to"],
  ["toIn", true, "toIn"],
  ["from", true, "fromOut"],
  ["fromOut", true, "fromOut"],
  ["both", true, "both"],
];

// A.2.2 Client generates outbound unsubscribe.
const A_2_2: readonly OutRow[] = [
  ["none", true, "none"],
  ["noneOut", true, "none"],
  ["noneIn", true, "noneIn"],
  ["noneOutIn", true, "noneIn"],
  ["to", true, "none"],
  ["toIn", true, "noneIn"],
  ["from", true, "from"],
  ["fromOut", true, "from"],
  ["both", true, "from"],
];

// A.2.3 Client generates outbound subscription approval.
const A_2_3: readonly OutRow[] = [
  ["none", false, "none"],
  ["noneOut", false, "noneOut"],
  ["noneIn", true, "from"],
  ["noneOutIn", true, "fromOut"],
  ["to", false, "to"],
  ["toIn", true, "both"],
  ["from", false, "from"],
  ["fromOut", false, "fromOut"],
  ["both", false, "both"],
];

// A.2.4 Client generates outbound subscription cancellation.
const A_2_4: readonly OutRow[] = [
  ["none", false, "none"],
  ["noneOut", false, "noneOut"],
  ["noneIn", true, "none"],
  ["noneOutIn", true, "noneOut"],
  ["to", false, "to"],
  ["toIn", true, "to"],
  ["from", true, "none"],
  ["fromOut", true, "noneOut"],
  ["both", true, "to"],
];

// A.3.1 Server processing of inbound subscription request.
const A_3_1: readonly InRow[] = [
  ["none", true, "noneIn"],
  ["noneOut", true, "noneOutIn"],
  ["noneIn", false, "noneIn"],
  ["noneOutIn", false, "noneOutIn"],
  ["to", true, "toIn"],
  ["toIn", false, "toIn"],
  ["from", false, "from", "subscribed"],
  ["fromOut", false, "fromOut", "subscribed"],
  ["both", false, "both", "subscribed"],
];

// A.3.2 Server processing of inbound unsubscribe.
const A_3_2: readonly InRow[] = [
  ["none", false, "none"],
  ["noneOut", false, "noneOut"],
  ["noneIn", true, "none"],
  ["noneOutIn", true, "noneOut"],
  ["to", false, "to"],
  ["toIn", true, "to"],
  ["from", true, "none"],
  ["fromOut", true, "noneOut"],
  ["both", true, "to"],
];

// A.3.3 Server processing of inbound subscription approval.
const A_3_3: readonly InRow[] = [
  ["none", false, "none"],
  ["noneOut", true, "to"],
  ["noneIn", false, "noneIn"],
  ["noneOutIn", true, "toIn"],
  ["to", false, "to"],
  ["toIn", false, "toIn"],
  ["from", false, "from"],
  ["fromOut", true, "both"],
  ["both", false, "both"],
];

// A.3.4 Server processing of inbound subscription cancellation.
const A_3_4: readonly InRow[] = [
  ["none", false, "none"],
  ["noneOut", true, "none"],
  ["noneIn", false, "noneIn"],
  ["noneOutIn", true, "noneIn"],
  ["to", true, "none"],
  ["toIn", true, "noneIn"],
  ["from", false, "from"],
  ["fromOut", true, "from"],
  ["both", true, "from"],
];

const OUT_TABLES: readonly (readonly [string, SubscriptionType, readonly OutRow[]])[] = [
  ["A.2.1", "subscribe", A_2_1],
  ["A.2.2", "unsubscribe", A_2_2],
  ["A.2.3", "subscribed", A_2_3],
  ["A.2.4", "unsubscribed", A_2_4],
];

const IN_TABLES: readonly (readonly [string, SubscriptionType, readonly InRow[]])[] = [
  ["A.3.1", "subscribe", A_3_1],
  ["A.3.2", "unsubscribe", A_3_2],
  ["A.3.3", "subscribed", A_3_3],
  ["A.3.4", "unsubscribed", A_3_4],
];

const TYPES: readonly SubscriptionType[] = [
  "subscribe",
  "subscribed",
  "unsubscribe",
  "unsubscribed",
];

function isPossible(s: SubState): boolean {
  const to = s.subscription === "to" || s.subscription === "both";
  const from = s.subscription === "from" || s.subscription === "both";
  // pendingOut only with none/from, pendingIn only with none/to, approved never with from.
  return !(s.pendingOut && to) && !(s.pendingIn && from) && !(s.approved && from);
}

Deno.test("stateName gives the A.1 names", () => {
  for (const key of KEYS) assert.equal(stateName(S[key]), NAMES[key]);
  assert.equal(stateName(NO_SUBSCRIPTION), "None");
  assert.equal(stateName({ ...S.to, approved: true }), "To (approved)");
});

Deno.test("NO_SUBSCRIPTION is None, not approved", () => {
  assert.deepEqual(NO_SUBSCRIPTION, S.none);
});

for (const [table, type, rows] of OUT_TABLES) {
  Deno.test(`${table}: outbound ${type}, every row`, () => {
    assert.equal(rows.length, 9);
    assert.deepEqual(new Set(rows.map((r) => r[0])), new Set(KEYS));
    for (const [from, route, to] of rows) {
      const result = outbound(S[from], type);
      // A.2.3's no-route rows in None / None + Pending Out / To are pre-approvals (§3.4);
      // the appendix draws the subscription part, approved is checked in its own tests.
      const approved = type === "subscribed" && !route && ["none", "noneOut", "to"].includes(from);
      assert.deepEqual(
        result,
        { state: { ...S[to], approved }, route },
        `${table} ${NAMES[from]}`,
      );
    }
  });
}

for (const [table, type, rows] of IN_TABLES) {
  Deno.test(`${table}: inbound ${type}, every row`, () => {
    assert.equal(rows.length, 9);
    assert.deepEqual(new Set(rows.map((r) => r[0])), new Set(KEYS));
    for (const [from, deliver, to, autoReply] of rows) {
      const expected = autoReply ? { state: S[to], deliver, autoReply } : { state: S[to], deliver };
      assert.deepEqual(inbound(S[from], type), expected, `${table} ${NAMES[from]}`);
    }
  });
}

Deno.test("§3.4: pre-approve, then the contact's request is approved without delivery", () => {
  const pre = outbound(NO_SUBSCRIPTION, "subscribed");
  assert.deepEqual(pre, { state: { ...S.none, approved: true }, route: false });
  const req = inbound(pre.state, "subscribe");
  assert.deepEqual(req, { state: S.from, deliver: false, autoReply: "subscribed" });
});

Deno.test("§3.4: pre-approval in None + Pending Out and To leads to From + Pending Out and Both", () => {
  const cases: readonly (readonly [Key, Key])[] = [["noneOut", "fromOut"], ["to", "both"]];
  for (const [start, end] of cases) {
    const pre = outbound(S[start], "subscribed");
    assert.deepEqual(pre, { state: { ...S[start], approved: true }, route: false });
    assert.deepEqual(inbound(pre.state, "subscribe"), {
      state: S[end],
      deliver: false,
      autoReply: "subscribed",
    });
  }
});

Deno.test("§3.4: a pre-approval survives unrelated changes and is used once", () => {
  // The user subscribes after pre-approving: still pre-approved.
  const a = outbound({ ...S.none, approved: true }, "subscribe");
  assert.deepEqual(a, { state: { ...S.noneOut, approved: true }, route: true });
  // The contact approves that: To, still pre-approved.
  const b = inbound(a.state, "subscribed");
  assert.deepEqual(b, { state: { ...S.to, approved: true }, deliver: true });
  // The contact's request uses the pre-approval up.
  const c = inbound(b.state, "subscribe");
  assert.deepEqual(c, { state: S.both, deliver: false, autoReply: "subscribed" });
  // A second request is answered because the contact is subscribed-from now, not by approval.
  assert.deepEqual(inbound(c.state, "subscribe"), {
    state: S.both,
    deliver: false,
    autoReply: "subscribed",
  });
});

Deno.test("§3.4: outbound unsubscribed cancels a pre-approval without routing", () => {
  for (const key of ["none", "noneOut", "to"] as const) {
    const result = outbound({ ...S[key], approved: true }, "unsubscribed");
    assert.deepEqual(result, { state: S[key], route: false }, NAMES[key]);
    // And the next request is an ordinary one again.
    assert.equal(inbound(result.state, "subscribe").deliver, true);
  }
});

Deno.test("§3.4: pre-approval when the contact is already subscribed-from is a no-op", () => {
  for (const key of ["from", "fromOut", "both"] as const) {
    assert.deepEqual(outbound(S[key], "subscribed"), { state: S[key], route: false }, NAMES[key]);
  }
});

Deno.test("§3.4: pre-approving twice is idempotent and not routed", () => {
  const once = outbound(NO_SUBSCRIPTION, "subscribed");
  assert.deepEqual(outbound(once.state, "subscribed"), once);
});

Deno.test("no transition produces an impossible combination", () => {
  const seen = new Set<string>();
  let frontier: SubState[] = [NO_SUBSCRIPTION];
  // Breadth-first over every state reachable from None, approved included.
  while (frontier.length > 0) {
    const next: SubState[] = [];
    for (const s of frontier) {
      const key = JSON.stringify(s);
      if (seen.has(key)) continue;
      seen.add(key);
      assert.ok(isPossible(s), `impossible state reached: ${key}`);
      for (const type of TYPES) next.push(outbound(s, type).state, inbound(s, type).state);
    }
    frontier = next;
  }
  // The nine A.1 states, plus None, None + Pending Out and To with a pre-approval.
  assert.equal(seen.size, 12);
  // From every state, possible or not, each transition lands on a possible one.
  const flags = [false, true];
  for (const subscription of ["none", "to", "from", "both"] as const) {
    for (const pendingOut of flags) {
      for (const pendingIn of flags) {
        for (const approved of flags) {
          const s: SubState = { subscription, pendingOut, pendingIn, approved };
          for (const type of TYPES) {
            assert.ok(
              isPossible(outbound(s, type).state),
              `outbound ${type} from ${JSON.stringify(s)}`,
            );
            assert.ok(
              isPossible(inbound(s, type).state),
              `inbound ${type} from ${JSON.stringify(s)}`,
            );
          }
        }
      }
    }
  }
});

Deno.test("the input state is not modified", () => {
  const s: SubState = Object.freeze({ ...S.noneIn });
  outbound(s, "subscribed");
  inbound(s, "unsubscribe");
  assert.deepEqual(s, S.noneIn);
});
