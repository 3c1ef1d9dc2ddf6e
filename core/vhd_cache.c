/*
 * vhd_cache.c - the record cache of the disk formats, a lock per slot
 * (vhd_cache.h).
 */
#include "vhd_cache.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int vhd_cache_init(struct vhd_cache *c, size_t budget, size_t record_size, uint64_t keys)
{
	uint64_t slots = budget / (sizeof(*c->slot) + record_size);

	memset(c, 0, sizeof(*c));
	if (slots == 0)
		slots = 1;
	if (slots > keys)
		slots = keys;
	if (slots == 0)
		return 0;
	c->slot = calloc((size_t)slots, sizeof(*c->slot));
	c->data = malloc((size_t)slots * record_size);
	if (!c->slot || !c->data) {
		free(c->slot);
		free(c->data);
		memset(c, 0, sizeof(*c));
		return -ENOMEM;
	}
	c->slots = (uint32_t)slots;
	c->record_size = record_size;
	for (uint32_t i = 0; i < c->slots; i++)
		pthread_mutex_init(&c->slot[i].lock, NULL);
	return 0;
}

void vhd_cache_release(struct vhd_cache *c)
{
	for (uint32_t i = 0; i < c->slots; i++)
		pthread_mutex_destroy(&c->slot[i].lock);
	free(c->slot);
	free(c->data);
	memset(c, 0, sizeof(*c));
}

int vhd_cache_get(struct vhd_cache *c, uint64_t key, vhd_cache_fill_fn fill, void *ctx,
		  const uint8_t **record, struct error *err)
{
	uint32_t i = (uint32_t)(key % c->slots);
	struct vhd_cache_slot *s = &c->slot[i];
	uint8_t *data = c->data + (size_t)i * c->record_size;

	pthread_mutex_lock(&s->lock);
	if (s->tag != key + 1) {
		int rc;

		s->tag = 0;
		rc = fill(ctx, key, data, err);
		if (rc < 0) {
			pthread_mutex_unlock(&s->lock);
			return rc;
		}
		s->tag = key + 1;
	}
	*record = data;
	return 0;
}

void vhd_cache_put(struct vhd_cache *c, uint64_t key)
{
	pthread_mutex_unlock(&c->slot[key % c->slots].lock);
}

void vhd_cache_update(struct vhd_cache *c, uint64_t key, size_t offset, const void *bytes,
		      size_t len)
{
	uint32_t i;

	if (c->slots == 0)
		return;
	i = (uint32_t)(key % c->slots);
	pthread_mutex_lock(&c->slot[i].lock);
	if (c->slot[i].tag == key + 1)
		memcpy(c->data + (size_t)i * c->record_size + offset, bytes, len);
	pthread_mutex_unlock(&c->slot[i].lock);
}

void vhd_cache_drop(struct vhd_cache *c)
{
	for (uint32_t i = 0; i < c->slots; i++) {
		pthread_mutex_lock(&c->slot[i].lock);
		c->slot[i].tag = 0;
		pthread_mutex_unlock(&c->slot[i].lock);
	}
}
