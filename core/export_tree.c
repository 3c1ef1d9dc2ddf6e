/*
 * export_tree.c - the tree the export mount shows of a whole store (see
 * export_tree.h): vms/, snapshots/, raw/ and by-id/, with the "latest" links,
 * planned VM by VM through the planner.
 */
#include "export_tree.h"

#include "chain.h"
#include "error.h"
#include "export_disks.h"
#include "export_name.h"
#include "export_partitions.h"
#include "export_plan.h"
#include "store.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A tree being planned. */
struct tree {
	struct export_planner *p;
	const struct export_node *previous; /* the tree before, or NULL */
	struct export_node *vms, *snapshots, *raw, *by_id;
	size_t faults;	     /* VMs not planned for a transient reason */
	struct error fault;  /* the last of them */
	bool lazy;	     /* VMs not looked at are listed, not planned */
	bool partitions;     /* raw/ states' partitions read as they are planned */
	size_t index;	     /* the VM being added: its index in the listing */
	struct timespec top; /* the store's folder's time */
};

/* The modification time of the file @path, or 0 if it cannot be had. */
static struct timespec file_time(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? st.st_mtim : (struct timespec){0, 0};
}

/*
 * "raw/<vm>/<folder>/<disk>.img" for each disk of the prepared @st, whose
 * configuration is @config_path (the folder's time when it holds no disk;
 * else the newest of its images', known now for the "latest" link). The
 * folder's path is kept for messages; its partitions are read when it is
 * first listed (export_read_partitions()).
 */
static int add_raw(struct tree *t, struct export_node *raw_vm, const char *folder,
		   const struct export_state *st, const char *config_path, struct error *err)
{
	struct store *s = export_planner_store(t->p);
	struct export_node *dir = export_node_new(folder, EXPORT_DIR);
	char path[3 * (EXPORT_NAME_MAX + 8)];
	int rc = export_node_add(raw_vm, dir) < 0 ? error_set(err, ENOMEM, "out of memory") : 0;

	snprintf(path, sizeof(path), "raw/%s/%s", raw_vm->name, folder);
	if (rc == 0 && !(dir->path = strdup(path)))
		rc = error_set(err, ENOMEM, "out of memory");

	for (size_t i = 0; i < st->disk_count && rc == 0; i++) {
		char name[NAME_MAX + 1];
		size_t len;

		if (!st->names.files[i].path)
			continue; /* left out */
		len = strlen(st->names.files[i].name);

		/* "<base>.vhd" or "<base>.vhdx" (export_name_files gave that extension) becomes
		 * "<base>.img". */
		len -= st->names.files[i].vhdx ? 5 : 4;
		snprintf(name, sizeof(name), "%.*s.img", (int)len, st->names.files[i].name);
		rc = export_add_chain_node(dir, name, s, st->disks[i].path, &st->merged[i], NULL,
					   err);
		if (rc == 0 && export_time_later(st->merged[i].mtime, dir->mtime))
			dir->mtime = st->merged[i].mtime;
	}
	if (rc == 0 && dir->child_count == 0)
		dir->mtime = file_time(config_path);
	if (rc == 0)
		dir->partitions_pending = dir->child_count > 0;
	/* Planned when looked at: its tables read now, through the chains the planner holds
	 * open. A fault leaves them to be read when the folder is listed, which says it. */
	if (rc == 0 && t->partitions && dir->partitions_pending) {
		struct error why;

		error_clear(&why);
		if (export_read_partitions_planning(t->p, dir, &why) == -ENOMEM)
			rc = error_set(err, ENOMEM, "out of memory");
	}
	return rc;
}

/*
 * "latest" in @dir (a VM's folder of raw/ or snapshots/), linking to its
 * folder @target (the newest snapshot's). Its time and owner are the
 * target's, given once the tree is finished (settle_latest()).
 */
static int add_latest(struct export_node *dir, const char *target)
{
	struct export_node *link = export_node_new("latest", EXPORT_LINK);

	if (link && !(link->path = strdup(target))) {
		export_node_free(link);
		return -ENOMEM;
	}
	if (link) {
		link->size = strlen(target);
		link->mode = 0777;
		link->own_access = true;
	}
	return export_node_add(dir, link);
}

/* Give each "latest" link of raw/<vm>/ and snapshots/<vm>/ under the finished @root the time
 * and owner of the folder it links to. */
static void settle_latest(struct export_node *root)
{
	static const char *const tops[] = {"raw", "snapshots"};

	for (size_t t = 0; t < 2; t++) {
		const struct export_node *top = export_child(root, tops[t]);

		for (size_t i = 0; top && i < top->child_count; i++) {
			const struct export_node *vm = top->children[i];
			struct export_node *link = export_child(vm, "latest");
			const struct export_node *target;

			if (!link || link->type != EXPORT_LINK)
				continue;
			target = export_child(vm, link->path);
			if (!target)
				continue;
			link->mtime = target->mtime;
			link->uid = target->uid;
			link->gid = target->gid;
		}
	}
}

/* Whether the images (raw files) of folders @a and @b are the same: names, sizes, bytes. */
static bool same_images(const struct export_node *a, const struct export_node *b)
{
	size_t in_a = 0, in_b = 0;

	for (size_t i = 0; i < b->child_count; i++)
		in_b += b->children[i]->source == EXPORT_SOURCE_RAW;
	for (size_t i = 0; i < a->child_count; i++) {
		const struct export_node *image = a->children[i], *was;

		if (image->source != EXPORT_SOURCE_RAW)
			continue;
		in_a++;
		was = export_child(b, image->name);
		if (!was || was->source != EXPORT_SOURCE_RAW || was->size != image->size ||
		    export_node_identity(was) != export_node_identity(image))
			return false;
	}
	return in_a == in_b;
}

/*
 * The partitions the tree before (@previous, finished; may be NULL) had read
 * in a folder of raw/ states, copied into the same folder of @raw (being
 * planned) when its images are the same: a table is read once while its disk
 * stays as it is. Returns 0 or -ENOMEM.
 */
static int carry_partitions(struct export_node *raw, const struct export_node *previous)
{
	const struct export_node *was_raw = previous ? export_child(previous, "raw") : NULL;

	for (size_t i = 0; was_raw && i < raw->child_count; i++) {
		const struct export_node *was_vm = export_child(was_raw, raw->children[i]->name);

		for (size_t k = 0; was_vm && k < raw->children[i]->child_count; k++) {
			struct export_node *state = raw->children[i]->children[k];
			const struct export_node *was = export_child(was_vm, state->name);

			if (!state->partitions_pending || !was || was->type != EXPORT_DIR ||
			    was->partitions_pending || !same_images(state, was))
				continue;
			for (size_t p = 0; p < was->child_count; p++)
				if (was->children[p]->source == EXPORT_SOURCE_PARTITION &&
				    export_node_add(state, export_node_copy(was->children[p])) < 0)
					return -ENOMEM;
			state->partitions_pending = false;
		}
	}
	return 0;
}

/* "by-id/<id>" pointing at "../<where>/<name>[/<sub>]", with the time and owner of @like
 * (the folder it points at; a link copied: its own, and whether it is pending). */
static int add_link(struct export_node *by_id, const char *id, const char *where, const char *name,
		    const char *sub, const struct export_node *like)
{
	struct export_node *link = export_node_new(id, EXPORT_LINK);
	char target[3 * (EXPORT_NAME_MAX + 80)];

	snprintf(target, sizeof(target), "../%s/%s%s%s", where, name, sub ? "/" : "",
		 sub ? sub : "");
	if (link && !(link->path = strdup(target))) {
		export_node_free(link);
		return -ENOMEM;
	}
	if (link) {
		link->size = strlen(target);
		link->mtime = like->mtime;
		link->mode = 0777;
		link->uid = like->uid;
		link->gid = like->gid;
		link->own_access = true;
		link->vm_pending = like->vm_pending;
		link->left_out = like->left_out;
		link->vm = like->vm;
	}
	return export_node_add(by_id, link);
}

/* The names of @count things: "names[i].out", or -ENOMEM. */
static struct export_name *assign(size_t count, const char *(*name)(const void *, size_t),
				  const char *(*id)(const void *, size_t),
				  int64_t (*created)(const void *, size_t), const void *items,
				  size_t extra)
{
	struct export_name *names = calloc(count + extra ? count + extra : 1, sizeof(*names));

	if (!names)
		return NULL;
	for (size_t i = 0; i < count; i++) {
		names[i].name = name(items, i);
		names[i].id = id(items, i);
		names[i].creation_time = created(items, i);
	}
	return names;
}

static const char *vm_name(const void *v, size_t i)
{
	return ((const struct store_vm *)v)[i].name;
}
static const char *vm_id(const void *v, size_t i)
{
	return ((const struct store_vm *)v)[i].id;
}
static int64_t vm_created(const void *v, size_t i)
{
	return ((const struct store_vm *)v)[i].creation_time;
}
static const char *snap_name(const void *v, size_t i)
{
	return ((const struct store_snapshot *)v)[i].name;
}
static const char *snap_id(const void *v, size_t i)
{
	return ((const struct store_snapshot *)v)[i].id;
}
static int64_t snap_created(const void *v, size_t i)
{
	return ((const struct store_snapshot *)v)[i].creation_time;
}

static void names_free(struct export_name *names, size_t count)
{
	for (size_t i = 0; names && i < count; i++)
		free(names[i].out);
	free(names);
}


/* Tell the planner's notes of @what, @how. */
static void tell_note(struct tree *t, const char *what, enum export_omission how,
		      const struct error *why)
{
	const struct export_notes *notes = export_planner_notes(t->p);

	if (notes->note)
		notes->note(notes->ctx, what, how, why);
}

static void skip(struct tree *t, const char *what, const struct error *why)
{
	tell_note(t, what, EXPORT_LEFT_OUT, why);
}

/* Add folder @child to @dir if it holds anything; else free it. */
static int add_if_any(struct export_node *dir, struct export_node *child)
{
	if (child && child->child_count == 0) {
		export_node_free(child);
		return 0;
	}
	return export_node_add(dir, child);
}

/*
 * Whether snapshot @i of @vm was taken after its snapshot @j: by creation
 * time (to 100 ns); at the same time, the later in the store's order, which
 * puts parents before children (a child is never older than its parent).
 */
static bool newer(const struct store_vm *vm, size_t i, size_t j)
{
	const struct store_snapshot *a = &vm->snapshots[i], *b = &vm->snapshots[j];

	if (a->creation_time != b->creation_time)
		return a->creation_time > b->creation_time;
	if (a->creation_ticks != b->creation_ticks)
		return a->creation_ticks > b->creation_ticks;
	return i > j;
}

/*
 * The names of @vm's snapshot folders, named among their siblings: names[i].out
 * is snapshot i's; "current" (raw/'s) and "latest" (the link) are the oldest.
 * NULL: out of memory; else freed with names_free(names, snapshot_count + 2).
 */
static struct export_name *snapshot_names(const struct store_vm *vm)
{
	size_t count = vm->snapshot_count;
	struct export_name *names = assign(count, snap_name, snap_id, snap_created, vm->snapshots, 2);

	if (!names)
		return NULL;
	names[count] = (struct export_name){"current", "", INT64_MIN, NULL};
	names[count + 1] = (struct export_name){"latest", "", INT64_MIN, NULL};
	if (export_assign_names(names, count + 2) < 0) {
		free(names);
		return NULL;
	}
	return names;
}

/* raw/<vm>/ and snapshots/<vm>/ of @vm into @raw_dir and @snap_dir. */
static int tree_states(struct tree *t, const struct store_vm *vm, const char *name,
		       struct export_node *raw_dir, struct export_node *snap_dir,
		       struct error *fault)
{
	struct export_node *folder = NULL;
	struct export_name *names = NULL;
	struct error err;
	struct export_state current = {
		.id = vm->id, .disks = vm->disks, .disk_count = vm->disk_count};
	size_t newest_raw = SIZE_MAX, newest_snap = SIZE_MAX, count = vm->snapshot_count;
	int rc = 0;

	error_clear(&err);
	if (export_state_prepare(t->p, &current, &err) == 0)
		rc = add_raw(t, raw_dir, "current", &current, vm->config_path, &err);
	else if (error_is_transient(err.code) && err.code != ENOMEM)
		*fault = err;
	else
		skip(t, name, &err);
	export_state_free(&current);
	if (rc < 0 || fault->code || vm->snapshot_count == 0)
		return rc;
	names = snapshot_names(vm);
	if (!names)
		return -ENOMEM;
	for (size_t i = 0; i < vm->snapshot_count && rc == 0 && !fault->code; i++) {
		const struct store_snapshot *snap = &vm->snapshots[i];
		char id[37], what[2 * EXPORT_ASSIGNED_NAME_MAX + 2];
		struct export_state st = {.id = id};

		export_snapshot_vm_id(vm->id, snap->id, id);
		error_clear(&err);
		snprintf(what, sizeof(what), "%s/%s", name, names[i].out);
		rc = export_snapshot_prepare(t->p, vm, snap, &st, &err);
		if (rc == 0)
			rc = add_raw(t, raw_dir, names[i].out, &st, snap->config_path, &err);
		if (rc == 0 && (newest_raw == SIZE_MAX || newer(vm, i, newest_raw)))
			newest_raw = i;
		rc = export_plan_snapshot_state(rc, t->p, vm, snap, &st, names[i].out, &folder,
						&err);
		export_state_free(&st);
		if (rc == 0 &&
		    (export_node_add(snap_dir, folder) < 0 ||
		     add_link(t->by_id, snap->id, "snapshots", name, names[i].out, folder) < 0))
			rc = -ENOMEM;
		else if (rc == 0 && (newest_snap == SIZE_MAX || newer(vm, i, newest_snap)))
			newest_snap = i;
		else if (rc < 0 && err.code != ENOMEM && error_is_transient(err.code))
			*fault = err, rc = 0;
		else if (rc < 0 && err.code != ENOMEM)
			skip(t, what, &err), rc = 0;
	}
	/* "latest": the newest snapshot shown in each (one may be left out of a folder). */
	if (rc == 0 && !fault->code && newest_raw != SIZE_MAX &&
	    add_latest(raw_dir, names[newest_raw].out) < 0)
		rc = -ENOMEM;
	if (rc == 0 && !fault->code && newest_snap != SIZE_MAX &&
	    add_latest(snap_dir, names[newest_snap].out) < 0)
		rc = -ENOMEM;
	names_free(names, count + 2);
	return rc;
}

/*
 * What follows "../@top/@name" in the link target @target: "" or "/..." (a
 * path under it), or NULL when it does not name that folder or a path under
 * it. Borrowed from @target.
 */
static const char *link_under(const char *target, const char *top, const char *name)
{
	size_t t = strlen(top), n = strlen(name);

	if (strncmp(target, "../", 3) != 0 || strncmp(target + 3, top, t) != 0 ||
	    target[3 + t] != '/' || strncmp(target + 4 + t, name, n) != 0)
		return NULL;
	target += 4 + t + n;
	return *target == '\0' || *target == '/' ? target : NULL;
}

/* The name the tree before gave VM @id (its by-id link's folder), or NULL. Borrowed. */
static const char *previous_name(const struct export_node *previous, const char *id)
{
	const struct export_node *by_id = previous ? export_child(previous, "by-id") : NULL;
	const struct export_node *link = by_id ? export_child(by_id, id) : NULL;

	if (!link || link->type != EXPORT_LINK || strncmp(link->path, "../vms/", 7) != 0)
		return NULL;
	return link->path + 7;
}

/* Point @node and what it holds, where pending, at VM @index of the listing being planned. */
static void repoint(struct export_node *node, size_t index)
{
	if (node->vm_pending)
		node->vm = index;
	for (size_t i = 0; i < node->child_count; i++)
		repoint(node->children[i], index);
}

/* A copy of @node renamed @name, added to @dir (what is pending in it pointed at VM @index);
 * absent (NULL) is nothing to copy. */
static int add_copy(struct export_node *dir, const struct export_node *node, const char *name,
		    size_t index)
{
	struct export_node *copy;

	if (!node)
		return 0;
	copy = export_node_copy(node);
	if (copy) {
		free(copy->name);
		copy->name = strdup(name);
		if (!copy->name) {
			export_node_free(copy);
			copy = NULL;
		}
	}
	if (copy)
		repoint(copy, index);
	return export_node_add(dir, copy);
}

/*
 * VM @vm could not be planned now (@why, a transient fault): what the tree
 * before showed of it is shown again, under @name, until it can be planned.
 */
static int keep_previous(struct tree *t, const struct store_vm *vm, const char *name,
			 const struct error *why)
{
	const char *was = previous_name(t->previous, vm->id);
	const struct export_node *by_id;
	int rc;

	t->faults++;
	t->fault = *why;
	tell_note(t, name, was ? EXPORT_KEPT : EXPORT_NOT_NOW, why);
	if (!was)
		return 0;
	rc = add_copy(t->vms, export_child(export_child(t->previous, "vms"), was), name, t->index);
	if (rc == 0)
		rc = add_copy(t->raw, export_child(export_child(t->previous, "raw"), was), name,
			      t->index);
	if (rc == 0)
		rc = add_copy(t->snapshots,
			      export_child(export_child(t->previous, "snapshots"), was), name,
			      t->index);
	/* Its links and its snapshots', pointed at its name now. */
	by_id = export_child(t->previous, "by-id");
	for (size_t i = 0; rc == 0 && by_id && i < by_id->child_count; i++) {
		const struct export_node *link = by_id->children[i];
		const char *tail;

		if (link->type != EXPORT_LINK)
			continue;
		if ((tail = link_under(link->path, "vms", was)) && !*tail)
			rc = add_link(t->by_id, link->name, "vms", name, NULL, link);
		else if ((tail = link_under(link->path, "snapshots", was)) && *tail == '/')
			rc = add_link(t->by_id, link->name, "snapshots", name, tail + 1, link);
		else
			continue;
		if (rc == 0)
			repoint(t->by_id->children[t->by_id->child_count - 1], t->index);
	}
	return rc;
}

/*
 * In a lazy tree, VM @vm, named @name, was found not exportable: its folder in
 * vms/ and its by-id link stay, left out (shown nowhere), so that the next
 * tree plans it again at once rather than listing it (export_tree.h).
 */
static int add_left_out(struct tree *t, const struct store_vm *vm, const char *name)
{
	struct export_node *folder = export_node_new(name, EXPORT_DIR);
	struct export_node like = {.left_out = true, .mtime = t->top};

	if (folder)
		folder->left_out = true;
	if (export_node_add(t->vms, folder) < 0)
		return -ENOMEM;
	return add_link(t->by_id, vm->id, "vms", name, NULL, &like);
}

/* A node of the VM being added, listed, not planned: pending, of the top folders' time and
 * access (shown of none: it is planned when looked up). */
static struct export_node *pending_node(struct tree *t, const char *name)
{
	struct export_node *node = export_node_new(name, EXPORT_DIR);

	if (node) {
		node->vm_pending = true;
		node->vm = t->index;
		node->mtime = t->top;
		node->mode = t->vms->mode;
		node->uid = t->vms->uid;
		node->gid = t->vms->gid;
		node->own_access = true;
	}
	return node;
}

/*
 * VM @vm, named @name, listed and not planned: its folders in vms/, raw/ and
 * snapshots/ (if it has a snapshot that can be) and the by-id links of it and
 * of its snapshots, all pending, named as its plan names them.
 */
static int tree_pending(struct tree *t, const struct store_vm *vm, const char *name)
{
	struct export_node like = {.vm_pending = true,
				   .vm = t->index,
				   .mtime = t->top,
				   .uid = t->vms->uid,
				   .gid = t->vms->gid};
	struct export_name *names = NULL;
	bool snapshots = false;
	int rc = export_node_add(t->vms, pending_node(t, name));

	if (rc == 0)
		rc = export_node_add(t->raw, pending_node(t, name));
	if (rc == 0)
		rc = add_link(t->by_id, vm->id, "vms", name, NULL, &like);
	if (rc == 0 && vm->snapshot_count && !(names = snapshot_names(vm)))
		rc = -ENOMEM;
	for (size_t i = 0; rc == 0 && i < vm->snapshot_count; i++) {
		if (vm->snapshots[i].problem)
			continue; /* never exported (export_snapshot_prepare()) */
		snapshots = true;
		rc = add_link(t->by_id, vm->snapshots[i].id, "snapshots", name, names[i].out,
			      &like);
	}
	if (rc == 0 && snapshots)
		rc = export_node_add(t->snapshots, pending_node(t, name));
	if (names)
		names_free(names, vm->snapshot_count + 2);
	return rc;
}

/* Whether the listing found a fault in a disk of @count @disks, or one found by its name
 * alone: its plan may leave things out, or all. */
static bool disks_doubtful(const struct store_disk *disks, size_t count)
{
	for (size_t i = 0; i < count; i++)
		if (disks[i].problem || disks[i].by_name)
			return true;
	return false;
}

/*
 * Whether a lazy tree plans @vm now rather than listing it: when its
 * configuration could not be read (as a plan would, it is shown as before or
 * not) or the listing found a disk of it or of a snapshot doubtful (a disk
 * outside the store fails its plan: it is never listed), and when the tree
 * before (@t->previous) had planned it (looked at, it stays up to date; found
 * not exportable, it stays out).
 */
static bool plan_now(const struct tree *t, const struct store_vm *vm)
{
	const char *was;
	const struct export_node *folder;

	if (!t->lazy || vm->problem || disks_doubtful(vm->disks, vm->disk_count))
		return true;
	for (size_t i = 0; i < vm->snapshot_count; i++)
		if (disks_doubtful(vm->snapshots[i].disks, vm->snapshots[i].disk_count))
			return true;
	was = previous_name(t->previous, vm->id);
	folder = was ? export_child(export_child(t->previous, "vms"), was) : NULL;
	return folder && !folder->vm_pending;
}

/* Everything the mount shows of @vm, named @name. Only out of memory fails it. */
static int tree_vm(struct tree *t, const struct store_vm *vm, const char *name)
{
	struct export_node *folder = NULL, *raw_dir = NULL, *snap_dir = NULL;
	size_t vms_had = t->vms->child_count, links_had = t->by_id->child_count;
	struct error err, fault;
	int rc = 0;

	error_clear(&err);
	error_clear(&fault);
	if (vm->problem && error_is_transient(vm->problem_code)) {
		error_set(&fault, vm->problem_code, "%s", vm->problem);
		goto out;
	}
	if (export_plan_vm(t->p, vm, name, &folder, &err) == 0) {
		if (export_node_add(t->vms, folder) < 0 ||
		    add_link(t->by_id, vm->id, "vms", name, NULL, folder) < 0)
			return -ENOMEM;
	} else if (err.code == ENOMEM) {
		return -ENOMEM;
	} else if (error_is_transient(err.code)) {
		fault = err;
		goto out;
	} else {
		skip(t, name, &err);
		if (t->lazy && add_left_out(t, vm, name) < 0)
			return -ENOMEM;
	}
	if (vm->problem)
		return 0;
	raw_dir = export_node_new(name, EXPORT_DIR);
	snap_dir = export_node_new(name, EXPORT_DIR);
	rc = raw_dir && snap_dir ? tree_states(t, vm, name, raw_dir, snap_dir, &fault) : -ENOMEM;
	if (rc < 0 || fault.code)
		goto out;
	if (add_if_any(t->raw, raw_dir) < 0)
		rc = -ENOMEM;
	raw_dir = NULL;
	if (rc == 0 && add_if_any(t->snapshots, snap_dir) < 0)
		rc = -ENOMEM;
	snap_dir = NULL;
out:
	export_node_free(raw_dir);
	export_node_free(snap_dir);
	if (rc == 0 && fault.code) {
		/* Nothing half planned: the VM as the tree before had it, or not yet. */
		export_drop_children(t->vms, vms_had);
		export_drop_children(t->by_id, links_had);
		rc = keep_previous(t, vm, name, &fault);
	}
	return rc < 0 ? -ENOMEM : 0;
}

/* The top folders of @t in a new root *@root: whoever may list the store's VMs, with the
 * time of the store's first root folder. Returns 0 or a negative errno with a message. */
static int tree_start(struct tree *t, struct export_node **root, struct error *err)
{
	const char *top = store_root(export_planner_store(t->p), 0);
	struct export_node *tops[5];
	struct stat st;

	*root = export_node_new("", EXPORT_DIR);
	if (!*root || !(t->vms = export_subdir(*root, "vms")) ||
	    !(t->snapshots = export_subdir(*root, "snapshots")) ||
	    !(t->raw = export_subdir(*root, "raw")) || !(t->by_id = export_subdir(*root, "by-id")))
		return error_set(err, ENOMEM, "out of memory");
	if (stat(top, &st) < 0)
		return error_errno(err, errno, "cannot stat", top);
	t->top = st.st_mtim; /* theirs, given by tree_finish() */
	tops[0] = *root, tops[1] = t->vms, tops[2] = t->snapshots, tops[3] = t->raw;
	tops[4] = t->by_id;
	for (size_t i = 0; i < 5; i++)
		export_access_own(tops[i], &st);
	return 0;
}

/* Finish the tree of @t under @root: sorted, dated, each "latest" link settled. */
static void tree_finish(struct tree *t, struct export_node *root)
{
	export_finish(root, t->top);
	settle_latest(root);
	/* The top folders' time is the store's, whatever is planned under them. */
	root->mtime = t->vms->mtime = t->snapshots->mtime = t->raw->mtime = t->by_id->mtime =
		t->top;
}

static int plan_store(struct export_planner *p, const struct store_vm *vms, size_t count,
		      const struct export_node *previous, bool lazy, struct export_node **out,
		      char ***names_out, size_t *faults, struct error *err)
{
	struct tree t = {.p = p, .previous = previous, .lazy = lazy};
	struct export_node *root = NULL;
	struct export_name *names = NULL;
	int rc;

	*out = NULL;
	*faults = 0;
	/* A folder that is not a store is refused, not served as a store without VMs. */
	rc = store_check(export_planner_store(p), err);
	if (rc == 0)
		rc = tree_start(&t, &root, err);
	if (rc < 0) {
		export_node_free(root);
		return rc;
	}
	names = assign(count, vm_name, vm_id, vm_created, vms, 0);
	/* A VM whose configuration cannot be read now keeps the name it had. */
	for (size_t i = 0; names && i < count; i++) {
		const char *was = previous_name(t.previous, vms[i].id);

		if (was && vms[i].problem && error_is_transient(vms[i].problem_code))
			names[i].name = was;
	}
	if (!names || export_assign_names(names, count) < 0)
		rc = -ENOMEM;
	for (size_t i = 0; i < count && rc == 0; i++) {
		bool opened;

		t.index = i;
		if (!plan_now(&t, &vms[i])) {
			rc = tree_pending(&t, &vms[i], names[i].out);
			continue;
		}
		if (export_planner_vm_begin(p, &opened) < 0) {
			rc = -ENOMEM;
			break;
		}
		rc = tree_vm(&t, &vms[i], names[i].out);
		export_planner_vm_end(p, opened);
	}
	if (rc == 0)
		rc = carry_partitions(t.raw, t.previous);
	if (rc == 0 && names_out) {
		/* The names, for export_plan_listed_vm(). */
		*names_out = calloc(count ? count : 1, sizeof(**names_out));
		for (size_t i = 0; *names_out && i < count; i++) {
			(*names_out)[i] = names[i].out;
			names[i].out = NULL;
		}
		if (!*names_out)
			rc = -ENOMEM;
	}
	names_free(names, count);
	if (rc < 0) {
		export_node_free(root);
		return error_set(err, ENOMEM, "out of memory");
	}
	tree_finish(&t, root);
	*out = root;
	*faults = t.faults;
	return 0;
}

int export_plan_store(struct export_planner *p, const struct store_vm *vms, size_t count,
		      const struct export_node *previous, struct export_node **out, size_t *faults,
		      struct error *err)
{
	return plan_store(p, vms, count, previous, false, out, NULL, faults, err);
}

int export_plan_store_lazy(struct export_planner *p, const struct store_vm *vms, size_t count,
			   const struct export_node *previous, struct export_node **out,
			   char ***names, size_t *faults, struct error *err)
{
	return plan_store(p, vms, count, previous, true, out, names, faults, err);
}

void export_names_free(char **names, size_t count)
{
	for (size_t i = 0; names && i < count; i++)
		free(names[i]);
	free(names);
}

int export_plan_listed_vm(struct export_planner *p, const struct store_vm *vm, size_t index,
			  const char *name, struct export_node **out, struct error *err)
{
	struct tree t = {.p = p, .lazy = true, .partitions = true, .index = index};
	struct export_node *root = NULL;
	bool opened;
	int rc;

	*out = NULL;
	error_clear(&t.fault);
	rc = tree_start(&t, &root, err);
	if (rc == 0 && export_planner_vm_begin(p, &opened) < 0)
		rc = error_set(err, ENOMEM, "out of memory");
	else if (rc == 0) {
		rc = tree_vm(&t, vm, name) < 0 ? error_set(err, ENOMEM, "out of memory") : 0;
		export_planner_vm_end(p, opened);
	}
	/* A fault of the moment: nothing is planned, and nothing is left out. */
	if (rc == 0 && t.faults)
		rc = -(*err = t.fault).code;
	if (rc < 0) {
		export_node_free(root);
		return rc;
	}
	tree_finish(&t, root);
	*out = root;
	return 0;
}
