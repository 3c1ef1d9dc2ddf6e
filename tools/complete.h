/*
 * complete.h - what the shell's completion of an impex command line asks:
 * "impex __complete WORD... CURRENT" prints what may stand for CURRENT
 * after the words before it.
 */
#ifndef IMPEX_COMPLETE_H
#define IMPEX_COMPLETE_H

#include "cli.h"

/**
 * Print the completions of the last of @argv (the word at the cursor,
 * perhaps empty) after the others (the words after "impex"), as commands
 * of @top: a first line "words", "files" or "dirs", then with "words" the
 * candidates that begin with it, one a line. VM, snapshot and switch names
 * are read from the store the line names (--store, else $IMPEX_STORE).
 * Prints nothing to standard error. Returns 0.
 */
int complete_run(const struct cli_command *top, int argc, char **argv);

#endif
