/**
 * The one destroy path every end of a session goes through (the origin's
 * `destroy_session`): say goodbye on the stream when it is still writable, broadcast
 * unavailable presence when the resource was available, leave the registry, close the socket.
 * The destroyed session is terminal and swallows late input.
 *
 * A hibernating session is not destroyed (XEP-0198 §5): when the connection of a session that
 * enabled resumption drops, it waits to be resumed instead, and only its timeout (or a
 * replacement, an account removal, a shutdown) brings it here. When a session that counted
 * stanzas ends, what the client never acknowledged goes to offline storage.
 * @module
 */
import { isHibernating, NO_DIRECTED, type Session } from "../core/session.ts";
import type { StreamError } from "../xmpp/errors.ts";
import { goodbyeOutputs } from "../account/presence.ts";
import { canHibernate, hibernate, unackedToOffline } from "../modules/stream_management.ts";
import { clientHeader } from "../xmpp/stream_xml.ts";
import type { Ctx, Output, Step } from "../core/types.ts";

/** How the session ends. */
export interface DestroyOptions {
  /** The stream error to send, when the server ends the stream because of one. */
  readonly error?: StreamError;
  /** False when the connection is already gone: nothing more can be written. */
  readonly writable: boolean;
  /** The connection dropped without a closing tag: a resumable session hibernates instead. */
  readonly dropped?: boolean;
}

/** Ends a session. Calling it on a destroyed session does nothing. */
export function destroy(s: Session, ctx: Ctx, opts: DestroyOptions): Step {
  if (s.destroyed) return [s, []];
  if (opts.dropped === true) {
    if (isHibernating(s)) return [s, []];
    if (canHibernate(s, ctx)) return hibernate(s, ctx);
  }
  const out: Output[] = [];
  // A hibernating session has no connection to write to.
  if (opts.writable && !isHibernating(s)) {
    // RFC 6120 §4.9.1.2: an error before our header still needs a header to be well-formed.
    if (s.notopen && s.streamId === undefined) {
      out.push({ kind: "open-stream", header: clientHeader(s.host ?? ctx.hosts[0], ctx.newId()) });
    }
    out.push({ kind: "close-stream", error: opts.error });
  }
  // RFC 6121 §4.5.2, §4.6.3: the server says goodbye on the user's behalf, once.
  out.push(...goodbyeOutputs(s, ctx));
  // XEP-0198 §5: unacknowledged messages are not lost with the session.
  out.push(...unackedToOffline(s));
  if (s.fullJid !== undefined) out.push({ kind: "unbind", fullJid: s.fullJid });
  out.push({ kind: "disconnect", error: opts.error });
  // Stanzas held for an inactive client (XEP-0352) are only presence updates and chat states
  // (anything that matters flushed them): like an unsent socket buffer, they go with the session.
  return [
    {
      ...s,
      destroyed: true,
      presence: undefined,
      sasl: undefined,
      directed: NO_DIRECTED,
      held: [],
      csi: undefined,
      // The queue went to offline storage; the record keeps no stanzas.
      ...(s.sm === undefined ? {} : { sm: undefined }),
    },
    out,
  ];
}
