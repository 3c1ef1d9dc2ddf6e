/*
 * config_text.c - where each node of the tree lies in the file's text, so
 * that a rewrite copies the bytes of what did not change (see struct span).
 */
#include "config.h"

#include "config_internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/tree.h>

/* What ends a name in a tag (the text is well-formed: libxml2 read it). */
static bool ends_name(char ch)
{
	return ch == '\0' || config_is_xml_space(ch) || ch == '/' || ch == '>' || ch == '=' ||
	       ch == '<' || ch == '"' || ch == '\'';
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

		while (config_is_xml_space(t[p]))
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
		while (config_is_xml_space(t[p]))
			p++;
		if (attribute_end == attribute || t[p++] != '=')
			return false;
		while (config_is_xml_space(t[p]))
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
	while (config_is_xml_space(t[p]))
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
		while (config_is_xml_space(t[data]))
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

int config_index_text(struct config *c, xmlNodePtr root)
{
	struct scan s = {.text = c->text, .count = count_nodes(root)};
	const char *t = c->text, *end;
	size_t p = 0;

	s.spans = calloc(s.count, sizeof(*s.spans));
	if (!s.spans)
		return -ENOMEM;
	for (;;) {
		while (config_is_xml_space(t[p]))
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
		c->span_count = s.count;
		return 0;
	}
	forget_spans(root);
	free(s.spans);
	return 0;
}
