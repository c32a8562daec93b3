/*
 * A fleet of lean LwM2M devices over CoAP over TCP (RFC 8323), one connection each, for npm run bench:
 * the load of the TCP read workload, in C like bench/c/fleet.c so that it is not the limit of what it measures.
 *
 *   tcp-fleet --server ADDR:PORT --bind ADDR --count N --prefix P
 *
 * Devices P-0 .. P-(N-1) connect from ADDR (one loopback address has about 28k ephemeral ports).
 * Commands come on stdin, one a line; each is answered with one JSON line on stdout:
 *   register   every device sends its CSM and a Register (POST /rd, binding T) and waits for 2.01
 *   stats      counters: requests served
 *   quit
 * Between commands and during them, devices answer the server's GETs with 2.05 text/plain "100" and its
 * Pings with Pongs; other messages (CSMs, signals) are read and left.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUFFER 4096

typedef struct {
  int fd;
  bool registered;
  uint8_t in[BUFFER];
  size_t filled;
} device_t;

static device_t *devices;
static int count, epfd, registered;
static const char *prefix = "t";
static struct sockaddr_in server;
static uint64_t served;

static int64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void fail(const char *what) {
  fprintf(stderr, "tcp-fleet: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void parse_address(const char *text, struct sockaddr_in *out) {
  char host[64];
  unsigned port = 0;
  memset(out, 0, sizeof *out);
  out->sin_family = AF_INET;
  if (sscanf(text, "%63[^:]:%u", host, &port) < 1 || inet_pton(AF_INET, host, &out->sin_addr) != 1) {
    fprintf(stderr, "tcp-fleet: bad address %s\n", text);
    exit(2);
  }
  out->sin_port = htons((uint16_t)port);
}

static void write_all(int fd, const uint8_t *bytes, size_t length) {
  while (length > 0) {
    ssize_t n = write(fd, bytes, length);
    if (n < 0 && errno == EAGAIN) continue; /* loopback drains at once; the frames are small */
    if (n < 0) fail("write");
    bytes += n;
    length -= (size_t)n;
  }
}

/* Appends option number (after last) with its value (length < 269), in CoAP's delta encoding. */
static size_t put_option(uint8_t *out, unsigned *last, unsigned number, const void *value, size_t length) {
  size_t at = 1;
  unsigned delta = number - *last;
  uint8_t head = delta < 13 ? (uint8_t)(delta << 4) : (uint8_t)(13 << 4);
  if (delta >= 13) out[at++] = (uint8_t)(delta - 13);
  if (length < 13) out[0] = head | (uint8_t)length;
  else {
    out[0] = head | 13;
    out[at++] = (uint8_t)(length - 13);
  }
  memcpy(out + at, value, length);
  *last = number;
  return at + length;
}

/* Its CSM (Max-Message-Size 8,388,864 as libcoap's, Block-Wise-Transfer) and a Register, as one write. */
static void register_device(int index) {
  static const uint8_t csm[] = {0x50, 0xe1, 0x23, 0x80, 0x01, 0x00, 0x20};
  uint8_t body[256], frame[300];
  unsigned last = 0;
  char text[64];
  size_t at = put_option(body, &last, 11, "rd", 2);
  uint8_t format = 40;
  at += put_option(body + at, &last, 12, &format, 1);
  int n = snprintf(text, sizeof text, "ep=%s-%d", prefix, index);
  at += put_option(body + at, &last, 15, text, (size_t)n);
  at += put_option(body + at, &last, 15, "lt=3600", 7);
  at += put_option(body + at, &last, 15, "lwm2m=1.1", 9);
  at += put_option(body + at, &last, 15, "b=T", 3);
  body[at++] = 0xff;
  static const char links[] = "</1/0>,</3/0>,</3303/0>";
  memcpy(body + at, links, sizeof links - 1);
  at += sizeof links - 1;
  /* Len 13 + one byte (the body is 13..268 bytes), TKL 1; code 0.02 POST; token 1. */
  size_t f = 0;
  frame[f++] = (13 << 4) | 1;
  frame[f++] = (uint8_t)(at - 13);
  frame[f++] = 0x02;
  frame[f++] = 0x01;
  memcpy(frame + f, body, at);
  f += at;
  write_all(devices[index].fd, csm, sizeof csm);
  write_all(devices[index].fd, frame, f);
}

/* The whole length of the frame at the start of bytes, or 0 while too few bytes are there. */
static size_t frame_length(const uint8_t *bytes, size_t available, size_t *code_at) {
  if (available < 1) return 0;
  unsigned nibble = bytes[0] >> 4, token = bytes[0] & 0x0f;
  if (nibble < 13) return *code_at = 1, 2 + token + nibble;
  if (nibble == 13) return available < 2 ? 0 : (*code_at = 2, 3 + token + bytes[1] + 13);
  if (nibble == 14) return available < 3 ? 0 : (*code_at = 3, 4 + token + ((size_t)bytes[1] << 8 | bytes[2]) + 269);
  return available < 5 ? 0 : (*code_at = 5, 6 + token + ((size_t)bytes[1] << 24 | (size_t)bytes[2] << 16 | (size_t)bytes[3] << 8 | bytes[4]) + 65805);
}

static void handle(int index, const uint8_t *frame, size_t code_at) {
  device_t *d = &devices[index];
  uint8_t code = frame[code_at];
  size_t token_length = frame[0] & 0x0f;
  const uint8_t *token = frame + code_at + 1;
  uint8_t out[32];
  if (code == 0x41 && !d->registered) {
    d->registered = true;
    registered++;
  } else if (code == 0x01) {
    /* 2.05, Content-Format 0 (an empty option 12), "100": Len 5. */
    size_t at = 0;
    out[at++] = (uint8_t)((5 << 4) | token_length);
    out[at++] = 0x45;
    memcpy(out + at, token, token_length);
    at += token_length;
    out[at++] = 0xc0;
    out[at++] = 0xff;
    memcpy(out + at, "100", 3);
    write_all(d->fd, out, at + 3);
    served++;
  } else if (code == 0xe2) {
    out[0] = (uint8_t)token_length;
    out[1] = 0xe3;
    memcpy(out + 2, token, token_length);
    write_all(d->fd, out, 2 + token_length);
  }
}

static void receive(int index) {
  device_t *d = &devices[index];
  for (;;) {
    ssize_t n = read(d->fd, d->in + d->filled, BUFFER - d->filled);
    if (n == 0) {
      fprintf(stderr, "tcp-fleet: %s-%d: the server closed the connection\n", prefix, index);
      exit(1);
    }
    if (n < 0) {
      if (errno == EAGAIN) return;
      fail("read");
    }
    d->filled += (size_t)n;
    size_t offset = 0, code_at = 0, length;
    while ((length = frame_length(d->in + offset, d->filled - offset, &code_at)) && offset + length <= d->filled) {
      handle(index, d->in + offset, code_at);
      offset += length;
    }
    if (length > BUFFER) {
      fprintf(stderr, "tcp-fleet: a frame of %zu bytes\n", length);
      exit(1);
    }
    memmove(d->in, d->in + offset, d->filled - offset);
    d->filled -= offset;
  }
}

static void poll_once(int timeout_ms) {
  struct epoll_event events[256];
  int n = epoll_wait(epfd, events, 256, timeout_ms);
  for (int i = 0; i < n; i++) {
    if (events[i].data.u32 == UINT32_MAX) continue; /* stdin: read by the main loop */
    receive((int)events[i].data.u32);
  }
}

int main(int argc, char **argv) {
  struct sockaddr_in bind_address;
  parse_address("127.0.0.1", &bind_address);
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    const char *value = i + 1 < argc ? argv[i + 1] : "";
    if (!strcmp(arg, "--server")) parse_address(value, &server), i++;
    else if (!strcmp(arg, "--bind")) parse_address(value, &bind_address), i++;
    else if (!strcmp(arg, "--count")) count = atoi(value), i++;
    else if (!strcmp(arg, "--prefix")) prefix = value, i++;
    else {
      fprintf(stderr, "tcp-fleet: unknown argument %s\n", arg);
      return 2;
    }
  }
  if (count <= 0 || !server.sin_port) {
    fprintf(stderr, "usage: tcp-fleet --server ADDR:PORT --bind ADDR --count N --prefix P\n");
    return 2;
  }
  prctl(PR_SET_PDEATHSIG, SIGKILL); /* gone with the bench, even mid-run */
  setvbuf(stdout, NULL, _IOLBF, 0);
  devices = calloc((size_t)count, sizeof *devices);
  epfd = epoll_create1(0);
  if (!devices || epfd < 0) fail("setup");
  for (int i = 0; i < count; i++) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) fail("socket");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&bind_address, sizeof bind_address) < 0) fail("bind");
    if (connect(fd, (struct sockaddr *)&server, sizeof server) < 0) fail("connect");
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    struct epoll_event event = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event) < 0) fail("epoll_ctl");
    devices[i].fd = fd;
  }
  struct epoll_event input = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
  fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &input) < 0) fail("epoll_ctl stdin");
  printf("{\"opened\":%d}\n", count);
  char line[256];
  size_t filled = 0;
  for (;;) {
    poll_once(100);
    ssize_t n = read(0, line + filled, sizeof line - 1 - filled);
    if (n == 0) return 0; /* the bench went away */
    if (n < 0) continue;
    filled += (size_t)n;
    char *newline;
    while ((newline = memchr(line, '\n', filled))) {
      *newline = 0;
      if (!strncmp(line, "register", 8)) {
        int64_t started = now_ns();
        for (int i = 0; i < count; i++) register_device(i);
        while (registered < count) poll_once(100);
        printf("{\"ok\":%d,\"ms\":%.3f}\n", registered, (double)(now_ns() - started) / 1e6);
      } else if (!strncmp(line, "stats", 5)) {
        printf("{\"served\":%llu}\n", (unsigned long long)served);
      } else if (!strncmp(line, "quit", 4)) {
        return 0;
      } else {
        printf("{\"error\":\"unknown command\"}\n");
      }
      size_t used = (size_t)(newline - line) + 1;
      memmove(line, newline + 1, filled - used);
      filled -= used;
    }
  }
}
