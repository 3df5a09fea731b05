/**
 * Multi-user chat (XEP-0045) as pure reducers: `reduceRoom` for stanzas to a room or an
 * occupant JID, `reduceService` for stanzas to the service's domain, and what the service
 * calls on its own (a session ended, shutdown, destruction by an admin). The shell keeps the
 * rooms in a Map by room JID, runs one reduction at a time per room, and executes the outputs
 * in order (`route` through the router; `store-room`, `delete-room`, `archive-append` on the
 * storage; `mam-query` on the room's archive, answered with `mamAnswer`).
 * @module
 */
export { mamAnswer, reduceRoom, sessionEnded } from "./room.ts";
export { destroyRoom, type Destruction, isDead, shutdownRoom } from "./admin.ts";
export {
  destroyCommandResult,
  reduceService,
  type RoomListing,
  type ServiceCtx,
  type ServiceOutput,
} from "./service.ts";
export { DEFAULT_CONFIG, newRoom, roomFromStored, storedRoom } from "./state.ts";
export { displayName } from "./config.ts";
export * from "./types.ts";
