// Negative control for the power-cut test: an LD_PRELOAD library that makes fsync, fdatasync and syncfs
// succeed without flushing anything. With it, the power-cut test must find acknowledged webhooks lost;
// if it did not, the test could not tell a durable spool from one that only claims to be.
#define _GNU_SOURCE
int fsync(int fd) { (void)fd; return 0; }
int fdatasync(int fd) { (void)fd; return 0; }
int syncfs(int fd) { (void)fd; return 0; }
