"""Hypothesis strategies for payload values, shared by the 2.7 and 3.x test runs.

``values`` draws any value the codec accepts untyped: None, booleans, big
integers, finite floats, text (including non-BMP), bytes, lists and dicts
with text keys (including ``$``-prefixed ones). ``RECORD_SCHEMA`` is a
contract-style schema and ``records`` draws values allowed by it.
"""
from __future__ import absolute_import, division, print_function

from hypothesis import strategies as st

from protocol.codec import Bytes

try:  # hypothesis >= 6.75 renamed the argument; 4.x (Python 2.7) has only the old one
    _chars = st.characters(exclude_categories=("Cs",))
except TypeError:  # pragma: no cover - py27 leg
    _chars = st.characters(blacklist_categories=("Cs",))
text = st.text(alphabet=_chars, max_size=40)
raw_bytes = st.binary(max_size=64).map(Bytes)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2 ** 200), max_value=2 ** 200)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text
    | raw_bytes
)
keys = text | text.map(lambda t: u"$" + t)

values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(keys, children, max_size=5),
    max_leaves=30,
)

RECORD_SCHEMA = {
    u"type": u"object",
    u"properties": {
        u"name": {u"type": u"string"},
        u"blob": {u"type": u"string", u"contentEncoding": u"base64"},
        u"count": {u"type": u"integer"},
        u"ratio": {u"type": u"number"},
        u"tags": {u"type": u"array", u"items": {u"type": u"string"}},
        u"parts": {u"type": u"array", u"items": {u"$ref": u"#/$defs/part"}},
    },
    u"$defs": {
        u"part": {
            u"type": u"object",
            u"properties": {u"data": {u"type": u"string", u"contentEncoding": u"base64"},
                            u"label": {u"type": u"string"}},
        },
    },
}

records = st.fixed_dictionaries({
    u"name": text,
    u"blob": st.binary(max_size=256),
    u"count": st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
    u"ratio": st.floats(allow_nan=False, allow_infinity=False),
    u"tags": st.lists(text, max_size=4),
    u"parts": st.lists(st.fixed_dictionaries({u"data": st.binary(max_size=32),
                                              u"label": text}), max_size=3),
})
