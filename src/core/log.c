/*
 * log.c — JSON lines, one write(2) each.
 */
#include "core/log.h"

#include <errno.h>
#include <stdio.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int log_min_level = LOG_INFO;

static const char *const LEVELS[] = {"debug", "info", "warn", "error"};

int log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcasecmp(s, LEVELS[i]) == 0)
            return i;
    return -1;
}

void log_begin(struct jw *w, struct buf *b, enum log_level lvl, const char *event)
{
    struct timeval tv;
    struct tm tm;
    char ts[40];
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof(ts) - n, ".%03dZ", (int)(tv.tv_usec / 1000));
    jw_init(w, b);
    jw_obj_open(w);
    jw_key(w, "ts");
    jw_str(w, ts);
    jw_key(w, "level");
    jw_str(w, LEVELS[lvl]);
    jw_key(w, "event");
    jw_str(w, event);
}

void log_line_close(struct jw *w)
{
    jw_obj_close(w);
    if (!jw_failed(w) && buf_append(w->b, "\n", 1) != 0)
        w->failed = true;
}

void log_end(struct jw *w)
{
    log_line_close(w);
    log_flush(w->b);
}

void log_flush(struct buf *b)
{
    const char *p = b->p;
    size_t n = b->n;
    b->n = 0;
    while (n > 0) {
        ssize_t k = write(STDERR_FILENO, p, n);
        if (k == -1) {
            if (errno == EINTR)
                continue;
            return; /* nowhere left to report a logging failure */
        }
        p += k;
        n -= (size_t)k;
    }
}

void log_event(enum log_level lvl, const char *event, const char *fmt, ...)
{
    if ((int)lvl < log_min_level)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    struct buf b = {0};
    struct jw w;
    log_begin(&w, &b, lvl, event);
    jw_key(&w, "msg");
    jw_str(&w, msg);
    log_end(&w);
    buf_release(&b);
}
