/** Child-process entry of a simulated fleet: runs the commands its parent sends over IPC. */
import { FleetCommand, SimulatedFleet } from './fleet';

const fleet = new SimulatedFleet();

process.on('message', (message: { id: number } & FleetCommand) => {
  fleet.run(message).then(
    (result) => process.send?.({ id: message.id, result }),
    (error: Error) => process.send?.({ id: message.id, error: error.message }),
  );
});
process.on('disconnect', () => process.exit(0));
