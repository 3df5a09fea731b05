import assert from "node:assert/strict";
import { getLogger, type LogLevel, resetLogging, setupLogging } from "../lib/log.ts";

const LINE = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (\S+) +(\S+): (.*)$/;

Deno.test("setupLogging writes compact lines at and above the level", async () => {
  const lines: [LogLevel, string][] = [];
  await setupLogging("info", { write: (level, line) => lines.push([level, line]) });
  try {
    const log = getLogger("c2s");
    const before = Date.now();
    log.debug("hidden");
    log.info("client {jid} connected from {port}", { jid: "alice@localhost", port: 5222 });
    log.warn`stanza too big: ${70000} bytes`;
    log.error("broken\nline {value}", { value: "evil\ninjected" });
    assert.equal(lines.length, 3);

    const [level, line] = lines[0];
    assert.equal(level, "info");
    const m = LINE.exec(line);
    assert.ok(m, line);
    const time = Date.parse(m[1]);
    assert.ok(time >= before - 1000 && time <= Date.now() + 1000);
    assert.equal(m[2], "INFO");
    assert.equal(m[3], "xmpp.c2s");
    // Plain strings are written bare; only those with control characters get quoted.
    assert.equal(m[4], "client alice@localhost connected from 5222");

    assert.equal(lines[1][0], "warning");
    assert.match(lines[1][1], / WARN +xmpp\.c2s: stanza too big: 70000 bytes$/);
    // A value from a peer is quoted and escaped: it cannot start a fake log line.
    assert.equal(lines[2][0], "error");
    assert.ok(lines[2][1].endsWith('line "evil\\ninjected"'), lines[2][1]);
  } finally {
    await resetLogging();
  }
});

Deno.test("setupLogging can be called again and reset", async () => {
  const first: string[] = [];
  const second: string[] = [];
  await setupLogging("warning", { write: (_, line) => first.push(line) });
  await setupLogging("trace", { write: (_, line) => second.push(line) });
  const log = getLogger("storage", "list");
  log.trace("deep detail");
  assert.equal(first.length, 0);
  assert.equal(second.length, 1);
  assert.match(second[0], / TRACE xmpp\.storage\.list: deep detail$/);

  await resetLogging();
  log.error("after reset");
  assert.equal(second.length, 1);
});
