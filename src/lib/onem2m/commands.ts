import { ContentError } from '../content/values';

/** A command a oneM2M application wrote into a device's commands container. */
export interface Command {
  id?: string;
  operation: 'read' | 'write' | 'execute';
  path: string;
  value?: unknown;
  arguments?: unknown;
}

export interface CommandResult {
  id?: string;
  operation?: string;
  path?: string;
  /** The device's CoAP code, such as "2.05". */
  code?: string;
  value?: unknown;
  error?: string;
}

/** A command's content as an object: JSON text, or an object for CSEs that parse it. */
function commandObject(content: unknown): Record<string, unknown> {
  let value = content;
  if (typeof content === 'string') {
    try {
      value = JSON.parse(content);
    } catch {
      throw new ContentError(`the command is not JSON: ${content.slice(0, 80)}`);
    }
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new ContentError('the command must be an object such as {"operation":"read","path":"/3/0/9"}');
  return value as Record<string, unknown>;
}

/** The id of a command, also of one that is refused, so that its result can be matched to it. */
export function commandId(content: unknown): string | undefined {
  try {
    const id = commandObject(content).id;
    return typeof id === 'string' || typeof id === 'number' ? String(id) : undefined;
  } catch {
    return undefined;
  }
}

export function parseCommand(content: unknown): Command {
  const command = commandObject(content);
  if (command.operation !== 'read' && command.operation !== 'write' && command.operation !== 'execute') {
    throw new ContentError(`the command's operation must be read, write or execute, not ${JSON.stringify(command.operation)}`);
  }
  if (typeof command.path !== 'string') throw new ContentError('the command needs a path such as "/3/0/9"');
  if (command.id !== undefined && typeof command.id !== 'string' && typeof command.id !== 'number') throw new ContentError('the command id must be text or a number');
  return {
    operation: command.operation,
    path: command.path,
    ...(command.id !== undefined ? { id: String(command.id) } : {}),
    ...(command.value !== undefined ? { value: command.value } : {}),
    ...(command.arguments !== undefined ? { arguments: command.arguments } : {}),
  };
}
