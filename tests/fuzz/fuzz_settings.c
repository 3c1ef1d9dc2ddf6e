/*
 * fuzz_settings - the import settings document (core/import): any input is
 * parsed; a document that is accepted is written again and read back, and
 * the two readings must agree field for field (the writer refuses, with
 * -EINVAL, only values that cannot stand on a line: none that the parser
 * accepted, as it drops the spaces around values and refuses control
 * characters).
 */
#include "error.h"
#include "import.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same_text(const char *a, const char *b)
{
	if ((a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0))
		abort();
}

/* An unset item field is written as empty: compare it so. */
static void same_field(const char *a, const char *b)
{
	same_text(a ? a : "", b ? b : "");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct import_settings first, again;
	struct error err;
	char *text = NULL;
	size_t len = 0;
	FILE *out;
	int rc;

	error_clear(&err);
	if (import_settings_parse((const char *)data, size, "fuzz", &first, &err) < 0)
		return 0;
	out = open_memstream(&text, &len);
	if (!out)
		abort();
	rc = import_settings_write(&first, out);
	fclose(out);
	if (rc < 0)
		abort();
	if (import_settings_parse(text, len, "written", &again, &err) < 0)
		abort();
	if (first.create_copy != again.create_copy ||
	    first.generate_new_id != again.generate_new_id ||
	    first.resource_count != again.resource_count ||
	    first.network_count != again.network_count)
		abort();
	same_field(first.name, again.name);
	same_field(first.source_vm_data_root, again.source_vm_data_root);
	same_field(first.target_vhd_data_root, again.target_vhd_data_root);
	same_field(first.security_scope, again.security_scope);
	for (size_t i = 0; i < first.resource_count; i++) {
		same_field(first.resources[i].current, again.resources[i].current);
		same_field(first.resources[i].source, again.resources[i].source);
		same_field(first.resources[i].target, again.resources[i].target);
	}
	for (size_t i = 0; i < first.network_count; i++) {
		same_field(first.networks[i].source, again.networks[i].source);
		same_field(first.networks[i].target, again.networks[i].target);
	}
	import_settings_free(&first);
	import_settings_free(&again);
	free(text);
	return 0;
}
