/**
 * `fallocate(FALLOC_FL_COLLAPSE_RANGE)` through libc, for trimming the head of a list file in
 * place. Deno exposes no file descriptors, so the file is opened a second time with libc
 * `open`; the collapse acts on the inode, which every other open handle shares.
 *
 * Everything here is optional: without `--allow-ffi`, off Linux, or where libc cannot be
 * loaded the answer is `"unavailable"`, and the caller copies instead.
 * @module
 */

/** The result of {@link collapseRange}. */
export type CollapseResult =
  /** The range was removed; the file is shorter by `len` bytes (not yet fsynced). */
  | "ok"
  /** The filesystem refused (EOPNOTSUPP, EINVAL, ENOSYS): tmpfs, a misaligned length, ... */
  | "unsupported"
  /** FFI is not permitted, not Linux, or libc could not be loaded. */
  | "unavailable";

/** A failure of libc other than "this filesystem cannot collapse". */
export class CollapseError extends Error {
  /** The C `errno`. */
  readonly errno: number;
  constructor(call: string, errno: number) {
    super(`${call} failed with errno ${errno}`);
    this.name = "CollapseError";
    this.errno = errno;
  }
}

/** `FALLOC_FL_COLLAPSE_RANGE` from `<linux/falloc.h>`. */
const FALLOC_FL_COLLAPSE_RANGE = 0x08;
// Linux values, the same on x86_64 and aarch64.
const O_RDWR = 0o2;
const O_CLOEXEC = 0o2000000;
const EINVAL = 22;
const ENOSYS = 38;
const EOPNOTSUPP = 95;

const SYMBOLS = {
  // `open` is variadic; the mode argument is only read with O_CREAT, which is never passed.
  open: { parameters: ["buffer", "i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  fallocate: { parameters: ["i32", "i32", "i64", "i64"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

// undefined: not tried yet; null: tried and unavailable.
let libc: Libc | null | undefined;

function loadLibc(): Libc | null {
  if (libc !== undefined) return libc;
  libc = null;
  if (Deno.build.os !== "linux") return libc;
  // querySync never prompts; "prompt" means the process was not started with --allow-ffi.
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return libc;
  try {
    libc = Deno.dlopen("libc.so.6", SYMBOLS).symbols;
  } catch {
    // musl or an unusual layout: the copy fallback covers it.
    libc = null;
  }
  return libc;
}

function errno(lib: Libc): number {
  // Calls are synchronous on the JS thread, so errno is still the one the last call set.
  const ptr = lib.__errno_location();
  return ptr === null ? 0 : new Deno.UnsafePointerView(ptr).getInt32();
}

/**
 * Removes the first `len` bytes of the file at `path`, shifting the rest down, with
 * `fallocate(fd, FALLOC_FL_COLLAPSE_RANGE, 0, len)`. `len` must be a positive multiple of the
 * filesystem block size and smaller than the file. The change is not synced: the caller
 * fsyncs through its own handle (same inode). Throws {@link CollapseError} for errors other
 * than the filesystem refusing (e.g. EIO, ENOSPC, EBADF).
 */
export function collapseRange(path: string, len: number): CollapseResult {
  const lib = loadLibc();
  if (lib === null) return "unavailable";
  const cPath = new TextEncoder().encode(`${path}\0`);
  const fd = lib.open(cPath, O_RDWR | O_CLOEXEC, 0);
  if (fd < 0) throw new CollapseError("open", errno(lib));
  try {
    const rc = lib.fallocate(fd, FALLOC_FL_COLLAPSE_RANGE, 0n, BigInt(len));
    if (rc === 0) return "ok";
    const err = errno(lib);
    if (err === EOPNOTSUPP || err === EINVAL || err === ENOSYS) return "unsupported";
    throw new CollapseError("fallocate", err);
  } finally {
    lib.close(fd);
  }
}
