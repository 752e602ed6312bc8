/**
 * Just enough of the Dockerfile and .dockerignore languages to check the image's build rules without a Docker
 * engine: instructions per stage, line continuations, comments, global ARG defaults in FROM, exec-form arrays
 * and `--flag=value` options.
 */

export interface Instruction {
  /** Upper-case, e.g. "COPY". */
  keyword: string;
  /** Everything after the keyword and its flags, continuation lines joined with a space. */
  args: string;
  /** Leading `--name=value` options (COPY --from, RUN --mount, FROM --platform). */
  flags: Record<string, string>;
  /** The JSON array of the exec form, when the arguments are one. */
  exec?: string[];
  /** 1-based line of the instruction's first line. */
  line: number;
}

export interface Stage {
  index: number;
  name: string | undefined;
  /** The image or stage this stage starts from, global ARG defaults substituted. */
  from: string;
  instructions: Instruction[];
}

export interface Dockerfile {
  /** ARGs declared before the first FROM, with their defaults. */
  globalArgs: Record<string, string | undefined>;
  stages: Stage[];
}

function logicalLines(text: string): { text: string; line: number }[] {
  const out: { text: string; line: number }[] = [];
  let current: { text: string; line: number } | undefined;
  text.split(/\r?\n/).forEach((raw, i) => {
    const trimmed = raw.trim();
    // Comment and blank lines end nothing, even inside a continued instruction: Docker skips them there too.
    if (trimmed === "" || trimmed.startsWith("#")) return;
    const continued = /\\$/.test(trimmed);
    const body = continued ? trimmed.slice(0, -1).trim() : trimmed;
    if (current) current.text += ` ${body}`;
    else current = { text: body, line: i + 1 };
    if (!continued) {
      out.push(current);
      current = undefined;
    }
  });
  if (current) out.push(current);
  return out;
}

function substitute(value: string, vars: Record<string, string | undefined>): string {
  return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (_, a: string | undefined, b: string | undefined) => {
    return vars[(a ?? b) as string] ?? "";
  });
}

function parseInstruction(text: string, line: number): Instruction {
  const m = /^(\S+)\s*(.*)$/.exec(text);
  const keyword = (m?.[1] ?? "").toUpperCase();
  let rest = m?.[2] ?? "";
  const flags: Record<string, string> = {};
  for (;;) {
    const f = /^--([a-z-]+)(?:=(\S*))?\s*/.exec(rest);
    if (!f?.[1]) break;
    flags[f[1]] = f[2] ?? "true";
    rest = rest.slice(f[0].length);
  }
  const instruction: Instruction = { keyword, args: rest, flags, line };
  if (rest.startsWith("[")) {
    try {
      const parsed: unknown = JSON.parse(rest);
      if (Array.isArray(parsed) && parsed.every((p) => typeof p === "string")) instruction.exec = parsed;
    } catch {
      // Not JSON: Docker runs it in shell form, and so is it kept here.
    }
  }
  return instruction;
}

export function parseDockerfile(text: string): Dockerfile {
  const globalArgs: Record<string, string | undefined> = {};
  const stages: Stage[] = [];
  for (const { text: lineText, line } of logicalLines(text)) {
    const ins = parseInstruction(lineText, line);
    if (ins.keyword === "FROM") {
      const [image = "", as, name] = ins.args.split(/\s+/);
      stages.push({
        index: stages.length,
        name: as?.toUpperCase() === "AS" ? name : undefined,
        from: substitute(image, globalArgs),
        instructions: [],
      });
      continue;
    }
    const stage = stages.at(-1);
    if (stage) {
      stage.instructions.push(ins);
    } else if (ins.keyword === "ARG") {
      const [key = "", ...value] = ins.args.split("=");
      globalArgs[key.trim()] = value.length > 0 ? value.join("=").trim() : undefined;
    }
  }
  return { globalArgs, stages };
}

/** The stage a `COPY --from` or `FROM` names: by name, by index, or undefined for an outside image. */
export function findStage(file: Dockerfile, ref: string): Stage | undefined {
  return file.stages.find((s) => s.name === ref) ?? (/^\d+$/.test(ref) ? file.stages[Number(ref)] : undefined);
}

/** A stage's instructions, preceded by those of the stages it is built FROM. */
export function effectiveInstructions(file: Dockerfile, stage: Stage): Instruction[] {
  const parent = findStage(file, stage.from);
  return parent && parent.index < stage.index ? [...effectiveInstructions(file, parent), ...stage.instructions] : stage.instructions;
}

/** Sources and destination of a COPY or ADD, in either form. */
export function copyPaths(ins: Instruction): { sources: string[]; dest: string } {
  const parts = ins.exec ?? ins.args.split(/\s+/).filter(Boolean);
  return { sources: parts.slice(0, -1), dest: parts.at(-1) ?? "" };
}

/** The value of each `ENV` key in the stage, later ones winning. Handles `K=V K2="V 2"` and the old `K V`. */
export function stageEnv(stage: Stage): Record<string, string> {
  const env: Record<string, string> = {};
  for (const ins of stage.instructions.filter((i) => i.keyword === "ENV")) {
    if (!ins.args.includes("=")) {
      const [key = "", ...value] = ins.args.split(/\s+/);
      env[key] = value.join(" ");
      continue;
    }
    for (const m of ins.args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("([^"]*)"|\S*)/g)) {
      if (m[1]) env[m[1]] = m[3] ?? m[2] ?? "";
    }
  }
  return env;
}

/** The `LABEL` keys and values of a stage. */
export function stageLabels(stage: Stage): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const ins of stage.instructions.filter((i) => i.keyword === "LABEL")) {
    for (const m of ins.args.matchAll(/([A-Za-z0-9_.-]+)=("([^"]*)"|\S*)/g)) {
      if (m[1]) labels[m[1]] = m[3] ?? m[2] ?? "";
    }
  }
  return labels;
}

interface IgnoreRule {
  negate: boolean;
  regex: RegExp;
}

function globToRegex(glob: string): RegExp {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string;
    if (c === "*" && glob[i + 1] === "*") {
      // `**/` matches any number of directories, including none.
      re += glob[i + 2] === "/" ? "(?:.*/)?" : ".*";
      i += glob[i + 2] === "/" ? 2 : 1;
    } else if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else re += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

/** .dockerignore rules in order; the last one matching a path or one of its parent directories decides. */
export function parseDockerignore(text: string): IgnoreRule[] {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"))
    .map((l) => {
      const negate = l.startsWith("!");
      const pattern = (negate ? l.slice(1) : l).trim().replace(/^\/+/, "").replace(/\/+$/, "");
      return { negate, regex: globToRegex(pattern) };
    });
}

/** Whether a path of the build context (relative, "/"-separated) is left out of it. */
export function isIgnored(rules: IgnoreRule[], path: string): boolean {
  const segments = path.replace(/^\.\//, "").split("/");
  const candidates = segments.map((_, i) => segments.slice(0, i + 1).join("/"));
  let ignored = false;
  for (const rule of rules) {
    if (candidates.some((c) => rule.regex.test(c))) ignored = !rule.negate;
  }
  return ignored;
}
