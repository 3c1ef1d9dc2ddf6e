/*
 * impex demo: a realistic generated store.
 */
#ifndef IMPEX_CMD_DEMO_H
#define IMPEX_CMD_DEMO_H

/** Run "impex demo STORE" (argv[0] is "demo"). Returns the exit status. */
int cmd_demo(int argc, char **argv);

#endif
