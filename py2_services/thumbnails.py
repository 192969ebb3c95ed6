"""Thumbnails made by a queue consumer with Pillow 6: the ``thumbnails`` service (Python 2.7).

The producer side checks and enqueues; a consumer process decodes, resizes
and stores the result on the job (protocol.queue's reliable Redis queue)::

    from protocol.queue import Queue, connect
    thumbs = Thumbnailer(Queue(connect(url), u"thumbnails"))
    job = thumbs.submit(Bytes(png), size=64)[u"job"]
    thumbs.status(job)          # {u"state": u"queued", ...} then u"done" with the bytes

    python -m py2_services.thumbnails --redis redis://127.0.0.1:6379/0   # the consumer

Limits: more than ``max_bytes`` of input or ``max_pixels`` of image is
TooLarge at submit; bytes that are no known image are InvalidParams at
submit; an image whose header reads but whose data does not decode is
dead-lettered by the consumer with a ``bad_image`` error. Output sizes are
computed with integer arithmetic so every Pillow version agrees on them.

``TABLE`` and ``app`` (the ``/thumbnails`` page) use a Thumbnailer built on
first use from ``$GATEWAY_REDIS_URL`` and ``$THUMBNAILS_QUEUE``.
"""
from __future__ import absolute_import, division, print_function

import io
import logging
import os
import signal
import sys
import threading

from PIL import Image
from werkzeug.wrappers import Request, Response

from protocol import logcontext
from protocol._compat import binary_type, to_text
from protocol.codec import Bytes
from protocol.errors import InvalidParams, ProtocolError, TooLarge
from protocol.queue import DEAD, Consumer, Queue, Reject, connect
from py2_services._web import error_response, html_page, json_response

MAX_BYTES = 8 * 1024 * 1024
MAX_PIXELS = 25 * 1000 * 1000
INPUT_FORMATS = (u"PNG", u"JPEG", u"GIF", u"BMP")
OUTPUT_FORMATS = (u"PNG", u"JPEG")
QUEUE_ENV, REDIS_ENV = "THUMBNAILS_QUEUE", "GATEWAY_REDIS_URL"

log = logging.getLogger(__name__)


def connect_url(url):
    # type: (str) -> object
    """A redis client for ``url`` with timeouts; unix:// works with redis-py 3.5 too.

    redis-py 3.5's unix socket connection has no connect timeout, so
    protocol.queue.connect (which sets one) cannot open unix:// URLs there.
    """
    if url.startswith("unix://"):
        import redis
        return redis.Redis.from_url(url, socket_timeout=5.0)
    return connect(url)


class BadImage(Reject):
    """The image's data cannot be decoded: dead-letter the job, retrying will not help."""

    code = "bad_image"


def _invalid(message, field, kind=u"InvalidParams"):
    # type: (str, str, str) -> InvalidParams
    return InvalidParams(message, type=kind, field=field)


def fit(width, height, size):
    # type: (int, int, int) -> tuple
    """The thumbnail's size: the longer side becomes ``size``, rounded half up, never upscaled."""
    longest = max(width, height)
    if longest <= size:
        return width, height
    return (max(1, (2 * width * size + longest) // (2 * longest)),
            max(1, (2 * height * size + longest) // (2 * longest)))


def make_thumbnail(data, size, fmt):
    # type: (bytes, int, str) -> dict
    """Decode ``data``, resize it to fit ``size`` and encode it as ``fmt``."""
    try:
        img = Image.open(io.BytesIO(data))
        source = (to_text(img.format or u""), img.size)
        img.load()
    except (IOError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise BadImage(u"cannot decode the image: %s" % (exc,))
    if img.size[0] * img.size[1] > MAX_PIXELS:
        raise Reject(u"the image exceeds %d pixels" % MAX_PIXELS)
    mode = u"RGBA" if (u"A" in img.mode or "transparency" in img.info) else u"RGB"
    if fmt == u"JPEG":
        mode = u"RGB"
    img = img.convert(str(mode))
    width, height = fit(img.size[0], img.size[1], size)
    img = img.resize((width, height), Image.LANCZOS)
    out = io.BytesIO()
    img.save(out, format=str(fmt))
    return {u"thumbnail": Bytes(out.getvalue()), u"format": fmt, u"width": width,
            u"height": height, u"source": {u"format": source[0], u"width": source[1][0],
                                            u"height": source[1][1]}}


class Thumbnailer(object):
    """Submit and status over one queue, plus the consumer's job handler."""

    def __init__(self, queue, max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS):
        # type: (Queue, int, int) -> None
        self.queue = queue
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels

    def submit(self, image, size=128, format=u"PNG"):  # noqa: A002 - the contract's name
        # type: (bytes, int, str) -> dict
        """Check the image's size and header, enqueue it; ``{"job", "state"}``."""
        if not isinstance(image, (binary_type, bytearray)):
            raise _invalid(u"image must be bytes", u"params.image")
        if len(image) > self.max_bytes:
            raise TooLarge(u"the image has %d bytes; the limit is %d" % (
                len(image), self.max_bytes), limit=self.max_bytes)
        fmt = to_text(format, u"params.format").upper()
        if fmt not in OUTPUT_FORMATS:
            raise _invalid(u"format must be one of %s" % u", ".join(OUTPUT_FORMATS),
                           u"params.format")
        if not 1 <= int(size) <= 1024:
            raise _invalid(u"size must be 1 to 1024", u"params.size")
        try:
            header = Image.open(io.BytesIO(bytes(image)))
        except (IOError, OSError, SyntaxError, ValueError) as exc:
            raise _invalid(u"not an image Pillow can read (%s)" % (type(exc).__name__,),
                           u"params.image", u"BadImage")
        if to_text(header.format or u"") not in INPUT_FORMATS:
            raise _invalid(u"%s images are not accepted" % (header.format,), u"params.image",
                           u"BadImage")
        width, height = header.size
        if width * height > self.max_pixels:
            raise TooLarge(u"the image is %dx%d; the limit is %d pixels" % (
                width, height, self.max_pixels), limit=self.max_pixels)
        job = self.queue.enqueue({u"image": Bytes(bytes(image)), u"size": int(size),
                                  u"format": fmt})
        return {u"job": job, u"state": u"queued"}

    def status(self, job):
        # type: (str) -> dict
        """The job's state, and when done the thumbnail and its format and size."""
        job = to_text(job, u"params.job")
        st = self.queue.status(job) if job else None
        if st is None:
            raise _invalid(u"no thumbnail job %s" % (job,), u"params.job", u"JobNotFound")
        out = {u"job": job, u"state": st.state}
        if isinstance(st.result, dict):
            out.update(st.result)
        if isinstance(st.error, dict):
            out[u"error"] = {u"code": to_text(st.error.get(u"code", u"remote")),
                             u"message": to_text(st.error.get(u"message", u""))}
        return out

    def handle(self, job):
        # type: (object) -> dict
        """The consumer's handler: one job payload -> the stored result."""
        payload = job.payload  # type: ignore[attr-defined]
        return make_thumbnail(bytes(payload[u"image"]), int(payload[u"size"]),
                              payload[u"format"])


_lock = threading.Lock()
_default = []  # type: list


def default():
    # type: () -> Thumbnailer
    """The process's Thumbnailer on ``$GATEWAY_REDIS_URL`` / ``$THUMBNAILS_QUEUE``."""
    with _lock:
        if not _default:
            url = os.environ.get(REDIS_ENV) or "redis://127.0.0.1:6379/0"
            name = to_text(os.environ.get(QUEUE_ENV) or "thumbnails")
            _default.append(Thumbnailer(Queue(connect_url(url), name, max_attempts=3)))
        return _default[0]  # type: ignore[no-any-return]


TABLE = {
    u"submit": lambda image, size=128, format=u"PNG": default().submit(  # noqa: A006
        image, size, format),
    u"status": lambda job: default().status(job),
}

_FORM = u"""<h1>thumbnails</h1>
<form method="post" enctype="multipart/form-data">
<input type="file" name="image"> <input name="size" value="128" size="4">
<button>make a thumbnail</button></form>
"""


@Request.application
def app(request):
    # type: (Request) -> Response
    """``POST /thumbnails`` (image body or form upload) -> 202 + job; ``GET /thumbnails/<job>``."""
    job = request.path.strip(u"/")
    try:
        if request.method == u"POST" and not job:
            # Only a multipart upload is a form: any other body is the image itself,
            # whatever Content-Type the client sent (curl defaults to a urlencoded form).
            upload = None
            values = request.args
            if request.mimetype == u"multipart/form-data":
                upload, values = request.files.get(u"image"), request.form
            data = upload.read() if upload is not None else request.get_data(parse_form_data=False)
            size = int(values.get(u"size", u"128") or 128)
            out = default().submit(Bytes(data), size, values.get(u"format", u"PNG"))
            url = u"%s/%s" % (request.script_root, out[u"job"])
            if upload is not None:
                return Response(status=303, headers=[("Location", url)])
            return json_response(dict(out, url=url), status=202, headers=[("Location", url)])
        if request.method not in (u"GET", u"HEAD"):
            return error_response(InvalidParams(u"GET or POST only"))
        if not job:
            return html_page(u"thumbnails", _FORM)
        out = default().status(job)
    except ValueError as exc:
        if isinstance(exc, InvalidParams) and exc.type == u"JobNotFound":
            return json_response({u"error": {u"code": u"not_found", u"message": exc.message}},
                                 status=404)
        if isinstance(exc, ProtocolError):
            return error_response(exc)
        return error_response(InvalidParams(u"size must be an integer"))
    except ProtocolError as exc:
        return error_response(exc)
    if out[u"state"] == u"done":
        return Response(bytes(out[u"thumbnail"]),
                        content_type="image/%s" % out[u"format"].lower())
    out.pop(u"thumbnail", None)
    return json_response(out, status=422 if out[u"state"] == DEAD else 202)


def main(argv=None):
    # type: (list) -> int
    """Run a consumer until SIGTERM/SIGINT."""
    import argparse
    parser = argparse.ArgumentParser(prog="python -m py2_services.thumbnails")
    parser.add_argument("--redis", default=os.environ.get(REDIS_ENV))
    parser.add_argument("--queue", default=os.environ.get(QUEUE_ENV) or "thumbnails")
    args = parser.parse_args(argv)
    if not args.redis:
        parser.error("--redis or $%s is required" % REDIS_ENV)
    logging.basicConfig(level=logging.WARNING)
    logcontext.install()  # each line about a request names its rid and trace id
    thumbs = Thumbnailer(Queue(connect_url(args.redis), to_text(args.queue), max_attempts=3))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stop.set())
    print("thumbnails consumer ready on %s" % args.queue)
    sys.stdout.flush()
    Consumer(thumbs.queue, thumbs.handle).run(stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
