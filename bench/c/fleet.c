/*
 * A fleet of lean LwM2M devices, one UDP socket each, for npm run bench: the load generator of every
 * workload, written in C so that it is not the limit of what it measures.
 *
 *   fleet --server ADDR:PORT --bind ADDR --first I --count N --prefix P --window W [--distinct]
 *
 * Devices P-I .. P-(I+N-1) bind ephemeral ports on ADDR (one loopback address has about 28k of
 * them). Commands come on stdin, one a line; each is answered with one JSON line on stdout:
 *   register | update  every device registers (POST /rd, 2.01 expected) or updates (POST to its
 *                      location, 2.04 expected), at most W requests outstanding
 *   server PORT        the devices talk to 127.0.0.1:PORT from now on (a balancer moving them to another instance)
 *   echo OPS           OPS register datagrams to an echo server, each expecting its own bytes back
 *   burst ROUND con|non  every observed device sends one notification (value ROUND)
 *   pace VALUE con|non RATE SECONDS  notifications at RATE per second in all, spread evenly, round-robin
 *   blast ROUND        every device sends one notification-sized NON datagram to the server (a one-way baseline)
 *   fetch OPS BLOCKS SZX  OPS GETs of firmware file blocks: each device asks /fw/P-I (its own name as the token)
 *                      for its next Block2 block of 2^(SZX+4) bytes, 0 .. BLOCKS-1 over and over, at most W
 *                      outstanding; 2.05 expected, the payload bytes counted
 *   stats              counters: ACKs of confirmable notifications, requests served
 *   quit
 * A request is retransmitted after 2 s without an answer, and counted lost after 4 retransmissions;
 * every answer is checked (code, token, or the echoed bytes). Between commands, and during them,
 * devices answer the server's GETs with 2.05 text/plain, registering an observation on Observe=0.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
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

#define RETRANSMIT_NS 2000000000LL
#define MAX_RETRANSMIT 4
#define MAX_WINDOW 1024
#define LIFETIME 3600

typedef struct {
  int fd;
  uint16_t mid;
  uint8_t location[32]; /* the Location-Path options of the registration, encoded from option 8 on */
  uint8_t location_length;
  bool pending;
  uint8_t tries;
  int64_t sent_at;
  uint8_t observer_token[8];
  uint8_t observer_token_length;
  bool observed;
  struct sockaddr_in observer;
  uint32_t sequence;
  uint32_t block; /* the next firmware block it fetches */
} device_t;

enum kind { REGISTER, UPDATE, ECHO, FETCH };

static device_t *devices;
static int count, first, window, epfd;
static const char *prefix = "d";
static bool distinct;
static struct sockaddr_in server;
static uint64_t acks, served;

/* The run in progress. */
static enum kind kind;
static int launched, finished, target;
static uint64_t ok, bad, lost, retransmissions, bytes;
static int fetch_blocks = 1, fetch_szx = 6;
static int first_bad_code = -1;
static int outstanding[MAX_WINDOW];
static int outstanding_count;
static uint8_t datagram[512];

static int64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void fail(const char *what) {
  fprintf(stderr, "fleet: %s: %s\n", what, strerror(errno));
  exit(1);
}

/* Appends option number (after last) with its value, in CoAP's delta encoding (RFC 7252 3.1). */
static size_t put_option(uint8_t *out, unsigned *last, unsigned number, const void *value, size_t length) {
  size_t at = 1;
  unsigned delta = number - *last;
  uint8_t head = 0;
  if (delta < 13) head = (uint8_t)(delta << 4);
  else if (delta < 269) { head = 13 << 4; out[at++] = (uint8_t)(delta - 13); }
  else { head = 14 << 4; out[at++] = (uint8_t)((delta - 269) >> 8); out[at++] = (uint8_t)(delta - 269); }
  if (length < 13) { out[0] = head | (uint8_t)length; }
  else { out[0] = head | 13; out[at++] = (uint8_t)(length - 13); }
  memcpy(out + at, value, length);
  *last = number;
  return at + length;
}

static size_t header(uint8_t *out, int type, int code, uint16_t mid, const uint8_t *token, size_t token_length) {
  out[0] = (uint8_t)(0x40 | (type << 4) | token_length);
  out[1] = (uint8_t)code;
  out[2] = (uint8_t)(mid >> 8);
  out[3] = (uint8_t)mid;
  memcpy(out + 4, token, token_length);
  return 4 + token_length;
}

/* The link list a device announces: the same for all, or (--distinct) its own objects and instances. */
static int links(int index, char *out, size_t size) {
  if (!distinct) return snprintf(out, size, "</1/0>,</3/0>,</3303/0>,</3304/0>");
  return snprintf(out, size, "</1/0>,</3/0>,</%d/0>,</%d/%d>", 3300 + index % 100, 3400 + (index / 100) % 100, (index / 10000) % 10);
}

static void token_of(int index, uint8_t token[4]) {
  uint32_t value = (uint32_t)(first + index);
  token[0] = (uint8_t)(value >> 24);
  token[1] = (uint8_t)(value >> 16);
  token[2] = (uint8_t)(value >> 8);
  token[3] = (uint8_t)value;
}

static size_t register_datagram(int index, uint8_t *out) {
  device_t *d = &devices[index];
  uint8_t token[4];
  unsigned last = 0;
  char text[160];
  token_of(index, token);
  size_t at = header(out, 0, 2, d->mid, token, 4);
  at += put_option(out + at, &last, 11, "rd", 2);
  uint8_t format = 40;
  at += put_option(out + at, &last, 12, &format, 1);
  int n = snprintf(text, sizeof text, "ep=%s-%d", prefix, first + index);
  at += put_option(out + at, &last, 15, text, (size_t)n);
  n = snprintf(text, sizeof text, "lt=%d", LIFETIME);
  at += put_option(out + at, &last, 15, text, (size_t)n);
  at += put_option(out + at, &last, 15, "lwm2m=1.1", 9);
  out[at++] = 0xff;
  n = links(first + index, text, sizeof text);
  memcpy(out + at, text, (size_t)n);
  return at + (size_t)n;
}

static size_t update_datagram(int index, uint8_t *out) {
  device_t *d = &devices[index];
  uint8_t token[4];
  token_of(index, token);
  size_t at = header(out, 0, 2, d->mid, token, 4);
  /* The stored location starts at option 8; Uri-Path (11) follows Location-Path in number order, so it is re-encoded. */
  unsigned last = 0;
  const uint8_t *p = d->location, *end = d->location + d->location_length;
  while (p < end) {
    size_t length = *p++;
    at += put_option(out + at, &last, 11, p, length);
    p += length;
  }
  return at;
}

/* GET /fw/P-I with Block2 (its next block, 2^(szx+4) bytes): a device pulling its firmware package. */
static size_t fetch_datagram(int index, uint8_t *out) {
  device_t *d = &devices[index];
  uint8_t token[4], value[3];
  unsigned last = 0;
  char name[64];
  token_of(index, token);
  size_t at = header(out, 0, 1, d->mid, token, 4);
  at += put_option(out + at, &last, 11, "fw", 2);
  int n = snprintf(name, sizeof name, "%s-%d", prefix, first + index);
  at += put_option(out + at, &last, 11, name, (size_t)n);
  uint32_t block = d->block << 4 | (uint32_t)fetch_szx;
  size_t length = block > 0xffff ? 3 : block > 0xff ? 2 : block > 0 ? 1 : 0;
  for (size_t i = 0; i < length; i++) value[i] = (uint8_t)(block >> (8 * (length - 1 - i)));
  return at + put_option(out + at, &last, 23, value, length);
}

static void send_request(int index) {
  device_t *d = &devices[index];
  size_t length = kind == UPDATE ? update_datagram(index, datagram) : kind == FETCH ? fetch_datagram(index, datagram) : register_datagram(index, datagram);
  if (sendto(d->fd, datagram, length, 0, (struct sockaddr *)&server, sizeof server) < 0 && errno != EAGAIN && errno != ENOBUFS) fail("sendto");
  d->sent_at = now_ns();
}

static void launch(void) {
  while (outstanding_count < window && launched < target) {
    int index = launched % count;
    device_t *d = &devices[index];
    if (d->pending) break; /* an echo pass came round to a device still waiting: wait for it */
    launched++;
    d->mid++;
    d->pending = true;
    d->tries = 0;
    outstanding[outstanding_count++] = index;
    send_request(index);
  }
}

static void settle(int index) {
  devices[index].pending = false;
  for (int i = 0; i < outstanding_count; i++) {
    if (outstanding[i] == index) {
      outstanding[i] = outstanding[--outstanding_count];
      break;
    }
  }
  finished++;
}

typedef struct {
  int type, code, token_length;
  uint16_t mid;
  const uint8_t *token, *payload;
  size_t payload_length;
  bool observe_zero, has_observe;
} message_t;

/* Reads a message: header, token, Observe, payload, and its Location-Path options (8) copied into location. False when malformed. */
static bool parse(const uint8_t *in, size_t length, message_t *m, uint8_t *location, uint8_t *location_length) {
  if (length < 4 || (in[0] >> 6) != 1) return false;
  m->type = (in[0] >> 4) & 3;
  m->token_length = in[0] & 15;
  m->code = in[1];
  m->mid = (uint16_t)(in[2] << 8 | in[3]);
  if (m->token_length > 8 || length < 4u + m->token_length) return false;
  m->token = in + 4;
  m->has_observe = m->observe_zero = false;
  m->payload = NULL;
  m->payload_length = 0;
  size_t at = 4 + m->token_length, kept = 0;
  unsigned number = 0;
  while (at < length) {
    if (in[at] == 0xff) {
      m->payload = in + at + 1;
      m->payload_length = length - at - 1;
      break;
    }
    unsigned delta = in[at] >> 4, option_length = in[at] & 15;
    at++;
    if (delta == 13) delta = 13 + in[at++];
    else if (delta == 14) { delta = 269 + (in[at] << 8 | in[at + 1]); at += 2; }
    if (option_length == 13) option_length = 13 + in[at++];
    else if (option_length == 14) { option_length = 269 + (in[at] << 8 | in[at + 1]); at += 2; }
    if (delta == 15 || option_length == 15 || at + option_length > length) return false;
    number += delta;
    if (number == 6) {
      m->has_observe = true;
      m->observe_zero = option_length == 0 || (option_length == 1 && in[at] == 0);
    }
    if (number == 8 && location && kept + 1 + option_length <= 32) {
      location[kept++] = (uint8_t)option_length;
      memcpy(location + kept, in + at, option_length);
      kept += option_length;
    }
    at += option_length;
  }
  if (location_length) *location_length = (uint8_t)kept;
  return true;
}

static void send_to(int fd, const uint8_t *bytes, size_t length, const struct sockaddr_in *to) {
  if (sendto(fd, bytes, length, 0, (const struct sockaddr *)to, sizeof *to) < 0 && errno != EAGAIN && errno != ENOBUFS) fail("sendto");
}

static size_t notification(device_t *d, bool confirmable, const uint8_t *token, size_t token_length, uint32_t value, uint8_t *out) {
  unsigned last = 0;
  uint8_t sequence[3] = {(uint8_t)(d->sequence >> 16), (uint8_t)(d->sequence >> 8), (uint8_t)d->sequence};
  size_t at = header(out, confirmable ? 0 : 1, 69, d->mid, token, token_length);
  at += put_option(out + at, &last, 6, sequence, 3);
  at += put_option(out + at, &last, 12, "", 0);
  out[at++] = 0xff;
  return at + (size_t)sprintf((char *)out + at, "%u", value);
}

/* A request from the server: a GET gets 2.05 text/plain, Observe=0 makes an observation. */
static void serve(int index, const message_t *m, const struct sockaddr_in *from) {
  device_t *d = &devices[index];
  uint8_t out[64];
  unsigned last = 0;
  if (m->code != 1 || m->type > 1) return;
  size_t at = header(out, m->type == 0 ? 2 : 1, 69, m->type == 0 ? m->mid : ++d->mid, m->token, (size_t)m->token_length);
  if (m->has_observe && m->observe_zero) {
    d->observed = true;
    d->observer = *from;
    d->observer_token_length = (uint8_t)m->token_length;
    memcpy(d->observer_token, m->token, (size_t)m->token_length);
    uint8_t sequence[3] = {(uint8_t)(d->sequence >> 16), (uint8_t)(d->sequence >> 8), (uint8_t)d->sequence};
    at += put_option(out + at, &last, 6, sequence, 3);
  }
  at += put_option(out + at, &last, 12, "", 0);
  out[at++] = 0xff;
  out[at++] = '2';
  out[at++] = '0';
  send_to(d->fd, out, at, from);
  served++;
}

static void receive(int index) {
  device_t *d = &devices[index];
  uint8_t in[1500];
  struct sockaddr_in from;
  for (;;) {
    socklen_t from_length = sizeof from;
    ssize_t n = recvfrom(d->fd, in, sizeof in, MSG_DONTWAIT, (struct sockaddr *)&from, &from_length);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == ECONNREFUSED) continue;
      fail("recvfrom");
    }
    if (d->pending && kind == ECHO) {
      uint8_t expected[512];
      size_t length = register_datagram(index, expected);
      if ((size_t)n == length && memcmp(in, expected, length) == 0) ok++;
      else bad++;
      settle(index);
      continue;
    }
    message_t m;
    uint8_t location[32], location_length = 0;
    if (!parse(in, (size_t)n, &m, location, &location_length)) {
      if (d->pending) { bad++; settle(index); }
      continue;
    }
    if (m.code == 0 && m.type == 0) { /* a CoAP ping, which the server sends before its first request to an address: a Reset answers it (RFC 7252 4.3) */
      uint8_t reset[4] = {0x70, 0, (uint8_t)(m.mid >> 8), (uint8_t)m.mid};
      send_to(d->fd, reset, 4, &from);
      continue;
    }
    if (m.code == 0 && m.type == 2) { /* an empty ACK: of a confirmable notification, or of a separate response to come */
      if (d->pending && m.mid == d->mid) d->tries = MAX_RETRANSMIT + 1; /* stop retransmitting, keep waiting */
      else acks++;
      continue;
    }
    if (m.code >= 1 && m.code <= 31) {
      serve(index, &m, &from);
      continue;
    }
    if (!d->pending) continue;
    uint8_t token[4];
    token_of(index, token);
    if (m.token_length != 4 || memcmp(m.token, token, 4) != 0) continue; /* not ours (a late answer to an earlier try) */
    if (m.type == 0) { /* a separate confirmable response: acknowledge it */
      uint8_t ack[4] = {0x60, 0, (uint8_t)(m.mid >> 8), (uint8_t)m.mid};
      send_to(d->fd, ack, 4, &from);
    }
    int expected = kind == REGISTER ? 65 : kind == FETCH ? 69 : 68;
    if (m.code == expected && (kind != REGISTER || location_length > 0)) {
      ok++;
      if (kind == FETCH) {
        bytes += m.payload_length;
        d->block = (d->block + 1) % (uint32_t)fetch_blocks;
      }
      if (kind == REGISTER) {
        memcpy(d->location, location, location_length);
        d->location_length = location_length;
      }
    } else {
      bad++;
      if (first_bad_code < 0) first_bad_code = m.code;
    }
    settle(index);
  }
}

static void retransmit_due(void) {
  int64_t now = now_ns();
  for (int i = 0; i < outstanding_count; i++) {
    int index = outstanding[i];
    device_t *d = &devices[index];
    if (now - d->sent_at < RETRANSMIT_NS) continue;
    if (d->tries >= MAX_RETRANSMIT) {
      lost++;
      settle(index);
      i--;
      continue;
    }
    d->tries++;
    retransmissions++;
    send_request(index);
  }
}

static void poll_once(int timeout_ms) {
  struct epoll_event events[256];
  int n = epoll_wait(epfd, events, 256, timeout_ms);
  if (n < 0 && errno != EINTR) fail("epoll_wait");
  for (int i = 0; i < n; i++) {
    if (events[i].data.u32 == UINT32_MAX) continue;
    receive((int)events[i].data.u32);
  }
}

static void run(enum kind what, int operations) {
  kind = what;
  launched = finished = 0;
  target = operations;
  ok = bad = lost = retransmissions = bytes = 0;
  first_bad_code = -1;
  outstanding_count = 0;
  int64_t started = now_ns();
  launch();
  while (finished < target) {
    poll_once(20);
    retransmit_due();
    launch();
  }
  printf("{\"ok\":%llu,\"bad\":%llu,\"lost\":%llu,\"retransmissions\":%llu,\"bytes\":%llu,\"firstBadCode\":%d,\"ms\":%.3f}\n", (unsigned long long)ok,
         (unsigned long long)bad, (unsigned long long)lost, (unsigned long long)retransmissions, (unsigned long long)bytes, first_bad_code, (now_ns() - started) / 1e6);
}

static void burst(uint32_t round, bool confirmable) {
  uint8_t out[64];
  int sent = 0;
  for (int i = 0; i < count; i++) {
    device_t *d = &devices[i];
    if (!d->observed) continue;
    d->sequence = (d->sequence + 1) & 0xffffff;
    d->mid++;
    size_t length = notification(d, confirmable, d->observer_token, d->observer_token_length, round, out);
    send_to(d->fd, out, length, &d->observer);
    sent++;
  }
  printf("{\"sent\":%d}\n", sent);
}

/* Notifications spread evenly at rate per second for seconds, round-robin over the observed devices (independent devices do not notify in step). */
static void pace(uint32_t value, bool confirmable, double rate, double seconds) {
  uint8_t out[64];
  long total = (long)(rate * seconds), sent = 0;
  int cursor = 0, observed = 0;
  for (int i = 0; i < count; i++) observed += devices[i].observed;
  int64_t started = now_ns();
  while (observed && sent < total) {
    long due = (long)((now_ns() - started) / 1e9 * rate);
    if (due > total) due = total;
    while (sent < due) {
      device_t *d = &devices[cursor];
      cursor = (cursor + 1) % count;
      if (!d->observed) continue;
      d->sequence = (d->sequence + 1) & 0xffffff;
      d->mid++;
      send_to(d->fd, out, notification(d, confirmable, d->observer_token, d->observer_token_length, value + (uint32_t)(sent / observed), out), &d->observer);
      sent++;
    }
    poll_once(1);
  }
  printf("{\"sent\":%ld,\"ms\":%.3f}\n", sent, (now_ns() - started) / 1e6);
}

static void blast(uint32_t round) {
  uint8_t out[64], token[4];
  for (int i = 0; i < count; i++) {
    device_t *d = &devices[i];
    d->sequence = (d->sequence + 1) & 0xffffff;
    d->mid++;
    token_of(i, token);
    send_to(d->fd, out, notification(d, false, token, 4, round, out), &server);
  }
  printf("{\"sent\":%d}\n", count);
}

static void parse_address(const char *text, struct sockaddr_in *out) {
  char host[64];
  const char *colon = strrchr(text, ':');
  size_t length = colon ? (size_t)(colon - text) : strlen(text);
  if (length >= sizeof host) length = sizeof host - 1;
  memcpy(host, text, length);
  host[length] = 0;
  memset(out, 0, sizeof *out);
  out->sin_family = AF_INET;
  out->sin_port = htons(colon ? (uint16_t)atoi(colon + 1) : 0);
  if (inet_pton(AF_INET, host, &out->sin_addr) != 1) {
    fprintf(stderr, "fleet: bad address %s\n", text);
    exit(2);
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
    else if (!strcmp(arg, "--first")) first = atoi(value), i++;
    else if (!strcmp(arg, "--count")) count = atoi(value), i++;
    else if (!strcmp(arg, "--prefix")) prefix = value, i++;
    else if (!strcmp(arg, "--window")) window = atoi(value), i++;
    else if (!strcmp(arg, "--distinct")) distinct = true;
    else {
      fprintf(stderr, "fleet: unknown argument %s\n", arg);
      return 2;
    }
  }
  if (count <= 0 || window <= 0 || window > MAX_WINDOW || !server.sin_port) {
    fprintf(stderr, "usage: fleet --server ADDR:PORT --bind ADDR --first I --count N --prefix P --window W [--distinct]\n");
    return 2;
  }
  prctl(PR_SET_PDEATHSIG, SIGKILL); /* gone with the bench, even mid-run */
  setvbuf(stdout, NULL, _IOLBF, 0);
  devices = calloc((size_t)count, sizeof *devices);
  epfd = epoll_create1(0);
  if (!devices || epfd < 0) fail("setup");
  for (int i = 0; i < count; i++) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (fd < 0) fail("socket");
    if (bind(fd, (struct sockaddr *)&bind_address, sizeof bind_address) < 0) fail("bind");
    struct epoll_event event = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event) < 0) fail("epoll_ctl");
    devices[i].fd = fd;
    devices[i].mid = (uint16_t)((first + i) * 7919);
    devices[i].sequence = 1;
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
      char command[32] = "";
      unsigned argument = 0;
      char mode[8] = "";
      double rate = 0, seconds = 0;
      sscanf(line, "%31s %u %7s %lf %lf", command, &argument, mode, &rate, &seconds);
      if (!strcmp(command, "register")) run(REGISTER, count);
      else if (!strcmp(command, "update")) run(UPDATE, count);
      else if (!strcmp(command, "echo")) run(ECHO, (int)argument);
      else if (!strcmp(command, "burst")) burst(argument, !strcmp(mode, "con"));
      else if (!strcmp(command, "pace")) pace(argument, !strcmp(mode, "con"), rate, seconds);
      else if (!strcmp(command, "blast")) blast(argument);
      else if (!strcmp(command, "fetch") && sscanf(line, "%*s %u %d %d", &argument, &fetch_blocks, &fetch_szx) == 3 && fetch_blocks > 0 && fetch_szx >= 0 && fetch_szx <= 6) run(FETCH, (int)argument);
      else if (!strcmp(command, "stats")) printf("{\"acks\":%llu,\"served\":%llu}\n", (unsigned long long)acks, (unsigned long long)served);
      /* Another server port from now on, as a load balancer moves devices to another instance (the cluster workload). */
      else if (!strcmp(command, "server")) server.sin_port = htons((uint16_t)argument), printf("{\"server\":%u}\n", argument);
      else if (!strcmp(command, "quit")) return 0;
      else printf("{\"error\":\"unknown command %s\"}\n", command);
      size_t used = (size_t)(newline - line) + 1;
      memmove(line, line + used, filled - used);
      filled -= used;
    }
  }
}
