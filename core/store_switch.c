/*
 * store_switch.c - the host's virtual switches, as the store keeps them in
 * switches.txt in its first root: a line "<GUID> <name>" each
 * (docs/FORMAT.md), written crash-safely under the store's lock.
 */
#include "store.h"

#include "config.h"
#include "error.h"
#include "fsutil.h"
#include "pathbuf.h"
#include "store_internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void store_switches_free(struct store_switch *switches, size_t count)
{
	if (!switches)
		return;
	for (size_t i = 0; i < count; i++)
		free(switches[i].name);
	free(switches);
}

const struct store_switch *store_find_switch(const struct store_switch *switches, size_t count,
					     const char *name)
{
	for (size_t i = 0; name && name[0] && i < count; i++)
		if (strcmp(switches[i].name, name) == 0)
			return &switches[i];
	for (size_t i = 0; name && name[0] && i < count; i++)
		if (strcasecmp(switches[i].id, name) == 0)
			return &switches[i];
	return NULL;
}

int store_switches(const struct store *s, struct store_switch **out, size_t *count,
		   struct error *err)
{
	struct pathbuf path = PATHBUF_INIT;
	char *line = NULL;
	size_t line_cap = 0, n = 0;
	struct store_switch *list = NULL;
	unsigned number = 0;
	int rc = 0;
	FILE *f;

	*out = NULL;
	*count = 0;
	if (pathbuf_setf(&path, "%s/%s", s->roots[0], STORE_SWITCHES_FILE) < 0)
		return error_set(err, ENOMEM, "out of memory");
	f = fopen(path.buf, "re");
	if (!f) {
		rc = errno == ENOENT ? 0 : error_errno(err, errno, "cannot read", path.buf);
		pathbuf_release(&path);
		return rc;
	}
	while (rc == 0 && getline(&line, &line_cap, f) >= 0) {
		struct store_switch *grown;

		number++;
		line[strcspn(line, "\r\n")] = '\0';
		if (!line[0] || line[0] == '#')
			continue;
		if (strlen(line) < 38 || line[36] != ' ') {
			rc = error_set(err, EINVAL, "'%s' line %u: want a GUID, a space and a name",
				       path.buf, number);
			break;
		}
		line[36] = '\0';
		if (!config_guid_valid(line)) {
			rc = error_set(err, EINVAL, "'%s' line %u: '%s' is not a GUID", path.buf,
				       number, line);
			break;
		}
		grown = realloc(list, (n + 1) * sizeof(*grown));
		if (!grown || !(grown[n].name = strdup(line + 37))) {
			list = grown ? grown : list;
			rc = error_set(err, ENOMEM, "out of memory");
			break;
		}
		list = grown;
		for (int i = 0; i < 36; i++)
			list[n].id[i] = (char)toupper((unsigned char)line[i]);
		list[n].id[36] = '\0';
		n++;
	}
	fclose(f);
	free(line);
	pathbuf_release(&path);
	if (rc < 0) {
		store_switches_free(list, n);
		return rc;
	}
	*out = list;
	*count = n;
	return 0;
}

static int store_add_switch_unlocked(struct store *s, const char *name, char id_out[37],
				     struct error *err)
{
	struct store_switch *list = NULL;
	size_t n = 0, len = 0;
	struct pathbuf path = PATHBUF_INIT;
	char *text = NULL, id[37];
	FILE *mem;
	int rc;

	rc = store_check_name(name, "switch", err);
	if (rc == 0)
		rc = store_switches(s, &list, &n, err);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i].name, name) == 0) {
			store_switches_free(list, n);
			return error_set(err, EEXIST, "a switch named '%s' exists already", name);
		}
	store_new_guid(id, true);
	mem = open_memstream(&text, &len);
	if (!mem) {
		store_switches_free(list, n);
		return error_set(err, ENOMEM, "out of memory");
	}
	fputs(STORE_SWITCHES_HEADER, mem);
	for (size_t i = 0; i < n; i++)
		fprintf(mem, "%s %s\n", list[i].id, list[i].name);
	fprintf(mem, "%s %s\n", id, name);
	rc = fclose(mem) == 0 ? 0 : -ENOMEM;
	store_switches_free(list, n);
	if (rc == 0)
		rc = pathbuf_setf(&path, "%s/%s", s->roots[0], STORE_SWITCHES_FILE);
	if (rc < 0)
		rc = error_set(err, ENOMEM, "out of memory");
	else if ((rc = fsutil_write_atomic(path.buf, text, len)) < 0)
		rc = error_errno(err, -rc, "cannot write", path.buf);
	free(text);
	pathbuf_release(&path);
	if (rc < 0)
		return rc;
	if (id_out)
		memcpy(id_out, id, 37);
	return 0;
}

int store_add_switch(struct store *s, const char *name, char id_out[37], struct error *err)
{
	int lock = store_lock(s, err), rc;

	if (lock < 0)
		return lock;
	rc = store_add_switch_unlocked(s, name, id_out, err);
	store_unlock(lock);
	return rc;
}
