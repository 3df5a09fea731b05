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
