/**
 * The HTTP side of XEP-0363 file upload, and the service that grants the slots
 * (lib/services/upload/service.ts decides; this keeps the state and does the I/O):
 *
 * - slots granted over XMPP wait in memory for their one PUT (bounded, they expire in minutes);
 * - a PUT must carry the slot's signed `Authorization` header and exactly the declared size
 *   and type; the bytes go to a temporary file renamed into place, then a small JSON index
 *   beside it (owner, size, type, time) marks the upload complete;
 * - GET and HEAD serve stored files with headers that keep a browser from running them
 *   (`nosniff`, `attachment` for anything but images, `default-src 'none'`), with ranges;
 * - quotas count the indexed bytes (scanned at start) plus the open slots;
 * - a sweep deletes files older than `expires_after`, at start and hourly.
 * @module
 */
import { join } from "node:path";
import type { Element } from "../xml/element.ts";
import {
  reduceUpload,
  type Slot,
  tokenMatches,
  UPLOAD_PATH,
  type UploadPolicy,
} from "../services/upload/service.ts";

/** What the upload service is set up with: the policy and what the server supplies. */
export interface UploadServiceOptions extends UploadPolicy {
  /** `data_dir`: files go under `<data_dir>/<domain>/upload/`. */
  readonly dataDir: string;
  readonly key: Uint8Array;
  readonly isLocal: (bare: string) => boolean;
  /** Where slots are served, without a trailing slash; asked per slot (the port is bound late). */
  readonly baseUrl: () => string;
  readonly newId: () => string;
  readonly now?: () => number;
  readonly route: (stanza: Element) => Promise<void> | void;
  readonly log?: (message: string) => void;
}

/** A started upload service. */
export interface UploadService {
  readonly domain: string;
  /** Takes a stanza for the service's domain. */
  readonly submit: (stanza: Element) => Promise<void> | void;
  /** Answers a request under `/upload/`. */
  readonly handle: (req: Request) => Promise<Response>;
  /** Deletes expired files now; resolves with how many. */
  readonly sweep: () => Promise<number>;
  /** Stops the hourly sweep. */
  readonly stop: () => Promise<void>;
}

/** What the index file of one upload holds. */
interface StoredFile {
  readonly id: string;
  readonly filename: string;
  readonly size: number;
  readonly contentType: string;
  readonly owner: string;
  /** Milliseconds since the epoch. */
  readonly created: number;
}

/** Open slots kept at most: beyond this the oldest go (they are minutes old at most anyway). */
const MAX_PENDING = 10_000;
const SWEEP_INTERVAL_MS = 3600_000;
/** Slot ids are our own random tokens: anything else in a URL is not one. */
const ID = /^[A-Za-z0-9_-]{8,64}$/;

function text(status: number, body: string, headers: Record<string, string> = {}): Response {
  return new Response(body + "\n", {
    status,
    headers: { "content-type": "text/plain; charset=utf-8", ...CORS, ...headers },
  });
}

// Web clients upload from their own origin; the token, not the origin, is what authorizes.
const CORS = {
  "access-control-allow-origin": "*",
  "access-control-allow-methods": "GET, HEAD, PUT, OPTIONS",
  "access-control-allow-headers": "Authorization, Content-Type",
  "access-control-expose-headers": "Content-Length, Content-Range, Accept-Ranges",
};

function mediaType(header: string | null): string | undefined {
  if (header === null) return undefined;
  return header.split(";")[0].trim().toLowerCase();
}

/**
 * The byte range `header` asks of a `size`-byte file: `[start, end]` inclusive, "none" without
 * a (usable) header, "unsatisfiable" for a range outside the file.
 */
export function parseRange(
  header: string | null,
  size: number,
): readonly [number, number] | "none" | "unsatisfiable" {
  if (header === null) return "none";
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  // Several ranges, other units: serve the whole file (RFC 9110 lets a server ignore Range).
  if (m === null || (m[1] === "" && m[2] === "")) return "none";
  if (m[1] === "") {
    const n = Number(m[2]);
    if (n === 0) return "unsatisfiable";
    return [Math.max(0, size - n), size - 1];
  }
  const start = Number(m[1]);
  const end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || end < start) return "unsatisfiable";
  return [start, end];
}

/** The headers every served file gets, so that a browser never runs or sniffs it. */
export function safeHeaders(file: StoredFile): Record<string, string> {
  const image = file.contentType.startsWith("image/");
  const name = encodeURIComponent(file.filename);
  return {
    "content-type": file.contentType,
    "x-content-type-options": "nosniff",
    "content-security-policy": "default-src 'none'; sandbox",
    "content-disposition": `${image ? "inline" : "attachment"}; filename*=UTF-8''${name}`,
    "accept-ranges": "bytes",
    "cache-control": "private, max-age=3600",
    ...CORS,
  };
}

/** A stream of `length` bytes of `file` from its current position; closes the file at the end. */
function limitedStream(file: Deno.FsFile, length: number): ReadableStream<Uint8Array> {
  let left = length;
  return new ReadableStream({
    async pull(controller) {
      if (left <= 0) {
        file.close();
        controller.close();
        return;
      }
      const buf = new Uint8Array(Math.min(65536, left));
      const n = await file.read(buf);
      if (n === null) {
        file.close();
        controller.close();
        return;
      }
      left -= n;
      controller.enqueue(buf.subarray(0, n));
    },
    cancel() {
      file.close();
    },
  });
}

async function writeAtomically(path: string, data: Uint8Array): Promise<void> {
  const temp = `${path}.tmp-${crypto.randomUUID()}`;
  await Deno.writeFile(temp, data, { mode: 0o600 });
  await Deno.rename(temp, path);
}

async function removeQuietly(path: string): Promise<void> {
  try {
    await Deno.remove(path);
  } catch {
    // already gone
  }
}

/** Starts the service: scans the stored files, sweeps expired ones, starts the hourly sweep. */
export async function startUploadService(opts: UploadServiceOptions): Promise<UploadService> {
  const now = opts.now ?? Date.now;
  const log = opts.log ?? (() => {});
  const dir = join(opts.dataDir, opts.domain, "upload");
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const files = new Map<string, StoredFile>();
  const pending = new Map<string, Slot>();
  const usage = new Map<string, number>();
  let total = 0;

  const count = (owner: string, delta: number) => {
    const n = (usage.get(owner) ?? 0) + delta;
    if (n <= 0) usage.delete(owner);
    else usage.set(owner, n);
    total += delta;
  };

  // The index: each complete upload has `<id>.json`; anything else is a cut-short write.
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.isFile) continue;
    if (entry.name.includes(".tmp-")) {
      await removeQuietly(join(dir, entry.name));
      continue;
    }
    if (!entry.name.endsWith(".json")) continue;
    try {
      const meta = JSON.parse(await Deno.readTextFile(join(dir, entry.name))) as StoredFile;
      if (!ID.test(meta.id) || `${meta.id}.json` !== entry.name) continue;
      files.set(meta.id, meta);
      count(meta.owner, meta.size);
    } catch (err) {
      log(`Unreadable upload index ${entry.name}: ${err}`);
    }
  }

  const dropExpiredSlots = () => {
    const t = now();
    for (const [id, s] of pending) if (s.expires < t) pending.delete(id);
  };
  const reservedBy = (owner: string) => {
    let n = 0;
    for (const s of pending.values()) if (s.owner === owner) n += s.size;
    return n;
  };
  const reservedTotal = () => {
    let n = 0;
    for (const s of pending.values()) n += s.size;
    return n;
  };

  function submit(stanza: Element): Promise<void> | void {
    dropExpiredSlots();
    const outputs = reduceUpload(stanza, {
      domain: opts.domain,
      maxFileSize: opts.maxFileSize,
      allowedTypes: opts.allowedTypes,
      quotaPerUser: opts.quotaPerUser,
      quotaTotal: opts.quotaTotal,
      isLocal: opts.isLocal,
      usedBy: (bare) => (usage.get(bare) ?? 0) + reservedBy(bare),
      usedTotal: total + reservedTotal(),
      now: now(),
      newId: opts.newId,
      key: opts.key,
      baseUrl: opts.baseUrl(),
    });
    const waits: Promise<void>[] = [];
    for (const o of outputs) {
      if (o.kind === "slot") {
        if (pending.size >= MAX_PENDING) pending.delete(pending.keys().next().value!);
        pending.set(o.slot.id, o.slot);
      } else {
        const routed = opts.route({ ...o.stanza, attrs: { ...o.stanza.attrs, from: opts.domain } });
        if (routed !== undefined) waits.push(routed);
      }
    }
    return waits.length === 0 ? undefined : Promise.all(waits).then(() => {});
  }

  async function put(req: Request, id: string, filename: string): Promise<Response> {
    const slot = pending.get(id);
    if (slot === undefined) {
      return files.has(id)
        ? text(409, "This slot was already used")
        : text(403, "Unknown or expired upload slot");
    }
    if (
      slot.filename !== filename || !tokenMatches(opts.key, slot, req.headers.get("authorization"))
    ) {
      return text(403, "Missing or wrong Authorization for this slot");
    }
    if (slot.expires < now()) {
      pending.delete(id);
      return text(403, "The upload slot has expired");
    }
    const lengthHeader = req.headers.get("content-length");
    if (lengthHeader === null) return text(411, "Content-Length is required");
    const length = /^\d{1,16}$/.test(lengthHeader) ? Number(lengthHeader) : NaN;
    if (length > slot.size) return text(413, `The slot is for ${slot.size} bytes, not more`);
    if (length !== slot.size) return text(400, `The slot is for exactly ${slot.size} bytes`);
    const type = mediaType(req.headers.get("content-type"));
    if (type !== undefined && type !== slot.contentType) {
      return text(415, `The slot is for ${slot.contentType}, not ${type}`);
    }
    // One PUT per slot: taken before the body arrives, so a second PUT at once is refused too.
    pending.delete(id);
    const path = join(dir, id);
    const temp = `${path}.tmp-${crypto.randomUUID()}`;
    let written = 0;
    let tooLarge = false;
    try {
      const file = await Deno.open(temp, { write: true, createNew: true, mode: 0o600 });
      try {
        if (req.body !== null) {
          for await (const chunk of req.body) {
            written += chunk.length;
            if (written > slot.size) {
              tooLarge = true;
              break;
            }
            for (let off = 0; off < chunk.length;) off += await file.write(chunk.subarray(off));
          }
        }
        if (!tooLarge && written === slot.size) await file.sync();
      } finally {
        file.close();
      }
      if (tooLarge || written !== slot.size) {
        await removeQuietly(temp);
        pending.set(id, slot); // the client may try again with the right bytes
        return tooLarge
          ? text(413, `The slot is for ${slot.size} bytes, not more`)
          : text(400, `The slot is for exactly ${slot.size} bytes, got ${written}`);
      }
      await Deno.rename(temp, path);
      const meta: StoredFile = {
        id,
        filename: slot.filename,
        size: slot.size,
        contentType: slot.contentType,
        owner: slot.owner,
        created: now(),
      };
      await writeAtomically(`${path}.json`, new TextEncoder().encode(JSON.stringify(meta)));
      files.set(id, meta);
      count(meta.owner, meta.size);
    } catch (err) {
      await removeQuietly(temp);
      log(`Storing upload ${id} failed: ${err}`);
      return text(500, "The file could not be stored");
    }
    return text(201, "Created");
  }

  async function get(req: Request, id: string, filename: string): Promise<Response> {
    const meta = files.get(id);
    if (meta === undefined || meta.filename !== filename) return text(404, "Not found");
    const headers = safeHeaders(meta);
    const range = parseRange(req.headers.get("range"), meta.size);
    if (range === "unsatisfiable") {
      return text(416, "Range not satisfiable", { "content-range": `bytes */${meta.size}` });
    }
    const [start, end] = range === "none" ? [0, meta.size - 1] : range;
    const length = end - start + 1;
    const status = range === "none" ? 200 : 206;
    const extra: Record<string, string> = { "content-length": String(length) };
    if (status === 206) extra["content-range"] = `bytes ${start}-${end}/${meta.size}`;
    if (req.method === "HEAD") {
      return new Response(null, { status, headers: { ...headers, ...extra } });
    }
    let file: Deno.FsFile;
    try {
      file = await Deno.open(join(dir, id), { read: true });
    } catch {
      return text(404, "Not found");
    }
    if (start > 0) await file.seek(start, Deno.SeekMode.Start);
    return new Response(limitedStream(file, length), { status, headers: { ...headers, ...extra } });
  }

  async function handle(req: Request): Promise<Response> {
    const path = new URL(req.url).pathname;
    const rest = path.slice(UPLOAD_PATH.length).split("/");
    if (req.method === "OPTIONS") return new Response(null, { status: 204, headers: CORS });
    if (rest.length !== 2 || !ID.test(rest[0])) return text(404, "Not found");
    let filename: string;
    try {
      filename = decodeURIComponent(rest[1]);
    } catch {
      return text(404, "Not found");
    }
    switch (req.method) {
      case "PUT":
        return await put(req, rest[0], filename);
      case "GET":
      case "HEAD":
        return await get(req, rest[0], filename);
      default:
        return text(405, "Method not allowed", { allow: "GET, HEAD, PUT, OPTIONS" });
    }
  }

  async function sweep(): Promise<number> {
    dropExpiredSlots();
    if (!Number.isFinite(opts.expiresAfter)) return 0;
    const before = now() - opts.expiresAfter * 1000;
    let removed = 0;
    for (const meta of [...files.values()]) {
      if (meta.created > before) continue;
      files.delete(meta.id);
      count(meta.owner, -meta.size);
      // The index first: a crash between the two leaves bytes no one serves, not a dangling
      // index; the data file is then removed below or at the next start's scan.
      await removeQuietly(join(dir, `${meta.id}.json`));
      await removeQuietly(join(dir, meta.id));
      removed++;
    }
    return removed;
  }

  let sweeping: Promise<unknown> = Promise.resolve();
  const runSweep = () => {
    sweeping = sweeping.then(sweep).then(
      (n) => n > 0 && log(`Upload expiry removed ${n} files`),
      (err) => log(`Upload expiry failed: ${err}`),
    );
  };
  runSweep();
  const timer = setInterval(runSweep, SWEEP_INTERVAL_MS);
  // The hourly sweep alone never keeps the process alive (a start that fails after this).
  Deno.unrefTimer(timer);
  // Data files without an index (a crash after the rename, or a sweep cut short) are removed at
  // start: nothing serves them and they count against no quota.
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && ID.test(entry.name) && !files.has(entry.name)) {
      await removeQuietly(join(dir, entry.name));
    }
  }

  return {
    domain: opts.domain,
    submit,
    handle,
    sweep: () => {
      const p = sweeping.then(sweep);
      sweeping = p.catch(() => {});
      return p;
    },
    async stop() {
      clearInterval(timer);
      await sweeping;
    },
  };
}
