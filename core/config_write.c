/*
 * config_write.c - the bytes of a configuration as they would be written:
 * the file's own text with the edits spliced in, or libxml2's serialisation
 * of the tree when the text cannot be followed; saving crash-safely.
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
#include <strings.h>

#include <libxml/tree.h>
#include <libxml/xmlsave.h>

/* Does the declaration's encoding="..." say UTF-16? */
static bool declares_utf16(const char *decl)
{
	const char *e = strstr(decl, "encoding");

	if (!e)
		return false;
	e += 8;
	while (config_is_xml_space(*e) || *e == '=' || *e == '"' || *e == '\'')
		e++;
	return strncasecmp(e, "UTF-16", 6) == 0 || strncasecmp(e, "UTF16", 5) == 0;
}

/* A growing byte buffer. */
struct text {
	char *data;
	size_t len, cap;
	bool failed;
};

static void text_add(struct text *t, const char *s, size_t n)
{
	if (t->failed)
		return;
	if (t->len + n + 1 > t->cap) {
		size_t cap = t->cap ? t->cap : 4096;
		char *grown;

		while (t->len + n + 1 > cap)
			cap *= 2;
		grown = realloc(t->data, cap);
		if (!grown) {
			t->failed = true;
			return;
		}
		t->data = grown;
		t->cap = cap;
	}
	memcpy(t->data + t->len, s, n);
	t->len += n;
	t->data[t->len] = '\0';
}

static void text_puts(struct text *t, const char *s)
{
	text_add(t, s, strlen(s));
}

/* Append the node @node as libxml2 writes it. */
static int dump_node(const struct config *c, struct text *t, xmlNodePtr node)
{
	xmlBufferPtr buf = xmlBufferCreate();
	xmlSaveCtxtPtr save;
	int options = XML_SAVE_NO_DECL | (c->empty_tags ? 0 : XML_SAVE_NO_EMPTY);

	if (!buf)
		return -ENOMEM;
	save = xmlSaveToBuffer(buf, "UTF-8", options);
	if (!save) {
		xmlBufferFree(buf);
		return -ENOMEM;
	}
	xmlSaveTree(save, node);
	xmlSaveClose(save);
	text_add(t, (const char *)xmlBufferContent(buf), (size_t)xmlBufferLength(buf));
	xmlBufferFree(buf);
	return 0;
}

/* @n bytes at @s, a text in UTF-8, as the configuration's encoding wants them, into *@out
 * (a new buffer, caller frees), their length in *@len; only counted if @out is NULL. */
static int encode_text(const struct config *c, const char *s, size_t n, char **out, size_t *len,
		       struct error *err)
{
	/* A file read without a byte-order mark is written without one. */
	size_t mark = c->encoding == CONFIG_UTF16LE ? (c->utf16_without_bom ? 0 : 2)
		      : c->encoding == CONFIG_UTF8_BOM ? 3
							: 0;
	size_t body = n; /* UTF-8: as it is */
	char *bytes;

	if (c->encoding == CONFIG_UTF16LE &&
	    utf16_encode_into(s, n, UTF16_LE, NULL, 0, &body, err) < 0)
		return error_prefix(err, "cannot encode '%s'", c->name);
	*len = mark + body;
	if (!out)
		return 0;
	*out = bytes = malloc(mark + body + 1);
	if (!bytes)
		return error_set(err, ENOMEM, "out of memory writing '%s'", c->name);
	memcpy(bytes, c->encoding == CONFIG_UTF16LE ? "\xFF\xFE" : "\xEF\xBB\xBF", mark);
	if (c->encoding == CONFIG_UTF16LE)
		utf16_encode_into(s, n, UTF16_LE, bytes + mark, body, &body, NULL);
	else
		memcpy(bytes + mark, s, n);
	bytes[mark + body] = '\0';
	return 0;
}

/* The tree as libxml2 writes it, line ends made the file's: the way back
 * when the text could not be matched with the tree. */
static int serialize_tree(const struct config *c, char **out, size_t *len, struct error *err)
{
	struct text t = {0};
	char *lines = NULL;
	size_t n = 0;
	int rc = 0;

	/* The original declaration while what it says of the encoding is true. */
	if (c->declaration && declares_utf16(c->declaration) == (c->encoding == CONFIG_UTF16LE))
		text_puts(&t, c->declaration);
	else if (c->declaration)
		text_puts(
			&t,
			c->encoding == CONFIG_UTF16LE
				? "<?xml version=\"1.0\" encoding=\"UTF-16\" standalone=\"yes\"?>"
				: "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>");
	text_puts(&t, c->after_declaration);
	for (xmlNodePtr node = c->doc->children; node && rc == 0; node = node->next) {
		if (node->type == XML_DTD_NODE)
			continue;
		rc = dump_node(c, &t, node);
		if (node->next)
			text_puts(&t, "\n");
	}
	text_puts(&t, c->trailer);
	if (rc < 0 || t.failed) {
		free(t.data);
		return error_set(err, ENOMEM, "out of memory writing '%s'", c->name);
	}
	/* Line ends as the file had them. */
	if (c->crlf) {
		size_t newlines = 0;

		for (size_t i = 0; i < t.len; i++)
			newlines += t.data[i] == '\n';
		lines = malloc(t.len + newlines + 1);
		if (!lines) {
			free(t.data);
			return error_set(err, ENOMEM, "out of memory writing '%s'", c->name);
		}
		for (size_t i = 0; i < t.len; i++) {
			if (t.data[i] == '\n')
				lines[n++] = '\r';
			lines[n++] = t.data[i];
		}
		lines[n] = '\0';
		free(t.data);
	} else {
		lines = t.data;
		n = t.len;
	}
	rc = encode_text(c, lines, n, out, len, err);
	free(lines);
	return rc;
}

/* ---- splicing: the original bytes of what did not change ---- */

/* Append the text @s escaped for XML: as element text (@quote 0), or as an
 * attribute value in @quote. A line end in text is written as @newline. */
static void add_escaped(struct text *t, const char *s, char quote, const char *newline)
{
	for (; *s; s++) {
		const char *with = NULL;

		switch (*s) {
		case '&':
			with = "&amp;";
			break;
		case '<':
			with = "&lt;";
			break;
		case '>':
			with = "&gt;";
			break;
		case '\r':
			with = "&#13;";
			break;
		case '\n':
			with = quote ? "&#10;" : newline;
			break;
		case '\t':
			with = quote ? "&#9;" : NULL;
			break;
		case '"':
			with = quote == '"' ? "&quot;" : NULL;
			break;
		case '\'':
			with = quote == '\'' ? "&apos;" : NULL;
			break;
		}
		if (with)
			text_puts(t, with);
		else
			text_add(t, s, 1);
	}
}

static const char *file_newline(const struct config *c)
{
	return c->crlf ? "\r\n" : "\n";
}

/*
 * The line end to write inside the value of @element: the one its value had
 * in the file (Hyper-V ends base64 with a bare LF in files whose lines end
 * in CRLF), else the file's.
 */
static const char *value_newline(const struct config *c, xmlNodePtr element)
{
	const struct span *s = element->_private;
	const char *from = s ? c->text + s->open_end : NULL;
	const char *nl = s ? memchr(from, '\n', s->close_start - s->open_end) : NULL;

	if (nl)
		return nl > from && nl[-1] == '\r' ? "\r\n" : "\n";
	return file_newline(c);
}

static void add_name(struct text *t, xmlNodePtr node)
{
	if (node->ns && node->ns->prefix) {
		text_puts(t, (const char *)node->ns->prefix);
		text_puts(t, ":");
	}
	text_puts(t, (const char *)node->name);
}

static void add_copy(struct text *t, const struct config *c, size_t from, size_t to)
{
	text_add(t, c->text + from, to - from);
}

static int splice_node(const struct config *c, struct text *t, xmlNodePtr node);

static int splice_children(const struct config *c, struct text *t, xmlNodePtr node)
{
	int rc = 0;

	for (xmlNodePtr child = node->children; child && rc == 0; child = child->next)
		rc = splice_node(c, t, child);
	return rc;
}

/* An element that edits made: written whole, as Hyper-V writes one. */
static int splice_new_element(const struct config *c, struct text *t, xmlNodePtr node)
{
	int rc;

	text_puts(t, "<");
	add_name(t, node);
	for (xmlNsPtr ns = node->nsDef; ns; ns = ns->next) {
		text_puts(t, ns->prefix ? " xmlns:" : " xmlns");
		text_puts(t, ns->prefix ? (const char *)ns->prefix : "");
		text_puts(t, "=\"");
		add_escaped(t, ns->href ? (const char *)ns->href : "", '"', NULL);
		text_puts(t, "\"");
	}
	for (xmlAttrPtr a = node->properties; a; a = a->next) {
		xmlChar *value = xmlNodeListGetString(node->doc, a->children, 1);

		text_puts(t, " ");
		add_name(t, (xmlNodePtr)a);
		text_puts(t, "=\"");
		add_escaped(t, value ? (const char *)value : "", '"', NULL);
		text_puts(t, "\"");
		xmlFree(value);
	}
	if (!node->children && c->empty_tags) {
		text_puts(t, "/>");
		return 0;
	}
	text_puts(t, ">");
	rc = splice_children(c, t, node);
	text_puts(t, "</");
	add_name(t, node);
	text_puts(t, ">");
	return rc;
}

/* An element of the file with something changed inside: its tags copied
 * (the type attribute's value replaced when it changed), its children
 * spliced. */
static int splice_element(const struct config *c, struct text *t, xmlNodePtr node)
{
	const struct span *s = node->_private;
	bool opens = s->self_closing && node->children; /* "<a/>" given children */
	size_t tag_end = opens ? s->open_end - 2 : s->open_end;
	int rc;

	if (s->type_changed) {
		xmlChar *type = xmlGetNoNsProp(node, (const xmlChar *)"type");
		const char *value = type ? (const char *)type : "";

		if (s->type_quote) {
			add_copy(t, c, s->start, s->type_start);
			add_escaped(t, value, s->type_quote, NULL);
			add_copy(t, c, s->type_end, tag_end);
		} else {
			add_copy(t, c, s->start, s->name_end);
			text_puts(t, " type=\"");
			add_escaped(t, value, '"', NULL);
			text_puts(t, "\"");
			add_copy(t, c, s->name_end, tag_end);
		}
		xmlFree(type);
	} else {
		add_copy(t, c, s->start, tag_end);
	}
	if (opens)
		text_puts(t, ">");
	rc = splice_children(c, t, node);
	if (!s->self_closing) {
		add_copy(t, c, s->close_start, s->end);
	} else if (opens) {
		text_puts(t, "</");
		add_name(t, node);
		text_puts(t, ">");
	}
	return rc;
}

static int splice_node(const struct config *c, struct text *t, xmlNodePtr node)
{
	const struct span *s = node->_private;

	if (s && !s->dirty) {
		add_copy(t, c, s->start, s->end);
		return 0;
	}
	if (node->type == XML_ELEMENT_NODE)
		return s ? splice_element(c, t, node) : splice_new_element(c, t, node);
	if (node->type == XML_TEXT_NODE) {
		/* Text among elements is layout, in the file's line ends; the
		 * text of a leaf is its value. */
		bool layout = config_has_element_children(node->parent);

		add_escaped(t, node->content ? (const char *)node->content : "", 0,
			    layout ? file_newline(c) : value_newline(c, node->parent));
		return 0;
	}
	/* Edits make only elements and text. */
	return dump_node(c, t, node);
}

/*
 * In the declaration that starts @text, the value of encoding="...":
 * [*from, *to). False when there is no such declaration or value.
 */
static bool declared_encoding(const char *text, size_t *from, size_t *to)
{
	const char *end = strstr(text, "?>"), *e = strstr(text, "encoding"), *close;
	char quote;

	if (strncmp(text, "<?xml", 5) != 0 || !config_is_xml_space(text[5]) || !end || !e ||
	    e > end)
		return false;
	for (e += 8; config_is_xml_space(*e); e++)
		;
	if (*e++ != '=')
		return false;
	while (config_is_xml_space(*e))
		e++;
	quote = *e;
	close = quote == '"' || quote == '\'' ? memchr(e + 1, quote, (size_t)(end - e - 1)) : NULL;
	if (!close)
		return false;
	*from = (size_t)(e + 1 - text);
	*to = (size_t)(close - text);
	return true;
}

/* The original text with the edits spliced in. */
static int splice_text(const struct config *c, struct text *t)
{
	xmlNodePtr root = xmlDocGetRootElement(c->doc);
	const struct span *s = root->_private;
	size_t from = 0, to = 0;
	int rc;

	/* Before the root: as it was, but a declaration that an encoding
	 * change made untrue gets the new one. */
	if (c->encoding != c->read_encoding && declared_encoding(c->text, &from, &to) &&
	    to <= s->start) {
		bool utf16 = strncasecmp(c->text + from, "UTF-16", 6) == 0 ||
			     strncasecmp(c->text + from, "UTF16", 5) == 0;

		if (utf16 != (c->encoding == CONFIG_UTF16LE)) {
			add_copy(t, c, 0, from);
			text_puts(t, c->encoding == CONFIG_UTF16LE ? "UTF-16" : "UTF-8");
			add_copy(t, c, to, s->start);
		} else {
			add_copy(t, c, 0, s->start);
		}
	} else {
		add_copy(t, c, 0, s->start);
	}
	rc = splice_node(c, t, root);
	add_copy(t, c, s->end, c->text_len);
	return rc;
}

/* config_serialize(), or config_serialized_size() if @out is NULL. */
static int serialize(const struct config *c, char **out, size_t *len, struct error *err)
{
	struct text t = {0};
	int rc;

	if (out)
		*out = NULL;
	*len = 0;
	if (!c->changed)
		return encode_text(c, c->text, c->text_len, out, len, err);
	if (!c->spans)
		return serialize_tree(c, out, len, err);
	rc = splice_text(c, &t);
	if (rc < 0 || t.failed) {
		free(t.data);
		return error_set(err, ENOMEM, "out of memory writing '%s'", c->name);
	}
	rc = encode_text(c, t.data, t.len, out, len, err);
	free(t.data);
	return rc;
}

int config_serialize(const struct config *c, char **out, size_t *len, struct error *err)
{
	return serialize(c, out, len, err);
}

int config_serialized_size(const struct config *c, size_t *len, struct error *err)
{
	return serialize(c, NULL, len, err);
}

/* @c as bytes that read back (a new buffer in *@data), or a negative errno with a message. */
static int serialize_checked(const struct config *c, const char *path, char **data, size_t *len,
			     struct error *err)
{
	struct config *check = NULL;
	int rc = config_serialize(c, data, len, err);

	if (rc < 0)
		return rc;
	/* Never write what could not be read back (a value holding a character
	 * XML does not allow, say). */
	rc = config_parse(&check, *data, *len, path, err);
	config_free(check);
	if (rc < 0) {
		free(*data);
		*data = NULL;
		return error_prefix(err, "not writing '%s'", path);
	}
	return 0;
}

int config_save(const struct config *c, const char *path, struct error *err)
{
	char *data = NULL;
	size_t len = 0;
	int rc = serialize_checked(c, path, &data, &len, err);

	if (rc < 0)
		return rc;
	rc = fsutil_write_atomic(path, data, len);
	free(data);
	if (rc < 0)
		return error_errno(err, -rc, "cannot write", path);
	return 0;
}

int config_save_new_at(const struct config *c, int dirfd, const char *rel, const char *path,
		       struct error *err)
{
	char *data = NULL;
	size_t len = 0;
	int rc = serialize_checked(c, path, &data, &len, err);

	if (rc < 0)
		return rc;
	rc = fsutil_write_atomic_at(dirfd, rel, data, len, false);
	free(data);
	if (rc == -EEXIST)
		return error_set(err, EEXIST, "'%s' exists: not replaced", path);
	if (rc < 0)
		return error_errno(err, -rc, "cannot write", path);
	return 0;
}
