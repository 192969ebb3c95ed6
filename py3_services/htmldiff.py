"""HTML diff over a stream of parse events: the ``htmldiff`` service (Python 3 port).

::

    from py3_services.htmldiff import diff, tokenize
    diff(u"<p>one two</p>", u"<p>one three</p>")[u"html"]
    # u'<p>one <del>two</del><ins>three</ins></p>'
    tokenize(u"<b>x</b>")   # [((u"start", u"b", ()), u"<b>"), ((u"text", u"x"), u"x"), ...]

Each document becomes a list of hashable events -- ``("start", tag,
attrs)``, ``("end", tag)``, ``("text", word)``, ``("ws",)``,
``("comment", text)``, ``("decl", text)`` -- and ``difflib.SequenceMatcher``
runs over the two lists. Equal stretches are copied from the new document;
deleted words are wrapped in ``<del>`` (their markup is dropped, the
whitespace around them kept), inserted
words in ``<ins>`` (their markup is kept).

The tokenizer is a small regular-expression scanner rather than HTMLParser
because the two interpreters' HTMLParsers disagree on malformed input, and
the Python 2 and 3 versions must give byte-identical answers. It uses ASCII
classes only (HTML's own whitespace and tag-name alphabets) so that Unicode
database differences between interpreters cannot change a token boundary.
It never raises on malformed HTML: anything that is not a tag is text. A tag
ends at the first ``>`` outside quotes and cannot contain ``<``, which keeps
the scan linear.
"""

import difflib
import re

from werkzeug.wrappers import Request

from protocol._compat import to_text
from protocol.errors import InvalidParams, ProtocolError, TooLarge
from py3_services._web import error_response, escape, html_page

MAX_INPUT = 256 * 1024

_TOKEN = re.compile(
    "(?P<comment><!--.*?(?:-->|$))"
    "|(?P<decl><[!?][^<>]*>)"
    "|(?P<end></(?P<etag>[A-Za-z][A-Za-z0-9:-]*)[ \t\n\r\f]*>)"
    "|(?P<start><(?P<stag>[A-Za-z][A-Za-z0-9:-]*)"
    "(?P<attrs>(?:\"[^\"<>]*\"|'[^'<>]*'|[^'\"<>])*)>)"
    "|(?P<ws>[ \t\n\r\f]+)"
    "|(?P<word>[^< \t\n\r\f]+)"
    "|(?P<lt><)",
    re.S)
_ATTR = re.compile(
    "([^ \t\n\r\f/>=\"']+)(?:[ \t\n\r\f]*=[ \t\n\r\f]*(\"[^\"]*\"|'[^']*'|[^ \t\n\r\f\"'>]+))?")
_UPPER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}


def _lower(text: str) -> str:
    """ASCII-only lower case: the same on every Unicode database version."""
    return text.translate(_UPPER)


def _attrs(source: str) -> tuple:
    out = []
    for name, value in _ATTR.findall(source):
        if value[:1] in ('"', "'"):
            value = value[1:-1]
        out.append((_lower(name), value))
    return tuple(out)


def tokenize(html: str) -> list:
    """``[(event, source), ...]`` for ``html``: hashable events with their original text."""
    out = []
    for m in _TOKEN.finditer(html):
        kind = m.lastgroup
        src = m.group(0)
        if kind == "start":
            event = ("start", _lower(m.group("stag")), _attrs(m.group("attrs")))
        elif kind == "end":
            event = ("end", _lower(m.group("etag")))
        elif kind == "ws":
            event = ("ws",)
        elif kind in ("word", "lt"):
            event = ("text", src)
        else:
            event = (kind, src)
        out.append((event, src))
    return out


def _text_source(src: str) -> str:
    return src.replace("<", "&lt;").replace(">", "&gt;")


def _is_text(event: tuple) -> bool:
    return event[0] in ("text", "ws")


def _changed(tokens: list, wrap: str, keep_markup: bool) -> tuple:
    """Render a changed stretch: words wrapped in ``<wrap>``; returns (html, word count)."""
    parts = []
    run: list = []
    words = [0]

    def flush() -> None:
        if not run:
            return
        start, end = 0, len(run)
        while start < end and run[start][0] == ("ws",):
            start += 1
        while end > start and run[end - 1][0] == ("ws",):
            end -= 1
        if start == end:
            parts.append("".join(src for _, src in run))
        else:
            lead = "".join(src for _, src in run[:start])
            tail = "".join(src for _, src in run[end:])
            inner = "".join(_text_source(src) for _, src in run[start:end])
            words[0] += sum(1 for event, _ in run[start:end] if event[0] == "text")
            parts.append(f"{lead}<{wrap}>{inner}</{wrap}>{tail}")
        del run[:]

    for event, src in tokens:
        if _is_text(event):
            run.append((event, src))
            continue
        flush()
        if keep_markup:
            parts.append(src)
    flush()
    return "".join(parts), words[0]


def diff(old: str, new: str) -> dict:
    """Diff two HTML documents; ``{"html", "changed", "inserted", "deleted"}``.

    ``changed`` is true when anything differs, markup included;
    ``inserted`` and ``deleted`` count words. Inputs over ``MAX_INPUT``
    characters raise TooLarge; malformed HTML is diffed as well as it scans.
    """
    old = to_text(old, "params.old")
    new = to_text(new, "params.new")
    for name, doc in (("old", old), ("new", new)):
        if len(doc) > MAX_INPUT:
            raise TooLarge(f"{name} exceeds {MAX_INPUT} characters", limit=MAX_INPUT)
    a, b = tokenize(old), tokenize(new)
    matcher = difflib.SequenceMatcher(None, [e for e, _ in a], [e for e, _ in b],
                                      autojunk=False)
    parts = []
    inserted = deleted = 0
    changed = False
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            parts.append("".join(_text_source(src) if _is_text(event) else src
                                  for event, src in b[j1:j2]))
            continue
        changed = True
        if op in ("delete", "replace"):
            html, count = _changed(a[i1:i2], "del", keep_markup=False)
            parts.append(html)
            deleted += count
        if op in ("insert", "replace"):
            html, count = _changed(b[j1:j2], "ins", keep_markup=True)
            parts.append(html)
            inserted += count
    return {"html": "".join(parts), "changed": changed,
            "inserted": inserted, "deleted": deleted}


TABLE = {"diff": diff}

_FORM = """<h1>htmldiff</h1>
<form method="post">
<p><textarea name="old" rows="8" cols="60">%(old)s</textarea>
<textarea name="new" rows="8" cols="60">%(new)s</textarea></p>
<p><button type="submit">diff</button></p>
</form>
"""
_STYLE = "<style>ins{background:#dfd}del{background:#fdd}</style>"


@Request.application
def app(request: Request) -> object:
    """The ``/htmldiff`` page: two text areas, and their diff after a POST."""
    old = request.form.get("old", "<p>the old text</p>")
    new = request.form.get("new", "<p>the new text</p>")
    body = _FORM % {"old": escape(old), "new": escape(new)}
    if request.method == "POST":
        try:
            out = diff(old, new)
        except ProtocolError as exc:
            return error_response(exc)
        body += '<div class="diff">{}</div>'.format(out["html"])
    elif request.method not in ("GET", "HEAD"):
        return error_response(InvalidParams("GET or POST only"))
    return html_page("htmldiff", body, _STYLE)
