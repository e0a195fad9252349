#define _GNU_SOURCE
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

static void on_parent_death(int sig) {
    (void)sig;
    kill(0, SIGKILL);  // the whole group: the handler, its children, and this guard
}

/// A handler must not outlive its consumer, however the consumer dies (SIGKILL, the OOM killer), or it keeps
/// its item's claim hostage and nobody enforces its time limit. So the handler runs under a guard: a fork of
/// ours that leads a new process group, asks the kernel for a signal when the thread that forked it dies
/// (PR_SET_PDEATHSIG), and on that signal kills its whole group. It then forks `/bin/sh -c cmd` into the group,
/// waits for it, and exits the way the handler did, so the consumer sees the handler's status on the guard's
/// pid. Between fork and exec only async-signal-safe calls are made (everything is prepared before the fork);
/// the guard closes every inherited descriptor first, so it never holds another item's lock.
int spool_spawn_shell(int *pid, const char *cmd, int in_fd, int out_fd, int err_fd, char *const envp[]) {
    char *const argv[] = { "/bin/sh", "-c", (char *)cmd, NULL };
    pid_t parent = getpid();
    pid_t g = fork();
    if (g < 0) return errno;
    if (g > 0) {
        // Also set the group from here, so a signal to the group right after we return cannot miss it.
        setpgid(g, g);
        *pid = (int)g;
        return 0;
    }
    // The guard.
    setpgid(0, 0);
    if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0) _exit(127);
    close_from(3);
    struct sigaction sa;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    sa.sa_handler = on_parent_death;
    sigaction(SIGUSR1, &sa, NULL);
    // The consumer stops a handler with SIGTERM (then SIGKILL) to the group: the guard stays to report how it ended.
    sa.sa_handler = SIG_IGN;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    struct sigaction inherited_hup;
    sigaction(SIGHUP, &sa, &inherited_hup);
    sigset_t none; sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (prctl(PR_SET_PDEATHSIG, SIGUSR1) != 0) _exit(127);
    if (getppid() != parent) kill(0, SIGKILL);  // the consumer died before the request took effect
    pid_t h = fork();
    if (h < 0) _exit(127);
    if (h == 0) {
        // The handler: default dispositions for what the guard changed and for what spool handles itself (a
        // disposition spool inherited, SIGHUP ignored under nohup say, was inherited by us and stays).
        sa.sa_handler = SIG_DFL;
        sigaction(SIGUSR1, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGPIPE, &sa, NULL);
        sigaction(SIGHUP, &inherited_hup, NULL);
        prctl(PR_SET_PDEATHSIG, 0);
        execve("/bin/sh", argv, envp);
        _exit(127);
    }
    // The guard keeps no end of the handler's pipes: its output ends when the handler's does.
    close(0); close(1); close(2);
    int status = 0;
    while (waitpid(h, &status, 0) < 0) {
        if (errno != EINTR) _exit(127);
    }
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        sa.sa_handler = SIG_DFL;
        sigaction(sig, &sa, NULL);
        kill(getpid(), sig);
        _exit(128 + sig);
    }
    _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 127);
}

int spool_spawn(int *pid, const char *path, char *const argv[], char *const envp[], const char *cwd,
                int in_fd, int out_fd, int err_fd) {
    sigset_t all; sigfillset(&all);
    return spawn_child(pid, path, argv, envp, cwd, in_fd, out_fd, err_fd, &all, 0);
}
