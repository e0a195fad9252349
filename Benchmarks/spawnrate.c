// How many `/bin/sh -c true` this machine starts and reaps per second, with N spawners in parallel.
// Usage: spawnrate SECONDS N
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
extern char **environ;
static double secs; static long counts[64];
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
static void *run(void *a) {
    long i = (long)a; double end = now() + secs;
    char *argv[] = { "/bin/sh", "-c", "true", NULL };
    while (now() < end) { pid_t p; if (posix_spawn(&p, "/bin/sh", NULL, NULL, argv, environ) == 0) { int s; waitpid(p, &s, 0); counts[i]++; } }
    return NULL;
}
int main(int argc, char **argv) {
    secs = atof(argv[1]); int n = atoi(argv[2]); pthread_t th[64];
    for (long i = 0; i < n; i++) pthread_create(&th[i], NULL, run, (void *)i);
    long total = 0; for (int i = 0; i < n; i++) { pthread_join(th[i], NULL); total += counts[i]; }
    printf("{\"spawners\":%d,\"per_second\":%.1f}\n", n, total / secs);
    return 0;
}
