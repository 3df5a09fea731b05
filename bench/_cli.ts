/**
 * What the benchmark scripts share on their command line.
 * @module
 */

/**
 * The options `parse` makes of `args`, or the exit code once the help (`parse` gave nothing:
 * `--help`) or the error and the help are printed.
 */
export function optionsOrExit<O>(
  args: readonly string[],
  parse: (args: readonly string[]) => O | undefined,
  help: string,
): O | number {
  let o: O | undefined;
  try {
    o = parse(args);
  } catch (e) {
    console.error(`${(e as Error).message}\n\n${help}`);
    return 2;
  }
  if (o === undefined) {
    console.log(help);
    return 0;
  }
  return o;
}

/**
 * xmppbench's unrecorded warm-up (20 logins, 5 at a time, no waiting for the server to settle)
 * against the server `base` names: the login path compiled and its caches filled before a
 * measured run.
 */
export function warmupArgs(base: readonly string[]): string[] {
  return [
    "--scenario",
    "login",
    ...base,
    "--users",
    "20",
    "--concurrency",
    "5",
    "--quiesce-max",
    "0",
  ];
}
