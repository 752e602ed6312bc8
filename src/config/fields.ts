import * as z from "zod";

/**
 * What a configuration field holds when that matters for what may be printed of it: a URL (whose user info and
 * query can carry credentials), a credential, or the path of a file holding credentials.
 */
export type FieldKind = "url" | "secret" | "secret-file";

const kinds = z.registry<{ kind: FieldKind }>();

/** Marks a schema node as holding a field of this kind; returns the node. */
export function markField<T extends z.core.$ZodType>(schema: T, kind: FieldKind): T {
  kinds.add(schema, { kind });
  return schema;
}

type Node = z.core.$ZodType;
type Def = z.core.$ZodTypeDef & Record<string, unknown>;

const defOf = (node: Node): Def => node._zod.def as Def;

/** The node and what it wraps (optional, default, prefault, nullable, a pipe's input), outermost first. */
function layers(node: Node): Node[] {
  const out = [node];
  for (;;) {
    const def = defOf(node);
    if (def.type === "optional" || def.type === "default" || def.type === "prefault" || def.type === "nullable") node = def.innerType as Node;
    else if (def.type === "pipe") node = def.in as Node;
    else return out;
    out.push(node);
  }
}

function kindOf(node: Node): FieldKind | undefined {
  for (const layer of layers(node)) {
    const kind = kinds.get(layer)?.kind;
    if (kind !== undefined) return kind;
  }
  return undefined;
}

/** The nodes below `node`, each with the segment that leads there: a key, "[]" for list items, "*" for map values. */
function children(node: Node): [string, Node][] {
  const inner = layers(node).at(-1) as Node;
  const def = defOf(inner);
  switch (def.type) {
    case "object":
      return Object.entries(def.shape as Record<string, Node>);
    case "array":
      return [["[]", def.element as Node]];
    case "record":
      return [["*", def.valueType as Node]];
    case "union":
      return (def.options as Node[]).flatMap(children);
    default:
      return [];
  }
}

/** The nodes a concrete path (keys and list indexes, as in a zod issue) leads to; several where a union forks. */
function nodesAt(schema: Node, path: readonly PropertyKey[]): Node[][] {
  let frontier: Node[][] = [[schema]];
  for (const seg of path) {
    frontier = frontier.flatMap((trail) =>
      children(trail.at(-1) as Node)
        .filter(([key]) => key === (typeof seg === "number" ? "[]" : String(seg)) || key === "*")
        .map(([, child]) => [...trail, child]),
    );
  }
  return frontier;
}

function join(path: string, seg: string): string {
  if (seg === "[]") return `${path}[]`;
  return path === "" ? seg : `${path}.${seg}`;
}

/** Every field of a schema with its path ("healthChecks.custom[].url") and its kind where marked, in schema order. */
export function schemaFields(schema: Node): { path: string; kind: FieldKind | undefined }[] {
  const out = new Map<string, FieldKind | undefined>();
  const walk = (node: Node, path: string, depth: number): void => {
    // A path a union's options share is marked when any option marks it.
    if (path !== "") out.set(path, out.get(path) ?? kindOf(node));
    // The configuration's schema is not recursive; the bound only keeps a mistake from hanging the process.
    if (depth < 32) for (const [seg, child] of children(node)) walk(child, join(path, seg), depth + 1);
  };
  walk(schema, "", 0);
  return [...out].map(([path, kind]) => ({ path, kind }));
}

/** The marked fields of a schema. */
export function markedFields(schema: Node): { path: string; kind: FieldKind }[] {
  return schemaFields(schema).filter((f): f is { path: string; kind: FieldKind } => f.kind !== undefined);
}

/**
 * Whether the value at `path` is a credential or holds one (it is, or lies inside, or contains a field marked
 * secret), so that a message about it must not quote it.
 */
export function holdsSecret(schema: Node, path: readonly PropertyKey[]): boolean {
  return nodesAt(schema, path).some(
    (trail) => trail.some((n) => kindOf(n) === "secret") || markedFields(trail.at(-1) as Node).some((f) => f.kind === "secret"),
  );
}

/** The keys an object at `path` accepts, for "did you mean"; none when the path does not lead to an object. */
export function knownKeysAt(schema: Node, path: readonly PropertyKey[]): string[] {
  const keys = new Set<string>();
  for (const trail of nodesAt(schema, path)) {
    for (const [key] of children(trail.at(-1) as Node)) if (key !== "[]" && key !== "*") keys.add(key);
  }
  return [...keys];
}
