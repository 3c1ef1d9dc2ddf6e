/*
 * openfiles.h - the files a mount has open, so that those whose RELEASE never
 * came are closed with it: a lazy unmount, or a file closed just before an
 * unmount, can end the session with its release request still queued. Each
 * mount's handle holds a struct openfiles_link named "link"; the list has a
 * lock of its own.
 */
#ifndef IMPEX_OPENFILES_H
#define IMPEX_OPENFILES_H

#include <pthread.h>
#include <stddef.h>

struct openfiles_link {
	struct openfiles_link *prev, *next;
};

struct openfiles {
	pthread_mutex_t lock;
	struct openfiles_link *first; /* guarded by lock */
};

/* The handle of type @type whose member "link" is @l. */
#define OPENFILES_HANDLE(l, type) ((type *)(void *)((char *)(l) - offsetof(type, link)))

static inline void openfiles_init(struct openfiles *o)
{
	pthread_mutex_init(&o->lock, NULL);
	o->first = NULL;
}

/** A file opened. */
static inline void openfiles_add(struct openfiles *o, struct openfiles_link *l)
{
	pthread_mutex_lock(&o->lock);
	l->prev = NULL;
	l->next = o->first;
	if (o->first)
		o->first->prev = l;
	o->first = l;
	pthread_mutex_unlock(&o->lock);
}

/** A file released (or taken by openfiles_take()). */
static inline void openfiles_remove(struct openfiles *o, struct openfiles_link *l)
{
	pthread_mutex_lock(&o->lock);
	if (l->prev)
		l->prev->next = l->next;
	else
		o->first = l->next;
	if (l->next)
		l->next->prev = l->prev;
	pthread_mutex_unlock(&o->lock);
}

/** Once the session's loop has ended: a file still open, taken out, or NULL if none is. */
static inline struct openfiles_link *openfiles_take(struct openfiles *o)
{
	struct openfiles_link *l;

	pthread_mutex_lock(&o->lock);
	l = o->first;
	pthread_mutex_unlock(&o->lock);
	if (l)
		openfiles_remove(o, l);
	return l;
}

#endif
