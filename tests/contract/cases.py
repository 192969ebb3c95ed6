"""The contract cases: data shared by the in-process suite and the broker end-to-end test.

Runs on 2.7 and 3.x. Each case is ``(name, params)``; :func:`observe` turns
a result into what must be equal across implementations (the parts that do
not depend on Pygments or Pillow versions)::

    from tests.contract.cases import HIGHLIGHT, observe
    for name, params in HIGHLIGHT:
        observe(u"highlight", u"render", table[u"render"](**params))
"""
from __future__ import absolute_import, division, print_function

import io
import re
import struct
import zlib

from protocol import contract
from protocol.codec import Bytes

HIGHLIGHT = [
    (u"python-by-name", {u"code": u"def f(x):\n    return x + 1\n", u"lexer": u"python"}),
    (u"ruby-by-filename", {u"code": u"puts 'h\u00e9llo'\n", u"filename": u"app.rb"}),
    (u"text-non-ascii", {u"code": u"caf\u00e9 \u2603 <b>&amp;</b>\n"}),
    (u"options", {u"code": u"a = 1\nb = 2\n", u"lexer": u"py",
                  u"options": {u"style": u"friendly", u"cssclass": u"code", u"hl_lines": [2]}}),
    (u"linenos", {u"code": u"x\n", u"lexer": u"text", u"options": {u"linenos": True}}),
]
HIGHLIGHT_LEXERS = {u"python-by-name": u"Python", u"ruby-by-filename": u"Ruby",
                    u"text-non-ascii": u"Text only", u"options": u"Python",
                    u"linenos": u"Text only"}

# (name, old, new, expected html): identical on every implementation. They are the
# examples written in the htmldiff contract, so the contract file is the one source.
HTMLDIFF = [(ex[u"name"], ex[u"params"][u"old"], ex[u"params"][u"new"], ex[u"result"][u"html"])
            for ex in contract.load("htmldiff").method(u"diff").examples]

WHOAMI_NAMES = [u"ada", u"\u00e4da \u2603"]


def image_bytes(fmt, size=(300, 200), mode="RGB"):
    # type: (str, tuple, str) -> bytes
    """A small generated image in ``fmt`` (PNG, JPEG, GIF, BMP)."""
    from PIL import Image
    img = Image.new(mode, size, (200, 30, 30) if mode == "RGB" else 1)
    out = io.BytesIO()
    img.save(out, format=fmt)
    return Bytes(out.getvalue())


def truncated_png():
    # type: () -> bytes
    """A PNG whose header reads but whose data stops halfway: decodes with an error."""
    data = image_bytes("PNG", (400, 300))
    return Bytes(data[:len(data) // 2])


def huge_png(width=6000, height=6000):
    # type: (int, int) -> bytes
    """A tiny file declaring a ``width`` x ``height`` image (a decompression bomb's header)."""
    def chunk(kind, body):
        # type: (bytes, bytes) -> bytes
        crc = zlib.crc32(kind + body) & 0xffffffff
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return Bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)
                 + chunk(b"IEND", b""))


_TAG = re.compile(u"<[^>]*>")
_ENTITIES = ((u"&lt;", u"<"), (u"&gt;", u">"), (u"&quot;", u'"'), (u"&#39;", u"'"),
             (u"&#x27;", u"'"), (u"&amp;", u"&"))


def html_text(html):
    # type: (str) -> str
    """The text content of Pygments' HTML (markup and entity spelling vary by version)."""
    text = _TAG.sub(u"", html)
    for entity, char in _ENTITIES:
        text = text.replace(entity, char)
    return text


def decoded_size(data):
    # type: (bytes) -> tuple
    """(format, width, height) of an encoded image, decoding it fully."""
    from PIL import Image
    img = Image.open(io.BytesIO(bytes(data)))
    img.load()
    return (img.format, img.size[0], img.size[1])


def observe(service, method, result):
    # type: (str, str, object) -> object
    """The version-independent part of a result, compared across implementations."""
    if service == u"highlight" and method == u"render":
        return {u"lexer": result[u"lexer"], u"text": html_text(result[u"html"]),
                u"has_css": bool(result[u"css"])}
    if service == u"highlight" and method == u"list_lexers":
        return sorted({u"python", u"ruby", u"text", u"html"}
                      & {a for lex in result for a in lex[u"aliases"]})
    if service == u"thumbnails" and method == u"status":
        out = {k: v for k, v in result.items() if k not in (u"job", u"thumbnail")}
        if u"error" in out:
            out[u"error"] = out[u"error"][u"code"]
        if u"thumbnail" in result:
            out[u"decoded"] = list(decoded_size(result[u"thumbnail"]))
        return out
    if service == u"thumbnails" and method == u"submit":
        return result[u"state"]
    return result
