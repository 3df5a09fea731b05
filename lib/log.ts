/**
 * Logging. This is the only module that imports the logging library, so that replacing it
 * touches one file; callers see {@link getLogger}, {@link Logger} and {@link setupLogging}.
 *
 * @module
 */

import {
  configure,
  getLogger as getLibraryLogger,
  type Logger as LibraryLogger,
  type LogRecord,
  reset,
} from "@logtape/logtape";

/** Log levels, least to most severe. */
export type LogLevel = "trace" | "debug" | "info" | "warning" | "error" | "fatal";

/**
 * A logger for one category: `logger.info("client {jid} connected", { jid })`, or with a
 * tagged template, ``logger.info`client ${jid} connected` ``.
 */
export type Logger = LibraryLogger;

/** The category every logger of this server lives under. */
const ROOT_CATEGORY = "xmpp";

/** Options for {@link setupLogging}, mainly for tests. */
export interface LoggingOptions {
  /**
   * Receives each formatted line (without a newline). By default, lines go to the console:
   * `trace` and `debug` to `console.debug`, `info` to `console.info`, `warning` to
   * `console.warn`, `error` and `fatal` to `console.error`.
   */
  readonly write?: (level: LogLevel, line: string) => void;
}

const LEVEL_NAMES: Readonly<Record<LogLevel, string>> = {
  trace: "TRACE",
  debug: "DEBUG",
  info: "INFO",
  warning: "WARN",
  error: "ERROR",
  fatal: "FATAL",
};

function renderValue(value: unknown): string {
  // Plain strings read best bare; any with control characters are quoted and escaped so that
  // a peer's input cannot forge a line in the log.
  // deno-lint-ignore no-control-regex
  if (typeof value === "string" && !/[\x00-\x1f\x7f"]/.test(value)) return value;
  return Deno.inspect(value, { colors: false, depth: 4, breakLength: Infinity });
}

/** `2024-05-01T12:00:00.000Z INFO  xmpp.c2s: client "alice@localhost" connected` */
function formatRecord(record: LogRecord): string {
  const parts = record.message.map((part, i) => i % 2 === 0 ? String(part) : renderValue(part));
  const time = new Date(record.timestamp).toISOString();
  const level = LEVEL_NAMES[record.level].padEnd(5);
  return `${time} ${level} ${record.category.join(".")}: ${parts.join("")}`;
}

function consoleWrite(level: LogLevel, line: string): void {
  switch (level) {
    case "trace":
    case "debug":
      console.debug(line);
      break;
    case "info":
      console.info(line);
      break;
    case "warning":
      console.warn(line);
      break;
    default:
      console.error(line);
  }
}

/**
 * Configures logging for the process: records at `level` and above under the `xmpp` category
 * are written as one compact line each. Calling it again replaces the previous setup, so tests
 * can call it freely.
 */
export async function setupLogging(level: LogLevel, options: LoggingOptions = {}): Promise<void> {
  const write = options.write ?? consoleWrite;
  await configure({
    reset: true,
    sinks: { main: (record: LogRecord) => write(record.level, formatRecord(record)) },
    loggers: [
      { category: [ROOT_CATEGORY], lowestLevel: level, sinks: ["main"] },
      // The library reports its own trouble here; without an entry it prints a notice.
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["main"] },
    ],
  });
}

/** Removes the logging setup, so that nothing is written until {@link setupLogging} again. */
export async function resetLogging(): Promise<void> {
  await reset();
}

/**
 * Returns the logger for a category below `xmpp`, e.g. `getLogger("c2s")` logs as `xmpp.c2s`.
 * Loggers may be taken at module load time; they follow whatever setup is in force.
 */
export function getLogger(...category: readonly string[]): Logger {
  return getLibraryLogger([ROOT_CATEGORY, ...category]);
}
