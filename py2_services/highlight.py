"""Syntax highlighting with Pygments 2.5: the ``highlight`` service (Python 2.7 original).

::

    from py2_services.highlight import TABLE, render
    out = render(u"x = 1\\n", lexer=u"python")
    out[u"html"]     # u'<div class="highlight"><pre>...'
    out[u"css"]      # the style sheet for .highlight
    TABLE[u"list_lexers"]()[0][u"name"]

``app`` is the tiny page behind ``/highlight``: GET shows a form, POST
renders it. The contract is ``protocol/spec/highlight.json``.
"""
from __future__ import absolute_import, division, print_function

import re

from pygments import highlight as _pygmentize
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_all_lexers, get_lexer_by_name, get_lexer_for_filename
from pygments.styles import get_all_styles
from pygments.util import ClassNotFound
from werkzeug.wrappers import Request

from protocol._compat import binary_type, text_type, to_text
from protocol.errors import InvalidParams, ProtocolError, TooLarge
from py2_services._web import error_response, escape, html_page

MAX_CODE = 512 * 1024
_CSSCLASS = re.compile(u"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_OPTIONS = (u"style", u"linenos", u"hl_lines", u"cssclass")


def _text(value):
    # type: (object) -> str
    """Pygments metadata as text (its tables are native str on 2.7)."""
    if isinstance(value, binary_type):
        return value.decode("utf-8", "replace")
    return text_type(value)


def _invalid(message, field):
    # type: (str, str) -> InvalidParams
    return InvalidParams(message, type=u"InvalidParams", field=field)


def _lexer(lexer, filename, code):
    # type: (str, str, str) -> object
    if lexer:
        try:
            return get_lexer_by_name(lexer)
        except ClassNotFound:
            raise _invalid(u"no lexer named '%s'" % (lexer,), u"params.lexer")
    if filename:
        try:
            return get_lexer_for_filename(filename, code)
        except ClassNotFound:
            raise _invalid(u"no lexer for the file name '%s'" % (filename,), u"params.filename")
    return get_lexer_by_name(u"text")


def _formatter(options):
    # type: (dict) -> HtmlFormatter
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise _invalid(u"unknown option '%s'" % (unknown[0],), u"params.options.%s" % unknown[0])
    style = options.get(u"style", u"default")
    if style not in set(get_all_styles()):
        raise _invalid(u"no style named '%s'" % (style,), u"params.options.style")
    cssclass = options.get(u"cssclass", u"highlight")
    if not _CSSCLASS.match(cssclass):
        raise _invalid(u"cssclass must be a CSS identifier", u"params.options.cssclass")
    hl_lines = options.get(u"hl_lines", [])
    return HtmlFormatter(style=str(style), cssclass=str(cssclass),
                         linenos=u"table" if options.get(u"linenos") else False,
                         hl_lines=[int(n) for n in hl_lines])


def render(code, lexer=None, filename=None, options=None):
    # type: (str, str, str, dict) -> dict
    """Highlight ``code`` as HTML; the lexer comes from its name, else the file name.

    Returns ``{"html", "css", "lexer"}`` (``lexer`` is the lexer's display
    name). An unknown lexer, style or option raises InvalidParams; code over
    ``MAX_CODE`` characters raises TooLarge.
    """
    code = to_text(code, u"params.code")
    if len(code) > MAX_CODE:
        raise TooLarge(u"code exceeds %d characters" % MAX_CODE, limit=MAX_CODE)
    found = _lexer(lexer and to_text(lexer, u"params.lexer"),
                   filename and to_text(filename, u"params.filename"), code)
    formatter = _formatter(dict(options or {}))
    html = _pygmentize(code, found, formatter)
    css = formatter.get_style_defs(u"." + formatter.cssclass)
    return {u"html": _text(html), u"css": _text(css), u"lexer": _text(found.name)}


def list_lexers():
    # type: () -> list
    """Every lexer: ``{"name", "aliases", "filenames", "mimetypes"}``, sorted by name."""
    out = []
    for name, aliases, filenames, mimetypes in get_all_lexers():
        out.append({u"name": _text(name), u"aliases": [_text(a) for a in aliases],
                    u"filenames": [_text(f) for f in filenames],
                    u"mimetypes": [_text(m) for m in mimetypes]})
    out.sort(key=lambda entry: entry[u"name"].lower())
    return out


TABLE = {u"render": render, u"list_lexers": list_lexers}

_FORM = u"""<h1>highlight</h1>
<form method="post">
<p><label>lexer <input name="lexer" value="%(lexer)s"></label>
<label>or file name <input name="filename" value="%(filename)s"></label>
<label><input type="checkbox" name="linenos" value="1"%(checked)s> line numbers</label></p>
<p><textarea name="code" rows="12" cols="80">%(code)s</textarea></p>
<p><button type="submit">highlight</button></p>
</form>
"""


@Request.application
def app(request):
    # type: (Request) -> object
    """The ``/highlight`` page: a form, and the highlighted code after a POST."""
    form = request.form
    code = form.get(u"code", u"print('hello')\n")
    lexer = form.get(u"lexer", u"python" if request.method != u"POST" else u"")
    filename = form.get(u"filename", u"")
    body = _FORM % {u"lexer": escape(lexer), u"filename": escape(filename),
                    u"code": escape(code), u"checked": u" checked" if form.get(u"linenos") else u""}
    head = u""
    if request.method == u"POST":
        try:
            out = render(code, lexer or None, filename or None,
                         {u"linenos": bool(form.get(u"linenos"))})
        except ProtocolError as exc:
            return error_response(exc)
        head = u"<style>%s</style>" % out[u"css"]
        body += u'<p class="lexer">%s</p>%s' % (escape(out[u"lexer"]), out[u"html"])
    elif request.method not in (u"GET", u"HEAD"):
        return error_response(InvalidParams(u"GET or POST only"))
    return html_page(u"highlight", body, head)
