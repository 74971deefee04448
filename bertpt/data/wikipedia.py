"""MediaWiki XML dumps in: Wikipedia's `*-pages-articles*.xml.bz2` files as articles, their wikitext as prose.

Two halves, run in different processes (prepare.py):

Reading (`read_dump`, in the process that reads the input, called by corpus.py): a dump is recognised by its
content, `<mediawiki` at the start of its (decompressed) stream, whatever the file is called (`...xml.bz2`,
`...xml-p10p30302.bz2`, multistream or not). The XML is parsed as a stream (expat through
`xml.etree.ElementTree.XMLPullParser`, each page's elements dropped once it is read), so memory stays bounded
whatever the dump's size. Only pages of the main (article) namespace that are not redirects are yielded, as
their raw wikitext (of the page's last revision); the rest are counted (`DumpCounts`).

Converting (`article_text`, in the prepare worker processes, called by shards.py): the wikitext is parsed by
mwparserfromhell (the parser of the pywikibot / Earwig tools, https://github.com/earwig/mwparserfromhell)
and its tree is rendered as plain prose. What is kept follows BERT's own extraction of Wikipedia ("we extract
only the text passages and ignore lists, tables, and headers", Devlin et al. 2019, sec. 3.1; WikiExtractor, which
NVIDIA's BERT recipe runs, keeps lists only when asked to):

    kept      the text of paragraphs, bold/italic and other inline formatting as its text, the text a link
              shows ([[target|text]] -> text, [[target]] -> target), an external link's title, HTML
              entities as characters, quotations (<blockquote>, <poem>); the templates whose output is text,
              as that text (INLINE_TEMPLATES: {{convert|5|km}} -> "5 km", {{lang|fr|texte}} -> "texte",
              {{nbsp}} -> " ", {{mdash}} -> "—", {{'s}} -> "'s", {{nihongo|Aikido|合気道}} -> "Aikido",
              {{sc|ad}} -> "AD", {{chem|H|2|O}} -> "H2O", {{val|6.241|e=18}} -> "6.241×10^18", {{OldStyleDate}})
    removed   other templates (infoboxes, citations, pronunciations, navigation boxes, hatnotes), <ref> and
              references, tables, lists (*, #, ;, : lines and <ul>/<ol>/<dl>), headings and bold pseudo-headings
              (a line of bold text alone that ends no sentence: '''Notes''', '''Novels:'''), File:/Image:/Media:
              links with their captions, Category: links, interlanguage links, comments, <math>, <gallery>, code
              blocks and the other non-prose tags, behaviour switches such as __NOTOC__; and what removals leave
              in a sentence: "Achilles ({{IPAc-en|...}}; ''Akhilleus'')" -> "Achilles (Akhilleus)", not "(; Akhilleus)"

The title does not start the document: an article's lead sentence names its subject already ("'''Albedo''' is
..."), and a bare title line is not a sentence. One document per article; one paragraph per line (a single
newline inside wikitext prose continues the paragraph, as MediaWiki renders it), so the sentence splitter sees
whole paragraphs. Disambiguation pages (a disambiguation template, or __DISAMBIG__) give no document; nor do
articles with no prose left (a page that is all list or table).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass

import mwparserfromhell
from mwparserfromhell.nodes import ExternalLink, Heading, HTMLEntity, Tag, Template, Text, Wikilink

from bertpt.errors import BertptError

# The document markup of a prepare run's input (recorded in prepare.json's settings as "markup").
PLAIN, WIKITEXT = "plain", "wikitext"
MARKUPS = (PLAIN, WIKITEXT)

_UTF8_BOM = b"\xef\xbb\xbf"


# ---------------------------------------------------------------------------------------------
# Recognising a dump


def sniff(head: bytes) -> str:
    """What the first bytes of a (decompressed) file are: "dump" (a MediaWiki XML export: its root element is
    <mediawiki>), "xml" (another XML document: an XML declaration, then another root) or "text". A byte-order
    mark, whitespace, the XML declaration and comments may come before the root."""
    s = _after_prolog(head)
    root = b"<mediawiki"
    if s.startswith(root) and s[len(root) : len(root) + 1] in (b" ", b">", b"\n", b"\r", b"\t"):
        return "dump"
    return "xml" if head.lstrip(_UTF8_BOM + b" \t\r\n").startswith(b"<?xml") else "text"


def root_name(head: bytes) -> str:
    """The name of the root element an XML head starts (for messages); "" when none is in the head."""
    s = _after_prolog(head)
    if not s.startswith(b"<"):
        return ""
    name = s[1:].split(maxsplit=1)[0] if s[1:].strip() else b""
    return name.split(b">")[0].decode("utf-8", "replace")[:40]


def _after_prolog(head: bytes) -> bytes:
    """The head without a BOM, whitespace, the XML declaration, comments, processing instructions and a doctype."""
    s = head[len(_UTF8_BOM) :] if head.startswith(_UTF8_BOM) else head
    while True:
        s = s.lstrip()
        for start, end in ((b"<?", b"?>"), (b"<!--", b"-->"), (b"<!DOCTYPE", b">")):
            if s.startswith(start):
                cut = s.find(end, len(start))
                if cut < 0:
                    return b""
                s = s[cut + len(end) :]
                break
        else:
            return s


# ---------------------------------------------------------------------------------------------
# Reading pages


@dataclass
class DumpCounts:
    """What the reader saw in the dump(s); a progress bar may poll it."""

    pages: int = 0  # <page> elements read
    other_namespaces: int = 0  # pages outside the main (article) namespace: talk, user, template, category...
    redirects: int = 0  # main-namespace redirects (a <redirect> element, or text starting with #REDIRECT)
    articles: int = 0  # the rest: main-namespace pages yielded (their wikitext) for conversion


def read_dump(chunks: Iterator[bytes], where: str, counts: DumpCounts) -> Iterator[str]:
    """The raw wikitext of each article of a MediaWiki XML dump, in dump order.

    `chunks`: the dump's decompressed bytes, in pieces of any size (the first must hold the start of the root).
    Yields the text of the last revision of each main-namespace (ns 0), non-redirect page, and counts every
    page in `counts`. Raises BertptError (naming `where`) when the XML is damaged or ends before </mediawiki>
    (a truncated download), after yielding the pages before the damage.
    """
    parser = ET.XMLPullParser(events=("start", "end"))
    root = None
    depth = 0  # element nesting: page children are read at depth 2 (<mediawiki><page><...>)
    namespaces: dict[str, str] = {}  # siteinfo's namespace names -> keys, for pages without <ns> (old exports)
    closed = False
    try:
        for block in chunks:
            parser.feed(block)
            for event, el in parser.read_events():
                if event == "start":
                    depth += 1
                    if root is None:
                        root = el
                    continue
                depth -= 1
                if depth == 0:
                    closed = True
                if depth != 1:
                    continue
                name = _local(el.tag)
                if name == "siteinfo":
                    for ns in el.iter():
                        if _local(ns.tag) == "namespace" and ns.text:
                            namespaces[ns.text.strip()] = ns.get("key", "")
                elif name == "page":
                    text = _page_article(el, namespaces, counts)
                    if text is not None:
                        yield text
                root.clear()  # drop what was read: memory stays bounded whatever the dump's size
        parser.close()
    except ET.ParseError as e:
        raise BertptError(f"{where}: the MediaWiki XML dump is damaged or cut short ({e}); download it again") from None
    if not closed:
        raise BertptError(f"{where}: the MediaWiki XML dump ends before </mediawiki> (cut short?); download it again")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]  # "{http://www.mediawiki.org/xml/export-0.10/}page" -> "page"


def _page_article(page: ET.Element, namespaces: dict[str, str], counts: DumpCounts) -> str | None:
    counts.pages += 1
    title = ns = text = None
    redirect = False
    for child in page:
        name = _local(child.tag)
        if name == "title":
            title = child.text or ""
        elif name == "ns":
            ns = (child.text or "").strip()
        elif name == "redirect":
            redirect = True
        elif name == "revision":  # the last one wins (a history dump holds several)
            for r in child:
                if _local(r.tag) == "text":
                    text = r.text or ""
    if ns is None:  # exports before 0.5 have no <ns>: the title's prefix names the namespace
        prefix, colon, _ = (title or "").partition(":")
        ns = namespaces.get(prefix, "0") if colon else "0"
    if ns != "0":
        counts.other_namespaces += 1
        return None
    if redirect or (text or "").lstrip()[:9].upper() == "#REDIRECT":
        counts.redirects += 1
        return None
    counts.articles += 1
    return text or ""


# ---------------------------------------------------------------------------------------------
# Wikitext -> prose

# Tags whose content is not running prose: dropped with their content. mwparserfromhell's own list of tags that
# render no text, plus references, tables, lists (BERT's extraction ignores them), code and formulas.
_DROPPED_TAGS = frozenset(
    [
        "ref",
        "references",
        "table",
        "ul",
        "ol",
        "dl",
        "li",
        "dt",
        "dd",
        "pre",
        "syntaxhighlight",
        "source",
        "code",
        "chem",
        "ce",
        "hiero",
        "includeonly",
        "mapframe",
        "maplink",
        "indicator",
        "nowiki",
        "categorytree",
        "gallery",
        "graph",
        "imagemap",
        "inputbox",
        "math",
        "score",
        "section",
        "templatedata",
        "timeline",
    ]
)
# Wiki list markup at the start of a line: the line is a list item (or a definition / indented line), dropped.
_LIST_MARKUP = frozenset("*#;:")
# Namespaces whose links show no text in the article: images and their captions, category tags.
_HIDDEN_LINK_NAMESPACES = frozenset(["file", "image", "media", "category"])
# An interlanguage or interwiki prefix ("fr:", "zh-min-nan:", "simple:"): a link like [[fr:Albédo]] shows nothing
# in the article (it goes to the sidebar). Checked on link titles only, never on running text.
_LANGUAGE_PREFIX = re.compile(r"[a-z]{2,3}(-[a-z]+)*|simple")


# Templates whose output is running text, rendered as that text through their parse tree: name -> rule. A rule
# is Shown(before, params, sep, after): the text `before`, then the parameters named in `params` that are given
# (each rendered, then stripped), joined by `sep`, then `after`; params ("*",) is every positional parameter. A
# rule without params is constant text ({{nbsp}} -> a space, {{'s}} -> "'s"); one with params shows nothing when
# none of them is given. What each shows follows its documentation (en.wikipedia.org, Template:<name>), less
# what a Lua module computes ({{convert|5|km|mi}} shows "5 km (3.1 mi)": only "5 km" is kept) and the language
# labels ({{lang-fr|texte}} shows "French: texte": the text is kept). Other templates (infoboxes, citations,
# pronunciations, navigation) show nothing here.
@dataclass(frozen=True)
class Shown:
    before: str = ""
    params: tuple[str, ...] = ()
    sep: str = " "
    after: str = ""


_TEXT = Shown(params=("1",))  # the first parameter, as text
_DASH, _EM_DASH, _SPACED_DASH = Shown("\u2013"), Shown("\u2014"), Shown(" \u2013 ")
_SPACE = Shown(" ")
INLINE_TEMPLATES: dict[str, Shown] = {
    "convert": Shown(params=("1", "2")),
    "cvt": Shown(params=("1", "2")),
    "lang": Shown(params=("2",)),
    "transl": Shown(params=("2",)),
    "script": Shown(params=("2",)),
    "as of": Shown("As of ", ("1",)),
    "circa": Shown("c. ", ("1",)),
    "chem": Shown(params=("*",), sep=""),  # {{chem|C|''n''|H|2''n''+2}} -> CnH2n+2
    "linktext": Shown(params=("*",), sep=""),
    "val": Shown(params=("1", "e", "u")),  # {{val|6.241|(7)|e=18|u=C}} -> 6.241×10^18 C (uncertainty left out)
    "angbr": Shown("\u27e8", ("1",), after="\u27e9"),
    # Special cases in _render_template: {{frac|3}} 1/3, {{frac|3|2}} 3/2, {{frac|1|2|3}} 1 2/3;
    # {{OldStyleDate|February 2|1905|January 20}} February 2 [O.S. January 20] 1905; {{sc|ad}} AD; val's e=.
    "frac": Shown(params=("1", "2", "3")),
    "oldstyledate": Shown(params=("1", "2", "3")),
    "nbsp": _SPACE,
    "spaces": _SPACE,
    "thinsp": _SPACE,
    "nnbsp": _SPACE,
    "'s": Shown("'s"),
    "'": Shown("'"),
    "ndash": _DASH,
    "en dash": _DASH,
    "mdash": _EM_DASH,
    "mdashb": _EM_DASH,
    "em dash": _EM_DASH,
    "emdash": _EM_DASH,
    "snd": _SPACED_DASH,
    "spnd": _SPACED_DASH,
    "sndash": _SPACED_DASH,
    "spaced ndash": _SPACED_DASH,
    "spaced en dash": _SPACED_DASH,
    **dict.fromkeys(["sc", "smallcaps", "small caps", "sc1"], _TEXT),
    **dict.fromkeys(
        [
            "nowrap",
            "nobr",
            "nobreak",
            "small",
            "smaller",
            "big",
            "em",
            "not a typo",
            "sic",
            "quote",
            "nihongo",  # the English, then the Japanese in brackets (left out); no English: the romanisation
            "nihongo2",
            "iast",
            "keypress",
            "tooltip",
            "abbr",
            "nts",
            "vanchor",
            "chem2",
        ],
        _TEXT,
    ),
}
_SMALL_CAPS = frozenset(["sc", "smallcaps", "small caps", "sc1"])  # {{sc|ad}} reads "AD" on the page
# {{lang-fr|texte}} and the like: the text, as for {{lang}}.
_LANGUAGE_TEMPLATE = re.compile(r"lang-[a-z]{2,3}(-[a-z]+)*")
# Wikipedia's disambiguation message boxes: {{Disambiguation}} and its redirects and variants (Wikipedia:
# Disambiguation#Templates); any template whose name ends in "disambiguation" ({{Geodis}} is {{Place name
# disambiguation}}) is one too.
DISAMBIGUATION_TEMPLATES = frozenset(
    [
        "disambig",
        "disamb",
        "dab",
        "dis",
        "geodis",
        "hndis",
        "numberdis",
        "mathdab",
        "mil-unit-dis",
        "roaddis",
        "schooldis",
        "shipindex disambiguation",
        "letter-numbercombdisambig",
        "disambiguation cleanup",
        "disambig-cleanup",
        "dab cleanup",
        "hndis-cleanup",
    ]
)
# MediaWiki behaviour switches: plain text to the parser, nothing on the page.
_BEHAVIOUR_SWITCHES = (
    "__NOTOC__",
    "__FORCETOC__",
    "__TOC__",
    "__NOEDITSECTION__",
    "__NEWSECTIONLINK__",
    "__NONEWSECTIONLINK__",
    "__NOGALLERY__",
    "__HIDDENCAT__",
    "__EXPECTUNUSEDCATEGORY__",
    "__NOCONTENTCONVERT__",
    "__NOCC__",
    "__NOTITLECONVERT__",
    "__NOTC__",
    "__INDEX__",
    "__NOINDEX__",
    "__STATICREDIRECT__",
    "__DISAMBIG__",
)
# A line that must go (a list item, a heading) is marked with this character where the parser found it; no
# wikitext holds it (a C0 control character, which XML 1.0 cannot even carry).
_DROP_LINE = "\x01"
# Where an HTML tag's content starts and ends, so that apostrophes on either side stay separate runs (MediaWiki
# reads bold/italic with the tags still in the line); taken out after `_quotes`. Another C0 control character.
_TAG_EDGE = "\x02"
# What removed templates and references leave behind in a sentence: "Albedo ({{IPA|...}}) or" -> "Albedo () or",
# "Achilles ({{IPAc-en|...}}; ''Akhilleus'')" -> "Achilles (; Akhilleus)", "true {{citation needed}}." -> "true .":
# separators just inside a bracket go, then brackets left empty or holding only separators and dashes.
_BRACKET_OPEN_SEPARATORS = re.compile(r"([(\[])[\s,;:]+")
_BRACKET_CLOSE_SEPARATORS = re.compile(r"[\s,;:]+([)\]])")
_EMPTY_BRACKETS = re.compile(r"\s*(\([\s,;:\-\u2013\u2014]*\)|\[[\s,;:]*\])")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.])")
# A line of bold text alone, without a sentence's end (a pseudo-heading: '''Notes''', '''Novels:''' above a
# list): not prose, dropped. A one-line paragraph that is all bold but ends in . ! ? (or a quotation's end) stays.
_BOLD_LINE = re.compile(r"\s*'''(?:[^']|'(?!''))+'''\s*")
_SENTENCE_END = ".!?\"\u201d'"
# Bold and italic: runs of 2+ apostrophes, read by `_quotes` on each line, not by mwparserfromhell (its style-tag
# parsing gives up on a whole <ref> or link when one '' inside is unbalanced, which is common in articles).
_APOSTROPHES = re.compile(r"'{2,}")


def article_text(wikitext: str) -> str | None:
    """An article's wikitext as prose: one paragraph per line, "" when no prose is left, None for a
    disambiguation page (see the module's docstring for what is kept)."""
    code = mwparserfromhell.parse(wikitext, skip_style_tags=True)
    if "__DISAMBIG__" in wikitext or any(_is_disambiguation(t) for t in code.ifilter_templates(recursive=False)):
        return None
    out: list[str] = []
    _render(code, out)
    return _paragraphs("".join(out))


def convert_articles(wikitexts: list[str]) -> tuple[list[str], dict[str, int]]:
    """`article_text` of each page (disambiguation pages and pages without prose as ""), and the counts
    {"disambiguation": n, "empty": n} of those."""
    texts, disambiguation, empty = [], 0, 0
    for w in wikitexts:
        t = article_text(w)
        disambiguation += t is None
        empty += t == ""
        texts.append(t or "")
    return texts, {"disambiguation": disambiguation, "empty": empty}


def _template_name(template) -> str:
    return " ".join(str(template.name).replace("_", " ").split()).lower()


def _is_disambiguation(template) -> bool:
    name = _template_name(template)
    return name in DISAMBIGUATION_TEMPLATES or name.endswith("disambiguation")


def _render(code, out: list[str]) -> None:
    for node in code.nodes:
        if isinstance(node, Text):
            out.append(_plain(node.value))
        elif isinstance(node, Wikilink):
            _render_link(node, out)
        elif isinstance(node, Tag):
            tag = str(node.tag).strip().lower()
            if node.wiki_markup in _LIST_MARKUP:
                out.append(_DROP_LINE)  # a list item's line: its text follows, up to the line's end
            elif tag in ("br", "hr"):
                out.append(" " if tag == "br" else "\n\n")
            elif tag in _DROPPED_TAGS:
                if tag in ("table", "ul", "ol", "dl"):
                    out.append("\n\n")  # a block between two paragraphs separates them
            elif node.contents is not None:
                out.append(_TAG_EDGE)  # ''θ''<sub>''i''</sub>: two italic runs for _quotes, not one run of four
                _render(node.contents, out)
                out.append(_TAG_EDGE)
        elif isinstance(node, Heading):
            out.append("\n" + _DROP_LINE + "\n")
        elif isinstance(node, HTMLEntity):
            out.append(node.normalize())
        elif isinstance(node, ExternalLink):
            if node.brackets and node.title is not None:
                _render(node.title, out)
        elif isinstance(node, Template):
            _render_template(node, out)
        # Comment, Argument ({{{1}}}) and anything else: nothing on the page


def _render_link(link, out: list[str]) -> None:
    title = str(link.title).strip()
    prefix, colon, _ = title.partition(":")
    prefix = prefix.strip().lower()
    if colon and prefix in _HIDDEN_LINK_NAMESPACES:  # [[File:...]], [[Category:...]] (not [[:Category:...]])
        return
    if link.text is not None:
        _render(link.text, out)
    elif colon and _LANGUAGE_PREFIX.fullmatch(title.partition(":")[0].strip()):  # as written: fr, not Fr
        return  # [[fr:Albédo]]: an interlanguage link
    else:  # the title as written, its entities (&nbsp;) as characters
        shown: list[str] = []
        _render(link.title, shown)
        out.append("".join(shown).strip().lstrip(":"))


def _render_template(template, out: list[str]) -> None:
    name = _template_name(template)
    rule = INLINE_TEMPLATES.get(name) or (_TEXT if _LANGUAGE_TEMPLATE.fullmatch(name) else None)
    if rule is None:
        return
    if not rule.params:
        out.append(rule.before)
        return
    keys = rule.params
    if keys == ("*",):
        keys = tuple(str(p.name).strip() for p in template.params if not p.showkey)
    values = {}
    for key in keys:
        if template.has(key):
            value: list[str] = []
            _render(template.get(key).value, value)
            if text := "".join(value).strip():
                values[key] = text.upper() if name in _SMALL_CAPS else text
    if name == "frac":
        n = list(values.values())
        shown = f"1/{n[0]}" if len(n) == 1 else "/".join(n) if len(n) == 2 else f"{n[0]} {n[1]}/{n[2]}" if n else ""
    elif name == "oldstyledate":
        old = f" [O.S. {values['3']}]" if "3" in values else ""
        shown = " ".join(filter(None, [values.get("1", "") + old, values.get("2", "")])).strip()
    elif name == "val":
        shown = values.get("1", "") + (f"\u00d710^{values['e']}" if "e" in values else "")
        shown = " ".join(filter(None, [shown, values.get("u", "")]))
    elif name == "nihongo" and "1" not in values:
        shown = values.get("3", "")
    else:
        shown = rule.sep.join(values.values())
    if shown:
        before = rule.before
        if before and template.has("lc") and str(template.get("lc").value).strip():
            before = before.lower()  # {{as of|2010|lc=y}} in mid-sentence: "as of 2010"
        out.append(before + shown + rule.after)


def _plain(text: str) -> str:
    for switch in _BEHAVIOUR_SWITCHES:
        if switch in text:
            text = text.replace(switch, "")
    return text


def _quotes(line: str) -> str:
    """A line without its bold/italic markup, as MediaWiki renders it (Parser::doQuotes): runs of 2, 3 and 5
    apostrophes toggle italics, bold or both and show nothing; a run of 4 is an apostrophe then bold, and a
    longer run shows its apostrophes beyond five. When a line holds an odd number of both italic and bold
    toggles, one bold run is an apostrophe then italics (so "''Iliad'''s" shows "Iliad's"): the first after a
    one-letter word, else the first after a longer word, else the first after a space."""
    runs = list(_APOSTROPHES.finditer(line))
    if not runs:
        return line
    shown = []  # what each run shows
    italics = bolds = 0
    for r in runs:
        n = len(r.group())
        shown.append("'" if n == 4 else "'" * (n - 5) if n > 5 else "")
        n = 3 if n == 4 else min(n, 5)
        italics += n in (2, 5)
        bolds += n in (3, 5)
    if italics % 2 and bolds % 2:
        single = multi = space = None
        for i, r in enumerate(runs):
            if len(r.group()) != 3:
                continue
            before, before2 = line[r.start() - 1 : r.start()], line[max(r.start() - 2, 0) : r.start() - 1]
            if before == " ":
                space = i if space is None else space
            elif before2 in (" ", ""):
                single = i
                break
            elif multi is None:
                multi = i
        chosen = next((i for i in (single, multi, space) if i is not None), None)
        if chosen is not None:
            shown[chosen] = "'"
    out, pos = [], 0
    for r, text in zip(runs, shown):
        out += [line[pos : r.start()], text]
        pos = r.end()
    out.append(line[pos:])
    return "".join(out)


def _paragraphs(rendered: str) -> str:
    """Rendered text -> one paragraph per line: marked lines and bold pseudo-headings dropped, a paragraph's lines
    joined with a space (MediaWiki renders a single newline inside a paragraph as a space), whitespace collapsed,
    and the brackets left empty and stray spaces that removed templates leave closed up."""
    paragraphs, current = [], []
    for line in rendered.split("\n"):
        line = line.replace(_TAG_EDGE + _TAG_EDGE, "")
        if _DROP_LINE in line or not line.strip() or _is_pseudo_heading(line.replace(_TAG_EDGE, "")):
            if current:
                paragraphs.append(" ".join(current))
                current = []
        else:
            current.append(_quotes(line).replace(_TAG_EDGE, "").strip())
    if current:
        paragraphs.append(" ".join(current))
    result = []
    for p in paragraphs:
        p = " ".join(p.split())  # NBSP from &nbsp; and other Unicode spaces too
        if "(" in p or "[" in p:
            p = _BRACKET_OPEN_SEPARATORS.sub(r"\1", p)
            p = _BRACKET_CLOSE_SEPARATORS.sub(r"\1", p)
            p = _EMPTY_BRACKETS.sub("", p)
        p = _SPACE_BEFORE_PUNCT.sub(r"\1", " ".join(p.split()))
        if p:
            result.append(p)
    return "\n".join(result)


def _is_pseudo_heading(line: str) -> bool:
    """A line that is one bold run and does not end a sentence ('''Notes''' above the references)."""
    return _BOLD_LINE.fullmatch(line) is not None and not line.strip()[:-3].rstrip().endswith(tuple(_SENTENCE_END))
