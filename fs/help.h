/*
 * help.h - impexfs --help: the usage, both modes in a few lines, and the
 * table of options, which docs/impexfs.1 lists in the same order (the test
 * mount_admin compares them).
 */
#ifndef IMPEXFS_HELP_H
#define IMPEXFS_HELP_H

/**
 * Print the help to standard output, @program as the command's name, up to
 * the heading of libfuse's options (fuse_lowlevel_help() prints them).
 */
void fshelp_print(const char *program);

#endif
