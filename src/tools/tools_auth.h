/*
 * tools_auth — the `omnigate mint` and `omnigate verify` sub-commands
 * (DESIGN §7): issue and check capability tokens with the configured root
 * keys, for operators and tests.
 *
 *   omnigate mint --root-keys FILE --key-id K --tenant T --scope S[,S]
 *                 --ttl DUR [--route P] [--method M[,M]] [--location L]
 *                 [--v1] [--now UNIX]
 *       prints the token (v2 unless --v1) and a newline on stdout.
 *   omnigate verify --root-keys FILE [--method M] [--path P] [--tenant T]
 *                   [--now UNIX] TOKEN|-
 *       prints one JSON line: {"ok":true,"tenant":..,"scopes":[..],
 *       "key_id":..,"expires":..} or {"ok":false,"error":..,"reason":..}.
 *       "-" reads the token from stdin (keeps it out of the process list).
 *
 * DUR is N with an optional unit s, m, h or d. --now replaces the clock
 * (tests). Exit status: 0 success, 1 refused token or mint failure, 2 usage.
 */
#ifndef TOOLS_TOOLS_AUTH_H
#define TOOLS_TOOLS_AUTH_H

/* argv[0] is the sub-command name ("mint" / "verify"). */
int tool_mint_main(int argc, char **argv);
int tool_verify_main(int argc, char **argv);

#endif
