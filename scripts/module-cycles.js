'use strict';
// Reads `cargo modules dependencies` output (DOT) on stdin and fails when the modules of the
// crate depend on each other in a circle. cargo-modules' own --acyclic works on items (a type and
// its own methods already form a "circle" there), so the item-level `uses` edges are lifted to
// the modules that define their two ends, edges inside one module are dropped, and the module
// graph is checked with Tarjan's strongly connected components: the graph of files, and the graph
// of folders at each depth (pipeline/ -> stream/ and stream/ -> pipeline/ through two different
// files is a circle between folders even when no two files form one).
const fs = require('node:fs');

const dot = fs.readFileSync(0, 'utf8');
const mods = new Set();
for (const m of dot.matchAll(/^\s*"([^"]+)" \[label="[^"]*"[^\n]*\/\/ "(mod|crate)" node$/gm)) mods.add(m[1]);
if (mods.size < 2) {
  console.error('module-cycles: no modules found in the cargo-modules output');
  process.exit(2);
}
const moduleOf = (item) => {
  for (let p = item; p; p = p.includes('::') ? p.slice(0, p.lastIndexOf('::')) : '') if (mods.has(p)) return p;
  return null;
};
function circles(level) {
  // A module lifted to its ancestor at `level` path segments below the crate (Infinity: itself).
  const lift = (m) => m.split('::').slice(0, level + 1).join('::');
  const nodes = new Set([...mods].map(lift));
  const edges = new Map([...nodes].map((m) => [m, new Map()]));
  for (const m of dot.matchAll(/^\s*"([^"]+)" -> "([^"]+)" \[label="uses"/gm)) {
    const [from, to] = [moduleOf(m[1]), moduleOf(m[2])].map((x) => x && lift(x));
    if (!from || !to || from === to) continue;
    if (!edges.get(from).has(to)) edges.get(from).set(to, `${m[1]} -> ${m[2]}`);
  }
  let index = 0;
  const idx = new Map(), low = new Map(), stack = [], onStack = new Set(), sccs = [];
  function strong(v) {
    idx.set(v, index); low.set(v, index); index++;
    stack.push(v); onStack.add(v);
    for (const w of edges.get(v).keys()) {
      if (!idx.has(w)) { strong(w); low.set(v, Math.min(low.get(v), low.get(w))); }
      else if (onStack.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
    }
    if (low.get(v) === idx.get(v)) {
      const scc = [];
      let w;
      do { w = stack.pop(); onStack.delete(w); scc.push(w); } while (w !== v);
      if (scc.length > 1) sccs.push(scc);
    }
  }
  for (const v of nodes) if (!idx.has(v)) strong(v);
  return { nodes, edges, sccs };
}

const short = (m) => m.replace(/^[^:]+(::)?/, '') || 'crate';
const depth = Math.max(...[...mods].map((m) => m.split('::').length - 1));
let failed = false;
let shown = '';
for (let level = depth; level >= 1; level--) {
  const { sccs, edges } = circles(level);
  const key = JSON.stringify(sccs.map((c) => [...c].sort()).sort());
  if (!sccs.length || key === shown) continue; // the same circle as one level down: said already
  shown = key;
  failed = true;
  console.error(`import circle${sccs.length > 1 ? 's' : ''} between ${level === depth ? 'modules' : `folders (depth ${level})`}:`);
  for (const scc of sccs) {
    const inScc = new Set(scc);
    console.error(`  ${scc.map(short).join(', ')}`);
    for (const a of scc) for (const [b, why] of edges.get(a)) if (inScc.has(b)) console.error(`    ${short(a)} -> ${short(b)}  (${why.replace(/hyvve_event_publisher::/g, '')})`);
  }
}
if (failed) process.exit(1);
const { edges } = circles(depth);
const n = [...edges.values()].reduce((s, e) => s + e.size, 0);
console.log(`modules: ${mods.size} modules, ${n} dependencies between them; no circle between modules or between folders at any depth`);
