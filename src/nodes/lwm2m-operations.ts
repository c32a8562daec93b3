import type { NodeAPI } from 'node-red';
import { registerCreate } from './operations/create';
import { registerDelete } from './operations/delete';
import { registerDiscover } from './operations/discover';
import { registerExecute } from './operations/execute';
import { registerRead } from './operations/read';
import { registerWrite } from './operations/write';
import { registerWriteAttributes } from './operations/write-attributes';

/** The device-management nodes: one node type per LwM2M operation. */
export = function register(RED: NodeAPI): void {
  registerRead(RED);
  registerWrite(RED);
  registerExecute(RED);
  registerCreate(RED);
  registerDelete(RED);
  registerDiscover(RED);
  registerWriteAttributes(RED);
};
