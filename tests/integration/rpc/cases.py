"""The values every {py2, py3} client x worker pair must carry identically (2.7 and 3.x)."""
# This file also runs on Python 2.7.
# ruff: noqa: UP010, UP025, UP031
from __future__ import absolute_import, division, print_function

from protocol.codec import Bytes


def _nest(depth):
    value = {u"leaf": [1, u"x"]}
    for i in range(depth):
        value = {u"d%d" % i: [value]}
    return value


def cases():
    """(name, value) pairs; built the same way on both interpreters."""
    return [
        (u"non_ascii", u"gr\u00fc\u00df \u0436\u0443\u043a \u4e2d\u6587 caf\u00e9"),
        (u"non_bmp", u"\U0001F600 \U0001D11E \U00020000"),
        (u"all_bytes", Bytes(bytearray(range(256)))),
        (u"big_ints", [2 ** 63, -(2 ** 63) - 1, 2 ** 100, 10 ** 30 + 7]),
        (u"floats", [0.1, 1e308, 5e-324, -2.5, 1.0 / 3]),
        (u"deep", _nest(60)),
        (u"mixed", {u"t": u"\u00e9", u"b": Bytes(b"\x00\xff"), u"n": None, u"ok": True}),
        (u"one_mib", Bytes(bytearray(i % 251 for i in range(1024 * 1024)))),
    ]
