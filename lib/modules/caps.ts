/**
 * Entity capabilities (XEP-0115) of the server itself: the `<c/>` stream feature (§6.3) whose
 * `ver` is the hash of the domain's disco#info, taken from the same registry disco answers from,
 * so a client that checks the hash against our disco#info reply finds them equal.
 * @module
 */
import { createHash } from "node:crypto";
import { childElements, elem, type Element } from "../xml/element.ts";
import { type DataForm, findForms, FORM_TYPE, isDataForm, parseForm } from "../xmpp/forms.ts";
import { hostDiscoInfo } from "./disco.ts";
import type { Ctx, Identity, Module } from "../core/types.ts";
import { NS_CAPS, NS_DISCO_INFO } from "../xmpp/namespaces.ts";

/**
 * Identifies this software in `node`. XEP-0115 asks only for a URI unique to the application.
 * TODO(#5): the project's home page, once it has one.
 */
export const CAPS_NODE = "https://deno-xmpp.invalid";

/** A disco identity as it appears on the wire, with its language (XEP-0115 §5.1 step 2). */
export interface CapsIdentity extends Identity {
  readonly lang?: string;
}

/** The parts of a disco#info answer that the verification string covers. */
export interface CapsInput {
  readonly identities: readonly CapsIdentity[];
  readonly features: readonly string[];
  /** XEP-0128 `jabber:x:data` forms. */
  readonly forms: readonly Element[];
}

const utf8 = new TextEncoder();

/** XEP-0115 §5.1 sorts with "i;octet" (RFC 4790): by UTF-8 bytes, not UTF-16 units. */
function octetCompare(a: string, b: string): number {
  const x = utf8.encode(a);
  const y = utf8.encode(b);
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

function compareIdentities(a: CapsIdentity, b: CapsIdentity): number {
  return octetCompare(a.category, b.category) || octetCompare(a.type, b.type) ||
    octetCompare(a.lang ?? "", b.lang ?? "") || octetCompare(a.name ?? "", b.name ?? "");
}

/** The FORM_TYPE of a form, when it has a hidden one; §5.4 step 3.6 ignores the others. */
function hiddenFormType(form: DataForm): string | undefined {
  const field = form.fields.find((f) => f.var === FORM_TYPE);
  if (field === undefined || field.type !== "hidden") return undefined;
  return field.values[0];
}

/** The string S of XEP-0115 §5.1, before hashing. */
export function verificationInput(info: CapsInput): string {
  let s = "";
  // 2-3. Identities sorted by category, type, xml:lang (then name, for a stable order).
  for (const i of [...info.identities].sort(compareIdentities)) {
    s += `${i.category}/${i.type}/${i.lang ?? ""}/${i.name ?? ""}<`;
  }
  // 4-5. Features sorted.
  for (const f of [...info.features].sort(octetCompare)) s += `${f}<`;
  // 6. Forms sorted by FORM_TYPE; within one, fields by var and each field's values sorted.
  const forms = info.forms
    .filter(isDataForm)
    .flatMap((el) => {
      const form = parseForm(el);
      const type = hiddenFormType(form);
      return type === undefined ? [] : [{ type, form }];
    })
    .sort((a, b) => octetCompare(a.type, b.type));
  for (const { type, form } of forms) {
    s += `${type}<`;
    // Every named field but FORM_TYPE, a repeated var included.
    const fields = form.fields
      .flatMap((f) => f.var === undefined || f.var === FORM_TYPE ? [] : [{ ...f, var: f.var }])
      .sort((a, b) => octetCompare(a.var, b.var));
    for (const field of fields) {
      s += `${field.var}<`;
      for (const v of [...field.values].sort(octetCompare)) s += `${v}<`;
    }
  }
  return s;
}

/** The `ver` of XEP-0115 §5.1 with SHA-1: base64 of the hash of S's UTF-8 bytes. */
export function verificationString(info: CapsInput): string {
  return createHash("sha1").update(utf8.encode(verificationInput(info))).digest("base64");
}

/** What a receiver hashes from a disco#info `<query/>` (XEP-0115 §5.4 step 3.4). */
export function capsInputOf(query: Element): CapsInput {
  const kids = childElements(query, NS_DISCO_INFO);
  return {
    identities: kids.filter((k) => k.name === "identity").map((k) => ({
      category: k.attrs.category ?? "",
      type: k.attrs.type ?? "",
      name: k.attrs.name,
      lang: k.attrs["xml:lang"],
    })),
    features: kids.filter((k) => k.name === "feature").map((k) => k.attrs.var ?? ""),
    forms: findForms(query),
  };
}

/** The `<c/>` stream feature announcing the domain's capabilities (XEP-0115 §6.3). */
function capsFeature(info: CapsInput): Element {
  return elem("c", {
    xmlns: NS_CAPS,
    hash: "sha-1",
    node: CAPS_NODE,
    ver: verificationString(info),
  });
}

/**
 * The caps module for a registry of the other modules: it announces, after authentication, the
 * hash of exactly what disco#info on the domain answers for that same registry under the same
 * context (so a module that is off counts in neither).
 */
export function capsModule(modules: readonly Module[]): Module {
  // A context (the server's, for every session) always gives the same answer: hashed once per
  // context, not at every login.
  const features = new WeakMap<Ctx, Element>();
  return {
    name: "caps",
    authedFeatures: (ctx: Ctx) => {
      let c = features.get(ctx);
      if (c === undefined) features.set(ctx, c = capsFeature(hostDiscoInfo(modules, ctx)));
      return [c];
    },
  };
}
