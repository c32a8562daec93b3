import type { BootstrapServer } from '../lib/bootstrap/bootstrap-server';
import type { FirmwareService } from '../lib/firmware/firmware-service';
import type { Lwm2mServer } from '../lib/lwm2m/server';
import type { HostNode } from './socket-host';

/** The lwm2m-server config node as the LwM2M nodes see it: its server and the firmware campaigns on it. */
export type ServerConfigNode = HostNode<Lwm2mServer> & { firmware: FirmwareService };

/** The lwm2m-bootstrap-server config node as the bootstrap nodes see it. */
export type BootstrapServerConfigNode = HostNode<BootstrapServer>;
