"""Contract cases: a contract's written examples plus values generated from its schemas.

The same seed gives the same cases on Python 2.7 and 3.x, value for value: the
generator draws from its own integer PRNG (splitmix64), not from ``random``,
whose ``randint``/``choice`` differ between the two. That is what lets a py2
run and a py3 run of one contract be compared case by case (SPEC 10.6)::

    from protocol import casegen, contract
    spec = contract.load("/path/to/textsvc.json")
    for case in casegen.cases(spec, seed=0, count=20):
        case.id, case.method, case.params     # "upper/example/ascii", "upper", {...}
        case.expect                           # {"result": ...}, {"error": "TypeName"} or None

The generator understands the part of JSON Schema that contracts use: ``type``
(one or a list), ``enum``, ``const``, ``properties``/``required``,
``items`` (one schema or a tuple), ``minItems``/``maxItems``, ``minLength``/
``maxLength``, ``minimum``/``maximum`` (and the exclusive forms), ``anyOf``/
``oneOf``, local ``$ref`` and bytes (``contentEncoding: base64``). A method whose
params use anything else (``pattern``, ``format``, ``not``...) is run with its
examples only; :func:`cases` names it in ``skipped``. Every generated value is
checked against the params schema before it becomes a case.
"""
from __future__ import absolute_import, division, print_function

import json

from protocol import codec
from protocol.codec import Bytes
from protocol.errors import InvalidParams

MYPY = False
if MYPY:  # pragma: no cover - read by the type checker only
    from typing import Any, Dict, List, Optional  # noqa: F401

# Text worth testing across interpreters: case mapping (German sharp s, dotted I,
# the "fi" ligature, title-case digraph), accents, markup characters and a snowman.
# Only the Basic Multilingual Plane: a narrow 2.7 build splits astral characters.
ALPHABET = (u"abcxyzABCXYZ0129 _-.,;:!?<>&\"'/\\\t\n"
            u"\u00df\u00e9\u00e4\u00f1\u00c5\u0130\u0131\ufb01\u01c5\u03a3\u2603\u20ac\u00a0")
MAX_TEXT = 12
MAX_ITEMS = 4
MAX_DEPTH = 4
_MASK = (1 << 64) - 1
_SUPPORTED = frozenset([
    u"type", u"enum", u"const", u"properties", u"required", u"additionalProperties",
    u"items", u"minItems", u"maxItems", u"minLength", u"maxLength", u"minimum", u"maximum",
    u"exclusiveMinimum", u"exclusiveMaximum", u"anyOf", u"oneOf", u"$ref", u"definitions",
    u"contentEncoding", u"description", u"title", u"default", u"examples", u"uniqueItems",
    u"$schema", u"$comment"])


class Unsupported(ValueError):
    """A schema uses a keyword the generator cannot honour; the method keeps its examples."""


class Rng(object):
    """splitmix64: a small PRNG that gives the same numbers on 2.7 and 3.x."""

    def __init__(self, seed):
        # type: (int) -> None
        self.state = seed & _MASK

    def next(self):
        # type: () -> int
        self.state = (self.state + 0x9E3779B97F4A7C15) & _MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return z ^ (z >> 31)

    def below(self, n):
        # type: (int) -> int
        """An integer in [0, n); modulo bias is irrelevant for test data."""
        return self.next() % n if n > 0 else 0

    def between(self, low, high):
        # type: (int, int) -> int
        return low + self.below(high - low + 1)

    def pick(self, items):
        # type: (Any) -> Any
        return items[self.below(len(items))]


class Case(object):
    """One call to make: an id stable across interpreters, the params, what to expect."""

    def __init__(self, id, method, params, expect=None, source=u"generated"):  # noqa: A002
        # type: (str, str, Any, Optional[Dict[str, Any]], str) -> None
        self.id = id
        self.method = method
        self.params = params
        self.expect = expect
        self.source = source

    def __repr__(self):
        # type: () -> str
        return "Case(%r)" % (self.id,)


def _check_keywords(schema):
    # type: (Any) -> None
    if isinstance(schema, dict):
        unknown = sorted(k for k in schema if k not in _SUPPORTED and not k.startswith(u"x-"))
        if unknown:
            raise Unsupported(u"schema keyword %s" % (unknown[0],))


class Generator(object):
    """Values for one schema (with its ``definitions``), drawn from one :class:`Rng`."""

    def __init__(self, root, rng):
        # type: (Any, Rng) -> None
        self.root = root
        self.rng = rng

    def value(self, schema=None, depth=0):
        # type: (Any, int) -> Any
        schema = self.root if schema is None else schema
        if schema is True or schema == {}:
            return self._any(depth)
        if schema is False:
            raise Unsupported(u"schema false accepts nothing")
        _check_keywords(schema)
        if u"$ref" in schema:
            name = schema[u"$ref"][len(u"#/definitions/"):]
            return self.value(self.root.get(u"definitions", {})[name], depth)
        if u"const" in schema:
            return schema[u"const"]
        if u"enum" in schema:
            return self.rng.pick(list(schema[u"enum"]))
        for key in (u"anyOf", u"oneOf"):
            if key in schema:
                return self.value(self.rng.pick(schema[key]), depth)
        kind = schema.get(u"type")
        if isinstance(kind, list):
            kind = self.rng.pick(kind)
        if kind is None:
            kind = self._infer(schema)
        return getattr(self, u"_" + kind)(schema, depth)

    @staticmethod
    def _infer(schema):
        # type: (Dict[str, Any]) -> str
        if u"properties" in schema or u"required" in schema:
            return u"object"
        if u"items" in schema:
            return u"array"
        raise Unsupported(u"a schema without a type")

    def _any(self, depth):
        # type: (int) -> Any
        kinds = [u"null", u"boolean", u"integer", u"string"]
        if depth < MAX_DEPTH:
            kinds += [u"array", u"object"]
        return self.value({u"type": self.rng.pick(kinds)}, depth)

    def _null(self, schema, depth):
        # type: (Dict[str, Any], int) -> Any
        return None

    def _boolean(self, schema, depth):
        # type: (Dict[str, Any], int) -> Any
        return self.rng.below(2) == 1

    def _bounds(self, schema, default_low, default_high):
        # type: (Dict[str, Any], int, int) -> Any
        low = schema.get(u"minimum", default_low)
        high = schema.get(u"maximum", default_high if u"minimum" not in schema
                          else max(low, 0) + (default_high - default_low))
        if u"exclusiveMinimum" in schema:
            low = max(low, schema[u"exclusiveMinimum"] + 1)
        if u"exclusiveMaximum" in schema:
            high = min(high, schema[u"exclusiveMaximum"] - 1)
        if u"maximum" in schema and u"minimum" not in schema:
            low = min(low, high)
        if high < low:
            raise Unsupported(u"an empty numeric range")
        return int(low), int(high)

    def _integer(self, schema, depth):
        # type: (Dict[str, Any], int) -> Any
        low, high = self._bounds(schema, -1000, 1000)
        edges = [v for v in (0, 1, -1, 7, -7, low, high) if low <= v <= high]
        if edges and self.rng.below(3) == 0:
            return self.rng.pick(edges)
        return self.rng.between(low, high)

    def _number(self, schema, depth):
        # type: (Dict[str, Any], int) -> Any
        # Quarters: exact in binary, so neither interpreter's float repr can differ.
        low, high = self._bounds(schema, -1000, 1000)
        value = self.rng.between(low * 4, high * 4) / 4.0
        return value

    def _string(self, schema, depth):
        # type: (Dict[str, Any], int) -> Any
        low = schema.get(u"minLength", 0)
        high = schema.get(u"maxLength", max(low, MAX_TEXT))
        size = self.rng.between(low, max(low, min(high, low + MAX_TEXT)))
        if schema.get(u"contentEncoding") == u"base64":
            return Bytes(bytes(bytearray(self.rng.below(256) for _ in range(size))))
        return u"".join(self.rng.pick(ALPHABET) for _ in range(size))

    def _array(self, schema, depth):
        # type: (Dict[str, Any], int) -> Any
        items = schema.get(u"items", {})
        if isinstance(items, list):
            return [self.value(s, depth + 1) for s in items]
        low = schema.get(u"minItems", 0)
        high = schema.get(u"maxItems", max(low, MAX_ITEMS))
        size = self.rng.between(low, min(high, low + MAX_ITEMS)) if depth < MAX_DEPTH else low
        out = []  # type: List[Any]
        for _ in range(size * 3):
            if len(out) == size:
                break
            item = self.value(items, depth + 1)
            if not schema.get(u"uniqueItems") or item not in out:
                out.append(item)
        return out

    def _object(self, schema, depth):
        # type: (Dict[str, Any], int) -> Any
        props = schema.get(u"properties", {})
        required = set(schema.get(u"required", []))
        out = {}  # type: Dict[str, Any]
        for name in sorted(props):
            if name in required or (depth < MAX_DEPTH and self.rng.below(2) == 0):
                out[name] = self.value(props[name], depth + 1)
        for name in sorted(required - set(props)):
            out[name] = self._any(depth + 1)
        return out


def check(schema, root=None):
    # type: (Any, Any) -> None
    """Raise :class:`Unsupported` when any part of ``schema`` uses a keyword outside the subset."""
    root = schema if root is None else root
    if not isinstance(schema, dict):
        return
    _check_keywords(schema)
    for key in (u"properties", u"definitions"):
        for sub in schema.get(key, {}).values():
            check(sub, root)
    for key in (u"anyOf", u"oneOf"):
        for sub in schema.get(key, []):
            check(sub, root)
    items = schema.get(u"items")
    for sub in (items if isinstance(items, list) else [items]):
        check(sub, root)
    if isinstance(schema.get(u"additionalProperties"), dict):
        check(schema[u"additionalProperties"], root)


def canonical(value, schema=None):
    # type: (Any, Any) -> str
    """One JSON text per value (sorted keys, bytes as base64): equal params, equal text."""
    return json.dumps(codec.to_json(value, schema if isinstance(schema, dict) else None),
                      sort_keys=True, ensure_ascii=True)


def examples(spec, method):
    # type: (Any, str) -> List[Case]
    """The method's written examples (SPEC 10.6) as cases, in file order."""
    out = []
    for i, ex in enumerate(spec.method(method).examples):
        name = ex.get(u"name") or u"%d" % (i,)
        expect = None  # type: Optional[Dict[str, Any]]
        if u"result" in ex:
            expect = {u"result": ex[u"result"]}
        elif u"error" in ex:
            expect = {u"error": ex[u"error"]}
        out.append(Case(u"%s/example/%s" % (method, name), method,
                        codec.from_json(ex[u"params"]), expect, source=u"example"))
    return out


def generated(spec, method, seed=0, count=20, attempts=5):
    # type: (Any, str, int, int, int) -> List[Case]
    """Up to ``count`` distinct generated cases; raises :class:`Unsupported` when it cannot."""
    schema = spec.schema_for(method)
    check(schema)
    rng = Rng(seed * 1000003 + sum(ord(c) for c in method) * 7919 + len(method))
    gen = Generator(schema, rng)
    seen = set()
    out = []  # type: List[Case]
    for _ in range(count * attempts):
        if len(out) == count:
            break
        params = gen.value()
        try:
            spec.validate_params(method, params)
        except InvalidParams:
            continue
        key = canonical(params, schema)
        if key in seen:
            continue
        seen.add(key)
        out.append(Case(u"%s/gen/%d" % (method, len(out)), method, params))
    return out


def cases(spec, seed=0, count=20, skipped=None):
    # type: (Any, int, int, Optional[Dict[str, str]]) -> List[Case]
    """Every method's examples, then ``count`` generated cases per method, sorted by method.

    A method the generator cannot serve keeps its examples; the reason goes into
    ``skipped`` (method -> reason) when a dict is given.
    """
    out = []  # type: List[Case]
    for method in spec.method_names():
        out.extend(examples(spec, method))
        if count <= 0 or spec.method(method).stream:
            continue
        try:
            out.extend(generated(spec, method, seed, count))
        except Unsupported as exc:
            if skipped is not None:
                skipped[method] = u"%s" % (exc,)
    return out
