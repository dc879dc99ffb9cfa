// The application log seam: one function. observe/ provides the JSON-lines implementation; tests
// pass a collector. Per-request logging goes through the access log, never through here.

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type Log = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => void;

/** JSON lines on stderr: the fallback before observe/ is configured. */
export const stderrLog: Log = (level, msg, fields) => {
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields })}\n`);
};

export const silentLog: Log = () => {};
