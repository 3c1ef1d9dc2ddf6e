/*
 * Unit tests of core/import: the settings document, read and written.
 * Expected values are written here by hand from the document's definition
 * in core/import.h, not taken from the code's output.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "error.h"
#include "import.h"

static const char document[] =
	"# a comment\r\n"
	"create_copy = false\r\n"
	"generate_new_id=true\n"
	"   name   =   gold image  \n"
	"\n"
	"source_vm_data_root = /media/backup/gold\n"
	"source_vhd_data_root = /media/backup/gold/Virtual Hard Disks\n"
	"source_snapshot_data_root = /media/backup/gold\n"
	"target_vm_data_root = /srv/vms\n"
	"target_vhd_data_root = /srv/disks\n"
	"target_snapshot_data_root = /srv/snapshots\n"
	"security_scope =\n"
	"disconnect_unknown_switches = true\n"
	"resource.2.current = Virtual Hard Disks\\data.vhd\n"
	"resource.1.current = Virtual Hard Disks\\gold.vhd\n"
	"resource.1.source = /elsewhere/gold.vhd\n"
	"resource.1.target = /srv/disks/gold = 1.vhd\n"
	"network.1.source = External\n"
	"network.1.target =\n";

static void test_parse(void **state)
{
	struct import_settings s;
	struct error err;

	(void)state;
	error_clear(&err);
	assert_int_equal(import_settings_parse(document, strlen(document), "doc", &s, &err), 0);
	assert_false(s.create_copy);
	assert_true(s.generate_new_id);
	assert_string_equal(s.name, "gold image");
	assert_string_equal(s.source_vhd_data_root, "/media/backup/gold/Virtual Hard Disks");
	assert_string_equal(s.target_snapshot_data_root, "/srv/snapshots");
	assert_string_equal(s.security_scope, "");
	assert_true(s.disconnect_unknown_switches);
	assert_true(s.disconnect_unknown_switches_given);
	assert_int_equal(s.resource_count, 2);
	assert_string_equal(s.resources[0].current, "Virtual Hard Disks\\gold.vhd");
	assert_string_equal(s.resources[0].source, "/elsewhere/gold.vhd");
	/* Only the first '=' separates. */
	assert_string_equal(s.resources[0].target, "/srv/disks/gold = 1.vhd");
	/* Fields not given stay unset: the import fills them from the roots. */
	assert_string_equal(s.resources[1].current, "Virtual Hard Disks\\data.vhd");
	assert_null(s.resources[1].source);
	assert_null(s.resources[1].target);
	assert_int_equal(s.network_count, 1);
	assert_string_equal(s.networks[0].source, "External");
	assert_string_equal(s.networks[0].target, "");
	import_settings_free(&s);
}

/* Written, then read back: the same settings. */
static void test_round_trip(void **state)
{
	struct import_settings s, again;
	struct error err;
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);

	(void)state;
	error_clear(&err);
	assert_int_equal(import_settings_parse(document, strlen(document), "doc", &s, &err), 0);
	free(s.resources[1].source);
	s.resources[1].source = strdup("/x");
	s.resources[1].target = strdup("");
	assert_int_equal(import_settings_write(&s, out), 0);
	fclose(out);
	assert_int_equal(import_settings_parse(text, len, "written", &again, &err), 0);
	assert_int_equal(again.create_copy, s.create_copy);
	assert_true(again.disconnect_unknown_switches);
	assert_string_equal(again.name, s.name);
	assert_string_equal(again.target_vhd_data_root, s.target_vhd_data_root);
	assert_int_equal(again.resource_count, 2);
	assert_string_equal(again.resources[0].target, "/srv/disks/gold = 1.vhd");
	assert_string_equal(again.resources[1].source, "/x");
	assert_string_equal(again.resources[1].target, "");
	assert_string_equal(again.networks[0].target, "");
	import_settings_free(&again);
	free(text);

	/* A value that cannot stand on one line is refused, not written broken. */
	free(s.name);
	s.name = strdup("two\nlines");
	out = open_memstream(&text, &len);
	assert_int_equal(import_settings_write(&s, out), -EINVAL);
	fclose(out);
	free(text);
	import_settings_free(&s);
}

static void refused(const char *text, const char *says)
{
	struct import_settings s;
	struct error err;

	error_clear(&err);
	assert_int_equal(import_settings_parse(text, strlen(text), "bad.txt", &s, &err), -EINVAL);
	if (!strstr(error_message(&err), says))
		fail_msg("'%s' does not say '%s'", error_message(&err), says);
	assert_non_null(strstr(error_message(&err), "bad.txt"));
	/* Nothing is left allocated in a refused document. */
	assert_null(s.name);
	assert_int_equal(s.resource_count, 0);
}

static void test_refusals(void **state)
{
	(void)state;
	refused("colour = blue\n", "unknown key 'colour'");
	refused("name = a\nname = b\n", "line 2: 'name' is given twice");
	refused("create_copy = yes\n", "true or false");
	refused("disconnect_unknown_switches = yes\n", "true or false");
	refused("disconnect_unknown_switches = true\ndisconnect_unknown_switches = false\n",
		"line 2: 'disconnect_unknown_switches' is given twice");
	refused("name blog\n", "line 1: no '='");
	refused("name = a\tb\n", "control character");
	refused("resource.1.source = /x\n", "resource.1 has no 'current'");
	refused("network.1.source = External\n", "network.1 needs 'source' and 'target'");
	refused("resource.0.current = x\n", "unknown key 'resource.0.current'");
	refused("resource.4097.current = x\n", "too many items");
	refused("resource.1.size = 3\n", "unknown key");
	refused("resource.1.current = a\nresource.1.current = b\n", "given twice");
	refused("resource.x.current = a\n", "unknown key");
	{
		static const char nul[] = "name = a\0b\n";
		struct import_settings s;
		struct error err;

		error_clear(&err);
		assert_int_equal(import_settings_parse(nul, sizeof(nul) - 1, "nul", &s, &err),
				 -EINVAL);
		assert_non_null(strstr(error_message(&err), "NUL"));
	}
}

/* Items are numbered by the writer of the document: gaps are allowed. */
static void test_gaps(void **state)
{
	static const char text[] = "network.3.source = A\nnetwork.3.target = B\n"
				   "resource.7.current = x\n";
	struct import_settings s;
	struct error err;

	(void)state;
	error_clear(&err);
	assert_int_equal(import_settings_parse(text, strlen(text), "gaps", &s, &err), 0);
	assert_int_equal(s.network_count, 1);
	assert_string_equal(s.networks[0].source, "A");
	assert_string_equal(s.networks[0].target, "B");
	assert_int_equal(s.resource_count, 1);
	assert_string_equal(s.resources[0].current, "x");
	assert_false(s.create_copy_given);
	assert_false(s.disconnect_unknown_switches_given);
	assert_false(s.disconnect_unknown_switches);
	import_settings_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_gaps),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
