/*
 * http_parse.rl - the host side of the HTTP request-head parser: the
 * actions codec/http.rl names (each one line recording an offset, so the
 * machine resumes across reads), http_request_feed(), and the rules a
 * WebSocket listener applies to a complete head (http.h). Compile with
 * `ragel -G2`.
 */
#include "codec/http.h"

#include <string.h>

/* The offset of p in buf: heads are bounded far below 4 GiB by the
 * caller's buffer. */
#define OFF(p) ((uint32_t)((p) - buf))

static inline void http_span_end(struct http_span *s, uint32_t start, uint32_t end)
{
	s->off = start;
	s->len = end - start;
}

/* A field value without the white space around it (RFC 7230 3.2). */
static inline void http_field_value(struct http_field *f, const uint8_t *buf, uint32_t start,
				    uint32_t end)
{
	while (start < end && (buf[start] == ' ' || buf[start] == '\t'))
		start++;
	while (end > start && (buf[end - 1] == ' ' || buf[end - 1] == '\t'))
		end--;
	http_span_end(&f->value, start, end);
}

%%{
	machine http_head;

	action mark { r->mark = OFF(fpc); }
	action method { http_span_end(&r->method, r->mark, OFF(fpc)); }
	action target { http_span_end(&r->target, r->mark, OFF(fpc)); }
	action path_start { r->path.off = OFF(fpc); }
	action path_end { r->path.len = OFF(fpc) - r->path.off; }
	action query_start { r->query.off = OFF(fpc); }
	action query_end { r->query.len = OFF(fpc) - r->query.off; }
	action major { r->major = (uint8_t)(fc - '0'); }
	action minor { r->minor = (uint8_t)(fc - '0'); }
	action colon {
		if (r->n_fields == HTTP_MAX_FIELDS) { r->err = HTTP_ERR_FIELDS; fbreak; }
		http_span_end(&r->fields[r->n_fields].name, r->mark, OFF(fpc));
		r->mark = OFF(fpc) + 1;
	}
	action field_end { http_field_value(&r->fields[r->n_fields++], buf, r->mark, OFF(fpc)); }
	action done { r->head_len = OFF(fpc) + 1; fbreak; }

	include http_head "http.rl";
	write data;
}%%

void http_request_init(struct http_request *r)
{
	int cs;

	memset(r, 0, sizeof(*r));
	%% write init;
	r->cs = cs;
}

int http_request_feed(struct http_request *r, const uint8_t *buf, size_t len)
{
	const uint8_t *p = buf + r->nread, *pe = buf + len;
	int cs = r->cs;

	if (r->err)
		return r->err;
	if (r->head_len)
		return HTTP_DONE;
	if (p >= pe)
		return HTTP_MORE;
	%% write exec;
	r->cs = cs;
	r->nread = OFF(p);
	if (r->err)
		return r->err;
	if (cs == http_head_error) {
		r->err = HTTP_ERR_SYNTAX;
		return r->err;
	}
	return r->head_len ? HTTP_DONE : HTTP_MORE;
}
