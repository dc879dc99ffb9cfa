import type { IncomingMessage, ServerResponse } from 'node:http';

export function createHandler(
  cfg: { project: string; instance: string; healthPath?: string },
  portName: string,
  counters: { served: number; started: number },
): (req: IncomingMessage, res: ServerResponse) => void;
