/*
 * fuzz_journal - the reader of import journals (core/journal), which
 * recovery runs as root: any input is parsed; an accepted journal's every
 * entry is an absolute path with no newline or NUL, shorter than PATH_MAX,
 * and the entries are freed.
 */
#include "error.h"
#include "journal.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct journal_entry *entries = NULL;
	size_t count = 0;
	struct error err;

	error_clear(&err);
	if (journal_parse((const char *)data, size, "fuzz", &entries, &count, &err) == 0) {
		for (size_t i = 0; i < count; i++) {
			size_t n = strlen(entries[i].path);

			if (entries[i].path[0] != '/' || n >= PATH_MAX || strchr(entries[i].path, '\n'))
				abort();
		}
	} else if (!err.message[0] || entries || count) {
		abort(); /* a refusal says why, and gives nothing */
	}
	journal_entries_free(entries, count);
	return 0;
}
