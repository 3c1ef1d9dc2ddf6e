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
	/* The length alone, as planning asks for it, is the length of the bytes. */
	{
		size_t size = 0;

		assert_int_equal(config_serialized_size(c, &size, &err), 0);
		assert_int_equal(size, len);
	}
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
	char *want = replaced(fixture, "encoding=\"UTF-16\"", "encoding=\"UTF-8\"");
	char *edited;
	struct config *c;
	struct error err;

	(void)state;
	/* UTF-8 without a mark, but declaring UTF-16: kept as it is, edited too. */
	c = parse_ok(fixture, strlen(fixture));
	assert_int_equal(config_encoding(c), CONFIG_UTF8);
	assert_serializes_to(c, fixture, strlen(fixture));
	assert_int_equal(config_set(c, "properties/version", NULL, "1281", &err), 0);
	edited = replaced(fixture, ">1280<", ">1281<");
	assert_serializes_to(c, edited, strlen(edited));
	config_free(c);
	/* A declaration that tells the truth, with a byte-order mark. */
	c = parse_ok(want, strlen(want));
	assert_serializes_to(c, want, strlen(want));
	config_free(c);
	memcpy(with_bom, "\xEF\xBB\xBF", 3);
	strcpy(with_bom + 3, want);
	c = parse_ok(with_bom, strlen(want) + 3);
	assert_int_equal(config_encoding(c), CONFIG_UTF8_BOM);
	assert_serializes_to(c, with_bom, strlen(want) + 3);
	/* Written without the mark: only the mark goes. */
	config_set_encoding(c, CONFIG_UTF8);
	assert_serializes_to(c, want, strlen(want));
	config_free(c);
	free(edited);
	free(want);
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

/*
 * A configuration shaped like the real Hyper-V 2012 R2 files (Vagrant
 * boxes): "\n" is a line end, CRLF in the UTF-16 form; '\1' is a bare LF
 * inside a value, as Hyper-V ends base64 even in a CRLF file; an empty
 * string is a line end and the closing tag's indentation.
 */
#define NIC  "_6b8c2a1e-3f4d-4e5a-9b8c-7d6e5f4a3b2c_"
#define NIC2 "_0d1e2f3a-4b5c-4d6e-8f7a-9b0c1d2e3f4a_"
static const char real_shaped[] =
	"<?xml version=\"1.0\" encoding=\"UTF-16\" standalone=\"yes\"?>\n"
	"<configuration>\n"
	"  <" IDE ">\n"
	"    <controller0>\n"
	"      <drive0>\n"
	"        <pathname type=\"string\">C:\\Users\\vagrant\\box\\Virtual Hard "
	"Disks\\box.vhd</pathname>\n"
	"        <type type=\"string\">VHD</type>\n"
	"      </drive0>\n"
	"      <drive1>\n"
	"        <pathname type=\"string\">\n"
	"        </pathname>\n"
	"        <type type=\"string\">NONE</type>\n"
	"      </drive1>\n"
	"    </controller0>\n"
	"  </" IDE ">\n"
	"  <" NIC ">\n"
	"    <Connection>\n"
	"      <AltPortName type=\"string\">Network Adapter</AltPortName>\n"
	"      <AltSwitchName type=\"string\">External</AltSwitchName>\n"
	"      <AuthorizationScope type=\"string\">\n"
	"      </AuthorizationScope>\n"
	"      <HostResources>\n"
	"        <HostResource "
	"type=\"string\">6A3D1B4C-0E3F-4D2A-9C1B-2F3E4D5C6B7A</HostResource>\n"
	"      </HostResources>\n"
	"      <TestReplicaSwitchName type=\"string\">\n"
	"      </TestReplicaSwitchName>\n"
	"    </Connection>\n"
	"    <FriendlyName type=\"string\">Network Adapter</FriendlyName>\n"
	"    <IsConnected type=\"bool\">True</IsConnected>\n"
	"    <MacAddress type=\"string\">00-15-5D-01-C8-0A</MacAddress>\n"
	"    <MacAddressIsStatic type=\"bool\">False</MacAddressIsStatic>\n"
	"    <PortName type=\"string\">1E2D3C4B-5A69-4788-9A0B-1C2D3E4F5A6B</PortName>\n"
	"    <SwitchName type=\"string\">6A3D1B4C-0E3F-4D2A-9C1B-2F3E4D5C6B7A</SwitchName>\n"
	"  </" NIC ">\n"
	"  <" NIC2 ">\n"
	"    <Connection>\n"
	"      <AltSwitchName type=\"string\">\n"
	"      </AltSwitchName>\n"
	"      <HostResources>\n"
	"      </HostResources>\n"
	"    </Connection>\n"
	"    <MacAddress type=\"string\">00-15-5D-01-C8-0B</MacAddress>\n"
	"    <SwitchName type=\"string\">\n"
	"    </SwitchName>\n"
	"  </" NIC2 ">\n"
	"  <global_settings>\n"
	"    <snapshots>\n"
	"      <current type=\"string\">\n"
	"      </current>\n"
	"      <list>\n"
	"        <size type=\"integer\">0</size>\n"
	"      </list>\n"
	"    </snapshots>\n"
	"  </global_settings>\n"
	"  <properties>\n"
	"    <creation_time type=\"bytes\">AMAYqbJT0AE=\1</creation_time>\n"
	"    <global_id type=\"string\">0F5B5E1A-2C3D-4E5F-8A9B-0C1D2E3F4A5B</global_id>\n"
	"    <name type=\"string\">box</name>\n"
	"    <notes type=\"string\">\n"
	"    </notes>\n"
	"    <type_id type=\"string\">Virtual Machines</type_id>\n"
	"    <version type=\"integer\">1280</version>\n"
	"  </properties>\n"
	"  <settings>\n"
	"    <global>\n"
	"      <logical_id type=\"string\">0F5B5E1A-2C3D-4E5F-8A9B-0C1D2E3F4A5B</logical_id>\n"
	"    </global>\n"
	"    <vnuma "
	"type=\"bytes\">AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4v\1</"
	"vnuma>\n"
	"  </settings>\n"
	"</configuration>\n";

enum shape {
	SHAPE_UTF16,	    /* UTF-16LE, byte-order mark, CRLF, as Hyper-V writes */
	SHAPE_UTF16_NO_BOM, /* the same without the mark */
	SHAPE_UTF8,	    /* UTF-8, LF, still declaring UTF-16, as copies in git are */
	SHAPE_UTF8_CRLF,    /* UTF-8, CRLF, declaring UTF-8: the UTF-16 one re-encoded */
};

/* The bytes of the marked-up @text in @shape (see real_shaped). Caller frees. */
static char *shaped(const char *text, enum shape shape, size_t *len)
{
	char *lines = shape == SHAPE_UTF8 ? strdup(text) : crlf(text), *out;

	for (char *p = lines; *p; p++)
		if (*p == '\1')
			*p = '\n';
	if (shape == SHAPE_UTF8 || shape == SHAPE_UTF8_CRLF) {
		out = shape == SHAPE_UTF8
			      ? lines
			      : replaced(lines, "encoding=\"UTF-16\"", "encoding=\"UTF-8\"");
		if (out != lines)
			free(lines);
		*len = strlen(out);
		return out;
	}
	out = utf16le(lines, len);
	free(lines);
	if (shape == SHAPE_UTF16_NO_BOM) {
		memmove(out, out + 2, *len - 2);
		*len -= 2;
	}
	return out;
}

static const enum shape all_shapes[] = {SHAPE_UTF16, SHAPE_UTF16_NO_BOM, SHAPE_UTF8};

static void assert_value(const struct config *c, const char *path, const char *want)
{
	char *value = NULL;

	if (config_get(c, path, &value, NULL) != 0)
		fail_msg("no value at '%s'", path);
	if (strcmp(value, want) != 0)
		fail_msg("'%s' reads '%s', want '%s'", path, value, want);
	free(value);
}

/* A real file read and written without edits, or with edits that change
 * nothing: the same bytes. */
static void test_real_shaped_byte_for_byte(void **state)
{
	(void)state;
	for (size_t k = 0; k < sizeof(all_shapes) / sizeof(all_shapes[0]); k++) {
		size_t len;
		char *bytes = shaped(real_shaped, all_shapes[k], &len);
		struct config *c = parse_ok(bytes, len);
		struct error err;

		assert_int_equal(config_encoding(c),
				 all_shapes[k] == SHAPE_UTF8 ? CONFIG_UTF8 : CONFIG_UTF16LE);
		assert_serializes_to(c, bytes, len);
		/* Setting what a leaf holds already changes nothing, bytes included. */
		assert_int_equal(config_set(c, "properties/name", "string", "box", &err), 0);
		assert_int_equal(
			config_set(c, "properties/creation_time", NULL, "AMAYqbJT0AE=\n", &err), 0);
		assert_int_equal(
			config_set_filetime(c, "properties/creation_time", 1425168000, &err), 0);
		assert_false(config_changed(c));
		assert_serializes_to(c, bytes, len);
		/* A change of encoding and back: nothing changed. */
		config_set_encoding(c, all_shapes[k] == SHAPE_UTF8 ? CONFIG_UTF16LE : CONFIG_UTF8);
		config_set_encoding(c, all_shapes[k] == SHAPE_UTF8 ? CONFIG_UTF8 : CONFIG_UTF16LE);
		assert_serializes_to(c, bytes, len);
		config_free(c);
		free(bytes);
	}
}

/* Hyper-V's empty strings (a line end and spaces) read as "" to every
 * reader, and setting them to "" keeps their bytes. */
static void test_blank_values_read_empty(void **state)
{
	size_t len;
	char *bytes = shaped(real_shaped, SHAPE_UTF16, &len);
	struct config *c = parse_ok(bytes, len);
	struct config_drive *drives;
	struct config_adapter *adapters;
	size_t count;
	struct error err;

	(void)state;
	assert_value(c, "properties/notes", "");
	assert_value(c, NIC "/Connection/AuthorizationScope", "");
	assert_value(c, "global_settings/snapshots/current", "");
	/* A container without children is no value at all, but reads as "". */
	assert_value(c, NIC2 "/Connection/HostResources", "");
	/* A value with text keeps its whitespace. */
	assert_value(c, "properties/creation_time", "AMAYqbJT0AE=\n");
	assert_int_equal(config_drives(c, &drives, &count, &err), 0);
	assert_int_equal(count, 2);
	assert_string_equal(drives[1].pathname, "");
	assert_string_equal(drives[1].type, "NONE");
	config_drives_free(drives, count);
	assert_int_equal(config_adapters(c, &adapters, &count, &err), 0);
	assert_int_equal(count, 2);
	assert_string_equal(adapters[0].switch_name, "External");
	assert_string_equal(adapters[1].switch_id, "");
	assert_string_equal(adapters[1].switch_name, "");
	assert_int_equal(config_set(c, NIC2 "/SwitchName", "string", "", &err), 0);
	config_adapters_free(adapters, count);
	assert_int_equal(config_set(c, "properties/notes", "string", "", &err), 0);
	assert_false(config_changed(c));
	assert_serializes_to(c, bytes, len);
	config_free(c);
	free(bytes);
}

/* One edit after the other; after each, the bytes are the original's with
 * that edit made as text here, and nothing else. */
static void test_real_shaped_edits(void **state)
{
	(void)state;
	for (size_t k = 0; k < sizeof(all_shapes) / sizeof(all_shapes[0]); k++) {
		enum shape shape = all_shapes[k];
		size_t len, want_len;
		char *bytes = shaped(real_shaped, shape, &len), *want = strdup(real_shaped), *step;
		char *want_bytes;
		struct config *c = parse_ok(bytes, len);
		struct error err;

#define EXPECT(old, new)                                                                           \
	do {                                                                                       \
		step = replaced(want, old, new);                                                   \
		free(want);                                                                        \
		want = step;                                                                       \
		want_bytes = shaped(want, shape, &want_len);                                       \
		assert_serializes_to(c, want_bytes, want_len);                                     \
		free(want_bytes);                                                                  \
	} while (0)

		/* A time: the new base64 ends in a bare LF, as the old one did. */
		assert_int_equal(
			config_set_filetime(c, "properties/creation_time", 1500000000, &err), 0);
		assert_true(config_changed(c));
		EXPECT("AMAYqbJT0AE=\1", "AADgfEr80gE=\1");
		/* A path, escaped. */
		assert_int_equal(config_set(c, IDE "/controller0/drive0/pathname", NULL,
					    "/srv/a & b <c>.vhd", &err),
				 0);
		EXPECT("C:\\Users\\vagrant\\box\\Virtual Hard Disks\\box.vhd",
		       "/srv/a &amp; b &lt;c&gt;.vhd");
		/* An empty string given a value; a value made empty. */
		assert_int_equal(config_set(c, NIC2 "/SwitchName", "string", "GUID-2", &err), 0);
		EXPECT("<SwitchName type=\"string\">\n    </SwitchName>",
		       "<SwitchName type=\"string\">GUID-2</SwitchName>");
		assert_int_equal(config_set(c, "properties/name", NULL, "", &err), 0);
		EXPECT("<name type=\"string\">box</name>", "<name type=\"string\"></name>");
		/* A line end inside a value the file wrote with CRLF stays CRLF. */
		assert_int_equal(config_set(c, "properties/notes", NULL, "one\ntwo", &err), 0);
		EXPECT("<notes type=\"string\">\n    </notes>",
		       "<notes type=\"string\">one\ntwo</notes>");
		/* A type changed: only the type attribute's value. */
		assert_int_equal(
			config_set(c, "global_settings/snapshots/list/size", "string", "0", &err),
			0);
		EXPECT("<size type=\"integer\">0</size>", "<size type=\"string\">0</size>");
		/* New leaves: after the last sibling, indented like it, in the
		 * file's line ends; into an empty container; in new containers. */
		assert_int_equal(
			config_set(c, "global_settings/snapshots/parent", "string", "P", &err), 0);
		EXPECT("      </list>\n    </snapshots>",
		       "      </list>\n      <parent type=\"string\">P</parent>\n    </snapshots>");
		assert_int_equal(config_set(c, NIC2 "/Connection/HostResources/HostResource",
					    "string", "H", &err),
				 0);
		EXPECT("      <HostResources>\n      </HostResources>\n    </Connection>\n"
		       "    <MacAddress type=\"string\">00-15-5D-01-C8-0B",
		       "      <HostResources>\n        <HostResource "
		       "type=\"string\">H</HostResource>\n"
		       "      </HostResources>\n    </Connection>\n"
		       "    <MacAddress type=\"string\">00-15-5D-01-C8-0B");
		assert_int_equal(config_set(c, "impexfs/a/b", "string", "x\ny", &err), 0);
		EXPECT("  </settings>\n",
		       "  </settings>\n  <impexfs>\n    <a>\n      <b type=\"string\">x\ny</b>\n"
		       "    </a>\n  </impexfs>\n");
		/* Removed: the element and its indentation. */
		assert_int_equal(config_remove(c, "global_settings/snapshots/current"), 0);
		EXPECT("      <current type=\"string\">\n      </current>\n", "");
		assert_int_equal(config_remove(c, NIC), 0);
		{
			const char *from = strstr(want, "  <" NIC ">"),
				   *to = strstr(want, "  <" NIC2);
			char *cut = strndup(from, (size_t)(to - from));

			EXPECT(cut, "");
			free(cut);
		}
		/* The rest of the file is as it was: the bare LF of vnuma too. */
		assert_non_null(strstr(want, "LS4v\1</vnuma>"));
		/* Another encoding: the declaration's encoding follows, the line
		 * ends stay. */
		config_set_encoding(c, shape == SHAPE_UTF8 ? CONFIG_UTF16LE : CONFIG_UTF8);
		{
			enum shape other = shape == SHAPE_UTF8 ? SHAPE_UTF16 : SHAPE_UTF8_CRLF;
			char *lf;

			if (shape != SHAPE_UTF8) {
				want_bytes = shaped(want, other, &want_len);
			} else {
				/* UTF-16 with LF line ends: the UTF-8 text as it is. */
				lf = strdup(want);
				for (char *p = lf; *p; p++)
					*p = *p == '\1' ? '\n' : *p;
				want_bytes = utf16le(lf, &want_len);
				free(lf);
			}
			assert_serializes_to(c, want_bytes, want_len);
			free(want_bytes);
		}
#undef EXPECT
		free(want);
		free(bytes);
		config_free(c);
	}
}

/* A copy is edited apart from its original, and writes what an edit of a new reading of the
 * file writes; the original, edited after, writes only its own edits. */
static void test_copy_edited_apart(void **state)
{
	(void)state;
	for (size_t k = 0; k < sizeof(all_shapes) / sizeof(all_shapes[0]); k++) {
		enum shape shape = all_shapes[k];
		size_t len, want_len;
		char *bytes = shaped(real_shaped, shape, &len);
		char *path = replaced(real_shaped, "C:\\Users\\vagrant\\box\\Virtual Hard Disks\\box.vhd",
				      "/srv/a &amp; b.vhd");
		char *name = replaced(real_shaped, "<name type=\"string\">box</name>",
				      "<name type=\"string\">copy</name>");
		char *want;
		struct config *c = parse_ok(bytes, len), *copy = NULL;
		struct error err;

		assert_int_equal(config_copy(c, &copy), 0);
		assert_int_equal(config_set(copy, IDE "/controller0/drive0/pathname", NULL,
					    "/srv/a & b.vhd", &err),
				 0);
		assert_false(config_changed(c));
		assert_serializes_to(c, bytes, len);
		want = shaped(path, shape, &want_len);
		assert_serializes_to(copy, want, want_len);
		free(want);
		/* The original edited: its copy keeps its own. */
		assert_int_equal(config_set(c, "properties/name", NULL, "copy", &err), 0);
		want = shaped(name, shape, &want_len);
		assert_serializes_to(c, want, want_len);
		free(want);
		want = shaped(path, shape, &want_len);
		assert_serializes_to(copy, want, want_len);
		free(want);
		/* A copy of the edited original: its edit and all. */
		config_free(copy);
		assert_int_equal(config_copy(c, &copy), 0);
		config_free(c);
		want = shaped(name, shape, &want_len);
		assert_serializes_to(copy, want, want_len);
		free(want);
		config_free(copy);
		free(bytes);
		free(path);
		free(name);
	}
}

/* The edits of test_unusual_forms_kept(). */
static void edit_unusual(struct config *c)
{
	struct error err;

	/* A value given to a self-closing leaf, a type to one without. */
	assert_int_equal(config_set(c, "b", NULL, "B", &err), 0);
	assert_int_equal(config_set(c, "e", "integer", "5", &err), 0);
	/* A type in single quotes stays in single quotes. */
	assert_int_equal(config_set(c, "a", "it's", "x & < \"y\"\r", &err), 0);
	assert_int_equal(config_set(c, "f", NULL, "new", &err), 0);
}

/* Tags and text a rewrite keeps whatever their form: self-closing tags,
 * single quotes, references, comments, CDATA, processing instructions,
 * a lone CR. */
static void test_unusual_forms_kept(void **state)
{
	static const char text[] = "<?xml version='1.0' encoding='UTF-8'?>\n"
				   "<!-- before -->\n"
				   "<configuration  >\n"
				   "  <a type='string' >x &#38; &#x3C; &quot;y&quot;&#13;</a>\n"
				   "  <!-- inside -->\n"
				   "  <b type=\"string\"/>\n"
				   "  <c><![CDATA[<raw>]]><![CDATA[more]]></c>\n"
				   "  <?pi some data?>\n"
				   "  <d>one\rtwo</d>\n"
				   "  <e />\n"
				   "  <f type=\"string\">old</f>\n"
				   "</configuration >\n"
				   "<!-- after -->\n";
	struct config *c = parse_ok(text, strlen(text)), *copy = NULL;
	char *want, *step;

	(void)state;
	assert_serializes_to(c, text, strlen(text));
	assert_value(c, "a", "x & < \"y\"\r");
	assert_value(c, "c", "<raw>more");
	assert_value(c, "d", "one\ntwo");
	assert_int_equal(config_copy(c, &copy), 0);
	edit_unusual(c);
	want = replaced(text, "<b type=\"string\"/>", "<b type=\"string\">B</b>");
	step = replaced(want, "<e />", "<e type=\"integer\" >5</e>");
	free(want);
	want = replaced(step, "<a type='string' >", "<a type='it&apos;s' >");
	free(step);
	step = replaced(want, ">old<", ">new<");
	assert_serializes_to(c, step, strlen(step));
	/* A copy made before, its original gone: the same edits, the same bytes (the nodes
	 * before and after the root given their places too). */
	config_free(c);
	edit_unusual(copy);
	assert_serializes_to(copy, step, strlen(step));
	free(want);
	free(step);
	config_free(copy);
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
	assert_null(adapters[0].problem); /* no HostResources, no IsConnected: nothing disagrees */
	assert_int_equal(config_set_adapter_switch(c, adapters[0].key, "", "", NULL, &err), 0);
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

#define ADAPTER(n) "_2b0c8c8b-4bd4-4c35-8ef3-aa4b2a5f1a0" #n "_"
#define SWITCH_A "6A3D1B4C-0E3F-4D2A-9C1B-2F3E4D5C6B7A"
#define SWITCH_B "0D1E2F3A-4B5C-4D6E-8F7A-8B9C0D1E2F3A"

/* Adapters as Hyper-V 2012 R2 writes them: the switch named three times,
 * empty strings as a line end and the closing tag's indentation. */
static const char adapters_fixture[] =
	"<?xml version=\"1.0\" encoding=\"UTF-16\" standalone=\"yes\"?>\n"
	"<configuration>\n"
	/* connected, every field agreeing */
	"  <" ADAPTER(1) ">\n"
	"    <Connection>\n"
	"      <AltPortName type=\"string\">Network Adapter</AltPortName>\n"
	"      <AltSwitchName type=\"string\">External</AltSwitchName>\n"
	"      <HostResources>\n"
	"        <HostResource type=\"string\">" SWITCH_A "</HostResource>\n"
	"      </HostResources>\n"
	"      <TestReplicaSwitchName type=\"string\">\n"
	"      </TestReplicaSwitchName>\n"
	"    </Connection>\n"
	"    <FriendlyName type=\"string\">Network Adapter</FriendlyName>\n"
	"    <IsConnected type=\"bool\">True</IsConnected>\n"
	"    <MacAddress type=\"string\">00-15-5D-01-02-01</MacAddress>\n"
	"    <MacAddressIsStatic type=\"bool\">False</MacAddressIsStatic>\n"
	"    <PortName type=\"string\">11111111-2222-4333-8444-555555555555</PortName>\n"
	"    <SwitchName type=\"string\">" SWITCH_A "</SwitchName>\n"
	"  </" ADAPTER(1) ">\n"
	/* not connected */
	"  <" ADAPTER(2) ">\n"
	"    <Connection>\n"
	"      <AltSwitchName type=\"string\">\n"
	"      </AltSwitchName>\n"
	"      <HostResources>\n"
	"      </HostResources>\n"
	"    </Connection>\n"
	"    <FriendlyName type=\"string\">Spare</FriendlyName>\n"
	"    <IsConnected type=\"bool\">False</IsConnected>\n"
	"    <MacAddress type=\"string\">00-15-5D-01-02-02</MacAddress>\n"
	"    <PortName type=\"string\">\n"
	"    </PortName>\n"
	"    <SwitchName type=\"string\">\n"
	"    </SwitchName>\n"
	"  </" ADAPTER(2) ">\n"
	/* two GUIDs */
	"  <" ADAPTER(3) ">\n"
	"    <Connection>\n"
	"      <AltSwitchName type=\"string\">External</AltSwitchName>\n"
	"      <HostResources>\n"
	"        <HostResource type=\"string\">" SWITCH_B "</HostResource>\n"
	"      </HostResources>\n"
	"    </Connection>\n"
	"    <IsConnected type=\"bool\">True</IsConnected>\n"
	"    <MacAddress type=\"string\">00-15-5D-01-02-03</MacAddress>\n"
	"    <SwitchName type=\"string\">" SWITCH_A "</SwitchName>\n"
	"  </" ADAPTER(3) ">\n"
	/* disconnected by an import that forgot IsConnected */
	"  <" ADAPTER(4) ">\n"
	"    <Connection>\n"
	"      <AltSwitchName type=\"string\"></AltSwitchName>\n"
	"    </Connection>\n"
	"    <IsConnected type=\"bool\">True</IsConnected>\n"
	"    <MacAddress type=\"string\">00-15-5D-01-02-04</MacAddress>\n"
	"    <SwitchName type=\"string\"></SwitchName>\n"
	"  </" ADAPTER(4) ">\n"
	/* a GUID in SwitchName only, HostResources empty */
	"  <" ADAPTER(5) ">\n"
	"    <Connection>\n"
	"      <HostResources>\n"
	"      </HostResources>\n"
	"    </Connection>\n"
	"    <MacAddress type=\"string\">00-15-5D-01-02-05</MacAddress>\n"
	"    <SwitchName type=\"string\">" SWITCH_B "</SwitchName>\n"
	"  </" ADAPTER(5) ">\n"
	"  <properties>\n"
	"    <global_id type=\"string\">0F5B5E1A-2C3D-4E5F-8A9B-0C1D2E3F4A5B</global_id>\n"
	"  </properties>\n"
	"</configuration>\n";

/* An adapter's problem says @says, or it has none (@says NULL). */
static void assert_problem(const struct config_adapter *a, const char *says)
{
	if (!says && a->problem)
		fail_msg("adapter %s: unexpected problem '%s'", a->mac, a->problem);
	if (says && (!a->problem || !strstr(a->problem, says)))
		fail_msg("adapter %s: problem '%s' does not say '%s'", a->mac,
			 a->problem ? a->problem : "(none)", says);
}

static void test_adapters(void **state)
{
	struct config_adapter *adapters = NULL;
	struct config *c, *again;
	struct error err;
	size_t count = 0, len = 0, n = 0;
	char *text = NULL, **names = NULL;

	(void)state;
	error_clear(&err);
	c = parse_ok(adapters_fixture, strlen(adapters_fixture));
	assert_int_equal(config_adapters(c, &adapters, &count, &err), 0);
	assert_int_equal(count, 5);
	/* Connected: every field read, nothing disagrees. */
	assert_string_equal(adapters[0].switch_id, SWITCH_A);
	assert_string_equal(adapters[0].switch_resource, SWITCH_A);
	assert_string_equal(adapters[0].switch_name, "External");
	assert_string_equal(adapters[0].port_name, "11111111-2222-4333-8444-555555555555");
	assert_true(adapters[0].connected);
	assert_problem(&adapters[0], NULL);
	assert_string_equal(config_adapter_switch(&adapters[0]), "External");
	/* Hyper-V's empty strings (a line end and spaces) are empty. */
	assert_string_equal(adapters[1].switch_id, "");
	assert_string_equal(adapters[1].switch_name, "");
	assert_string_equal(adapters[1].switch_resource, "");
	assert_string_equal(adapters[1].port_name, "");
	assert_false(adapters[1].connected);
	assert_problem(&adapters[1], NULL);
	assert_string_equal(config_adapter_switch(&adapters[1]), "");
	/* Fields that disagree are reported, naming both. */
	assert_problem(&adapters[2], SWITCH_A "' in SwitchName but '" SWITCH_B);
	assert_problem(&adapters[3], "IsConnected is True but it names no switch");
	assert_problem(&adapters[4], "none in Connection/HostResources/HostResource");
	/* Known by its GUID when it has no friendly name. */
	assert_string_equal(config_adapter_switch(&adapters[4]), SWITCH_B);

	/* Connected elsewhere: all three fields name the new switch, one HostResource. */
	assert_int_equal(config_set_adapter_switch(c, adapters[1].key, SWITCH_B, "LAN",
						   "99999999-2222-4333-8444-555555555555", &err),
			 0);
	assert_int_equal(config_set_adapter_switch(c, adapters[2].key, SWITCH_B, "LAN", NULL, &err),
			 0);
	/* Disconnected as Hyper-V writes an unconnected adapter. */
	assert_int_equal(config_set_adapter_switch(c, adapters[0].key, NULL, NULL, NULL, &err), 0);
	assert_int_equal(config_set_adapter_switch(c, adapters[3].key, "", "", NULL, &err), 0);
	config_adapters_free(adapters, count);

	/* What is written reads back so. */
	assert_int_equal(config_serialize(c, &text, &len, &err), 0);
	again = parse_ok(text, len);
	free(text);
	assert_value(again, ADAPTER(2) "/SwitchName", SWITCH_B);
	assert_value(again, ADAPTER(2) "/Connection/HostResources/HostResource", SWITCH_B);
	assert_value(again, ADAPTER(2) "/Connection/AltSwitchName", "LAN");
	assert_value(again, ADAPTER(2) "/IsConnected", "True");
	assert_value(again, ADAPTER(2) "/PortName", "99999999-2222-4333-8444-555555555555");
	assert_value(again, ADAPTER(3) "/Connection/HostResources/HostResource", SWITCH_B);
	assert_value(again, ADAPTER(1) "/SwitchName", "");
	assert_value(again, ADAPTER(1) "/Connection/AltSwitchName", "");
	assert_value(again, ADAPTER(1) "/PortName", "");
	assert_value(again, ADAPTER(1) "/IsConnected", "False");
	assert_int_equal(config_children(again, ADAPTER(1) "/Connection/HostResources", &names, &n), 0);
	assert_int_equal(n, 0);
	config_names_free(names, n);
	/* Kept: what names no connection. */
	assert_value(again, ADAPTER(1) "/Connection/AltPortName", "Network Adapter");
	assert_value(again, ADAPTER(1) "/FriendlyName", "Network Adapter");
	assert_int_equal(config_adapters(again, &adapters, &count, &err), 0);
	for (size_t i = 0; i < count; i++)
		assert_problem(&adapters[i], i == 4 ? "HostResource" : NULL);
	assert_false(adapters[0].connected);
	assert_false(adapters[3].connected);
	assert_true(adapters[2].connected);
	config_adapters_free(adapters, count);
	config_free(again);
	config_free(c);
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
		cmocka_unit_test(test_real_shaped_byte_for_byte),
		cmocka_unit_test(test_blank_values_read_empty),
		cmocka_unit_test(test_real_shaped_edits),
		cmocka_unit_test(test_copy_edited_apart),
		cmocka_unit_test(test_unusual_forms_kept),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_vm_view),
		cmocka_unit_test(test_adapters),
		cmocka_unit_test(test_guid_valid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
