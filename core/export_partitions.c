/*
 * export_partitions.c - the partitions of the raw images of a folder of raw/
 * states (see export_partitions.h).
 */
#include "export_partitions.h"

#include "chain.h"
#include "error.h"
#include "export_disks.h"
#include "export_plan.h"
#include "partition.h"
#include "store.h"
#include "stream.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A raw image's table being read. */
struct table_reading {
	struct stream *stream;
	const struct export_notes *notes;
	const char *what; /* the image's path in the tree */
};

static int table_read(void *ctx, void *buf, size_t len, uint64_t offset, struct error *err)
{
	struct table_reading *r = ctx;

	return stream_read(r->stream, buf, len, offset, err);
}

/* Tell @r's notes of the fault @message of the image @r->what. */
static void table_fault(void *ctx, const char *message)
{
	struct table_reading *r = ctx;
	struct error why;

	if (!r->notes || !r->notes->note)
		return;
	error_set(&why, EINVAL, "%s", message);
	r->notes->note(r->notes->ctx, r->what, EXPORT_PARTITIONS, &why);
}

/* Bytes of [@start, @start + @len) of @stream in blocks some level allocates. */
static uint64_t window_allocated(const struct stream *stream, uint64_t start, uint64_t len)
{
	uint64_t at = start, end = start + len, total = 0;

	while (at < end) {
		bool data;
		uint64_t next;

		stream_extent(stream, at, &data, &next);
		if (next > end)
			next = end;
		if (next <= at)
			break;
		if (data)
			total += next - at;
		at = next;
	}
	return total;
}

/* The node of partition @p of raw image @image (read through @stream), named @name. */
static struct export_node *partition_node(const struct export_node *image,
					  const struct partition *p, const char *name,
					  const struct stream *stream)
{
	struct export_node *node = export_node_new(name, EXPORT_FILE);

	if (node && !(node->path = strdup(image->path))) {
		export_node_free(node);
		return NULL;
	}
	if (node) {
		node->source = EXPORT_SOURCE_PARTITION;
		node->store = image->store;
		node->stamp = image->stamp;
		node->start = p->offset;
		node->size = p->length;
		node->allocated = window_allocated(stream, p->offset, p->length);
		node->mtime = image->mtime;
		node->mode = image->mode;
		node->uid = image->uid;
		node->gid = image->gid;
	}
	return node;
}

/* Whether @dir (finished) or @more (being made) has a child named @name. */
static bool name_taken(const struct export_node *dir, const struct export_node *more,
		       const char *name)
{
	if (export_child(dir, name))
		return true;
	for (size_t i = 0; i < more->child_count; i++)
		if (strcmp(more->children[i]->name, name) == 0)
			return true;
	return false;
}

/*
 * The partitions of @image, of @dir, into @into. A table that cannot be read
 * (a damaged sector) is said and left out; what fails to open, or has changed
 * since planned, fails the call.
 */
static int image_partitions(struct export_planner *planner, const struct export_node *dir,
			    const struct export_node *image, struct export_node *into,
			    const struct export_notes *notes, struct error *err)
{
	struct store_disk top = {.path = image->path};
	struct partition_table *table = malloc(sizeof(*table));
	char what[PATH_MAX];
	struct table_reading reading = {.notes = notes, .what = what};
	struct chain *chain = NULL;
	struct stream *stream = NULL;
	struct partition_disk disk;
	struct error why;
	uint64_t stamp = 0;
	size_t stem = strlen(image->name) - 4; /* "<disk>.img" */
	int rc;

	snprintf(what, sizeof(what), "%s/%s", dir->path ? dir->path : dir->name, image->name);
	if (!table)
		return error_set(err, ENOMEM, "out of memory");
	rc = planner ? export_planner_open_chain(planner, &top, false, &chain, err)
		     : export_open_chain(image->store, image->path, &chain, err);
	/* The planner's files are the ones @image was just measured from: the check after
	 * reading suffices. Files opened again are checked before as well. */
	if (planner)
		stamp = image->stamp;
	else if (rc == 0 && (rc = export_chain_stamp(chain, &stamp, NULL, NULL)) < 0)
		rc = error_errno(err, -rc, "cannot stat", image->path);
	if (rc == 0 && stamp == image->stamp)
		rc = stream_new_raw(&stream, chain, err);
	else if (rc == 0)
		rc = error_set(err, ESTALE, "'%s' has changed since it was listed", image->path);
	if (rc == 0 && stream_size(stream) != image->size)
		rc = error_set(err, ESTALE, "'%s' has changed since it was listed", image->path);
	if (rc == 0) {
		reading.stream = stream;
		disk = (struct partition_disk){
			table_read, table_fault, &reading, image->size, chain_sector_size(chain),
			what};
		error_clear(&why);
		rc = partition_read_table(&disk, table, &why);
		/* Bytes read while the disk changed say nothing. */
		if (rc == 0 &&
		    (export_chain_stamp(chain, &stamp, NULL, NULL) < 0 || stamp != image->stamp))
			rc = error_set(err, ESTALE, "'%s' has changed since it was listed",
				       image->path);
		else if (rc == -ENOMEM)
			*err = why;
		else if (rc < 0) {
			error_prefix(&why, "cannot read the partition table of '%s'", what);
			table_fault(&reading, error_message(&why));
			table->count = 0;
			rc = 0;
		}
	}
	for (size_t i = 0; rc == 0 && i < table->count; i++) {
		const struct partition *p = &table->parts[i];
		char name[NAME_MAX + 32];
		struct export_node *node;

		if (snprintf(name, sizeof(name), "%.*s-part%u.img", (int)stem, image->name,
			     p->number) > NAME_MAX) {
			error_set(&why, ENAMETOOLONG,
				  "partition %u of '%s' would have too long a name: left out",
				  p->number, what);
			table_fault(&reading, error_message(&why));
			continue;
		}
		if (name_taken(dir, into, name)) {
			error_set(&why, EEXIST,
				  "partition %u of '%s' would be named '%s', as another file is: "
				  "left out",
				  p->number, what, name);
			table_fault(&reading, error_message(&why));
			continue;
		}
		node = partition_node(image, p, name, stream);
		if (export_node_add(into, node) < 0)
			rc = error_set(err, ENOMEM, "out of memory");
	}
	stream_free(stream);
	chain_close(chain);
	free(table);
	return rc;
}

static int read_partitions(struct export_planner *planner, const struct export_node *dir,
			   const struct export_notes *notes, struct export_node **out,
			   struct error *err)
{
	struct export_node *into = export_node_new(dir->name, EXPORT_DIR);
	int rc = into ? 0 : error_set(err, ENOMEM, "out of memory");

	*out = NULL;
	for (size_t i = 0; rc == 0 && i < dir->child_count; i++)
		if (dir->children[i]->source == EXPORT_SOURCE_RAW)
			rc = image_partitions(planner, dir, dir->children[i], into, notes, err);
	if (rc < 0) {
		export_node_free(into);
		return rc;
	}
	*out = into;
	return 0;
}

int export_read_partitions(const struct export_node *dir, const struct export_notes *notes,
			   struct export_node **out, struct error *err)
{
	return read_partitions(NULL, dir, notes, out, err);
}

int export_read_partitions_planning(struct export_planner *planner, struct export_node *dir,
				    struct error *err)
{
	struct export_node *parts = NULL;
	int rc = read_partitions(planner, dir, export_planner_notes(planner), &parts, err);

	if (rc == 0 && export_add_partitions(dir, parts) < 0)
		rc = error_set(err, ENOMEM, "out of memory");
	return rc;
}

int export_add_partitions(struct export_node *dir, struct export_node *parts)
{
	size_t n = parts->child_count;

	if (n) {
		struct export_node **grown =
			realloc(dir->children, (dir->child_count + n) * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		memcpy(grown + dir->child_count, parts->children, n * sizeof(*grown));
		dir->children = grown;
		dir->child_count += n;
		qsort(dir->children, dir->child_count, sizeof(*dir->children),
		      export_compare_nodes);
		parts->child_count = 0;
	}
	dir->partitions_pending = false;
	export_node_free(parts);
	return 0;
}
