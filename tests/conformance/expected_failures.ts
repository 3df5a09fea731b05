/**
 * Scansion scripts our server is known to fail, with the reason: the issue that will build the
 * missing feature, or a permanent, intended difference. `scansion_test.ts` fails when a listed
 * script passes (remove it here) or an unlisted one fails.
 *
 * Every MUC and pubsub script passes (issue 12), and HTTP upload (issue 13).
 *
 * @module
 */

/** Script file name -> why it fails today. */
export const EXPECTED_FAILURES: Readonly<Record<string, string>> = {
  "version.scs": "permanent difference: expects the software name Prosody; ours names itself",
};
