'use strict';
// Child process: the LwM2M server with its DTLS listener alone, as the pion/dtls client's target in the DTLS workloads
// (bench/workloads/dtls.js); measured from outside like every server under test.
const fs = require('node:fs');
const { Lwm2mServer } = require('../../dist/lib/lwm2m/server');
const { SecurityRegistry } = require('../../dist/lib/lwm2m/security');
const { ecPrivateKey, parseCertificates } = require('../../dist/lib/dtls/credentials');

const { identity, key, pki } = JSON.parse(process.env.BENCH_DTLS);
const security = new SecurityRegistry();
security.set('bench', { mode: 'psk', identity, key: Buffer.from(key, 'hex') });
const server = new Lwm2mServer({
  address: '127.0.0.1',
  secure: {
    port: 0,
    privateKey: ecPrivateKey(fs.readFileSync(pki.serverKey, 'utf8')),
    certificateChain: parseCertificates(fs.readFileSync(pki.serverCert, 'utf8')).map((certificate) => certificate.raw),
    certificateAuthorities: parseCertificates(fs.readFileSync(pki.ca, 'utf8')),
  },
  security,
});
server.start().then(() => process.send({ port: server.coap.secure.address.port }));
process.on('disconnect', () => process.exit(0));
