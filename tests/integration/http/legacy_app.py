# ruff: noqa: UP010, UP025, UP031
"""A legacy Flask 1.1 app and a plain werkzeug 1.0 app, unmodified, for Python 2.7.

Served two ways for the legacy tests: directly by werkzeug's server with the
apps mounted by DispatcherMiddleware, and through the gateway over ZeroMQ::

    .venv2/bin/python -m tests.integration.http.legacy_app PORT          # direct
    .venv2/bin/python -m protocol.wsgi --broker EP --service legacy \\
        tests.integration.http.legacy_app:flask_app                       # behind the gateway
"""
from __future__ import absolute_import, division, print_function

import hashlib
import json
import sys

from flask import Flask, Response, jsonify, redirect, request, url_for
from werkzeug.wrappers import Request as WzRequest
from werkzeug.wrappers import Response as WzResponse

flask_app = Flask(__name__)


@flask_app.route("/")
def index():
    # type: () -> object
    """Links built with url_for: they must carry the mount."""
    return jsonify(hello=url_for("hello", name=u"w\u00f6rld"), upload=url_for("upload"),
                   script_root=request.script_root, external=url_for("index", _external=True))


@flask_app.route("/hello/<name>")
def hello(name):
    # type: (str) -> object
    """Unicode in the path and the query."""
    return jsonify(name=name, path=request.path, full_path=request.full_path,
                   args=request.args.to_dict(), url=request.url,
                   remote_addr=request.remote_addr, method=request.method)


@flask_app.route("/go")
def go():
    # type: () -> object
    """A redirect built with url_for."""
    return redirect(url_for("hello", name="there"))


@flask_app.route("/cookies")
def cookies():
    # type: () -> object
    """Several Set-Cookie fields, and the cookies that came in."""
    resp = jsonify(got=request.cookies.to_dict())
    resp.set_cookie("a", "1", path="/legacy")
    resp.set_cookie("b", "2", httponly=True)
    return resp


@flask_app.route("/upload", methods=["POST"])
def upload():
    # type: () -> object
    """A multipart file upload."""
    f = request.files["file"]
    data = f.read()
    return jsonify(filename=f.filename, size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                   note=request.form.get("note"))


@flask_app.route("/json", methods=["POST", "PUT"])
def echo_json():
    # type: () -> object
    """A JSON body in, the same JSON out."""
    return jsonify(body=request.get_json(), method=request.method)


@flask_app.route("/stream")
def stream():
    # type: () -> object
    """A streamed (chunked) response."""
    def generate():
        # type: () -> object
        for i in range(20):
            yield (u"line %d \u00e9\n" % i).encode("utf-8")
    return Response(generate(), mimetype="text/plain")


@flask_app.route("/boom")
def boom():
    # type: () -> object
    """An unhandled error: Flask answers its own 500 page."""
    raise KeyError("boom")


@WzRequest.application
def plain_app(req):
    # type: (WzRequest) -> WzResponse
    """A plain werkzeug 1.0 app (no framework)."""
    if req.path == "/redirect":
        return WzResponse("", status=302, headers=[("Location", req.script_root + "/echo")])
    body = json.dumps({"path": req.path, "script_root": req.script_root,
                       "args": req.args.to_dict(), "method": req.method,
                       "body": req.get_data().decode("utf-8", "replace")}, sort_keys=True)
    return WzResponse(body, mimetype="application/json")


def main(argv):
    # type: (list) -> int
    """Serve both apps directly, mounted at /legacy and /plain."""
    from werkzeug.middleware.dispatcher import DispatcherMiddleware
    from werkzeug.serving import run_simple
    root = DispatcherMiddleware(WzResponse("not mounted", status=404),
                                {"/legacy": flask_app, "/plain": plain_app})
    run_simple("127.0.0.1", int(argv[1]), root, threaded=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
