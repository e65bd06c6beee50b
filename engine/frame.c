/*
 * frame.c - reference-counted byte buffers with a per-thread size-class
 * cache, so a PUBLISH payload costs no malloc on the hot path once the
 * cache is warm. Frames are owned by one loop thread (frame.h), so the
 * cache is thread-local and needs no lock.
 */
#include "engine/frame.h"

#include <stdlib.h>
#include <string.h>

/* Data capacities of the cached classes; bigger frames go to malloc. */
/* 512: a message record (struct emsg, about 300 bytes with its topic)
 * takes half the memory it would in the 1024 class, which counts when a
 * million of them are queued. */
static const uint32_t frame_class_size[] = {64, 256, 512, 1024, 4096, 16384};
#define FRAME_CLASSES (sizeof frame_class_size / sizeof frame_class_size[0])
/*
 * Bound on the memory each class keeps cached. It is in bytes rather than
 * frames because what must fit is the working set of a full in-flight
 * window: 50 publishers with 64 QoS 1 messages in flight each hold 6 400
 * small frames (payload and record), and at a 1 024-frame bound every
 * burst of acks freed the surplus only for the next burst to malloc it
 * again (4 % of broker CPU at p2p QoS 1). 2 MiB a class keeps 21 845
 * 64-byte frames and 128 of 16 KiB; at most 12 MiB stays cached after a
 * burst.
 */
#define FRAME_CACHE_BYTES (2u * 1024u * 1024u)

struct frame_cache {
	struct frame *head[FRAME_CLASSES];
	uint32_t count[FRAME_CLASSES];
};

static _Thread_local struct frame_cache frame_cache;

/* The class index for len, or FRAME_CLASSES when it is not cached. */
static unsigned frame_class(uint32_t len)
{
	for (unsigned i = 0; i < FRAME_CLASSES; i++)
		if (len <= frame_class_size[i])
			return i;
	return FRAME_CLASSES;
}

/* A cached frame keeps the next pointer of its free list in its data. */
static struct frame *frame_next(struct frame *f)
{
	struct frame *n;
	memcpy(&n, f->data, sizeof n);
	return n;
}

struct frame *frame_new(uint32_t len)
{
	unsigned k = frame_class(len);
	struct frame *f;
	if (k < FRAME_CLASSES && frame_cache.head[k]) {
		f = frame_cache.head[k];
		frame_cache.head[k] = frame_next(f);
		frame_cache.count[k]--;
	} else {
		size_t cap = k < FRAME_CLASSES ? frame_class_size[k] : len;
		f = malloc(sizeof *f + cap);
		if (!f)
			return NULL;
	}
	f->refs = 1;
	f->len = len;
	return f;
}

void frame_unref(struct frame *f)
{
	if (!f || --f->refs > 0)
		return;
	unsigned k = frame_class(f->len);
	if (k < FRAME_CLASSES && frame_cache.count[k] < FRAME_CACHE_BYTES / (sizeof *f + frame_class_size[k])) {
		struct frame *n = frame_cache.head[k];
		memcpy(f->data, &n, sizeof n);
		frame_cache.head[k] = f;
		frame_cache.count[k]++;
		return;
	}
	free(f);
}
