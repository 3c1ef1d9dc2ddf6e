/*
 * help.c - what impexfs --help prints (see help.h).
 */
#include "help.h"

#include "hyperv.h"

#include <stdio.h>
#include <string.h>

/*
 * The options, as --help prints them and docs/impexfs.1 lists them: the test
 * mount_admin checks that the page has each heading and option of this table,
 * in its order, each option's entry beginning with its text.
 */
struct option_help {
	const char *name; /* NULL: @text heads the options after it */
	const char *text;
};

static const struct option_help option_table[] = {
	{NULL, "Export options"},
	{"-o copy_vm_storage=BOOL", "The disks (default true)."},
	{"-o copy_vm_runtime_information=BOOL", "Saved state, .vsv and .bin files (default true)."},
	{"-o copy_snapshot_configuration=all|none",
	 "The snapshots in vms/: all (the default) or none."},
	{"-o create_vm_export_subdirectory=BOOL",
	 "One more folder level, named after the VM (default false)."},
	{"-o revalidate=SECONDS",
	 "How often the store is looked at for VMs and snapshots that came or went (default 2)."},
	{"-o readahead=KB", "The mount's readahead, set when run as root (default 1024)."},
	{"-o copy_reads", "Copy every read through the daemon instead of splicing the disks' "
			  "bytes from the store's files (for comparison)."},
	{"-o uid=USER", "Show every file and folder as the user's (a name or a number)."},
	{"-o gid=GROUP", "Show every file and folder as the group's (a name or a number)."},
	{"-o umask=MASK", "Take the bits of the octal MASK from every mode shown."},
	{NULL, "Import options (-o import)"},
	{"-o settings=FILE", "A settings document for every import, as impex import-settings "
			     "prints one."},
	{"-o generate_new_id=BOOL", "New GUIDs for each VM and its snapshots (default true)."},
	{"-o security_scope=TEXT", "The authorization scope the VMs get (default none)."},
	{"-o target_vm_data_root=DIR",
	 "Where the VMs' configurations and saved state go (default STORE), made if missing."},
	{"-o target_vhd_data_root=DIR",
	 "Where the disks go (default STORE/" HYPERV_DISKS_DIR "), made if missing."},
	{"-o target_snapshot_data_root=DIR",
	 "Where the snapshots' configurations and saved state go (default STORE), made if "
	 "missing."},
	{"-o disconnect_unknown_switches=BOOL",
	 "Disconnect the adapters whose switch the store lacks, instead of waiting (default "
	 "false)."},
	{"-o roots=DIR[:DIR...]", "More roots of the store (STORE is the first)."},
	{"-o sources=DIR[:DIR...]",
	 "The folders where a settings document made by root may name sources."},
	{"-o settle=MS", "How long a folder must be quiet before it is checked (default 500)."},
	{NULL, "Options of both modes"},
	{"-o pathmap=WIN=DIR[;WIN=DIR...]",
	 "Where the store's Windows paths lie on this machine, taken as written up to the next "
	 "comma."},
	{"-o verbose", "Log what is left out and why, and each import as it begins and registers."},
	{"-o allow_other", "Let other users in, as the modes shown allow them."},
	{"-o fsname=NAME",
	 "The source that mount, findmnt and df show (default the store's path)."},
	{"-f", "Stay in the foreground, messages on standard error (else they go to syslog)."},
	{"-d", "FUSE's debug output (implies -f)."},
	{"-s", "One thread (the default serves requests from several)."},
	{"-h, --help", "This text, and libfuse's options."},
	{"-V, --version", "The version."},
};

/* @text from column @indent, in lines of at most 79 columns, broken between words. */
static void print_wrapped(const char *text, int at, int indent)
{
	while (*text) {
		int room = 79 - indent, n = (int)strlen(text);

		if (n > room) {
			n = room;
			while (n > 0 && text[n] != ' ')
				n--;
			if (n == 0)
				n = (int)strcspn(text, " ");
		}
		printf("%*s%.*s\n", indent > at ? indent - at : 0, "", n, text);
		text += n;
		text += strspn(text, " ");
		at = 0;
	}
}

void fshelp_print(const char *program)
{
	printf("usage: %s [-o OPTIONS] STORE MOUNTPOINT\n"
	       "       %s export [-o OPTIONS] STORE MOUNTPOINT\n"
	       "       %s -o import [-o OPTIONS] STORE MOUNTPOINT\n"
	       "       %s import [-o OPTIONS] STORE MOUNTPOINT\n\n"
	       "Export mode (the default) serves the VMs of the Hyper-V store STORE read-only:\n"
	       "  MOUNTPOINT/vms/<vm>/                       each VM as Export-VM lays it out\n"
	       "  MOUNTPOINT/snapshots/<vm>/<snapshot>/      each snapshot as an independent VM\n"
	       "  MOUNTPOINT/raw/<vm>/<current|snapshot>/    each disk's raw content (<disk>.img)\n"
	       "  MOUNTPOINT/by-id/<GUID>                    links to the above\n\n"
	       "Import mode (-o import): each folder copied into MOUNTPOINT (cp -r, rsync -a) is\n"
	       "imported into STORE with new IDs and registered there; 'impex status MOUNTPOINT'\n"
	       "says how each one went.\n\n"
	       "BOOL is true, false, yes, no, on, off, 1 or 0; an option alone means true.\n",
	       program, program, program, program);
	for (size_t i = 0; i < sizeof(option_table) / sizeof(option_table[0]); i++) {
		const struct option_help *o = &option_table[i];

		if (!o->name) {
			printf("\n%s:\n", o->text);
			continue;
		}
		printf("    %s", o->name);
		if (4 + (int)strlen(o->name) + 2 > 40) {
			putchar('\n');
			print_wrapped(o->text, 0, 40);
		} else {
			print_wrapped(o->text, 4 + (int)strlen(o->name), 40);
		}
	}
	printf("\nUnmount with: fusermount3 -u MOUNTPOINT\n"
	       "Exit status: 0 after an unmount, 1 if the store cannot be read or the mount\n"
	       "fails, 2 for a bad option or operand.\n\n"
	       "libfuse options:\n");
}
