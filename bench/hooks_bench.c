/*
 * midge-hooks-bench - what the event publisher costs per event, in
 * process, without a broker: the engine thread's share (hooks_emit and
 * the per-pass hooks_flush) and the publisher's (its thread and ZeroMQ's
 * I/O thread), each measured as CPU time of its own threads, so a loaded
 * machine slows the run but hardly changes the figures.
 *
 *   midge-hooks-bench [-n EVENTS] [-r EVENTS_PER_S] [-f json|compact]
 *                     [-q QUEUE_BYTES] [-w SECONDS] ENDPOINT
 *
 * Binds ENDPOINT (e.g. tcp://127.0.0.1:5899), waits up to -w seconds (5)
 * for a subscriber (run bench/midge-hooks-sink ENDPOINT first), then
 * emits EVENTS (1000000) events shaped like a fan-in broker's: for each
 * message a message.published and a message.delivered, 64-byte payload,
 * topic bench/<n>, held through a holder as the broker holds them (no
 * copy), one hooks_flush() per 64 events as a loop pass would. -r paces
 * the emission (0: as fast as possible; the queue then drops what the
 * publisher cannot take). Prints one line:
 *
 *   HBENCH events=N queued=N sent=N dropped=N emit_ns=X emit_cpu_ns=X pub_ns=X zmq_ns=X
 *          wall_s=S
 *
 * emit_ns: engine-thread CPU per event; pub_ns: the publisher thread's CPU
 * per event sent; zmq_ns: ZeroMQ's I/O thread per event sent.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include "hooks/hooks.h"
#include "hooks/hooks_info.h"
#include "midge.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* CPU seconds of the calling thread. */
static double self_cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* CPU seconds of this process's threads whose name starts with prefix. */
static double threads_cpu_s(const char *prefix)
{
	double total = 0;
	long tick = sysconf(_SC_CLK_TCK);
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	while (d && (e = readdir(d))) {
		char path[300], name[64] = "", stat[1024];
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		if (!fgets(name, sizeof name, f))
			name[0] = '\0';
		fclose(f);
		if (strncmp(name, prefix, strlen(prefix)) != 0)
			continue;
		snprintf(path, sizeof path, "/proc/self/task/%s/stat", e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		size_t n = fread(stat, 1, sizeof stat - 1, f);
		fclose(f);
		stat[n] = '\0';
		/* utime and stime are fields 14 and 15, after the ")" of comm */
		char *p = strrchr(stat, ')');
		unsigned long ut = 0, st = 0;
		if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut,
				&st) == 2)
			total += (double)(ut + st) / (double)tick;
	}
	if (d)
		closedir(d);
	return total;
}

/* A message as the broker would hold it: a count the holder changes. */
struct bmsg {
	int refs;
	char topic[16];
	char payload[64];
};

static uint64_t holds, releases;

static void b_hold(void *m)
{
	((struct bmsg *)m)->refs++;
	holds++;
}

static void b_release(void *m)
{
	((struct bmsg *)m)->refs--;
	releases++;
}

/* The immutable part, as engine_msg_view() gives it (publisher thread). */
static void b_view(const void *m, struct midge_message *v)
{
	const struct bmsg *b = m;
	memset(v, 0, sizeof *v);
	v->topic.p = b->topic;
	v->topic.len = strlen(b->topic);
	v->payload = b->payload;
	v->payload_len = sizeof b->payload;
	v->origin.p = "loadgen-pub-17";
	v->origin.len = 14;
}

int main(int argc, char **argv)
{
	uint64_t n = 1000000;
	double rate = 0, wait_s = 5;
	size_t qbytes = 0;
	enum hooks_format fmt = HOOKS_FORMAT_JSON;
	int i = 1;
	for (; i + 1 < argc && argv[i][0] == '-'; i += 2) {
		if (!strcmp(argv[i], "-n"))
			n = strtoull(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "-r"))
			rate = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "-w"))
			wait_s = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "-q"))
			qbytes = strtoull(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "-f"))
			fmt = !strcmp(argv[i + 1], "compact") ? HOOKS_FORMAT_COMPACT
							      : HOOKS_FORMAT_JSON;
		else
			break;
	}
	if (i != argc - 1) {
		fprintf(stderr, "usage: midge-hooks-bench [-n EVENTS] [-r EVENTS_PER_S] "
				"[-f json|compact] [-q QUEUE_BYTES] [-w SECONDS] ENDPOINT\n");
		return 1;
	}
	struct hooks *h = hooks_new();
	struct hooks_config cfg = {.endpoints = {argv[i]}, .n_endpoints = 1, .sndhwm = 100000,
				   .node = "bench", .format = fmt, .queue_bytes = qbytes,
				   .holder = {b_hold, b_release, b_view}};
	char err[256];
	if (!h || hooks_zmq_start(h, &cfg, err, sizeof err) != 0) {
		fprintf(stderr, "midge-hooks-bench: %s\n", err);
		return 2;
	}
	for (double t0 = now_s(); hooks_prefix_count(h, 0) == 0 && now_s() - t0 < wait_s;)
		usleep(1000);
	if (hooks_prefix_count(h, 0) == 0)
		fprintf(stderr, "midge-hooks-bench: no subscriber, measuring events nobody wants\n");

	static struct bmsg msgs[1024];
	for (int k = 0; k < 1024; k++) {
		memset(msgs[k].payload, 'a' + k % 26, sizeof msgs[k].payload);
		snprintf(msgs[k].topic, sizeof msgs[k].topic, "bench/%d", k % 50);
	}
	struct midge_client pub = {.client_id = {"loadgen-pub-17", 14}, .peer_addr = "127.0.0.1",
				   .peer_port = 40000, .protocol = 4};
	struct midge_client sub = {.client_id = {"loadgen-sub-0", 13}, .peer_addr = "127.0.0.1",
				   .peer_port = 40001, .protocol = 4};
	double pub0 = threads_cpu_s("midge-hooks"), zmq0 = threads_cpu_s("ZMQbg/IO");
	double t0 = now_s(), emit_s = 0, pass0 = t0, cpu0 = self_cpu_s();
	for (uint64_t k = 0; k < n; k++) {
		struct bmsg *bm = &msgs[(k / 2) % 1024];
		struct midge_message m = {.topic = {bm->topic, strlen(bm->topic)}, .payload = bm->payload,
					  .payload_len = sizeof bm->payload, .origin = pub.client_id};
		struct midge_event ev = {.type = k % 2 ? MIDGE_EV_DELIVER : MIDGE_EV_PUBLISH,
					 .time_ms = 1764306000000 + k / 1000,
					 .client = k % 2 ? &sub : &pub};
		ev.u.message.msg = &m;
		if (k % 2)
			ev.u.message.to = sub.client_id;
		hooks_emit(h, &ev, bm);
		if (k % 64 == 63) {
			hooks_flush(h);
			double t = now_s();
			emit_s += t - pass0;
			if (rate > 0) {
				double due = t0 + (double)(k + 1) / rate;
				double d = due - now_s();
				if (d > 0)
					usleep((useconds_t)(d * 1e6));
			}
			pass0 = now_s();
		}
	}
	hooks_flush(h);
	emit_s += now_s() - pass0;
	double emit_cpu = self_cpu_s() - cpu0; /* with the pacing's sleeps, if any */
	if (rate <= 0)
		emit_s = emit_cpu; /* no sleeps to leave out */
	hooks_wait_idle(h, 60000);
	double wall = now_s() - t0;
	double pub_cpu = threads_cpu_s("midge-hooks") - pub0;
	double zmq_cpu = threads_cpu_s("ZMQbg/IO") - zmq0;
	uint64_t sent = hooks_sent(h);
	printf("HBENCH events=%" PRIu64 " queued=%" PRIu64 " sent=%" PRIu64 " dropped=%" PRIu64
	       " emit_ns=%.0f emit_cpu_ns=%.0f pub_ns=%.0f zmq_ns=%.0f wall_s=%.2f\n",
	       n, hooks_counts(h).queued, sent, hooks_dropped(h), emit_s * 1e9 / (double)n,
	       emit_cpu * 1e9 / (double)n,
	       sent ? pub_cpu * 1e9 / (double)sent : 0, sent ? zmq_cpu * 1e9 / (double)sent : 0,
	       wall);
	hooks_free(h);
	if (holds != releases)
		fprintf(stderr, "midge-hooks-bench: %" PRIu64 " holds, %" PRIu64 " releases\n",
			holds, releases);
	return holds == releases ? 0 : 3;
}
