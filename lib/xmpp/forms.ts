/**
 * Data forms (XEP-0004), read and written in one place: PEP node configuration and
 * publish-options (XEP-0060, XEP-0223), MAM queries (XEP-0313), extended disco information
 * (XEP-0128) and its entity-capabilities hash (XEP-0115).
 *
 * Reading keeps what a peer sent: fields in document order (duplicates and fields without a
 * `var` included, since MAM refuses them and the caps hash covers them), and a Map by `var` for
 * lookups, because field names are the peer's (`constructor` and `__proto__` are names too).
 * @module
 */
import { childElements, elem, type Element, text } from "../xml/element.ts";
import { NS_DATA } from "./namespaces.ts";

/** The hidden field that names a form's kind (XEP-0068). */
export const FORM_TYPE = "FORM_TYPE";

/** The form types of XEP-0004 §3.1. */
export type FormType = "form" | "submit" | "cancel" | "result";

/** One `<field/>` as read. */
export interface FormField {
  /** The field's name; a field without one (a `fixed` field) has none. */
  readonly var?: string;
  /** The field type as given (`boolean`, `hidden`, `list-multi` ...); absent when not given. */
  readonly type?: string;
  readonly label?: string;
  /** The `<value/>` texts, in order. */
  readonly values: readonly string[];
  /** The `<option><value/></option>` texts, in order. */
  readonly options: readonly string[];
}

/** One `<x xmlns="jabber:x:data"/>` as read. */
export interface DataForm {
  /** The form's `type` attribute as given (not checked against {@link FormType}). */
  readonly type?: string;
  /** The first value of the FORM_TYPE field (as found in {@link byVar}), whatever its type. */
  readonly formType?: string;
  /** Every `<field/>`, in document order. */
  readonly fields: readonly FormField[];
  /** The fields by `var`; when a var repeats, the later field wins, as a later value would. */
  readonly byVar: ReadonlyMap<string, FormField>;
}

/** True for an `<x xmlns="jabber:x:data"/>` element. */
export function isDataForm(el: Element): boolean {
  return el.name === "x" && el.xmlns === NS_DATA;
}

/** The first data form among an element's children (publish-options, configure, a query). */
export function findForm(parent: Element): Element | undefined {
  return childElements(parent, NS_DATA).find((c) => c.name === "x");
}

/** Every data form among an element's children (XEP-0128 forms in a disco#info answer). */
export function findForms(parent: Element): Element[] {
  return childElements(parent, NS_DATA).filter((c) => c.name === "x");
}

function valuesOf(el: Element): string[] {
  return childElements(el, NS_DATA).filter((v) => v.name === "value").map(text);
}

function parseField(f: Element): FormField {
  const options = childElements(f, NS_DATA)
    .filter((o) => o.name === "option")
    .flatMap((o) => valuesOf(o).slice(0, 1));
  const field: { -readonly [K in keyof FormField]: FormField[K] } = {
    values: valuesOf(f),
    options,
  };
  if (f.attrs.var !== undefined) field.var = f.attrs.var;
  if (f.attrs.type !== undefined) field.type = f.attrs.type;
  if (f.attrs.label !== undefined) field.label = f.attrs.label;
  return field;
}

/**
 * Reads a data form. Only the `<field/>` children in the data forms namespace count; what the
 * fields mean, and whether a repeated or unknown one is an error, is the caller's to decide.
 */
export function parseForm(x: Element): DataForm {
  const fields = childElements(x, NS_DATA).filter((f) => f.name === "field").map(parseField);
  const byVar = new Map<string, FormField>();
  for (const f of fields) if (f.var !== undefined) byVar.set(f.var, f);
  const form: { -readonly [K in keyof DataForm]: DataForm[K] } = { fields, byVar };
  if (x.attrs.type !== undefined) form.type = x.attrs.type;
  const formType = byVar.get(FORM_TYPE)?.values[0];
  if (formType !== undefined) form.formType = formType;
  return form;
}

/** The values of the field named `v`, or undefined when the form has no such field. */
export function fieldValues(form: DataForm, v: string): readonly string[] | undefined {
  return form.byVar.get(v)?.values;
}

/** A field to write. */
export interface FieldSpec {
  readonly var: string;
  readonly type?: string;
  readonly label?: string;
  readonly values?: readonly string[];
  /** The choices of a list field, written before the values. */
  readonly options?: readonly string[];
}

/** The hidden FORM_TYPE field naming a form's kind. */
export function formTypeField(formType: string): FieldSpec {
  return { type: "hidden", var: FORM_TYPE, values: [formType] };
}

/** `<field type var label>` with its options, then its values. */
function fieldElement(f: FieldSpec): Element {
  return elem("field", { type: f.type, var: f.var, label: f.label }, [
    // Options first, then values: the order our node configuration form has always had.
    ...(f.options ?? []).map((o) => elem("option", {}, [elem("value", {}, [o])])),
    ...(f.values ?? []).map((value) => elem("value", {}, [value])),
  ]);
}

/** `<x xmlns="jabber:x:data" type=...>` with the fields in the order given. */
export function buildForm(type: FormType, fields: readonly FieldSpec[]): Element {
  return elem("x", { xmlns: NS_DATA, type }, fields.map(fieldElement));
}
