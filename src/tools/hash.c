/*
 * hash.c — `omnigate hash`: BLAKE3 addresses of files, b3sum-style output.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cas/cas.h"
#include "tools/tools_oap.h"

#define HASH_READ_BYTES 65536

/* Hash everything readable from fd. Returns 0 or an errno value. */
static int hash_fd(int fd, struct cas_addr *out)
{
    static unsigned char buf[HASH_READ_BYTES];
    struct cas_hasher h;

    cas_hasher_init(&h);
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n == -1) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        if (n == 0)
            break;
        cas_hasher_update(&h, buf, (size_t)n);
    }
    cas_hasher_final(&h, out);
    return 0;
}

int tool_hash_main(int argc, char **argv)
{
    char hex[CAS_ADDR_CHARS + 1];
    int failed = 0;

    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE... (- for stdin)\n", argv[0]);
        return 2;
    }
    cas_init();
    for (int i = 1; i < argc; i++) {
        struct cas_addr a;
        int fd = 0, err;

        if (strcmp(argv[i], "-") != 0) {
            fd = open(argv[i], O_RDONLY | O_CLOEXEC);
            if (fd == -1) {
                err = errno;
                fprintf(stderr, "%s: %s: %s\n", argv[0], argv[i], strerror(err));
                failed = 1;
                continue;
            }
        }
        err = hash_fd(fd, &a);
        if (fd != 0)
            close(fd);
        if (err) {
            fprintf(stderr, "%s: %s: %s\n", argv[0], argv[i], strerror(err));
            failed = 1;
            continue;
        }
        printf("%s  %s\n", cas_addr_format(&a, hex), argv[i]);
    }
    if (fflush(stdout) == EOF)
        failed = 1;
    return failed;
}
