import assert from "node:assert/strict";
import { cycles, importsOf, readGraph, violations } from "./layers.ts";

Deno.test("lib/ has no upward import and no import cycle", async () => {
  const graph = await readGraph(new URL("../../lib", import.meta.url).pathname);
  assert.ok(graph.size > 50, `read ${graph.size} files`);
  assert.ok(graph.get("core/router.ts")!.includes("core/archive.ts"));
  assert.deepEqual(violations(graph), []);
});

Deno.test("layers: an upward import is found", () => {
  const graph = new Map([
    ["core/router.ts", importsOf("core/router.ts", 'import { x } from "../modules/carbons.ts";')],
    ["modules/carbons.ts", []],
  ]);
  assert.deepEqual(violations(graph).map((v) => v.why), [
    "'core' (rank 2) may not import 'modules' (rank 4)",
  ]);
});

Deno.test("layers: folders of one rank do not import each other", () => {
  const graph = new Map([
    ["c2s/mod.ts", ["component/component.ts"]],
    ["component/component.ts", []],
  ]);
  assert.equal(violations(graph).length, 1);
});

Deno.test("layers: a cycle inside one folder is found, type-only imports included", () => {
  const graph = new Map([
    ["core/a.ts", importsOf("core/a.ts", 'import type { B } from "./b.ts";')],
    ["core/b.ts", importsOf("core/b.ts", 'export { A } from "./a.ts";')],
    ["core/c.ts", importsOf("core/c.ts", 'import "./a.ts";')],
  ]);
  assert.deepEqual(cycles(graph), [["core/a.ts", "core/b.ts"]]);
  assert.match(violations(graph)[0].why, /^cycle: core\/a.ts -> core\/b.ts$/);
});

Deno.test("layers: imports are resolved against the importing file", () => {
  const src = [
    'import { a } from "../xml/element.ts";',
    'import {\n  b,\n  c,\n} from "./types.ts";',
    'const m = await import("../storage/mod.ts");',
  ].join("\n");
  assert.deepEqual(importsOf("core/router.ts", src), [
    "xml/element.ts",
    "core/types.ts",
    "storage/mod.ts",
  ]);
});
