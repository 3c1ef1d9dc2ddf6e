/*
 * fuzzsupport.h - what the libFuzzer targets share: a private scratch folder
 * removed at exit, files rewritten for each input, the confinement callback
 * that keeps chain_open inside that folder, the split of one input into
 * several files, and the checksum fix-up that lets mutations reach past the
 * footer and header checks.
 *
 * Everything here aborts on a system failure: a fuzz target has no one to
 * report an error to, and a silent skip would hide the input's effect.
 */
#ifndef IMPEX_FUZZ_SUPPORT_H
#define IMPEX_FUZZ_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct error;

/* Between the files of one input in fuzz_chain (also in vhd.dict). */
#define FUZZ_FILE_SEPARATOR	"@@NEXT@@"
#define FUZZ_FILE_SEPARATOR_LEN 8

/* Scratch path buffers hold this much. */
#define FUZZ_PATH_MAX 4096

/** Abort with a message if @cond is false: an invariant of the core failed. */
#define FUZZ_CHECK(cond)                                                                           \
	do {                                                                                       \
		if (!(cond))                                                                       \
			fuzz_fail(__FILE__, __LINE__, #cond);                                      \
	} while (0)

/** Print "file:line: check failed: @what" and abort(). */
void fuzz_fail(const char *file, int line, const char *what) __attribute__((noreturn));

/**
 * A fresh folder under $TMPDIR (or /tmp), as a real path, removed with its
 * files when the process exits, unless IMPEX_FUZZ_KEEP is set (to anything
 * but "0"): then it is kept, and its path printed, so the files of the last
 * input can be examined with "impex vhd info". The same folder on every call.
 * Borrowed, valid for the life of the process.
 */
const char *fuzz_scratch_dir(void);

/** "@dir/@name" into @out (FUZZ_PATH_MAX bytes). Aborts if it does not fit. */
void fuzz_path(char *out, const char *dir, const char *name);

/** Replace the content of @path with @len bytes of @data, creating it if needed. */
void fuzz_write_file(const char *path, const uint8_t *data, size_t len);

/** Remove @path if it exists. */
void fuzz_remove_file(const char *path);

/**
 * A memfd (or, without memfd_create, an unlinked scratch file; with
 * IMPEX_FUZZ_KEEP, the scratch file input.vhd, kept) holding @len bytes of
 * @data, reused from call to call; *@path receives a name that vhd_open
 * accepts ("/proc/self/fd/N"). Borrowed, valid until the next call.
 */
void fuzz_write_memfile(const uint8_t *data, size_t len, const char **path);

/**
 * chain_options.allow: permit a parent only if its real path lies inside the
 * folder @ctx (a real path, as fuzz_scratch_dir gives). Locators in fuzzed
 * files name arbitrary paths; opening a FIFO or a device there would hang or
 * escape the scratch folder.
 */
int fuzz_allow_inside(void *ctx, const char *real_path, struct error *err);

/**
 * Split @data at each FUZZ_FILE_SEPARATOR into at most @max parts (the last
 * part keeps any further separators). Returns the number of parts, >= 1.
 */
size_t fuzz_split(const uint8_t *data, size_t size, const uint8_t **parts, size_t *lens,
		  size_t max);

/**
 * Make the checksums of the VHD image @file (@len bytes, writable) right, so
 * that mutations of the fields they cover are not all rejected at the
 * checksum check: the footer in the last 512 bytes when it carries the
 * "conectix" cookie, and the dynamic header its data offset names when that
 * lies inside @len and carries "cxsparse". Nothing is done when the footer's
 * last byte (reserved, zero in real files) is not zero: such inputs keep
 * their stored checksums, so the checksum checks stay covered.
 */
void fuzz_fix_checksums(uint8_t *file, size_t len);

/** A big-endian integer of @n bytes (at most 8) at @p, or from the bytes available. */
uint64_t fuzz_load(const uint8_t *p, size_t avail, size_t n);

/** Reference check of an error context after a failed core call returned @rc. */
void fuzz_check_error(int rc, const struct error *err);

#endif
