/*
 * main.c — arguments, configuration, subcommands; then the server.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cas/cas.h"
#include "config/config.h"
#include "net/lifecycle.h"
#include "ops/health.h"
#include "tools/tools_auth.h"
#include "tools/tools_oap.h"
#include "version.h"

extern char **environ;

static const struct route ROUTES[] = {
    {"/healthz", M_GET | M_HEAD, health_on_healthz, 0},
    {"/readyz", M_GET | M_HEAD, health_on_readyz, 0},
};

struct subcommand {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
};

static const struct subcommand SUBCOMMANDS[] = {
    {"hash", tool_hash_main, "print the b3: address of each FILE (- for stdin)"},
    {"oap-dump", tool_oap_dump_main, "decode OAP/1 frames from stdin as JSON lines"},
    {"mint", tool_mint_main, "issue a capability token from a root key file"},
    {"verify", tool_verify_main, "verify a capability token and print its caveats"},
    {NULL, NULL, NULL},
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: omnigate [--config FILE] [--bind HOST:PORT] [--admin HOST:PORT]\n"
            "                [--workers N] [--<limit> VALUE]... [--demo] [--check-config]\n"
            "       omnigate --help | --version\n"
            "       omnigate <subcommand> [args]\n\n"
            "Subcommands:\n");
    for (const struct subcommand *s = SUBCOMMANDS; s->name; s++)
        fprintf(f, "  %-10s %s\n", s->name, s->help);
    fprintf(f, "\nSettings (flag, [section] key = default, environment):\n");
    config_print_help(f);
}

struct opts {
    struct config_args args;
    bool check_only, demo;
};

static int parse_args(int argc, char **argv, struct opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        if (strcmp(a, "--version") == 0) {
            printf("omnigate %s\n", OMNIGATE_VERSION);
            exit(0);
        }
        if (strcmp(a, "--check-config") == 0) {
            o->check_only = true;
            continue;
        }
        if (strcmp(a, "--demo") == 0) {
            o->demo = true;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "omnigate: unexpected argument '%s' (see --help)\n", a);
            return -1;
        }
        const char *name = a + 2, *val = NULL;
        char key[64];
        const char *eq = strchr(name, '=');
        size_t kl = eq ? (size_t)(eq - name) : strlen(name);
        if (kl >= sizeof(key)) {
            fprintf(stderr, "omnigate: unknown flag '%s' (see --help)\n", a);
            return -1;
        }
        memcpy(key, name, kl);
        key[kl] = '\0';
        if (eq)
            val = eq + 1;
        else if (i + 1 < argc)
            val = argv[++i];
        else {
            fprintf(stderr, "omnigate: flag --%s needs a value\n", key);
            return -1;
        }
        if (strcmp(key, "config") == 0) {
            o->args.config_path = val;
            continue;
        }
        const struct config_row *row = config_row_find(key);
        if (row == NULL || strchr(key, '_') != NULL) {
            fprintf(stderr, "omnigate: unknown flag '--%s' (see --help)\n", key);
            return -1;
        }
        if (o->args.n >= sizeof(o->args.set) / sizeof(o->args.set[0])) {
            fprintf(stderr, "omnigate: too many flags\n");
            return -1;
        }
        o->args.set[o->args.n].row = row;
        o->args.set[o->args.n].value = val;
        o->args.n++;
    }
    return 0;
}

static void print_banner(const struct og_config *cfg, bool demo)
{
    printf("omnigate %s (micronode)\n"
           "  service  http://%s\n"
           "  admin    http://%s  (/metrics, /healthz, /readyz)\n\n"
           "Try:\n"
           "  curl -s http://%s/healthz\n"
           "  curl -s http://%s/readyz\n"
           "  curl -s http://%s/metrics | head -30\n",
           OMNIGATE_VERSION, cfg->bind, cfg->admin, cfg->bind, cfg->admin, cfg->admin);
    if (demo)
        printf("\n(--demo: demo data is loaded when the micronode engines are enabled)\n");
    fflush(stdout);
}

int main(int argc, char **argv)
{
    if (argc > 1 && argv[1][0] != '-') {
        for (const struct subcommand *s = SUBCOMMANDS; s->name; s++)
            if (strcmp(argv[1], s->name) == 0)
                return s->fn(argc - 1, argv + 1);
        fprintf(stderr, "omnigate: unknown subcommand '%s' (see --help)\n", argv[1]);
        return 2;
    }
    struct opts o = {0};
    if (parse_args(argc, argv, &o) != 0)
        return 2;
    struct og_config *cfg = xmalloc(sizeof(*cfg));
    char err[CONFIG_ERR_MAX];
    if (config_build(cfg, &o.args, environ, err, sizeof(err)) != 0) {
        fprintf(stderr, "omnigate: %s\n", err);
        return 2;
    }
    if (o.check_only) {
        printf("omnigate: configuration ok\n");
        free(cfg);
        return 0;
    }
    cas_init(); /* BLAKE3's CPU-feature cache must be filled before threads */
    print_banner(cfg, o.demo);
    return server_run(cfg, &o.args, environ, ROUTES, sizeof(ROUTES) / sizeof(ROUTES[0]), NULL);
}
