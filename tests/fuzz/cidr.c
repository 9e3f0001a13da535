/*
 * cidr.c — libFuzzer target for the trusted proxy list and X-Forwarded-For
 * parsers (src/core/cidr.c). Byte 0 chooses: even, the input is a
 * trusted_proxies value (NUL-terminated copy); odd, an X-Forwarded-For
 * value (exactly size - 1 bytes, no terminator: an over-read is caught by
 * ASan). A parsed set has clean networks that match their own address.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/cidr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    char *s = malloc(size);
    if (s == NULL)
        return 0;
    memcpy(s, data + 1, size - 1);
    if (data[0] & 1) {
        uint8_t a[16];
        int k = cidr_forwarded_for(s, size - 1, a);
        if (k != -1 && k != 4 && k != 16)
            abort();
    } else {
        struct cidr_set set;
        s[size - 1] = '\0';
        if (cidr_set_parse(s, &set) == 0) {
            if (set.n < 0 || set.n > CIDR_SET_MAX)
                abort();
            for (int i = 0; i < set.n; i++) {
                const struct cidr *c = &set.net[i];
                if ((c->len != 4 && c->len != 16) || c->bits > c->len * 8 ||
                    !cidr_set_match(&set, c->addr, c->len))
                    abort();
            }
        }
    }
    free(s);
    return 0;
}
