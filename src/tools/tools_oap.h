/*
 * tools_oap.h — offline subcommands built on liboap and libcas.
 *
 * Both follow main()'s contract: argv[0] is the subcommand name, the return
 * value is the process exit status.
 */
#ifndef TOOLS_TOOLS_OAP_H
#define TOOLS_TOOLS_OAP_H

/* `omnigate hash FILE...`: prints "b3:<hex>  FILE" per file ("-" = stdin),
 * reading 64 KiB at a time. Errors go to stderr per file; returns 1 when any
 * file failed, 2 on usage error, else 0. */
int tool_hash_main(int argc, char **argv);

/* `omnigate oap-dump`: decodes raw OAP/1 bytes from stdin and prints one JSON
 * line per frame; on a decode error prints {"error":"<name>","offset":N} and
 * returns 1. Returns 2 on a read error, else 0. */
int tool_oap_dump_main(int argc, char **argv);

/* `omnigate verify-range ADDR FIRST-LAST[/SIZE] FILE (--outboard FILE |
 * --storage ADDR)`: checks a downloaded range against the address with the
 * object's outboard. Returns 0 (every byte checked), 1 (a mismatch), 2
 * (usage or I/O), 3 (good as far as checked; some bytes were in groups the
 * range covers only in part). */
int tool_verify_range_main(int argc, char **argv);

#endif
