// cordon_splice.node: the I/O of cordon's egress proxy, outside JavaScript.
//
// TypeScript decides; this addon moves bytes. Two parts:
//
// Relays. Once the proxy has decided a connection and chosen the addresses to dial, a relay
// thread dials the upstream, writes the handshake answer to the client and the request preface
// to the upstream, then moves bytes in both directions until both sides have finished
// (half-close is forwarded with shutdown(SHUT_WR)): through a buffer by default, or with
// splice() socket -> pipe -> socket when CORDON_RELAY=splice (see pump_copy for why).
//
// Fronts. A front accepts connections on a listening socket taken over from Node, on Node's own
// event loop (uv_poll) but without any JavaScript socket objects, and hands each client's first
// bytes to TypeScript synchronously. TypeScript answers at once: read more, write bytes, answer
// and close (draining the client so the answer is not lost to a reset), reset, or give the
// connection to a relay. A Node socket per connection costs far more CPU than the policy
// decision itself, and a front thread would add hand-offs; this is where per-connection latency
// is won.
//
// JS API (callbacks always run on the JS thread):
//   start(fdA, fdB, onRelay) -> relay              relay two connected fds (both owned by Node)
//   dial(clientFd, addresses, port, timeoutMs, toClient, toUpstream, onRelay) -> relay
//       dial for a client socket Node owns; addresses are IP literals tried in order
//   onRelay(kind, errno, a, b, cancelled, connected)
//       kind 1: dial(): connected (errno 0, a = index of the address) or failed (errno set;
//               nothing was written to the client; the last event). forward(): failures only;
//               the relay then waits for answer() (or cancel) and reports kind 2.
//       kind 2: the relay ended; a = bytes client->upstream, b = upstream->client, connected =
//               whether the dial had succeeded
//   answer(relay, bytes, reset)   after a failed forward(): write bytes to the client and close
//                                 it gracefully, or reset it
//   cancel(relay)                 stop (the last event still comes, with cancelled = true)
//   listen(fd, transparent, onFront) -> front      accept on a dup of fd (Node closes its own)
//   onFront(kind, id, bytes, localAddress, localPort, errno)   (called from the event loop)
//       kind 1 data: bytes from client `id` (null for a transparent front: just accepted);
//              reading then pauses until more(); 2 eof: the client finished sending;
//       3 closed: the client connection failed and is gone
//   more(front, id) / send(front, id, bytes) / reply(front, id, bytes) / reset(front, id)
//   forward(front, id, addresses, port, timeoutMs, toClient, toUpstream, onRelay) -> relay
//   stop(front)                   close the listener and every connection still in a handshake
//   active() -> [relays, fronts, front connections] not finished yet

#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

// Big enough that one splice call moves a useful amount; small enough that 200 idle
// connections do not pin much memory (pipe pages are only used while data is queued).
#ifndef PIPE_BYTES
#define PIPE_BYTES (256 * 1024)
#endif
#define THREAD_STACK (128 * 1024)
#define MAX_ADDRESSES 8

#define EVENT_CONNECT 1
#define EVENT_DONE 2

typedef struct relay {
  int fd[2];       // [0] client, [1] upstream (-1 until dialled)
  int own_upstream;
  int own_client;  // the client came from a front: the relay closes it
  // The answer to a failed forward(), set by the JS thread under `lock`.
  pthread_mutex_t lock;
  int answer_set;
  int answer_reset;
  char *answer;
  size_t answer_len;
  int wake;        // eventfd: cancel() writes it, the relay thread polls it
  struct relay *qnext; // in the worker pool's queue
  napi_threadsafe_function tsfn;
  // Dial parameters (read-only for the thread).
  struct sockaddr_storage addrs[MAX_ADDRESSES];
  socklen_t addrlens[MAX_ADDRESSES];
  int naddr;
  int timeout_ms;
  char *to_client;
  size_t to_client_len;
  char *to_upstream;
  size_t to_upstream_len;
  // Written by the relay thread before it queues an event; read on the JS thread after.
  int connect_error;
  int connected_index;
  int connected;
  // Set by the event-loop thread when it started the dial itself (see try_connect_now):
  int pending_fd;         // a connect in progress for address `first_address`, or -1
  int first_address;      // where dial() continues
  int first_error;        // why the addresses before it failed
  size_t to_client_done;  // preface bytes already written
  size_t to_upstream_done;
  uint64_t bytes[2];
  int error;
  int cancelled;
  // JS thread only.
  int finished;
  int orphaned; // the JS handle was collected before the relay ended
  struct relay *prev, *next;
} relay_t;

// Relays whose last event has not run. Touched on the JS thread only.
static relay_t *active_head = NULL;
static int active_count = 0;
static int relay_is_last(relay_t *r, intptr_t kind);

static void list_add(relay_t *r) {
  r->prev = NULL;
  r->next = active_head;
  if (active_head) active_head->prev = r;
  active_head = r;
  active_count++;
}

static void list_remove(relay_t *r) {
  if (r->prev) r->prev->next = r->next;
  else if (active_head == r) active_head = r->next;
  if (r->next) r->next->prev = r->prev;
  r->prev = r->next = NULL;
  active_count--;
}

static void wake_relay(relay_t *r) {
  uint64_t one = 1;
  ssize_t ignored = write(r->wake, &one, sizeof one);
  (void)ignored;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/** Wait for `events` on fd or for the wake fd. 1 ready, 0 timeout, -1 cancelled, -2 error. */
static int wait_fd(relay_t *r, int fd, short events, int timeout_ms) {
  for (;;) {
    struct pollfd fds[2] = {{fd, events, 0}, {r->wake, POLLIN, 0}};
    int n = poll(fds, 2, timeout_ms);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -2;
    if (n == 0) return 0;
    if (fds[1].revents) {
      r->cancelled = 1;
      return -1;
    }
    return 1;
  }
}

/** Write all of buf to a non-blocking socket. 0 or an errno. */
/*
 * Waits until either side of a relay can move bytes in the directions `events` asks for (or the
 * relay is cancelled) and marks what is ready. Returns 0, EINTR (call again), -1 when cancelled,
 * or the socket error that ends the relay.
 */
static int wait_both(relay_t *r, const short events[2], int can_read[2], int can_write[2]) {
  // An fd with nothing to wait for is left out, so a hang-up on it cannot spin the loop.
  struct pollfd fds[3] = {
      {events[0] ? r->fd[0] : -1, events[0], 0},
      {events[1] ? r->fd[1] : -1, events[1], 0},
      {r->wake, POLLIN, 0},
  };
  if (poll(fds, 3, -1) < 0) return errno;
  if (fds[2].revents) {
    r->cancelled = 1;
    return -1;
  }
  for (int i = 0; i < 2; i++) {
    short rev = fds[i].revents;
    if (rev & (POLLERR | POLLNVAL)) {
      int e = 0;
      socklen_t len = sizeof e;
      if (getsockopt(r->fd[i], SOL_SOCKET, SO_ERROR, &e, &len) < 0 || e == 0) e = (rev & POLLNVAL) ? EBADF : EIO;
      return e;
    }
    // A hang-up is reported as readable: the next read returns 0 (EOF) or the error.
    if (rev & (POLLIN | POLLHUP)) can_read[i] = 1;
    if (rev & (POLLOUT | POLLHUP)) can_write[i] = 1;
  }
  return 0;
}

static int write_all(relay_t *r, int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
    if (n > 0) {
      buf += n;
      len -= (size_t)n;
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      int w = wait_fd(r, fd, POLLOUT, -1);
      if (w == -1) return ECANCELED;
      if (w < 0) return errno;
    } else {
      return n < 0 ? errno : EPIPE;
    }
  }
  return 0;
}

/** Wait for a non-blocking connect to finish: 0, an errno, or ECANCELED. */
static int connect_result(relay_t *r, int fd, int64_t deadline) {
  int64_t left = deadline - now_ms();
  if (left <= 0) return ETIMEDOUT;
  int w = wait_fd(r, fd, POLLOUT, (int)left);
  if (w == -1) return ECANCELED;
  if (w == 0) return ETIMEDOUT;
  int err = 0;
  socklen_t elen = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0) err = errno;
  return err;
}

static void connected_to(relay_t *r, int fd, int index) {
  int one = 1;
  (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  r->fd[1] = fd;
  r->connected_index = index;
}

/**
 * Connect to the first address that answers within the time limit. 0 or an errno. Continues
 * where the event-loop thread left off (a connect in progress, or addresses already refused).
 */
static int dial(relay_t *r) {
  int64_t deadline = now_ms() + r->timeout_ms;
  int last = r->first_error ? r->first_error : ETIMEDOUT;
  if (r->pending_fd >= 0) {
    int fd = r->pending_fd;
    r->pending_fd = -1;
    int err = connect_result(r, fd, deadline);
    if (err == 0) {
      connected_to(r, fd, r->first_address);
      return 0;
    }
    close(fd);
    if (err == ECANCELED) return ECANCELED;
    last = err;
    r->first_address++;
  }
  for (int i = r->first_address; i < r->naddr; i++) {
    if (deadline - now_ms() <= 0) return ETIMEDOUT;
    int fd = socket(r->addrs[i].ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      last = errno;
      continue;
    }
    int err = 0;
    if (connect(fd, (struct sockaddr *)&r->addrs[i], r->addrlens[i]) < 0) err = errno == EINPROGRESS ? connect_result(r, fd, deadline) : errno;
    if (err == 0) {
      connected_to(r, fd, i);
      return 0;
    }
    close(fd);
    if (err == ECANCELED) return ECANCELED;
    last = err;
  }
  return last;
}

/**
 * On the event-loop thread, before the relay thread exists: start the dial and, when it completes
 * at once (loopback, a fast LAN), write the prefaces right away, so the client's answer does not
 * wait for a new thread to be scheduled. Anything slower is left to the relay thread.
 */
static void try_connect_now(relay_t *r) {
  for (int i = 0; i < r->naddr; i++) {
    int fd = socket(r->addrs[i].ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      r->first_error = errno;
      r->first_address = i + 1;
      continue;
    }
    int err = 0;
    if (connect(fd, (struct sockaddr *)&r->addrs[i], r->addrlens[i]) < 0) {
      if (errno != EINPROGRESS) {
        err = errno;
      } else {
        struct pollfd p = {fd, POLLOUT, 0};
        if (poll(&p, 1, 0) != 1) {
          r->pending_fd = fd; // still connecting: the relay thread waits for it
          r->first_address = i;
          return;
        }
        socklen_t elen = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0) err = errno;
      }
    }
    if (err != 0) {
      close(fd);
      r->first_error = err;
      r->first_address = i + 1;
      continue;
    }
    connected_to(r, fd, i);
    // Best effort: whatever does not fit now, the relay thread writes.
    ssize_t n = send(r->fd[0], r->to_client, r->to_client_len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) r->to_client_done = (size_t)n;
    if (r->to_client_done == r->to_client_len && r->to_upstream_len > 0) {
      n = send(r->fd[1], r->to_upstream, r->to_upstream_len, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) r->to_upstream_done = (size_t)n;
    }
    return;
  }
}

/** Splice both directions until both have finished. 0 or an errno. */
static int pump_splice(relay_t *r) {
  int pipes[2][2] = {{-1, -1}, {-1, -1}};
  size_t cap[2] = {0, 0};
  size_t queued[2] = {0, 0};
  int eof[2] = {0, 0};
  int shut[2] = {0, 0};
  // Whether fd i may be readable / writable: cleared on EAGAIN, set again by poll. An idle
  // direction then costs no system calls (during a download, the request side is idle).
  int can_read[2] = {1, 1};
  int can_write[2] = {1, 1};
  int err = 0;

  for (int d = 0; d < 2; d++) {
    if (pipe2(pipes[d], O_NONBLOCK | O_CLOEXEC) < 0) {
      err = errno;
      goto out;
    }
    // May fail under the per-user pipe limits; the default size still works.
    (void)fcntl(pipes[d][1], F_SETPIPE_SZ, PIPE_BYTES);
    int size = fcntl(pipes[d][1], F_GETPIPE_SZ);
    cap[d] = size > 0 ? (size_t)size : 65536;
  }

  for (;;) {
    int progress = 0;
    // Direction d moves bytes from fd[d] to fd[1 - d] through pipes[d].
    for (int d = 0; d < 2; d++) {
      int src = d, dst = 1 - d;
      if (!eof[d] && queued[d] < cap[d] && can_read[src]) {
        ssize_t n = splice(r->fd[src], NULL, pipes[d][1], NULL, cap[d] - queued[d], SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
          queued[d] += (size_t)n;
          progress = 1;
        } else if (n == 0) {
          eof[d] = 1;
          progress = 1;
        } else if (errno == EAGAIN) {
          can_read[src] = 0;
        } else if (errno != EINTR) {
          err = errno;
          goto out;
        }
      }
      if (queued[d] > 0 && can_write[dst]) {
        ssize_t n = splice(pipes[d][0], NULL, r->fd[dst], NULL, queued[d], SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
          queued[d] -= (size_t)n;
          r->bytes[d] += (uint64_t)n;
          progress = 1;
        } else if (n < 0 && errno == EAGAIN) {
          can_write[dst] = 0;
        } else if (n < 0 && errno != EINTR) {
          err = errno;
          goto out;
        }
      }
      if (eof[d] && queued[d] == 0 && !shut[d]) {
        // ENOTCONN: the peer is already gone; the other direction will notice.
        (void)shutdown(r->fd[dst], SHUT_WR);
        shut[d] = 1;
      }
    }
    if (shut[0] && shut[1]) break;
    if (progress) continue;

    // Nothing moved: every operation still wanted is waiting for its fd.
    short events[2] = {0, 0};
    for (int d = 0; d < 2; d++) {
      if (!eof[d] && queued[d] < cap[d]) events[d] |= POLLIN;
      if (queued[d] > 0) events[1 - d] |= POLLOUT;
    }
    int w = wait_both(r, events, can_read, can_write);
    if (w == EINTR) continue;
    if (w) {
      if (w > 0) err = w;
      goto out;
    }
  }

out:
  for (int d = 0; d < 2; d++) {
    if (pipes[d][0] >= 0) close(pipes[d][0]);
    if (pipes[d][1] >= 0) close(pipes[d][1]);
  }
  return err;
}

// The copying relay's buffer per direction: small for chatty connections, grown for bulk ones.
#define COPY_MIN (64 * 1024)
#define COPY_MAX (1024 * 1024)

/**
 * Copy both directions through a buffer each until both have finished. 0 or an errno.
 * Measured on loopback (Linux 6.18), this moves bytes faster and with no more CPU than the splice
 * loop: splicing out of a loopback TCP socket copies anyway, and the pipe adds work.
 */
static int pump_copy(relay_t *r) {
  char *buf[2] = {NULL, NULL};
  size_t cap[2] = {0, 0}, have[2] = {0, 0}, off[2] = {0, 0};
  int eof[2] = {0, 0}, shut[2] = {0, 0}, full[2] = {0, 0};
  // Whether fd i may be readable / writable: cleared on EAGAIN, set again by poll.
  int can_read[2] = {1, 1}, can_write[2] = {1, 1};
  int err = 0;
  for (;;) {
    int progress = 0;
    // Direction d moves bytes from fd[d] to fd[1 - d] through buf[d].
    for (int d = 0; d < 2; d++) {
      int src = d, dst = 1 - d;
      if (!eof[d] && have[d] == 0 && can_read[src]) {
        if (buf[d] == NULL || (full[d] && cap[d] < COPY_MAX)) {
          size_t want = buf[d] == NULL ? COPY_MIN : cap[d] * 2;
          char *grown = (char *)realloc(buf[d], want);
          if (grown) {
            buf[d] = grown;
            cap[d] = want;
          } else if (buf[d] == NULL) {
            err = ENOMEM;
            goto out;
          }
          full[d] = 0;
        }
        ssize_t n = recv(r->fd[src], buf[d], cap[d], 0);
        if (n > 0) {
          have[d] = (size_t)n;
          off[d] = 0;
          full[d] = (size_t)n == cap[d];
          progress = 1;
        } else if (n == 0) {
          eof[d] = 1;
          progress = 1;
        } else if (errno == EAGAIN) {
          can_read[src] = 0;
        } else if (errno != EINTR) {
          err = errno;
          goto out;
        }
      }
      if (have[d] > off[d] && can_write[dst]) {
        ssize_t n = send(r->fd[dst], buf[d] + off[d], have[d] - off[d], MSG_NOSIGNAL);
        if (n > 0) {
          off[d] += (size_t)n;
          r->bytes[d] += (uint64_t)n;
          if (off[d] == have[d]) have[d] = off[d] = 0;
          progress = 1;
        } else if (n < 0 && errno == EAGAIN) {
          can_write[dst] = 0;
        } else if (n < 0 && errno != EINTR) {
          err = errno;
          goto out;
        }
      }
      if (eof[d] && have[d] == 0 && !shut[d]) {
        // ENOTCONN: the peer is already gone; the other direction will notice.
        (void)shutdown(r->fd[dst], SHUT_WR);
        shut[d] = 1;
      }
    }
    if (shut[0] && shut[1]) break;
    if (progress) continue;

    short events[2] = {0, 0};
    for (int d = 0; d < 2; d++) {
      if (!eof[d] && have[d] == 0) events[d] |= POLLIN;
      if (have[d] > off[d]) events[1 - d] |= POLLOUT;
    }
    int w = wait_both(r, events, can_read, can_write);
    if (w == EINTR) continue;
    if (w) {
      if (w > 0) err = w;
      goto out;
    }
  }
out:
  free(buf[0]);
  free(buf[1]);
  return err;
}

/** The byte loop: copying by default, splice() with CORDON_RELAY=splice. */
static int pump(relay_t *r) {
  const char *mode = getenv("CORDON_RELAY");
  return mode && strcmp(mode, "splice") == 0 ? pump_splice(r) : pump_copy(r);
}

static void emit(relay_t *r, intptr_t kind) {
  napi_call_threadsafe_function(r->tsfn, (void *)kind, napi_tsfn_blocking);
}

#define LINGER_MS 2000

/**
 * Close a client we answered without losing the answer: stop sending, then read and discard
 * until the client closes (or a deadline), since closing with unread bytes sends a reset.
 */
static void linger_close(relay_t *r, int fd) {
  (void)shutdown(fd, SHUT_WR);
  int64_t deadline = now_ms() + LINGER_MS;
  char sink[4096];
  for (;;) {
    ssize_t n = recv(fd, sink, sizeof sink, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) break;
    if (n > 0) continue;
    int64_t left = deadline - now_ms();
    if (left <= 0 || wait_fd(r, fd, POLLIN, (int)left) != 1) break;
  }
  close(fd);
}

static void reset_close(int fd) {
  struct linger lg = {1, 0};
  (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(fd);
}

/** After a failed dial of a front's client: wait for JS's answer (or a cancel), deliver it. */
static void answer_client(relay_t *r) {
  for (;;) {
    struct pollfd p = {r->wake, POLLIN, 0};
    if (poll(&p, 1, -1) < 0 && errno == EINTR) continue;
    uint64_t v;
    ssize_t ignored = read(r->wake, &v, sizeof v);
    (void)ignored;
    pthread_mutex_lock(&r->lock);
    int set = r->answer_set;
    pthread_mutex_unlock(&r->lock);
    if (set) break;
    if (p.revents) {
      // Woken without an answer: a cancel.
      r->cancelled = 1;
      reset_close(r->fd[0]);
      r->fd[0] = -1;
      return;
    }
  }
  if (r->answer_reset) {
    reset_close(r->fd[0]);
  } else {
    (void)write_all(r, r->fd[0], r->answer, r->answer_len);
    linger_close(r, r->fd[0]);
  }
  r->fd[0] = -1;
}

/** One relay, start to end, on a pool worker. r may be freed once its last event is queued. */
static void relay_main(relay_t *r) {
  napi_threadsafe_function tsfn = r->tsfn;
  if (r->fd[0] < 0) {
    r->error = ECONNRESET; // the client went away before the hand-over
    goto done;
  }
  if (r->own_upstream) {
    r->connect_error = r->fd[1] >= 0 ? 0 : dial(r);
    if (r->connect_error == ECANCELED) {
      r->connect_error = 0;
      r->error = 0;
      goto done; // cancelled while dialling: report as a cancelled relay
    }
    // A front's relay reports failures only: on success nobody needs to wake the JS thread
    // while the client waits for its first bytes.
    if (!r->own_client || r->connect_error != 0) emit(r, EVENT_CONNECT);
    if (r->connect_error != 0) {
      if (!r->own_client) goto release; // Node answers its own client; that event was the last
      r->error = r->connect_error;
      answer_client(r);
      goto done;
    }
    r->connected = 1;
    int err = write_all(r, r->fd[0], r->to_client + r->to_client_done, r->to_client_len - r->to_client_done);
    if (err == 0) err = write_all(r, r->fd[1], r->to_upstream + r->to_upstream_done, r->to_upstream_len - r->to_upstream_done);
    if (err != 0) {
      if (err == ECANCELED) r->cancelled = 1;
      else r->error = err;
      goto done;
    }
  }
  r->error = pump(r);
done:
  if (r->pending_fd >= 0) {
    close(r->pending_fd);
    r->pending_fd = -1;
  }
  if (r->own_upstream && r->fd[1] >= 0) {
    close(r->fd[1]);
    r->fd[1] = -1;
  }
  if (r->own_client && r->fd[0] >= 0) {
    close(r->fd[0]);
    r->fd[0] = -1;
  }
  emit(r, EVENT_DONE);
release:
  napi_release_threadsafe_function(tsfn, napi_tsfn_release);
}

static void free_relay(relay_t *r) {
  if (r->wake >= 0) close(r->wake);
  pthread_mutex_destroy(&r->lock);
  free(r->to_client);
  free(r->to_upstream);
  free(r->answer);
  free(r);
}

static int relay_is_last(relay_t *r, intptr_t kind) {
  return kind == EVENT_DONE || (kind == EVENT_CONNECT && r->connect_error != 0 && !r->own_client);
}

// Runs on the JS thread for each event the relay thread queued.
static void call_event(napi_env env, napi_value js_cb, void *context, void *data) {
  relay_t *r = (relay_t *)context;
  intptr_t kind = (intptr_t)data;
  int last = relay_is_last(r, kind);
  if (last) {
    list_remove(r);
    r->finished = 1;
    // Nothing wakes a finished relay: release its eventfd now rather than at garbage collection.
    close(r->wake);
    r->wake = -1;
  }
  if (env != NULL && js_cb != NULL) {
    napi_value argv[6], undefined;
    napi_create_int32(env, (int32_t)kind, &argv[0]);
    if (kind == EVENT_CONNECT) {
      napi_create_int32(env, r->connect_error, &argv[1]);
      napi_create_int32(env, r->connected_index, &argv[2]);
      napi_create_int32(env, 0, &argv[3]);
      napi_get_boolean(env, 0, &argv[4]);
    } else {
      napi_create_int32(env, r->error, &argv[1]);
      napi_create_double(env, (double)r->bytes[0], &argv[2]);
      napi_create_double(env, (double)r->bytes[1], &argv[3]);
      napi_get_boolean(env, r->cancelled, &argv[4]);
    }
    napi_get_boolean(env, r->connected || (kind == EVENT_CONNECT && r->connect_error == 0), &argv[5]);
    napi_get_undefined(env, &undefined);
    napi_call_function(env, undefined, js_cb, 6, argv, NULL);
  }
  if (last && r->orphaned) free_relay(r);
}

static void finalize_handle(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  relay_t *r = (relay_t *)data;
  if (r->finished) free_relay(r);
  else r->orphaned = 1; // call_event frees it
}

static napi_value throw_errno(napi_env env, const char *what, int e) {
  char msg[160];
  snprintf(msg, sizeof msg, "cordon_splice: %s: %s", what, strerror(e));
  napi_throw_error(env, NULL, msg);
  return NULL;
}

static int set_nonblocking(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0) return errno;
  // Node keeps its sockets non-blocking already; make sure, since a blocking splice would hang.
  if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return errno;
  return 0;
}

/** The relay's event callback and JS handle; takes ownership of r (freed on failure). */
static napi_value prepare(napi_env env, relay_t *r, napi_value callback) {
  napi_value name;
  napi_create_string_utf8(env, "cordon_splice", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, callback, NULL, name, 0, 1, NULL, NULL, r, call_event, &r->tsfn) != napi_ok) {
    free_relay(r);
    napi_throw_error(env, NULL, "cordon_splice: cannot create the event callback");
    return NULL;
  }
  napi_value handle;
  if (napi_create_external(env, r, finalize_handle, NULL, &handle) != napi_ok) {
    napi_release_threadsafe_function(r->tsfn, napi_tsfn_abort);
    free_relay(r);
    napi_throw_error(env, NULL, "cordon_splice: cannot create a handle");
    return NULL;
  }
  list_add(r);
  return handle;
}

// Relays run on a pool of worker threads: one worker per running relay, parked workers reused.
// Waking a parked worker costs a few microseconds; creating a thread costs several times that,
// on the event-loop thread, while a client waits. Idle workers leave after POOL_IDLE_SECONDS.
#define POOL_IDLE_SECONDS 30

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_wake = PTHREAD_COND_INITIALIZER;
static pthread_cond_t pool_drained = PTHREAD_COND_INITIALIZER;
static relay_t *queue_head = NULL, *queue_tail = NULL;
static int pool_threads = 0, pool_idle = 0, pool_queued = 0, pool_stopping = 0;

static void *worker_main(void *arg) {
  (void)arg;
  pthread_mutex_lock(&pool_lock);
  for (;;) {
    while (queue_head == NULL) {
      if (pool_stopping) goto quit;
      pool_idle++;
      struct timespec until;
      clock_gettime(CLOCK_REALTIME, &until);
      until.tv_sec += POOL_IDLE_SECONDS;
      int rc = pthread_cond_timedwait(&pool_wake, &pool_lock, &until);
      pool_idle--;
      if (rc == ETIMEDOUT && queue_head == NULL) goto quit;
    }
    relay_t *r = queue_head;
    queue_head = r->qnext;
    if (queue_head == NULL) queue_tail = NULL;
    pool_queued--;
    pthread_mutex_unlock(&pool_lock);
    relay_main(r);
    pthread_mutex_lock(&pool_lock);
  }
quit:
  pool_threads--;
  pthread_cond_broadcast(&pool_drained);
  pthread_mutex_unlock(&pool_lock);
  return NULL;
}

/** Hand the relay to a worker (any thread may call this). 0 or an errno; on failure the relay
 *  is finished: its sockets closed and a failed done event queued. */
static int run(relay_t *r) {
  int rc = 0;
  pthread_mutex_lock(&pool_lock);
  r->qnext = NULL;
  if (queue_tail) queue_tail->qnext = r;
  else queue_head = r;
  queue_tail = r;
  pool_queued++;
  if (pool_idle >= pool_queued) {
    pthread_cond_signal(&pool_wake);
  } else {
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, THREAD_STACK);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    rc = pthread_create(&t, &attr, worker_main, NULL);
    pthread_attr_destroy(&attr);
    if (rc == 0) {
      pool_threads++;
    } else {
      // Take r back out of the queue (nobody could have taken it: we hold the lock).
      relay_t **p = &queue_head;
      queue_tail = NULL;
      while (*p) {
        if (*p == r) *p = r->qnext;
        else {
          queue_tail = *p;
          p = &(*p)->qnext;
        }
      }
      pool_queued--;
    }
  }
  pthread_mutex_unlock(&pool_lock);
  if (rc != 0) {
    r->error = rc;
    if (r->own_client && r->fd[0] >= 0) {
      reset_close(r->fd[0]);
      r->fd[0] = -1;
    }
    if (r->own_upstream && r->fd[1] >= 0) {
      close(r->fd[1]);
      r->fd[1] = -1;
    }
    if (r->pending_fd >= 0) {
      close(r->pending_fd);
      r->pending_fd = -1;
    }
    napi_threadsafe_function tsfn = r->tsfn;
    emit(r, EVENT_DONE);
    napi_release_threadsafe_function(tsfn, napi_tsfn_release);
  }
  return rc;
}

static napi_value launch(napi_env env, relay_t *r, napi_value callback) {
  napi_value handle = prepare(env, r, callback);
  if (handle != NULL) (void)run(r);
  return handle;
}

static relay_t *new_relay(napi_env env) {
  relay_t *r = (relay_t *)calloc(1, sizeof *r);
  if (!r) {
    throw_errno(env, "calloc", ENOMEM);
    return NULL;
  }
  r->fd[0] = r->fd[1] = -1;
  r->pending_fd = -1;
  pthread_mutex_init(&r->lock, NULL);
  r->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (r->wake < 0) {
    int e = errno;
    pthread_mutex_destroy(&r->lock);
    free(r);
    throw_errno(env, "eventfd", e);
    return NULL;
  }
  return r;
}

static int is_function(napi_env env, napi_value v) {
  napi_valuetype t = napi_undefined;
  return napi_typeof(env, v, &t) == napi_ok && t == napi_function;
}

static napi_value js_start(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fa = -1, fb = -1;
  if (argc < 3 || napi_get_value_int32(env, argv[0], &fa) != napi_ok || napi_get_value_int32(env, argv[1], &fb) != napi_ok ||
      !is_function(env, argv[2]) || fa < 0 || fb < 0 || fa == fb) {
    napi_throw_type_error(env, NULL, "cordon_splice.start(fdA, fdB, onEvent): two distinct fds and a function");
    return NULL;
  }
  int e = set_nonblocking(fa);
  if (e == 0) e = set_nonblocking(fb);
  if (e != 0) return throw_errno(env, "fcntl", e);
  relay_t *r = new_relay(env);
  if (!r) return NULL;
  r->fd[0] = fa;
  r->fd[1] = fb;
  return launch(env, r, argv[2]);
}

static int copy_buffer(napi_env env, napi_value v, char **out, size_t *len) {
  void *data = NULL;
  size_t n = 0;
  bool is_buffer = false;
  if (napi_is_buffer(env, v, &is_buffer) != napi_ok || !is_buffer) return 0;
  if (napi_get_buffer_info(env, v, &data, &n) != napi_ok) return 0;
  *out = NULL;
  *len = n;
  if (n > 0) {
    *out = (char *)malloc(n);
    if (!*out) return 0;
    memcpy(*out, data, n);
  }
  return 1;
}

static int parse_dial(napi_env env, napi_value *argv, relay_t *r);

static napi_value js_dial(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  const char *usage = "cordon_splice.dial(clientFd, addresses, port, timeoutMs, toClient, toUpstream, onRelay)";
  int32_t fd = -1;
  if (argc < 7 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0 || !is_function(env, argv[6])) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  int e = set_nonblocking(fd);
  if (e != 0) return throw_errno(env, "fcntl", e);
  relay_t *r = new_relay(env);
  if (!r) return NULL;
  r->fd[0] = fd;
  if (!parse_dial(env, argv + 1, r)) {
    free_relay(r);
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  return launch(env, r, argv[6]);
}

// ---------------------------------------------------------------------------------------- fronts

#define FRONT_DATA 1
#define FRONT_EOF 2
#define FRONT_CLOSED 3

// The head of an HTTP request may be up to 16 KiB; one read hands TypeScript that much and a bit.
#define FRONT_READ (16 * 1024 + 512)
#define FRONT_BUCKETS 1024

enum { CONN_READING, CONN_PAUSED, CONN_ANSWERING, CONN_LINGER, CONN_GONE };
enum { KEEP_FD, CLOSE_FD, RESET_FD };

typedef struct front front_t;

typedef struct fconn {
  uv_poll_t poll; // data -> this
  front_t *front;
  uint32_t id;
  int fd;
  int state;
  int watching; // events the poll handle waits for
  int at_close; // what happens to fd when the poll handle has closed
  int reported; // its local address went out with the first event
  char local[INET6_ADDRSTRLEN];
  int local_port;
  char *out;
  size_t out_len, out_off;
  int64_t deadline; // while lingering
  struct fconn *next;
} fconn_t;

struct front {
  uv_poll_t poll; // the listener; data -> this
  uv_timer_t timer; // lingering deadlines, accept back-off
  uv_loop_t *loop;
  napi_env env;
  napi_ref callback;
  napi_async_context async;
  int listen_fd;
  int transparent;
  int stopped;
  int finalized;
  int open_handles; // uv handles not closed yet: the front is freed after the last
  uint32_t next_id;
  fconn_t *table[FRONT_BUCKETS];
  int nconns;
  int lingering;
  int64_t accept_paused_until;
  struct front *prev, *next;
};

static front_t *fronts_head = NULL;
static int fronts_count = 0;

static void front_maybe_free(front_t *f) {
  if (f->stopped && f->finalized && f->open_handles == 0) free(f);
}

static void on_handle_closed(uv_handle_t *h) {
  front_t *f = (front_t *)h->data;
  f->open_handles--;
  front_maybe_free(f);
}

/** Call the front's JS callback from the event loop (microtasks run when it returns). */
static void front_call(front_t *f, int kind, fconn_t *c, uint32_t id, const char *data, size_t len, int err) {
  if (f->stopped) return;
  napi_env env = f->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value fn, recv, argv[6], result;
  napi_get_reference_value(env, f->callback, &fn);
  napi_get_global(env, &recv); // napi_make_callback needs an object as `this`
  napi_create_int32(env, kind, &argv[0]);
  napi_create_uint32(env, c ? c->id : id, &argv[1]);
  if (data) napi_create_buffer_copy(env, len, data, NULL, &argv[2]);
  else napi_get_null(env, &argv[2]);
  if (c && !c->reported) {
    napi_create_string_utf8(env, c->local, NAPI_AUTO_LENGTH, &argv[3]);
    napi_create_int32(env, c->local_port, &argv[4]);
    c->reported = 1;
  } else {
    napi_create_string_utf8(env, "", 0, &argv[3]);
    napi_create_int32(env, 0, &argv[4]);
  }
  napi_create_int32(env, err, &argv[5]);
  if (napi_make_callback(env, f->async, recv, fn, 6, argv, &result) == napi_pending_exception) {
    napi_value e;
    if (napi_get_and_clear_last_exception(env, &e) == napi_ok) napi_fatal_exception(env, e);
  }
  napi_close_handle_scope(env, scope);
}

static fconn_t *conn_find(front_t *f, uint32_t id) {
  for (fconn_t *c = f->table[id % FRONT_BUCKETS]; c; c = c->next)
    if (c->id == id) return c;
  return NULL;
}

static void on_conn_closed(uv_handle_t *h) {
  fconn_t *c = (fconn_t *)h->data;
  front_t *f = c->front;
  if (c->at_close == CLOSE_FD) close(c->fd);
  else if (c->at_close == RESET_FD) reset_close(c->fd);
  free(c->out);
  free(c);
  f->open_handles--;
  front_maybe_free(f);
}

/** Forget a connection; its descriptor is closed, reset, or kept (taken by a relay). */
static void conn_release(fconn_t *c, int at_close) {
  if (c->state == CONN_GONE) return;
  front_t *f = c->front;
  fconn_t **p = &f->table[c->id % FRONT_BUCKETS];
  while (*p && *p != c) p = &(*p)->next;
  if (*p) *p = c->next;
  f->nconns--;
  if (c->state == CONN_LINGER) f->lingering--;
  c->state = CONN_GONE;
  c->at_close = at_close;
  uv_poll_stop(&c->poll);
  uv_close((uv_handle_t *)&c->poll, on_conn_closed);
}

static void on_conn(uv_poll_t *h, int status, int events);

static void conn_watch(fconn_t *c) {
  int want = 0;
  if (c->state == CONN_READING || c->state == CONN_LINGER) want |= UV_READABLE;
  if (c->out_off < c->out_len) want |= UV_WRITABLE;
  if (want == c->watching) return;
  c->watching = want;
  if (want) uv_poll_start(&c->poll, want, on_conn);
  else uv_poll_stop(&c->poll);
}

/** Write what is queued; 0 when all of it is out, 1 when the socket is full, -1 on error. */
static int conn_flush(fconn_t *c) {
  while (c->out_off < c->out_len) {
    ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
    if (n > 0) c->out_off += (size_t)n;
    else if (n < 0 && errno == EINTR) continue;
    else if (n < 0 && errno == EAGAIN) return 1;
    else return -1;
  }
  free(c->out);
  c->out = NULL;
  c->out_len = c->out_off = 0;
  return 0;
}

static void conn_queue(fconn_t *c, char *data, size_t len) {
  if (len == 0) {
    free(data);
    return;
  }
  if (c->out == NULL) {
    c->out = data;
    c->out_len = len;
    c->out_off = 0;
    return;
  }
  char *joined = (char *)realloc(c->out, c->out_len + len);
  if (joined) {
    memcpy(joined + c->out_len, data, len);
    c->out = joined;
    c->out_len += len;
  }
  free(data);
}

static void front_arm_timer(front_t *f);

/** After output progress: an answered connection lingers once everything is written. */
static void conn_after_write(fconn_t *c) {
  int w = conn_flush(c);
  if (w < 0) {
    conn_release(c, RESET_FD);
    return;
  }
  if (w == 0 && c->state == CONN_ANSWERING) {
    // Stop sending, then read and discard until the client closes (or a deadline): closing with
    // unread bytes would send a reset that can destroy the answer in flight.
    (void)shutdown(c->fd, SHUT_WR);
    c->state = CONN_LINGER;
    c->deadline = now_ms() + LINGER_MS;
    c->front->lingering++;
    front_arm_timer(c->front);
  }
  conn_watch(c);
}

static void on_conn(uv_poll_t *h, int status, int events) {
  fconn_t *c = (fconn_t *)h->data;
  front_t *f = c->front;
  if (c->state == CONN_GONE) return;
  if (status < 0) {
    uint32_t id = c->id;
    int was_handshake = c->state == CONN_READING || c->state == CONN_PAUSED;
    conn_release(c, RESET_FD);
    if (was_handshake) front_call(f, FRONT_CLOSED, NULL, id, NULL, 0, -status);
    return;
  }
  if (c->state == CONN_LINGER) {
    char sink[4096];
    for (;;) {
      ssize_t n = recv(c->fd, sink, sizeof sink, 0);
      if (n > 0) continue;
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return;
      conn_release(c, CLOSE_FD);
      return;
    }
  }
  if ((events & UV_WRITABLE) && c->out_len > 0) {
    conn_after_write(c);
    if (c->state == CONN_GONE) return;
  }
  if (c->state == CONN_READING && (events & UV_READABLE)) {
    static char buf[FRONT_READ]; // the event loop is single-threaded
    ssize_t n;
    do n = recv(c->fd, buf, sizeof buf, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0 && errno == EAGAIN) return;
    if (n < 0) {
      int e = errno;
      uint32_t id = c->id;
      conn_release(c, CLOSE_FD);
      front_call(f, FRONT_CLOSED, NULL, id, NULL, 0, e);
      return;
    }
    // Pause until TypeScript asks for more (it may answer or forward instead).
    c->state = CONN_PAUSED;
    conn_watch(c);
    if (n > 0) front_call(f, FRONT_DATA, c, 0, buf, (size_t)n, 0);
    else front_call(f, FRONT_EOF, c, 0, NULL, 0, 0); // finished sending; may still read an answer
  }
}

static void on_listen(uv_poll_t *h, int status, int events);

static void on_timer(uv_timer_t *t) {
  front_t *f = (front_t *)t->data;
  if (f->stopped) return;
  int64_t now = now_ms();
  if (f->accept_paused_until && now >= f->accept_paused_until) {
    f->accept_paused_until = 0;
    uv_poll_start(&f->poll, UV_READABLE, on_listen);
  }
  if (f->lingering > 0) {
    for (int b = 0; b < FRONT_BUCKETS; b++) {
      for (fconn_t *c = f->table[b]; c;) {
        fconn_t *next = c->next;
        if (c->state == CONN_LINGER && now >= c->deadline) conn_release(c, CLOSE_FD);
        c = next;
      }
    }
  }
  front_arm_timer(f);
}

static void front_arm_timer(front_t *f) {
  if (f->stopped) return;
  if (f->lingering > 0 || f->accept_paused_until) {
    if (!uv_is_active((uv_handle_t *)&f->timer)) uv_timer_start(&f->timer, on_timer, 100, 100);
  } else if (uv_is_active((uv_handle_t *)&f->timer)) {
    uv_timer_stop(&f->timer);
  }
}

static void on_listen(uv_poll_t *h, int status, int events) {
  (void)events;
  front_t *f = (front_t *)h->data;
  if (f->stopped || status < 0) return;
  for (int i = 0; i < 64 && !f->stopped; i++) {
    int fd = accept4(f->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Out of descriptors: stop accepting for a moment rather than spin on a ready listener.
        uv_poll_stop(&f->poll);
        f->accept_paused_until = now_ms() + 100;
        front_arm_timer(f);
      }
      return;
    }
    fconn_t *c = (fconn_t *)calloc(1, sizeof *c);
    if (!c || uv_poll_init(f->loop, &c->poll, fd) != 0) {
      free(c);
      reset_close(fd);
      continue;
    }
    f->open_handles++;
    c->poll.data = c;
    c->front = f;
    c->fd = fd;
    if (++f->next_id == 0) f->next_id = 1;
    c->id = f->next_id;
    struct sockaddr_storage local;
    socklen_t llen = sizeof local;
    if (getsockname(fd, (struct sockaddr *)&local, &llen) == 0) {
      if (local.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&local;
        inet_ntop(AF_INET, &a->sin_addr, c->local, sizeof c->local);
        c->local_port = ntohs(a->sin_port);
      } else if (local.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&local;
        inet_ntop(AF_INET6, &a->sin6_addr, c->local, sizeof c->local);
        c->local_port = ntohs(a->sin6_port);
      }
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->next = f->table[c->id % FRONT_BUCKETS];
    f->table[c->id % FRONT_BUCKETS] = c;
    f->nconns++;
    if (f->transparent) {
      // No handshake: TypeScript decides from the local address alone.
      c->state = CONN_PAUSED;
      front_call(f, FRONT_DATA, c, 0, NULL, 0, 0);
    } else {
      c->state = CONN_READING;
      conn_watch(c);
    }
  }
}

static void front_stop(front_t *f) {
  if (f->stopped) return;
  // Connections still in their handshake are reset; relays already running are not affected.
  for (int b = 0; b < FRONT_BUCKETS; b++) {
    while (f->table[b]) conn_release(f->table[b], RESET_FD);
  }
  f->stopped = 1;
  uv_poll_stop(&f->poll);
  uv_close((uv_handle_t *)&f->poll, on_handle_closed);
  uv_close((uv_handle_t *)&f->timer, on_handle_closed);
  close(f->listen_fd);
  f->listen_fd = -1;
  napi_delete_reference(f->env, f->callback);
  napi_async_destroy(f->env, f->async);
  if (f->prev) f->prev->next = f->next;
  else if (fronts_head == f) fronts_head = f->next;
  if (f->next) f->next->prev = f->prev;
  fronts_count--;
}

static void finalize_front(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  front_t *f = (front_t *)data;
  front_stop(f);
  f->finalized = 1;
  front_maybe_free(f);
}

static front_t *front_of(napi_env env, napi_value v) {
  void *data = NULL;
  if (napi_get_value_external(env, v, &data) != napi_ok || data == NULL) return NULL;
  return (front_t *)data;
}

static napi_value js_listen(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd = -1;
  bool transparent = false;
  if (argc < 3 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0 || napi_get_value_bool(env, argv[1], &transparent) != napi_ok ||
      !is_function(env, argv[2])) {
    napi_throw_type_error(env, NULL, "cordon_splice.listen(fd, transparent, onFront)");
    return NULL;
  }
  uv_loop_t *loop = NULL;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == NULL) {
    napi_throw_error(env, NULL, "cordon_splice: no event loop");
    return NULL;
  }
  front_t *f = (front_t *)calloc(1, sizeof *f);
  if (!f) return throw_errno(env, "calloc", ENOMEM);
  f->loop = loop;
  f->env = env;
  f->transparent = transparent;
  // Our own descriptor for the listening socket: Node closes its one right after.
  f->listen_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  int e = f->listen_fd < 0 ? errno : set_nonblocking(f->listen_fd);
  if (e == 0 && uv_poll_init(loop, &f->poll, f->listen_fd) != 0) e = EINVAL;
  if (e != 0) {
    if (f->listen_fd >= 0) close(f->listen_fd);
    free(f);
    return throw_errno(env, "listen", e);
  }
  uv_timer_init(loop, &f->timer);
  f->poll.data = f;
  f->timer.data = f;
  f->open_handles = 2;
  // Like a listening net.Server, the front keeps the process alive; its timer does not.
  uv_unref((uv_handle_t *)&f->timer);
  napi_value resource, name, handle;
  napi_create_object(env, &resource);
  napi_create_string_utf8(env, "cordon_front", NAPI_AUTO_LENGTH, &name);
  napi_create_reference(env, argv[2], 1, &f->callback);
  napi_async_init(env, resource, name, &f->async);
  if (napi_create_external(env, f, finalize_front, NULL, &handle) != napi_ok) {
    f->finalized = 1;
    front_stop(f);
    napi_throw_error(env, NULL, "cordon_splice: cannot create a handle");
    return NULL;
  }
  f->prev = NULL;
  f->next = fronts_head;
  if (fronts_head) fronts_head->prev = f;
  fronts_head = f;
  fronts_count++;
  uv_poll_start(&f->poll, UV_READABLE, on_listen);
  return handle;
}

/** The front and connection named by (front, id) arguments, or NULL after throwing. */
static fconn_t *conn_arg(napi_env env, napi_value *argv, size_t argc, size_t need, const char *usage, front_t **front) {
  front_t *f = argc >= need ? front_of(env, argv[0]) : NULL;
  uint32_t id = 0;
  if (!f || napi_get_value_uint32(env, argv[1], &id) != napi_ok) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  if (front) *front = f;
  return conn_find(f, id); // NULL also when the connection is gone: a no-op then
}

static napi_value js_more(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  fconn_t *c = conn_arg(env, argv, argc, 2, "cordon_splice.more(front, id)", NULL);
  if (c && c->state == CONN_PAUSED) {
    c->state = CONN_READING;
    conn_watch(c);
  }
  return NULL;
}

static napi_value queue_bytes(napi_env env, napi_callback_info info, int answering, const char *usage) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  fconn_t *c = conn_arg(env, argv, argc, 3, usage, NULL);
  char *data = NULL;
  size_t len = 0;
  if (!copy_buffer(env, argv[2], &data, &len)) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  if (!c || c->state == CONN_LINGER || c->state == CONN_ANSWERING) {
    free(data);
    return NULL;
  }
  conn_queue(c, data, len);
  if (answering) c->state = CONN_ANSWERING;
  conn_after_write(c);
  return NULL;
}

static napi_value js_send(napi_env env, napi_callback_info info) { return queue_bytes(env, info, 0, "cordon_splice.send(front, id, bytes)"); }
static napi_value js_reply(napi_env env, napi_callback_info info) { return queue_bytes(env, info, 1, "cordon_splice.reply(front, id, bytes)"); }

static napi_value js_reset(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  fconn_t *c = conn_arg(env, argv, argc, 2, "cordon_splice.reset(front, id)", NULL);
  if (c) conn_release(c, RESET_FD);
  return NULL;
}

static napi_value js_stop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  front_t *f = argc >= 1 ? front_of(env, argv[0]) : NULL;
  if (!f) {
    napi_throw_type_error(env, NULL, "cordon_splice.stop(front)");
    return NULL;
  }
  front_stop(f);
  return NULL;
}

/** Parse dial arguments (addresses, port, timeout, prefaces) starting at argv[0] into r. */
static int parse_dial(napi_env env, napi_value *argv, relay_t *r) {
  bool is_array = false;
  uint32_t count = 0;
  int32_t port = 0, timeout_ms = 0;
  if (napi_is_array(env, argv[0], &is_array) != napi_ok || !is_array || napi_get_array_length(env, argv[0], &count) != napi_ok || count == 0 ||
      count > MAX_ADDRESSES || napi_get_value_int32(env, argv[1], &port) != napi_ok || port < 1 || port > 65535 ||
      napi_get_value_int32(env, argv[2], &timeout_ms) != napi_ok || timeout_ms < 1)
    return 0;
  for (uint32_t i = 0; i < count; i++) {
    napi_value item;
    char text[64];
    size_t n = 0;
    if (napi_get_element(env, argv[0], i, &item) != napi_ok || napi_get_value_string_utf8(env, item, text, sizeof text, &n) != napi_ok) return 0;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&r->addrs[i];
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&r->addrs[i];
    if (inet_pton(AF_INET, text, &v4->sin_addr) == 1) {
      v4->sin_family = AF_INET;
      v4->sin_port = htons((uint16_t)port);
      r->addrlens[i] = sizeof *v4;
    } else if (inet_pton(AF_INET6, text, &v6->sin6_addr) == 1) {
      v6->sin6_family = AF_INET6;
      v6->sin6_port = htons((uint16_t)port);
      r->addrlens[i] = sizeof *v6;
    } else {
      return 0;
    }
  }
  r->naddr = (int)count;
  r->timeout_ms = timeout_ms;
  r->own_upstream = 1;
  return copy_buffer(env, argv[3], &r->to_client, &r->to_client_len) && copy_buffer(env, argv[4], &r->to_upstream, &r->to_upstream_len);
}

static napi_value js_forward(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  const char *usage = "cordon_splice.forward(front, id, addresses, port, timeoutMs, toClient, toUpstream, onRelay)";
  front_t *f = NULL;
  fconn_t *c = conn_arg(env, argv, argc, 8, usage, &f);
  if (!f) return NULL;
  if (!is_function(env, argv[7])) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  relay_t *r = new_relay(env);
  if (!r) return NULL;
  r->own_client = 1;
  if (!parse_dial(env, argv + 2, r)) {
    free_relay(r);
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  napi_value handle = prepare(env, r, argv[7]);
  if (handle == NULL) return NULL;
  if (c && (c->state == CONN_READING || c->state == CONN_PAUSED)) {
    size_t pending = c->out_len - c->out_off;
    if (pending > 0) {
      // Bytes still queued for the client (a SOCKS method reply) go out before the relay's.
      char *joined = (char *)malloc(pending + r->to_client_len);
      if (joined) {
        memcpy(joined, c->out + c->out_off, pending);
        if (r->to_client_len) memcpy(joined + pending, r->to_client, r->to_client_len);
        free(r->to_client);
        r->to_client = joined;
        r->to_client_len += pending;
      }
    }
    r->fd[0] = c->fd;
    conn_release(c, KEEP_FD);
    try_connect_now(r);
  }
  (void)run(r); // with fd[0] = -1 when the client is gone: it reports that and ends
  return handle;
}

static napi_value js_answer(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *data = NULL;
  bool reset = false;
  char *bytes = NULL;
  size_t len = 0;
  if (argc < 3 || napi_get_value_external(env, argv[0], &data) != napi_ok || data == NULL || !copy_buffer(env, argv[1], &bytes, &len) ||
      napi_get_value_bool(env, argv[2], &reset) != napi_ok) {
    free(bytes);
    napi_throw_type_error(env, NULL, "cordon_splice.answer(relay, bytes, reset)");
    return NULL;
  }
  relay_t *r = (relay_t *)data;
  if (r->finished || !r->own_client) {
    free(bytes);
    return NULL;
  }
  pthread_mutex_lock(&r->lock);
  if (!r->answer_set) {
    r->answer = bytes;
    r->answer_len = len;
    r->answer_reset = reset;
    r->answer_set = 1;
    bytes = NULL;
  }
  pthread_mutex_unlock(&r->lock);
  free(bytes);
  wake_relay(r);
  return NULL;
}

static napi_value js_cancel(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *data = NULL;
  if (argc < 1 || napi_get_value_external(env, argv[0], &data) != napi_ok || data == NULL) {
    napi_throw_type_error(env, NULL, "cordon_splice.cancel(handle): handle from start() or dial()");
    return NULL;
  }
  relay_t *r = (relay_t *)data;
  if (!r->finished) wake_relay(r);
  return NULL;
}

static napi_value js_active(napi_env env, napi_callback_info info) {
  (void)info;
  int conns = 0;
  for (front_t *f = fronts_head; f; f = f->next) conns += f->nconns;
  napi_value out, v;
  napi_create_array_with_length(env, 3, &out);
  napi_create_int32(env, active_count, &v);
  napi_set_element(env, out, 0, v);
  napi_create_int32(env, fronts_count, &v);
  napi_set_element(env, out, 1, v);
  napi_create_int32(env, conns, &v);
  napi_set_element(env, out, 2, v);
  return out;
}

// At environment teardown (process exit, worker end), cancel every relay and let the workers
// finish, so no thread outlives the memory it uses (bounded: a stuck worker does not hang exit).
// Fronts live on the event loop, which is gone by then.
static void cleanup(void *arg) {
  (void)arg;
  for (relay_t *r = active_head; r; r = r->next) wake_relay(r);
  pthread_mutex_lock(&pool_lock);
  pool_stopping = 1;
  pthread_cond_broadcast(&pool_wake);
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 5;
  while (pool_threads > 0) {
    if (pthread_cond_timedwait(&pool_drained, &pool_lock, &until) == ETIMEDOUT) break;
  }
  pthread_mutex_unlock(&pool_lock);
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"start", NULL, js_start, NULL, NULL, NULL, napi_default, NULL},
      {"dial", NULL, js_dial, NULL, NULL, NULL, napi_default, NULL},
      {"answer", NULL, js_answer, NULL, NULL, NULL, napi_default, NULL},
      {"cancel", NULL, js_cancel, NULL, NULL, NULL, napi_default, NULL},
      {"listen", NULL, js_listen, NULL, NULL, NULL, napi_default, NULL},
      {"more", NULL, js_more, NULL, NULL, NULL, napi_default, NULL},
      {"send", NULL, js_send, NULL, NULL, NULL, napi_default, NULL},
      {"reply", NULL, js_reply, NULL, NULL, NULL, napi_default, NULL},
      {"reset", NULL, js_reset, NULL, NULL, NULL, napi_default, NULL},
      {"forward", NULL, js_forward, NULL, NULL, NULL, napi_default, NULL},
      {"stop", NULL, js_stop, NULL, NULL, NULL, napi_default, NULL},
      {"active", NULL, js_active, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  napi_add_env_cleanup_hook(env, cleanup, NULL);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
