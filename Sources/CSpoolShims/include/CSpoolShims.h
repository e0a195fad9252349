// Linux calls that Swift's Glibc module does not export. Each is a thin pass-through:
// error handling (errno, EINTR) stays in Swift, in SpoolSystem. The header names only plain C types,
// so that it does not clash with the system headers Glibc already imported.
#ifndef CSPOOLSHIMS_H
#define CSPOOLSHIMS_H
#include <stdint.h>

int spool_errno(void);
void spool_set_errno(int e);

/// rename that fails with EEXIST instead of replacing the target.
int spool_renameat_noreplace(int olddirfd, const char *oldpath, int newdirfd, const char *newpath);
/// Flushes the whole file system holding `fd` (data, metadata, device cache); reports writeback errors (Linux >= 5.8).
int spool_syncfs(int fd);
/// Starts writeback of a file's dirty pages without waiting.
int spool_sync_file_range_write(int fd);
/// Sets only the modification time of an open file (nanoseconds since the epoch).
int spool_futimens_mtime(int fd, int64_t sec, int64_t nsec);

/// Extended attributes of an open file (0 / byte count, or -1 with errno).
int spool_fsetxattr(int fd, const char *name, const void *value, uint64_t size);
int64_t spool_fgetxattr(int fd, const char *name, void *value, uint64_t size);
int64_t spool_lgetxattr(const char *path, const char *name, void *value, uint64_t size);
extern const int SPOOL_ENODATA, SPOOL_ENOTSUP, SPOOL_E2BIG, SPOOL_ERANGE;

int spool_epoll_create(void);
int spool_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data);
/// Waits for events; writes up to `max` (<= 256) pairs of (events, data) into the two arrays.
int spool_epoll_wait(int epfd, uint32_t *events, uint64_t *datas, int max, int timeout_ms);
extern const uint32_t SPOOL_EPOLLIN, SPOOL_EPOLLOUT, SPOOL_EPOLLERR, SPOOL_EPOLLHUP, SPOOL_EPOLLRDHUP, SPOOL_EPOLLET;
extern const int SPOOL_EPOLL_CTL_ADD, SPOOL_EPOLL_CTL_MOD, SPOOL_EPOLL_CTL_DEL;

int spool_eventfd(void);
int spool_accept4(int fd);
int spool_pipe_cloexec(int fds[2]);
extern const int SPOOL_O_CLOEXEC;

int spool_inotify_init(void);
int spool_inotify_add_watch(int fd, const char *path, uint32_t mask);
extern const uint32_t SPOOL_IN_MOVED_TO, SPOOL_IN_CREATE, SPOOL_IN_ATTRIB;

/// Installs a handler for SIGTERM and SIGINT that writes to `fd` (an eventfd), unblocks both signals in the
/// calling thread, and ignores SIGPIPE. Call it before starting threads. Returns 0 or -1.
int spool_install_termination_pipe(int fd);
void spool_ignore_sigpipe(void);
/// Makes SIGHUP write to `fd` (an eventfd) instead of ending the process, and unblocks it in the calling thread.
int spool_install_hangup_pipe(int fd);

/// 1 if child `pid` has exited (left as a zombie: not reaped, so its pid and process group id cannot be
/// reused yet), 0 if it is still running, -1 on error.
int spool_exited_nowait(int pid);
/// `pidfd_open(2)` (Linux 5.3+): a close-on-exec descriptor that becomes readable when `pid` exits; -1 if unavailable.
int spool_pidfd_open(int pid);

/// Wait-status decoding (the macros are not visible to Swift).
int spool_wifexited(int s);
int spool_wexitstatus(int s);
int spool_wifsignaled(int s);
int spool_wtermsig(int s);

/// Spawns `/bin/sh -c cmd` with stdin/stdout/stderr on the given fds and no other descriptor, in a new process
/// group, with an empty signal mask and SIGPIPE/SIGTERM/SIGINT at their defaults, so the handler runs in a
/// normal environment. Returns 0 or an errno.
int spool_spawn_shell(int *pid, const char *cmd, int in_fd, int out_fd, int err_fd, char *const envp[], int guard_fd);
int spool_start_guard(int *pid, int *write_fd);

/// Spawns `path` with `argv`/`envp`, stdin/stdout/stderr on the given fds, in `cwd` if not NULL, with every
/// other descriptor closed, an empty signal mask and default dispositions. Returns 0 or an errno.
int spool_spawn(int *pid, const char *path, char *const argv[], char *const envp[], const char *cwd,
                int in_fd, int out_fd, int err_fd);

/// `openat(dir, ".", O_TMPFILE|O_RDWR|O_CLOEXEC)`: a file with no name until `spool_link_fd` gives it one.
int spool_open_tmpfile(int dirfd, uint32_t mode);
/// `linkat` of an open file (by /proc/self/fd/N, AT_SYMLINK_FOLLOW): names an O_TMPFILE without privileges.
int spool_link_fd(int fd, int newdirfd, const char *newpath);
/// Open-file-description byte-range locks (F_OFD_SETLK[W]) on the one byte at `offset`: held by the open file
/// description (inherited across fork and exec, dropped when its last descriptor closes), independent of flock.
int spool_ofd_lock(int fd, int64_t offset, int exclusive, int wait);
int spool_ofd_unlock(int fd, int64_t offset);
int64_t spool_pread(int fd, void *buf, uint64_t count, int64_t offset);
int64_t spool_lseek_set(int fd, int64_t offset);
/* The commit this binary was built from: Packaging/build.sh passes -Xcc -DSPOOL_COMMIT='"<hash>"'; else "unknown". */
const char *spool_build_commit(void);
/* malloc_trim(0): gives freed heap memory back to the kernel after a large, short-lived allocation. */
void spool_malloc_trim(void);

#endif
