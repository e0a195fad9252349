// LD_PRELOAD fault injection for the real binaries: makes the Nth call of one system call wrapper fail with a
// chosen errno (or, for write, write short). Environment:
//   FAULT_CALL   write | fsync | link | rename | open | setxattr
//   FAULT_NTH    which call fails (1 = the first one made after the process starts)
//   FAULT_COUNT  how many consecutive calls fail from there (default 1)
//   FAULT_ERRNO  the errno number (default 5, EIO); FAULT_SHORT=1 makes write return half of what was asked
// Only calls on paths under FAULT_ROOT (and, for fd calls, any fd) are counted.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>
#include <stdatomic.h>

static atomic_long calls;
static const char *want(void) { const char *c = getenv("FAULT_CALL"); return c ? c : ""; }
static int fire(const char *name, const char *path) {
    if (strcmp(want(), name) != 0) return 0;
    const char *root = getenv("FAULT_ROOT");
    if (path && root && strstr(path, root) == NULL && path[0] == '/') return 0;
    long n = atomic_fetch_add(&calls, 1) + 1;
    long nth = getenv("FAULT_NTH") ? atol(getenv("FAULT_NTH")) : 1;
    long count = getenv("FAULT_COUNT") ? atol(getenv("FAULT_COUNT")) : 1;
    if (n < nth || n >= nth + count) return 0;
    errno = getenv("FAULT_ERRNO") ? atoi(getenv("FAULT_ERRNO")) : EIO;
    return 1;
}
#define REAL(ret, name, ...) static ret (*real_##name)(__VA_ARGS__); if (!real_##name) real_##name = dlsym(RTLD_NEXT, #name)

ssize_t write(int fd, const void *buf, size_t n) {
    REAL(ssize_t, write, int, const void *, size_t);
    if (fd > 2 && fire("write", NULL)) {
        if (getenv("FAULT_SHORT") && n > 1) return real_write(fd, buf, n / 2);
        return -1;
    }
    return real_write(fd, buf, n);
}
int fsync(int fd) { REAL(int, fsync, int); if (fire("fsync", NULL)) return -1; return real_fsync(fd); }
int fdatasync(int fd) { REAL(int, fdatasync, int); if (fire("fsync", NULL)) return -1; return real_fdatasync(fd); }
int linkat(int a, const char *p, int b, const char *q, int f) {
    REAL(int, linkat, int, const char *, int, const char *, int);
    if (fire("link", NULL)) return -1;
    return real_linkat(a, p, b, q, f);
}
int renameat(int a, const char *p, int b, const char *q) {
    REAL(int, renameat, int, const char *, int, const char *);
    if (fire("rename", NULL)) return -1;
    return real_renameat(a, p, b, q);
}
int renameat2(int a, const char *p, int b, const char *q, unsigned int f) {
    REAL(int, renameat2, int, const char *, int, const char *, unsigned int);
    if (fire("rename", NULL)) return -1;
    return real_renameat2(a, p, b, q, f);
}
int fsetxattr(int fd, const char *name, const void *v, size_t n, int f) {
    REAL(int, fsetxattr, int, const char *, const void *, size_t, int);
    if (fire("setxattr", NULL)) return -1;
    return real_fsetxattr(fd, name, v, n, f);
}
int openat(int dirfd, const char *path, int flags, ...) {
    REAL(int, openat, int, const char *, int, ...);
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) { va_list ap; va_start(ap, flags); mode = va_arg(ap, int); va_end(ap); }
    // Files the spool creates: named (O_CREAT) or unnamed (O_TMPFILE, format 2's enqueue).
    if (((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE) && fire("open", path)) return -1;
    return real_openat(dirfd, path, flags, mode);
}
