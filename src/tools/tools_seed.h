/*
 * tools_seed.h — `omnigate seed`: load the demo data set into remote
 * downstream services (macronode) over OAP/1.
 *
 *   omnigate seed --index ADDR --storage ADDR --mailbox ADDR [--timeout-ms N]
 *
 * ADDR is oap://HOST:PORT, HOST:PORT or unix:/path. Every operation of
 * demo_generate() is sent to its service and must succeed (status < 400).
 * On success prints one JSON line
 *   {"seeded":true,"index":{"ops":N,"bytes":B},"storage":{..},"mailbox":{..}}
 * (bytes = request body bytes sent) and returns 0; a refused operation or a
 * transport failure prints a message naming the operation on stderr and
 * returns 1; a usage error returns 2.
 */
#ifndef TOOLS_TOOLS_SEED_H
#define TOOLS_TOOLS_SEED_H

/* argv[0] is the sub-command name ("seed"). */
int tool_seed_main(int argc, char **argv);

#endif
