'use strict';
// Child process: the Node.js ceiling, a UDP echo (or with --sink a one-way sink that counts) on
// 127.0.0.1, port 0, with the receive buffer the LwM2M server asks for. IPC: {command:'count'} -> {received}.
const { udpSocket } = require('../lib/udp-socket');

const sink = process.argv.includes('--sink');
const socket = udpSocket();
let received = 0;
socket.on('message', (datagram, remote) => {
  received++;
  if (!sink) socket.send(datagram, remote.port, remote.address);
});
socket.bind(0, '127.0.0.1', () => process.send({ port: socket.address().port }));
process.on('message', (message) => {
  if (message.command === 'count') process.send({ received });
  if (message.command === 'exit') process.exit(0);
});
process.on('disconnect', () => process.exit(0));
