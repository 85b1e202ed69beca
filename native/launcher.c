// cordon-launcher: runs as PID 1 inside the bubblewrap sandbox. It receives a compiled plan from
// cordon (TypeScript) over Node's IPC channel, applies what only the sandboxed process itself can
// apply (no_new_privs, Landlock, rlimits, the seccomp filter), starts the command(s), supervises
// them (signals, seccomp notifications, a pty relay) and reports back. Every policy decision is
// made in TypeScript; this file only carries out the plan. Protocol: src/linux/launcher-protocol.ts.
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>

#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (1UL << 0)
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

// Plan record types (keep in sync with src/linux/launcher-protocol.ts).
enum {
  R_MODE = 1, R_ARGV, R_ENV, R_CWD, R_PTY, R_RLIMIT, R_NO_PIDNS,
  R_LL_FS = 10, R_LL_NET, R_LL_SCOPED, R_LL_PATH, R_LL_PORT, R_LL_REQUIRED,
  R_SC_PROGRAM = 20, R_SC_DENY, R_SC_OBSERVE, R_SC_REQUIRED,
  R_OBS_OK = 30, R_OBS_BAD,
  R_LISTEN_TCP = 40, R_LISTEN_UDP,
  R_JOB = 50, R_STDIO,
};
// Frame kinds sent by cordon.
enum { F_PLAN = 'P', F_EXEC = 'E', F_SIGNAL = 'S', F_KILL_ALL = 'K', F_RESIZE = 'W', F_SHUTDOWN = 'X' };

#define MAX_JOBS 64
#define MAX_TABLE 512
#define MAX_PREFIX 256
#define MAX_REPORTS 256

struct job {
  int id, active;
  pid_t pid;
  int pty_master, exec_err_fd;
};
// A seccomp listener outlives the job that installed it: processes the job left running in the
// background (a dev server) still make observed calls, and a closed listener would fail them.
// It is closed when the kernel says the filter has no users left (POLLHUP).
struct listener { int fd, job_id, reports; };
#define MAX_LISTENERS 256
static struct listener listeners[MAX_LISTENERS];
struct observe { uint32_t nr; int8_t flags_arg; uint8_t npaths; int8_t dirfd_arg[2]; uint8_t path_arg[2]; };

static int ipc = -1;
static int handles_sent;
static int session_mode;
// Reduced tier: no PID namespace around us, so we cannot kill(-1) and must track our descendants.
static int no_pidns;
static struct job jobs[MAX_JOBS];
static struct { uint32_t nr; int32_t err; } deny_table[MAX_TABLE];
static int n_deny;
static struct observe observe_table[MAX_TABLE];
static int n_observe;
static char *ok_prefix[MAX_PREFIX], *bad_prefix[MAX_PREFIX];
static int n_ok, n_bad;
static struct sock_fprog seccomp_prog;
static int seccomp_required;

// ---------------------------------------------------------------- output to cordon (JSON lines)

static void write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) { if (errno == EINTR) continue; _exit(111); } // cordon is gone: nothing to report to
    p += w; n -= (size_t)w;
  }
}

static void emit(const char *fmt, ...) {
  char buf[8192];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if (n > (int)sizeof buf - 2) n = sizeof buf - 2;
  buf[n++] = '\n';
  write_all(ipc, buf, (size_t)n);
}

// Paths come from the sandboxed process: escape everything JSON cares about.
static void json_escape(const char *s, char *out, size_t cap) {
  size_t o = 0;
  for (; *s && o + 7 < cap; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') { out[o++] = '\\'; out[o++] = (char)c; }
    else if (c < 0x20 || c == 0x7f) o += (size_t)snprintf(out + o, cap - o, "\\u%04x", c);
    else out[o++] = (char)c;
  }
  out[o] = 0;
}

static void fatal(const char *what) {
  char esc[512];
  json_escape(what, esc, sizeof esc);
  emit("{\"e\":\"error\",\"msg\":\"%s\",\"errno\":%d}", esc, errno);
  _exit(70);
}

// Hands a descriptor to cordon through Node's IPC channel. `type` is Node's handle conversion:
// net.Server / dgram.Socket for listeners; net.Native for pipes, which cordon wraps itself (a
// net.Socket would start reading, and reading the write end of a pipe fails with EBADF).
static void send_handle(int fd, const char *type, const char *msg_json) {
  char text[512];
  // Node rebuilds a datagram socket from `dgramType`; stream handles ignore it.
  int n = snprintf(text, sizeof text, "{\"cmd\":\"NODE_HANDLE\",\"type\":\"%s\",\"msg\":%s%s}\n", type, msg_json,
                   strcmp(type, "dgram.Socket") ? "" : ",\"dgramType\":\"udp4\"");
  char cbuf[CMSG_SPACE(sizeof(int))];
  memset(cbuf, 0, sizeof cbuf);
  struct iovec io = { text, (size_t)n };
  struct msghdr m = { .msg_iov = &io, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf };
  struct cmsghdr *c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_SOCKET; c->cmsg_type = SCM_RIGHTS; c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof(int));
  while (sendmsg(ipc, &m, 0) < 0) if (errno != EINTR) _exit(111);
  handles_sent++;
}

// ---------------------------------------------------------------- input from cordon

static char *inbuf;
static size_t inlen, incap;
static int handle_acks; // NODE_HANDLE_ACK/NACK lines seen from cordon

static int b64val(int c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

static size_t b64decode(const char *s, size_t n, unsigned char *out) {
  size_t o = 0; uint32_t acc = 0; int bits = 0;
  for (size_t i = 0; i < n; i++) {
    int v = b64val((unsigned char)s[i]);
    if (v < 0) continue;
    acc = (acc << 6) | (uint32_t)v; bits += 6;
    if (bits >= 8) { bits -= 8; out[o++] = (unsigned char)(acc >> bits); }
  }
  return o;
}

// Decoded frames waiting to be handled, in arrival order.
struct queued { struct queued *next; size_t len; unsigned char data[]; };
static struct queued *queue_head, **queue_tail = &queue_head;
static int dispatching;

// Reads whatever is available: complete lines become queued frames (Node's own NODE_HANDLE_ACK
// lines only count acknowledgements). Then handles queued frames, unless a frame being handled
// called us (waiting for acknowledgements): handling is never re-entered. Returns 0 on EOF.
static int read_frames(void (*handle)(unsigned char *, size_t)) {
  if (incap - inlen < 65536) {
    incap = incap ? incap * 2 : 131072;
    inbuf = realloc(inbuf, incap);
    if (!inbuf) fatal("out of memory");
  }
  ssize_t r = read(ipc, inbuf + inlen, incap - inlen);
  if (r < 0) return errno == EINTR || errno == EAGAIN ? 1 : 0;
  if (r == 0) return 0;
  inlen += (size_t)r;
  char *line = inbuf, *nl;
  while ((nl = memchr(line, '\n', inlen - (size_t)(line - inbuf)))) {
    if (memmem(line, (size_t)(nl - line), "NODE_HANDLE_", 12)) handle_acks++;
    char *key = memmem(line, (size_t)(nl - line), "\"c\":\"", 5);
    char *start = key ? key + 5 : NULL, *end = start ? memchr(start, '"', (size_t)(nl - start)) : NULL;
    if (end) {
      struct queued *q = malloc(sizeof *q + (size_t)(end - start) / 4 * 3 + 4);
      if (!q) fatal("out of memory");
      q->next = NULL;
      q->len = b64decode(start, (size_t)(end - start), q->data);
      *queue_tail = q;
      queue_tail = &q->next;
    }
    line = nl + 1;
  }
  inlen -= (size_t)(line - inbuf);
  memmove(inbuf, line, inlen);
  if (dispatching) return 1;
  dispatching = 1;
  while (queue_head) {
    struct queued *q = queue_head;
    queue_head = q->next;
    if (!queue_head) queue_tail = &queue_head;
    handle(q->data, q->len);
    free(q);
  }
  dispatching = 0;
  return 1;
}

// A frame is a kind byte followed by records: u16 type, u32 length, data (host byte order).
struct rec { uint16_t type; uint32_t len; unsigned char *data; };
static int next_rec(unsigned char **p, unsigned char *end, struct rec *r) {
  if (end - *p < 6) return 0;
  memcpy(&r->type, *p, 2); memcpy(&r->len, *p + 2, 4);
  if ((size_t)(end - *p - 6) < r->len) return 0;
  r->data = *p + 6; *p += 6 + r->len;
  return 1;
}
static uint64_t u64_at(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static uint32_t u32_at(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }

// NUL-separated strings -> NULL-terminated vector (points into data; the frame must outlive it).
static char **split_nul(unsigned char *data, uint32_t len) {
  size_t n = 0;
  for (uint32_t i = 0; i < len; i++) if (!data[i]) n++;
  char **v = calloc(n + 1, sizeof *v);
  if (!v) fatal("out of memory");
  size_t k = 0; uint32_t start = 0;
  for (uint32_t i = 0; i < len; i++) if (!data[i]) { v[k++] = (char *)data + start; start = i + 1; }
  return v;
}

static char *dup_str(const unsigned char *d, uint32_t len) {
  char *s = malloc(len + 1);
  if (!s) fatal("out of memory");
  memcpy(s, d, len); s[len] = 0;
  return s;
}

static void handle_frame(unsigned char *f, size_t n);

// Node loses plain messages that arrive in the same read as a handle message (seen on Node 20:
// the messages after it vanish now and then), so after handing cordon descriptors we wait until
// it has acknowledged every one before saying anything else.
static void await_handle_acks(void) {
  while (handle_acks < handles_sent)
    if (!read_frames(handle_frame)) _exit(111);
}

// ---------------------------------------------------------------- Landlock

struct ll_ruleset_attr { uint64_t handled_fs, handled_net, scoped; };
struct ll_path_attr { uint64_t allowed; int32_t parent_fd; } __attribute__((packed));
struct ll_port_attr { uint64_t allowed, port; };

// Rights each ABI knows (the kernel rejects unknown bits, so the plan is masked down).
static uint64_t ll_fs_mask(int abi) {
  return abi >= 5 ? 0xffff : abi >= 3 ? 0x7fff : abi == 2 ? 0x3fff : abi == 1 ? 0x1fff : 0;
}

static int landlock_abi(void) {
  long v = syscall(SYS_landlock_create_ruleset, NULL, 0, 1UL /* VERSION */);
  return v < 0 ? 0 : (int)v;
}

// Applies the Landlock records of a plan to this process (inherited by every job). Returns the ABI used.
static int apply_landlock(unsigned char *p, unsigned char *end, int *required) {
  struct rec r;
  struct ll_ruleset_attr attr = {0};
  int have = 0, abi = landlock_abi();
  unsigned char *q = p;
  while (next_rec(&q, end, &r)) {
    if (r.type == R_LL_FS && r.len == 8) { attr.handled_fs = u64_at(r.data); have = 1; }
    else if (r.type == R_LL_NET && r.len == 8) attr.handled_net = u64_at(r.data);
    else if (r.type == R_LL_SCOPED && r.len == 8) attr.scoped = u64_at(r.data);
    else if (r.type == R_LL_REQUIRED && r.len == 4) *required = (int)u32_at(r.data);
  }
  if (!have || abi == 0) return 0;
  attr.handled_fs &= ll_fs_mask(abi);
  if (abi < 4) attr.handled_net = 0;
  if (abi < 6) attr.scoped = 0;
  int rs = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof attr, 0);
  if (rs < 0) fatal("landlock_create_ruleset");
  q = p;
  while (next_rec(&q, end, &r)) {
    if (r.type == R_LL_PATH && r.len > 8) {
      char *path = dup_str(r.data + 8, r.len - 8);
      struct ll_path_attr pa = { u64_at(r.data) & attr.handled_fs, open(path, O_PATH | O_CLOEXEC) };
      if (pa.parent_fd < 0) { free(path); continue; } // vanished since the plan was made: nothing to allow
      // Only directories can carry "beneath" rights; files keep the file-level ones.
      struct stat st;
      if (fstat(pa.parent_fd, &st) == 0 && !S_ISDIR(st.st_mode)) pa.allowed &= 0x8002 | 0x4000; // WRITE_FILE, TRUNCATE, IOCTL_DEV
      if (pa.allowed && syscall(SYS_landlock_add_rule, rs, 1 /* PATH_BENEATH */, &pa, 0) < 0) fatal(path);
      close(pa.parent_fd); free(path);
    } else if (r.type == R_LL_PORT && r.len == 16 && attr.handled_net) {
      struct ll_port_attr pa = { u64_at(r.data) & attr.handled_net, u64_at(r.data + 8) };
      if (syscall(SYS_landlock_add_rule, rs, 2 /* NET_PORT */, &pa, 0) < 0) fatal("landlock_add_rule(port)");
    }
  }
  if (syscall(SYS_landlock_restrict_self, rs, 0) < 0) fatal("landlock_restrict_self");
  close(rs);
  return abi;
}

// ---------------------------------------------------------------- listeners handed to cordon

static void open_listeners(unsigned char *p, unsigned char *end) {
  struct rec r;
  while (next_rec(&p, end, &r)) {
    if ((r.type != R_LISTEN_TCP && r.type != R_LISTEN_UDP) || r.len != 10) continue;
    uint32_t id = u32_at(r.data), addr; uint16_t port;
    memcpy(&addr, r.data + 4, 4); memcpy(&port, r.data + 8, 2);
    int udp = r.type == R_LISTEN_UDP;
    int s = socket(AF_INET, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0), one = 1;
    if (s < 0) fatal("socket");
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = addr };
    if (bind(s, (struct sockaddr *)&a, sizeof a) < 0) fatal("bind listener");
    if (!udp && listen(s, 1024) < 0) fatal("listen");
    char msg[96];
    snprintf(msg, sizeof msg, "{\"e\":\"listener\",\"id\":%u,\"proto\":\"%s\"}", id, udp ? "udp" : "tcp");
    send_handle(s, udp ? "dgram.Socket" : "net.Server", msg);
    close(s);
  }
}

// ---------------------------------------------------------------- seccomp tables and notifications

static void load_seccomp_tables(unsigned char *p, unsigned char *end) {
  struct rec r;
  while (next_rec(&p, end, &r)) {
    if (r.type == R_SC_PROGRAM && r.len % sizeof(struct sock_filter) == 0 && r.len) {
      seccomp_prog.len = (unsigned short)(r.len / sizeof(struct sock_filter));
      seccomp_prog.filter = malloc(r.len);
      if (!seccomp_prog.filter) fatal("out of memory");
      memcpy(seccomp_prog.filter, r.data, r.len);
    } else if (r.type == R_SC_DENY && r.len == 8 && n_deny < MAX_TABLE) {
      deny_table[n_deny].nr = u32_at(r.data); deny_table[n_deny++].err = (int32_t)u32_at(r.data + 4);
    } else if (r.type == R_SC_OBSERVE && r.len == 10 && n_observe < MAX_TABLE) {
      struct observe *o = &observe_table[n_observe++];
      o->nr = u32_at(r.data); o->flags_arg = (int8_t)r.data[4]; o->npaths = r.data[5] > 2 ? 2 : r.data[5];
      o->dirfd_arg[0] = (int8_t)r.data[6]; o->path_arg[0] = r.data[7];
      o->dirfd_arg[1] = (int8_t)r.data[8]; o->path_arg[1] = r.data[9];
    } else if (r.type == R_SC_REQUIRED && r.len == 1) seccomp_required = r.data[0];
    else if (r.type == R_OBS_OK && n_ok < MAX_PREFIX) ok_prefix[n_ok++] = dup_str(r.data, r.len);
    else if (r.type == R_OBS_BAD && n_bad < MAX_PREFIX) bad_prefix[n_bad++] = dup_str(r.data, r.len);
  }
}

static int under(const char *path, const char *prefix) {
  size_t n = strlen(prefix);
  if (n == 1 && prefix[0] == '/') return 1;
  return strncmp(path, prefix, n) == 0 && (path[n] == 0 || path[n] == '/');
}

// Reads a NUL-terminated string from the notifying process (it may change under us: the result
// is only a report, never a decision).
static int read_remote_str(pid_t pid, uint64_t addr, char *out, size_t cap) {
  struct iovec local = { out, cap - 1 }, remote = { (void *)(uintptr_t)addr, cap - 1 };
  ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
  if (n <= 0) {
    // The string may end near the end of a mapped page: retry a short read.
    remote.iov_len = local.iov_len = 256;
    n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
    if (n <= 0) return -1;
  }
  out[n] = 0;
  return 0;
}

// Absolute, lexically normalised path of `path` as seen by `pid` relative to dirfd.
static void resolve_remote(pid_t pid, int dirfd, const char *path, char *out, size_t cap) {
  char base[PATH_MAX] = "", link[64], joined[PATH_MAX * 2];
  if (path[0] != '/') {
    if (dirfd == AT_FDCWD) snprintf(link, sizeof link, "/proc/%d/cwd", pid);
    else snprintf(link, sizeof link, "/proc/%d/fd/%d", pid, dirfd);
    ssize_t n = readlink(link, base, sizeof base - 1);
    base[n > 0 ? n : 0] = 0;
  }
  snprintf(joined, sizeof joined, "%s/%s", base, path);
  // Normalise: drop "." and empty components, pop on "..".
  size_t o = 0;
  char *save = NULL;
  out[0] = 0;
  for (char *c = strtok_r(joined, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
    if (!strcmp(c, ".")) continue;
    if (!strcmp(c, "..")) { while (o > 0 && out[--o] != '/') ; out[o] = 0; continue; }
    o += (size_t)snprintf(out + o, cap - o, "/%s", c);
    if (o >= cap) { o = cap - 1; break; }
  }
  if (o == 0) snprintf(out, cap, "/");
}

static int write_allowed(const char *full) {
  int ok = 0;
  for (int i = 0; i < n_ok && !ok; i++) ok = under(full, ok_prefix[i]);
  for (int i = 0; i < n_bad && ok; i++) if (under(full, bad_prefix[i])) ok = 0;
  return ok;
}

static void report_write(struct listener *j, const char *name_nr, pid_t pid, int dirfd, uint64_t addr) {
  char path[PATH_MAX], full[PATH_MAX], esc[PATH_MAX * 2];
  if (addr == 0 || read_remote_str(pid, addr, path, sizeof path) < 0) return;
  resolve_remote(pid, dirfd, path, full, sizeof full);
  // Most writes land in a writable root by their lexical path: then no symlink is followed (a
  // write that a symlink inside the root sends elsewhere is still refused, only not reported).
  // Otherwise the existing part's symlinks are resolved, to report where the write would land.
  if (write_allowed(full)) return;
  char real[PATH_MAX];
  if (realpath(full, real)) snprintf(full, sizeof full, "%s", real);
  if (write_allowed(full) || j->reports >= MAX_REPORTS) return;
  j->reports++;
  json_escape(full, esc, sizeof esc);
  emit("{\"e\":\"violation\",\"job\":%d,\"kind\":\"write\",\"nr\":%s,\"path\":\"%s\"}", j->job_id, name_nr, esc);
}

static void handle_notification(struct listener *j) {
  static struct seccomp_notif *req;
  static struct seccomp_notif_resp *resp;
  static struct seccomp_notif_sizes sizes;
  if (!req) {
    if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes) < 0) fatal("SECCOMP_GET_NOTIF_SIZES");
    req = calloc(1, sizes.seccomp_notif > sizeof *req ? sizes.seccomp_notif : sizeof *req);
    resp = calloc(1, sizes.seccomp_notif_resp > sizeof *resp ? sizes.seccomp_notif_resp : sizeof *resp);
    if (!req || !resp) fatal("out of memory");
  }
  memset(req, 0, sizes.seccomp_notif);
  if (ioctl(j->fd, SECCOMP_IOCTL_NOTIF_RECV, req) < 0) return; // the caller died, or nothing is queued
  memset(resp, 0, sizes.seccomp_notif_resp);
  resp->id = req->id;
  resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
  char nr[16];
  snprintf(nr, sizeof nr, "%d", req->data.nr);
  for (int i = 0; i < n_deny; i++) {
    if (deny_table[i].nr != (uint32_t)req->data.nr) continue;
    resp->flags = 0; resp->error = -deny_table[i].err;
    if (j->reports < MAX_REPORTS) {
      j->reports++;
      emit("{\"e\":\"violation\",\"job\":%d,\"kind\":\"syscall\",\"nr\":%s,\"arg0\":%llu,\"arg1\":%llu}", j->job_id, nr,
           (unsigned long long)req->data.args[0], (unsigned long long)req->data.args[1]);
    }
    break;
  }
  if (resp->flags) {
    for (int i = 0; i < n_observe; i++) {
      struct observe *o = &observe_table[i];
      if (o->nr != (uint32_t)req->data.nr) continue;
      for (int k = 0; k < o->npaths; k++) {
        int dirfd = o->dirfd_arg[k] < 0 ? AT_FDCWD : (int)req->data.args[o->dirfd_arg[k]];
        report_write(j, nr, req->pid, dirfd, req->data.args[o->path_arg[k]]);
      }
      break;
    }
  }
  ioctl(j->fd, SECCOMP_IOCTL_NOTIF_SEND, resp); // ENOENT: the caller died meanwhile
}

// ---------------------------------------------------------------- the process tree

// Signals every process of the sandbox but us. Inside a PID namespace that is kill(-1); without
// one (reduced tier) it is every descendant: we are a child subreaper, so orphans stay ours.
static void kill_all(int sig) {
  if (!no_pidns) { kill(-1, sig); return; }
  static pid_t pids[65536], ppids[65536];
  for (int round = 0; round < 16; round++) {
    int n = 0;
    DIR *d = opendir("/proc");
    if (!d) return;
    for (struct dirent *e; (e = readdir(d)) && n < 65536;) {
      char path[300], buf[512];
      if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
      snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
      int fd = open(path, O_RDONLY | O_CLOEXEC);
      if (fd < 0) continue;
      ssize_t k = read(fd, buf, sizeof buf - 1);
      close(fd);
      if (k <= 0) continue;
      buf[k] = 0;
      char *rp = strrchr(buf, ')'); // the command name may contain spaces and parentheses
      if (!rp) continue;
      pids[n] = atoi(e->d_name);
      ppids[n++] = (pid_t)strtol(rp + 4, NULL, 10); // ") S <ppid>"
    }
    closedir(d);
    // Mark descendants of ours, to a fixed point.
    static char mine[65536];
    memset(mine, 0, (size_t)n);
    pid_t self = getpid();
    int found = 0, changed = 1;
    while (changed) {
      changed = 0;
      for (int i = 0; i < n; i++) {
        if (mine[i]) continue;
        int parent_is_ours = ppids[i] == self;
        for (int k = 0; k < n && !parent_is_ours; k++) parent_is_ours = mine[k] && pids[k] == ppids[i];
        if (parent_is_ours) mine[i] = 1, changed = 1, found++;
      }
    }
    for (int i = 0; i < n; i++) if (mine[i]) kill(pids[i], sig);
    if (!found || sig != SIGKILL) return;
    // Reap what died so the next round does not see zombies.
    while (waitpid(-1, NULL, WNOHANG) > 0) ;
  }
}

// ---------------------------------------------------------------- jobs

static void send_fd_over(int sock, int fd) {
  char cbuf[CMSG_SPACE(sizeof(int))], byte = 0;
  memset(cbuf, 0, sizeof cbuf);
  struct iovec io = { &byte, 1 };
  struct msghdr m = { .msg_iov = &io, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf };
  struct cmsghdr *c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_SOCKET; c->cmsg_type = SCM_RIGHTS; c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof(int));
  while (sendmsg(sock, &m, 0) < 0 && errno == EINTR) ;
}

static int recv_fd_over(int sock) {
  char cbuf[CMSG_SPACE(sizeof(int))], byte;
  struct iovec io = { &byte, 1 };
  struct msghdr m = { .msg_iov = &io, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf };
  ssize_t n;
  while ((n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) ;
  struct cmsghdr *c = n > 0 ? CMSG_FIRSTHDR(&m) : NULL;
  if (!c || c->cmsg_type != SCM_RIGHTS) return -1;
  int fd;
  memcpy(&fd, CMSG_DATA(c), sizeof fd);
  return fd;
}

// Errors before exec reach cordon as execErrno: errno of execvp, or 1000+errno (chdir),
// 2000+errno (seccomp), 3000+errno (setrlimit).
// Starts a job from an exec-like frame. stdio[i] for fds 0..3: 'i' inherit ours, 'p' pipe handed
// to cordon, 'n' /dev/null, '-' none (fd 3 only: a session's state pipe when 'p').
static void start_job(int id, char **argv, char **envp, const char *cwd, int want_pty, const char stdio[4],
                      unsigned char *limits, unsigned char *limits_end) {
  struct job *j = NULL;
  for (int i = 0; i < MAX_JOBS && !j; i++) if (!jobs[i].active) j = &jobs[i];
  if (!j) { emit("{\"e\":\"exit\",\"job\":%d,\"code\":null,\"signal\":null,\"execErrno\":%d}", id, EAGAIN); return; }
  memset(j, 0, sizeof *j);
  j->id = id; j->active = 1; j->pty_master = -1;

  int pipes[4][2] = {{-1, -1}, {-1, -1}, {-1, -1}, {-1, -1}};
  for (int i = 0; i < 4; i++) if (stdio[i] == 'p' && pipe2(pipes[i], O_CLOEXEC) < 0) fatal("pipe2");
  int errpipe[2], fdsock[2];
  if (pipe2(errpipe, O_CLOEXEC) < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fdsock) < 0) fatal("pipe2");
  char *slave_name = NULL;
  if (want_pty) {
    j->pty_master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (j->pty_master < 0 || grantpt(j->pty_master) < 0 || unlockpt(j->pty_master) < 0) fatal("pty");
    slave_name = ptsname(j->pty_master);
    struct winsize ws;
    if (ioctl(0, TIOCGWINSZ, &ws) == 0) ioctl(j->pty_master, TIOCSWINSZ, &ws);
  }

  pid_t pid = fork();
  if (pid < 0) fatal("fork");
  if (pid == 0) {
    setsid();
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (int s = 1; s < 32; s++) if (s != SIGKILL && s != SIGSTOP) signal(s, SIG_DFL);
    if (want_pty) {
      int slave = open(slave_name, O_RDWR);
      // The slave keeps the kernel's default (cooked, echoing) settings: the real terminal is
      // in raw mode while cordon relays it.
      if (slave < 0 || ioctl(slave, TIOCSCTTY, 0) < 0) _exit(127);
      dup2(slave, 0); dup2(slave, 1); dup2(slave, 2);
      if (slave > 2) close(slave);
    } else {
      for (int i = 0; i < 3; i++) {
        if (stdio[i] == 'p') dup2(pipes[i][i == 0 ? 0 : 1], i);
        else if (stdio[i] == 'n') { int n = open("/dev/null", O_RDWR); dup2(n, i); close(n); }
      }
    }
    if (stdio[3] == 'p') dup2(pipes[3][1], 3);
    if (no_pidns) {
      // Landlock goes on the command only, so its signal scope keeps it from killing us.
      int required = 0;
      apply_landlock(limits, limits_end, &required);
    }
    for (struct rec r; next_rec(&limits, limits_end, &r);) {
      if (r.type != R_RLIMIT || r.len != 24) continue;
      struct rlimit rl = { u64_at(r.data + 8), u64_at(r.data + 16) };
      if (setrlimit((int)u64_at(r.data), &rl) < 0) { int e = 3000 + errno; write(errpipe[1], &e, sizeof e); _exit(126); }
    }
    if (cwd && chdir(cwd) < 0) { int e = 1000 + errno; write(errpipe[1], &e, sizeof e); _exit(126); }
    if (seccomp_prog.len) {
      int flags = SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
      int nfd = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &seccomp_prog);
      if (nfd < 0) nfd = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags & ~SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, &seccomp_prog);
      if (nfd < 0) { int e = 2000 + errno; write(errpipe[1], &e, sizeof e); _exit(126); }
      send_fd_over(fdsock[1], nfd);
      close(nfd);
    }
    close(fdsock[1]);
    // Nothing but stdio may reach the command: mark every other descriptor close-on-exec.
    syscall(SYS_close_range, stdio[3] == 'p' ? 4U : 3U, ~0U, CLOSE_RANGE_CLOEXEC);
    extern char **environ;
    environ = envp;
    execvp(argv[0], argv);
    int e = errno;
    // execvp reports EACCES when a PATH directory cannot be searched even though no such program
    // exists anywhere: say "not found" then, as shells do.
    if (e == EACCES && !strchr(argv[0], '/')) {
      const char *path = getenv("PATH");
      int exists = 0;
      for (const char *p = path ? path : "/bin:/usr/bin"; *p && !exists;) {
        const char *colon = strchr(p, ':');
        size_t len = colon ? (size_t)(colon - p) : strlen(p);
        char candidate[PATH_MAX];
        struct stat st;
        if (snprintf(candidate, sizeof candidate, "%.*s/%s", (int)len, p, argv[0]) < (int)sizeof candidate)
          exists = stat(candidate, &st) == 0; // unsearchable directories count as not found, as in bash
        p += len + (colon ? 1 : 0);
        if (!colon) break;
      }
      if (!exists) e = ENOENT;
    }
    write(errpipe[1], &e, sizeof e);
    _exit(e == ENOENT ? 127 : 126);
  }
  j->pid = pid;
  close(errpipe[1]); close(fdsock[1]);
  j->exec_err_fd = errpipe[0];
  if (seccomp_prog.len) {
    int nfd = recv_fd_over(fdsock[0]);
    struct listener *l = NULL;
    for (int i = 0; i < MAX_LISTENERS && !l && nfd >= 0; i++) if (listeners[i].fd <= 0) l = &listeners[i];
    if (l) {
      *l = (struct listener){ nfd, id, 0 };
      ioctl(nfd, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP); // a speed-up where supported
      fcntl(nfd, F_SETFL, O_NONBLOCK);
    } else if (nfd >= 0) {
      // No room to supervise it: stop the command rather than let its calls fail with ENOSYS.
      kill(pid, SIGKILL);
      close(nfd);
    }
  }
  close(fdsock[0]);
  for (int i = 0; i < 4; i++) {
    if (stdio[i] != 'p') continue;
    int ours = pipes[i][i == 0 ? 1 : 0];
    close(pipes[i][i == 0 ? 0 : 1]);
    char msg[64];
    snprintf(msg, sizeof msg, "{\"e\":\"stdio\",\"job\":%d,\"fd\":%d}", id, i);
    send_handle(ours, "net.Native", msg);
    close(ours);
  }
  await_handle_acks();
  emit("{\"e\":\"started\",\"job\":%d,\"pid\":%d}", id, pid);
}

static struct job *job_by_pid(pid_t pid) {
  for (int i = 0; i < MAX_JOBS; i++) if (jobs[i].active && jobs[i].pid == pid) return &jobs[i];
  return NULL;
}
static struct job *job_by_id(int id) {
  for (int i = 0; i < MAX_JOBS; i++) if (jobs[i].active && jobs[i].id == id) return &jobs[i];
  return NULL;
}

static void relay(int from, int to) {
  char buf[16384];
  ssize_t n = read(from, buf, sizeof buf);
  if (n > 0) write_all(to, buf, (size_t)n);
}

static int finished; // single-command mode: set when the command is done

static void job_exited(struct job *j, int status, struct rusage *ru) {
  int exec_errno = 0;
  if (read(j->exec_err_fd, &exec_errno, sizeof exec_errno) != sizeof exec_errno) exec_errno = 0;
  close(j->exec_err_fd);
  if (j->pty_master >= 0) {
    // Drain what the command printed last.
    struct pollfd p = { j->pty_master, POLLIN, 0 };
    while (poll(&p, 1, 0) > 0 && (p.revents & POLLIN)) {
      char buf[16384];
      ssize_t n = read(j->pty_master, buf, sizeof buf);
      if (n <= 0) break;
      write_all(1, buf, (size_t)n);
    }
    close(j->pty_master);
  }
  for (int i = 0; i < MAX_LISTENERS; i++) { // report what the job's last calls did before its exit
    if (listeners[i].fd <= 0 || listeners[i].job_id != j->id) continue;
    struct pollfd p = { listeners[i].fd, POLLIN, 0 };
    while (poll(&p, 1, 0) > 0 && (p.revents & POLLIN)) handle_notification(&listeners[i]);
  }
  char code[16] = "null", sig[16] = "null";
  if (WIFEXITED(status)) snprintf(code, sizeof code, "%d", WEXITSTATUS(status));
  else if (WIFSIGNALED(status)) snprintf(sig, sizeof sig, "%d", WTERMSIG(status));
  emit("{\"e\":\"exit\",\"job\":%d,\"code\":%s,\"signal\":%s,\"execErrno\":%d,\"userUs\":%lld,\"sysUs\":%lld,\"maxRssKb\":%ld}",
       j->id, code, sig, exec_errno,
       (long long)ru->ru_utime.tv_sec * 1000000 + ru->ru_utime.tv_usec,
       (long long)ru->ru_stime.tv_sec * 1000000 + ru->ru_stime.tv_usec, ru->ru_maxrss);
  j->active = 0;
  if (!session_mode) {
    finished = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (finished == 0) finished = -1; // distinguish "done, status 0" from "running"
  }
}

// ---------------------------------------------------------------- frames

static unsigned char *plan_frame; // kept: argv/env point into it
static size_t plan_len;

static void handle_frame(unsigned char *f, size_t n) {
  if (n < 1) return;
  unsigned char *p = f + 1, *end = f + n;
  struct rec r;
  switch (f[0]) {
  case F_PLAN:
    if (!plan_frame) { plan_frame = malloc(n); if (!plan_frame) fatal("out of memory"); memcpy(plan_frame, f, n); plan_len = n; }
    break;
  case F_EXEC: {
    int id = -1, pty = 0; char **argv = NULL, **envp = NULL; char *cwd = NULL; char stdio[4] = {'p', 'p', 'p', '-'};
    unsigned char *keep = malloc(n);
    if (!keep) fatal("out of memory");
    memcpy(keep, f, n); p = keep + 1; end = keep + n; // argv/env point into it for the child's lifetime
    while (next_rec(&p, end, &r)) {
      if (r.type == R_JOB && r.len == 4) id = (int)u32_at(r.data);
      else if (r.type == R_ARGV) argv = split_nul(r.data, r.len);
      else if (r.type == R_ENV) envp = split_nul(r.data, r.len);
      else if (r.type == R_CWD) cwd = dup_str(r.data, r.len);
      else if (r.type == R_PTY && r.len == 1) pty = r.data[0];
      else if (r.type == R_STDIO && (r.len == 3 || r.len == 4)) memcpy(stdio, r.data, r.len);
    }
    if (id >= 0 && argv && argv[0] && envp)
      start_job(id, argv, envp, cwd, pty, stdio, plan_frame + 1, plan_frame + plan_len);
    free(cwd); free(argv); free(envp); free(keep);
    break;
  }
  case F_SIGNAL:
    if (n == 9) {
      struct job *j = job_by_id((int)u32_at(f + 1));
      if (j) kill(-j->pid, (int)u32_at(f + 5));
    }
    break;
  case F_KILL_ALL:
    if (n == 5) kill_all((int)u32_at(f + 1));
    break;
  case F_SHUTDOWN: // the session is over: nothing in it survives us
    kill_all(SIGKILL);
    _exit(0);
  case F_RESIZE:
    if (n == 9) {
      struct job *j = job_by_id((int)u32_at(f + 1));
      struct winsize ws = { .ws_row = (unsigned short)(u32_at(f + 5) >> 16), .ws_col = (unsigned short)(u32_at(f + 5) & 0xffff) };
      if (j && j->pty_master >= 0) ioctl(j->pty_master, TIOCSWINSZ, &ws);
    }
    break;
  }
}

// ---------------------------------------------------------------- network namespace set-up

static void write_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
    fprintf(stderr, "cordon-launcher: cannot write %s: %s\n", path, strerror(errno));
    _exit(71);
  }
  close(fd);
}

static void if_set(int s, unsigned long req, struct ifreq *ifr, const char *what) {
  if (ioctl(s, req, ifr) < 0) {
    fprintf(stderr, "cordon-launcher: %s: %s\n", what, strerror(errno));
    _exit(71);
  }
}

// `--stage --parent PID [--netns [--lo-alias A.B.C.D]] -- PROGRAM ARGS`: what runs before
// bubblewrap. It dies with cordon (a parent-death signal set here, and checked against the race
// where cordon died before it was set, survives the exec into bwrap), and, with --netns, creates
// the sandbox's network namespace, which bubblewrap then keeps: only its owner can configure it
// (loopback up, an extra loopback address the transparent resolver's answers need, low ports
// bindable without privileges for the in-sandbox resolver on port 53).
static int stage_then_exec(int argc, char **argv) {
  const char *alias = NULL;
  int netns = 0;
  pid_t parent = 0;
  int i = 2;
  for (; i < argc && strcmp(argv[i], "--"); i++) {
    if (!strcmp(argv[i], "--lo-alias") && i + 1 < argc) alias = argv[++i];
    else if (!strcmp(argv[i], "--parent") && i + 1 < argc) parent = (pid_t)atoi(argv[++i]);
    else if (!strcmp(argv[i], "--netns")) netns = 1;
  }
  if (i + 1 >= argc) { fprintf(stderr, "cordon-launcher: --stage needs -- PROGRAM\n"); return 2; }
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || (parent && getppid() != parent)) return 111; // cordon is already gone
  if (!netns) goto exec;
  uid_t uid = getuid();
  gid_t gid = getgid();
  if (uid != 0) {
    if (unshare(CLONE_NEWUSER | CLONE_NEWNET) < 0) { perror("cordon-launcher: unshare(user, net)"); return 71; }
    char map[64];
    write_file("/proc/self/setgroups", "deny");
    snprintf(map, sizeof map, "%u %u 1\n", uid, uid);
    write_file("/proc/self/uid_map", map);
    snprintf(map, sizeof map, "%u %u 1\n", gid, gid);
    write_file("/proc/self/gid_map", map);
  } else if (unshare(CLONE_NEWNET) < 0) {
    perror("cordon-launcher: unshare(net)");
    return 71;
  }
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strcpy(ifr.ifr_name, "lo");
  if_set(s, SIOCGIFFLAGS, &ifr, "loopback flags");
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  if_set(s, SIOCSIFFLAGS, &ifr, "loopback up");
  if (alias) {
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, "lo:1");
    struct sockaddr_in *a = (struct sockaddr_in *)&ifr.ifr_addr;
    a->sin_family = AF_INET;
    if (inet_pton(AF_INET, alias, &a->sin_addr) != 1) { fprintf(stderr, "cordon-launcher: bad --lo-alias\n"); return 2; }
    if_set(s, SIOCSIFADDR, &ifr, "loopback alias");
    a->sin_addr.s_addr = htonl(0xff000000);
    if_set(s, SIOCSIFNETMASK, &ifr, "loopback alias netmask");
  }
  close(s);
  write_file("/proc/sys/net/ipv4/ip_unprivileged_port_start", "0");
exec:;
  // A path masked with an empty file that has vanished since cordon planned the sandbox (a host
  // socket closed, a file deleted) needs no mask, and bwrap would fail to mount over it: drop
  // `--perms 0000 --ro-bind-data FD PATH` for paths that no longer exist.
  char **out = argv + i + 1;
  int k = 0;
  for (int a = i + 1; a < argc; a++) {
    struct stat st;
    if (a + 4 < argc && !strcmp(argv[a], "--perms") && !strcmp(argv[a + 1], "0000") && !strcmp(argv[a + 2], "--ro-bind-data") &&
        lstat(argv[a + 4], &st) < 0 && errno == ENOENT) {
      a += 4;
      continue;
    }
    out[k++] = argv[a];
  }
  out[k] = NULL;
  execvp(out[0], out);
  perror("cordon-launcher: exec");
  return 127;
}

// ---------------------------------------------------------------- main

int main(int argc, char **argv) {
  if (argc >= 2 && !strcmp(argv[1], "--probe")) {
    // Used by `cordon doctor`: what this kernel offers the launcher.
    printf("{\"landlock\":%d,\"seccompNotify\":%s}\n", landlock_abi(),
           syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &(struct seccomp_notif_sizes){0}) == 0 ? "true" : "false");
    return 0;
  }
  if (argc >= 2 && !strcmp(argv[1], "--stage")) return stage_then_exec(argc, argv);
  const char *ch = getenv("NODE_CHANNEL_FD");
  if (!ch) { fprintf(stderr, "cordon-launcher: run by cordon only\n"); return 2; }
  ipc = atoi(ch);
  fcntl(ipc, F_SETFD, FD_CLOEXEC);
  unsetenv("NODE_CHANNEL_FD");
  unsetenv("NODE_CHANNEL_SERIALIZATION_MODE");

  // We are PID 1 of the sandbox: the kernel only delivers signals we handle, and SIGCHLD comes
  // through a signalfd so the loop below sees every exit.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  signal(SIGPIPE, SIG_IGN);

  while (!plan_frame) if (!read_frames(handle_frame)) _exit(111);
  unsigned char *p = plan_frame + 1, *end = plan_frame + plan_len;
  struct rec r;
  char **cmd = NULL, **envp = NULL; char *cwd = NULL; int pty = 0;
  while (next_rec(&p, end, &r)) {
    if (r.type == R_MODE && r.len == 1) session_mode = r.data[0];
    else if (r.type == R_ARGV) cmd = split_nul(r.data, r.len);
    else if (r.type == R_ENV) envp = split_nul(r.data, r.len);
    else if (r.type == R_CWD) cwd = dup_str(r.data, r.len);
    else if (r.type == R_PTY && r.len == 1) pty = r.data[0];
    else if (r.type == R_NO_PIDNS && r.len == 1) no_pidns = r.data[0];
  }

  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) fatal("no_new_privs");
  prctl(PR_SET_DUMPABLE, 0); // the command may not read our memory or environment
  open_listeners(plan_frame + 1, end);
  await_handle_acks();
  load_seccomp_tables(plan_frame + 1, end);
  int ll_required = 0, ll_abi = 0;
  if (no_pidns) {
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    for (unsigned char *q = plan_frame + 1; next_rec(&q, end, &r);) {
      if (r.type == R_LL_REQUIRED && r.len == 4) ll_required = (int)u32_at(r.data);
      if (r.type == R_LL_FS) ll_abi = landlock_abi(); // applied to each command as it starts
    }
  } else {
    ll_abi = apply_landlock(plan_frame + 1, end, &ll_required);
  }
  int notify_ok = syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &(struct seccomp_notif_sizes){0}) == 0;
  emit("{\"e\":\"ready\",\"landlock\":%d,\"seccomp\":%s,\"seccompNotify\":%s,\"noNewPrivs\":true}", ll_abi,
       seccomp_prog.len ? "true" : "false", notify_ok ? "true" : "false");
  // Fail closed: the plan says which layers it cannot do without.
  if (ll_required && ll_abi < ll_required) { errno = 0; fatal("Landlock is required by the plan but unavailable"); }
  if (seccomp_required && !seccomp_prog.len) { errno = 0; fatal("seccomp is required by the plan but no program was given"); }

  if (!session_mode) {
    if (!cmd || !cmd[0] || !envp) { errno = EINVAL; fatal("plan has no command"); }
    start_job(0, cmd, envp, cwd, pty, "iii-", plan_frame + 1, end);
  }

  for (;;) {
    struct pollfd fds[3 + 2 * MAX_JOBS + MAX_LISTENERS];
    struct job *owner[3 + 2 * MAX_JOBS + MAX_LISTENERS];
    struct listener *lowner[3 + 2 * MAX_JOBS + MAX_LISTENERS];
    int n = 0, stdin_at = -1;
    fds[n++] = (struct pollfd){ ipc, POLLIN, 0 };
    fds[n++] = (struct pollfd){ sfd, POLLIN, 0 };
    for (int i = 0; i < MAX_JOBS; i++) {
      struct job *j = &jobs[i];
      if (!j->active) continue;
      if (j->pty_master >= 0) {
        owner[n] = j; fds[n++] = (struct pollfd){ j->pty_master, POLLIN, 0 };
        if (stdin_at < 0) { stdin_at = n; owner[n] = j; fds[n++] = (struct pollfd){ 0, POLLIN, 0 }; }
      }
    }
    int first_listener = n;
    for (int i = 0; i < MAX_LISTENERS; i++)
      if (listeners[i].fd > 0) { lowner[n] = &listeners[i]; fds[n++] = (struct pollfd){ listeners[i].fd, POLLIN, 0 }; }
    if (poll(fds, (nfds_t)n, -1) < 0) { if (errno == EINTR) continue; fatal("poll"); }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      if (!read_frames(handle_frame)) kill_all(SIGKILL), _exit(111); // cordon is gone: take everything down
    }
    if (fds[1].revents & POLLIN) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) == sizeof si) ;
      int status; struct rusage ru; pid_t pid;
      while ((pid = wait4(-1, &status, WNOHANG, &ru)) > 0) {
        struct job *j = job_by_pid(pid);
        if (j) job_exited(j, status, &ru);
      }
    }
    for (int i = first_listener; i < n; i++) {
      if (fds[i].revents & POLLIN) handle_notification(lowner[i]);
      else if (fds[i].revents & (POLLHUP | POLLERR | POLLNVAL)) { close(lowner[i]->fd); lowner[i]->fd = 0; } // no users left
    }
    for (int i = 2; i < first_listener; i++) {
      if (!fds[i].revents || !owner[i]->active) continue;
      if (i == stdin_at) { if (fds[i].revents & (POLLHUP | POLLERR)) close(owner[i]->pty_master), owner[i]->pty_master = -1; else relay(0, owner[i]->pty_master); }
      else if (fds[i].fd == owner[i]->pty_master) relay(owner[i]->pty_master, 1);
    }
    if (finished) {
      kill_all(SIGKILL); // the command is done: nothing it started may outlive it
      _exit(finished < 0 ? 0 : finished);
    }
  }
}
