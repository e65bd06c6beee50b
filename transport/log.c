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

/* The length of the valid UTF-8 sequence at s[0..n) (a multi-byte one:
 * s[0] >= 0x80), or 0. Overlong forms, surrogates and code points past
 * U+10FFFF are not valid. */
static size_t log_utf8_len(const unsigned char *s, size_t n)
{
	size_t len = s[0] >= 0xF0 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC2 ? 2 : 0;
	if (!len || len > n || s[0] > 0xF4)
		return 0;
	for (size_t i = 1; i < len; i++)
		if ((s[i] & 0xC0) != 0x80)
			return 0;
	if ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] >= 0xA0) ||
	    (s[0] == 0xF0 && s[1] < 0x90) || (s[0] == 0xF4 && s[1] >= 0x90))
		return 0;
	return len;
}

size_t log_escape(char *out, size_t cap, const char *in, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)in;
	size_t o = 0;
	if (!cap)
		return 0;
	for (size_t i = 0; i < n;) {
		size_t l = s[i] >= 0x80 ? log_utf8_len(s + i, n - i) : 0;
		char esc[5];
		size_t el;
		if (l) {
			if (o + l >= cap)
				break;
			memcpy(out + o, s + i, l);
			o += l;
			i += l;
			continue;
		}
		if (s[i] == '\\') {
			memcpy(esc, "\\\\", 2);
			el = 2;
		} else if (s[i] < 0x20 || s[i] >= 0x7f) {
			esc[0] = '\\';
			esc[1] = 'x';
			esc[2] = hex[s[i] >> 4];
			esc[3] = hex[s[i] & 15];
			el = 4;
		} else {
			esc[0] = (char)s[i];
			el = 1;
		}
		if (o + el >= cap)
			break;
		memcpy(out + o, esc, el);
		o += el;
		i++;
	}
	out[o] = '\0';
	return o;
}

void log_msg(unsigned type, const char *fmt, ...)
{
	char raw[1024];
	char text[4 * sizeof raw];
	char stamp[32] = "";
	va_list ap;
	if (!log_enabled(type))
		return;
	va_start(ap, fmt);
	int n = vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	/* Every line is escaped whole: a client id, user name or topic with a
	 * newline or a terminal escape cannot forge or garble a line, wherever
	 * it was formatted in. */
	log_escape(text, sizeof text, raw, (size_t)n < sizeof raw ? (size_t)n : sizeof raw - 1);
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
