/*
 * fault.c — the malloc wrapper behind fault.h.
 */
#include "fault.h"

#include <errno.h>
#include <stddef.h>

void *__real_malloc(size_t n);
void *__wrap_malloc(size_t n);

static int fail_in = -1; /* mallocs to let through before one fails; < 0: none */

void fault_malloc_fail_after(int n)
{
    fail_in = n;
}

void *__wrap_malloc(size_t n)
{
    if (fail_in >= 0 && fail_in-- == 0) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_malloc(n);
}
