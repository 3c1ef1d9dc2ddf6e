/*
 * store_names.c - names as Hyper-V takes them: compared without case (each
 * UTF-8 character folded to lower case), a VM or snapshot picked by its GUID
 * or its name, an ambiguous name refused with every candidate named.
 */
#include "store.h"

#include "error.h"
#include "utf8.h"

#include <ctype.h>
#include <errno.h>
#include <locale.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <wctype.h>

static pthread_once_t case_once = PTHREAD_ONCE_INIT;
/* C.UTF-8 for towlower_l(), or 0: ASCII only. Set once under case_once, then read-only. */
static locale_t case_locale;

static void case_locale_make(void)
{
	case_locale = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
}

/* The next code point of the UTF-8 text at *@p (before @end), moving past it; a byte that
 * starts no valid sequence stands for itself (names in configurations are not all valid). */
static uint32_t next_code_point(const unsigned char **p, const unsigned char *end)
{
	uint32_t c;
	size_t n = utf8_decode(*p, (size_t)(end - *p), &c);

	if (n == 0) {
		c = **p;
		n = 1;
	}
	*p += n;
	return c;
}

static uint32_t fold(uint32_t c)
{
	if (case_locale)
		return (uint32_t)towlower_l((wint_t)c, case_locale);
	return c < 0x80 ? (uint32_t)tolower((int)c) : c;
}

bool store_same_name(const char *a, const char *b)
{
	const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;
	const unsigned char *x_end = x + strlen(a), *y_end = y + strlen(b);

	pthread_once(&case_once, case_locale_make);
	while (x < x_end && y < y_end)
		if (fold(next_code_point(&x, x_end)) != fold(next_code_point(&y, y_end)))
			return false;
	return x == x_end && y == y_end;
}

/*
 * The candidates @names (@count, each with its GUID in @ids) as
 * "'NAME' (GUID), ..." into a new string, or NULL for ENOMEM.
 */
static char *candidates_text(const char *const *names, const char *const *ids, size_t count)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		return NULL;
	for (size_t i = 0; i < count; i++)
		fprintf(f, "%s'%s' (%s)", i ? ", " : "", names[i], ids[i][0] ? ids[i] : "no GUID");
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

/*
 * Pick one of @count items by @name_or_id, as Hyper-V takes names: the GUID
 * in any case, else the one item of that exact name, else the one item of
 * that name in another case. @name_of and @id_of read item @i. Returns the
 * index, -ENOENT (no message), or -EINVAL with a message naming the
 * candidates of an ambiguous name (@what: "VM", "snapshot"; @where: a
 * prefix for the message, may be "").
 */
static int pick_by_name(size_t count, const char *(*name_of)(const void *, size_t),
			const char *(*id_of)(const void *, size_t), const void *items,
			const char *name_or_id, const char *what, const char *where,
			struct error *err)
{
	const char **names, **ids;
	size_t exact = 0, folded = 0, n = 0;
	ssize_t found = -1;
	bool by_case;
	char *list;
	int rc;

	for (size_t i = 0; i < count; i++)
		if (id_of(items, i)[0] && strcasecmp(id_of(items, i), name_or_id) == 0)
			return (int)i;
	for (size_t i = 0; i < count; i++) {
		if (strcmp(name_of(items, i), name_or_id) == 0 && exact++ == 0)
			found = (ssize_t)i;
		if (store_same_name(name_of(items, i), name_or_id))
			folded++;
	}
	if (exact == 1)
		return (int)found;
	if (exact == 0 && folded == 0)
		return -ENOENT;
	if (exact == 0 && folded == 1) {
		for (size_t i = 0; i < count; i++)
			if (store_same_name(name_of(items, i), name_or_id))
				return (int)i;
	}
	/* Several: name them all, so that the one meant can be given. */
	by_case = exact == 0;
	names = calloc(count, sizeof(*names));
	ids = calloc(count, sizeof(*ids));
	for (size_t i = 0; names && ids && i < count; i++)
		if (by_case ? store_same_name(name_of(items, i), name_or_id)
			    : strcmp(name_of(items, i), name_or_id) == 0) {
			names[n] = name_of(items, i);
			ids[n++] = id_of(items, i);
		}
	list = names && ids ? candidates_text(names, ids, n) : NULL;
	free(names);
	free(ids);
	if (!list)
		return error_set(err, ENOMEM, "out of memory");
	if (by_case)
		rc = error_set(err, EINVAL,
			       "%s'%s' matches %zu %ss when case is ignored: %s; give the exact "
			       "name or the GUID",
			       where, name_or_id, n, what, list);
	else
		rc = error_set(err, EINVAL, "%s%zu %ss are named '%s': %s; give the GUID", where, n,
			       what, name_or_id, list);
	free(list);
	return rc;
}

static const char *vm_name_at(const void *items, size_t i)
{
	return ((const struct store_vm *)items)[i].name;
}

static const char *vm_id_at(const void *items, size_t i)
{
	return ((const struct store_vm *)items)[i].id;
}

static const char *snapshot_name_at(const void *items, size_t i)
{
	return ((const struct store_snapshot *)items)[i].name;
}

static const char *snapshot_id_at(const void *items, size_t i)
{
	return ((const struct store_snapshot *)items)[i].id;
}

int store_pick_vm(const struct store_vm *vms, size_t count, const char *name_or_id,
		  const struct store_vm **vm, struct error *err)
{
	int rc = pick_by_name(count, vm_name_at, vm_id_at, vms, name_or_id, "VM", "", err);

	*vm = rc >= 0 ? &vms[rc] : NULL;
	if (rc == -ENOENT)
		return error_set(err, ENOENT, "no VM named '%s' in the store", name_or_id);
	return rc < 0 ? rc : 0;
}

int store_pick_snapshot(const struct store_vm *vm, const char *name_or_id,
			const struct store_snapshot **snapshot, struct error *err)
{
	char where[300];
	int rc;

	snprintf(where, sizeof(where), "in VM '%s', ", vm->name);
	rc = pick_by_name(vm->snapshot_count, snapshot_name_at, snapshot_id_at, vm->snapshots,
			  name_or_id, "snapshot", where, err);
	*snapshot = rc >= 0 ? &vm->snapshots[rc] : NULL;
	if (rc == -ENOENT)
		return error_set(err, ENOENT, "VM '%s' has no snapshot '%s'", vm->name, name_or_id);
	return rc < 0 ? rc : 0;
}

const struct store_vm *store_find_vm(const struct store_vm *vms, size_t count,
				     const char *name_or_id)
{
	if (!name_or_id[0])
		return NULL;
	for (size_t i = 0; i < count; i++)
		if (strcasecmp(vms[i].id, name_or_id) == 0)
			return &vms[i];
	for (size_t i = 0; i < count; i++)
		if (strcmp(vms[i].name, name_or_id) == 0)
			return &vms[i];
	return NULL;
}
