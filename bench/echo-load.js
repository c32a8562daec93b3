'use strict';
// Child process: closed-loop UDP load against an echo server, the ceiling the LwM2M numbers are compared with.
const dgram = require('node:dgram');

process.on('message', async ({ port, sockets, durationMs }) => {
  const latencies = [];
  let count = 0;
  let lost = 0;
  const end = Date.now() + durationMs;
  const payload = Buffer.alloc(40, 1);
  await Promise.all(
    Array.from({ length: sockets }, () =>
      new Promise((resolve) => {
        const socket = dgram.createSocket('udp4');
        let sentAt = 0;
        let timer;
        const send = () => {
          clearTimeout(timer);
          if (Date.now() > end) {
            socket.close(resolve);
            return;
          }
          sentAt = process.hrtime.bigint();
          socket.send(payload, port, '127.0.0.1');
          // A datagram the kernel dropped gets no echo: count it lost and go on.
          timer = setTimeout(() => {
            lost++;
            send();
          }, 200);
        };
        socket.on('message', () => {
          latencies.push(Number(process.hrtime.bigint() - sentAt) / 1e6);
          count++;
          send();
        });
        socket.bind(0, '127.0.0.1', send);
      }),
    ),
  );
  latencies.sort((a, b) => a - b);
  process.send({ count, lost, p50: latencies[Math.floor(latencies.length / 2)], p99: latencies[Math.floor(latencies.length * 0.99)] });
});
