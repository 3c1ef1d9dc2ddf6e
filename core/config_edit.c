/*
 * config_edit.c - reading and editing a configuration's leaves by path
 * ("properties/name"): values, their types, new elements indented like
 * their siblings, removals; every change marked for config_write.c.
 */
#include "config.h"

#include "config_internal.h"
#include "error.h"
#include "fsutil.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libxml/tree.h>

static xmlNodePtr find_child(xmlNodePtr parent, const char *name, size_t len)
{
	for (xmlNodePtr child = parent->children; child; child = child->next)
		if (child->type == XML_ELEMENT_NODE && strlen((const char *)child->name) == len &&
		    memcmp(child->name, name, len) == 0)
			return child;
	return NULL;
}

/* The element at @path under the root, or NULL. */
static xmlNodePtr find_path(const struct config *c, const char *path)
{
	xmlNodePtr node = xmlDocGetRootElement(c->doc);

	while (node && *path) {
		size_t n = strcspn(path, "/");

		node = n ? find_child(node, path, n) : NULL;
		path += n;
		if (*path == '/')
			path++;
	}
	return node;
}

/*
 * Whether @text is only whitespace with a line end: Hyper-V writes an empty
 * string as a line end and the closing tag's indentation.
 */
static bool blank_value(const char *text)
{
	bool line_end = false;

	for (; *text; text++) {
		if (!config_is_xml_space(*text))
			return false;
		line_end |= *text == '\n';
	}
	return line_end;
}

/* @node's bytes change: mark it and its ancestors, whose bytes hold its. */
static void mark_changed(xmlNodePtr node)
{
	for (; node && node->type == XML_ELEMENT_NODE; node = node->parent) {
		struct span *s = node->_private;

		if (s)
			s->dirty = true;
	}
}

int config_get(const struct config *c, const char *path, char **value, char **type)
{
	xmlNodePtr node = find_path(c, path);
	xmlChar *content, *attr;

	*value = NULL;
	if (type)
		*type = NULL;
	if (!node || !*path)
		return -ENOENT;
	if (config_has_element_children(node))
		return -EISDIR;
	content = xmlNodeGetContent(node);
	*value =
		strdup(content && !blank_value((const char *)content) ? (const char *)content : "");
	xmlFree(content);
	if (!*value)
		return -ENOMEM;
	if (type) {
		attr = xmlGetProp(node, (const xmlChar *)"type");
		if (attr) {
			*type = strdup((const char *)attr);
			xmlFree(attr);
			if (!*type) {
				free(*value);
				*value = NULL;
				return -ENOMEM;
			}
		}
	}
	return 0;
}

int config_get_int(const struct config *c, const char *path, int64_t *value)
{
	char *text, *end;
	int rc = config_get(c, path, &text, NULL);
	long long v;

	if (rc < 0)
		return rc;
	errno = 0;
	v = strtoll(text, &end, 10);
	rc = (errno || end == text || *end || isspace((unsigned char)text[0])) ? -EINVAL : 0;
	free(text);
	if (rc == 0)
		*value = v;
	return rc;
}

int config_get_bool(const struct config *c, const char *path, bool *value)
{
	char *text;
	int rc = config_get(c, path, &text, NULL);

	if (rc < 0)
		return rc;
	if (strcasecmp(text, "True") == 0)
		*value = true;
	else if (strcasecmp(text, "False") == 0)
		*value = false;
	else
		rc = -EINVAL;
	free(text);
	return rc;
}

static int base64_value(char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+')
		return 62;
	if (ch == '/')
		return 63;
	return -1;
}

int config_get_bytes(const struct config *c, const char *path, uint8_t **data, size_t *len)
{
	char *text;
	uint32_t acc = 0;
	int bits = 0, pad = 0, rc = config_get(c, path, &text, NULL);
	uint8_t *out;
	size_t n = 0;

	*data = NULL;
	if (rc < 0)
		return rc;
	out = malloc(strlen(text) / 4 * 3 + 3);
	if (!out) {
		free(text);
		return -ENOMEM;
	}
	for (const char *p = text; *p && rc == 0; p++) {
		int v;

		if (isspace((unsigned char)*p))
			continue;
		if (*p == '=') {
			pad++;
			continue;
		}
		v = base64_value(*p);
		if (v < 0 || pad) {
			rc = -EINVAL;
			break;
		}
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (uint8_t)(acc >> bits);
		}
	}
	free(text);
	if (rc < 0 || pad > 2) {
		free(out);
		return -EINVAL;
	}
	*data = out;
	*len = n;
	return 0;
}

/* The whitespace text node right before @node, if any. */
static xmlNodePtr indent_before(xmlNodePtr node)
{
	xmlNodePtr prev = node ? node->prev : NULL;

	return prev && prev->type == XML_TEXT_NODE && xmlIsBlankNode(prev) ? prev : NULL;
}

/* The indentation (after the last newline) of the blank node @ws, or "". */
static const char *indent_of(xmlNodePtr ws)
{
	const char *text = ws ? (const char *)ws->content : "";
	const char *nl = strrchr(text, '\n');

	return nl ? nl + 1 : text;
}

/* Append a new element @name under @parent, indented like its siblings. */
static xmlNodePtr add_child(xmlNodePtr parent, const char *name)
{
	xmlNodePtr last = NULL, node, ws;
	char indent[256];

	for (xmlNodePtr child = parent->children; child; child = child->next)
		if (child->type == XML_ELEMENT_NODE)
			last = child;
	node = xmlNewNode(NULL, (const xmlChar *)name);
	if (!node)
		return NULL;
	mark_changed(parent);
	if (last) {
		snprintf(indent, sizeof(indent), "\n%s", indent_of(indent_before(last)));
		ws = xmlNewText((const xmlChar *)indent);
		xmlAddNextSibling(last, ws);
		xmlAddNextSibling(ws, node);
		return node;
	}
	/* The first child: one level (two spaces) deeper than @parent, and the
	 * closing tag back at @parent's indentation. */
	{
		const char *outer = indent_of(indent_before(parent));
		char closing[256];

		snprintf(indent, sizeof(indent), "\n%s  ", outer);
		snprintf(closing, sizeof(closing), "\n%s", outer);
		/* Only whitespace goes: a comment in an empty container stays. */
		for (xmlNodePtr child = parent->children, next; child; child = next) {
			next = child->next;
			if (child->type == XML_TEXT_NODE && xmlIsBlankNode(child)) {
				xmlUnlinkNode(child);
				xmlFreeNode(child);
			}
		}
		xmlAddChild(parent, xmlNewText((const xmlChar *)indent));
		xmlAddChild(parent, node);
		xmlAddChild(parent, xmlNewText((const xmlChar *)closing));
	}
	return node;
}

/* A value: no element children, and a type or some text. */
static bool is_leaf(xmlNodePtr node)
{
	bool text = false;

	if (config_has_element_children(node))
		return false;
	for (xmlNodePtr child = node->children; child; child = child->next)
		text |= child->type == XML_TEXT_NODE && !xmlIsBlankNode(child);
	return text || xmlHasProp(node, (const xmlChar *)"type");
}

static bool valid_name(const char *name, size_t len)
{
	if (len == 0 || len > 200)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)name[i];

		if (!(isalnum(ch) || ch == '_' || ch == '-' || ch == '.') ||
		    (i == 0 && (isdigit(ch) || ch == '-' || ch == '.')))
			return false;
	}
	return true;
}

/* Give the leaf @node the text @value, marked for writing; with @keep_same, a
 * value it has already (or "" for a blank one) leaves its bytes as they are.
 * Returns 0 or -ENOMEM. */
static int set_leaf_text(struct config *c, xmlNodePtr node, const char *value, bool keep_same)
{
	xmlChar *escaped;

	if (keep_same) {
		xmlChar *had = xmlNodeGetContent(node);
		const char *text = had ? (const char *)had : "";
		bool same = strcmp(text, value) == 0 || (!*value && blank_value(text));

		xmlFree(had);
		if (same)
			return 0;
	}
	/* xmlNodeSetContent takes entity syntax; escape first. */
	escaped = xmlEncodeSpecialChars(c->doc, (const xmlChar *)value);
	if (!escaped)
		return -ENOMEM;
	xmlNodeSetContent(node, escaped);
	xmlFree(escaped);
	mark_changed(node);
	c->changed = true;
	return 0;
}

int config_set(struct config *c, const char *path, const char *type, const char *value,
	       struct error *err)
{
	xmlNodePtr node = xmlDocGetRootElement(c->doc);
	const char *p = path;
	bool created = false;

	if (!*path)
		return error_set(err, EINVAL, "empty configuration path");
	while (*p) {
		size_t n = strcspn(p, "/");
		xmlNodePtr child;
		char name[256];

		if (!valid_name(p, n))
			return error_set(err, EINVAL, "bad configuration path '%s'", path);
		child = find_child(node, p, n);
		if (!child) {
			memcpy(name, p, n);
			name[n] = '\0';
			if (p[n] == '\0' && !type)
				return error_set(err, EINVAL, "'%s' does not exist and has no type",
						 path);
			if (is_leaf(node))
				return error_set(err, EISDIR,
						 "'%s' lies under a value, not a container", path);
			child = add_child(node, name);
			if (!child)
				return error_set(err, ENOMEM, "out of memory");
			created = true;
		}
		node = child;
		p += n;
		if (*p == '/')
			p++;
	}
	if (!created && config_has_element_children(node))
		return error_set(err, EISDIR, "'%s' is a container, not a value", path);
	if (type) {
		xmlChar *had = xmlGetNoNsProp(node, (const xmlChar *)"type");
		bool same = had && strcmp((const char *)had, type) == 0;

		xmlFree(had);
		if (!same) {
			struct span *s = node->_private;

			if (!xmlSetProp(node, (const xmlChar *)"type", (const xmlChar *)type))
				return error_set(err, ENOMEM, "out of memory");
			if (s)
				s->type_changed = true;
			mark_changed(node);
			c->changed = true;
		}
	}
	return set_leaf_text(c, node, value, !created) < 0 ? error_set(err, ENOMEM, "out of memory")
							   : 0;
}

int config_set_int(struct config *c, const char *path, int64_t value, struct error *err)
{
	char text[32];

	snprintf(text, sizeof(text), "%" PRId64, value);
	return config_set(c, path, "integer", text, err);
}

int config_remove(struct config *c, const char *path)
{
	xmlNodePtr node = *path ? find_path(c, path) : NULL;
	xmlNodePtr ws;

	if (!node)
		return -ENOENT;
	mark_changed(node->parent);
	ws = indent_before(node);
	if (ws) {
		xmlUnlinkNode(ws);
		xmlFreeNode(ws);
	}
	xmlUnlinkNode(node);
	xmlFreeNode(node);
	c->changed = true;
	return 0;
}

/* config_edit_leaves() beneath @node; depth is bounded by the parser (CONFIG_MAX_DEPTH). */
static int edit_leaves_under(struct config *c, xmlNodePtr node,
			     int (*edit)(void *ctx, const char *name, const char *type,
					 const char *text, char **value),
			     void *ctx)
{
	for (xmlNodePtr child = node->children; child; child = child->next) {
		xmlChar *text, *type;
		char *value = NULL;
		int rc;

		if (child->type != XML_ELEMENT_NODE)
			continue;
		if (config_has_element_children(child)) {
			rc = edit_leaves_under(c, child, edit, ctx);
			if (rc < 0)
				return rc;
			continue;
		}
		text = xmlNodeGetContent(child);
		type = xmlGetProp(child, (const xmlChar *)"type");
		/* A blank value reads "", as config_get() gives it. */
		rc = edit(ctx, (const char *)child->name, (const char *)type,
			  text && !blank_value((const char *)text) ? (const char *)text : "",
			  &value);
		xmlFree(text);
		xmlFree(type);
		if (rc < 0)
			return rc;
		if (rc == 0 || !value)
			continue;
		rc = set_leaf_text(c, child, value, true);
		free(value);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int config_edit_leaves(struct config *c,
		       int (*edit)(void *ctx, const char *name, const char *type, const char *text,
				   char **value),
		       void *ctx)
{
	xmlNodePtr root = xmlDocGetRootElement(c->doc);

	return root ? edit_leaves_under(c, root, edit, ctx) : 0;
}

void config_names_free(char **names, size_t count)
{
	fsutil_names_free(names, count);
}

int config_children(const struct config *c, const char *path, char ***names, size_t *count)
{
	xmlNodePtr node = find_path(c, path);
	size_t n = 0, k = 0;
	char **out;

	*names = NULL;
	*count = 0;
	if (!node)
		return -ENOENT;
	for (xmlNodePtr child = node->children; child; child = child->next)
		n += child->type == XML_ELEMENT_NODE;
	out = calloc(n ? n : 1, sizeof(*out));
	if (!out)
		return -ENOMEM;
	for (xmlNodePtr child = node->children; child; child = child->next) {
		if (child->type != XML_ELEMENT_NODE)
			continue;
		out[k] = strdup((const char *)child->name);
		if (!out[k]) {
			config_names_free(out, k);
			return -ENOMEM;
		}
		k++;
	}
	*names = out;
	*count = k;
	return 0;
}

bool config_guid_valid(const char *text)
{
	static const int groups[] = {8, 4, 4, 4, 12};
	const char *p = text;

	for (int g = 0; g < 5; g++) {
		for (int i = 0; i < groups[g]; i++, p++)
			if (!isxdigit((unsigned char)*p))
				return false;
		if (g < 4 && *p++ != '-')
			return false;
	}
	return *p == '\0';
}
