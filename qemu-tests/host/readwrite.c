/* readwriter: the multiubuntu image's file test program (armlet's own):
 *   readwriter -r FILE   read FILE to stdout
 *   readwriter -w FILE   append a line to FILE
 * Exit 0 on success, 1 with the error on failure. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[1], "-r") && strcmp(argv[1], "-w"))) {
        fprintf(stderr, "usage: readwriter -r|-w FILE\n");
        return 2;
    }
    int w = argv[1][1] == 'w';
    int fd = open(argv[2], w ? O_WRONLY | O_APPEND : O_RDONLY);
    if (fd < 0) {
        fprintf(stderr, "readwriter: %s: %s\n", argv[2], strerror(errno));
        return 1;
    }
    if (w) {
        const char line[] = "written by readwriter\n";
        if (write(fd, line, sizeof line - 1) < 0) {
            fprintf(stderr, "readwriter: %s: %s\n", argv[2], strerror(errno));
            return 1;
        }
    } else {
        char buf[4096];
        ssize_t n;
        while ((n = read(fd, buf, sizeof buf)) > 0)
            if (write(1, buf, (size_t)n) < 0)
                return 1;
    }
    close(fd);
    return 0;
}
