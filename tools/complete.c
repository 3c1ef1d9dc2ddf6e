/*
 * complete.c - the shell's completion of an impex command line, from the
 * command tables themselves: the commands, each one's options (those its
 * usage names), their values, and the operands, with VM, snapshot and
 * switch names read from the store.
 */
#include "complete.h"

#include "error.h"
#include "pathmap.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_OPERANDS 16

/* What the words before the cursor say. */
struct line {
	const struct cli_command *command; /* a group, or the leaf being given */
	bool help;			   /* after "help": the words name commands */
	bool options_done;		   /* after "--" */
	const char *pending;		   /* an option whose value is the next word */
	const char *operands[MAX_OPERANDS];
	size_t operand_count;
	const char *stores[CLI_MAX_STORES];
	size_t store_count;
	struct pathmap *pathmap;
	bool allow_outside;
	/* The store, opened on first need, and its VMs. */
	struct store *store;
	struct store_vm *vms;
	size_t vm_count;
	bool store_tried;
};

/* The command @name of the group @group, or NULL. */
static const struct cli_command *find_sub(const struct cli_command *group, const char *name)
{
	for (const struct cli_command *c = group->sub; c && c->name; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

/* The usage that says which options the command of @l takes: a leaf's own, else the
 * common options. */
static const char *options_usage(const struct line *l)
{
	return l->command->sub || l->help ? CLI_STORE_OPTIONS " [--json]" : l->command->usage;
}

/* The value placeholder of the option @name (@len long), NULL for one without a value. */
static const char *option_value(const struct line *l, const char *name, size_t *len)
{
	const char *value = NULL;

	if (cli_usage_option(options_usage(l), name, &value, len) ||
	    cli_usage_option(CLI_STORE_OPTIONS, name, &value, len))
		return value;
	return NULL;
}

/* Note the value @value of the option @name: the store options shape the store. */
static void take_value(struct line *l, const char *name, const char *value)
{
	struct error err;

	if (strcmp(name, "store") == 0 && l->store_count < CLI_MAX_STORES) {
		l->stores[l->store_count++] = value;
	} else if (strcmp(name, "pathmap") == 0) {
		if (!l->pathmap)
			l->pathmap = pathmap_new();
		error_clear(&err);
		if (l->pathmap)
			pathmap_add_list(l->pathmap, value, &err);
	}
}

/* Read one word before the cursor into @l. Returns false when nothing follows from it. */
static bool take_word(struct line *l, const char *word)
{
	const struct cli_command *sub;

	if (l->pending) {
		take_value(l, l->pending, word);
		l->pending = NULL;
		return true;
	}
	if (!l->options_done && strcmp(word, "--") == 0) {
		l->options_done = true;
		return true;
	}
	if (!l->options_done && word[0] == '-' && word[1]) {
		char name[64];
		const char *equals = strchr(word, '=');
		size_t len, n;

		if (word[1] != '-')
			return true; /* -h */
		n = equals ? (size_t)(equals - word - 2) : strlen(word + 2);
		snprintf(name, sizeof(name), "%.*s", (int)n, word + 2);
		if (strcmp(name, "allow-outside") == 0)
			l->allow_outside = true;
		else if (equals)
			take_value(l, name, equals + 1);
		else if (option_value(l, name, &len))
			l->pending = word + 2;
		return true;
	}
	if (l->command->sub) {
		if (!l->help && strcmp(word, "help") == 0) {
			l->help = true;
			return true;
		}
		sub = find_sub(l->command, word);
		if (!sub)
			return false;
		l->command = sub;
		return true;
	}
	if (l->help || l->operand_count == MAX_OPERANDS)
		return false;
	l->operands[l->operand_count++] = word;
	return true;
}

/* Print @candidate when it begins with @cur and fits on a line. */
static void offer(const char *candidate, const char *cur)
{
	if (strncmp(candidate, cur, strlen(cur)) != 0 || strpbrk(candidate, "\n\r"))
		return;
	printf("%s\n", candidate);
}

/* Print the options of @text ("[--NAME..." or "[-X|--NAME...") that begin with @cur, each
 * once. */
static void offer_options(const char *text, const char *cur)
{
	for (const char *p = strstr(text, "--"); p; p = strstr(p + 2, "--")) {
		char option[64];
		size_t n = strcspn(p, " =]");

		if (p == text || (p[-1] != '[' && p[-1] != '|'))
			continue;
		snprintf(option, sizeof(option), "%.*s", (int)n, p);
		offer(option, cur);
	}
}

/* Open the store the line names, once; returns whether its VMs are there. */
static bool open_store(struct line *l)
{
	struct store_options o = {0};
	struct error err;
	const char *env = getenv("IMPEX_STORE");

	if (l->store_tried)
		return l->store != NULL;
	l->store_tried = true;
	if (l->store_count == 0 && env && *env)
		l->stores[l->store_count++] = env;
	if (l->store_count == 0)
		return false;
	o.roots = l->stores;
	o.root_count = l->store_count;
	o.pathmap = l->pathmap;
	o.allow_outside = l->allow_outside;
	o.recorded = true;
	error_clear(&err);
	if (store_open(&l->store, &o, &err) < 0)
		return false;
	if (store_list(l->store, &l->vms, &l->vm_count, &err) < 0) {
		store_free(l->store);
		l->store = NULL;
		return false;
	}
	return true;
}

/* The VM the operand @index names, or NULL. */
static const struct store_vm *operand_vm(struct line *l, size_t index)
{
	const struct store_vm *vm = NULL;
	struct error err;

	if (index >= l->operand_count || !open_store(l))
		return NULL;
	error_clear(&err);
	return store_pick_vm(l->vms, l->vm_count, l->operands[index], &vm, &err) == 0 ? vm : NULL;
}

static void offer_vms(struct line *l, const char *cur)
{
	if (!open_store(l))
		return;
	for (size_t i = 0; i < l->vm_count; i++) {
		bool seen = !l->vms[i].name[0];

		for (size_t k = 0; k < i && !seen; k++)
			seen = strcmp(l->vms[k].name, l->vms[i].name) == 0;
		if (!seen)
			offer(l->vms[i].name, cur);
	}
}

static void offer_snapshots(const struct store_vm *vm, const char *prefix, const char *cur)
{
	char *text;

	for (size_t i = 0; vm && i < vm->snapshot_count; i++) {
		bool seen = false;

		/* Snapshots of one name are offered once (apply and export then want a GUID). */
		for (size_t k = 0; k < i && !seen; k++)
			seen = strcmp(vm->snapshots[k].name, vm->snapshots[i].name) == 0;
		if (!seen && asprintf(&text, "%s%s", prefix, vm->snapshots[i].name) >= 0) {
			offer(text, cur);
			free(text);
		}
	}
}

/* VM, or VM/SNAPSHOT once a '/' is typed (a VM's name may hold '/' too). */
static void offer_exports(struct line *l, const char *cur)
{
	offer_vms(l, cur);
	if (!strchr(cur, '/') || !open_store(l))
		return;
	for (size_t i = 0; i < l->vm_count; i++) {
		size_t n = strlen(l->vms[i].name);
		char *prefix;

		if (!n || strncmp(cur, l->vms[i].name, n) != 0 || cur[n] != '/')
			continue;
		if (asprintf(&prefix, "%s/", l->vms[i].name) < 0)
			continue;
		offer_snapshots(&l->vms[i], prefix, cur);
		free(prefix);
	}
}

/* The value of the option @name, whose placeholder is @value (@len long). */
static void offer_value(struct line *l, const char *name, const char *value, size_t len,
			const char *cur)
{
	char word[64];

	if (len == 3 && strncmp(value, "DIR", 3) == 0) {
		printf("dirs\n");
		return;
	}
	if (len == 4 && strncmp(value, "FILE", 4) == 0) {
		printf("files\n");
		return;
	}
	printf("words\n");
	if (strcmp(name, "switch") == 0) {
		struct store_switch *list = NULL;
		size_t n = 0;
		struct error err;

		error_clear(&err);
		if (open_store(l) && store_switches(l->store, &list, &n, &err) == 0)
			for (size_t i = 0; i < n; i++)
				offer(list[i].name, cur);
		store_switches_free(list, n);
		return;
	}
	/* A choice of words: "vhd|vhdx", "1|2". */
	if (strspn(value, "abcdefghijklmnopqrstuvwxyz0123456789|") != len)
		return;
	while (len) {
		size_t n = strcspn(value, "|");

		if (n > len)
			n = len;
		snprintf(word, sizeof(word), "%.*s", (int)n, value);
		offer(word, cur);
		value += n;
		len -= n;
		if (len) {
			value++;
			len--;
		}
	}
}

/* The operand at the cursor, of the kind the command's table gives. */
static void offer_operand(struct line *l, const char *cur)
{
	const char *kinds = l->command->operands ? l->command->operands : "";
	char kind[32];

	for (size_t i = 0; i < l->operand_count && *kinds; i++) {
		kinds += strcspn(kinds, " ");
		kinds += *kinds == ' ';
	}
	snprintf(kind, sizeof(kind), "%.*s", (int)strcspn(kinds, " "), kinds);
	if (strcmp(kind, "file") == 0) {
		printf("files\n");
		return;
	}
	if (strcmp(kind, "dir") == 0) {
		printf("dirs\n");
		return;
	}
	printf("words\n");
	if (strcmp(kind, "vm") == 0) {
		offer_vms(l, cur);
	} else if (strcmp(kind, "vm/snapshot") == 0) {
		offer_exports(l, cur);
	} else if (strcmp(kind, "snapshot") == 0) {
		offer_snapshots(operand_vm(l, 0), "", cur);
	} else if (strcmp(kind, "disk") == 0) {
		const struct store_vm *vm = operand_vm(l, 0);
		char number[24];

		for (size_t i = 0; vm && i < vm->disk_count; i++) {
			snprintf(number, sizeof(number), "%zu", i);
			offer(number, cur);
		}
	}
}

int complete_run(const struct cli_command *top, int argc, char **argv)
{
	struct line l = {.command = top};
	const char *cur = argc > 0 ? argv[argc - 1] : "";
	bool going = true;

	for (int i = 0; going && i + 1 < argc; i++)
		going = take_word(&l, argv[i]);
	if (!going) {
		printf("words\n");
	} else if (l.pending) {
		size_t len = 0;
		const char *value = option_value(&l, l.pending, &len);

		offer_value(&l, l.pending, value ? value : "", len, cur);
	} else if (!l.options_done && cur[0] == '-') {
		printf("words\n");
		offer_options(options_usage(&l), cur);
		if (strstr(options_usage(&l), "[STORE OPTIONS]"))
			offer_options(CLI_STORE_OPTIONS, cur);
		offer("--help", cur);
		if (l.command == top)
			offer("--version", cur);
	} else if (l.command->sub) {
		printf("words\n");
		for (const struct cli_command *c = l.command->sub; c->name; c++)
			offer(c->name, cur);
		if (!l.help)
			offer("help", cur);
	} else if (l.help) {
		printf("words\n");
	} else {
		offer_operand(&l, cur);
	}
	store_vms_free(l.vms, l.vm_count);
	store_free(l.store);
	pathmap_free(l.pathmap);
	return CLI_OK;
}
