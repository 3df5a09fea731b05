/**
 * The layering rule of `lib/` (../../lib/README.md): each folder is a layer with a rank, and an
 * import may only point to a lower rank or stay inside its own folder; and no file may reach
 * itself through imports. Run by `deno task check` and by `layers_test.ts`.
 * @module
 */

/** Layers from the bottom up. Folders of the same rank do not import each other. */
export const RANKS: Readonly<Record<string, number>> = {
  "xml": 0,
  "limits.ts": -1,
  "log.ts": -1,
  "xmpp": 1,
  "core": 2,
  "storage": 3,
  "pubsub": 3,
  "modules": 4,
  "account": 5,
  "services": 5,
  "c2s": 6,
  "component": 6,
  "s2s": 6,
  "transport": 7,
  "config.ts": 7,
  "shell": 8,
  "cli.ts": 9,
};

/** One import that breaks the rule. */
export interface Violation {
  readonly from: string;
  readonly to: string;
  readonly why: string;
}

const IMPORT =
  /(?:^|[\s;])(?:import|export)\s[^;]*?from\s*["'](\.[^"']+)["']|import\s*\(\s*["'](\.[^"']+)["']\s*\)|^import\s*["'](\.[^"']+)["']/gm;

/** The layer of a path relative to `lib/` (its first segment). */
export function layerOf(path: string): string {
  return path.split("/")[0];
}

function normalize(parts: string[]): string {
  const out: string[] = [];
  for (const p of parts) {
    if (p === "" || p === ".") continue;
    if (p === "..") out.pop();
    else out.push(p);
  }
  return out.join("/");
}

/** The relative imports of a source text, resolved against `file` (a path under lib/). */
export function importsOf(file: string, source: string): string[] {
  const dir = file.split("/").slice(0, -1);
  const out: string[] = [];
  for (const m of source.matchAll(IMPORT)) {
    const spec = m[1] ?? m[2] ?? m[3];
    out.push(normalize([...dir, ...spec.split("/")]));
  }
  return out;
}

/** Every violation in a graph of files (paths under lib/) to their imports. */
export function violations(graph: ReadonlyMap<string, readonly string[]>): Violation[] {
  const out: Violation[] = [];
  for (const [from, targets] of graph) {
    const fl = layerOf(from);
    for (const to of targets) {
      if (to.startsWith("../")) {
        out.push({ from, to, why: "imports from outside lib/" });
        continue;
      }
      const tl = layerOf(to);
      if (tl === fl) continue;
      const fr = RANKS[fl];
      const tr = RANKS[tl];
      if (fr === undefined) out.push({ from, to, why: `layer '${fl}' has no rank` });
      else if (tr === undefined) out.push({ from, to, why: `layer '${tl}' has no rank` });
      else if (tr >= fr) {
        out.push({ from, to, why: `'${fl}' (rank ${fr}) may not import '${tl}' (rank ${tr})` });
      }
    }
  }
  for (const cycle of cycles(graph)) {
    out.push({ from: cycle[0], to: cycle[1] ?? cycle[0], why: `cycle: ${cycle.join(" -> ")}` });
  }
  return out;
}

/** The strongly connected components with more than one file (Tarjan), each as a path list. */
export function cycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) found.push(scc.sort());
    }
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v);
  return found;
}

/** Reads every `.ts` file under `dir` into a graph keyed by paths relative to it. */
export async function readGraph(dir: string): Promise<Map<string, string[]>> {
  const graph = new Map<string, string[]>();
  const walk = async (rel: string) => {
    for await (const e of Deno.readDir(rel === "" ? dir : `${dir}/${rel}`)) {
      const path = rel === "" ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory) await walk(path);
      else if (e.name.endsWith(".ts")) {
        graph.set(path, importsOf(path, await Deno.readTextFile(`${dir}/${path}`)));
      }
    }
  };
  await walk("");
  return graph;
}

if (import.meta.main) {
  const lib = new URL("../../lib", import.meta.url).pathname;
  const found = violations(await readGraph(lib));
  for (const v of found) console.error(`lib/${v.from} -> lib/${v.to}: ${v.why}`);
  if (found.length > 0) Deno.exit(1);
  console.log("layers: no upward import, no cycle");
}
