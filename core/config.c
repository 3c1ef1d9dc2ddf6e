#include "config.h"

#include "error.h"
#include "fsutil.h"
#include "utf16.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlsave.h>

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
	char *declaration;	 /* the original "<?xml ...?>", or NULL; kept while still true */
	char *after_declaration; /* whitespace between the declaration and the first node */
	char *trailer;		 /* whitespace after the root element */
};

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

static bool is_xml_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Does the declaration's encoding="..." say UTF-16? */
static bool declares_utf16(const char *decl)
{
	const char *e = strstr(decl, "encoding");

	if (!e)
		return false;
	e += 8;
	while (is_xml_space(*e) || *e == '=' || *e == '"' || *e == '\'')
		e++;
	return strncasecmp(e, "UTF-16", 6) == 0 || strncasecmp(e, "UTF16", 5) == 0;
}

/* Record the text around the tree that libxml2 does not keep. */
static int remember_layout(struct config *c, const char *text, size_t len)
{
	size_t end = len, start = 0;

	c->crlf = strstr(text, "\r\n") != NULL;
	c->empty_tags = strstr(text, "/>") != NULL;
	/* "<?xml" and a space: "<?xml-stylesheet" is a processing instruction. */
	if (len >= 6 && memcmp(text, "<?xml", 5) == 0 && is_xml_space(text[5])) {
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

		while (ws < len && is_xml_space(text[ws]))
			ws++;
		c->after_declaration = copy_lf(text + start, ws - start);
	}
	while (end > 0 && is_xml_space(text[end - 1]))
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

/* ---- where each node lies in the text ---- */

/* What ends a name in a tag (the text is well-formed: libxml2 read it). */
static bool ends_name(char ch)
{
	return ch == '\0' || is_xml_space(ch) || ch == '/' || ch == '>' || ch == '=' || ch == '<' ||
	       ch == '"' || ch == '\'';
}

/* Does the text at [from, to) spell @node's name, its prefix included? */
static bool spells_name(const char *t, size_t from, size_t to, xmlNodePtr node)
{
	const char *prefix = node->ns && node->ns->prefix ? (const char *)node->ns->prefix : NULL;
	size_t n = to - from;

	if (prefix) {
		size_t p = strlen(prefix);

		if (n <= p || memcmp(t + from, prefix, p) != 0 || t[from + p] != ':')
			return false;
		from += p + 1;
		n -= p + 1;
	}
	return strlen((const char *)node->name) == n && memcmp(t + from, node->name, n) == 0;
}

/* The character or predefined entity reference at @s (its ';' at @semi) as
 * UTF-8 into @out; false if it is neither. */
static bool decode_reference(const char *s, const char *semi, char out[5])
{
	static const char *const named[][2] = {
		{"&lt;", "<"}, {"&gt;", ">"}, {"&amp;", "&"}, {"&quot;", "\""}, {"&apos;", "'"},
	};
	unsigned long cp;
	char *end;

	for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++)
		if ((size_t)(semi + 1 - s) == strlen(named[i][0]) &&
		    memcmp(s, named[i][0], strlen(named[i][0])) == 0) {
			strcpy(out, named[i][1]);
			return true;
		}
	if (s[1] != '#' || !isxdigit((unsigned char)s[s[2] == 'x' ? 3 : 2]))
		return false;
	cp = s[2] == 'x' ? strtoul(s + 3, &end, 16) : strtoul(s + 2, &end, 10);
	if (end != semi || cp == 0 || cp > 0x10FFFF)
		return false;
	if (cp < 0x80) {
		out[0] = (char)cp;
		out[1] = '\0';
	} else if (cp < 0x800) {
		out[0] = (char)(0xC0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3F));
		out[2] = '\0';
	} else if (cp < 0x10000) {
		out[0] = (char)(0xE0 | cp >> 12);
		out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
		out[2] = (char)(0x80 | (cp & 0x3F));
		out[3] = '\0';
	} else {
		out[0] = (char)(0xF0 | cp >> 18);
		out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
		out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
		out[3] = (char)(0x80 | (cp & 0x3F));
		out[4] = '\0';
	}
	return true;
}

/*
 * Compare the text at [from, to) as the parser reads it (CRLF and lone CR
 * made LF; with @references, character and predefined entity references
 * replaced) with the start of @want. Returns the rest of @want, or NULL
 * when they differ.
 */
static const char *match_text(const char *t, size_t from, size_t to, const char *want,
			      bool references)
{
	for (size_t i = from; i < to;) {
		if (t[i] == '\r') {
			if (*want++ != '\n')
				return NULL;
			i += i + 1 < to && t[i + 1] == '\n' ? 2 : 1;
		} else if (t[i] == '&' && references) {
			const char *semi = memchr(t + i, ';', to - i);
			char ch[5];
			size_t n;

			if (!semi || !decode_reference(t + i, semi, ch))
				return NULL;
			n = strlen(ch);
			if (strncmp(want, ch, n) != 0)
				return NULL;
			want += n;
			i = (size_t)(semi + 1 - t);
		} else {
			if (*want++ != t[i++])
				return NULL;
		}
	}
	return want;
}

static bool matches_whole(const char *t, size_t from, size_t to, const xmlChar *content,
			  bool references)
{
	const char *rest =
		match_text(t, from, to, content ? (const char *)content : "", references);

	return rest && *rest == '\0';
}

struct scan {
	const char *text;
	struct span *spans;
	size_t used, count;
};

static struct span *next_span(struct scan *s, xmlNodePtr node, size_t start)
{
	struct span *span;

	if (s->used == s->count)
		return NULL;
	span = &s->spans[s->used++];
	span->start = start;
	node->_private = span;
	return span;
}

static bool scan_child(struct scan *s, xmlNodePtr node, size_t *pos);

/* Scan the element @node whose start tag is at *@pos; *@pos moves past its end tag. */
static bool scan_element(struct scan *s, xmlNodePtr node, size_t *pos)
{
	const char *t = s->text;
	size_t p = *pos, name;
	struct span *span;
	xmlNodePtr child;

	if (t[p] != '<' || node->type != XML_ELEMENT_NODE || !(span = next_span(s, node, p)))
		return false;
	name = ++p;
	while (!ends_name(t[p]))
		p++;
	if (!spells_name(t, name, p, node))
		return false;
	span->name_end = p;
	for (;;) {
		size_t attribute, attribute_end;
		const char *close;
		char quote;

		while (is_xml_space(t[p]))
			p++;
		if (t[p] == '>' || (t[p] == '/' && t[p + 1] == '>')) {
			span->self_closing = t[p] == '/';
			p += span->self_closing ? 2 : 1;
			break;
		}
		attribute = p;
		while (!ends_name(t[p]))
			p++;
		attribute_end = p;
		while (is_xml_space(t[p]))
			p++;
		if (attribute_end == attribute || t[p++] != '=')
			return false;
		while (is_xml_space(t[p]))
			p++;
		quote = t[p];
		close = quote == '"' || quote == '\'' ? strchr(t + p + 1, quote) : NULL;
		if (!close)
			return false;
		if (attribute_end - attribute == 4 && memcmp(t + attribute, "type", 4) == 0) {
			span->type_start = p + 1;
			span->type_end = (size_t)(close - t);
			span->type_quote = quote;
		}
		p = (size_t)(close + 1 - t);
	}
	span->open_end = p;
	if (span->self_closing) {
		span->close_start = span->end = *pos = p;
		return node->children == NULL;
	}
	for (child = node->children; strncmp(t + p, "</", 2) != 0; child = child->next)
		if (!child || !scan_child(s, child, &p))
			return false;
	if (child)
		return false;
	span->close_start = p;
	name = p += 2;
	while (!ends_name(t[p]))
		p++;
	if (!spells_name(t, name, p, node))
		return false;
	while (is_xml_space(t[p]))
		p++;
	if (t[p] != '>')
		return false;
	span->end = *pos = p + 1;
	return true;
}

/*
 * Scan the node @node of the tree that starts at *@pos in the text, as
 * libxml2 makes them: a run of text and references is one text node,
 * adjacent CDATA sections one CDATA node, each comment, processing
 * instruction and element one node. *@pos moves past it.
 */
static bool scan_child(struct scan *s, xmlNodePtr node, size_t *pos)
{
	const char *t = s->text, *end;
	size_t p = *pos;
	struct span *span;

	if (t[p] == '<' && t[p + 1] != '!' && t[p + 1] != '?')
		return scan_element(s, node, pos);
	if (!(span = next_span(s, node, p)))
		return false;
	if (strncmp(t + p, "<!--", 4) == 0) {
		end = strstr(t + p + 4, "-->");
		if (!end || node->type != XML_COMMENT_NODE ||
		    !matches_whole(t, p + 4, (size_t)(end - t), node->content, false))
			return false;
		p = (size_t)(end + 3 - t);
	} else if (strncmp(t + p, "<![CDATA[", 9) == 0) {
		const char *want = node->content ? (const char *)node->content : "";

		if (node->type != XML_CDATA_SECTION_NODE)
			return false;
		do {
			end = strstr(t + p + 9, "]]>");
			if (!end || !(want = match_text(t, p + 9, (size_t)(end - t), want, false)))
				return false;
			p = (size_t)(end + 3 - t);
		} while (strncmp(t + p, "<![CDATA[", 9) == 0);
		if (*want)
			return false;
	} else if (strncmp(t + p, "<?", 2) == 0) {
		size_t target = p + 2, data;

		end = strstr(t + target, "?>");
		for (data = target; !ends_name(t[data]) && t[data] != '?';)
			data++;
		if (!end || node->type != XML_PI_NODE || !spells_name(t, target, data, node))
			return false;
		while (is_xml_space(t[data]))
			data++;
		if (!matches_whole(t, data < (size_t)(end - t) ? data : (size_t)(end - t),
				   (size_t)(end - t), node->content, false))
			return false;
		p = (size_t)(end + 2 - t);
	} else {
		end = strchr(t + p, '<');
		if (t[p] == '<' || !end || node->type != XML_TEXT_NODE ||
		    !matches_whole(t, p, (size_t)(end - t), node->content, true))
			return false;
		p = (size_t)(end - t);
	}
	span->end = *pos = p;
	return true;
}

static size_t count_nodes(xmlNodePtr node)
{
	size_t n = 1;

	for (xmlNodePtr child = node->children; child; child = child->next)
		n += count_nodes(child);
	return n;
}

static void forget_spans(xmlNodePtr node)
{
	node->_private = NULL;
	for (xmlNodePtr child = node->children; child; child = child->next)
		forget_spans(child);
}

/*
 * Find each node of the tree under @root, @root included, in the text: the
 * declaration, comments and processing instructions before the root are
 * skipped, and the scan must meet the tree node for node (kind, name,
 * content). Where they disagree, no node keeps a span and the tree is
 * re-serialised on writing. Returns 0 or -ENOMEM.
 */
static int index_text(struct config *c, xmlNodePtr root)
{
	struct scan s = {.text = c->text, .count = count_nodes(root)};
	const char *t = c->text, *end;
	size_t p = 0;

	s.spans = calloc(s.count, sizeof(*s.spans));
	if (!s.spans)
		return -ENOMEM;
	for (;;) {
		while (is_xml_space(t[p]))
			p++;
		if (strncmp(t + p, "<?", 2) == 0 && (end = strstr(t + p, "?>")))
			p = (size_t)(end + 2 - t);
		else if (strncmp(t + p, "<!--", 4) == 0 && (end = strstr(t + p + 4, "-->")))
			p = (size_t)(end + 3 - t);
		else
			break;
	}
	if (scan_element(&s, root, &p) && s.used == s.count) {
		c->spans = s.spans;
		return 0;
	}
	forget_spans(root);
	free(s.spans);
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
	/* The text is UTF-8 now, whatever the declaration says. */
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
	if (index_text(c, root) < 0) {
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

/* ---- writing ---- */

static bool has_element_children(xmlNodePtr node)
{
	for (xmlNodePtr child = node->children; child; child = child->next)
		if (child->type == XML_ELEMENT_NODE)
			return true;
	return false;
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

/* @n bytes at @s, a text in UTF-8, as the configuration's encoding wants
 * them, into *@out (a new buffer, caller frees). */
static int encode_text(const struct config *c, const char *s, size_t n, char **out, size_t *len,
		       struct error *err)
{
	size_t mark = 0;

	if (c->encoding == CONFIG_UTF16LE) {
		char *wide = NULL;
		size_t wide_len = 0;
		int rc = utf16_encode_alloc(s, n, UTF16_LE, &wide, &wide_len, err);

		if (rc < 0)
			return error_prefix(err, "cannot encode '%s'", c->name);
		/* A file read without a byte-order mark is written without one. */
		mark = c->utf16_without_bom ? 0 : 2;
		*out = malloc(wide_len + mark);
		if (*out) {
			memcpy(*out, "\xFF\xFE", mark);
			memcpy(*out + mark, wide, wide_len);
		}
		free(wide);
		n = wide_len;
	} else {
		mark = c->encoding == CONFIG_UTF8_BOM ? 3 : 0;
		*out = malloc(n + mark + 1);
		if (*out) {
			memcpy(*out, "\xEF\xBB\xBF", mark);
			memcpy(*out + mark, s, n);
			(*out)[mark + n] = '\0';
		}
	}
	if (!*out)
		return error_set(err, ENOMEM, "out of memory writing '%s'", c->name);
	*len = n + mark;
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
		bool layout = has_element_children(node->parent);

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

	if (strncmp(text, "<?xml", 5) != 0 || !is_xml_space(text[5]) || !end || !e || e > end)
		return false;
	for (e += 8; is_xml_space(*e); e++)
		;
	if (*e++ != '=')
		return false;
	while (is_xml_space(*e))
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

int config_serialize(const struct config *c, char **out, size_t *len, struct error *err)
{
	struct text t = {0};
	int rc;

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

/* ---- reading and editing by path ---- */

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
		if (!is_xml_space(*text))
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
	if (has_element_children(node))
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

	if (has_element_children(node))
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
	if (!created && has_element_children(node))
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
		if (has_element_children(child)) {
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
