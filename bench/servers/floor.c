// The floor: one write() syscall per socket per event, from C, so the report
// shows what the kernel alone costs. Driven by floor.ts over stdin/stdout:
//   stdin:  "F <len>\n" + <len> bytes (an SSE frame) | "Q\n"
//   stdout: "PORT <n>" once listening, "N <subscribed>" on change, "A" per frame sent.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_FRAME (1 << 20)
#define MAX_HEAD 16384
#define IN_CAP (2 * MAX_FRAME + 64)

static const char OK_HEAD[] =
  "HTTP/1.1 200 OK\r\n"
  "Content-Type: text/event-stream; charset=utf-8\r\n"
  "Cache-Control: no-cache\r\n"
  "X-Accel-Buffering: no\r\n"
  "Date: Thu, 01 Jan 2026 00:00:00 GMT\r\n"
  "Connection: keep-alive\r\n"
  "Keep-Alive: timeout=5\r\n"
  "Transfer-Encoding: chunked\r\n"
  "\r\n";
static const char NOT_FOUND[] =
  "HTTP/1.1 404 Not Found\r\n"
  "Date: Thu, 01 Jan 2026 00:00:00 GMT\r\n"
  "Connection: close\r\n"
  "Content-Length: 0\r\n"
  "\r\n";

struct conn {
  int fd;
  uint32_t gen;      // distinguishes a reused fd from a stale epoll event
  int sub;           // index in subs[], or -1 while reading the request head
  char *head;        // partial request head (only if it spans reads)
  size_t head_len;
  char *out;         // pending output: out[out_off, out_len)
  size_t out_off, out_len, out_cap;
};

static int ep;
static struct conn **byfd;
static size_t byfd_cap;
static struct conn **subs;
static size_t nsubs, subs_cap;
static uint32_t next_gen = 1;
static char rbuf[65536];

static void die (const char *what) {
  perror(what);
  exit(2);
}

static void *xrealloc (void *p, size_t n) {
  void *q = realloc(p, n);
  if (q == NULL) die("realloc");
  return q;
}

static uint64_t key (int fd, uint32_t gen) {
  return ((uint64_t)gen << 32) | (uint32_t)fd;
}

static void set_events (struct conn *c, uint32_t events) {
  struct epoll_event ev = { .events = events, .data.u64 = key(c->fd, c->gen) };
  if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl mod");
}

static void close_conn (struct conn *c) {
  if (c->sub >= 0) {
    struct conn *last = subs[--nsubs];
    subs[c->sub] = last;
    last->sub = c->sub;
  }
  byfd[c->fd] = NULL;
  close(c->fd); // also removes it from the epoll set
  free(c->head);
  free(c->out);
  free(c);
}

static void append_out (struct conn *c, const char *p, size_t n) {
  if (c->out_off > 0 && c->out_len + n > c->out_cap) {
    memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
    c->out_len -= c->out_off;
    c->out_off = 0;
  }
  if (c->out_len + n > c->out_cap) {
    size_t cap = c->out_cap ? c->out_cap : 4096;
    while (cap < c->out_len + n) cap *= 2;
    c->out = xrealloc(c->out, cap);
    c->out_cap = cap;
  }
  memcpy(c->out + c->out_len, p, n);
  c->out_len += n;
}

// Write p to c, or queue it behind bytes already pending. Returns -1 if c died.
static int send_or_queue (struct conn *c, const char *p, size_t n) {
  if (c->out_len > c->out_off) {
    append_out(c, p, n);
    return 0;
  }
  ssize_t w = write(c->fd, p, n);
  if (w < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return -1;
    w = 0;
  }
  if ((size_t)w < n) {
    append_out(c, p + w, n - (size_t)w);
    set_events(c, EPOLLIN | EPOLLOUT);
  }
  return 0;
}

// EPOLLOUT: flush pending bytes. Returns -1 if c died.
static int flush_out (struct conn *c) {
  while (c->out_len > c->out_off) {
    ssize_t w = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
      return -1;
    }
    c->out_off += (size_t)w;
  }
  c->out_off = c->out_len = 0;
  if (c->out_cap > (1 << 20)) { // don't keep a large buffer after a backlog
    free(c->out);
    c->out = NULL;
    c->out_cap = 0;
  }
  set_events(c, EPOLLIN);
  return 0;
}

// A complete request head in h[0, n): subscribe (200) or reject (404).
static void on_head (struct conn *c, const char *h, size_t n) {
  const char *sp = memchr(h, ' ', n);
  size_t rest = sp ? n - (size_t)(sp + 1 - h) : 0;
  if (sp == NULL || rest < 4 || memcmp(sp + 1, "/sse", 4) != 0) {
    (void)!write(c->fd, NOT_FOUND, sizeof NOT_FOUND - 1);
    close_conn(c);
    return;
  }
  free(c->head);
  c->head = NULL;
  c->head_len = 0;
  if (nsubs == subs_cap) {
    subs_cap = subs_cap ? subs_cap * 2 : 1024;
    subs = xrealloc(subs, subs_cap * sizeof *subs);
  }
  c->sub = (int)nsubs;
  subs[nsubs++] = c;
  if (send_or_queue(c, OK_HEAD, sizeof OK_HEAD - 1) < 0) close_conn(c);
}

static void on_readable (struct conn *c) {
  for (;;) {
    ssize_t r = read(c->fd, rbuf, sizeof rbuf);
    if (r == 0) { close_conn(c); return; }
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      close_conn(c);
      return;
    }
    if (c->sub >= 0) continue; // after the head: ignore whatever the client sends
    if (c->head == NULL) {
      const char *end = memmem(rbuf, (size_t)r, "\r\n\r\n", 4);
      if (end != NULL) { on_head(c, rbuf, (size_t)(end - rbuf)); return; }
      c->head = xrealloc(NULL, MAX_HEAD);
    }
    size_t take = (size_t)r < MAX_HEAD - c->head_len ? (size_t)r : MAX_HEAD - c->head_len;
    memcpy(c->head + c->head_len, rbuf, take);
    c->head_len += take;
    const char *end = memmem(c->head, c->head_len, "\r\n\r\n", 4);
    if (end != NULL) { on_head(c, c->head, (size_t)(end - c->head)); return; }
    if (c->head_len == MAX_HEAD) { close_conn(c); return; } // head too large
  }
}

static void on_accept (int lfd) {
  for (;;) {
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) perror("accept4");
      return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if ((size_t)fd >= byfd_cap) {
      size_t cap = byfd_cap ? byfd_cap : 1024;
      while (cap <= (size_t)fd) cap *= 2;
      byfd = xrealloc(byfd, cap * sizeof *byfd);
      memset(byfd + byfd_cap, 0, (cap - byfd_cap) * sizeof *byfd);
      byfd_cap = cap;
    }
    struct conn *c = calloc(1, sizeof *c);
    if (c == NULL) die("calloc");
    c->fd = fd;
    c->gen = next_gen++;
    if (next_gen == 0) next_gen = 1;
    c->sub = -1;
    byfd[fd] = c;
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = key(fd, c->gen) };
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl add");
  }
}

// One frame: chunk-frame it once, then one write() per subscribed socket.
static void broadcast (const char *body, size_t len) {
  static char frame[MAX_FRAME + 32];
  if (len > 0) {
    int h = snprintf(frame, 32, "%zx\r\n", len);
    memcpy(frame + h, body, len);
    memcpy(frame + h + len, "\r\n", 2);
    size_t n = (size_t)h + len + 2;
    // Backwards, so that close_conn's swap-remove only moves visited entries.
    for (size_t i = nsubs; i-- > 0;) {
      struct conn *c = subs[i];
      if (send_or_queue(c, frame, n) < 0) close_conn(c);
    }
  }
  fputs("A\n", stdout);
  fflush(stdout);
}

static char *in;
static size_t in_len;

// Run every complete command in in[0, in_len); keep the incomplete tail.
static void on_stdin (void) {
  for (;;) {
    ssize_t r = read(0, in + in_len, IN_CAP - in_len);
    if (r == 0) exit(0);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      die("read stdin");
    }
    in_len += (size_t)r;
    size_t pos = 0;
    for (;;) {
      char *nl = memchr(in + pos, '\n', in_len - pos);
      if (nl == NULL) {
        if (in_len - pos > 64) { fprintf(stderr, "floor: bad command\n"); exit(2); }
        break;
      }
      if (in[pos] == 'Q') exit(0);
      char *endp;
      unsigned long len = in[pos] == 'F' ? strtoul(in + pos + 1, &endp, 10) : 0;
      if (in[pos] != 'F' || endp != nl || len > MAX_FRAME) {
        fprintf(stderr, "floor: bad command\n");
        exit(2);
      }
      size_t body = (size_t)(nl + 1 - in);
      if (in_len - body < len) break; // frame not complete yet
      broadcast(in + body, len);
      pos = body + len;
    }
    memmove(in, in + pos, in_len - pos);
    in_len -= pos;
  }
}

int main (void) {
  signal(SIGPIPE, SIG_IGN);
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  in = xrealloc(NULL, IN_CAP);

  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (lfd < 0) die("socket");
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = 0, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
  if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
  if (listen(lfd, 4096) < 0) die("listen");
  socklen_t alen = sizeof addr;
  if (getsockname(lfd, (struct sockaddr *)&addr, &alen) < 0) die("getsockname");

  if (fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK) < 0) die("fcntl stdin");
  ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");
  // Connections use gen >= 1 in the key's high half; these two use gen 0.
  struct epoll_event ev = { .events = EPOLLIN, .data.u64 = key(lfd, 0) };
  if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0) die("epoll_ctl listen");
  ev.data.u64 = key(0, 0);
  if (epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev) < 0) die("epoll_ctl stdin");

  printf("PORT %d\n", ntohs(addr.sin_port));
  fflush(stdout);

  static struct epoll_event evs[1024];
  size_t reported = 0;
  for (;;) {
    int n = epoll_wait(ep, evs, 1024, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    for (int i = 0; i < n; i++) {
      int fd = (int)(uint32_t)evs[i].data.u64;
      uint32_t gen = (uint32_t)(evs[i].data.u64 >> 32);
      if (gen == 0) {
        if (fd == lfd) on_accept(lfd);
        else on_stdin();
        continue;
      }
      struct conn *c = (size_t)fd < byfd_cap ? byfd[fd] : NULL;
      if (c == NULL || c->gen != gen) continue; // closed earlier in this batch
      uint32_t e = evs[i].events;
      if (e & EPOLLOUT) {
        if (flush_out(c) < 0) { close_conn(c); continue; }
      }
      if (e & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(c);
    }
    if (nsubs != reported) {
      reported = nsubs;
      printf("N %zu\n", nsubs);
      fflush(stdout);
    }
  }
}
