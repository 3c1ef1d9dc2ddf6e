/*
 * Hyper-V configuration files (Virtual Machines/<GUID>.xml,
 * Snapshots/<GUID>.xml): parsed safely, read and edited by path, written
 * back byte for byte except where edited: the file's text is kept, and each
 * edit is spliced into it. libxml2 stays inside this module.
 *
 * Paths name elements from the root's children down, separated by '/':
 * "properties/name", "_83f8638b-8dca-4152-9eda-2ca8b33039b4_/controller0/drive1/pathname".
 * Leaves are elements without element children; their "type" attribute
 * (string, integer, bool, bytes) is kept as it is.
 *
 * A struct config belongs to one thread at a time. The module's files are
 * listed in config_internal.h.
 */
#ifndef IMPEX_CONFIG_H
#define IMPEX_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct error;
struct config;

/* Limits on what a configuration may be; Hyper-V's are far below them. */
#define CONFIG_MAX_BYTES (4u * 1024 * 1024)
#define CONFIG_MAX_DEPTH 64

enum config_encoding {
	CONFIG_UTF16LE, /* with a byte-order mark, as Hyper-V writes (none if read without) */
	CONFIG_UTF8,	/* without a byte-order mark */
	CONFIG_UTF8_BOM,
};

/**
 * Parse the @len bytes at @data, a configuration named @name in messages.
 * The encoding comes from the byte-order mark (UTF-16LE, UTF-8) or, without
 * one, is UTF-8 whatever the declaration says. Refused with -EINVAL and a
 * message naming @name, the line and the fault: a DTD or entity declaration,
 * malformed XML, a root other than <configuration>, nesting deeper than
 * CONFIG_MAX_DEPTH, more than CONFIG_MAX_BYTES, invalid UTF-16 or UTF-8.
 * No network access, no external entity, nothing outside @data is read.
 * On success *@out is the configuration; caller frees with config_free().
 */
int config_parse(struct config **out, const void *data, size_t len, const char *name,
		 struct error *err);

/** config_parse() of the file at @path (named by @path in messages). */
int config_load(struct config **out, const char *path, struct error *err);

/** config_load() of the file open on @fd, named @path in messages. */
int config_load_fd(struct config **out, int fd, const char *path, struct error *err);

/** Release @config. NULL-safe. */
void config_free(struct config *config);

/**
 * A copy of @config into *@out, edits and all, to be edited apart from it (cheaper than
 * parsing its file again). Returns 0 or -ENOMEM.
 */
int config_copy(const struct config *config, struct config **out);

/** The name given to config_parse(). Borrowed. */
const char *config_name(const struct config *config);

/**
 * Whether config_set(), config_remove() or config_set_encoding() changed it
 * (setting a leaf to the value it holds is no change).
 */
bool config_changed(const struct config *config);

enum config_encoding config_encoding(const struct config *config);

/** Write it in @encoding from now on (the declaration's encoding follows). */
void config_set_encoding(struct config *config, enum config_encoding encoding);

/**
 * The file's bytes as they would be written now. Without a change, the bytes
 * that were read. With changes, every byte that no edit touched as it was
 * read (encoding, byte-order mark or its absence, declaration, line ends,
 * whitespace, the form of each tag, references, comments), and in it only:
 * an edited leaf's value (escaped; a line end in it written as the old value
 * wrote one, else as the file's line ends), the value of a changed type
 * attribute, new elements (indented like their siblings, in the file's line
 * ends), removed elements gone with their indentation, and after
 * config_set_encoding() the declaration's encoding. Should the file's text
 * and libxml2's tree ever disagree, the tree is written by libxml2 instead
 * (line ends made the file's). *@out is a new buffer (caller frees with
 * free()). Returns 0, -ENOMEM, -EILSEQ.
 */
int config_serialize(const struct config *config, char **out, size_t *len, struct error *err);

/** The length config_serialize() would give, without the bytes. */
int config_serialized_size(const struct config *config, size_t *len, struct error *err);

/**
 * Write the configuration to @path crash-safely: a temporary file in the
 * same folder, fsynced, renamed over @path, the folder fsynced.
 * Returns 0 or a negative errno with a message; on failure @path is unchanged.
 */
int config_save(const struct config *config, const char *path, struct error *err);

/**
 * config_save() of a new file @rel beneath the folder @dirfd, no link
 * followed (core/beneath.h), named @path in messages: never over a file
 * (-EEXIST). Returns 0 or a negative errno with a message.
 */
int config_save_new_at(const struct config *c, int dirfd, const char *rel, const char *path,
		       struct error *err);

/**
 * The text of the leaf at @path into *@value (a new string, caller frees),
 * and its type attribute into *@type if @type is not NULL (a new string or
 * NULL when it has none). A text of only whitespace with a line end reads
 * as "": Hyper-V writes an empty string as a line end and the closing tag's
 * indentation. Returns 0, -ENOENT if there is no such element, -EISDIR if
 * it is a container, -ENOMEM.
 */
int config_get(const struct config *config, const char *path, char **value, char **type);

/** The leaf at @path as an integer. Returns 0, -ENOENT, -EISDIR, -EINVAL if not a number. */
int config_get_int(const struct config *config, const char *path, int64_t *value);

/** The leaf at @path as a bool ("True"/"False", any case). Returns 0, -ENOENT, -EINVAL. */
int config_get_bool(const struct config *config, const char *path, bool *value);

/**
 * The leaf at @path decoded from base64 into *@data (caller frees), *@len bytes.
 * Returns 0, -ENOENT, -EISDIR, -EINVAL for invalid base64, -ENOMEM.
 */
int config_get_bytes(const struct config *config, const char *path, uint8_t **data, size_t *len);

/**
 * Set the leaf at @path to @value. An existing leaf keeps its place and its
 * type attribute unless @type is given; a missing one is created (with the
 * containers on its way) after its last sibling, indented like its siblings,
 * with @type (required then). Setting a leaf to the value it reads as
 * (config_get()) and the type it has changes nothing, its bytes included.
 * Returns 0, -EISDIR if @path is a container, -EINVAL for a bad path or a
 * missing @type, -ENOMEM.
 */
int config_set(struct config *config, const char *path, const char *type, const char *value,
	       struct error *err);

/** config_set() of a decimal integer, type "integer". */
int config_set_int(struct config *config, const char *path, int64_t value, struct error *err);

/** Remove the element at @path (leaf or container) with its indentation. Returns 0, -ENOENT. */
int config_remove(struct config *config, const char *path);

/**
 * The names of the element children of the container at @path ("" for the
 * root), in document order, into *@names (an array of *@count new strings;
 * caller frees with config_names_free()). Returns 0, -ENOENT, -ENOMEM.
 */
int config_children(const struct config *config, const char *path, char ***names, size_t *count);

/** Free what config_children() returned. NULL-safe. */
void config_names_free(char **names, size_t count);

/**
 * Offer every leaf of @config, in document order, to @edit: its element's
 * name, its type attribute (NULL when it has none) and its text. @edit
 * returns 0 to keep the leaf, 1 with a new string in *@value to make that
 * its text (its type and place stay; the string is freed here), or a
 * negative errno that stops the walk. One pass over the document, whatever
 * its shape. Returns 0, @edit's errno, or -ENOMEM.
 */
int config_edit_leaves(struct config *config,
		       int (*edit)(void *ctx, const char *name, const char *type, const char *text,
				   char **value),
		       void *ctx);

/** Whether @text is a GUID in the form 8-4-4-4-12 hexadecimal digits, no braces. */
bool config_guid_valid(const char *text);

/* ---- the Hyper-V view (config_vm.c) ---- */

/* Device types of the manifest. */
#define CONFIG_IDE_TYPE	 "83f8638b-8dca-4152-9eda-2ca8b33039b4"
#define CONFIG_SCSI_TYPE "d422512d-2bf2-4752-809d-7b82b5fcb1b4"
#define CONFIG_NIC_TYPE	 "2fc216b0-d2e2-4967-9b6d-b8a5c9ca2778"

/* The values of properties/type_id: a VM's configuration, or a snapshot's. */
#define CONFIG_TYPE_VM	     "Virtual Machines"
#define CONFIG_TYPE_SNAPSHOT "Snapshots"

/* Who a configuration describes. Strings are owned: config_identity_release(). */
struct config_identity {
	char id[37];	       /* properties/global_id, upper case */
	char *name;	       /* properties/name */
	char *type_id;	       /* properties/type_id: "Virtual Machines" or "Snapshots" */
	int64_t version;       /* properties/version, -1 when absent */
	int generation;	       /* 1 or 2, from properties/subtype */
	int64_t creation_time; /* Unix seconds, from the FILETIME in properties/creation_time; 0 */
	int64_t creation_ticks; /* that FILETIME itself (100 ns since 1601), 0 when absent */
};

/**
 * Read the identity. Returns 0, or -EINVAL with a message naming the file
 * when global_id is missing or not a GUID (it becomes a file name), -ENOMEM.
 */
int config_identity(const struct config *config, struct config_identity *identity,
		    struct error *err);

/** Free the strings of @identity. */
void config_identity_release(struct config_identity *identity);

enum config_bus {
	CONFIG_BUS_IDE,
	CONFIG_BUS_SCSI,
};

/* One drive of a controller. Strings are owned: config_drives_free(). */
struct config_drive {
	char *key; /* its path in the configuration: "<node>/controllerN/driveM" */
	enum config_bus bus;
	unsigned controller; /* N */
	unsigned drive;	     /* M */
	char *type;	     /* "VHD", "ISO", "VFD", "NONE" */
	char *pathname;	     /* as written: a Windows or Linux path, "" for an empty drive */
};

/**
 * Every drive of every IDE and SCSI controller, in document order: a node
 * whose children are controllerN/driveM. Returns 0, -ENOMEM.
 */
int config_drives(const struct config *config, struct config_drive **drives, size_t *count,
		  struct error *err);

void config_drives_free(struct config_drive *drives, size_t count);

/*
 * One network adapter. Hyper-V names its switch three times (docs/FORMAT.md):
 * SwitchName and Connection/HostResources/HostResource (the GUID) and
 * Connection/AltSwitchName (the friendly name). Strings are owned:
 * config_adapters_free().
 */
struct config_adapter {
	char *key;	       /* its device node */
	char *friendly_name;   /* FriendlyName */
	char *mac;	       /* MacAddress, "00-15-5D-..." */
	bool static_mac;       /* MacAddressIsStatic */
	char *switch_id;       /* SwitchName: the switch's GUID, "" when not connected */
	char *switch_name;     /* Connection/AltSwitchName: its friendly name */
	char *switch_resource; /* Connection/HostResources/HostResource: the GUID again, or "" */
	char *port_name;       /* PortName: its port's GUID, "" when not connected */
	bool connected;	       /* IsConnected; when absent, whether a switch field is set */
	char *problem;	       /* NULL, or how its switch fields disagree (a sentence) */
};

/**
 * Every network adapter (a node with a MacAddress). An adapter whose switch
 * fields disagree (two GUIDs, a name without a GUID, IsConnected against
 * the switch fields) is listed with its @problem. Returns 0, -ENOMEM.
 */
int config_adapters(const struct config *config, struct config_adapter **adapters, size_t *count,
		    struct error *err);

void config_adapters_free(struct config_adapter *adapters, size_t count);

/**
 * The switch @adapter names, as the import settings know it: its friendly
 * name (AltSwitchName), else its GUID (SwitchName, else HostResource);
 * "" when it names none. Borrowed from @adapter.
 */
const char *config_adapter_switch(const struct config_adapter *adapter);

/**
 * Set the leaf at @path to the time @when as Hyper-V stores times: a
 * FILETIME (8 bytes, little-endian) in base64, type "bytes".
 */
int config_set_filetime(struct config *config, const char *path, time_t when, struct error *err);

/** config_set_filetime() of a FILETIME itself: @ticks of 100 ns since 1601. */
int config_set_filetime_ticks(struct config *config, const char *path, int64_t ticks,
			      struct error *err);

/** The time now as a FILETIME (100 ns since 1601), as Hyper-V records creation times. */
int64_t config_filetime_now(void);

/**
 * Connect adapter @key to the switch @switch_id (a GUID) named @switch_name:
 * SwitchName and Connection/HostResources/HostResource (one) get the GUID,
 * Connection/AltSwitchName the name, IsConnected True; PortName becomes
 * @port_name unless it is NULL (kept). With @switch_id NULL or "", leave
 * it unconnected as Hyper-V writes one: SwitchName, AltSwitchName and
 * PortName empty, HostResources emptied, IsConnected False. Other fields
 * (TestReplicaSwitchName, AltPortName, AuthorizationScope) are kept.
 * Returns 0 or a negative errno with a message.
 */
int config_set_adapter_switch(struct config *config, const char *key, const char *switch_id,
			      const char *switch_name, const char *port_name, struct error *err);

#endif
