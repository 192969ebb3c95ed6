# -*- coding: utf-8 -*-
"""Contract cases: written examples, generated params, and running them against a table.

Runs on 2.7 and 3.x; tests/integration/contracttest/test_casegen_cross.py checks
that both interpreters generate the same cases.
"""
from __future__ import absolute_import, division, print_function

import io
import json
import os

import pytest

from protocol import casegen, contract, contract_run
from protocol._compat import text_type
from protocol.codec import Bytes
from protocol.errors import InvalidParams

SCHEMA = {
    u"type": u"object",
    u"properties": {
        u"name": {u"type": u"string", u"minLength": 2, u"maxLength": 5},
        u"size": {u"type": u"integer", u"minimum": 3, u"maximum": 9},
        u"ratio": {u"type": u"number", u"minimum": 0, u"maximum": 1},
        u"tags": {u"type": u"array", u"items": {u"enum": [u"a", u"b", u"c"]},
                  u"maxItems": 2, u"uniqueItems": True},
        u"blob": {u"type": u"string", u"contentEncoding": u"base64", u"maxLength": 4},
        u"mode": {u"const": u"fast"},
        u"either": {u"anyOf": [{u"type": u"null"}, {u"$ref": u"#/definitions/flag"}]},
        u"pair": {u"type": u"array", u"items": [{u"type": u"integer"}, {u"type": u"string"}]},
    },
    u"required": [u"name", u"size", u"blob"],
    u"additionalProperties": False,
}


def spec_with(params, examples=(), result=None):
    data = {u"service": u"svc", u"version": 1, u"definitions": {u"flag": {u"type": u"boolean"}},
            u"methods": {u"m": {u"params": params, u"result": result or {},
                                u"examples": list(examples)}}}
    return contract.Contract(data, source=u"<test>")


def test_generated_params_follow_the_schema_and_its_bounds():
    spec = spec_with(SCHEMA)
    found = casegen.generated(spec, u"m", seed=3, count=40)
    assert len(found) == 40
    assert len({casegen.canonical(c.params, SCHEMA) for c in found}) == 40
    for case in found:
        p = case.params
        spec.validate_params(u"m", p)
        assert 2 <= len(p[u"name"]) <= 5 and isinstance(p[u"name"], text_type)
        assert 3 <= p[u"size"] <= 9
        assert isinstance(p[u"blob"], Bytes) and len(p[u"blob"]) <= 4
        assert p.get(u"mode", u"fast") == u"fast"
        assert len(set(p.get(u"tags", []))) == len(p.get(u"tags", []))
    assert any(u"either" in c.params for c in found)
    assert any(any(ord(ch) > 127 for ch in c.params[u"name"]) for c in found)


def test_same_seed_same_cases_other_seed_other_cases():
    spec = spec_with(SCHEMA)
    one = [casegen.canonical(c.params) for c in casegen.generated(spec, u"m", seed=1, count=10)]
    again = [casegen.canonical(c.params) for c in casegen.generated(spec, u"m", seed=1, count=10)]
    other = [casegen.canonical(c.params) for c in casegen.generated(spec, u"m", seed=2, count=10)]
    assert one == again
    assert one != other


def test_unsupported_keywords_keep_the_examples_and_say_why():
    params = {u"type": u"object", u"properties": {u"id": {u"type": u"string",
                                                           u"pattern": u"^[0-9]+$"}}}
    spec = spec_with(params, [{u"name": u"one", u"params": {u"id": u"1"}, u"result": None}])
    skipped = {}
    found = casegen.cases(spec, count=5, skipped=skipped)
    assert [c.id for c in found] == [u"m/example/one"]
    assert skipped == {u"m": u"schema keyword pattern"}


def test_examples_become_cases_with_expectations():
    spec = spec_with({u"type": u"object"}, [
        {u"name": u"ok", u"params": {u"data": {u"$bytes": u"AAE="}}, u"result": 2},
        {u"params": {u"x": 1}, u"error": u"InvalidParams"}])
    first, second = casegen.examples(spec, u"m")
    assert (first.id, first.source, first.expect) == (u"m/example/ok", u"example", {u"result": 2})
    assert first.params == {u"data": b"\x00\x01"} and isinstance(first.params[u"data"], Bytes)
    assert (second.id, second.expect) == (u"m/example/1", {u"error": u"InvalidParams"})


@pytest.mark.parametrize("example,where", [
    ({u"params": {u"n": u"x"}, u"result": 1}, u"methods.m.examples[0].params"),
    ({u"params": {u"n": 1}, u"result": u"one"}, u"methods.m.examples[0].result"),
    ({u"params": {u"n": 1}, u"result": 1, u"error": u"X"}, u"contract.methods.m.examples[0]"),
    ({u"result": 1}, u"contract.methods.m.examples[0].params"),
])
def test_bad_examples_are_refused_when_the_contract_loads(example, where):
    params = {u"type": u"object", u"properties": {u"n": {u"type": u"integer"}}}
    with pytest.raises(contract.ContractError) as info:
        spec_with(params, [example], result={u"type": u"integer"})
    assert where in info.value.message


def test_duplicate_example_names_are_refused():
    with pytest.raises(contract.ContractError) as info:
        spec_with({}, [{u"name": u"a", u"params": 1}, {u"name": u"a", u"params": 2}])
    assert u"duplicate example name" in info.value.message


def table_impl(table):
    impl = contract_run.InProcess.__new__(contract_run.InProcess)
    impl.target, impl.table = u"test:TABLE", table
    return impl


def test_run_case_records_results_errors_and_problems():
    params = {u"type": u"object", u"properties": {u"n": {u"type": u"integer"}}}
    spec = spec_with(params, [{u"name": u"two", u"params": {u"n": 1}, u"result": 2},
                              {u"name": u"bad", u"params": {u"n": -1}, u"error": u"InvalidParams"}],
                     result={u"type": u"integer"})

    def good(n):
        if n < 0:
            raise InvalidParams(u"negative", type=u"InvalidParams", field=u"params.n")
        return n * 2

    ok, refused = casegen.examples(spec, u"m")
    record = contract_run.run_case(spec, table_impl({u"m": good}), ok)
    assert (record[u"outcome"], record[u"result"], record[u"problems"]) == (u"result", 2, [])
    record = contract_run.run_case(spec, table_impl({u"m": good}), refused)
    assert record[u"error"][u"code"] == u"invalid_params" and record[u"problems"] == []

    record = contract_run.run_case(spec, table_impl({u"m": lambda n: u"two"}), ok)
    assert record[u"problems"][0].startswith(u"the result breaks the contract")
    record = contract_run.run_case(spec, table_impl({u"m": lambda n: 1 // 0}),
                                   casegen.Case(u"m/gen/0", u"m", {u"n": 1}))
    assert record[u"error"][u"type"] == u"ZeroDivisionError"
    assert record[u"problems"][0].startswith(u"raised ZeroDivisionError")
    record = contract_run.run_case(spec, table_impl({}), ok)
    assert record[u"error"][u"code"] == u"unknown_method"


def test_bundled_contracts_examples_run_on_this_interpreter(workdir):
    """The htmldiff examples (the contract suite's cases) hold on whatever runs this."""
    from protocol._compat import PY2
    spec = contract.load(u"htmldiff")
    impl = contract_run.resolve(u"htmldiff=%s_services.htmldiff:TABLE" % (
        u"py2" if PY2 else u"py3"), spec)
    records = [contract_run.run_case(spec, impl, c) for c in casegen.cases(spec, count=3)]
    assert len(records) == len(spec.method(u"diff").examples) + 3
    assert [r[u"problems"] for r in records] == [[]] * len(records)
    path = os.path.join(workdir, u"out", u"r.json")
    contract_run.write_json(path, {u"records": records})
    with io.open(path, encoding=u"utf-8") as fh:
        assert json.load(fh)[u"records"][0][u"id"] == records[0][u"id"]
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o644)
