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
const PUBSUB = "pubsub service, XEP-0060, on pubsub.localhost (not filed yet)";

/** Script file name -> why it fails today. */
export const EXPECTED_FAILURES: Readonly<Record<string, string>> = {
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
  "pubsub_config.scs": PUBSUB,
  "pubsub_preconditions.scs": PUBSUB,
  "version.scs": "permanent difference: expects the software name Prosody; ours names itself",
};
