/**
 * Bounds on everything a peer can make the server hold ("Nothing grows without a bound" in the
 * design): every collection a client, an account or an address can grow has a count cap and a
 * byte cap here, each one a `[limits]` key of the configuration. A leaf module, so that the
 * reducers, the shell and the configuration can all read it.
 * @module
 */

/** Every bound, in the configuration's units (bytes, counts, seconds). */
export interface Limits {
  /** Largest stanza in bytes once authenticated (`stanza_size`). */
  readonly stanzaSize: number;
  /** Largest stanza in bytes before authentication (`stanza_size_unauthed`). */
  readonly stanzaSizeUnauthed: number;
  /** Deepest element nesting, the stream element included (`max_depth`). */
  readonly maxDepth: number;
  /** Seconds a connection may take to authenticate (`auth_timeout`). */
  readonly authTimeout: number;
  /** Seconds of silence before a connection is closed; XEP-0478 idle-seconds (`idle_timeout`). */
  readonly idleTimeout: number;
  /** Seconds a dropped stream-managed session waits to be resumed (`sm_resume_timeout`). */
  readonly smResumeTimeout: number;

  /** Open client connections in all (`max_connections`). */
  readonly maxConnections: number;
  /** Open client connections from one IP address (`max_connections_per_ip`). */
  readonly maxConnectionsPerIp: number;
  /** Connections from one IP address that have not authenticated yet (`max_unauthed_per_ip`). */
  readonly maxUnauthedPerIp: number;
  /** Bytes written to a peer and not taken by it before it is dropped (`write_backlog`). */
  readonly writeBacklog: number;
  /** Operations waiting in one account's queue before its users' reading pauses (`account_queue`). */
  readonly accountQueue: number;

  /** Roster items per account (`roster_items`). */
  readonly rosterItems: number;
  /** Bytes of a roster (names and groups included) (`roster_bytes`). */
  readonly rosterBytes: number;
  /** Pending inbound subscription requests per account (`pending_subscriptions`). */
  readonly pendingSubscriptions: number;
  /** Blocked JIDs per account (XEP-0191) (`blocklist_items`). */
  readonly blocklistItems: number;
  /** Bytes of a block list (`blocklist_bytes`). */
  readonly blocklistBytes: number;
  /** JIDs one resource sent directed presence to (RFC 6121 §4.6) (`directed_presences`). */
  readonly directedPresences: number;
  /** Verified entity capabilities kept (XEP-0115) (`caps_cache_items`). */
  readonly capsCacheItems: number;
  /** Bytes of the entity capabilities cache (`caps_cache_bytes`). */
  readonly capsCacheBytes: number;
  /** Bytes of one disco#info answer the caps cache takes (`caps_entry_bytes`). */
  readonly capsEntryBytes: number;
  /** PEP nodes per account (`pep_nodes`). */
  readonly pepNodes: number;
  /** Items per PEP node (`pep_items`). */
  readonly pepItems: number;
  /** Bytes of one PEP item's payload (XEP-0060 §7.1.3 payload-too-big) (`pep_item_bytes`). */
  readonly pepItemBytes: number;
  /** Bytes of all of an account's PEP data (`pep_bytes`). */
  readonly pepBytes: number;
  /** Bytes of an account's private XML storage (XEP-0049) (`private_bytes`). */
  readonly privateBytes: number;
  /**
   * Bytes of an account's vCard (XEP-0054) (`vcard_bytes`). XEP-0153 asks avatars to stay small
   * (under 8 KiB), so 64 KiB leaves room for a photo and every text field while keeping a
   * world-readable record from becoming free file storage.
   */
  readonly vcardBytes: number;
  /** Messages kept for a user while they are offline (XEP-0160) (`offline_messages`). */
  readonly offlineMessages: number;
  /** Bytes of a user's offline messages (`offline_bytes`). */
  readonly offlineBytes: number;
  /** Stanzas a stream-managed session keeps until acknowledged (XEP-0198) (`sm_queue`). */
  readonly smQueue: number;
  /** Bytes of those stanzas (`sm_queue_bytes`). */
  readonly smQueueBytes: number;
  /** Connected resources per account, hibernating ones included (`resources_per_account`). */
  readonly resourcesPerAccount: number;
  /** Hibernating (resumable) sessions per account (XEP-0198) (`resumable_per_account`). */
  readonly resumablePerAccount: number;
  /** Message ids one archive query may name (XEP-0313 `ids`) (`mam_ids`). */
  readonly mamIds: number;
  /** Archive records one query may read while filtering (`mam_scan`). */
  readonly mamScan: number;
  /** JIDs in a user's archive preferences, always and never together (`mam_prefs_jids`). */
  readonly mamPrefsJids: number;
  /** Bytes of stanzas held for an inactive client (XEP-0352) (`csi_bytes`). */
  readonly csiBytes: number;
  /** Push services (XEP-0357 `enable`) per account (`push_registrations`). */
  readonly pushRegistrations: number;
  /** Bytes of an account's push registrations, publish-options included (`push_bytes`). */
  readonly pushBytes: number;
  /**
   * Seconds between two notifications to one push service while the user has not come back
   * since the first (`push_interval`): a failing or ignored app server gets no more (0: one
   * per message).
   */
  readonly pushInterval: number;

  /** Rooms one user may own at once (XEP-0045) (`muc_rooms_per_creator`). */
  readonly mucRoomsPerCreator: number;
  /** Occupants (nicks) of one room, whatever its owner configures (`muc_occupants`). */
  readonly mucOccupants: number;
  /** Messages of discussion history a room may keep for newcomers (`muc_history`). */
  readonly mucHistory: number;
  /** Bytes of a room's discussion history (`muc_history_bytes`). */
  readonly mucHistoryBytes: number;
  /** Bytes of one groupchat or private message body in a room (`muc_message_bytes`). */
  readonly mucMessageBytes: number;
  /** Bytes of a room's subject (`muc_subject_bytes`). */
  readonly mucSubjectBytes: number;
  /** Affiliations (owners, admins, members, outcasts) of one room (`muc_affiliations`). */
  readonly mucAffiliations: number;
  /** Room joins one user may make per second; more get `resource-constraint` (`muc_joins_per_second`). */
  readonly mucJoinsPerSecond: number;
  /** Nodes of the pubsub service (XEP-0060) (`pubsub_nodes`). */
  readonly pubsubNodes: number;
  /** Items per node of the pubsub service (`pubsub_items`). */
  readonly pubsubItems: number;
  /** Bytes of one item's payload on the pubsub service (`pubsub_item_bytes`). */
  readonly pubsubItemBytes: number;
  /** Bytes of everything the pubsub service holds (`pubsub_bytes`). */
  readonly pubsubBytes: number;
  /** Subscriptions (and, separately, affiliations) per node of the pubsub service (`pubsub_subscriptions`). */
  readonly pubsubSubscriptions: number;
}

/** Every bound at its default: what an empty `[limits]` table means. */
export const DEFAULT_LIMITS: Limits = {
  stanzaSize: 262144,
  stanzaSizeUnauthed: 8192,
  maxDepth: 32,
  authTimeout: 60,
  idleTimeout: 840,
  smResumeTimeout: 300,
  maxConnections: 65536,
  maxConnectionsPerIp: 1000,
  maxUnauthedPerIp: 50,
  writeBacklog: 4 * 1024 * 1024,
  accountQueue: 256,
  rosterItems: 1000,
  rosterBytes: 512 * 1024,
  pendingSubscriptions: 256,
  blocklistItems: 1000,
  blocklistBytes: 256 * 1024,
  directedPresences: 1000,
  capsCacheItems: 4096,
  capsCacheBytes: 8 * 1024 * 1024,
  capsEntryBytes: 64 * 1024,
  pepNodes: 256,
  pepItems: 256,
  pepItemBytes: 128 * 1024,
  pepBytes: 2 * 1024 * 1024,
  privateBytes: 1024 * 1024,
  vcardBytes: 64 * 1024,
  offlineMessages: 100,
  offlineBytes: 2 * 1024 * 1024,
  smQueue: 500,
  smQueueBytes: 2 * 1024 * 1024,
  resourcesPerAccount: 32,
  resumablePerAccount: 8,
  mamIds: 50,
  mamScan: 10000,
  mamPrefsJids: 1000,
  csiBytes: 1024 * 1024,
  pushRegistrations: 10,
  pushBytes: 64 * 1024,
  pushInterval: 60,
  mucRoomsPerCreator: 100,
  mucOccupants: 1000,
  mucHistory: 100,
  mucHistoryBytes: 256 * 1024,
  mucMessageBytes: 16 * 1024,
  mucSubjectBytes: 1024,
  mucAffiliations: 10_000,
  mucJoinsPerSecond: 5,
  pubsubNodes: 1000,
  pubsubItems: 256,
  pubsubItemBytes: 128 * 1024,
  pubsubBytes: 64 * 1024 * 1024,
  pubsubSubscriptions: 1000,
};

/** The TOML key of each bound, for configuration errors and the README. */
export const LIMIT_KEYS: Readonly<Record<keyof Limits, string>> = {
  stanzaSize: "stanza_size",
  stanzaSizeUnauthed: "stanza_size_unauthed",
  maxDepth: "max_depth",
  authTimeout: "auth_timeout",
  idleTimeout: "idle_timeout",
  smResumeTimeout: "sm_resume_timeout",
  maxConnections: "max_connections",
  maxConnectionsPerIp: "max_connections_per_ip",
  maxUnauthedPerIp: "max_unauthed_per_ip",
  writeBacklog: "write_backlog",
  accountQueue: "account_queue",
  rosterItems: "roster_items",
  rosterBytes: "roster_bytes",
  pendingSubscriptions: "pending_subscriptions",
  blocklistItems: "blocklist_items",
  blocklistBytes: "blocklist_bytes",
  directedPresences: "directed_presences",
  capsCacheItems: "caps_cache_items",
  capsCacheBytes: "caps_cache_bytes",
  capsEntryBytes: "caps_entry_bytes",
  pepNodes: "pep_nodes",
  pepItems: "pep_items",
  pepItemBytes: "pep_item_bytes",
  pepBytes: "pep_bytes",
  privateBytes: "private_bytes",
  vcardBytes: "vcard_bytes",
  offlineMessages: "offline_messages",
  offlineBytes: "offline_bytes",
  smQueue: "sm_queue",
  smQueueBytes: "sm_queue_bytes",
  resourcesPerAccount: "resources_per_account",
  resumablePerAccount: "resumable_per_account",
  mamIds: "mam_ids",
  mamScan: "mam_scan",
  mamPrefsJids: "mam_prefs_jids",
  csiBytes: "csi_bytes",
  pushRegistrations: "push_registrations",
  pushBytes: "push_bytes",
  pushInterval: "push_interval",
  mucRoomsPerCreator: "muc_rooms_per_creator",
  mucOccupants: "muc_occupants",
  mucHistory: "muc_history",
  mucHistoryBytes: "muc_history_bytes",
  mucMessageBytes: "muc_message_bytes",
  mucSubjectBytes: "muc_subject_bytes",
  mucAffiliations: "muc_affiliations",
  mucJoinsPerSecond: "muc_joins_per_second",
  pubsubNodes: "pubsub_nodes",
  pubsubItems: "pubsub_items",
  pubsubItemBytes: "pubsub_item_bytes",
  pubsubBytes: "pubsub_bytes",
  pubsubSubscriptions: "pubsub_subscriptions",
};

/** The smallest value each bound accepts (the largest is unbounded). */
export const LIMIT_MINIMUMS: Readonly<Record<keyof Limits, number>> = {
  stanzaSize: 1024,
  stanzaSizeUnauthed: 1024,
  maxDepth: 2,
  authTimeout: 1,
  idleTimeout: 1,
  smResumeTimeout: 1,
  maxConnections: 1,
  maxConnectionsPerIp: 1,
  maxUnauthedPerIp: 1,
  writeBacklog: 65536,
  accountQueue: 1,
  rosterItems: 0,
  rosterBytes: 1024,
  pendingSubscriptions: 0,
  blocklistItems: 0,
  blocklistBytes: 1024,
  directedPresences: 0,
  capsCacheItems: 0,
  capsCacheBytes: 0,
  capsEntryBytes: 1024,
  pepNodes: 0,
  pepItems: 1,
  pepItemBytes: 1024,
  pepBytes: 1024,
  privateBytes: 1024,
  vcardBytes: 1024,
  offlineMessages: 0,
  offlineBytes: 0,
  smQueue: 1,
  smQueueBytes: 65536,
  resourcesPerAccount: 1,
  resumablePerAccount: 0,
  mamIds: 1,
  mamScan: 100,
  mamPrefsJids: 0,
  csiBytes: 0,
  pushRegistrations: 0,
  pushBytes: 1024,
  pushInterval: 0,
  mucRoomsPerCreator: 0,
  mucOccupants: 1,
  mucHistory: 0,
  mucHistoryBytes: 0,
  mucMessageBytes: 1024,
  mucSubjectBytes: 0,
  mucAffiliations: 1,
  mucJoinsPerSecond: 1,
  pubsubNodes: 0,
  pubsubItems: 1,
  pubsubItemBytes: 1024,
  pubsubBytes: 1024,
  pubsubSubscriptions: 0,
};

/** UTF-8 length of `s[from, to)` without allocating (for byte caps and size limits). */
export function utf8Bytes(s: string, from = 0, to = s.length): number {
  let n = 0;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}
