/*
 * log.c - destinations and filtering for midge's log lines.
 */
#include "transport/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

static struct {
	unsigned types;
	unsigned dests;
	bool timestamp;
	bool verbose;
	FILE *file;
	bool syslog_open;
} log_state = {CONF_LOG_ERR | CONF_LOG_WARNING | CONF_LOG_NOTICE | CONF_LOG_INFO,
	       CONF_DEST_STDERR, true, false, NULL, false};

int log_open(const struct conf *c)
{
	int rc = 0;
	log_close();
	log_state.types = c->log_types & CONF_LOG_ALL;
	log_state.dests = c->log_dests;
	log_state.timestamp = c->log_timestamp;
	if ((c->log_dests & CONF_DEST_FILE) && c->log_file) {
		log_state.file = fopen(c->log_file, "a");
		if (!log_state.file) {
			log_state.dests |= CONF_DEST_STDERR;
			rc = -1;
		} else {
			setvbuf(log_state.file, NULL, _IOLBF, 0);
		}
	}
	if (c->log_dests & CONF_DEST_SYSLOG) {
		openlog("midge", LOG_PID, LOG_DAEMON);
		log_state.syslog_open = true;
	}
	return rc;
}

void log_close(void)
{
	if (log_state.file)
		fclose(log_state.file);
	log_state.file = NULL;
	if (log_state.syslog_open)
		closelog();
	log_state.syslog_open = false;
}

void log_set_verbose(bool on)
{
	log_state.verbose = on;
}

bool log_enabled(unsigned type)
{
	return log_state.verbose || (log_state.types & type) != 0;
}

static int log_syslog_priority(unsigned type)
{
	switch (type) {
	case CONF_LOG_ERR: return LOG_ERR;
	case CONF_LOG_WARNING: return LOG_WARNING;
	case CONF_LOG_NOTICE: return LOG_NOTICE;
	case CONF_LOG_DEBUG: return LOG_DEBUG;
	default: return LOG_INFO;
	}
}

void log_msg(unsigned type, const char *fmt, ...)
{
	char text[1024];
	char stamp[32] = "";
	va_list ap;
	if (!log_enabled(type))
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (log_state.timestamp) {
		struct timespec ts;
		struct tm tm;
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ ", &tm);
	}
	const char *lvl = type == CONF_LOG_ERR ? "error: " : type == CONF_LOG_WARNING ? "warning: " : "";
	unsigned dests = log_state.dests | (log_state.verbose ? CONF_DEST_STDERR : 0);
	if (dests & CONF_DEST_STDERR)
		fprintf(stderr, "%s%s%s\n", stamp, lvl, text);
	if (dests & CONF_DEST_STDOUT) {
		fprintf(stdout, "%s%s%s\n", stamp, lvl, text);
		fflush(stdout);
	}
	if ((dests & CONF_DEST_FILE) && log_state.file)
		fprintf(log_state.file, "%s%s%s\n", stamp, lvl, text);
	if ((dests & CONF_DEST_SYSLOG) && log_state.syslog_open)
		syslog(log_syslog_priority(type), "%s%s", lvl, text);
}
