/**
 * A line-by-line check of an exposition against the ABNF of OpenMetrics 1.0 (its text format section), written
 * for the tests from the grammar itself, not from the code under test: every line is a TYPE, HELP or UNIT
 * descriptor or a sample, the last is "# EOF", and a family has at most one of each descriptor.
 */
const METRICNAME = "[a-zA-Z_:][a-zA-Z0-9_:]*";
const LABEL_NAME = "[a-zA-Z_][a-zA-Z0-9_]*";
/** escaped-char = normal-char / BS ("n" / DQUOTE / BS) / BS normal-char; normal-char is anything but LF, DQUOTE, BS. */
const ESCAPED_STRING = '(?:[^"\\\\\\n]|\\\\[^\\n])*';
const REALNUMBER = "[+-]?(?:\\d+(?:\\.\\d*)?(?:[eE][+-]?\\d+)?|\\d*\\.\\d+(?:[eE][+-]?\\d+)?)";
/** number = realnumber / [SIGN] ("inf" / "infinity") / "nan", case-insensitive. */
const NUMBER = `(?:${REALNUMBER}|[+-]?(?:[iI][nN][fF](?:[iI][nN][iI][tT][yY])?)|[nN][aA][nN])`;
const LABEL = `${LABEL_NAME}="${ESCAPED_STRING}"`;
const LABELS = `\\{(?:${LABEL}(?:,${LABEL})*)?\\}`;
const TYPES = "counter|gauge|histogram|gaugehistogram|stateset|info|summary|unknown";

const DESCRIPTOR = new RegExp(`^# (TYPE|HELP|UNIT) (${METRICNAME})(?: (.*))?$`);
const TYPE_ARG = new RegExp(`^(?:${TYPES})$`);
const HELP_ARG = new RegExp(`^${ESCAPED_STRING}$`);
const UNIT_ARG = /^[a-zA-Z0-9_:]*$/;
const SAMPLE = new RegExp(`^${METRICNAME}(?:${LABELS})? ${NUMBER}(?: ${REALNUMBER})?(?: # ${LABELS} ${NUMBER}(?: ${REALNUMBER})?)?$`);

/** What in `text` breaks the grammar, as "line N: …"; empty when it is a valid exposition. */
export function openMetricsViolations(text: string): string[] {
  const problems: string[] = [];
  if (!text.endsWith("# EOF\n") && !text.endsWith("# EOF")) problems.push('the exposition does not end with "# EOF"');
  const lines = text.replace(/\n$/, "").split("\n");
  const seen = new Set<string>();
  lines.forEach((line, i) => {
    const at = `line ${i + 1}`;
    if (line === "# EOF") {
      if (i !== lines.length - 1) problems.push(`${at}: "# EOF" before the end`);
      return;
    }
    const descriptor = DESCRIPTOR.exec(line);
    if (descriptor) {
      const [, kind = "", name = "", arg] = descriptor;
      const valid = kind === "TYPE" ? TYPE_ARG.test(arg ?? "") : kind === "HELP" ? arg !== undefined && HELP_ARG.test(arg) : UNIT_ARG.test(arg ?? "");
      if (!valid) problems.push(`${at}: ${kind} ${name} has an argument the grammar does not allow: ${JSON.stringify(arg)}`);
      if (seen.has(`${kind} ${name}`)) problems.push(`${at}: a second ${kind} for ${name}`);
      seen.add(`${kind} ${name}`);
      return;
    }
    if (!SAMPLE.test(line)) problems.push(`${at}: not a descriptor or a sample: ${JSON.stringify(line)}`);
  });
  return problems;
}
