/**
 * Parser for scansion conversation scripts (`.scs`): the client declarations above the dashes
 * line and the actions below it, with their stanza blocks parsed into {@link Element}s by our own
 * streaming XML parser.
 *
 * @module
 */
import { createStreamParser } from "../../lib/xml/parser.ts";
import type { Element, XmlNode } from "../../lib/xml/element.ts";

/** Namespace of the `scansion:` prefix (`scansion:strict`), as scansion itself declares it. */
export const NS_SCANSION = "https://matthewwild.co.uk/projects/scansion";

/** One `[Client] Name` declaration. */
export interface ClientSpec {
  readonly name: string;
  /** As written: bare, or full when the script pins the resource. */
  readonly jid: string;
  readonly password: string;
  /** From a `resource:` line, or from the resource part of a full `jid`. */
  readonly resource?: string;
  /** Line number (1-based) of the `[Client]` line. */
  readonly line: number;
}

interface StepBase {
  /** The client's name as declared. */
  readonly client: string;
  /** Line number (1-based) of the action line. */
  readonly line: number;
  /** The action line itself, for messages. */
  readonly source: string;
}

/** One action below the dashes line. */
export type Step =
  | StepBase & { readonly kind: "connects" }
  | StepBase & { readonly kind: "disconnects" }
  | StepBase & { readonly kind: "sends"; readonly stanzas: readonly Element[] }
  | StepBase & { readonly kind: "receives"; readonly stanzas: readonly Element[] }
  | StepBase & { readonly kind: "receives-nothing" };

/** A parsed script. */
export interface Script {
  /** The first comment line, without its `#`. */
  readonly title: string;
  readonly clients: readonly ClientSpec[];
  readonly steps: readonly Step[];
}

/** A script that cannot be understood; `line` is 1-based. */
export class ScriptError extends Error {
  override name = "ScriptError";
  constructor(message: string, readonly line: number) {
    super(`line ${line}: ${message}`);
  }
}

const DASHES = /^-{3,}\s*$/;
const ACTION = /^(.+?)\s+(connects|disconnects|sends:?|receives:?)(?:\s+(nothing))?\s*$/;

function isComment(line: string): boolean {
  return line.startsWith("#") || line.startsWith("--") || line.startsWith("//");
}

function isIndented(line: string): boolean {
  return line.startsWith(" ") || line.startsWith("\t");
}

/**
 * Parses the XML of one indented block (one or more top-level stanzas). Unprefixed elements are
 * `jabber:client`, and the `scansion:` prefix is declared, as in scansion itself.
 */
export function parseStanzaBlock(xml: string): Element[] {
  const parser = createStreamParser({ maxStanzaBytes: 1 << 24 });
  const enc = new TextEncoder();
  const doc =
    `<stream:stream xmlns="jabber:client" xmlns:stream="http://etherx.jabber.org/streams"` +
    ` xmlns:scansion="${NS_SCANSION}">${xml}</stream:stream>`;
  const out: Element[] = [];
  let closed = false;
  for (const ev of parser.push(enc.encode(doc))) {
    if (ev.kind === "stanza") out.push(ev.stanza);
    else if (ev.kind === "error") {
      throw new Error(`${ev.condition}${ev.text ? ": " + ev.text : ""}`);
    } else if (ev.kind === "stream-close") closed = true;
  }
  if (!closed) throw new Error("unterminated XML");
  return out;
}

/** Parses a whole `.scs` script; throws {@link ScriptError} on anything it does not understand. */
export function parseScript(text: string): Script {
  const lines = text.replace(/\r\n?/g, "\n").split("\n");
  let title = "";
  const clients: ClientSpec[] = [];
  const steps: Step[] = [];
  let i = 0;

  // Header: client declarations up to the dashes line.
  let current: { name: string; line: number; fields: Record<string, string> } | undefined;
  const finishClient = () => {
    if (current === undefined) return;
    const { name, line, fields } = current;
    const jid = fields["jid"];
    if (jid === undefined) throw new ScriptError(`client ${name} has no jid`, line);
    const slash = jid.indexOf("/");
    const resource = fields["resource"] ?? (slash >= 0 ? jid.slice(slash + 1) : undefined);
    clients.push({ name, jid, password: fields["password"] ?? "", resource, line });
    current = undefined;
  };
  for (; i < lines.length; i++) {
    const line = lines[i];
    if (DASHES.test(line)) break;
    if (line.trim() === "") continue;
    if (isComment(line)) {
      if (title === "" && line.startsWith("#")) title = line.replace(/^#+\s*/, "").trim();
      continue;
    }
    const decl = /^\[Client\]\s+(.+?)\s*$/.exec(line);
    if (decl !== null) {
      finishClient();
      if (clients.some((c) => c.name === decl[1])) {
        throw new ScriptError(`client ${decl[1]} declared twice`, i + 1);
      }
      current = { name: decl[1], line: i + 1, fields: {} };
      continue;
    }
    const field = /^\s+([\w-]+)\s*:\s*(.*?)\s*$/.exec(line);
    if (field !== null && current !== undefined) {
      current.fields[field[1]] = field[2];
      continue;
    }
    throw new ScriptError(`unexpected line in the client declarations: ${line.trim()}`, i + 1);
  }
  finishClient();
  if (i >= lines.length) throw new ScriptError("no line of dashes", lines.length);
  const names = new Set(clients.map((c) => c.name));

  // Body: one action per unindented line, each sends/receives followed by an indented block.
  for (i++; i < lines.length; i++) {
    const line = lines[i];
    if (line.trim() === "" || isComment(line) || DASHES.test(line)) continue;
    if (isIndented(line)) throw new ScriptError("indented line without an action", i + 1);
    const m = ACTION.exec(line);
    if (m === null) throw new ScriptError(`not an action: ${line.trim()}`, i + 1);
    const [, client, verb, nothing] = m;
    const base = { client, line: i + 1, source: line.trim() };
    if (!names.has(client)) throw new ScriptError(`unknown client ${client}`, i + 1);
    const kind = verb.replace(":", "");
    if (kind === "connects" || kind === "disconnects") {
      if (nothing !== undefined) throw new ScriptError(`"nothing" after ${kind}`, i + 1);
      steps.push({ ...base, kind });
      continue;
    }
    if (nothing !== undefined) {
      if (kind !== "receives") throw new ScriptError("only receives can expect nothing", i + 1);
      steps.push({ ...base, kind: "receives-nothing" });
      continue;
    }
    const block: string[] = [];
    while (i + 1 < lines.length && (isIndented(lines[i + 1]) || lines[i + 1].trim() === "")) {
      block.push(lines[++i]);
    }
    let stanzas: Element[];
    try {
      stanzas = parseStanzaBlock(block.join("\n"));
    } catch (e) {
      throw new ScriptError(`bad XML in the block: ${(e as Error).message}`, base.line);
    }
    if (stanzas.length === 0) throw new ScriptError(`${kind} without a stanza`, base.line);
    steps.push({ ...base, kind: kind === "sends" ? "sends" : "receives", stanzas });
  }
  return { title, clients, steps };
}

/** What a variable names: a client's bound full JID or its bare JID. */
export interface VariableRef {
  readonly client: string;
  readonly full: boolean;
}

const VARIABLE = /\$\{([^}]+)'s (full )?JID\}/g;

/**
 * Replaces `${Name's full JID}` and `${Name's JID}` in attribute values and text. `resolve`
 * returns the value or throws when the client has no JID yet.
 */
export function substituteVariables(
  el: Element,
  resolve: (ref: VariableRef) => string,
): Element {
  const sub = (s: string) =>
    s.includes("${")
      ? s.replace(
        VARIABLE,
        (_, client: string, full?: string) => resolve({ client, full: full !== undefined }),
      )
      : s;
  const attrs: Record<string, string> = {};
  for (const [k, v] of Object.entries(el.attrs)) attrs[k] = sub(v);
  const children: XmlNode[] = el.children.map((c) =>
    typeof c === "string" ? sub(c) : substituteVariables(c, resolve)
  );
  return { ...el, attrs, children };
}
