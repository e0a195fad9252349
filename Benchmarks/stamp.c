// A handler for latency measurements: prints "$SPOOL_KEY <CLOCK_REALTIME ns>" the moment it starts.
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
int main(void) {
    struct timespec t; clock_gettime(CLOCK_REALTIME, &t);
    const char *k = getenv("SPOOL_KEY");
    printf("%s %lld\n", k ? k : "-", (long long)t.tv_sec * 1000000000LL + t.tv_nsec);
    return 0;
}
