/** Entry point: see lib/cli.ts for the commands. @module */
import { runCli } from "./lib/cli.ts";

if (import.meta.main) Deno.exit(await runCli(Deno.args));
