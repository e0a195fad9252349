// The durability floor: per item, write 1 KiB to a new file, fsync it, rename it into place, fsync the
// directory; N threads at once. Prints items/second and per-item latency percentiles (microseconds).
// Usage: floor DIR THREADS SECONDS [FILES_PER_ITEM]  (2: also a small metadata file, as spool writes;
//        0: no flush at all, but spool's own per-item file operations: create in tmp/, flock, write, a
//        177-byte user.spool.meta attribute, link into keys/, rename into new/, unlock, close. That is the
//        ceiling the on-disk format puts on one thread, whatever the flushing.)
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

static const char *dir;
static double seconds;
static int dirfd_new;
static int files_per_item = 1;
typedef struct { int id; long count; double *lat; long cap; } worker;

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }

static void *run(void *arg) {
    worker *w = arg;
    char buf[1024]; memset(buf, 'x', sizeof buf);
    char tmp[4096], dst[4096];
    double end = now() + seconds;
    while (now() < end) {
        double t0 = now();
        snprintf(tmp, sizeof tmp, "%s/tmp/%d-%ld", dir, w->id, w->count);
        snprintf(dst, sizeof dst, "%s/new/%d-%ld", dir, w->id, w->count);
        if (files_per_item == 0) {
            static const char meta[] = "{\"v\":1,\"key\":\"ux32069-1-10\",\"received_at\":\"2026-11-29T07:16:31.014Z\","
                "\"received_at_ns\":1795936591014372037,\"size\":976,\"attempts\":0,\"headers\":{\"content-type\":\"application/json\"}}\n";
            char key[4096];
            snprintf(key, sizeof key, "%s/keys/%d-%ld", dir, w->id, w->count);
            int fd = open(tmp, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0600);
            if (fd < 0 || flock(fd, LOCK_EX) != 0 || write(fd, buf, sizeof buf) != sizeof buf
                || fsetxattr(fd, "user.spool.meta", meta, sizeof meta - 1, 0) != 0
                || link(tmp, key) != 0 || rename(tmp, dst) != 0 || flock(fd, LOCK_UN) != 0 || close(fd) != 0) { perror("ops"); exit(1); }
            if (w->count < w->cap) w->lat[w->count] = (now() - t0) * 1e6;
            w->count++;
            continue;
        }
        int fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
        if (fd < 0 || write(fd, buf, sizeof buf) != sizeof buf || fsync(fd) != 0 || close(fd) != 0) { perror("write"); exit(1); }
        if (files_per_item > 1) {
            char mtmp[4096], mdst[4096];
            snprintf(mtmp, sizeof mtmp, "%s/tmp/%d-%ld.m", dir, w->id, w->count);
            snprintf(mdst, sizeof mdst, "%s/new/%d-%ld.m", dir, w->id, w->count);
            int m = open(mtmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
            if (m < 0 || write(m, buf, 200) != 200 || fsync(m) != 0 || close(m) != 0 || rename(mtmp, mdst) != 0) { perror("meta"); exit(1); }
        }
        if (rename(tmp, dst) != 0 || fsync(dirfd_new) != 0) { perror("rename"); exit(1); }
        if (w->count < w->cap) w->lat[w->count] = (now() - t0) * 1e6;
        w->count++;
    }
    return NULL;
}

static int cmp(const void *a, const void *b) { double x = *(double *)a, y = *(double *)b; return x < y ? -1 : x > y; }

int main(int argc, char **argv) {
    if (argc != 4 && argc != 5) { fprintf(stderr, "usage: floor DIR THREADS SECONDS [FILES_PER_ITEM]\n"); return 64; }
    dir = argv[1]; int n = atoi(argv[2]); seconds = atof(argv[3]);
    if (argc == 5) files_per_item = atoi(argv[4]);
    char p[4096];
    snprintf(p, sizeof p, "%s/tmp", dir); mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/keys", dir); mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/new", dir); mkdir(p, 0700);
    dirfd_new = open(p, O_RDONLY | O_DIRECTORY);
    pthread_t th[256]; worker ws[256];
    for (int i = 0; i < n; i++) { ws[i] = (worker){ i, 0, malloc(sizeof(double) * 1000000), 1000000 }; pthread_create(&th[i], NULL, run, &ws[i]); }
    long total = 0; long m = 0;
    double *all = malloc(sizeof(double) * 2000000);
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        total += ws[i].count;
        for (long j = 0; j < ws[i].count && j < ws[i].cap && m < 2000000; j++) all[m++] = ws[i].lat[j];
    }
    qsort(all, m, sizeof(double), cmp);
    printf("{\"files_per_item\":%d,\"threads\":%d,\"items\":%ld,\"per_second\":%.1f,\"p50_us\":%.0f,\"p99_us\":%.0f}\n",
           files_per_item, n, total, total / seconds, m ? all[m / 2] : 0, m ? all[(long)(m * 0.99)] : 0);
    return 0;
}
