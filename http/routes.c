/*
 * routes.c - every route the server answers, one per line: method, path,
 * the role it needs, the handler. docs/http.md and openapi.json describe
 * each; tests/integration/test_http_openapi.py reads this table and fails
 * when a route is missing from the OpenAPI file. A trailing "{name}"
 * takes the rest of the path, slashes included (topics, client ids).
 */
#include "http/internal.h"

const struct http_route http_routes[] = {
	{"GET", "/metrics", HTTP_ROLE_READ, http_api_metrics},
	{"GET", "/api/v1/openapi.json", HTTP_ROLE_READ, http_api_openapi},
	{"GET", "/api/v1/broker", HTTP_ROLE_READ, http_api_broker},
	{"GET", "/api/v1/stats", HTTP_ROLE_READ, http_api_summary},
	{"GET", "/api/v1/cluster", HTTP_ROLE_READ, http_api_cluster},
	{"GET", "/api/v1/clients", HTTP_ROLE_READ, http_api_clients},
	{"GET", "/api/v1/clients/{clientid}", HTTP_ROLE_READ, http_api_client},
	{"DELETE", "/api/v1/clients/{clientid}", HTTP_ROLE_ADMIN, http_api_kick},
	{"GET", "/api/v1/subscriptions", HTTP_ROLE_READ, http_api_subscriptions},
	{"GET", "/api/v1/topics", HTTP_ROLE_READ, http_api_topics},
	{"POST", "/api/v1/publish", HTTP_ROLE_ADMIN, http_api_publish},
	{"GET", "/api/v1/retained", HTTP_ROLE_READ, http_api_retained_list},
	{"GET", "/api/v1/retained/{topic}", HTTP_ROLE_READ, http_api_retained_get},
	{"DELETE", "/api/v1/retained/{topic}", HTTP_ROLE_ADMIN, http_api_retained_delete},
	{"POST", "/api/v1/reload", HTTP_ROLE_ADMIN, http_api_reload},
	{"GET", "/api/v1/events", HTTP_ROLE_READ, http_api_events},
	{"GET", "/", HTTP_ROLE_READ, http_api_index},
	{"GET", "/ui/{file}", HTTP_ROLE_READ, http_api_file},
};

const size_t http_n_routes = sizeof(http_routes) / sizeof(http_routes[0]);
