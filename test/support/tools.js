'use strict';
const { execFileSync } = require('node:child_process');

/**
 * Finds an independent peer program (libcoap, openssl...). Locally a missing
 * tool marks the tests pending; under CI, which installs them, it fails.
 */
function requireTool(context, name, debianPackage) {
  try {
    execFileSync('which', [name], { stdio: 'ignore' });
    return name;
  } catch {
    if (process.env.CI) throw new Error(`${name} is missing: .ci/run must install ${debianPackage}`);
    // eslint-disable-next-line no-console
    console.log(`      (skipped: ${name} not installed; apt-get install ${debianPackage})`);
    context.skip();
  }
}

module.exports = { requireTool };
