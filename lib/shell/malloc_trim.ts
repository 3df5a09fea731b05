/**
 * Gives the C heap's free memory back to the system: glibc's `malloc_trim(0)`, called through
 * Deno's FFI.
 *
 * Deno's native side (tokio's threads, the sockets' buffers, and native TLS) allocates with
 * glibc malloc, whose arenas keep what is freed: after a burst of 5000 logins and logouts about
 * 8 MB of RSS stayed in them once V8 had given its own pages back, and `malloc_trim` returned
 * it in 15-30 ms. Linux with glibc only; elsewhere (another OS, musl, no `--allow-ffi`, a
 * runtime without `Deno.dlopen`) it does nothing.
 * @module
 */

/** The one symbol used. */
const SYMBOLS = { malloc_trim: { parameters: ["usize"], result: "i32" } } as const;

/** `malloc_trim(0)`, or undefined where it cannot be called. */
export type MallocTrim = () => void;

/** The call once made (undefined: not yet tried), shared by every server in the process. */
let opened: { readonly trim: MallocTrim | undefined } | undefined;

/**
 * Opens libc once per process and returns the call, or undefined where the platform or the
 * permissions do not allow it. Asks no permission: a server started without `--allow-ffi` is
 * not prompted.
 */
export function openMallocTrim(): MallocTrim | undefined {
  opened ??= { trim: open() };
  return opened.trim;
}

function open(): MallocTrim | undefined {
  if (Deno.build.os !== "linux" || typeof Deno.dlopen !== "function") return undefined;
  try {
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return undefined;
    // musl has no libc.so.6, and an old glibc may lack the symbol: both throw here.
    const lib = Deno.dlopen("libc.so.6", SYMBOLS);
    // Pad 0: keep nothing spare at the top of the main heap.
    return () => void lib.symbols.malloc_trim(0n);
  } catch {
    return undefined;
  }
}
