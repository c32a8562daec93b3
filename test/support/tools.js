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

/** The pion/dtls peer (scripts/peers/pion.sh builds it into .peers/pion); like requireTool when it cannot be built. */
function requirePion(context) {
  try {
    return execFileSync('bash', [require('node:path').join(__dirname, '..', '..', 'scripts', 'peers', 'pion.sh')], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  } catch {
    if (process.env.CI) throw new Error('the pion/dtls peer does not build: .ci/run must install golang-go and golang-github-pion-dtls.v2-dev');
    // eslint-disable-next-line no-console
    console.log('      (skipped: pion/dtls peer not built; apt-get install golang-go golang-github-pion-dtls.v2-dev)');
    context.skip();
  }
}

module.exports = { requireTool, requirePion };
