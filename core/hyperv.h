/*
 * hyperv.h - the names Hyper-V gives the folders of a store and of an export
 * folder, in one place. A store's root holds HYPERV_VMS_DIR (one
 * <GUID>.xml per VM, with the saved state in <GUID>/), HYPERV_SNAPSHOTS_DIR
 * (one <GUID>.xml per snapshot) and HYPERV_DISKS_DIR; an export folder holds
 * the same three (docs/FORMAT.md).
 */
#ifndef IMPEX_HYPERV_H
#define IMPEX_HYPERV_H

#define HYPERV_VMS_DIR	     "Virtual Machines"
#define HYPERV_SNAPSHOTS_DIR "Snapshots"
#define HYPERV_DISKS_DIR     "Virtual Hard Disks"

#endif
