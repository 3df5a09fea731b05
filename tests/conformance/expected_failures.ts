/**
 * Scansion scripts our server is known to fail, with the reason: the issue that will build the
 * missing feature, or a permanent, intended difference. `scansion_test.ts` fails when a listed
 * script passes (remove it here) or an unlisted one fails.
 *
 * MUC, the pubsub component and HTTP upload belong to no issue yet ("not filed yet").
 *
 * @module
 */

const MUC = "MUC, XEP-0045, on conference.localhost (not filed yet)";
const PEP = "PEP, XEP-0163 (#5)";
const PUBSUB = "pubsub service, XEP-0060, on pubsub.localhost (not filed yet)";

/** Script file name -> why it fails today. */
export const EXPECTED_FAILURES: Readonly<Record<string, string>> = {
  "blocking.scs": "blocking, XEP-0191 (#5)",
  "bookmarks2.scs": "PEP native bookmarks, XEP-0402 (#5)",
  "empty_bookmarks.scs": "private XML storage and bookmarks conversion, XEP-0049/0402 (#5)",
  "extdisco.scs": "external service discovery, XEP-0215 (#5)",
  "http_upload.scs": "HTTP upload, XEP-0363, on upload.localhost (not filed yet)",
  "issue505.scs": MUC,
  "issue978.scs": MUC,
  "muc_affiliation_notify.scs": MUC,
  "muc_create_destroy.scs": MUC,
  "muc_mediated_invite.scs": MUC,
  "muc_members_only_change.scs": MUC,
  "muc_members_only_deregister.scs": MUC,
  "muc_nickname_robotface.scs": MUC,
  "muc_outcast_reason.scs": MUC,
  "muc_presence_probe.scs": MUC,
  "muc_register.scs": MUC,
  "muc_show_offline.scs": MUC,
  "muc_subject_issue_667.scs": MUC,
  "muc_whois_anyone_member.scs": MUC,
  "pep_nickname.scs": PEP,
  "pep_publish_subscribe.scs": PEP,
  "pep_pubsub_max.scs": PEP,
  "pubsub_advanced.scs": PUBSUB,
  "pubsub_basic.scs": PUBSUB,
  "pubsub_config.scs": PUBSUB,
  "pubsub_createdelete.scs": PUBSUB,
  "pubsub_max_items.scs": PUBSUB,
  "pubsub_multi_items.scs": PUBSUB,
  "pubsub_preconditions.scs": PUBSUB,
  "tombstones.scs": "account removal, XEP-0077, with tombstones (#5)",
  "vcard_temp.scs": "vCard, XEP-0054 with vCard4 conversion (#5)",
  "version.scs": "permanent difference: expects the software name Prosody; ours names itself",
};
