#define _GNU_SOURCE
#include <malloc.h>
#include "CSpoolShims.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

int spool_errno(void) { return errno; }
void spool_set_errno(int e) { errno = e; }

int spool_renameat_noreplace(int olddirfd, const char *oldpath, int newdirfd, const char *newpath) {
    return renameat2(olddirfd, oldpath, newdirfd, newpath, RENAME_NOREPLACE);
}
int spool_syncfs(int fd) { return syncfs(fd); }
int spool_sync_file_range_write(int fd) { return sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE); }
int spool_futimens_mtime(int fd, int64_t sec, int64_t nsec) {
    struct timespec ts[2];
    ts[0].tv_sec = 0; ts[0].tv_nsec = UTIME_OMIT;
    ts[1].tv_sec = (time_t)sec; ts[1].tv_nsec = (long)nsec;
    return futimens(fd, ts);
}

int spool_fsetxattr(int fd, const char *name, const void *value, uint64_t size) { return fsetxattr(fd, name, value, (size_t)size, 0); }
int64_t spool_fgetxattr(int fd, const char *name, void *value, uint64_t size) { return (int64_t)fgetxattr(fd, name, value, (size_t)size); }
const int SPOOL_ENODATA = ENODATA, SPOOL_ENOTSUP = ENOTSUP, SPOOL_E2BIG = E2BIG, SPOOL_ERANGE = ERANGE;

int64_t spool_lgetxattr(const char *path, const char *name, void *value, uint64_t size) { return (int64_t)lgetxattr(path, name, value, (size_t)size); }

int spool_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }
int spool_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data) {
    struct epoll_event ev; ev.events = events; ev.data.u64 = data;
    return epoll_ctl(epfd, op, fd, &ev);
}
int spool_epoll_wait(int epfd, uint32_t *events, uint64_t *datas, int max, int timeout_ms) {
    struct epoll_event evs[256];
    if (max > 256) max = 256;
    int n = epoll_wait(epfd, evs, max, timeout_ms);
    for (int i = 0; i < n; i++) { events[i] = evs[i].events; datas[i] = evs[i].data.u64; }
    return n;
}
const uint32_t SPOOL_EPOLLIN = EPOLLIN, SPOOL_EPOLLOUT = EPOLLOUT, SPOOL_EPOLLERR = EPOLLERR,
    SPOOL_EPOLLHUP = EPOLLHUP, SPOOL_EPOLLRDHUP = EPOLLRDHUP, SPOOL_EPOLLET = EPOLLET;
const int SPOOL_EPOLL_CTL_ADD = EPOLL_CTL_ADD, SPOOL_EPOLL_CTL_MOD = EPOLL_CTL_MOD, SPOOL_EPOLL_CTL_DEL = EPOLL_CTL_DEL;

int spool_eventfd(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }
int spool_accept4(int fd) { return accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK); }
int spool_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }
const int SPOOL_O_CLOEXEC = O_CLOEXEC;

int spool_inotify_init(void) { return inotify_init1(IN_CLOEXEC | IN_NONBLOCK); }
int spool_inotify_add_watch(int fd, const char *path, uint32_t mask) { return inotify_add_watch(fd, path, mask); }
const uint32_t SPOOL_IN_MOVED_TO = IN_MOVED_TO, SPOOL_IN_CREATE = IN_CREATE, SPOOL_IN_ATTRIB = IN_ATTRIB;

/// Each signal we turn into a readable descriptor writes to its own eventfd (-1: none).
static volatile int signal_fds[65] = { [0 ... 64] = -1 };
static void on_signal(int sig) {
    int saved = errno;
    uint64_t one = 1;
    int fd = (sig > 0 && sig < 65) ? signal_fds[sig] : -1;
    if (fd >= 0) { ssize_t r = write(fd, &one, sizeof one); (void)r; }
    errno = saved;
}
/// Makes `sig` write to `fd` instead of its default action, and unblocks it in the calling thread (a parent may
/// have started us with it blocked: posix_spawn inherits the mask).
static int deliver_to(int sig, int fd) {
    signal_fds[sig] = fd;
    struct sigaction sa;
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(sig, &sa, NULL) != 0) return -1;
    sigset_t set; sigemptyset(&set); sigaddset(&set, sig);
    return pthread_sigmask(SIG_UNBLOCK, &set, NULL) == 0 ? 0 : -1;
}
int spool_install_termination_pipe(int fd) {
    if (deliver_to(SIGTERM, fd) != 0 || deliver_to(SIGINT, fd) != 0) return -1;
    signal(SIGPIPE, SIG_IGN);
    return 0;
}
void spool_ignore_sigpipe(void) { signal(SIGPIPE, SIG_IGN); }
int spool_install_hangup_pipe(int fd) { return deliver_to(SIGHUP, fd); }

int spool_exited_nowait(int pid) {
    siginfo_t info;
    info.si_pid = 0;
    if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0) return -1;
    return info.si_pid == pid ? 1 : 0;
}

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
int spool_pidfd_open(int pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

int spool_wifexited(int s) { return WIFEXITED(s); }
int spool_wexitstatus(int s) { return WEXITSTATUS(s); }
int spool_wifsignaled(int s) { return WIFSIGNALED(s); }
int spool_wtermsig(int s) { return WTERMSIG(s); }

/// The one posix_spawn of the project: stdin/stdout/stderr from the given fds, every other descriptor closed, an
/// empty signal mask, the signals in `defaults` back to their default action, optionally a new process group.
static int spawn_child(int *pid, const char *path, char *const argv[], char *const envp[], const char *cwd,
                       int in_fd, int out_fd, int err_fd, const sigset_t *defaults, int new_group) {
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    posix_spawn_file_actions_adddup2(&fa, in_fd, 0);
    posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
    posix_spawn_file_actions_adddup2(&fa, err_fd, 2);
    // Descriptors our own parent left open without O_CLOEXEC stay with us, not with the child.
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    if (cwd) posix_spawn_file_actions_addchdir_np(&fa, cwd);
    sigset_t empty; sigemptyset(&empty);
    posix_spawnattr_setsigmask(&at, &empty);
    posix_spawnattr_setsigdefault(&at, defaults);
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    if (new_group) { posix_spawnattr_setpgroup(&at, 0); flags |= POSIX_SPAWN_SETPGROUP; }
    posix_spawnattr_setflags(&at, flags);
    pid_t p = 0;
    int rc = posix_spawn(&p, path, &fa, &at, argv, envp);
    *pid = (int)p;
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    return rc;
}

/// Closes every descriptor from `from` up (close_range on Linux 5.9+, else one by one). Async-signal-safe.
static void close_from(int from) {
#ifdef SYS_close_range
    if (syscall(SYS_close_range, (unsigned)from, ~0U, 0) == 0) return;
#endif
    for (int fd = from; fd < 65536; fd++) close(fd);
}

/// The handler guard: one process per consumer process (issue 25: a guard per attempt cost an exec of `/bin/sh` and
/// a fork per handler, 0.54x of `sh -c true`). A handler must not outlive its consumer, however the consumer dies
/// (SIGKILL, the OOM killer), or it keeps its item's claim hostage and nobody enforces its time limit. Each handler
/// leads a process group of its own and registers it with the guard (4 bytes, its pid, written by the handler's
/// child before its exec, so a handler is never running unregistered); the consumer unregisters it (the negated
/// pid) after it has exited and its group was killed, before it reaps it (so the group id cannot have been reused
/// meanwhile). When the consumer dies, the kernel closes its end of the pipe; the guard reads the rest of what is in
/// the pipe, then end of file, and kills every group still registered. The guard is forked, not executed: the child
/// of a multi-threaded process calls only async-signal-safe functions (read, kill, sigaction, _exit). It leads a
/// session of its own and ignores every signal it may, so signals for the consumer's group (a terminal's Ctrl-C,
/// `kill -- -PGID`) do not take it away.
#define GUARD_CAPACITY 16384
static int32_t guard_groups[GUARD_CAPACITY];

int spool_start_guard(int *pid, int *write_fd) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return errno;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t g = fork();
    if (g == 0) {
        setsid();
        struct sigaction sa;
        sigemptyset(&sa.sa_mask); sa.sa_flags = 0; sa.sa_handler = SIG_IGN;
        for (int sig = 1; sig < 65; sig++) {
            if (sig == SIGKILL || sig == SIGSTOP || sig == SIGCHLD) continue;
            sigaction(sig, &sa, NULL);
        }
        if (dup2(fds[0], 0) < 0) _exit(1);
        close_from(1);
        sigset_t none; sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        int count = 0;
        unsigned char buf[4096];
        size_t have = 0;
        for (;;) {
            ssize_t n = read(0, buf + have, sizeof buf - have);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            have += (size_t)n;
            size_t i = 0;
            for (; i + 4 <= have; i += 4) {
                int32_t v = (int32_t)((uint32_t)buf[i] | (uint32_t)buf[i + 1] << 8 | (uint32_t)buf[i + 2] << 16 | (uint32_t)buf[i + 3] << 24);
                if (v > 0) {
                    if (count < GUARD_CAPACITY) guard_groups[count++] = v;
                } else if (v < 0) {
                    for (int k = 0; k < count; k++) if (guard_groups[k] == -v) { guard_groups[k] = guard_groups[--count]; break; }
                }
            }
            for (size_t k = i; k < have; k++) buf[k - i] = buf[k];
            have -= i;
        }
        for (int k = 0; k < count; k++) kill(-guard_groups[k], SIGKILL);
        _exit(0);
    }
    int e = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(fds[0]);
    if (g < 0) { close(fds[1]); return e; }
    *pid = (int)g;
    *write_fd = fds[1];
    return 0;
}

/// The signals a spawned child must put back to their default action before its exec: those this process catches
/// (`SigCgt` of /proc/self/status: a handler means nothing after exec and must not run in a vfork child that
/// shares our memory), and SIGPIPE, SIGTERM and SIGINT if ignored (spool's own choices; other inherited "ignore"
/// dispositions, SIGHUP under nohup, stay). Read in the parent, so the child makes one call per such signal instead
/// of two per signal number. All signals when /proc cannot be read.
static uint64_t signals_to_reset(void) {
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ~(uint64_t)0;
    char buf[8192];
    size_t have = 0;
    for (;;) {
        ssize_t n = read(fd, buf + have, sizeof buf - 1 - have);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        have += (size_t)n;
        if (have == sizeof buf - 1) break;
    }
    close(fd);
    buf[have] = 0;
    uint64_t caught = 0, ignored = 0;
    int found = 0;
    for (char *line = buf; line && *line; ) {
        char *next = strchr(line, '\n');
        uint64_t *target = strncmp(line, "SigCgt:\t", 8) == 0 ? &caught : strncmp(line, "SigIgn:\t", 8) == 0 ? &ignored : NULL;
        if (target) {
            char *end = NULL;
            errno = 0;
            unsigned long long v = strtoull(line + 8, &end, 16);
            if (errno != 0 || end == line + 8 || (*end != '\n' && *end != 0)) return ~(uint64_t)0;
            *target = (uint64_t)v;
            found++;
        }
        line = next ? next + 1 : NULL;
    }
    if (found != 2) return ~(uint64_t)0;
    uint64_t mine = (1ULL << (SIGPIPE - 1)) | (1ULL << (SIGTERM - 1)) | (1ULL << (SIGINT - 1));
    return caught | (ignored & mine);
}

/// `/bin/sh -c cmd` as the leader of a new process group, registered with the guard (`guard_fd`, see above) before
/// its exec. Made with vfork, as posix_spawn does: all signals blocked around it, only async-signal-safe calls in it.
int spool_spawn_shell(int *pid, const char *cmd, int in_fd, int out_fd, int err_fd, char *const envp[], int guard_fd) {
    char *const argv[] = { "/bin/sh", "-c", (char *)cmd, NULL };
    uint64_t reset = signals_to_reset();
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    volatile int child_errno = 0;
    pid_t g = vfork();
    if (g == 0) {
        struct sigaction sa;
        sigemptyset(&sa.sa_mask); sa.sa_flags = 0; sa.sa_handler = SIG_DFL;
        for (int sig = 1; sig < 65; sig++) {
            if (sig == SIGKILL || sig == SIGSTOP || !(reset & (1ULL << (sig - 1)))) continue;
            sigaction(sig, &sa, NULL);
        }
        if (setpgid(0, 0) != 0) { child_errno = errno; _exit(127); }
        int32_t me = (int32_t)getpid();
        unsigned char msg[4] = { (unsigned char)me, (unsigned char)(me >> 8), (unsigned char)(me >> 16), (unsigned char)(me >> 24) };
        ssize_t w;
        do { w = write(guard_fd, msg, 4); } while (w < 0 && errno == EINTR);
        if (w != 4) { child_errno = w < 0 ? errno : EIO; _exit(127); }
        if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0) { child_errno = errno; _exit(127); }
        close_from(3);
        sigset_t none; sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execve("/bin/sh", argv, envp);
        child_errno = errno;
        _exit(127);
    }
    int e = g < 0 ? errno : child_errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (g < 0) return e;
    if (e != 0) {
        // It may have registered before failing: unregister it before it is reaped (and its pid can be reused).
        int32_t un = -(int32_t)g;
        unsigned char msg[4] = { (unsigned char)un, (unsigned char)(un >> 8), (unsigned char)(un >> 16), (unsigned char)(un >> 24) };
        ssize_t w;
        do { w = write(guard_fd, msg, 4); } while (w < 0 && errno == EINTR);
        int status;
        waitpid(g, &status, 0);
        return e;
    }
    *pid = (int)g;
    return 0;
}

int spool_spawn(int *pid, const char *path, char *const argv[], char *const envp[], const char *cwd,
                int in_fd, int out_fd, int err_fd) {
    sigset_t all; sigfillset(&all);
    return spawn_child(pid, path, argv, envp, cwd, in_fd, out_fd, err_fd, &all, 0);
}

int spool_open_tmpfile(int dirfd, uint32_t mode) {
    return openat(dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, (mode_t)mode);
}
int spool_link_fd(int fd, int newdirfd, const char *newpath) {
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    return linkat(AT_FDCWD, path, newdirfd, newpath, AT_SYMLINK_FOLLOW);
}
int spool_ofd_lock(int fd, int64_t offset, int exclusive, int wait) {
    struct flock fl = {0};
    fl.l_type = exclusive ? F_WRLCK : F_RDLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = (off_t)offset;
    fl.l_len = 1;
    fl.l_pid = 0;
    return fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl);
}
int spool_ofd_unlock(int fd, int64_t offset) {
    struct flock fl = {0};
    fl.l_type = F_UNLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = (off_t)offset;
    fl.l_len = 1;
    return fcntl(fd, F_OFD_SETLK, &fl);
}
int64_t spool_pread(int fd, void *buf, uint64_t count, int64_t offset) {
    return (int64_t)pread(fd, buf, (size_t)count, (off_t)offset);
}
int64_t spool_lseek_set(int fd, int64_t offset) { return (int64_t)lseek(fd, (off_t)offset, SEEK_SET); }

#ifndef SPOOL_COMMIT
#define SPOOL_COMMIT "unknown"
#endif
const char *spool_build_commit(void) { return SPOOL_COMMIT; }

void spool_malloc_trim(void) { malloc_trim(0); }
