/*
 * Unit tests of core/config: Hyper-V configuration files read, edited and
 * written back. The fixture is shaped like Hyper-V's files (UTF-16LE with a
 * byte-order mark, CRLF, device nodes, typed leaves, base64 bytes with a
 * trailing newline); expected bytes are built here by plain string edits of
 * the input, never by the module under test.
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

#include "config.h"
#include "error.h"
#include "support.h"

#define IDE "_83f8638b-8dca-4152-9eda-2ca8b33039b4_"

/* A VM configuration as Hyper-V lays one out, with LF line ends (CRLF is
 * added where a test wants it). */
static const char fixture[] =
	"<?xml version=\"1.0\" encoding=\"UTF-16\" standalone=\"yes\"?>\n"
	"<configuration>\n"
	"  <" IDE ">\n"
	"    <controller0>\n"
	"      <drive0>\n"
	"        <pathname type=\"string\">C:\\VMs\\blog\\Virtual Hard Disks\\blog.vhd</pathname>\n"
	"        <type type=\"string\">VHD</type>\n"
	"      </drive0>\n"
	"      <drive1>\n"
	"        <pathname type=\"string\"></pathname>\n"
	"        <type type=\"string\">NONE</type>\n"
	"      </drive1>\n"
	"    </controller0>\n"
	"  </" IDE ">\n"
	"  <_2b0c8c8b-4bd4-4c35-8ef3-aa4b2a5f1a01_>\n"
	"    <Connection>\n"
	"      <AltPortName type=\"string\">Network Adapter</AltPortName>\n"
	"      <AltSwitchName type=\"string\">External &amp; \"LAN\" &lt;1&gt;</AltSwitchName>\n"
	"    </Connection>\n"
	"    <MacAddress type=\"string\">00-15-5D-01-02-03</MacAddress>\n"
	"    <MacAddressIsStatic type=\"bool\">False</MacAddressIsStatic>\n"
	"    <SwitchName type=\"string\">6A3D1B4C-0E3F-4D2A-9C1B-2F3E4D5C6B7A</SwitchName>\n"
	"  </_2b0c8c8b-4bd4-4c35-8ef3-aa4b2a5f1a01_>\n"
	"  <_a1b2c3d4-0000-4000-8000-000000000001_>\n"
	"    <controller0>\n"
	"      <drive0>\n"
	"        <pathname type=\"string\">C:\\VMs\\blog\\data.vhd</pathname>\n"
	"        <type type=\"string\">VHD</type>\n"
	"      </drive0>\n"
	"    </controller0>\n"
	"  </_a1b2c3d4-0000-4000-8000-000000000001_>\n"
	"  <global_settings>\n"
	"    <snapshots>\n"
	"      <list>\n"
	"        <size type=\"integer\">0</size>\n"
	"      </list>\n"
	"    </snapshots>\n"
	"  </global_settings>\n"
	"  <manifest>\n"
	"    <size type=\"integer\">2</size>\n"
	"    <vdev001>\n"
	"      <device type=\"string\">83f8638b-8dca-4152-9eda-2ca8b33039b4</device>\n"
	"      <flags type=\"integer\">1</flags>\n"
	"    </vdev001>\n"
	"    <vdev002>\n"
	"      <device type=\"string\">d422512d-2bf2-4752-809d-7b82b5fcb1b4</device>\n"
	"      <instance type=\"string\">A1B2C3D4-0000-4000-8000-000000000001</instance>\n"
	"    </vdev002>\n"
	"  </manifest>\n"
	"  <properties>\n"
	"    <creation_time type=\"bytes\">gF3bnYmLzwE=\n"
	"</creation_time>\n"
	"    <global_id type=\"string\">0F5B5E1A-2C3D-4E5F-8A9B-0C1D2E3F4A5B</global_id>\n"
	"    <name type=\"string\">blog \xC3\xA9t\xC3\xA9</name>\n"
	"    <type_id type=\"string\">Virtual Machines</type_id>\n"
	"    <version type=\"integer\">1280</version>\n"
	"    <subtype type=\"integer\">1</subtype>\n"
	"    <unknown_future_key type=\"integer\">-7</unknown_future_key>\n"
	"  </properties>\n"
	"</configuration>\n";

/* @s with every "\n" made "\r\n". Caller frees. */
static char *crlf(const char *s)
{
	char *out = malloc(strlen(s) * 2 + 1), *o = out;

	for (; *s; s++) {
		if (*s == '\n')
			*o++ = '\r';
		*o++ = *s;
	}
	*o = '\0';
	return out;
}

/* UTF-16LE with a byte-order mark of @s (UTF-8 of at most two bytes a
 * character), encoded here by hand. Caller frees; length in *@len. */
static char *utf16le(const char *s, size_t *len)
{
	const unsigned char *p = (const unsigned char *)s;
	char *out = malloc(strlen(s) * 2 + 2);
	size_t n = 0;

	out[n++] = (char)0xFF;
	out[n++] = (char)0xFE;
	while (*p) {
		unsigned cp = *p < 0x80 ? *p : (unsigned)(p[0] & 0x1F) << 6 | (p[1] & 0x3F);

		p += *p < 0x80 ? 1 : 2;
		out[n++] = (char)(cp & 0xFF);
		out[n++] = (char)(cp >> 8);
	}
	*len = n;
	return out;
}

/* @s with its first @old replaced by @new. Caller frees. */
static char *replaced(const char *s, const char *old, const char *new)
{
	const char *at = strstr(s, old);
	char *out;

	assert_non_null(at);
	out = malloc(strlen(s) - strlen(old) + strlen(new) + 1);
	memcpy(out, s, (size_t)(at - s));
	strcpy(out + (at - s), new);
	strcat(out, at + strlen(old));
	return out;
}

static struct config *parse_ok(const void *data, size_t len)
{
	struct config *c = NULL;
	struct error err;

	if (config_parse(&c, data, len, "vm.xml", &err) != 0)
		fail_msg("parse: %s", err.message);
	return c;
}

static void assert_serializes_to(const struct config *c, const void *want, size_t want_len)
{
	char *out = NULL;
	size_t len = 0;
	struct error err;

	assert_int_equal(config_serialize(c, &out, &len, &err), 0);
	if (len != want_len || memcmp(out, want, len) != 0) {
		size_t i = 0;

		while (i < len && i < want_len && out[i] == ((const char *)want)[i])
			i++;
		fail_msg("serialized %zu bytes, want %zu; first difference at byte %zu", len,
			 want_len, i);
	}
	free(out);
}

static void test_utf16_crlf_byte_for_byte(void **state)
{
	char *text = crlf(fixture);
	size_t len;
	char *bytes = utf16le(text, &len);
	struct config *c = parse_ok(bytes, len);
	char *value;

	(void)state;
	assert_int_equal(config_encoding(c), CONFIG_UTF16LE);
	assert_false(config_changed(c));
	assert_int_equal(config_get(c, "properties/name", &value, NULL), 0);
	assert_string_equal(value, "blog \xC3\xA9t\xC3\xA9");
	free(value);
	assert_serializes_to(c, bytes, len);
	config_free(c);
	free(bytes);
	free(text);
}

static void test_utf8_byte_for_byte(void **state)
{
	char *with_bom = malloc(sizeof(fixture) + 3);
	struct config *c;

	(void)state;
	/* UTF-8 without a mark, but declaring UTF-16: the declaration is corrected. */
	c = parse_ok(fixture, strlen(fixture));
	assert_int_equal(config_encoding(c), CONFIG_UTF8);
	{
		char *want = replaced(fixture, "encoding=\"UTF-16\"", "encoding=\"UTF-8\"");

		assert_serializes_to(c, want, strlen(want));
		/* A declaration that tells the truth is kept as it is. */
		config_free(c);
		c = parse_ok(want, strlen(want));
		assert_serializes_to(c, want, strlen(want));
		config_free(c);
		/* With a byte-order mark. */
		memcpy(with_bom, "\xEF\xBB\xBF", 3);
		strcpy(with_bom + 3, want);
		c = parse_ok(with_bom, strlen(want) + 3);
		assert_int_equal(config_encoding(c), CONFIG_UTF8_BOM);
		assert_serializes_to(c, with_bom, strlen(want) + 3);
		free(want);
	}
	config_free(c);
	free(with_bom);
}

static void test_typed_values(void **state)
{
	struct config *c = parse_ok(fixture, strlen(fixture));
	char *value, *type;
	int64_t number;
	bool flag;
	uint8_t *bytes;
	size_t len;
	const uint8_t filetime[8] = {0x80, 0x5d, 0xdb, 0x9d, 0x89, 0x8b, 0xcf, 0x01};

	(void)state;
	assert_int_equal(config_get(c, IDE "/controller0/drive0/pathname", &value, &type), 0);
	assert_string_equal(value, "C:\\VMs\\blog\\Virtual Hard Disks\\blog.vhd");
	assert_string_equal(type, "string");
	free(value);
	free(type);
	assert_int_equal(config_get(c, IDE "/controller0/drive1/pathname", &value, NULL), 0);
	assert_string_equal(value, "");
	free(value);
	assert_int_equal(config_get(c, "_2b0c8c8b-4bd4-4c35-8ef3-aa4b2a5f1a01_/Connection/AltSwitchName",
				    &value, NULL),
			 0);
	assert_string_equal(value, "External & \"LAN\" <1>");
	free(value);
	assert_int_equal(config_get_int(c, "properties/version", &number), 0);
	assert_int_equal(number, 1280);
	assert_int_equal(config_get_int(c, "properties/unknown_future_key", &number), 0);
	assert_int_equal(number, -7);
	assert_int_equal(config_get_int(c, "properties/name", &number), -EINVAL);
	assert_int_equal(config_get_bool(c, "_2b0c8c8b-4bd4-4c35-8ef3-aa4b2a5f1a01_/MacAddressIsStatic",
					 &flag),
			 0);
	assert_false(flag);
	assert_int_equal(config_get_bytes(c, "properties/creation_time", &bytes, &len), 0);
	assert_int_equal(len, 8);
	assert_memory_equal(bytes, filetime, 8);
	free(bytes);
	assert_int_equal(config_get(c, "properties/nothing", &value, NULL), -ENOENT);
	assert_int_equal(config_get(c, "properties", &value, NULL), -EISDIR);
	assert_int_equal(config_get(c, "", &value, NULL), -ENOENT);
	config_free(c);
}

static void test_children(void **state)
{
	struct config *c = parse_ok(fixture, strlen(fixture));
	char **names;
	size_t count;

	(void)state;
	assert_int_equal(config_children(c, "", &names, &count), 0);
	assert_int_equal(count, 6);
	assert_string_equal(names[0], IDE);
	assert_string_equal(names[3], "global_settings");
	assert_string_equal(names[5], "properties");
	config_names_free(names, count);
	assert_int_equal(config_children(c, "manifest/vdev001", &names, &count), 0);
	assert_int_equal(count, 2);
	assert_string_equal(names[1], "flags");
	config_names_free(names, count);
	assert_int_equal(config_children(c, "nope", &names, &count), -ENOENT);
	config_free(c);
}

/* Edits change exactly what they must: the expected bytes are the input
 * edited as text. */
static void test_edits(void **state)
{
	char *text = crlf(fixture), *want, *step;
	size_t len, want_len;
	char *bytes = utf16le(text, &len), *want_bytes;
	struct config *c = parse_ok(bytes, len);
	struct error err;

	(void)state;
	assert_int_equal(config_set(c, IDE "/controller0/drive0/pathname", NULL,
				    "D:\\New & <Improved>\\blog.vhd", &err),
			 0);
	assert_true(config_changed(c));
	assert_int_equal(config_set_int(c, "global_settings/snapshots/list/size", 2, &err), 0);
	/* A new leaf in an existing container, and one in new containers. */
	assert_int_equal(config_set(c, "properties/impexfs_note", "string", "x", &err), 0);
	assert_int_equal(config_set(c, "settings/global/logical_id", "string", "ID", &err), 0);
	/* Filling an empty leaf, and removing one. */
	assert_int_equal(config_set(c, IDE "/controller0/drive1/pathname", NULL, "E:\\d.iso", &err), 0);
	assert_int_equal(config_remove(c, "properties/unknown_future_key"), 0);

	want = replaced(fixture, "C:\\VMs\\blog\\Virtual Hard Disks\\blog.vhd",
			"D:\\New &amp; &lt;Improved&gt;\\blog.vhd");
	step = replaced(want, "<size type=\"integer\">0</size>", "<size type=\"integer\">2</size>");
	free(want);
	want = replaced(step, "    <unknown_future_key type=\"integer\">-7</unknown_future_key>\n",
			"    <impexfs_note type=\"string\">x</impexfs_note>\n");
	free(step);
	step = replaced(want, "  </properties>\n",
			"  </properties>\n"
			"  <settings>\n"
			"    <global>\n"
			"      <logical_id type=\"string\">ID</logical_id>\n"
			"    </global>\n"
			"  </settings>\n");
	free(want);
	want = replaced(step, "<pathname type=\"string\"></pathname>",
			"<pathname type=\"string\">E:\\d.iso</pathname>");
	free(step);
	step = crlf(want);
	want_bytes = utf16le(step, &want_len);
	assert_serializes_to(c, want_bytes, want_len);

	/* Setting a type on an existing leaf, errors. */
	assert_int_equal(config_set(c, "properties", "string", "x", &err), -EISDIR);
	assert_int_equal(config_set(c, "properties/name/inner", "string", "x", &err), -EISDIR);
	assert_int_equal(config_set(c, "properties/new", NULL, "x", &err), -EINVAL);
	assert_int_equal(config_set(c, "properties/../x", "string", "x", &err), -EINVAL);
	assert_int_equal(config_set(c, "properties//x", "string", "x", &err), -EINVAL);
	assert_int_equal(config_remove(c, "properties/none"), -ENOENT);
	free(want);
	free(step);
	free(want_bytes);
	free(bytes);
	free(text);
	config_free(c);
}

/* What config_edit_leaves() offered, in order. */
struct offered {
	char what[32][80];
	size_t count;
	const char *stop_at; /* a leaf name whose offer fails with -EIO */
};

static int offer(void *ctx, const char *name, const char *type, const char *text, char **value)
{
	struct offered *o = ctx;

	if (o->count < 32)
		snprintf(o->what[o->count], sizeof(o->what[0]), "%s %s %s", name, type ? type : "-",
			 text);
	o->count++;
	if (o->stop_at && strcmp(name, o->stop_at) == 0)
		return -EIO;
	if (strcmp(name, "SwitchName") == 0) {
		*value = strdup("{1-2} & <x>");
		return 1;
	}
	return 0;
}

/* Every leaf is offered once, in document order, with its type and text; the ones edited
 * change as config_set() would change them, the rest stays byte for byte. */
static void test_edit_leaves(void **state)
{
	static const char *const want[] = {
		"pathname string C:\\VMs\\blog\\Virtual Hard Disks\\blog.vhd",
		"type string VHD",
		"pathname string ",
		"type string NONE",
		"AltPortName string Network Adapter",
		"AltSwitchName string External & \"LAN\" <1>",
		"MacAddress string 00-15-5D-01-02-03",
		"MacAddressIsStatic bool False",
		"SwitchName string 6A3D1B4C-0E3F-4D2A-9C1B-2F3E4D5C6B7A",
		"pathname string C:\\VMs\\blog\\data.vhd",
		"type string VHD",
		"size integer 0",
		"size integer 2",
		"device string 83f8638b-8dca-4152-9eda-2ca8b33039b4",
		"flags integer 1",
		"device string d422512d-2bf2-4752-809d-7b82b5fcb1b4",
		"instance string A1B2C3D4-0000-4000-8000-000000000001",
		"creation_time bytes gF3bnYmLzwE=\n",
		"global_id string 0F5B5E1A-2C3D-4E5F-8A9B-0C1D2E3F4A5B",
		"name string blog \xC3\xA9t\xC3\xA9",
		"type_id string Virtual Machines",
		"version integer 1280",
		"subtype integer 1",
		"unknown_future_key integer -7",
	};
	size_t n = sizeof(want) / sizeof(want[0]), len, want_len;
	char *text = crlf(fixture), *bytes = utf16le(text, &len), *edited, *edited_crlf;
	char *want_bytes;
	struct config *c = parse_ok(bytes, len);
	struct offered o = {.count = 0};

	(void)state;
	assert_int_equal(config_edit_leaves(c, offer, &o), 0);
	assert_int_equal(o.count, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(o.what[i], want[i]);
	assert_true(config_changed(c));
	edited = replaced(fixture, "6A3D1B4C-0E3F-4D2A-9C1B-2F3E4D5C6B7A", "{1-2} &amp; &lt;x&gt;");
	edited_crlf = crlf(edited);
	want_bytes = utf16le(edited_crlf, &want_len);
	assert_serializes_to(c, want_bytes, want_len);
	config_free(c);

	/* A failing offer stops the walk with its errno. */
	c = parse_ok(bytes, len);
	o = (struct offered){.count = 0, .stop_at = "MacAddress"};
	assert_int_equal(config_edit_leaves(c, offer, &o), -EIO);
	assert_int_equal(o.count, 7);
	assert_false(config_changed(c));
	config_free(c);
	free(want_bytes);
	free(edited_crlf);
	free(edited);
	free(bytes);
	free(text);
}

static void test_change_encoding_and_save(void **state)
{
	char *dir = support_tempdir();
	const char *path = support_path(dir, "0F5B5E1A-2C3D-4E5F-8A9B-0C1D2E3F4A5B.xml");
	char *text = crlf(fixture), *want = replaced(text, "encoding=\"UTF-16\"", "encoding=\"UTF-8\"");
	size_t len;
	char *bytes = utf16le(text, &len);
	struct config *c = parse_ok(bytes, len), *back;
	struct error err;
	uint8_t *on_disk;

	(void)state;
	config_set_encoding(c, CONFIG_UTF8);
	assert_true(config_changed(c));
	assert_serializes_to(c, want, strlen(want));
	assert_int_equal(config_save(c, path, &err), 0);
	on_disk = malloc(strlen(want));
	support_read(path, 0, on_disk, strlen(want));
	assert_memory_equal(on_disk, want, strlen(want));
	assert_int_equal(support_file_size(path), strlen(want));
	assert_int_equal(config_load(&back, path, &err), 0);
	assert_int_equal(config_encoding(back), CONFIG_UTF8);
	config_free(back);
	/* A folder that does not exist: nothing is written. */
	assert_true(config_save(c, support_path(dir, "none/x.xml"), &err) < 0);
	assert_non_null(strstr(err.message, "none/x.xml"));
	free(on_disk);
	free(want);
	free(bytes);
	free(text);
	config_free(c);
	support_remove_tree(dir);
}

static void rejected(const void *data, size_t len, int code, const char *needle)
{
	struct config *c = NULL;
	struct error err;
	int rc = config_parse(&c, data, len, "hostile.xml", &err);

	if (rc != -code || !strstr(err.message, needle) || !strstr(err.message, "hostile.xml"))
		fail_msg("got %d '%s', want %d and '%s'", rc, rc ? err.message : "", -code, needle);
	assert_null(c);
}

static void rejected_text(const char *text, const char *needle)
{
	rejected(text, strlen(text), EINVAL, needle);
}

static void test_hostile(void **state)
{
	const char deep_open[] = "<a>", deep_close[] = "</a>";
	size_t depth = 10000, n = 0, big = 100u * 1024 * 1024 + 64;
	char *deep = malloc(depth * 7 + 64), *huge;
	const uint8_t lone_surrogate[] = {0xFF, 0xFE, '<', 0, 0x00, 0xD8, 'a', 0, '/', 0, '>', 0};
	const uint8_t big_endian[] = {0xFE, 0xFF, 0, '<', 0, 'a', 0, '/', 0, '>'};

	(void)state;
	rejected_text("<?xml version=\"1.0\"?>\n<!DOCTYPE configuration [\n"
		      "<!ENTITY x SYSTEM \"file:///etc/passwd\">]>\n<configuration>&x;</configuration>",
		      "document type declaration");
	rejected_text("<!DOCTYPE configuration SYSTEM \"http://example.invalid/x.dtd\">"
		      "<configuration/>",
		      "document type declaration");
	rejected_text("<!DOCTYPE lolz [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;\">"
		      "<!ENTITY c \"&b;&b;&b;&b;&b;\">]><configuration>&c;</configuration>",
		      "document type declaration");
	rejected_text("<configuration>&undefined;</configuration>", "line 1");
	rejected_text("<settings><a type=\"string\">x</a></settings>", "not <configuration>");
	rejected_text("<configuration><a></b></configuration>", "line 1");
	rejected_text("<configuration>\n<a>\n</configuration>", "line");
	rejected_text("", "line");
	rejected_text("not xml at all", "line 1");
	rejected(lone_surrogate, sizeof(lone_surrogate), EILSEQ, "not valid UTF-16");
	rejected(big_endian, sizeof(big_endian), EINVAL, "big-endian");
	rejected("<configuration>\0</configuration>", 32, EINVAL, "NUL");

	n += (size_t)sprintf(deep, "<configuration>");
	for (size_t i = 0; i < depth; i++, n += 3)
		memcpy(deep + n, deep_open, 3);
	for (size_t i = 0; i < depth; i++, n += 4)
		memcpy(deep + n, deep_close, 4);
	n += (size_t)sprintf(deep + n, "</configuration>");
	rejected(deep, n, EINVAL, "line 1");
	free(deep);
	/* Within libxml2's own limit, but deeper than any configuration. */
	deep = malloc(100 * 7 + 64);
	n = (size_t)sprintf(deep, "<configuration>");
	for (size_t i = 0; i < 100; i++, n += 3)
		memcpy(deep + n, deep_open, 3);
	for (size_t i = 0; i < 100; i++, n += 4)
		memcpy(deep + n, deep_close, 4);
	n += (size_t)sprintf(deep + n, "</configuration>");
	rejected(deep, n, EINVAL, "deeper than 64");
	free(deep);

	/* A text node of 100 MB: refused on its size, before any parsing. */
	huge = malloc(big);
	memset(huge, 'x', big);
	memcpy(huge, "<configuration><a>", 18);
	memcpy(huge + big - 20, "</a></configuration>", 20);
	rejected(huge, big, EFBIG, "more than");
	free(huge);
}

static void test_vm_view(void **state)
{
	struct config *c = parse_ok(fixture, strlen(fixture));
	struct config_identity id;
	struct config_drive *drives;
	struct config_adapter *adapters;
	size_t count;
	struct error err;

	(void)state;
	assert_int_equal(config_identity(c, &id, &err), 0);
	assert_string_equal(id.id, "0F5B5E1A-2C3D-4E5F-8A9B-0C1D2E3F4A5B");
	assert_string_equal(id.name, "blog \xC3\xA9t\xC3\xA9");
	assert_string_equal(id.type_id, "Virtual Machines");
	assert_int_equal(id.version, 1280);
	assert_int_equal(id.generation, 2);
	/* FILETIME 0x01CF8B899DDB5D80 = 2014-06-19 06:42:19 UTC */
	assert_int_equal(id.creation_time, 1403160139);
	config_identity_release(&id);

	assert_int_equal(config_drives(c, &drives, &count, &err), 0);
	assert_int_equal(count, 3);
	assert_int_equal(drives[0].bus, CONFIG_BUS_IDE);
	assert_int_equal(drives[0].controller, 0);
	assert_int_equal(drives[0].drive, 0);
	assert_string_equal(drives[0].type, "VHD");
	assert_string_equal(drives[0].pathname, "C:\\VMs\\blog\\Virtual Hard Disks\\blog.vhd");
	assert_string_equal(drives[0].key, IDE "/controller0/drive0");
	assert_int_equal(drives[1].drive, 1);
	assert_string_equal(drives[1].type, "NONE");
	assert_string_equal(drives[1].pathname, "");
	assert_int_equal(drives[2].bus, CONFIG_BUS_SCSI);
	assert_string_equal(drives[2].pathname, "C:\\VMs\\blog\\data.vhd");
	config_drives_free(drives, count);

	assert_int_equal(config_adapters(c, &adapters, &count, &err), 0);
	assert_int_equal(count, 1);
	assert_string_equal(adapters[0].mac, "00-15-5D-01-02-03");
	assert_false(adapters[0].static_mac);
	assert_string_equal(adapters[0].switch_id, "6A3D1B4C-0E3F-4D2A-9C1B-2F3E4D5C6B7A");
	assert_string_equal(adapters[0].switch_name, "External & \"LAN\" <1>");
	assert_int_equal(config_set_adapter_switch(c, adapters[0].key, "", "", &err), 0);
	config_adapters_free(adapters, count);
	assert_int_equal(config_adapters(c, &adapters, &count, &err), 0);
	assert_string_equal(adapters[0].switch_id, "");
	assert_string_equal(adapters[0].switch_name, "");
	config_adapters_free(adapters, count);
	config_free(c);

	/* A global_id that is not a GUID never becomes a file name. */
	{
		char *bad = replaced(fixture, "0F5B5E1A-2C3D-4E5F-8A9B-0C1D2E3F4A5B", "../../etc/x");

		c = parse_ok(bad, strlen(bad));
		assert_int_equal(config_identity(c, &id, &err), -EINVAL);
		assert_non_null(strstr(err.message, "not a GUID"));
		config_free(c);
		free(bad);
	}
}

static void test_guid_valid(void **state)
{
	(void)state;
	assert_true(config_guid_valid("0F5B5E1A-2C3D-4E5F-8A9B-0C1D2E3F4A5B"));
	assert_true(config_guid_valid("0f5b5e1a-2c3d-4e5f-8a9b-0c1d2e3f4a5b"));
	assert_false(config_guid_valid("{0F5B5E1A-2C3D-4E5F-8A9B-0C1D2E3F4A5B}"));
	assert_false(config_guid_valid("../../x"));
	assert_false(config_guid_valid("0F5B5E1A-2C3D-4E5F-8A9B-0C1D2E3F4A5"));
	assert_false(config_guid_valid("0F5B5E1A-2C3D-4E5F-8A9B-0C1D2E3F4A5BB"));
	assert_false(config_guid_valid("0F5B5E1A/2C3D-4E5F-8A9B-0C1D2E3F4A5B"));
	assert_false(config_guid_valid(""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_utf16_crlf_byte_for_byte),
		cmocka_unit_test(test_utf8_byte_for_byte),
		cmocka_unit_test(test_typed_values),
		cmocka_unit_test(test_children),
		cmocka_unit_test(test_edits),
		cmocka_unit_test(test_edit_leaves),
		cmocka_unit_test(test_change_encoding_and_save),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_vm_view),
		cmocka_unit_test(test_guid_valid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
