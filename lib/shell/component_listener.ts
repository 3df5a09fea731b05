/**
 * The shell of external components (XEP-0114): accepts connections on the component port,
 * feeds the pure component reducer and executes its outputs, and keeps which component domain
 * is served by which connection.
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
import { createStreamParser } from "../xml/parser.ts";
import { plainSink } from "./connection.ts";
import type { HandshakeThrottle } from "./admission.ts";
import { createBacklogGuard } from "./flow.ts";
import { tcpFrame } from "../transport/tcp_framing.ts";

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

/** Serves one accepted component connection until it ends; `onOpen` gets its handle. */
export async function serveComponent(
  conn: Deno.Conn,
  deps: ComponentDeps,
  onOpen: (h: ComponentHandle) => void,
): Promise<void> {
  const { registry, log } = deps;
  let session: ComponentSession = NEW_COMPONENT;
  let done = false;
  const queue: ComponentEvent[] = [];
  let draining = false;
  const sink = plainSink(conn, () => dispatch({ kind: "disconnected" }));
  const parser = createStreamParser({
    maxStanzaBytes: deps.maxStanzaBytes,
    maxDepth: deps.maxDepth,
  });
  const handle: ComponentHandle = { dispatch: (ev) => dispatch(ev) };
  const ip = conn.remoteAddr.transport === "tcp" ? conn.remoteAddr.hostname : "unknown";
  const ctx: ComponentCtx = {
    secretOf: (domain) => deps.secrets.get(domain),
    isConnected: (domain) => registry.has(domain) && registry.get(domain) !== handle,
    newId: deps.newId,
    handshakeThrottled: () => deps.handshakeThrottle?.isThrottled(ip, Date.now()) ?? false,
  };
  // The same rule as for clients: a component that does not read what is routed to it is
  // dropped rather than buffered without end.
  const backlogGuard = createBacklogGuard(() => sink, deps.writeBacklog, (why) => {
    log.warn("Component {domain}: dropped, it does not read what is sent to it ({why})", {
      domain: session.domain ?? ip,
      why,
    });
    sink.abort();
    queue.unshift({ kind: "disconnected" });
    if (!draining) drainQueue();
  });

  function dispatch(ev: ComponentEvent): void {
    if (done) return;
    queue.push(ev);
    if (!draining) drainQueue();
  }

  function drainQueue(): void {
    draining = true;
    while (queue.length > 0 && !done) {
      const [next, outputs] = reduceComponent(session, queue.shift()!, ctx);
      session = next;
      for (const out of outputs) execute(out);
      if (!done) backlogGuard.check();
    }
    draining = false;
  }

  function execute(out: ComponentOutput): void {
    switch (out.kind) {
      case "send":
      case "open-stream":
      case "close-stream":
        sink.write(tcpFrame(out, NS_COMPONENT));
        return;
      case "route":
        deps.route(out.stanza);
        return;
      case "register":
        registry.set(out.domain, handle);
        log.info("Component {domain} connected", { domain: out.domain });
        return;
      case "unregister":
        if (registry.get(out.domain) === handle) registry.delete(out.domain);
        log.info("Component {domain} disconnected", { domain: out.domain });
        return;
      case "handshake-failed":
        deps.handshakeThrottle?.recordFailure(ip, Date.now());
        log.warn("{ip}: wrong handshake for component {domain}", {
          ip,
          domain: session.domain ?? "?",
        });
        return;
      case "disconnect":
        done = true;
        clearTimeout(timer);
        backlogGuard.stop();
        sink.close();
        return;
    }
  }

  onOpen(handle);
  const timer = setTimeout(() => dispatch({ kind: "handshake-timeout" }), deps.handshakeTimeoutMs);
  const buf = new Uint8Array(16384);
  while (!done) {
    let n: number | null;
    try {
      n = await conn.read(buf);
    } catch {
      n = null;
    }
    if (n === null) {
      dispatch({ kind: "disconnected" });
      break;
    }
    for (const ev of parser.push(buf.subarray(0, n))) {
      dispatch(ev.kind === "error" ? { kind: "parse-error", condition: ev.condition } : ev);
    }
  }
}
