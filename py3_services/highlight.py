"""Syntax highlighting with current Pygments: the ``highlight`` service (Python 3 port).

::

    from py3_services.highlight import TABLE, render
    out = render(u"x = 1\\n", lexer=u"python")
    out[u"html"]     # u'<div class="highlight"><pre>...'
    out[u"css"]      # the style sheet for .highlight
    TABLE[u"list_lexers"]()[0][u"name"]

``app`` is the tiny page behind ``/highlight``: GET shows a form, POST
renders it. The contract is ``protocol/spec/highlight.json``.
"""

import re

from pygments import highlight as _pygmentize
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_all_lexers, get_lexer_by_name, get_lexer_for_filename
from pygments.styles import get_all_styles
from pygments.util import ClassNotFound
from werkzeug.wrappers import Request

from protocol._compat import to_text
from protocol.errors import InvalidParams, ProtocolError, TooLarge
from py3_services._web import error_response, escape, html_page

MAX_CODE = 512 * 1024
_CSSCLASS = re.compile("^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_OPTIONS = ("style", "linenos", "hl_lines", "cssclass")


def _text(value: object) -> str:
    """Pygments metadata as text."""
    return str(value)


def _invalid(message: str, field: str) -> InvalidParams:
    return InvalidParams(message, type="InvalidParams", field=field)


def _lexer(lexer: str | None, filename: str | None, code: str) -> object:
    if lexer:
        try:
            return get_lexer_by_name(lexer)
        except ClassNotFound:
            raise _invalid(f"no lexer named '{lexer}'", "params.lexer")
    if filename:
        try:
            return get_lexer_for_filename(filename, code)
        except ClassNotFound:
            raise _invalid(f"no lexer for the file name '{filename}'", "params.filename")
    return get_lexer_by_name("text")


def _formatter(options: dict) -> HtmlFormatter:
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise _invalid(f"unknown option '{unknown[0]}'", f"params.options.{unknown[0]}")
    style = options.get("style", "default")
    if style not in set(get_all_styles()):
        raise _invalid(f"no style named '{style}'", "params.options.style")
    cssclass = options.get("cssclass", "highlight")
    if not _CSSCLASS.match(cssclass):
        raise _invalid("cssclass must be a CSS identifier", "params.options.cssclass")
    hl_lines = options.get("hl_lines", [])
    return HtmlFormatter(style=style, cssclass=cssclass,
                         linenos="table" if options.get("linenos") else False,
                         hl_lines=[int(n) for n in hl_lines])


def render(code: str, lexer: str | None = None, filename: str | None = None,
           options: dict | None = None) -> dict:
    """Highlight ``code`` as HTML; the lexer comes from its name, else the file name.

    Returns ``{"html", "css", "lexer"}`` (``lexer`` is the lexer's display
    name). An unknown lexer, style or option raises InvalidParams; code over
    ``MAX_CODE`` characters raises TooLarge.
    """
    code = to_text(code, "params.code")
    if len(code) > MAX_CODE:
        raise TooLarge(f"code exceeds {MAX_CODE} characters", limit=MAX_CODE)
    found = _lexer(lexer and to_text(lexer, "params.lexer"),
                   filename and to_text(filename, "params.filename"), code)
    formatter = _formatter(dict(options or {}))
    html = _pygmentize(code, found, formatter)
    css = formatter.get_style_defs("." + formatter.cssclass)
    return {"html": _text(html), "css": _text(css), "lexer": _text(found.name)}


def list_lexers() -> list:
    """Every lexer: ``{"name", "aliases", "filenames", "mimetypes"}``, sorted by name."""
    out = []
    for name, aliases, filenames, mimetypes in get_all_lexers():
        out.append({"name": _text(name), "aliases": [_text(a) for a in aliases],
                    "filenames": [_text(f) for f in filenames],
                    "mimetypes": [_text(m) for m in mimetypes]})
    out.sort(key=lambda entry: entry["name"].lower())
    return out


TABLE = {"render": render, "list_lexers": list_lexers}

_FORM = """<h1>highlight</h1>
<form method="post">
<p><label>lexer <input name="lexer" value="%(lexer)s"></label>
<label>or file name <input name="filename" value="%(filename)s"></label>
<label><input type="checkbox" name="linenos" value="1"%(checked)s> line numbers</label></p>
<p><textarea name="code" rows="12" cols="80">%(code)s</textarea></p>
<p><button type="submit">highlight</button></p>
</form>
"""


@Request.application
def app(request: Request) -> object:
    """The ``/highlight`` page: a form, and the highlighted code after a POST."""
    form = request.form
    code = form.get("code", "print('hello')\n")
    lexer = form.get("lexer", "python" if request.method != "POST" else "")
    filename = form.get("filename", "")
    body = _FORM % {"lexer": escape(lexer), "filename": escape(filename),
                    "code": escape(code), "checked": " checked" if form.get("linenos") else ""}
    head = ""
    if request.method == "POST":
        try:
            out = render(code, lexer or None, filename or None,
                         {"linenos": bool(form.get("linenos"))})
        except ProtocolError as exc:
            return error_response(exc)
        head = "<style>{}</style>".format(out["css"])
        body += '<p class="lexer">{}</p>{}'.format(escape(out["lexer"]), out["html"])
    elif request.method not in ("GET", "HEAD"):
        return error_response(InvalidParams("GET or POST only"))
    return html_page("highlight", body, head)
