/**
 * The registry's resource views (lib/shell/registry.ts): made again only when a field they
 * show changed, and always as the session and the caps cache are now.
 */
import assert from "node:assert/strict";
import { createRegistry, type SessionHandle } from "../../lib/shell/registry.ts";
import { newSession, type Session } from "../../lib/core/session.ts";
import { stanza } from "../../lib/xml/element.ts";

function bound(resource: string): Session {
  return {
    ...newSession(`id-${resource}`, { ip: "127.0.0.1", secure: true }),
    type: "c2s",
    notopen: false,
    username: "juliet",
    host: "example.com",
    resource,
    fullJid: `juliet@example.com/${resource}`,
  };
}

/** A handle whose session the test replaces, as a connection's reductions do. */
function handleOf(initial: Session): SessionHandle & { set(s: Session): void } {
  let current = initial;
  return {
    id: initial.id,
    session: () => current,
    dispatch: () => {},
    lastActivity: () => 0,
    set(s) {
      current = s;
    },
  };
}

Deno.test("registry: a resource view follows its session, and is kept while nothing it shows changed", () => {
  const known = new Map<string, readonly string[]>();
  const registry = createRegistry((ver) => known.get(ver));
  const h = handleOf(bound("balcony"));
  registry.bind("juliet@example.com/balcony", h);

  const [first] = registry.resourcesOf("juliet@example.com");
  assert.equal(first.fullJid, "juliet@example.com/balcony");
  assert.equal(first.available, false);

  // A new record that differs in nothing the view shows (a counter): the same view.
  h.set({ ...h.session(), held: [] });
  assert.equal(registry.resourcesOf("juliet@example.com")[0], first);

  // Presence, priority, the block list, the module state: each shows at once.
  const presence = stanza("presence", { from: "juliet@example.com/balcony" });
  h.set({ ...h.session(), presence, priority: 5 });
  const available = registry.resourcesOf("juliet@example.com")[0];
  assert.equal(available.available, true);
  assert.equal(available.priority, 5);
  assert.equal(available.presence, presence);
  h.set({ ...h.session(), blocklist: ["romeo@example.net"] });
  assert.deepEqual(registry.resourcesOf("juliet@example.com")[0].blocklist, ["romeo@example.net"]);
  h.set({ ...h.session(), modules: { carbons: true } });
  assert.deepEqual(registry.resourcesOf("juliet@example.com")[0].modules, { carbons: true });

  // Caps the cache learns later: the view shows their features from then on.
  h.set({ ...h.session(), caps: { node: "n", ver: "v1", hash: "sha-1" } });
  assert.equal(registry.resourcesOf("juliet@example.com")[0].features, undefined);
  known.set("v1", ["urn:xmpp:receipts"]);
  assert.deepEqual(registry.resourcesOf("juliet@example.com")[0].features, ["urn:xmpp:receipts"]);

  // Destroyed: neither available nor interested.
  h.set({ ...h.session(), destroyed: true });
  assert.equal(registry.resourcesOf("juliet@example.com")[0].available, false);

  // Unbound, then bound again by another connection: a view of the new one.
  registry.unbind("juliet@example.com/balcony", h);
  assert.deepEqual(registry.resourcesOf("juliet@example.com"), []);
  const again = handleOf({ ...bound("balcony"), priority: -1 });
  registry.bind("juliet@example.com/balcony", again);
  assert.equal(registry.resourcesOf("juliet@example.com")[0].priority, -1);
});

Deno.test("registry: a replacing handle's session is shown, not the replaced one's", () => {
  const registry = createRegistry();
  const old = handleOf({ ...bound("r"), priority: 1 });
  registry.bind("juliet@example.com/r", old);
  assert.equal(registry.resourcesOf("juliet@example.com")[0].priority, 1);
  const fresh = handleOf({ ...bound("r"), priority: 2 });
  assert.equal(registry.bind("juliet@example.com/r", fresh), old);
  assert.equal(registry.resourcesOf("juliet@example.com")[0].priority, 2);
});

Deno.test("registry: hasResources says what resourcesOf's length says, through binds and unbinds", () => {
  const registry = createRegistry();
  const bare = "juliet@example.com";
  const agree = (expected: boolean) => {
    assert.equal(registry.hasResources?.(bare), expected);
    assert.equal(registry.resourcesOf(bare).length > 0, expected);
  };
  agree(false);
  const a = handleOf(bound("a"));
  const b = handleOf(bound("b"));
  registry.bind(`${bare}/a`, a);
  registry.bind(`${bare}/b`, b);
  agree(true);
  registry.unbind(`${bare}/a`, a);
  agree(true);
  // Not the registered handle: nothing changes.
  registry.unbind(`${bare}/b`, a);
  agree(true);
  registry.unbind(`${bare}/b`, b);
  agree(false);
  assert.equal(registry.hasResources?.("romeo@example.com"), false);
});
