/**
 * What a V8 heap snapshot (the exporter's /debug/pprof/heap) holds: self size by constructor, and retained size
 * by constructor from the dominator tree, which names the object that keeps memory alive (an Informer, a Gauge)
 * rather than the strings and arrays it is made of.
 */

export interface HeapSnapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]]; edge_fields: string[]; edge_types: [string[]] } };
  nodes: number[];
  edges: number[];
  strings: string[];
}

export interface HeapRow {
  what: string;
  count: number;
  mib: number;
}

const MIB = 1048576;

/** A view over the snapshot's flat arrays. */
class Graph {
  readonly nodeFields: number;
  readonly edgeFields: number;
  readonly count: number;
  /** Index of each node's first edge in `edges`; firstEdge[count] is the end. */
  readonly firstEdge: Uint32Array;
  readonly #at: Record<"type" | "name" | "size" | "edges" | "edgeType" | "to", number>;
  readonly #weak: number;
  readonly #shortcut: number;

  constructor(readonly s: HeapSnapshot) {
    const { meta } = s.snapshot;
    this.nodeFields = meta.node_fields.length;
    this.edgeFields = meta.edge_fields.length;
    this.count = s.nodes.length / this.nodeFields;
    this.#at = {
      type: meta.node_fields.indexOf("type"),
      name: meta.node_fields.indexOf("name"),
      size: meta.node_fields.indexOf("self_size"),
      edges: meta.node_fields.indexOf("edge_count"),
      edgeType: meta.edge_fields.indexOf("type"),
      to: meta.edge_fields.indexOf("to_node"),
    };
    this.#weak = meta.edge_types[0].indexOf("weak");
    this.#shortcut = meta.edge_types[0].indexOf("shortcut");
    this.firstEdge = new Uint32Array(this.count + 1);
    for (let i = 0, e = 0; i < this.count; i++) {
      this.firstEdge[i] = e;
      e += (s.nodes[i * this.nodeFields + this.#at.edges] ?? 0) * this.edgeFields;
      this.firstEdge[i + 1] = e;
    }
  }

  size(i: number): number {
    return this.s.nodes[i * this.nodeFields + this.#at.size] ?? 0;
  }

  /** "object Informer", "closure", "strings" (every kind of string together), "code", … */
  label(i: number): string {
    const type = this.s.snapshot.meta.node_types[0][this.s.nodes[i * this.nodeFields + this.#at.type] ?? 0] ?? "?";
    if (type.includes("string")) return "strings";
    const name = this.s.strings[this.s.nodes[i * this.nodeFields + this.#at.name] ?? 0] ?? "?";
    return (type === "object" || type === "closure" ? `${type} ${name}` : `${type} ${name.slice(0, 40)}`).trim();
  }

  /** The nodes `i` keeps alive: weak edges do not, and shortcuts only from the root. */
  successors(i: number, visit: (to: number) => void): void {
    for (let e = this.firstEdge[i] ?? 0; e < (this.firstEdge[i + 1] ?? 0); e += this.edgeFields) {
      const type = this.s.edges[e + this.#at.edgeType];
      if (type === this.#weak || (type === this.#shortcut && i !== 0)) continue;
      visit((this.s.edges[e + this.#at.to] ?? 0) / this.nodeFields);
    }
  }
}

function top(rows: Map<string, { count: number; bytes: number }>, n: number): HeapRow[] {
  return [...rows].map(([what, r]) => ({ what, count: r.count, mib: r.bytes / MIB })).sort((a, b) => b.mib - a.mib).slice(0, n);
}

export function selfSizeByConstructor(snapshot: HeapSnapshot, n: number): HeapRow[] {
  const g = new Graph(snapshot);
  const rows = new Map<string, { count: number; bytes: number }>();
  for (let i = 0; i < g.count; i++) {
    const row = rows.get(g.label(i)) ?? { count: 0, bytes: 0 };
    row.count++;
    row.bytes += g.size(i);
    rows.set(g.label(i), row);
  }
  return top(rows, n);
}

/**
 * Retained size by constructor: each node's dominator subtree, not counted again for a node whose immediate
 * dominator has the same constructor (the strings of a string, the arrays of an array). Dominators by the
 * iterative algorithm of Cooper, Harvey and Kennedy over a reverse postorder from the root.
 */
export function retainedByConstructor(snapshot: HeapSnapshot, n: number): HeapRow[] {
  const g = new Graph(snapshot);
  const postIndex = new Int32Array(g.count).fill(-1);
  const order: number[] = [];
  const seen = new Uint8Array(g.count);
  const stack = [0];
  seen[0] = 1;
  // Depth-first with an explicit stack (a heap graph is far deeper than the call stack allows).
  const children: number[][] = Array.from({ length: g.count }, () => []);
  for (let i = 0; i < g.count; i++) g.successors(i, (to) => children[i]?.push(to));
  const cursor = new Uint32Array(g.count);
  while (stack.length > 0) {
    const v = stack[stack.length - 1] ?? 0;
    const kids = children[v] ?? [];
    let pushed = false;
    while ((cursor[v] ?? 0) < kids.length) {
      const at = cursor[v] ?? 0;
      cursor[v] = at + 1;
      const w = kids[at] ?? 0;
      if (seen[w]) continue;
      seen[w] = 1;
      stack.push(w);
      pushed = true;
      break;
    }
    if (!pushed) {
      stack.pop();
      postIndex[v] = order.length;
      order.push(v);
    }
  }
  const preds: number[][] = Array.from({ length: g.count }, () => []);
  for (const v of order) for (const w of children[v] ?? []) if (seen[w]) preds[w]?.push(v);
  const idom = new Int32Array(g.count).fill(-1);
  idom[0] = 0;
  const intersect = (a: number, b: number): number => {
    while (a !== b) {
      while ((postIndex[a] ?? 0) < (postIndex[b] ?? 0)) a = idom[a] ?? 0;
      while ((postIndex[b] ?? 0) < (postIndex[a] ?? 0)) b = idom[b] ?? 0;
    }
    return a;
  };
  for (let changed = true; changed; ) {
    changed = false;
    for (let k = order.length - 2; k >= 0; k--) {
      const v = order[k] ?? 0;
      let dom = -1;
      for (const p of preds[v] ?? []) if ((idom[p] ?? -1) !== -1) dom = dom === -1 ? p : intersect(p, dom);
      if (dom !== -1 && idom[v] !== dom) {
        idom[v] = dom;
        changed = true;
      }
    }
  }
  const retained = new Float64Array(g.count);
  for (const v of order) {
    retained[v] = (retained[v] ?? 0) + g.size(v);
    const d = idom[v] ?? -1;
    if (v !== 0 && d >= 0) retained[d] = (retained[d] ?? 0) + (retained[v] ?? 0);
  }
  const rows = new Map<string, { count: number; bytes: number }>();
  for (const v of order) {
    if (v === 0) continue;
    const label = g.label(v);
    if (g.label(idom[v] ?? 0) === label) continue;
    const row = rows.get(label) ?? { count: 0, bytes: 0 };
    row.count++;
    row.bytes += retained[v] ?? 0;
    rows.set(label, row);
  }
  return top(rows, n);
}
