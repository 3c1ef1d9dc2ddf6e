/*
 * config_internal.h - what the files of the config module share, for them
 * alone (libxml2 stays inside the module; other modules see core/config.h):
 *
 *   config.c        parsing: encodings, the limits, libxml2's tree, loading
 *   config_text.c   where each node lies in the file's text (spans)
 *   config_write.c  writing: the file's bytes spliced with the edits, saving
 *   config_edit.c   reading and editing leaves by path
 *   config_vm.c     the Hyper-V view: identity, drives, adapters, times
 *
 * A struct config belongs to one thread at a time.
 */
#ifndef IMPEX_CONFIG_INTERNAL_H
#define IMPEX_CONFIG_INTERNAL_H

#include "config.h"

#include <stdbool.h>
#include <stddef.h>

#include <libxml/tree.h>

/*
 * Where a node of the tree lies in the file's text, so that a rewrite copies
 * the bytes of what did not change and writes only what did (an XML parser
 * normalizes line ends and references: the tree alone cannot give the bytes
 * back). An element's start tag is [start, open_end), its end tag
 * [close_start, end) (empty when it closes itself), and its children's
 * spans tile [open_end, close_start). Every node under the root, the root
 * included, has one (node->_private) unless the file's scan and the tree
 * disagreed; nodes that edits create have none.
 */
struct span {
	size_t start, end;
	size_t open_end, close_start;
	size_t name_end;	     /* elements: the end of the name in the start tag */
	size_t type_start, type_end; /* elements: the type attribute's value, if type_quote */
	char type_quote;
	bool self_closing;
	bool dirty;	   /* its bytes change: its own or a descendant's */
	bool type_changed; /* its type attribute changed: written into its start tag */
};

struct config {
	char *name;
	xmlDocPtr doc;
	enum config_encoding encoding;
	enum config_encoding read_encoding; /* the encoding of the file as read */
	bool utf16_without_bom;		    /* UTF-16LE read without a byte-order mark */
	bool changed;
	bool crlf;		 /* the file's line ends are CRLF */
	bool empty_tags;	 /* the file writes empty elements as <a/> */
	char *text;		 /* the file as read, in UTF-8, without a byte-order mark */
	size_t text_len;	 /* its length in bytes */
	struct span *spans;	 /* the nodes' spans (an array), or NULL: no splicing */
	size_t span_count;	 /* how many */
	char *declaration;	 /* the original "<?xml ...?>", or NULL; kept while still true */
	char *after_declaration; /* whitespace between the declaration and the first node */
	char *trailer;		 /* whitespace after the root element */
};

/** Whether @c is XML whitespace. */
static inline bool config_is_xml_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/** Whether @node has an element among its children. */
static inline bool config_has_element_children(xmlNodePtr node)
{
	for (xmlNodePtr child = node->children; child; child = child->next)
		if (child->type == XML_ELEMENT_NODE)
			return true;
	return false;
}

/* ---- config_text.c ---- */

/**
 * Find each node of the tree under @root, @root included, in @c's text: the
 * declaration, comments and processing instructions before the root are
 * skipped, and the scan must meet the tree node for node (kind, name,
 * content). Where they disagree, no node keeps a span and the tree is
 * re-serialised on writing. Returns 0 or -ENOMEM.
 */
int config_index_text(struct config *c, xmlNodePtr root);

#endif
