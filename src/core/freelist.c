/*
 * freelist.c — bounded per-worker block caches.
 */
#include "core/freelist.h"

#include <stdlib.h>

#if defined(__SANITIZE_ADDRESS__)
#define FREELIST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FREELIST_ASAN 1
#endif
#endif

#ifdef FREELIST_ASAN
#include <sanitizer/asan_interface.h>
/* All but the link word: a write into a cached block is a use after put. */
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((char *)(p) + sizeof(void *), (n) - sizeof(void *))
#define UNPOISON(p, n)                                                                             \
    ASAN_UNPOISON_MEMORY_REGION((char *)(p) + sizeof(void *), (n) - sizeof(void *))
#else
#define POISON(p, n)   ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

void freelist_init(struct freelist *fl, unsigned max)
{
    fl->head = NULL;
    fl->size = 0;
    fl->n = 0;
    fl->max = max;
}

void freelist_release(struct freelist *fl)
{
    while (fl->head) {
        void *blk = fl->head;
        UNPOISON(blk, fl->size);
        fl->head = *(void **)blk;
        free(blk);
    }
    fl->n = 0;
}

void *freelist_get(struct freelist *fl, size_t size)
{
    if (size < sizeof(void *))
        size = sizeof(void *);
    if (size != fl->size) {
        freelist_release(fl); /* cached blocks have the old size */
        fl->size = size;
    }
    void *blk = fl->head;
    if (blk == NULL)
        return malloc(size);
    UNPOISON(blk, size);
    fl->head = *(void **)blk;
    fl->n--;
    return blk;
}

void freelist_put(struct freelist *fl, void *blk, size_t size)
{
    if (blk == NULL)
        return;
    if (size < sizeof(void *))
        size = sizeof(void *);
    if (size != fl->size || fl->n >= fl->max) {
        free(blk);
        return;
    }
    *(void **)blk = fl->head;
    fl->head = blk;
    fl->n++;
    POISON(blk, size);
}
