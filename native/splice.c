// cordon_splice.node: move bytes between two connected sockets in the kernel.
//
// Once the proxy has allowed a connection, nothing in the byte stream needs JavaScript. This
// addon takes the two socket fds and, on its own thread, splices socket -> pipe -> socket in both
// directions until both sides have finished, then reports byte counts to a JS callback. The fds
// stay owned by Node: the caller stops Node's reading before the hand-over and closes the sockets
// after the callback. Half-close is forwarded with shutdown(SHUT_WR).
//
// JS API:
//   start(fdA, fdB, done) -> handle
//       done(errno, bytesAtoB, bytesBtoA, cancelled) runs on the JS thread when the relay ends.
//   cancel(handle)   ask the relay to stop (done still runs, with cancelled = true)
//   active()         relays whose done callback has not run yet

#define NAPI_VERSION 8
#include <node_api.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

// Big enough that one splice call moves a useful amount; small enough that 200 idle
// connections do not pin much memory (pipe pages are only used while data is queued).
#ifndef PIPE_BYTES
#define PIPE_BYTES (256 * 1024)
#endif
#define THREAD_STACK (128 * 1024)

typedef struct relay {
  int fd[2];
  int wake; // eventfd: cancel() writes it, the relay thread polls it
  pthread_t thread;
  int joined;
  napi_threadsafe_function tsfn;
  // Written by the relay thread before it queues the callback; read on the JS thread after.
  uint64_t bytes[2];
  int error;
  int cancelled;
  // JS thread only.
  int finished;
  int orphaned; // the JS handle was collected before the relay ended
  struct relay *prev, *next;
} relay_t;

// Relays whose callback has not run. Touched on the JS thread only.
static relay_t *active_head = NULL;
static int active_count = 0;

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

static int pump(relay_t *r) {
  int pipes[2][2] = {{-1, -1}, {-1, -1}};
  size_t cap[2] = {0, 0};
  size_t queued[2] = {0, 0};
  int eof[2] = {0, 0};
  int shut[2] = {0, 0};
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
    for (int d = 0; d < 2; d++) {
      int src = r->fd[d], dst = r->fd[1 - d];
      if (!eof[d] && queued[d] < cap[d]) {
        ssize_t n = splice(src, NULL, pipes[d][1], NULL, cap[d] - queued[d], SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
          queued[d] += (size_t)n;
          progress = 1;
        } else if (n == 0) {
          eof[d] = 1;
          progress = 1;
        } else if (errno != EAGAIN && errno != EINTR) {
          err = errno;
          goto out;
        }
      }
      if (queued[d] > 0) {
        ssize_t n = splice(pipes[d][0], NULL, dst, NULL, queued[d], SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
          queued[d] -= (size_t)n;
          r->bytes[d] += (uint64_t)n;
          progress = 1;
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
          err = errno;
          goto out;
        }
      }
      if (eof[d] && queued[d] == 0 && !shut[d]) {
        // ENOTCONN: the peer is already gone; the other direction will notice.
        (void)shutdown(dst, SHUT_WR);
        shut[d] = 1;
      }
    }
    if (shut[0] && shut[1]) break;
    if (progress) continue;

    short events[2] = {0, 0};
    for (int d = 0; d < 2; d++) {
      if (!eof[d] && queued[d] < cap[d]) events[d] |= POLLIN;
      if (queued[d] > 0) events[1 - d] |= POLLOUT;
    }
    // An fd with nothing to wait for is left out, so a hang-up on it cannot spin the loop.
    struct pollfd fds[3] = {
        {events[0] ? r->fd[0] : -1, events[0], 0},
        {events[1] ? r->fd[1] : -1, events[1], 0},
        {r->wake, POLLIN, 0},
    };
    if (poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      err = errno;
      goto out;
    }
    if (fds[2].revents) {
      r->cancelled = 1;
      goto out;
    }
    for (int i = 0; i < 2; i++) {
      if (fds[i].revents & (POLLERR | POLLNVAL)) {
        int e = 0;
        socklen_t len = sizeof e;
        if (getsockopt(r->fd[i], SOL_SOCKET, SO_ERROR, &e, &len) < 0 || e == 0) e = (fds[i].revents & POLLNVAL) ? EBADF : EIO;
        err = e;
        goto out;
      }
    }
  }

out:
  for (int d = 0; d < 2; d++) {
    if (pipes[d][0] >= 0) close(pipes[d][0]);
    if (pipes[d][1] >= 0) close(pipes[d][1]);
  }
  return err;
}

static void *relay_main(void *arg) {
  relay_t *r = (relay_t *)arg;
  r->error = pump(r);
  napi_call_threadsafe_function(r->tsfn, NULL, napi_tsfn_blocking);
  napi_release_threadsafe_function(r->tsfn, napi_tsfn_release);
  return NULL;
}

static void free_relay(relay_t *r) {
  if (r->wake >= 0) close(r->wake);
  free(r);
}

// Runs on the JS thread once the relay thread has finished.
static void call_done(napi_env env, napi_value js_cb, void *context, void *data) {
  (void)data;
  relay_t *r = (relay_t *)context;
  if (!r->joined) {
    pthread_join(r->thread, NULL);
    r->joined = 1;
  }
  list_remove(r);
  r->finished = 1;
  // Nothing wakes a finished relay: release its eventfd now rather than at garbage collection.
  close(r->wake);
  r->wake = -1;
  if (env != NULL && js_cb != NULL) {
    napi_value argv[4], undefined;
    napi_create_int32(env, r->error, &argv[0]);
    napi_create_double(env, (double)r->bytes[0], &argv[1]);
    napi_create_double(env, (double)r->bytes[1], &argv[2]);
    napi_get_boolean(env, r->cancelled, &argv[3]);
    napi_get_undefined(env, &undefined);
    napi_call_function(env, undefined, js_cb, 4, argv, NULL);
  }
  if (r->orphaned) free_relay(r);
}

static void finalize_handle(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  relay_t *r = (relay_t *)data;
  if (r->finished) free_relay(r);
  else r->orphaned = 1; // call_done frees it
}

static napi_value throw_errno(napi_env env, const char *what, int e) {
  char msg[160];
  snprintf(msg, sizeof msg, "cordon_splice: %s: %s", what, strerror(e));
  napi_throw_error(env, NULL, msg);
  return NULL;
}

static napi_value js_start(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fa = -1, fb = -1;
  napi_valuetype cb_type = napi_undefined;
  if (argc < 3 || napi_get_value_int32(env, argv[0], &fa) != napi_ok || napi_get_value_int32(env, argv[1], &fb) != napi_ok ||
      napi_typeof(env, argv[2], &cb_type) != napi_ok || cb_type != napi_function || fa < 0 || fb < 0 || fa == fb) {
    napi_throw_type_error(env, NULL, "cordon_splice.start(fdA, fdB, done): two distinct fds and a function");
    return NULL;
  }
  relay_t *r = (relay_t *)calloc(1, sizeof *r);
  if (!r) return throw_errno(env, "calloc", ENOMEM);
  r->fd[0] = fa;
  r->fd[1] = fb;
  r->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (r->wake < 0) {
    int e = errno;
    free(r);
    return throw_errno(env, "eventfd", e);
  }
  // Node keeps its sockets non-blocking already; make sure, since a blocking splice would hang.
  for (int i = 0; i < 2; i++) {
    int fl = fcntl(r->fd[i], F_GETFL);
    if (fl < 0) {
      int e = errno;
      free_relay(r);
      return throw_errno(env, "fcntl", e);
    }
    if (!(fl & O_NONBLOCK)) (void)fcntl(r->fd[i], F_SETFL, fl | O_NONBLOCK);
  }
  napi_value name;
  napi_create_string_utf8(env, "cordon_splice", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[2], NULL, name, 0, 1, NULL, NULL, r, call_done, &r->tsfn) != napi_ok) {
    free_relay(r);
    napi_throw_error(env, NULL, "cordon_splice: cannot create the completion callback");
    return NULL;
  }
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, THREAD_STACK);
  int rc = pthread_create(&r->thread, &attr, relay_main, r);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    napi_release_threadsafe_function(r->tsfn, napi_tsfn_abort);
    free_relay(r);
    return throw_errno(env, "pthread_create", rc);
  }
  list_add(r);
  napi_value handle;
  if (napi_create_external(env, r, finalize_handle, NULL, &handle) != napi_ok) {
    // The relay runs to completion anyway; without a handle it just cannot be cancelled.
    r->orphaned = 1;
    napi_throw_error(env, NULL, "cordon_splice: cannot create a handle");
    return NULL;
  }
  return handle;
}

static napi_value js_cancel(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *data = NULL;
  if (argc < 1 || napi_get_value_external(env, argv[0], &data) != napi_ok || data == NULL) {
    napi_throw_type_error(env, NULL, "cordon_splice.cancel(handle): handle from start()");
    return NULL;
  }
  relay_t *r = (relay_t *)data;
  if (!r->finished) wake_relay(r);
  return NULL;
}

static napi_value js_active(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value n;
  napi_create_int32(env, active_count, &n);
  return n;
}

// At environment teardown (process exit, worker end), stop every relay and wait for its thread,
// so no thread outlives the memory it uses.
static void cleanup(void *arg) {
  (void)arg;
  for (relay_t *r = active_head; r; r = r->next) wake_relay(r);
  for (relay_t *r = active_head; r; r = r->next) {
    if (!r->joined) {
      pthread_join(r->thread, NULL);
      r->joined = 1;
    }
  }
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"start", NULL, js_start, NULL, NULL, NULL, napi_default, NULL},
      {"cancel", NULL, js_cancel, NULL, NULL, NULL, napi_default, NULL},
      {"active", NULL, js_active, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  napi_add_env_cleanup_hook(env, cleanup, NULL);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
