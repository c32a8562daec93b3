import type { Request, Response } from 'express';
import type { NodeAPI } from 'node-red';
import { HTTP_FILE_PATH } from '../lib/firmware/file-service';
import type { FirmwareService } from '../lib/firmware/firmware-service';

/** The firmware services of the running server nodes: the HTTP route finds a token's file among them. */
const services = new Set<FirmwareService>();

export function addFirmwareService(service: FirmwareService): void {
  services.add(service);
}

export function removeFirmwareService(service: FirmwareService): void {
  services.delete(service);
}

/** Bytes written at a time: progress goes with them, and a slow device does not make Node buffer the whole file. */
const CHUNK_BYTES = 64 * 1024;

/** Node-RED's HTTP apps the route is on (a test harness makes a new one per flow). */
const routed = new WeakSet<object>();

/**
 * GET <httpNodeRoot>lwm2m-firmware/<token> on Node-RED's HTTP server (and
 * HEAD), for devices that fetch their package over HTTP(S): only the device
 * the token was made for, from the address it registered from.
 */
export function routeFirmwareFiles(RED: NodeAPI): void {
  const httpNode = (RED as unknown as { httpNode?: { get(path: string, handler: (req: Request, res: Response) => void): void; head(path: string, handler: (req: Request, res: Response) => void): void } }).httpNode;
  if (!httpNode || routed.has(httpNode)) return;
  routed.add(httpNode);
  const handler = (req: Request, res: Response) => {
    const token = String(req.params.token ?? '');
    for (const service of services) {
      const answer = service.files.answerHttp(token, req.socket.remoteAddress, req.headers.range);
      if (!answer) continue;
      // The token is the device's secret: never in a log.
      if (answer.reason) RED.log.debug(`lwm2m-firmware: ${req.method} of a firmware file refused: ${answer.reason}`);
      res.status(answer.status).set(answer.headers);
      const body = answer.body;
      if (req.method === 'HEAD' || !body) {
        res.end(answer.grant || !body ? undefined : body);
        return;
      }
      if (!answer.grant) {
        res.end(body);
        return;
      }
      const { grant } = answer;
      const start = answer.start ?? 0;
      let offset = 0;
      const write = () => {
        while (offset < body.length) {
          const end = Math.min(body.length, offset + CHUNK_BYTES);
          const more = res.write(body.subarray(offset, end));
          offset = end;
          service.files.served(grant, start + offset);
          if (!more) {
            res.once('drain', write);
            return;
          }
        }
        res.end();
      };
      write();
      return;
    }
    res.status(404).type('text/plain').end('no such file');
  };
  httpNode.get(`/${HTTP_FILE_PATH}/:token`, handler);
  httpNode.head(`/${HTTP_FILE_PATH}/:token`, handler);
}
