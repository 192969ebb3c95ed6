"""End to end through the broker: the same contract cases sent to the Python 2.7
worker and the Python 3 worker of each service, answers compared.

Results are compared on what the contract promises to be equal (see
tests.contract.cases.observe): exact for htmldiff and whoami; lexer and
text content for highlight; state, format and dimensions for thumbnails.
"""

import pytest

from protocol import contract
from protocol.errors import InvalidParams, TooLarge
from tests.contract import cases
from tests.support.procs import wait_until

pytestmark = pytest.mark.slow


def both(estate, service, method, params):
    # type: (object, str, str, object) -> list
    """Call the py2 and the py3 worker; validate each result against the contract."""
    spec = contract.load(service)
    out = []
    for impl in ("py2", "py3"):
        result = estate.client.call(f"{service}-{impl}", method, params,
                                    schema=spec.schema_for(method))
        spec.validate_result(method, result)
        out.append(cases.observe(service, method, result))
    return out


def test_estate_highlight_and_htmldiff_agree(estate):
    """Every highlight and htmldiff case gives the same answer on both interpreters."""
    for name, params in cases.HIGHLIGHT:
        py2, py3 = both(estate, "highlight", "render", params)
        assert py2 == py3, name
        assert py2["lexer"] == cases.HIGHLIGHT_LEXERS[name]
    py2, py3 = both(estate, "highlight", "list_lexers", None)
    assert py2 == py3 == ["html", "python", "ruby", "text"]
    for name, old, new, expected in cases.HTMLDIFF:
        py2, py3 = both(estate, "htmldiff", "diff", {"old": old, "new": new})
        assert py2 == py3, name
        assert py2["html"] == expected


def test_estate_errors_are_typed_the_same(estate):
    """A bad lexer and oversized input raise the same typed errors from both workers."""
    messages = []
    for impl in ("py2", "py3"):
        with pytest.raises(InvalidParams) as info:
            estate.client.call("highlight-" + impl, "render",
                               {"code": "x", "lexer": "no-such-lexer"})
        assert info.value.details.get("field") == "params.lexer"
        messages.append(info.value.message)
        with pytest.raises(TooLarge):
            estate.client.call("thumbnails-" + impl, "submit",
                               {"image": cases.huge_png()},
                               schema=contract.load("thumbnails").schema_for("submit"))
    assert messages[0] == messages[1] == "no lexer named 'no-such-lexer'"


def test_estate_thumbnails_agree(estate):
    """Images in four formats and a corrupt one cross both interpreters as bytes."""
    spec = contract.load("thumbnails")
    images = [cases.image_bytes(fmt) for fmt in ("PNG", "JPEG", "GIF", "BMP")]
    images.append(cases.truncated_png())
    answers = {}
    for impl in ("py2", "py3"):
        service = "thumbnails-" + impl
        jobs = [estate.client.call(service, "submit", {"image": image, "size": 64},
                                   schema=spec.schema_for("submit"))["job"]
                for image in images]

        def settled(service=service, jobs=jobs):
            # type: (str, list) -> object
            out = [estate.client.call(service, "status", {"job": job}) for job in jobs]
            return out if all(st["state"] in ("done", "dead") for st in out) else None
        statuses = wait_until(settled, timeout=30, what="thumbnails on " + impl)
        for st in statuses:  # type: ignore[attr-defined]
            spec.validate_result("status", st)
        answers[impl] = [cases.observe("thumbnails", "status", st)
                         for st in statuses]  # type: ignore[attr-defined]
    assert answers["py2"] == answers["py3"]
    assert [a["state"] for a in answers["py2"]] == ["done"] * 4 + ["dead"]
    assert answers["py2"][-1]["error"] == "bad_image"
    assert all(a["decoded"] == ["PNG", 64, 43] for a in answers["py2"][:4])


def test_estate_whoami_agrees(estate):
    """Both workers read the same session from the shared database."""
    from py3_services import store
    conn = store.connect(estate.db)
    uid = store.create_user(conn, "\u00e4da", "pw")
    store.save_session(conn, "sid-1", {"user_id": uid})
    conn.close()
    for cookie in ("legacy_sid=sid-1", "legacy_sid=unknown", ""):
        py2, py3 = both(estate, "whoami", "whoami", {"cookie": cookie})
        assert py2 == py3
        assert py2["authenticated"] == (cookie == "legacy_sid=sid-1")
