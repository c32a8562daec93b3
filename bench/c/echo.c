/*
 * The C ceiling of npm run bench: a UDP echo (or, with --sink, a one-way sink) on ADDR, port 0.
 *
 *   echo ADDR [--sink]
 *
 * Prints {"port":N} once bound. An echo sends every datagram back to where it came from; a sink counts
 * them and prints {"received":N} for each line read on stdin. One socket, one recvfrom and one sendto
 * per datagram: the plain loop a server would have, nothing batched.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: echo ADDR [--sink]\n");
    return 2;
  }
  prctl(PR_SET_PDEATHSIG, SIGKILL); /* gone with the bench */
  bool sink = argc > 2 && !strcmp(argv[2], "--sink");
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  int buffer = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer, sizeof buffer);
  struct sockaddr_in address = {.sin_family = AF_INET};
  if (fd < 0 || inet_pton(AF_INET, argv[1], &address.sin_addr) != 1 || bind(fd, (struct sockaddr *)&address, sizeof address) < 0) {
    perror("echo: bind");
    return 1;
  }
  socklen_t length = sizeof address;
  getsockname(fd, (struct sockaddr *)&address, &length);
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("{\"port\":%d}\n", ntohs(address.sin_port));
  unsigned long long received = 0;
  struct pollfd fds[2] = {{.fd = fd, .events = POLLIN}, {.fd = 0, .events = POLLIN}};
  unsigned char datagram[2048];
  for (;;) {
    if (poll(fds, 2, -1) < 0 && errno != EINTR) return 1;
    if (fds[1].revents) {
      char line[64];
      ssize_t n = read(0, line, sizeof line);
      if (n <= 0) return 0;
      for (ssize_t i = 0; i < n; i++) if (line[i] == '\n') printf("{\"received\":%llu}\n", received);
    }
    if (!fds[0].revents) continue;
    for (;;) {
      struct sockaddr_in from;
      socklen_t from_length = sizeof from;
      ssize_t n = recvfrom(fd, datagram, sizeof datagram, MSG_DONTWAIT, (struct sockaddr *)&from, &from_length);
      if (n < 0) break;
      received++;
      if (!sink) sendto(fd, datagram, (size_t)n, 0, (struct sockaddr *)&from, from_length);
    }
  }
}
