/*
 * config.c - parsing a configuration: its encoding from the byte-order mark,
 * the limits that keep parsing cheap, libxml2's tree without a DTD or an
 * entity, the layout around the tree; loading a file. The other parts of
 * the module are listed in config_internal.h.
 */
#include "config.h"

#include "config_internal.h"
#include "error.h"
#include "fsutil.h"
#include "utf16.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

void config_free(struct config *c)
{
	if (!c)
		return;
	xmlFreeDoc(c->doc);
	free(c->name);
	free(c->text);
	free(c->spans);
	free(c->declaration);
	free(c->after_declaration);
	free(c->trailer);
	free(c);
}

static char *dup_or_null(const char *s, bool *failed)
{
	char *copy = s ? strdup(s) : NULL;

	if (s && !copy)
		*failed = true;
	return copy;
}

/* Give each node from @to on the span of its twin from @from on, in @spans instead of @c's.
 * False if the two trees differ (a copy that libxml2 cut short for want of memory). */
static bool copy_spans(const struct config *c, struct span *spans, xmlNodePtr from, xmlNodePtr to)
{
	for (; from && to; from = from->next, to = to->next) {
		const struct span *had = from->_private;

		if (from->type != to->type)
			return false;
		to->_private = had ? spans + (had - c->spans) : NULL;
		if (!copy_spans(c, spans, from->children, to->children))
			return false;
	}
	return !from && !to;
}

int config_copy(const struct config *c, struct config **out)
{
	struct config *copy = malloc(sizeof(*copy));
	bool failed = false;

	*out = NULL;
	if (!copy)
		return -ENOMEM;
	*copy = *c;
	copy->name = dup_or_null(c->name, &failed);
	copy->declaration = dup_or_null(c->declaration, &failed);
	copy->after_declaration = dup_or_null(c->after_declaration, &failed);
	copy->trailer = dup_or_null(c->trailer, &failed);
	copy->text = malloc(c->text_len + 1);
	copy->spans = c->spans ? malloc(c->span_count * sizeof(*c->spans)) : NULL;
	copy->doc = xmlCopyDoc(c->doc, 1);
	if (failed || !copy->text || (c->spans && !copy->spans) || !copy->doc) {
		config_free(copy);
		return -ENOMEM;
	}
	memcpy(copy->text, c->text, c->text_len + 1);
	if (c->spans)
		memcpy(copy->spans, c->spans, c->span_count * sizeof(*c->spans));
	/* Every node of the copy given its span, the copy whole (xmlCopyDoc does not say when
	 * it left children out). */
	if (!copy_spans(c, copy->spans, c->doc->children, copy->doc->children) ||
	    !xmlDocGetRootElement(copy->doc)) {
		config_free(copy);
		return -ENOMEM;
	}
	*out = copy;
	return 0;
}

const char *config_name(const struct config *c)
{
	return c->name;
}

bool config_changed(const struct config *c)
{
	return c->changed;
}

enum config_encoding config_encoding(const struct config *c)
{
	return c->encoding;
}

void config_set_encoding(struct config *c, enum config_encoding encoding)
{
	if (c->encoding != encoding)
		c->changed = true;
	c->encoding = encoding;
}

/* A copy of @len bytes at @s with every "\r\n" made "\n". */
static char *copy_lf(const char *s, size_t len)
{
	char *out = malloc(len + 1);
	size_t n = 0;

	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i++)
		if (!(s[i] == '\r' && i + 1 < len && s[i + 1] == '\n'))
			out[n++] = s[i];
	out[n] = '\0';
	return out;
}

/* Record the text around the tree that libxml2 does not keep. */
static int remember_layout(struct config *c, const char *text, size_t len)
{
	size_t end = len, start = 0;

	c->crlf = strstr(text, "\r\n") != NULL;
	c->empty_tags = strstr(text, "/>") != NULL;
	/* "<?xml" and a space: "<?xml-stylesheet" is a processing instruction. */
	if (len >= 6 && memcmp(text, "<?xml", 5) == 0 && config_is_xml_space(text[5])) {
		const char *close = strstr(text, "?>");

		if (close) {
			start = (size_t)(close + 2 - text);
			c->declaration = copy_lf(text, start);
			if (!c->declaration)
				return -ENOMEM;
		}
	}
	{
		size_t ws = start;

		while (ws < len && config_is_xml_space(text[ws]))
			ws++;
		c->after_declaration = copy_lf(text + start, ws - start);
	}
	while (end > 0 && config_is_xml_space(text[end - 1]))
		end--;
	c->trailer = copy_lf(text + end, len - end);
	return c->after_declaration && c->trailer ? 0 : -ENOMEM;
}

/* Walk the tree: no node deeper than CONFIG_MAX_DEPTH, no entity references. */
static int check_tree(xmlNodePtr node, int depth, const char *name, struct error *err)
{
	for (; node; node = node->next) {
		if (node->type == XML_ENTITY_REF_NODE || node->type == XML_ENTITY_NODE)
			return error_set(err, EINVAL,
					 "'%s' line %ld: entity references are not allowed", name,
					 xmlGetLineNo(node));
		if (node->type != XML_ELEMENT_NODE)
			continue;
		if (depth > CONFIG_MAX_DEPTH)
			return error_set(err, EINVAL,
					 "'%s' line %ld: elements nest deeper than %d levels", name,
					 xmlGetLineNo(node), CONFIG_MAX_DEPTH);
		if (check_tree(node->children, depth + 1, name, err) < 0)
			return -EINVAL;
	}
	return 0;
}

/*
 * Bounds that keep parsing cheap whatever the input: libxml2 checks an
 * element's attributes against each other (quadratic), and every element
 * costs memory. Hyper-V's files hold a few thousand elements with one
 * attribute each.
 */
#define CONFIG_MAX_ELEMENTS   200000
#define CONFIG_MAX_ATTRIBUTES 32

static int check_shape(const char *text, size_t len, const char *name, struct error *err)
{
	size_t tags = 0;

	for (size_t i = 0; i < len; i++) {
		size_t attributes = 0;
		char quote = 0;

		if (text[i] != '<')
			continue;
		if (++tags > CONFIG_MAX_ELEMENTS)
			return error_set(err, EINVAL, "'%s' has more than %d elements", name,
					 CONFIG_MAX_ELEMENTS);
		/* Count the attributes of this tag: '=' outside quotes. */
		for (i++; i < len && (quote || text[i] != '>'); i++) {
			if (quote) {
				quote = text[i] == quote ? 0 : quote;
			} else if (text[i] == '"' || text[i] == '\'') {
				quote = text[i];
			} else if (text[i] == '=' && ++attributes > CONFIG_MAX_ATTRIBUTES) {
				return error_set(err, EINVAL,
						 "'%s' has an element with more than %d attributes",
						 name, CONFIG_MAX_ATTRIBUTES);
			}
		}
	}
	return 0;
}

/* The first bytes decide the encoding: a UTF-16LE or UTF-8 byte-order mark,
 * UTF-16LE without one ("<\0"), else UTF-8 whatever the declaration says.
 * *@text is a new UTF-8 string without the mark. */
static int decode_text(struct config *c, const uint8_t *data, size_t len, char **text,
		       size_t *text_len, struct error *err)
{
	int rc;

	if ((len >= 2 && data[0] == 0xFF && data[1] == 0xFE) ||
	    (len >= 2 && data[0] == '<' && data[1] == 0)) {
		size_t skip = data[0] == 0xFF ? 2 : 0;

		c->encoding = CONFIG_UTF16LE;
		c->utf16_without_bom = skip == 0;
		rc = utf16_decode_alloc(data + skip, len - skip, UTF16_LE, text, text_len, err);
		if (rc < 0)
			return error_prefix(err, "'%s' is not valid UTF-16", c->name);
		return 0;
	}
	if (len >= 2 && data[0] == 0xFE && data[1] == 0xFF)
		return error_set(err, EINVAL,
				 "'%s' is UTF-16 big-endian, which Hyper-V does not write",
				 c->name);
	c->encoding = CONFIG_UTF8;
	if (len >= 3 && data[0] == 0xEF && data[1] == 0xBB && data[2] == 0xBF) {
		c->encoding = CONFIG_UTF8_BOM;
		data += 3;
		len -= 3;
	}
	*text = malloc(len + 1);
	if (!*text)
		return error_set(err, ENOMEM, "out of memory");
	memcpy(*text, data, len);
	(*text)[len] = '\0';
	*text_len = len;
	return 0;
}

int config_parse(struct config **out, const void *data, size_t len, const char *name,
		 struct error *err)
{
	struct config *c;
	xmlParserCtxtPtr ctxt = NULL;
	char *text = NULL;
	size_t text_len = 0;
	xmlNodePtr root;
	int rc;

	*out = NULL;
	if (len > CONFIG_MAX_BYTES)
		return error_set(err, EFBIG,
				 "'%s' is %zu bytes, more than the %u a configuration may have",
				 name, len, CONFIG_MAX_BYTES);
	c = calloc(1, sizeof(*c));
	if (!c || !(c->name = strdup(name))) {
		free(c);
		return error_set(err, ENOMEM, "out of memory");
	}
	rc = decode_text(c, data, len, &text, &text_len, err);
	if (rc < 0)
		goto fail;
	if (memchr(text, '\0', text_len)) {
		rc = error_set(err, EINVAL, "'%s' holds a NUL character", name);
		goto fail;
	}
	rc = check_shape(text, text_len, name, err);
	if (rc < 0)
		goto fail;
	/* No DTD at all: nothing to load, no entity to expand. */
	if (strstr(text, "<!DOCTYPE") || strstr(text, "<!ENTITY")) {
		rc = error_set(err, EINVAL,
			       "'%s' has a document type declaration, which configurations never "
			       "have (refused: it could define entities)",
			       name);
		goto fail;
	}
	rc = remember_layout(c, text, text_len);
	if (rc < 0) {
		rc = error_set(err, ENOMEM, "out of memory");
		goto fail;
	}
	ctxt = xmlNewParserCtxt();
	if (!ctxt) {
		rc = error_set(err, ENOMEM, "out of memory");
		goto fail;
	}
	/* The text is UTF-8 now, whatever the declaration says. Not XML_PARSE_COMPACT (a
	 * little faster): libxml2 does not promise that such a tree may be edited. */
	c->doc = xmlCtxtReadMemory(ctxt, text, (int)text_len, name, "UTF-8",
				   XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (!c->doc || !ctxt->wellFormed) {
		const xmlError *e = xmlCtxtGetLastError(ctxt);
		char msg[256] = "malformed XML";

		if (e && e->message) {
			snprintf(msg, sizeof(msg), "%s", e->message);
			msg[strcspn(msg, "\n")] = '\0';
		}
		rc = error_set(err, EINVAL, "'%s' line %d: %s", name, e ? e->line : 0, msg);
		goto fail;
	}
	root = xmlDocGetRootElement(c->doc);
	if (!root || strcmp((const char *)root->name, "configuration") != 0) {
		rc = error_set(err, EINVAL, "'%s': the root element is <%s>, not <configuration>",
			       name, root ? (const char *)root->name : "");
		goto fail;
	}
	if (c->doc->intSubset || c->doc->extSubset) {
		rc = error_set(err, EINVAL, "'%s' has a document type declaration", name);
		goto fail;
	}
	rc = check_tree(root, 1, name, err);
	if (rc < 0)
		goto fail;
	c->read_encoding = c->encoding;
	c->text = text;
	c->text_len = text_len;
	text = NULL;
	if (config_index_text(c, root) < 0) {
		rc = error_set(err, ENOMEM, "out of memory");
		goto fail;
	}
	xmlFreeParserCtxt(ctxt);
	*out = c;
	return 0;
fail:
	if (ctxt)
		xmlFreeParserCtxt(ctxt);
	free(text);
	config_free(c);
	return rc;
}

int config_load(struct config **out, const char *path, struct error *err)
{
	int fd = fsutil_open_source(path, false), rc;

	*out = NULL;
	if (fd < 0)
		return error_errno(err, -fd, "cannot open", path);
	rc = config_load_fd(out, fd, path, err);
	close(fd);
	return rc;
}

int config_load_fd(struct config **out, int fd, const char *path, struct error *err)
{
	char *data = NULL;
	size_t len = 0;
	int rc;

	*out = NULL;
	rc = fsutil_read_whole(fd, CONFIG_MAX_BYTES, &data, &len);
	if (rc == -EINVAL)
		rc = error_set(err, EINVAL, "'%s' is not a regular file", path);
	else if (rc == -EFBIG)
		rc = error_set(err, EFBIG, "'%s' is more than the %u bytes a configuration may have",
			       path, CONFIG_MAX_BYTES);
	else if (rc == -ENOMEM)
		rc = error_set(err, ENOMEM, "out of memory");
	else if (rc < 0)
		rc = error_errno(err, -rc, "cannot read", path);
	else
		rc = config_parse(out, data, len, path, err);
	free(data);
	return rc;
}
