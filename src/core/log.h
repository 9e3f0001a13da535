/*
 * log.h — JSON log lines on stderr (DESIGN §9).
 *
 * One line per request and per notable event. A line is built in a caller
 * buffer and written with a single write(2), so lines from several workers
 * never interleave (each is well under PIPE_BUF for requests). Never log
 * tokens, keys or bodies.
 */
#ifndef CORE_LOG_H
#define CORE_LOG_H

#include <stdarg.h>

#include "core/jw.h"

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Lines below this level are dropped. Set at start-up and on reload. */
extern int log_min_level;

/* Parse "debug|info|warn|error". Returns the level or -1. */
int log_level_parse(const char *s);

/* Start a line `{"ts":..,"level":..,"event":..` appended to b. */
void log_begin(struct jw *w, struct buf *b, enum log_level lvl, const char *event);
/* Close the line (object and '\n') without writing it: lines batched in b are
 * written by log_flush, whole lines only. */
void log_line_close(struct jw *w);
/* Write b's lines with one write(2) and empty b (memory kept for reuse). */
void log_flush(struct buf *b);
/* log_line_close + log_flush. */
void log_end(struct jw *w);

/* A one-off event with a printf-style "msg" field. */
void log_event(enum log_level lvl, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
