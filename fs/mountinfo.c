/*
 * /proc/self/mountinfo, one line a mount (proc(5)):
 *   ID PARENT MAJOR:MINOR ROOT MOUNT-POINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER-OPTIONS
 * with blanks and backslashes in the paths written as octal escapes.
 */
#include "mountinfo.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>

/*
 * The field at *@at (up to a blank or the end of the line), its octal escapes
 * decoded, into @out (@cap bytes, cut short if longer); *@at then points past it
 * and the blank after it.
 */
static void take_field(const char **at, char *out, size_t cap)
{
	const char *s = *at;
	size_t n = 0;

	while (*s && *s != ' ' && *s != '\n') {
		char c = *s++;

		if (c == '\\' && s[0] >= '0' && s[0] <= '3' && s[1] >= '0' && s[1] <= '7' &&
		    s[2] >= '0' && s[2] <= '7') {
			c = (char)((s[0] - '0') * 64 + (s[1] - '0') * 8 + (s[2] - '0'));
			s += 3;
		}
		if (n + 1 < cap)
			out[n++] = c;
	}
	if (cap)
		out[n] = '\0';
	*at = *s == ' ' ? s + 1 : s;
}

int mountinfo_find(const char *point, struct mountinfo_entry *entry)
{
	FILE *f = fopen("/proc/self/mountinfo", "re"); /* door: /proc, the kernel's */
	char *line = NULL, *field = NULL;
	size_t cap = 0;
	int rc = -ENOENT;

	if (!f)
		return -errno;
	field = malloc(PATH_MAX);
	if (!field) {
		fclose(f);
		return -ENOMEM;
	}
	while (getline(&line, &cap, f) > 0) {
		unsigned id, parent, major_number, minor_number;
		const char *at, *rest;
		int n = 0;

		if (sscanf(line, "%u %u %u:%u %*s %n", &id, &parent, &major_number, &minor_number,
			   &n) != 4 ||
		    n == 0)
			continue;
		at = line + n;
		take_field(&at, field, PATH_MAX);
		if (strcmp(field, point) != 0 || !(rest = strstr(at, " - ")))
			continue;
		at = rest + 3;
		entry->device = makedev(major_number, minor_number);
		take_field(&at, entry->type, sizeof(entry->type));
		take_field(&at, entry->source, sizeof(entry->source));
		rc = 0;
	}
	free(field);
	free(line);
	fclose(f);
	return rc;
}
