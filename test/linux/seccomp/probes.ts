// The probe program run inside the sandbox by kernel.test.ts: python3 issuing raw system calls
// through ctypes. Each probe uses harmless arguments: it either acts only inside the sandbox's own
// namespaces (a tmpfs mount in the private mount namespace) or fails in the kernel after the
// permission check (a path that does not exist, an invalid magic number), so that run without the
// filter it shows the kernel was reached, and run with it, that the filter answered first.

export const PROBE_SCRIPT = String.raw`
# Each probe runs in a forked child (a probe may change its process: namespaces, personality),
# bounded by an alarm; it prints {probe: result}, where result is 0 (the call succeeded), an errno,
# "signal:N" (killed) or "exit:N".
import ctypes, json, mmap, os, signal, socket, struct, subprocess, sys

CONFIG = json.loads(sys.argv[1])  # {"nr": {name: number}, "arch": "x86_64" | "aarch64", "only": [names] | null}
NR = CONFIG['nr']
WANTED = set(CONFIG['only']) if CONFIG.get('only') else None
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
AT_FDCWD = -100
NOPATH = b'/cordon-no-such-path'

def arg(a):
    if isinstance(a, int):
        return ctypes.c_ulong(a & 0xffffffffffffffff)
    return a

def sc(nr, *args):
    nr = NR[nr] if isinstance(nr, str) else nr
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *[arg(a) for a in args])
    return (r, 0) if r >= 0 else (r, ctypes.get_errno())

def err(nr, *args):
    return sc(nr, *args)[1]

def fd_err(nr, *args):
    r, e = sc(nr, *args)
    if r >= 0:
        os.close(r)
    return e

def clone_probe(flags):
    r, e = sc('clone', flags, 0, 0, 0, 0)
    if r == 0:
        os._exit(0)
    if r > 0:
        os.waitpid(r, 0)
    return e

def on_controlling_tty(fn):
    # TIOCSTI needs the terminal to be the caller's controlling tty (or CAP_SYS_ADMIN).
    master, slave = os.openpty()
    name = os.ttyname(slave)
    os.close(slave)
    os.setsid()
    fd = os.open(name, os.O_RDWR)
    return fn(fd)

def ioctl_probe(request):
    ch = ctypes.c_char(b'x')
    sub = ctypes.c_char(b'\x0c')  # TIOCL_GETFGCONSOLE
    ptr = ctypes.byref(sub) if (request & 0xffffffff) == 0x541c else ctypes.byref(ch)
    return on_controlling_tty(lambda fd: err('ioctl', fd, request, ptr))

def socket_probe(family, type_=socket.SOCK_STREAM, proto=0, call='socket'):
    if call == 'socket':
        return fd_err('socket', family, type_, proto)
    fds = (ctypes.c_int * 2)()
    return err('socketpair', family, type_, proto, fds)

def command(argv):
    r = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)
    return 0 if r.returncode == 0 else 'exit:%d' % r.returncode

def process_vm(name):
    buf = ctypes.create_string_buffer(b'cordon', 8)
    other = ctypes.create_string_buffer(8)
    class iovec(ctypes.Structure):
        _fields_ = [('base', ctypes.c_void_p), ('len', ctypes.c_size_t)]
    local = iovec(ctypes.cast(other, ctypes.c_void_p), 6)
    remote = iovec(ctypes.cast(buf, ctypes.c_void_p), 6)
    if name == 'process_vm_writev':
        local, remote = remote, local
    return err(name, os.getpid(), ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)

def int80_getpid():
    # mov eax, 20 (i386 getpid); int 0x80; ret -- an i386-ABI call from a 64-bit process.
    code = b'\xb8\x14\x00\x00\x00\xcd\x80\xc3'
    buf = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    buf.write(code)
    fn = ctypes.CFUNCTYPE(ctypes.c_long)(ctypes.addressof(ctypes.c_char.from_buffer(buf)))
    r = fn()
    return 0 if r == os.getpid() or r > 0 else -r

timex = ctypes.create_string_buffer(256)  # struct timex with modes = 0: a read-only query
CLONE = {'NEWNS': 0x20000, 'NEWCGROUP': 0x2000000, 'NEWUTS': 0x4000000, 'NEWIPC': 0x8000000,
         'NEWUSER': 0x10000000, 'NEWPID': 0x20000000, 'NEWNET': 0x40000000, 'NEWTIME': 0x80}
HIGH = 1 << 32

P = {}
for ns, bit in CLONE.items():
    P['unshare:' + ns] = (lambda bit=bit: err('unshare', bit))
    if ns != 'NEWTIME':
        P['clone:' + ns] = (lambda bit=bit: clone_probe(bit | 17))
P['clone:NEWUSER+high'] = lambda: clone_probe(CLONE['NEWUSER'] | 17 | HIGH)
P['clone3'] = lambda: err('clone3', 0, 0)
P['cmd:unshare -U true'] = lambda: command(['unshare', '-U', 'true'])
P['cmd:unshare -m true'] = lambda: command(['unshare', '-m', 'true'])
P['setns'] = lambda: err('setns', -1, 0)
P['mount'] = lambda: err('mount', b'none', b'/tmp', b'tmpfs', 0, None)
P['umount2'] = lambda: err('umount2', NOPATH, 0)
P['pivot_root'] = lambda: err('pivot_root', NOPATH, NOPATH)
P['move_mount'] = lambda: err('move_mount', -1, b'', -1, b'', 0)
P['open_tree'] = lambda: fd_err('open_tree', AT_FDCWD, b'/', 0)
P['open_tree_attr'] = lambda: fd_err('open_tree_attr', AT_FDCWD, b'/', 0, None, 0)
P['fsopen'] = lambda: fd_err('fsopen', b'tmpfs', 0)
P['fsconfig'] = lambda: err('fsconfig', -1, 0, None, None, 0)
P['fsmount'] = lambda: err('fsmount', -1, 0, 0)
P['fspick'] = lambda: fd_err('fspick', AT_FDCWD, b'/', 0)
P['mount_setattr'] = lambda: err('mount_setattr', -1, b'', 0, None, 0)
P['ptrace'] = lambda: err('ptrace', 3, 0x3ffffff0, 0, 0)
P['process_vm_readv'] = lambda: process_vm('process_vm_readv')
P['process_vm_writev'] = lambda: process_vm('process_vm_writev')
P['pidfd_getfd'] = lambda: err('pidfd_getfd', -1, 0, 0)
P['kexec_load'] = lambda: err('kexec_load', 0, 1000, None, 0)
P['kexec_file_load'] = lambda: err('kexec_file_load', -1, -1, 0, None, 0xdead0000)
P['init_module'] = lambda: err('init_module', None, 0, b'')
P['finit_module'] = lambda: err('finit_module', -1, b'', 0)
P['delete_module'] = lambda: err('delete_module', b'cordon_no_such_module', os.O_NONBLOCK)
P['bpf'] = lambda: err('bpf', 0x7fff, None, 0)
P['perf_event_open'] = lambda: err('perf_event_open', struct.pack('II', 0, 1) + b'\0' * 120, 0, -1, -1, 0)
P['userfaultfd'] = lambda: fd_err('userfaultfd', 1)  # UFFD_USER_MODE_ONLY: allowed unprivileged
P['keyctl'] = lambda: err('keyctl', 0, -3, 0)  # KEYCTL_GET_KEYRING_ID of the session keyring
P['add_key'] = lambda: err('add_key', b'cordon_no_such_type', b'd', b'x', 1, -2)
P['request_key'] = lambda: err('request_key', b'cordon_no_such_type', b'd', None, 0)
P['io_uring_setup'] = lambda: fd_err('io_uring_setup', 1, ctypes.create_string_buffer(120))
P['io_uring_enter'] = lambda: err('io_uring_enter', -1, 0, 0, 0, None, 0)
P['io_uring_register'] = lambda: err('io_uring_register', -1, 0, None, 0)
P['open_by_handle_at'] = lambda: err('open_by_handle_at', -1, None, 0)
P['name_to_handle_at'] = lambda: err('name_to_handle_at', AT_FDCWD, b'/', ctypes.create_string_buffer(8), ctypes.create_string_buffer(4), 0)
P['personality:ADDR_NO_RANDOMIZE'] = lambda: err('personality', 0x0040000)
P['personality:ADDR_NO_RANDOMIZE+high'] = lambda: err('personality', 0x0040000 | HIGH)
P['acct'] = lambda: err('acct', NOPATH)
P['swapon'] = lambda: err('swapon', NOPATH, 0)
P['swapoff'] = lambda: err('swapoff', NOPATH)
P['reboot'] = lambda: err('reboot', 0xfee1dead, 0, 0, None)  # bad magic2: never acts
P['settimeofday'] = lambda: err('settimeofday', struct.pack('qq', 0, 2000000), None)  # invalid usec
P['clock_settime'] = lambda: err('clock_settime', 0, struct.pack('qq', 0, -1))  # invalid nsec
P['clock_adjtime'] = lambda: err('clock_adjtime', 0, timex)
P['adjtimex'] = lambda: err('adjtimex', timex)
P['quotactl'] = lambda: err('quotactl', 0x800005, NOPATH, 0, ctypes.create_string_buffer(64))  # invalid quota type: EINVAL
P['quotactl_fd'] = lambda: err('quotactl_fd', -1, 0x800005, 0, None)
P['ioctl:TIOCSTI'] = lambda: ioctl_probe(0x5412)
P['ioctl:TIOCSTI+high'] = lambda: ioctl_probe(0x5412 | HIGH)
P['ioctl:TIOCLINUX'] = lambda: ioctl_probe(0x541c)
P['socket:AF_NETLINK sock_diag'] = lambda: socket_probe(16, socket.SOCK_RAW, 4)
P['socketpair:AF_NETLINK sock_diag'] = lambda: socket_probe(16, socket.SOCK_RAW, 4, call='socketpair')
P['ok:socket AF_NETLINK route'] = lambda: socket_probe(16, socket.SOCK_RAW, 0)
for fam_name, fam, type_ in [('AF_PACKET', 17, socket.SOCK_RAW),
                             ('AF_VSOCK', 40, socket.SOCK_STREAM), ('AF_ALG', 38, socket.SOCK_SEQPACKET),
                             ('AF_XDP', 44, socket.SOCK_RAW), ('AF_BLUETOOTH', 31, socket.SOCK_STREAM),
                             ('AF_KEY', 15, socket.SOCK_RAW), ('AF_CAN', 29, socket.SOCK_RAW)]:
    P['socket:' + fam_name] = (lambda fam=fam, type_=type_: socket_probe(fam, type_))
    P['socketpair:' + fam_name] = (lambda fam=fam, type_=type_: socket_probe(fam, type_, call='socketpair'))
P['socket:AF_PACKET+high'] = lambda: socket_probe(17 | HIGH, socket.SOCK_RAW)
P['socket:AF_INET'] = lambda: socket_probe(socket.AF_INET)
P['socket:AF_INET6'] = lambda: socket_probe(socket.AF_INET6)
# What must keep working under the filter.
P['ok:socket AF_UNIX'] = lambda: socket_probe(socket.AF_UNIX)
P['ok:socketpair AF_UNIX'] = lambda: socket_probe(socket.AF_UNIX, call='socketpair')
P['ok:unshare CLONE_FS|CLONE_FILES'] = lambda: err('unshare', 0x200 | 0x400)
P['ok:fork'] = lambda: clone_probe(17)  # SIGCHLD: plain fork
P['ok:personality query'] = lambda: err('personality', 0xffffffff)
P['ok:personality PER_LINUX'] = lambda: err('personality', 0)
P['ok:ioctl TCGETS'] = lambda: on_controlling_tty(lambda fd: err('ioctl', fd, 0x5401, ctypes.create_string_buffer(64)))
P['ok:openat write'] = lambda: fd_err('openat', AT_FDCWD, b'/tmp/cordon-probe', os.O_WRONLY | os.O_CREAT, 0o600)
P['ok:openat read'] = lambda: fd_err('openat', AT_FDCWD, b'/proc/self/status', os.O_RDONLY, 0)
P['ok:mkdirat'] = lambda: err('mkdirat', AT_FDCWD, b'/tmp/cordon-probe-dir', 0o700)
if CONFIG['arch'] == 'x86_64':
    P['x32:getpid'] = lambda: err(0x40000000 | 39)  # x32 getpid
    P['i386:getpid'] = int80_getpid

def run(fn):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        signal.alarm(10)
        try:
            result = fn()
        except Exception as e:
            result = 'exception:' + repr(e)
        os.write(w, json.dumps(result).encode())
        os._exit(0)
    os.close(w)
    data = b''
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        data += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return 'signal:%d' % os.WTERMSIG(status)
    return json.loads(data) if data else 'exit:%d' % os.WEXITSTATUS(status)

results = {name: run(fn) for name, fn in P.items() if WANTED is None or name in WANTED}
print(json.dumps(results))
`;
