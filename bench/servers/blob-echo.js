'use strict';
// Child process: the baseline of the firmware pull, a Node.js UDP socket on 127.0.0.1 (port 0, the 4 MiB
// receive buffer the pack asks for) that answers every request with a 2.05 of 1,024 bytes: the request's
// message id and token copied into a datagram prepared once per token length. No lookup, no slicing.
const { udpSocket } = require('../lib/udp-socket');
const { randomBytes } = require('node:crypto');

const BLOCK = randomBytes(1024);
/** Token length -> the answer datagram (ACK 2.05, Content-Format 42, the block). */
const answers = new Map();

function answerFor(tokenLength) {
  let answer = answers.get(tokenLength);
  if (!answer) {
    answer = Buffer.concat([Buffer.from([0x60 | tokenLength, 0x45, 0, 0]), Buffer.alloc(tokenLength), Buffer.from([0xc1, 42, 0xff]), BLOCK]);
    answers.set(tokenLength, answer);
  }
  return answer;
}

const socket = udpSocket();
socket.on('message', (datagram, remote) => {
  const tokenLength = datagram[0] & 0x0f;
  if (datagram.length < 4 + tokenLength || tokenLength > 8) return;
  const answer = answerFor(tokenLength);
  answer[2] = datagram[2];
  answer[3] = datagram[3];
  datagram.copy(answer, 4, 4, 4 + tokenLength);
  socket.send(answer, remote.port, remote.address);
});
socket.bind(0, '127.0.0.1', () => process.send({ port: socket.address().port }));
process.on('message', (message) => {
  if (message.command === 'settle') process.send({});
  if (message.command === 'exit') process.exit(0);
});
process.on('disconnect', () => process.exit(0));
