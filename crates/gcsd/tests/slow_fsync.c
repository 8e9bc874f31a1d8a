/* An LD_PRELOAD library for the fault tests (faults.rs): every fsync and fdatasync sleeps
 * SLOW_FSYNC_MS milliseconds (default 150) before it does its work, like a slow or overloaded
 * disk. It says so once on stderr, so a test can check that it was loaded. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static void slow_down(void) {
    static int announced;
    const char *ms = getenv("SLOW_FSYNC_MS");
    long delay = ms ? atol(ms) : 150;
    if (!announced) {
        announced = 1;
        fprintf(stderr, "slow fsync shim: %ld ms per fsync\n", delay);
    }
    struct timespec t = {delay / 1000, (delay % 1000) * 1000000L};
    while (nanosleep(&t, &t) != 0) {
    }
}

int fsync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    slow_down();
    return real(fd);
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    slow_down();
    return real(fd);
}
