/*
 * fault.h — allocation failures on demand, for the tests of out-of-memory
 * paths. The unit binary is linked with -Wl,--wrap=malloc (Makefile), so
 * every malloc() made by the project's own code reaches fault.c; the
 * shared libraries (libc, libuv, Criterion) allocate as usual.
 */
#ifndef TESTS_UNIT_FAULT_H
#define TESTS_UNIT_FAULT_H

/* The malloc after the next n succeed fails once (ENOMEM); n < 0 disarms.
 * Criterion runs each test in its own process, so this never outlives the
 * test that sets it. */
void fault_malloc_fail_after(int n);

#endif
