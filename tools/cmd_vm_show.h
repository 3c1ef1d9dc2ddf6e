/*
 * cmd_vm_show.h - impex vm list and vm show, two commands of the vm group
 * (its table is in cmd_vm.c).
 */
#ifndef IMPEX_CMD_VM_SHOW_H
#define IMPEX_CMD_VM_SHOW_H

/* Their usages: the table's entries and the commands' messages name the same string. */
extern const char cmd_vm_list_usage[];
extern const char cmd_vm_show_usage[];

/** Run "impex vm list ARGS" (argv[0] is "list"). Returns the exit status, or CLI_HELP. */
int cmd_vm_list(int argc, char **argv);

/**
 * Run "impex vm show ARGS": exit 1 when the VM has a problem. Returns the
 * exit status, or CLI_HELP.
 */
int cmd_vm_show(int argc, char **argv);

#endif
