// What a demo instance answers, shared by the instance processes (instance.mjs) and the in-process
// instances of generated projects (inline.ts). Plain JavaScript with no imports, so an instance
// process starts in ~50 ms without a TypeScript loader.
//
// The health path answers 200 `ok`; `?status=503` answers that status; `?delay=200` waits that many
// ms (at most 10 s) first; anything else gets a JSON line naming the instance.

/**
 * @param {{ project: string, instance: string, healthPath?: string }} cfg
 * @param {string} portName
 * @param {{ served: number, started: number }} counters shared by the instance's ports
 */
export function createHandler(cfg, portName, counters) {
  const healthPath = cfg.healthPath ?? '/healthz';
  return (req, res) => {
    const url = new URL(req.url ?? '/', 'http://instance');
    if (url.pathname === healthPath) {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok\n');
      return;
    }
    counters.served++;
    const delay = Math.min(10_000, Math.max(0, Number(url.searchParams.get('delay')) || 0));
    const status = Number(url.searchParams.get('status')) || 200;
    const body = `${JSON.stringify({
      project: cfg.project,
      instance: cfg.instance,
      port: portName,
      method: req.method,
      path: url.pathname,
      pid: process.pid,
      served: counters.served,
      uptimeSeconds: Math.round((Date.now() - counters.started) / 1000),
    })}\n`;
    const send = () => {
      res.writeHead(status >= 100 && status <= 599 ? status : 200, {
        'content-type': 'application/json',
        'x-demo-instance': cfg.instance,
      });
      res.end(body);
    };
    req.resume();
    if (delay > 0) setTimeout(send, delay);
    else req.on('end', send);
  };
}
