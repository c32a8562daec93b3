'use strict';
// Starts Node-RED on 127.0.0.1 with a userDir inside the repository, this pack
// linked into it, and the example flow deployed on first start.
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const userDir = process.env.NODE_RED_USER_DIR || path.join(root, '.node-red');
const pkg = require(path.join(root, 'package.json'));

const link = path.join(userDir, 'node_modules', ...pkg.name.split('/'));
fs.mkdirSync(path.dirname(link), { recursive: true });
if (!fs.existsSync(link)) fs.symlinkSync(root, link, 'dir');

const settingsFile = path.join(userDir, 'settings.js');
if (!fs.existsSync(settingsFile)) {
  fs.writeFileSync(
    settingsFile,
    `module.exports = {
  uiHost: '127.0.0.1',
  uiPort: Number(process.env.PORT) || 1880,
  flowFile: 'flows.json',
  logging: { console: { level: 'info' } },
  // No update-notification prompt: this instance runs on loopback for trying the pack out.
  telemetry: { enabled: false },
};
`,
  );
}

const flowFile = path.join(userDir, 'flows.json');
if (!fs.existsSync(flowFile)) {
  // Examples are import snippets; a flow file needs the tab they sit on.
  const example = JSON.parse(fs.readFileSync(path.join(root, 'examples', 'log-registrations.json'), 'utf8'));
  const tabId = example.find((node) => node.z).z;
  fs.writeFileSync(flowFile, JSON.stringify([{ id: tabId, type: 'tab', label: 'LwM2M' }, ...example], null, 2));
}

// NODE_RED_DIR runs another Node-RED installation (the tests' second run uses Node-RED 5).
const redJs = process.env.NODE_RED_DIR ? path.join(path.resolve(process.env.NODE_RED_DIR), 'red.js') : require.resolve('node-red/red.js');
const child = spawn(process.execPath, [redJs, '--userDir', userDir, '--settings', settingsFile, ...process.argv.slice(2)], {
  stdio: 'inherit',
});

// `npm start` runs this under a shell; a service manager's SIGTERM to npm may end npm and the
// shell but not this process: when the parent goes, Node-RED goes too, leaving no orphan.
const parent = process.ppid;
const orphanWatch = setInterval(() => {
  if (process.ppid !== parent) stop('SIGTERM');
}, 500);

/** Node-RED stops as on Ctrl-C (nodes close and save their state), then this process ends with it. */
function stop(signal) {
  clearInterval(orphanWatch);
  if (child.exitCode === null && child.signalCode === null) child.kill(signal);
}
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => stop(signal));
child.on('exit', (code) => process.exit(code ?? 0));
