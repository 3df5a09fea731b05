/**
 * The owner's room configuration form (XEP-0045 §10.2, `muc#roomconfig`), the room's
 * extended disco information (`muc#roominfo`, XEP-0128), and what a submitted form changes:
 * the new configuration and the status codes the occupants are told (104 for any change,
 * 170/171 when archiving starts or stops, 172/173 when the room becomes non-anonymous or
 * semi-anonymous).
 * @module
 */
import { elem, type Element } from "../../xml/element.ts";
import {
  buildForm,
  type DataForm,
  type FieldSpec,
  type FormField,
  formTypeField,
} from "../../xmpp/forms.ts";
import { utf8Bytes } from "../../limits.ts";
import { NS_MUC_ROOMCONFIG, NS_MUC_ROOMINFO } from "./namespaces.ts";
import { clampUsers } from "./state.ts";
import {
  type MucCtx,
  type PmPolicy,
  type Role,
  ROLE_RANK,
  type Room,
  type RoomConfig,
} from "./types.ts";

const PM_POLICIES: readonly PmPolicy[] = ["anyone", "participants", "moderators", "none"];
const ROLES = Object.keys(ROLE_RANK) as Role[];
const WHOIS = ["moderators", "anyone"] as const;

const bool = (v: boolean) => [v ? "1" : "0"];

/** The form field of {@link RoomConfig.enforceNick}. */
export const ENFORCE_NICK_FIELD = "x-enforce_registered_nickname";

/** The configuration form as the owner gets it, filled with the current values. */
export function configForm(room: Room, ctx: MucCtx): Element {
  const c = room.config;
  const fields: FieldSpec[] = [
    formTypeField(NS_MUC_ROOMCONFIG),
    { var: "muc#roomconfig_roomname", type: "text-single", label: "Title", values: [c.name] },
    {
      var: "muc#roomconfig_roomdesc",
      type: "text-single",
      label: "Description",
      values: [c.description],
    },
    {
      var: "muc#roomconfig_persistentroom",
      type: "boolean",
      label: "Persistent (kept when the last occupant leaves)",
      values: bool(c.persistent),
    },
    {
      var: "muc#roomconfig_publicroom",
      type: "boolean",
      label: "Include room information in public lists",
      values: bool(c.public),
    },
    {
      var: "muc#roomconfig_membersonly",
      type: "boolean",
      label: "Only allow members to join",
      values: bool(c.membersOnly),
    },
    {
      var: "muc#roomconfig_moderatedroom",
      type: "boolean",
      label: "Moderated (only occupants with voice may speak)",
      values: bool(c.moderated),
    },
    {
      var: "muc#roomconfig_passwordprotectedroom",
      type: "boolean",
      label: "Password protected",
      values: bool(c.password !== ""),
    },
    {
      var: "muc#roomconfig_roomsecret",
      type: "text-private",
      label: "Password",
      values: [c.password],
    },
    {
      var: "muc#roomconfig_maxusers",
      type: "text-single",
      label: `Maximum number of occupants (at most ${ctx.limits.occupantsPerRoom})`,
      values: [String(c.maxUsers)],
    },
    {
      var: "muc#roomconfig_whois",
      type: "list-single",
      label: "Who may discover real JIDs",
      options: WHOIS,
      values: [c.whois],
    },
    {
      var: "muc#roomconfig_allowinvites",
      type: "boolean",
      label: "Allow members to invite new members",
      values: bool(c.allowInvites),
    },
    {
      var: "muc#roomconfig_changesubject",
      type: "boolean",
      label: "Allow anyone to set the room's subject",
      values: bool(c.changeSubject),
    },
    {
      var: "muc#roomconfig_allowpm",
      type: "list-single",
      label: "Who may send private messages",
      options: PM_POLICIES,
      values: [c.allowPm],
    },
    {
      var: "muc#roomconfig_presencebroadcast",
      type: "list-multi",
      label: "Roles whose presence is broadcast (none: list absent members)",
      options: ROLES,
      values: c.presenceBroadcast,
    },
    {
      var: "muc#roomconfig_historylength",
      type: "text-single",
      label: `Messages of history for newcomers (at most ${ctx.limits.historyMessages})`,
      values: [String(c.historyLength)],
    },
    { var: "muc#roomconfig_lang", type: "text-single", label: "Language", values: [c.language] },
  ];
  if (ctx.archiving) {
    fields.push({
      var: "muc#roomconfig_enablearchiving",
      type: "boolean",
      label: "Archive the discussion (XEP-0313)",
      values: bool(c.archiving),
    });
  }
  // XEP-0045 §10.2: the admin and owner lists, in the order they were affiliated.
  const listed = (aff: "admin" | "owner") =>
    [...room.affiliations].filter(([, e]) => e.affiliation === aff).map(([jid]) => jid);
  fields.push(
    {
      var: "muc#roomconfig_roomadmins",
      type: "jid-multi",
      label: "Full list of room admins",
      values: listed("admin"),
    },
    {
      var: "muc#roomconfig_roomowners",
      type: "jid-multi",
      label: "Full list of room owners",
      values: listed("owner"),
    },
    {
      // Not a registered field (XEP-0068 §3.3 wants "x-" for those): Prosody's option's name.
      var: ENFORCE_NICK_FIELD,
      type: "boolean",
      label: "Users with a reserved nick must use it",
      values: bool(c.enforceNick),
    },
  );
  return buildForm("form", fields);
}

/** A refused form: the stanza error to answer with. */
export interface ConfigError {
  readonly error: "bad-request" | "not-acceptable";
  readonly text: string;
}

function parseBool(f: FormField): boolean | undefined {
  const v = f.values[0];
  if (v === "1" || v === "true") return true;
  if (v === "0" || v === "false") return false;
  return undefined;
}

function parseCount(f: FormField): number | undefined {
  const v = f.values[0] ?? "";
  if (v === "" || v === "none") return 0;
  return /^\d{1,9}$/.test(v) ? Number(v) : undefined;
}

/**
 * The configuration a submitted form asks for. Fields left out keep their value; unknown
 * fields are ignored (XEP-0004 lets a form carry more); a value of the wrong kind is refused
 * with bad-request rather than half applied. Numbers are clamped to the service's limits.
 */
export function applyConfigForm(
  room: Room,
  form: DataForm,
  ctx: MucCtx,
): RoomConfig | ConfigError {
  const c: { -readonly [K in keyof RoomConfig]: RoomConfig[K] } = { ...room.config };
  let passwordProtected: boolean | undefined;
  for (const [name, f] of form.byVar) {
    const bad = (): ConfigError => ({ error: "bad-request", text: `Invalid value for ${name}` });
    const flag = () => parseBool(f);
    const textValue = (): string | undefined => {
      const v = f.values.join("\n");
      return utf8Bytes(v) > ctx.limits.configTextBytes ? undefined : v;
    };
    switch (name) {
      case "muc#roomconfig_roomname":
      case "muc#roomconfig_roomdesc":
      case "muc#roomconfig_roomsecret":
      case "muc#roomconfig_lang": {
        const v = textValue();
        if (v === undefined) return { error: "not-acceptable", text: `${name} is too long` };
        if (name === "muc#roomconfig_roomname") c.name = v;
        else if (name === "muc#roomconfig_roomdesc") c.description = v;
        else if (name === "muc#roomconfig_roomsecret") c.password = v;
        else c.language = v;
        break;
      }
      case "muc#roomconfig_persistentroom":
      case "muc#roomconfig_publicroom":
      case "muc#roomconfig_membersonly":
      case "muc#roomconfig_moderatedroom":
      case "muc#roomconfig_allowinvites":
      case "muc#roomconfig_changesubject":
      case "muc#roomconfig_passwordprotectedroom":
      case ENFORCE_NICK_FIELD:
      case "muc#roomconfig_enablearchiving": {
        const v = flag();
        if (v === undefined) return bad();
        if (name === "muc#roomconfig_persistentroom") c.persistent = v;
        else if (name === "muc#roomconfig_publicroom") c.public = v;
        else if (name === "muc#roomconfig_membersonly") c.membersOnly = v;
        else if (name === "muc#roomconfig_moderatedroom") c.moderated = v;
        else if (name === "muc#roomconfig_allowinvites") c.allowInvites = v;
        else if (name === "muc#roomconfig_changesubject") c.changeSubject = v;
        else if (name === "muc#roomconfig_passwordprotectedroom") passwordProtected = v;
        else if (name === ENFORCE_NICK_FIELD) c.enforceNick = v;
        else if (ctx.archiving) c.archiving = v;
        break;
      }
      case "muc#roomconfig_maxusers": {
        const v = parseCount(f);
        if (v === undefined) return bad();
        c.maxUsers = clampUsers(v, ctx);
        break;
      }
      case "muc#roomconfig_historylength": {
        const v = parseCount(f);
        if (v === undefined) return bad();
        c.historyLength = Math.min(v, ctx.limits.historyMessages);
        break;
      }
      case "muc#roomconfig_whois": {
        const v = f.values[0];
        if (v !== "moderators" && v !== "anyone") return bad();
        c.whois = v;
        break;
      }
      case "muc#roomconfig_presencebroadcast": {
        if (!f.values.every((v) => Object.hasOwn(ROLE_RANK, v))) return bad();
        // Kept in rank order without repeats, so that equal choices compare equal.
        c.presenceBroadcast = ROLES.filter((r) => f.values.includes(r));
        break;
      }
      case "muc#roomconfig_allowpm": {
        const v = f.values[0] as PmPolicy;
        if (!PM_POLICIES.includes(v)) return bad();
        c.allowPm = v;
        break;
      }
    }
  }
  // An explicit "not protected" clears the password, whatever roomsecret said.
  if (passwordProtected === false) c.password = "";
  return c;
}

/** The status codes of a configuration change (XEP-0045 §10.2.1), none when nothing changed. */
export function configChangeCodes(before: RoomConfig, after: RoomConfig): string[] {
  const changed = (Object.keys(after) as (keyof RoomConfig)[]).some((k) =>
    k === "presenceBroadcast" ? before[k].join() !== after[k].join() : before[k] !== after[k]
  );
  if (!changed) return [];
  const codes = ["104"];
  if (!before.archiving && after.archiving) codes.push("170");
  if (before.archiving && !after.archiving) codes.push("171");
  if (before.whois !== "anyone" && after.whois === "anyone") codes.push("172");
  if (before.whois === "anyone" && after.whois !== "anyone") codes.push("173");
  return codes;
}

/** The room's name as disco shows it: its title, else its localpart. */
export function displayName(room: Room): string {
  return room.config.name !== "" ? room.config.name : room.jid.split("@")[0];
}

/** The `muc#roominfo` form of the room's disco#info (XEP-0045 §6.4, XEP-0128). */
export function roomInfoForm(room: Room): Element {
  const c = room.config;
  const fields: FieldSpec[] = [
    formTypeField(NS_MUC_ROOMINFO),
    { var: "muc#roominfo_description", label: "Description", values: [c.description] },
    {
      var: "muc#roominfo_occupants",
      label: "Number of occupants",
      values: [String(room.occupants.size)],
    },
    {
      var: "muc#roominfo_subject",
      label: "Subject",
      values: [room.subject?.text ?? ""],
    },
    {
      var: "muc#roominfo_changesubject",
      label: "Occupants may change the subject",
      values: bool(c.changeSubject),
    },
    { var: "muc#roomconfig_roomname", label: "Title", values: [c.name] },
  ];
  if (c.language !== "") {
    fields.push({ var: "muc#roominfo_lang", label: "Language", values: [c.language] });
  }
  return buildForm("result", fields);
}

/** The disco#info features of a room (XEP-0045 §15.2.2). */
export function roomFeatures(room: Room, ctx: MucCtx): string[] {
  const c = room.config;
  return [
    c.public ? "muc_public" : "muc_hidden",
    c.persistent ? "muc_persistent" : "muc_temporary",
    c.membersOnly ? "muc_membersonly" : "muc_open",
    c.moderated ? "muc_moderated" : "muc_unmoderated",
    c.password !== "" ? "muc_passwordprotected" : "muc_unsecured",
    c.whois === "anyone" ? "muc_nonanonymous" : "muc_semianonymous",
  ].concat(ctx.archiving && c.archiving ? ["urn:xmpp:mam:2"] : []);
}

/** `<identity category=conference type=text name=.../>`. */
export function roomIdentity(room: Room): Element {
  return elem("identity", { category: "conference", type: "text", name: displayName(room) });
}
