/**
 * External components (XEP-0114): the component kind of the connection driver
 * (lib/transport/driver.ts). What is theirs alone lives here: the reducer's context, the
 * executor of its outputs (route, register, unregister, the throttle of wrong handshakes), and
 * which component domain is served by which connection. The driver runs the loop.
 * @module
 */
import type { Logger } from "../log.ts";
import {
  type ComponentCtx,
  type ComponentEvent,
  type ComponentOutput,
  type ComponentSession,
  NEW_COMPONENT,
  reduceComponent,
} from "../component/component.ts";
import type { Element } from "../xml/element.ts";
import { NS_COMPONENT } from "../xmpp/namespaces.ts";
import type { HandshakeThrottle } from "./admission.ts";
import { arm, createDriver, dispatch, type Driver, type DriverKind } from "../transport/driver.ts";
import { remoteIp, tcpTransport } from "../transport/tcp.ts";

/** A connected component, as the router's shell sees it. */
export interface ComponentHandle {
  /** Queues an event for the component's connection. */
  readonly dispatch: (ev: ComponentEvent) => void;
}

/** The connected components by domain. */
export type ComponentRegistry = Map<string, ComponentHandle>;

/** What a component connection shares with the server. */
export interface ComponentDeps {
  /** Configured secrets by component domain. */
  readonly secrets: ReadonlyMap<string, string>;
  readonly registry: ComponentRegistry;
  readonly route: (stanza: Element) => void;
  readonly newId: () => string;
  readonly maxStanzaBytes: number;
  readonly maxDepth: number;
  /** Time allowed from connecting to a successful handshake. */
  readonly handshakeTimeoutMs: number;
  /** Bytes written and not taken before a component that does not read is dropped. */
  readonly writeBacklog: number;
  /** Wrong handshakes per address. */
  readonly handshakeThrottle?: HandshakeThrottle;
  readonly log: Logger;
}

/** A component connection: the driver's record and what the component kind keeps beside it. */
interface Component extends Driver<ComponentSession, ComponentEvent, ComponentOutput> {
  readonly deps: ComponentDeps;
  readonly ip: string;
  handle: ComponentHandle;
  ctx: ComponentCtx;
}

/** The component kind of connection, shared by every component connection. */
const COMPONENT: DriverKind<ComponentSession, ComponentEvent, ComponentOutput, Component> = {
  reduce: (s, ev, d) => reduceComponent(s, ev, d.ctx),
  execute(d, out) {
    const { deps } = d;
    switch (out.kind) {
      case "route":
        deps.route(out.stanza);
        return;
      case "register":
        deps.registry.set(out.domain, d.handle);
        deps.log.info("Component {domain} connected", { domain: out.domain });
        return;
      case "unregister":
        if (deps.registry.get(out.domain) === d.handle) deps.registry.delete(out.domain);
        deps.log.info("Component {domain} disconnected", { domain: out.domain });
        return;
      case "handshake-failed":
        deps.handshakeThrottle?.recordFailure(d.ip, Date.now());
        deps.log.warn("{ip}: wrong handshake for component {domain}", {
          ip: d.ip,
          domain: d.session.domain ?? "?",
        });
        return;
    }
  },
  parsed: (ev) => ev.kind === "error" ? { kind: "parse-error", condition: ev.condition } : ev,
  disconnected: () => ({ kind: "disconnected" }),
  // The same rule as for clients: a component that does not read what is routed to it is
  // dropped rather than buffered without end.
  dropped(d, why) {
    d.deps.log.warn("Component {domain}: dropped, it does not read what is sent to it ({why})", {
      domain: d.session.domain ?? d.ip,
      why,
    });
  },
};

/** Serves one accepted component connection until it ends; `onOpen` gets its handle. */
export async function serveComponent(
  conn: Deno.Conn,
  deps: ComponentDeps,
  onOpen: (h: ComponentHandle) => void,
): Promise<void> {
  const d = createDriver(
    COMPONENT,
    NEW_COMPONENT,
    {
      writeBacklog: deps.writeBacklog,
      maxStanzaBytes: deps.maxStanzaBytes,
      maxDepth: deps.maxDepth,
    },
    {
      deps,
      ip: remoteIp(conn),
      handle: undefined as unknown as ComponentHandle,
      ctx: undefined as unknown as ComponentCtx,
    },
    (d) => tcpTransport(d, conn, { ns: NS_COMPONENT }),
  );
  const handle: ComponentHandle = { dispatch: (ev) => dispatch(d, ev) };
  d.handle = handle;
  d.ctx = {
    secretOf: (domain) => deps.secrets.get(domain),
    isConnected: (domain) => deps.registry.has(domain) && deps.registry.get(domain) !== handle,
    newId: deps.newId,
    handshakeThrottled: () => deps.handshakeThrottle?.isThrottled(d.ip, Date.now()) ?? false,
  };
  onOpen(handle);
  arm(d, deps.handshakeTimeoutMs, { kind: "handshake-timeout" });
  await d.transport.read();
  return d.finished;
}
