"""Service contracts: load ``protocol/spec/<service>.json`` and check values against it.

A contract lists a service's RPC methods with JSON Schemas (draft 7) for their
params and result, and whether each is idempotent and safe to shadow (SPEC
section 10). The same file drives the codec's text/bytes typing::

    from protocol import contract
    echo = contract.load("echo")                 # or contract.load("/path/to/x.json")
    echo.method_names()                          # ["checksum", "echo", "upper"]
    schema = echo.schema_for("checksum")         # give this to codec.encode / codec.pack
    echo.validate_params("checksum", {u"data": Bytes(b"...")})   # InvalidParams on failure
    echo.is_idempotent("echo"), echo.is_shadow_safe("upper")     # (True, True)

Validation runs on the JSON-only view of the value (:func:`codec.to_json` with
the method's schema, which also enforces the text/bytes typing), with every
``{"$bytes": ...}`` replaced by its base64 string so that a bytes field matches
``{"type": "string", "contentEncoding": "base64"}``. A bad contract file
raises :class:`ContractError` naming the file and the key.
"""
from __future__ import absolute_import, division, print_function

import copy
import io
import json
import os

import jsonschema

from protocol import codec
from protocol._compat import integer_types, text_type
from protocol.errors import EnvelopeError, InvalidParams, ProtocolError, UnknownMethod

MYPY = False
if MYPY:  # pragma: no cover - read by the type checker only
    from typing import Any, Dict, List, Optional  # noqa: F401

SPEC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "spec")
SCHEMA_FILES = ("contract.schema.json", "envelope.schema.json", "error.schema.json")
_IDEMPOTENT_HTTP = (u"GET", u"HEAD", u"OPTIONS")


class ContractError(ProtocolError, ValueError):
    """A contract file is missing, is not JSON, or does not follow contract.schema.json."""

    code = "contract"
    status = 500


def _path(where, parts):
    # type: (str, Any) -> str
    """``where`` plus a jsonschema path, written like the codec does: ``a.b[2]``."""
    out = where
    for part in parts:
        if isinstance(part, integer_types):
            out += u"[%d]" % part
        else:
            out += u".%s" % (part,)
    return out


_PRIORITY = {u"required": 0, u"type": 1, u"additionalProperties": 3}


def _first(errors):
    # type: (Any) -> Any
    """The error to report, chosen the same way on every jsonschema version.

    The deepest path wins (it names the field); at equal depth a missing field
    beats a wrong type, which beats the rest, and an unexpected extra field comes last.
    """
    ranked = sorted(errors, key=lambda e: (
        -len(e.absolute_path), _PRIORITY.get(e.validator, 2),
        [text_type(p) for p in e.absolute_path], text_type(e.validator)))
    return ranked[0] if ranked else None


def _describe(where, error):
    # type: (str, Any) -> Any
    """(field path, message) for a jsonschema error; a missing field is named in the path."""
    path = _path(where, error.absolute_path)
    if error.validator == u"required" and isinstance(error.instance, dict):
        missing = [p for p in error.validator_value if p not in error.instance]
        if missing:
            return u"%s.%s" % (path, missing[0]), u"required but missing"
    return path, error.message


def _read_json(path):
    # type: (str) -> Any
    def pairs(items):
        # type: (List[Any]) -> Dict[str, Any]
        out = {}  # type: Dict[str, Any]
        for key, value in items:
            if key in out:
                raise ContractError(u"%s: duplicate key %r" % (path, key))
            out[key] = value
        return out
    try:
        with io.open(path, encoding="utf-8") as fh:
            return json.loads(fh.read(), object_pairs_hook=pairs)
    except (IOError, OSError) as exc:
        raise ContractError(u"%s: cannot read (%s)" % (path, exc))
    except ValueError as exc:
        if isinstance(exc, ContractError):
            raise
        raise ContractError(u"%s: not valid JSON (%s)" % (path, exc))


def load_schema(name):
    # type: (str) -> Dict[str, Any]
    """One of the bundled JSON Schemas: contract, envelope or error (``*.schema.json``)."""
    return _read_json(os.path.join(SPEC_DIR, u"%s.schema.json" % (name,)))


def schema_view(view):
    # type: (Any) -> Any
    """The JSON-only view as contract schemas see it: ``{"$bytes": s}`` -> ``s``, keys unescaped."""
    if isinstance(view, dict):
        if len(view) == 1 and u"$bytes" in view:
            return view[u"$bytes"]
        return dict((k[1:] if k.startswith(u"$") else k, schema_view(v)) for k, v in view.items())
    if isinstance(view, list):
        return [schema_view(v) for v in view]
    return view


def _refs(node, where):
    # type: (Any, str) -> List[Any]
    """Every (where, $ref) inside a schema."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == u"$ref":
                found.append((where, value))
            else:
                found.extend(_refs(value, u"%s.%s" % (where, key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(_refs(value, u"%s[%d]" % (where, i)))
    return found


class Method(object):
    """One method of a contract: schemas and flags, with definitions already attached."""

    def __init__(self, name, data, definitions):
        # type: (str, Dict[str, Any], Dict[str, Any]) -> None
        self.name = name
        self.description = data.get(u"description", u"")
        self.idempotent = bool(data.get(u"idempotent", False))
        self.shadow_safe = bool(data.get(u"shadow_safe", self.idempotent))
        self.stream = bool(data.get(u"stream", False))
        self.examples = list(data.get(u"examples", []))  # type: List[Dict[str, Any]]
        self.params = self._attach(data[u"params"], definitions)
        self.result = self._attach(data[u"result"], definitions)

    @staticmethod
    def _attach(schema, definitions):
        # type: (Any, Dict[str, Any]) -> Any
        """A self-contained schema: local ``#/definitions/..`` refs resolve inside it."""
        if not definitions or not isinstance(schema, dict) or not _refs(schema, u""):
            return schema
        out = dict(schema)
        merged = dict(definitions)
        merged.update(schema.get(u"definitions", {}))
        out[u"definitions"] = merged
        return out


class Contract(object):
    """A loaded, checked service contract (SPEC section 10)."""

    def __init__(self, data, source=u"<contract>"):
        # type: (Any, str) -> None
        self.source = source
        self._check(data)
        self.data = data
        self.service = data[u"service"]  # type: str
        self.version = data[u"version"]  # type: int
        self.description = data.get(u"description", u"")  # type: str
        self.routes = list(data.get(u"routes", []))  # type: List[Dict[str, Any]]
        definitions = data.get(u"definitions", {})
        self.methods = dict(
            (name, Method(name, spec, definitions))
            for name, spec in data[u"methods"].items())  # type: Dict[str, Method]
        self._validators = {}  # type: Dict[Any, Any]
        self._check_examples()

    def _fail(self, where, message):
        # type: (str, str) -> ContractError
        return ContractError(u"%s: %s: %s" % (self.source, where, message))

    def _check(self, data):
        # type: (Any) -> None
        meta = load_schema(u"contract")
        error = _first(jsonschema.Draft7Validator(meta).iter_errors(data))
        if error is not None:
            raise self._fail(*_describe(u"contract", error))
        definitions = data.get(u"definitions", {})
        schemas = [(u"definitions.%s" % k, v) for k, v in definitions.items()]
        for name, spec in data[u"methods"].items():
            for part in (u"params", u"result"):
                schemas.append((u"methods.%s.%s" % (name, part), spec[part]))
        for where, schema in schemas:
            try:
                jsonschema.Draft7Validator.check_schema(schema)
            except jsonschema.exceptions.SchemaError as exc:
                raise self._fail(_path(where, exc.path), exc.message)
            local = schema.get(u"definitions", {}) if isinstance(schema, dict) else {}
            for at, ref in _refs(schema, where):
                name = ref[len(u"#/definitions/"):] if isinstance(ref, text_type) else None
                if not ref.startswith(u"#/definitions/") or \
                        (name not in definitions and name not in local):
                    raise self._fail(at, u"$ref %r must name an entry of definitions" % (ref,))

    def _check_examples(self):
        # type: () -> None
        """Each example's params and result must follow the method's own schemas."""
        for name, method in sorted(self.methods.items()):
            names = set()
            for i, example in enumerate(method.examples):
                where = u"methods.%s.examples[%d]" % (name, i)
                label = example.get(u"name", u"%d" % (i,))
                if label in names:
                    raise self._fail(where + u".name", u"duplicate example name %r" % (label,))
                names.add(label)
                for part in (u"params", u"result"):
                    if part not in example:
                        continue
                    try:
                        value = codec.from_json(example[part])
                        self._validate(name, part, value)
                    except (InvalidParams, EnvelopeError) as exc:
                        raise self._fail(u"%s.%s" % (where, part), exc.message)

    # ---------------------------------------------------------------- query --

    def method_names(self):
        # type: () -> List[str]
        """The method names, sorted."""
        return sorted(self.methods)

    def method(self, name):
        # type: (str) -> Method
        """The :class:`Method` called ``name``; :class:`UnknownMethod` when there is none."""
        try:
            return self.methods[name]
        except KeyError:
            raise UnknownMethod(u"%s has no method %r" % (self.service, name),
                                type=u"UnknownMethod")

    def schema_for(self, method):
        # type: (str) -> Any
        """The params schema of ``method``, for codec.encode/pack's text/bytes typing."""
        return self.method(method).params

    def result_schema_for(self, method):
        # type: (str) -> Any
        """The result schema of ``method``, for encoding its replies."""
        return self.method(method).result

    def is_idempotent(self, method):
        # type: (str) -> bool
        """True when calling ``method`` twice has the effect of calling it once."""
        return self.method(method).idempotent

    def is_shadow_safe(self, method):
        # type: (str) -> bool
        """True when a shadow copy may be sent (``shadow_safe``, defaulting to ``idempotent``)."""
        return self.method(method).shadow_safe

    # ----------------------------------------------------------- validation --

    def validate_params(self, method, value):
        # type: (str, Any) -> Any
        """Check call params; return their JSON-only view or raise :class:`InvalidParams`."""
        return self._validate(method, u"params", value)

    def validate_result(self, method, value):
        # type: (str, Any) -> Any
        """Check a result; return its JSON-only view or raise :class:`InvalidParams`."""
        return self._validate(method, u"result", value)

    def _validate(self, method, part, value):
        # type: (str, str, Any) -> Any
        spec = self.method(method)
        schema = spec.params if part == u"params" else spec.result
        try:
            view = codec.to_json(value, schema if isinstance(schema, dict) else {})
        except EnvelopeError as exc:
            # The codec names the field first ("value.a[2]: declared text, ..."); the
            # error's field is that path, rooted at params or result (SPEC 5.2).
            message = exc.message
            if message.startswith(u"value"):
                message = part + message[len(u"value"):]
            where = message.split(u": ", 1)[0] if message.startswith(part) else part
            raise InvalidParams(u"%s.%s %s" % (self.service, method, message),
                                type=u"InvalidParams", field=where)
        key = (method, part)
        if key not in self._validators:
            self._validators[key] = jsonschema.Draft7Validator(copy.deepcopy(schema))
        error = _first(self._validators[key].iter_errors(schema_view(view)))
        if error is not None:
            where, message = _describe(part, error)
            raise InvalidParams(u"%s.%s %s: %s" % (self.service, method, where, message),
                                type=u"InvalidParams", field=where)
        return view


def available(directory=SPEC_DIR):
    # type: (str) -> List[str]
    """The service names that have a contract file in ``directory``."""
    return sorted(name[:-len(".json")] for name in os.listdir(directory)
                  if name.endswith(".json") and not name.endswith(".schema.json"))


def load(name_or_path, directory=SPEC_DIR):
    # type: (str, str) -> Contract
    """Load a contract by service name (from ``directory``) or from a ``.json`` path."""
    if name_or_path.endswith(".json") or os.sep in name_or_path:
        path = name_or_path
    else:
        path = os.path.join(directory, name_or_path + ".json")
        if not os.path.exists(path):
            raise ContractError(u"%s: no contract for service %r" % (path, name_or_path))
    found = Contract(_read_json(path), source=path)
    stem = os.path.basename(path)[:-len(".json")]
    if os.path.dirname(os.path.abspath(path)) == os.path.abspath(directory) \
            and found.service != stem:
        raise ContractError(u"%s: service: %r must match the file name %r"
                            % (path, found.service, stem))
    return found
