/* qemu-tests/bench-prog/bench.c: the micro-benchmark loops of qemu-tests/bench.
 *
 *   bench open N PATH   N x (open(PATH, O_RDONLY) + close)
 *   bench exec N PATH   N x (fork + execve(PATH) + waitpid); PATH must exit 0
 *
 * Runs max(N/100, 10) untimed warm-up iterations first, then prints one line
 *   OPS=<N> NS=<total nanoseconds, CLOCK_MONOTONIC>
 * and exits 0; on any failed iteration prints an error on stderr and exits 1.
 * Built static (musl or glibc) for the guest arch by qemu-tests/bench. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int do_open(long n, const char *path)
{
    for (long i = 0; i < n; i++) {
        int fd = open(path, O_RDONLY);
        if (fd < 0) {
            fprintf(stderr, "bench: open %s: %s\n", path, strerror(errno));
            return -1;
        }
        close(fd);
    }
    return 0;
}

static int do_exec(long n, const char *path)
{
    char *argv[] = {(char *)path, NULL};
    char *envp[] = {NULL};
    for (long i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            fprintf(stderr, "bench: fork: %s\n", strerror(errno));
            return -1;
        }
        if (pid == 0) {
            execve(path, argv, envp);
            _exit(127);
        }
        int st;
        if (waitpid(pid, &st, 0) != pid) {
            fprintf(stderr, "bench: waitpid: %s\n", strerror(errno));
            return -1;
        }
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "bench: %s exited with status 0x%x\n", path, st);
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: bench open|exec N PATH\n");
        return 2;
    }
    long n = atol(argv[2]);
    const char *path = argv[3];
    int (*fn)(long, const char *);
    if (strcmp(argv[1], "open") == 0)
        fn = do_open;
    else if (strcmp(argv[1], "exec") == 0)
        fn = do_exec;
    else {
        fprintf(stderr, "bench: unknown test '%s' (open|exec)\n", argv[1]);
        return 2;
    }
    if (n <= 0) {
        fprintf(stderr, "bench: N must be positive\n");
        return 2;
    }
    long warm = n / 100 < 10 ? 10 : n / 100;
    if (fn(warm, path) != 0)
        return 1;
    long long t0 = now_ns();
    if (fn(n, path) != 0)
        return 1;
    long long t1 = now_ns();
    printf("OPS=%ld NS=%lld\n", n, t1 - t0);
    return 0;
}
