/*
 * files.c - the dashboard's static files (plain HTML, CSS and JavaScript
 * from midge_http_dashboard_dir, by default the directory `make install`
 * fills) and the OpenAPI document, which is compiled in so that the API
 * describes itself whatever is installed.
 *
 * Only flat names of [A-Za-z0-9_.-] with a known extension are served
 * from the one directory: no path reaches outside it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http/internal.h"

static const char *files_type(const char *name)
{
	static const struct {
		const char *ext, *type;
	} types[] = {
		{".html", "text/html; charset=utf-8"},
		{".css", "text/css; charset=utf-8"},
		{".js", "text/javascript; charset=utf-8"},
		{".json", "application/json"},
		{".svg", "image/svg+xml"},
		{".png", "image/png"},
		{".ico", "image/x-icon"},
	};
	const char *dot = strrchr(name, '.');
	for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
		if (strcmp(dot, types[i].ext) == 0)
			return types[i].type;
	return NULL;
}

static bool files_name_ok(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > 64 || name[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-' || c == '.'))
			return false;
	}
	return true;
}

int http_files_serve(struct http_req *r, const char *name)
{
	const char *type = files_type(name);
	char path[4096];
	struct stat st;
	if (!files_name_ok(name) || !type)
		return http_reply_error(r, 404, "not_found", "no such file");
	int n = snprintf(path, sizeof path, "%s/%s", r->h->dashboard_dir, name);
	if (n < 0 || (size_t)n >= sizeof path)
		return http_reply_error(r, 404, "not_found", "no such file");
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return http_reply_error(r, 404, "not_found",
					errno == ENOENT ? "no such file (is the dashboard installed? "
							  "see midge_http_dashboard_dir)"
							: "cannot read the file");
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return http_reply_error(r, 404, "not_found", "no such file");
	}
	/* ownership: the response closes fd */
	struct MHD_Response *resp = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
	if (!resp) {
		close(fd);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", type);
	if (strcmp(type, "text/html; charset=utf-8") == 0) {
		/* everything the page uses comes from here: no CDN, no inline script */
		MHD_add_response_header(resp, "Content-Security-Policy",
					"default-src 'self'; img-src 'self' data:; "
					"frame-ancestors 'none'");
		MHD_add_response_header(resp, "X-Frame-Options", "DENY");
	}
	return http_reply(r, 200, resp);
}

int http_api_index(struct http *h, struct http_req *r, const char *arg)
{
	(void)h;
	(void)arg;
	return http_files_serve(r, "index.html");
}

int http_api_file(struct http *h, struct http_req *r, const char *arg)
{
	(void)h;
	return http_files_serve(r, arg);
}

int http_api_openapi(struct http *h, struct http_req *r, const char *arg)
{
	(void)h;
	(void)arg;
	struct MHD_Response *resp = MHD_create_response_from_buffer(
	    http_openapi_json_len, (void *)(uintptr_t)http_openapi_json, MHD_RESPMEM_PERSISTENT);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, "Content-Type", "application/json");
	return http_reply(r, 200, resp);
}
