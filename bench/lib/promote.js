'use strict';
// In a Node.js server under test (run with --expose-gc): what a measured phase left in the young generation
// is moved to the old one at its end, inside its measurement (two scavenges: survivors are promoted at the
// second), so that the phase after it does not pay the copying of objects the one before made.
function promote() {
  global.gc({ type: 'minor' });
  global.gc({ type: 'minor' });
}

module.exports = { promote };
