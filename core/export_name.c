/*
 * export_name.c - the names of export folders (see export_name.h).
 */
#include "export_name.h"

#include "utf8.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void export_safe_name(const char *name, char *out)
{
	const unsigned char *p = (const unsigned char *)name;
	size_t left = strlen(name), n = 0;

	while (left) {
		size_t len = utf8_decode(p, left, NULL);
		bool bad = len == 0 || (len == 1 && (*p < 0x20 || *p == 0x7f || *p == '/'));

		if (bad)
			len = 1;
		if (n + len > EXPORT_NAME_MAX)
			break;
		if (bad)
			out[n] = '_';
		else
			memcpy(out + n, p, len);
		n += len;
		p += len;
		left -= len;
	}
	out[n] = '\0';
	if (n == 0) {
		strcpy(out, "_");
	} else if (strcmp(out, ".") == 0 || strcmp(out, "..") == 0) {
		memmove(out + 1, out, n + 1);
		out[0] = '_';
	}
}

/* The oldest first: creation time, then GUID. */
static bool older(const struct export_name *a, const struct export_name *b)
{
	if (a->creation_time != b->creation_time)
		return a->creation_time < b->creation_time;
	return strcasecmp(a->id, b->id) < 0;
}

int export_assign_names(struct export_name *names, size_t count)
{
	char(*safe)[EXPORT_NAME_MAX + 2] = calloc(count ? count : 1, sizeof(*safe));
	char buf[EXPORT_NAME_MAX + 64];

	if (!safe)
		return -ENOMEM;
	for (size_t i = 0; i < count; i++)
		export_safe_name(names[i].name, safe[i]);
	for (size_t i = 0; i < count; i++) {
		bool keeps = true;

		/* Keeps its name when no namesake is older. */
		for (size_t j = 0; j < count && keeps; j++)
			if (j != i && strcasecmp(safe[i], safe[j]) == 0 &&
			    older(&names[j], &names[i]))
				keeps = false;
		if (keeps) {
			snprintf(buf, sizeof(buf), "%s", safe[i]);
		} else {
			bool whole = false;

			snprintf(buf, sizeof(buf), "%s (%.8s)", safe[i], names[i].id);
			/* Two GUIDs alike in 8 characters, or another thing named so: the
			 * whole GUID. */
			for (size_t j = 0; j < count; j++)
				if (j != i && ((strcasecmp(safe[i], safe[j]) == 0 &&
						strncasecmp(names[i].id, names[j].id, 8) == 0) ||
					       strcasecmp(buf, safe[j]) == 0))
					whole = true;
			if (whole)
				snprintf(buf, sizeof(buf), "%s (%s)", safe[i], names[i].id);
		}
		names[i].out = strdup(buf);
		if (!names[i].out) {
			for (size_t k = 0; k < i; k++) {
				free(names[k].out);
				names[k].out = NULL;
			}
			free(safe);
			return -ENOMEM;
		}
	}
	free(safe);
	return 0;
}
