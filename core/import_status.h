/*
 * import_status.h - the import mount's status file, as the daemon writes it
 * (fs/, core/import_job.c) and `impex status` reads it (tools/cmd_status.c):
 * its name, its JSON keys and the names of an import's states, in one
 * place (docs/JSON.md, docs/IMPORT.md).
 *
 *   { "store": PATH,
 *     "imports": [ { "folder", "state", "files", "bytes", "writing",
 *                    "vm": { "id", "name" } or null, "commit_ms": N or null,
 *                    "errors": [ISSUE], "warnings": [ISSUE] } ] }
 *   ISSUE: { "id", "severity": "error" or "warning", "file": PATH or null, "message" }
 */
#ifndef IMPEX_IMPORT_STATUS_H
#define IMPEX_IMPORT_STATUS_H

/* The status file, at the mount's root. */
#define IMPORT_STATUS_FILE ".impex-status"

/* The status object. */
#define IMPORT_STATUS_STORE   "store"
#define IMPORT_STATUS_IMPORTS "imports"

/* An import object. */
#define IMPORT_STATUS_FOLDER	"folder"
#define IMPORT_STATUS_STATE	"state"
#define IMPORT_STATUS_FILES	"files"
#define IMPORT_STATUS_BYTES	"bytes"
#define IMPORT_STATUS_WRITING	"writing"
#define IMPORT_STATUS_VM	"vm"
#define IMPORT_STATUS_VM_ID	"id"
#define IMPORT_STATUS_VM_NAME	"name"
#define IMPORT_STATUS_COMMIT_MS "commit_ms"
#define IMPORT_STATUS_ERRORS	"errors"
#define IMPORT_STATUS_WARNINGS	"warnings"

/* An issue object. */
#define IMPORT_STATUS_ISSUE_ID	     "id"
#define IMPORT_STATUS_ISSUE_SEVERITY "severity"
#define IMPORT_STATUS_ISSUE_FILE     "file"
#define IMPORT_STATUS_ISSUE_MESSAGE  "message"
#define IMPORT_STATUS_ERROR	     "error"
#define IMPORT_STATUS_WARNING	     "warning"

/* The states of an import, as the status file names them. */
#define IMPORT_STATUS_COPYING	  "copying"
#define IMPORT_STATUS_WAITING	  "waiting"
#define IMPORT_STATUS_REGISTERING "registering"
#define IMPORT_STATUS_REGISTERED  "registered"
#define IMPORT_STATUS_FAILED	  "failed"

/* An import's state (core/import_job.h says how it moves). */
enum import_state {
	IMPORT_STATE_COPYING,	  /* files are arriving */
	IMPORT_STATE_WAITING,	  /* quiet, and its last check found what it lacks */
	IMPORT_STATE_REGISTERING, /* checked whole: being registered */
	IMPORT_STATE_REGISTERED,  /* its VM is in the store */
	IMPORT_STATE_FAILED,	  /* rolled back */
};

/** The name the status file gives @state (static text). */
static inline const char *import_state_name(enum import_state state)
{
	switch (state) {
	case IMPORT_STATE_COPYING:
		return IMPORT_STATUS_COPYING;
	case IMPORT_STATE_WAITING:
		return IMPORT_STATUS_WAITING;
	case IMPORT_STATE_REGISTERING:
		return IMPORT_STATUS_REGISTERING;
	case IMPORT_STATE_REGISTERED:
		return IMPORT_STATUS_REGISTERED;
	case IMPORT_STATE_FAILED:
		return IMPORT_STATUS_FAILED;
	}
	return "?";
}

#endif
