/*
 * log.h - midge's log: one line per thing worth a human's attention, to
 * stderr, stdout, a file and/or syslog, filtered by Mosquitto's log types.
 * Single-threaded (the loop thread), like everything in the transport.
 */
#ifndef MIDGE_TRANSPORT_LOG_H
#define MIDGE_TRANSPORT_LOG_H

#include <stdbool.h>
#include <stddef.h>

#include "transport/config.h"

/* (Re)opens the destinations of c (SIGHUP calls it again). Returns 0, or
 * -1 if the log file cannot be opened (stderr is used meanwhile). */
int log_open(const struct conf *c);
void log_close(void);
/* Verbose (-v): every type, to stderr as well. */
void log_set_verbose(bool on);
bool log_enabled(unsigned type);

/*
 * Copies in[0..n) to out (cap bytes, always NUL-terminated), escaping what
 * must not reach a log line raw: control characters and DEL as \xNN, a
 * backslash as \\, bytes that are not valid UTF-8 as \xNN. Stops at a
 * whole character when out is full. Returns the length written. log_msg()
 * passes every line through it.
 */
size_t log_escape(char *out, size_t cap, const char *in, size_t n);

/* One log line (printf format); escaped by log_escape() before it is
 * written. */
void log_msg(unsigned type, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_err(...) log_msg(CONF_LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(CONF_LOG_WARNING, __VA_ARGS__)
#define log_notice(...) log_msg(CONF_LOG_NOTICE, __VA_ARGS__)
#define log_info(...) log_msg(CONF_LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(CONF_LOG_DEBUG, __VA_ARGS__)

#endif
