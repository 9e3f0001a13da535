/*
 * config.c — the configuration table: precedence, validation messages,
 * file rules and reload checks. Files are written to a temporary path; the
 * environment is a custom envp, never the process's own.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"

static char path[64];

static void write_file(const char *text)
{
    strcpy(path, "/tmp/og-config-test-XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static void cleanup(void)
{
    if (path[0])
        unlink(path);
    path[0] = '\0';
}

static struct config_args args_with(const char *cfg_path)
{
    struct config_args a;
    memset(&a, 0, sizeof(a));
    a.config_path = cfg_path;
    return a;
}

static void flag(struct config_args *a, const char *key, const char *value)
{
    a->set[a->n].row = config_row_find(key);
    cr_assert_not_null(a->set[a->n].row, "%s", key);
    a->set[a->n].value = value;
    a->n++;
}

TestSuite(config, .fini = cleanup);

Test(config, defaults)
{
    struct og_config c;
    config_defaults(&c);
    cr_assert_str_eq(c.bind, "127.0.0.1:9080");
    cr_assert_eq(c.header_max, 16 * 1024);
    cr_assert_eq(c.body_max, 1024 * 1024);
    cr_assert_eq(c.head_timeout_ms, 10000);
    cr_assert_eq(c.body_min_rate, 1024);
    cr_assert_eq(c.body_grace_ms, 5000);
    cr_assert_eq(c.request_timeout_ms, 5000);
    cr_assert_eq(c.idle_timeout_ms, 60000);
    cr_assert_eq(c.max_connections, 16384);
    cr_assert_eq(c.conn_pressure_high, 80);
    cr_assert_eq(c.head_timeout_min_ms, 1000);
    cr_assert_eq(c.idle_timeout_min_ms, 1000);
    cr_assert_eq(c.inflight_max, 512);
    cr_assert_eq(c.write_timeout_ms, 10000);
    cr_assert_eq(c.drain_grace_ms, 10000);
    cr_assert_eq(c.retry_after_s, 1);
    cr_assert_eq(c.decompress_ratio_max, 10);
}

Test(config, precedence_defaults_file_env_flags)
{
    write_file("# comment\n[server]\nworkers = 3\n\n[limits]\nheader_max = 8KiB\n"
               "body_max = 2MiB\nidle_timeout = 30s\ninflight_max = 7\n");
    struct config_args a = args_with(path);
    flag(&a, "body-max", "3MiB");
    flag(&a, "idle-timeout", "1500ms");
    char *envp[] = {"PATH=/bin", "OMNIGATE_BODY_MAX=4MiB", "OMNIGATE_HEADER_MAX=4KiB",
                    "OMNIGATE_RETRY_AFTER=7s", NULL};
    struct og_config c;
    char err[CONFIG_ERR_MAX] = "";
    cr_assert_eq(config_build(&c, &a, envp, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.workers, 3, "file over default");
    cr_assert_eq(c.inflight_max, 7, "file over default");
    cr_assert_eq(c.header_max, 4096, "env over file");
    cr_assert_eq(c.body_max, 3 * 1024 * 1024, "flag over env over file");
    cr_assert_eq(c.idle_timeout_ms, 1500, "flag over file");
    cr_assert_eq(c.retry_after_s, 7, "env over default, stored in seconds");
    cr_assert_eq(c.head_timeout_ms, 10000, "untouched default");
    cr_assert_str_eq(c.config_path, path);

    /* the file may also come from OMNIGATE_CONFIG; --config wins over it */
    char envc[96];
    snprintf(envc, sizeof(envc), "OMNIGATE_CONFIG=%s", path);
    char *envp2[] = {envc, NULL};
    cr_assert_eq(config_build(&c, NULL, envp2, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.header_max, 8192);
    struct config_args none = args_with("/nonexistent/og.ini");
    cr_assert_eq(config_build(&c, &none, envp2, err, sizeof(err)), -1);
    cr_assert(strstr(err, "/nonexistent/og.ini") != NULL, "%s", err);
}

/* err must be one line naming the key, the value, the source and what is allowed. */
static void expect_err(const char *err, const char *key, const char *value, const char *source,
                       const char *allowed)
{
    cr_assert(strchr(err, '\n') == NULL, "one line: %s", err);
    cr_assert(strstr(err, key) != NULL, "key %s in: %s", key, err);
    cr_assert(strstr(err, value) != NULL, "value %s in: %s", value, err);
    cr_assert(strstr(err, source) != NULL, "source %s in: %s", source, err);
    cr_assert(strstr(err, allowed) != NULL, "allowed %s in: %s", allowed, err);
}

Test(config, each_type_names_key_value_source)
{
    static const struct {
        const char *flag, *value, *allowed;
    } bad[] = {
        {"header-max", "16 KB", "a size like"},
        {"header-max", "1.5KiB", "a size like"},
        {"head-timeout", "10", "a duration like"},
        {"head-timeout", "ten", "a duration like"},
        {"workers", "-1", "an integer"},
        {"workers", "4x", "an integer"},
        {"bind", "localhost:80", "HOST:PORT"},
        {"bind", "127.0.0.1:70000", "HOST:PORT"},
        {"bind", "127.0.0.1", "HOST:PORT"},
        {"log-level", "loud", "debug, info, warn, error"},
        {"verify-ranges", "yes please", "true or false"},
        {"verify-ranges", "1", "true or false"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct config_args a = args_with(NULL);
        flag(&a, bad[i].flag, bad[i].value);
        struct og_config c;
        char err[CONFIG_ERR_MAX] = "";
        cr_assert_eq(config_build(&c, &a, NULL, err, sizeof(err)), -1, "%s=%s", bad[i].flag,
                     bad[i].value);
        char src[64];
        snprintf(src, sizeof(src), "flag --%s", bad[i].flag);
        const struct config_row *row = config_row_find(bad[i].flag);
        expect_err(err, row->key, bad[i].value, src, bad[i].allowed);
    }
}

Test(config, out_of_range)
{
    struct config_args a = args_with(NULL);
    flag(&a, "header-max", "512B");
    struct og_config c;
    char err[CONFIG_ERR_MAX];
    cr_assert_eq(config_build(&c, &a, NULL, err, sizeof(err)), -1);
    expect_err(err, "header_max", "512B", "flag --header-max", "allowed 1024 to 1048576 bytes");

    char *envp[] = {"OMNIGATE_MAX_CONNECTIONS=0", NULL};
    cr_assert_eq(config_build(&c, NULL, envp, err, sizeof(err)), -1);
    expect_err(err, "max_connections", "\"0\"", "env OMNIGATE_MAX_CONNECTIONS", "allowed 1 to");

    char *pct[] = {"OMNIGATE_CONN_PRESSURE_HIGH=101", NULL};
    cr_assert_eq(config_build(&c, NULL, pct, err, sizeof(err)), -1);
    expect_err(err, "conn_pressure_high", "\"101\"", "env OMNIGATE_CONN_PRESSURE_HIGH",
               "allowed 1 to 100");

    write_file("[limits]\nhead_timeout = 20m\n");
    struct config_args f = args_with(path);
    cr_assert_eq(config_build(&c, &f, NULL, err, sizeof(err)), -1);
    expect_err(err, "head_timeout", "20m", path, "allowed 100 to 600000 ms");

    /* bounds are inclusive */
    struct config_args edge = args_with(NULL);
    flag(&edge, "header-max", "1KiB");
    flag(&edge, "body-max", "0");
    flag(&edge, "head-timeout", "100ms");
    cr_assert_eq(config_build(&c, &edge, NULL, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.header_max, 1024);
    cr_assert_eq(c.body_max, 0);
}

Test(config, unknown_key_in_file)
{
    struct og_config c;
    char err[CONFIG_ERR_MAX];
    write_file("[limits]\nheader_max = 8KiB\nheader_maxx = 1\n");
    struct config_args a = args_with(path);
    cr_assert_eq(config_build(&c, &a, NULL, err, sizeof(err)), -1);
    cr_assert(strstr(err, "unknown key") && strstr(err, "header_maxx") && strstr(err, path), "%s",
              err);
    cleanup();
    /* a real key in the wrong section, or in flag spelling, is unknown too */
    write_file("[server]\nheader_max = 8KiB\n");
    a = args_with(path);
    cr_assert_eq(config_build(&c, &a, NULL, err, sizeof(err)), -1);
    cr_assert(strstr(err, "unknown key [server] header_max") != NULL, "%s", err);
    cleanup();
    write_file("[limits]\nheader-max = 8KiB\n");
    a = args_with(path);
    cr_assert_eq(config_build(&c, &a, NULL, err, sizeof(err)), -1);
    cr_assert(strstr(err, "unknown key") != NULL, "%s", err);
    cleanup();
    write_file("[limits]\nthis line has no equals sign\n");
    a = args_with(path);
    cr_assert_eq(config_build(&c, &a, NULL, err, sizeof(err)), -1);
    cr_assert(strstr(err, ":2:") != NULL, "line number in: %s", err);
}

Test(config, unknown_env_var)
{
    struct og_config c;
    char err[CONFIG_ERR_MAX];
    char *envp[] = {"HOME=/", "OMNIGATE_HEADERMAX=1", NULL};
    cr_assert_eq(config_build(&c, NULL, envp, err, sizeof(err)), -1);
    cr_assert(strstr(err, "unknown environment variable OMNIGATE_HEADERMAX") != NULL, "%s", err);
    char *envp2[] = {"OMNIGATE_HEADER-MAX=1", NULL};
    cr_assert_eq(config_build(&c, NULL, envp2, err, sizeof(err)), -1);
    /* a non-OMNIGATE_ variable is none of our business */
    char *envp3[] = {"OMNIGATEX=1", "XOMNIGATE_FOO=1", NULL};
    cr_assert_eq(config_build(&c, NULL, envp3, err, sizeof(err)), 0, "%s", err);
}

Test(config, line_longer_than_200)
{
    char text[400];
    struct og_config c;
    char err[CONFIG_ERR_MAX];
    /* 199 characters is fine (libinih's own buffer holds 199) */
    memset(text, 0, sizeof(text));
    strcpy(text, "[limits]\n#");
    memset(text + 10, 'x', 198);
    strcat(text, "\nheader_max = 8KiB\n");
    write_file(text);
    struct config_args a = args_with(path);
    cr_assert_eq(config_build(&c, &a, NULL, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.header_max, 8192);
    cleanup();
    strcpy(text, "[limits]\n#");
    memset(text + 10, 'x', 200); /* 201 characters */
    text[210] = '\0';
    strcat(text, "\n");
    write_file(text);
    a = args_with(path);
    cr_assert_eq(config_build(&c, &a, NULL, err, sizeof(err)), -1);
    cr_assert(strstr(err, ":2: line longer than 200") != NULL, "%s", err);
}

Test(config, reload_check)
{
    struct og_config old, nu;
    char err[CONFIG_ERR_MAX];
    config_defaults(&old);
    nu = old;
    cr_assert_eq(config_reload_check(&old, &nu, err, sizeof(err)), 0);
    nu.header_max = 4096;
    nu.body_max = 1;
    nu.idle_timeout_ms = 1000;
    snprintf(nu.log_level, sizeof(nu.log_level), "debug");
    cr_assert_eq(config_reload_check(&old, &nu, err, sizeof(err)), 0, "%s", err);
    static const char *const fixed[] = {"bind", "admin", "workers", "drain_grace"};
    for (size_t i = 0; i < 4; i++) {
        nu = old;
        const struct config_row *row = config_row_find(fixed[i]);
        cr_assert_not_null(row);
        cr_assert(!row->reload);
        const char *v = row->type == CFG_ADDR ? "127.0.0.1:1" : "3s";
        if (row->type == CFG_INT)
            v = "5";
        cr_assert_eq(config_set(&nu, row, v, "test", err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(config_reload_check(&old, &nu, err, sizeof(err)), -1, "%s", fixed[i]);
        cr_assert(strstr(err, fixed[i]) && strstr(err, "cannot change on reload"), "%s", err);
    }
}

Test(config, parsers)
{
    int64_t v;
    cr_assert_eq(config_parse_size("512", &v), 0);
    cr_assert_eq(v, 512);
    cr_assert_eq(config_parse_size("512B", &v), 0);
    cr_assert_eq(config_parse_size("64KiB", &v), 0);
    cr_assert_eq(v, 65536);
    cr_assert_eq(config_parse_size("1GiB", &v), 0);
    cr_assert_eq(v, 1LL << 30);
    cr_assert_eq(config_parse_size("1kib", &v), -1);
    cr_assert_eq(config_parse_size("", &v), -1);
    cr_assert_eq(config_parse_size("KiB", &v), -1);
    cr_assert_eq(config_parse_size("999999999999999999GiB", &v), -1, "overflow");
    cr_assert_eq(config_parse_size("9999999999999999999", &v), -1, "overflow");
    cr_assert_eq(config_parse_duration_ms("250ms", &v), 0);
    cr_assert_eq(v, 250);
    cr_assert_eq(config_parse_duration_ms("2m", &v), 0);
    cr_assert_eq(v, 120000);
    cr_assert_eq(config_parse_duration_ms("0", &v), 0);
    cr_assert_eq(v, 0);
    cr_assert_eq(config_parse_duration_ms("5", &v), -1, "a unit is required");
    cr_assert_eq(config_parse_duration_ms("1h", &v), -1);
    char host[64];
    int port;
    cr_assert_eq(config_parse_addr("[::1]:8080", host, sizeof(host), &port), 0);
    cr_assert_str_eq(host, "::1");
    cr_assert_eq(port, 8080);
    cr_assert_eq(config_parse_addr("0.0.0.0:0", host, sizeof(host), &port), 0);
    cr_assert_eq(config_parse_addr(":80", host, sizeof(host), &port), -1);
    cr_assert_eq(config_parse_addr("1.2.3.4:", host, sizeof(host), &port), -1);
    cr_assert_eq(config_parse_addr("[::1:80", host, sizeof(host), &port), -1);
    cr_assert_eq(config_row_find("body-max"), config_row_find("body_max"));
    cr_assert_null(config_row_find("body"));
    cr_assert_null(config_row_find("body_max_"));
}

/* Regression: a string set twice keeps bytes of the longer value after its
 * NUL; a reload must compare the strings, not the whole buffers. */
Test(config, rates)
{
    int64_t v = -1;
    cr_assert_eq(config_parse_rate_milli("500/s", &v), 0);
    cr_assert_eq(v, 500000);
    cr_assert_eq(config_parse_rate_milli("30/m", &v), 0);
    cr_assert_eq(v, 500, "30 per minute is half a request per second");
    cr_assert_eq(config_parse_rate_milli("36/h", &v), 0);
    cr_assert_eq(v, 10);
    cr_assert_eq(config_parse_rate_milli("7", &v), 0);
    cr_assert_eq(v, 7000, "a bare count is per second");
    cr_assert_eq(config_parse_rate_milli("0", &v), 0);
    cr_assert_eq(v, 0, "0 is off");
    cr_assert_eq(config_parse_rate_milli("1/h", &v), -1, "under 1/1000 per second");
    const char *bad[] = {"", "/s", "5/d", "-5/s", "5 /x", "5/s/s", "1.5/s", "99999999999999999/s"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(config_parse_rate_milli(bad[i], &v), -1, "\"%s\" accepted", bad[i]);
    struct og_config cfg;
    config_defaults(&cfg);
    cr_assert_eq(cfg.rate_milli, 500000, "the instance default follows DESIGN §8");
    cr_assert_eq(cfg.tenant_rate_milli, 0, "the tenant default is off");
    char err[CONFIG_ERR_MAX];
    cr_assert_eq(config_set(&cfg, config_row_find("rate"), "2000000/s", "flag", err, sizeof(err)),
                 -1);
    cr_assert(strstr(err, "out of range") != NULL, "%s", err);
}

Test(config, reload_check_compares_strings_not_buffers)
{
    struct og_config a, b;
    char err[CONFIG_ERR_MAX];
    const struct config_row *bind = config_row_find("bind");
    config_defaults(&a);
    config_defaults(&b);
    cr_assert(config_set(&a, bind, "127.0.0.1:65535", "test", err, sizeof(err)) == 0);
    cr_assert(config_set(&a, bind, "1.2.3.4:1", "test", err, sizeof(err)) == 0);
    cr_assert(config_set(&b, bind, "1.2.3.4:1", "test", err, sizeof(err)) == 0);
    cr_assert(config_reload_check(&a, &b, err, sizeof(err)) == 0, "%s", err);
    cr_assert(config_set(&b, bind, "1.2.3.4:2", "test", err, sizeof(err)) == 0);
    cr_assert(config_reload_check(&a, &b, err, sizeof(err)) != 0);
    cr_assert(strstr(err, "bind") != NULL, "%s", err);
}

Test(config, booleans)
{
    static const struct {
        const char *value;
        int64_t want;
    } ok[] = {{"true", 1}, {"on", 1}, {"false", 0}, {"off", 0}};
    struct og_config c;
    char err[CONFIG_ERR_MAX] = "";
    struct config_args a = args_with(NULL);
    cr_assert_eq(config_build(&c, &a, NULL, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.media_verify_ranges, 1, "on by default");
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        a = args_with(NULL);
        flag(&a, "verify-ranges", ok[i].value);
        cr_assert_eq(config_build(&c, &a, NULL, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(c.media_verify_ranges, ok[i].want, "%s", ok[i].value);
    }
}
