"""The one contract suite: every service's contract, run in-process against the
implementation of the running interpreter (py2_services on 2.7, py3_services on 3.x).

Each test is named ``test_<service>_...`` so the parity report can file it.
The broker end-to-end twin is tests/integration/estate.
"""
from __future__ import absolute_import, division, print_function

import pytest

from protocol import contract
from protocol.codec import Bytes
from protocol.errors import InvalidParams, TooLarge
from tests.contract import cases
from tests.contract.conftest import SERVICES, call, merge_parity, service_module
from tests.support.procs import wait_until

# ------------------------------------------------------------------ shape --


@pytest.mark.parametrize("service", SERVICES)
def test_contract_tables_match(impl, service):
    """Each service's table offers exactly its contract's methods."""
    spec = contract.load(service)
    table = service_module(service, impl).TABLE
    assert sorted(table) == spec.method_names()


# -------------------------------------------------------------- highlight --


@pytest.mark.parametrize("name,params", cases.HIGHLIGHT, ids=[c[0] for c in cases.HIGHLIGHT])
def test_highlight_render(impl, name, params):
    """The HTML's text is the code; the lexer is found by name or file name; CSS comes too."""
    table = service_module("highlight", impl).TABLE
    out = call("highlight", table, u"render", params)
    assert out[u"lexer"] == cases.HIGHLIGHT_LEXERS[name]
    assert params[u"code"] in cases.html_text(out[u"html"])
    cssclass = (params.get(u"options") or {}).get(u"cssclass", u"highlight")
    assert u"." + cssclass in out[u"css"]
    assert u'class="%s"' % cssclass in out[u"html"]


def test_highlight_tokens_are_marked_up(impl):
    """Python keywords get Pygments' keyword class."""
    table = service_module("highlight", impl).TABLE
    out = call("highlight", table, u"render", {u"code": u"def f(): pass\n", u"lexer": u"python"})
    assert u'<span class="k">def</span>' in out[u"html"]


@pytest.mark.parametrize("params,field", [
    ({u"code": u"x", u"lexer": u"no-such-lexer"}, u"params.lexer"),
    ({u"code": u"x", u"filename": u"x.no-such-extension"}, u"params.filename"),
    ({u"code": u"x", u"options": {u"style": u"no-such-style"}}, u"params.options.style"),
])
def test_highlight_bad_params_are_typed(impl, params, field):
    """Unknown lexers and styles are invalid_params naming the field."""
    table = service_module("highlight", impl).TABLE
    with pytest.raises(InvalidParams) as info:
        call("highlight", table, u"render", params)
    assert info.value.details["field"] == field


def test_highlight_contract_rejects_wrong_types(impl):
    """The contract refuses params of the wrong type before the service sees them."""
    table = service_module("highlight", impl).TABLE
    with pytest.raises(InvalidParams):
        call("highlight", table, u"render", {u"code": 42})
    with pytest.raises(InvalidParams):
        call("highlight", table, u"render", {u"code": u"x", u"options": {u"colour": u"red"}})


def test_highlight_too_large(impl):
    """Code beyond the limit is too_large."""
    module = service_module("highlight", impl)
    with pytest.raises(TooLarge):
        call("highlight", module.TABLE, u"render", {u"code": u"x" * (module.MAX_CODE + 1)})


def test_highlight_list_lexers(impl):
    """The lexer list is sorted and includes the everyday languages."""
    out = call("highlight", service_module("highlight", impl).TABLE, u"list_lexers", None)
    names = [lex[u"name"].lower() for lex in out]
    assert names == sorted(names)
    assert cases.observe(u"highlight", u"list_lexers", out) == [u"html", u"python", u"ruby",
                                                               u"text"]


# --------------------------------------------------------------- htmldiff --


@pytest.mark.parametrize("name,old,new,expected", cases.HTMLDIFF,
                         ids=[c[0] for c in cases.HTMLDIFF])
def test_htmldiff_cases(impl, name, old, new, expected):
    """Byte-identical output on every implementation, with consistent counts."""
    out = call("htmldiff", service_module("htmldiff", impl).TABLE, u"diff",
               {u"old": old, u"new": new})
    assert out[u"html"] == expected
    assert out[u"changed"] == (old != new)
    assert (out[u"inserted"] > 0) == (u"<ins>" in out[u"html"])
    assert (out[u"deleted"] > 0) == (u"<del>" in out[u"html"])


def test_htmldiff_identity_and_events_are_hashable(impl):
    """A document diffed against itself is unchanged; its events are hashable tuples."""
    module = service_module("htmldiff", impl)
    doc = u"<p class='x'>\u00e9t\u00e9 <b>x</b></p><br/><!-- note -->"
    events = module.tokenize(doc)
    assert len({e for e, _ in events}) > 3
    assert u"".join(src for _, src in events) == doc
    out = call("htmldiff", module.TABLE, u"diff", {u"old": doc, u"new": doc})
    assert out == {u"html": doc, u"changed": False, u"inserted": 0, u"deleted": 0}


def test_htmldiff_too_large(impl):
    """Inputs beyond the limit are too_large."""
    module = service_module("htmldiff", impl)
    with pytest.raises(TooLarge):
        call("htmldiff", module.TABLE, u"diff", {u"old": u"a" * (module.MAX_INPUT + 1),
                                                 u"new": u""})


# ------------------------------------------------------------- thumbnails --


@pytest.fixture
def thumbnailer(impl, redis_server):
    """(module, Thumbnailer, Consumer) on a private Redis; the consumer is closed after."""
    from protocol.queue import Consumer, Queue, connect
    module = service_module("thumbnails", impl)
    redis = connect(redis_server.url)
    queue = Queue(redis, u"thumbs-test", max_attempts=2, backoff=lambda attempt: 0.0)
    thumbs = module.Thumbnailer(queue)
    consumer = Consumer(queue, thumbs.handle, block=0.2)
    try:
        yield module, thumbs, consumer
    finally:
        consumer.close()
        redis.connection_pool.disconnect()


def _settle(thumbs, consumer, job):
    # type: (object, object, str) -> dict
    """Run the consumer until the job is done or dead; return its status via the contract."""
    table = {u"status": thumbs.status}

    def finished():
        # type: () -> object
        consumer.process_one(0.2)
        out = call("thumbnails", table, u"status", {u"job": job})
        return out if out[u"state"] in (u"done", u"dead") else None
    return wait_until(finished, timeout=10, what="thumbnail job")  # type: ignore[return-value]


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP"])
def test_thumbnails_formats(thumbnailer, fmt):
    """Every input format becomes a thumbnail that decodes, at the contract's size."""
    module, thumbs, consumer = thumbnailer
    table = {u"submit": thumbs.submit}
    sub = call("thumbnails", table, u"submit", {u"image": cases.image_bytes(fmt), u"size": 64})
    assert sub[u"state"] == u"queued"
    out = _settle(thumbs, consumer, sub[u"job"])
    assert out[u"state"] == u"done"
    assert out[u"source"] == {u"format": fmt, u"width": 300, u"height": 200}
    assert (out[u"width"], out[u"height"]) == module.fit(300, 200, 64) == (64, 43)
    assert cases.decoded_size(out[u"thumbnail"]) == ("PNG", 64, 43)


def test_thumbnails_jpeg_output_and_no_upscale(thumbnailer):
    """JPEG output on request; images smaller than the size keep theirs."""
    _module, thumbs, consumer = thumbnailer
    sub = call("thumbnails", {u"submit": thumbs.submit}, u"submit",
               {u"image": cases.image_bytes("GIF", (20, 30)), u"size": 64, u"format": u"JPEG"})
    out = _settle(thumbs, consumer, sub[u"job"])
    assert cases.decoded_size(out[u"thumbnail"]) == ("JPEG", 20, 30)


def test_thumbnails_corrupt_image_is_dead_lettered(thumbnailer):
    """A truncated image reads its header, fails to decode and goes to the dead letters."""
    _module, thumbs, consumer = thumbnailer
    sub = call("thumbnails", {u"submit": thumbs.submit}, u"submit",
               {u"image": cases.truncated_png()})
    out = _settle(thumbs, consumer, sub[u"job"])
    assert out[u"state"] == u"dead"
    assert out[u"error"][u"code"] == u"bad_image"
    assert u"decode" in out[u"error"][u"message"]
    assert [st.id for st in thumbs.queue.dead_letters()] == [sub[u"job"]]


def test_thumbnails_not_an_image(thumbnailer):
    """Bytes that are no image are refused at submit with a typed error."""
    _module, thumbs, _consumer = thumbnailer
    with pytest.raises(InvalidParams) as info:
        call("thumbnails", {u"submit": thumbs.submit}, u"submit",
             {u"image": Bytes(b"GIF89a-not-really\xff\x00")})
    assert info.value.type == u"BadImage"


def test_thumbnails_oversized(thumbnailer):
    """Too many bytes or too many pixels is too_large, before anything is queued."""
    module, thumbs, _consumer = thumbnailer
    table = {u"submit": thumbs.submit}
    with pytest.raises(TooLarge):
        call("thumbnails", table, u"submit", {u"image": cases.huge_png()})
    with pytest.raises(TooLarge):
        call("thumbnails", table, u"submit",
             {u"image": Bytes(b"\x89PNG" + b"\x00" * module.MAX_BYTES)})
    assert thumbs.queue.counts()[u"ready"] == 0


def test_thumbnails_unknown_job(thumbnailer):
    """An unknown job id is a typed JobNotFound."""
    _module, thumbs, _consumer = thumbnailer
    with pytest.raises(InvalidParams) as info:
        call("thumbnails", {u"status": thumbs.status}, u"status", {u"job": u"0" * 32})
    assert info.value.type == u"JobNotFound"


# ----------------------------------------------------------------- whoami --


@pytest.mark.parametrize("name", cases.WHOAMI_NAMES)
def test_whoami_signed_in(impl, legacy_db, name):
    """The legacy session named in the cookie gives its user."""
    store = service_module("store", impl)
    conn = store.connect(legacy_db)
    uid = store.create_user(conn, name, u"pw")
    store.save_session(conn, u"s1", {u"user_id": uid, u"csrf": u"t"})
    conn.close()
    table = service_module("whoami", impl).TABLE
    out = call("whoami", table, u"whoami", {u"cookie": u"a=b; legacy_sid=s1; c=d"})
    assert out == {u"authenticated": True, u"user": {u"id": uid, u"name": name}}


@pytest.mark.parametrize("cookie", [u"", u"legacy_sid=nope", u"garbage;;==;", u"legacy_sid=s2"])
def test_whoami_anonymous(impl, legacy_db, cookie):
    """No cookie, an unknown or expired session, or one without a user: anonymous."""
    store = service_module("store", impl)
    conn = store.connect(legacy_db)
    store.save_session(conn, u"s2", {u"csrf": u"t"})
    store.save_session(conn, u"s3", {u"user_id": 1}, ttl=-10)
    conn.close()
    table = service_module("whoami", impl).TABLE
    out = call("whoami", table, u"whoami", {u"cookie": cookie} if cookie else {})
    assert out == {u"authenticated": False, u"user": None}


# ----------------------------------------------------------------- parity --


def test_parity_merge_keeps_the_other_implementation():
    """Merging one interpreter's run keeps the other's column."""
    first = merge_parity({}, "py2", {"htmldiff": {"passed": 3, "failed": 0, "skipped": 0}},
                         "2.7.18")
    both = merge_parity(first, "py3", {"htmldiff": {"passed": 2, "failed": 1, "skipped": 0}},
                        "3.11.7")
    assert both["services"]["htmldiff"]["py2"]["status"] == "pass"
    assert both["services"]["htmldiff"]["py3"]["status"] == "fail"
    assert sorted(both["implementations"]) == ["py2", "py3"]
