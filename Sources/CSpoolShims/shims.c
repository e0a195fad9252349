#define _GNU_SOURCE
#include <malloc.h>
#include "CSpoolShims.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
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

/// The guard that runs each handler (see spool_spawn_shell): a tiny `sh` script, so that it costs one exec of
/// `/bin/sh` and one fork of that small shell, not a fork of the consumer. USR1 is its parent-death signal: the
/// whole process group goes. TERM, INT and HUP (what the consumer's timeout and a terminal send to the group)
/// leave it alone, so it stays to report how the handler ended, as its own exit: the same status, or the same
/// signal raised on itself. The handler runs in a subshell with those signals back to default and its standard
/// input the payload (saved on fd 3 first: an asynchronous command's own stdin is /dev/null before any
/// redirection), no descriptor beyond 0-2, and the command's
/// text in no variable and no positional parameter, as with `sh -c`.
static const char guard_script[] =
    "trap 'kill -KILL 0' USR1\n"
    "trap '' TERM INT HUP\n"
    "__spool_cmd=$1; shift\n"
    "exec 3<&0\n"
    "(trap - TERM INT HUP; eval \"unset __spool_cmd; $__spool_cmd\") <&3 3<&- &\n"
    "exec 0</dev/null 1>/dev/null 2>&1 3<&-\n"
    "wait $!\n"
    "s=$?\n"
    "if [ $s -gt 128 ] && sig=$(kill -l $s 2>/dev/null); then trap - TERM INT HUP; kill -s \"$sig\" $$; fi\n"
    "exit $s\n";

/// A handler must not outlive its consumer, however the consumer dies (SIGKILL, the OOM killer), or it keeps
/// its item's claim hostage and nobody enforces its time limit. So the handler runs under a guard (the script
/// above) that leads a new process group and was asked, before its exec, to get USR1 when the thread that
/// started it dies (PR_SET_PDEATHSIG, which survives execve); its trap then kills the whole group. The child is
/// made with vfork, as posix_spawn does: all signals blocked around it, and only async-signal-safe calls in it.
int spool_spawn_shell(int *pid, const char *cmd, int in_fd, int out_fd, int err_fd, char *const envp[]) {
    char *const argv[] = { "/bin/sh", "-c", (char *)guard_script, "/bin/sh", (char *)cmd, NULL };
    pid_t parent = getpid();
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    volatile int child_errno = 0;
    pid_t g = vfork();
    if (g == 0) {
        // Handlers of ours mean nothing after exec and must not run in this child (it shares our memory): back
        // to default. Dispositions spool inherited as "ignore" (SIGHUP under nohup) stay, except what spool
        // handles itself.
        struct sigaction sa, cur;
        for (int sig = 1; sig < 65; sig++) {
            if (sig == SIGKILL || sig == SIGSTOP) continue;
            if (sigaction(sig, NULL, &cur) != 0) continue;
            int mine = sig == SIGPIPE || sig == SIGTERM || sig == SIGINT;
            if (cur.sa_handler != SIG_DFL && (cur.sa_handler != SIG_IGN || mine)) {
                sigemptyset(&sa.sa_mask); sa.sa_flags = 0; sa.sa_handler = SIG_DFL;
                sigaction(sig, &sa, NULL);
            }
        }
        if (setpgid(0, 0) != 0 || dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0) { child_errno = errno; _exit(127); }
        close_from(3);
        if (prctl(PR_SET_PDEATHSIG, SIGUSR1) != 0) { child_errno = errno; _exit(127); }
        if (getppid() != parent) _exit(127);  // the consumer died before the request took effect
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
