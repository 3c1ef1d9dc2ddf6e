/* cmd_vm.h - the vm group of impex: its commands' table. */
#ifndef IMPEX_CMD_VM_H
#define IMPEX_CMD_VM_H

#include "cli.h"

/* The commands of "impex vm" (list, show, new, snapshot, ...), ended by one without a name. */
extern const struct cli_command cmd_vm_commands[];

#endif
