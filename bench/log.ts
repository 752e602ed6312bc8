/** Progress on stderr, stamped with the seconds since the benchmark started; stdout keeps only the results table. */
const started = Date.now();

export function log(message: string): void {
  process.stderr.write(`[bench ${String(Math.round((Date.now() - started) / 1000)).padStart(4)} s] ${message}\n`);
}
