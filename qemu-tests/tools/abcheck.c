/* abcheck: watch two files while a policy update swaps which one is blocked.
 *
 *   abcheck [options] FILE_A FILE_B
 *     --ready FILE      create FILE once the start state (A denied, B readable) was seen
 *                       --settle times in a row (so the caller knows when to swap)
 *     --settle N        default 200
 *     --after N         iterations to keep going once the end state (A readable, B denied)
 *                       was first seen; default 2000
 *     --max-ms N        give up (exit 1) after N ms without reaching the end; default 20000
 *     --pause-us N      sleep between iterations (lets the agent run on a 1-CPU VM); default 100
 *
 * Each iteration opens A and B (O_RDONLY, closed at once; the order alternates) and
 * classifies the pair: old (A denied, B open), new (A open, B denied), both-denied (the two
 * opens straddled the swap), both-open (NEITHER enforced: a gap in the update). A "denial" is
 * EACCES or EPERM; any other error stops the check. It fails (exit 1) on any both-open
 * iteration, on an old state after the first new one (the update went back), when the start
 * state is not old, or when the end state is never reached. Exit 0 otherwise. The summary
 * line counts every class. Built static by qemu-tests/run (qemu-tests/tools/). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long long now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* 1 = opened, 0 = denied, -1 = other error (printed). */
static int try_open(const char *p)
{
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        close(fd);
        return 1;
    }
    if (errno == EACCES || errno == EPERM)
        return 0;
    printf("abcheck: open %s: %s\n", p, strerror(errno));
    return -1;
}

int main(int argc, char **argv)
{
    const char *ready = NULL, *a = NULL, *b = NULL;
    long settle = 200, after = 2000, max_ms = 20000, pause_us = 100;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (i + 1 < argc && !strcmp(o, "--ready")) ready = argv[++i];
        else if (i + 1 < argc && !strcmp(o, "--settle")) settle = atol(argv[++i]);
        else if (i + 1 < argc && !strcmp(o, "--after")) after = atol(argv[++i]);
        else if (i + 1 < argc && !strcmp(o, "--max-ms")) max_ms = atol(argv[++i]);
        else if (i + 1 < argc && !strcmp(o, "--pause-us")) pause_us = atol(argv[++i]);
        else if (!a) a = o;
        else if (!b) b = o;
        else a = NULL, i = argc;
    }
    if (!a || !b) {
        fprintf(stderr, "usage: abcheck [--ready FILE] [--settle N] [--after N] [--max-ms N] "
                        "[--pause-us N] FILE_A FILE_B\n");
        return 2;
    }
    long long t0 = now_us(), t_ready = 0, t_new = 0, t_last_old = 0;
    long n = 0, old = 0, neu = 0, both_denied = 0, both_open = 0, went_back = 0, streak = 0;
    long since_new = 0;
    int first_state = -1;
    const char *why = NULL;
    for (;;) {
        int ra, rb;
        if (n & 1) {
            rb = try_open(b);
            ra = try_open(a);
        } else {
            ra = try_open(a);
            rb = try_open(b);
        }
        if (ra < 0 || rb < 0) {
            why = "unexpected open error";
            break;
        }
        n++;
        int st = (ra ? 1 : 0) | (rb ? 2 : 0); /* 2 old, 1 new, 0 both denied, 3 both open */
        if (first_state < 0)
            first_state = st;
        switch (st) {
        case 2:
            old++;
            t_last_old = now_us();
            if (t_new)
                went_back++;
            break;
        case 1:
            neu++;
            if (!t_new)
                t_new = now_us();
            break;
        case 0:
            both_denied++;
            break;
        default:
            both_open++;
            break;
        }
        if (first_state != 2) {
            why = "the start state is not 'A denied, B readable'";
            break;
        }
        if (!t_ready) {
            streak = st == 2 ? streak + 1 : 0;
            if (streak >= settle) {
                t_ready = now_us();
                if (ready) {
                    int fd = open(ready, O_WRONLY | O_CREAT | O_TRUNC, 0644);
                    if (fd >= 0)
                        close(fd);
                }
            }
        }
        if (t_new && ++since_new > after)
            break;
        if (now_us() - t0 > max_ms * 1000LL) {
            why = t_ready ? "the end state 'A readable, B denied' was never reached"
                          : "the start state never settled";
            break;
        }
        if (pause_us > 0)
            usleep((useconds_t)pause_us);
    }
    long long t_end = now_us();
    if (!why && both_open)
        why = "both files were readable at the same time (a gap in the update)";
    if (!why && went_back)
        why = "the old state came back after the new one was seen";
    printf("abcheck: %ld iterations in %lld ms: old %ld, both-denied %ld, new %ld, "
           "both-open %ld, old-after-new %ld\n",
           n, (t_end - t0) / 1000, old, both_denied, neu, both_open, went_back);
    if (t_ready && t_new)
        printf("abcheck: swap seen %lld ms after ready; last old state %lld ms before the "
               "first new one\n",
               (t_new - t_ready) / 1000, (t_new - t_last_old) / 1000);
    if (why) {
        printf("abcheck: FAIL: %s\n", why);
        return 1;
    }
    printf("abcheck: OK: never both readable; switched once, for good\n");
    return 0;
}
