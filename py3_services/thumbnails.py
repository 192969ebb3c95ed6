"""Thumbnails made by a queue consumer with current Pillow: the ``thumbnails`` service (Python 3).

The producer side checks and enqueues; a consumer process decodes, resizes
and stores the result on the job (protocol.queue's reliable Redis queue)::

    from protocol.queue import Queue, connect
    thumbs = Thumbnailer(Queue(connect(url), u"thumbnails"))
    job = thumbs.submit(png, size=64)["job"]
    thumbs.status(job)          # {u"state": u"queued", ...} then u"done" with the bytes

    python -m py3_services.thumbnails --redis redis://127.0.0.1:6379/0   # the consumer

Limits: more than ``max_bytes`` of input or ``max_pixels`` of image is
TooLarge at submit; bytes that are no known image are InvalidParams at
submit; an image whose header reads but whose data does not decode is
dead-lettered by the consumer with a ``bad_image`` error. Output sizes are
computed with integer arithmetic so every Pillow version agrees on them.

``TABLE`` and ``app`` (the ``/thumbnails`` page) use a Thumbnailer built on
first use from ``$GATEWAY_REDIS_URL`` and ``$THUMBNAILS_QUEUE``.
"""

import io
import logging
import os
import signal
import sys
import threading

from PIL import Image
from werkzeug.wrappers import Request, Response

from protocol import logcontext
from protocol._compat import to_text
from protocol.errors import InvalidParams, ProtocolError, TooLarge
from protocol.queue import DEAD, Consumer, Job, Queue, Reject, connect
from py3_services._web import error_response, html_page, json_response

MAX_BYTES = 8 * 1024 * 1024
MAX_PIXELS = 25 * 1000 * 1000
INPUT_FORMATS = ("PNG", "JPEG", "GIF", "BMP")
OUTPUT_FORMATS = ("PNG", "JPEG")
QUEUE_ENV, REDIS_ENV = "THUMBNAILS_QUEUE", "GATEWAY_REDIS_URL"

log = logging.getLogger(__name__)


def connect_url(url: str) -> object:
    """A redis client for ``url`` with timeouts (unix:// or redis://)."""
    return connect(url)


class BadImage(Reject):
    """The image's data cannot be decoded: dead-letter the job, retrying will not help."""

    code = "bad_image"


def _invalid(message: str, field: str, kind: str = "InvalidParams") -> InvalidParams:
    return InvalidParams(message, type=kind, field=field)


def fit(width: int, height: int, size: int) -> tuple:
    """The thumbnail's size: the longer side becomes ``size``, rounded half up, never upscaled."""
    longest = max(width, height)
    if longest <= size:
        return width, height
    return (max(1, (2 * width * size + longest) // (2 * longest)),
            max(1, (2 * height * size + longest) // (2 * longest)))


def make_thumbnail(data: bytes, size: int, fmt: str) -> dict:
    """Decode ``data``, resize it to fit ``size`` and encode it as ``fmt``."""
    try:
        img = Image.open(io.BytesIO(data))
        source = (to_text(img.format or ""), img.size)
        img.load()
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise BadImage(f"cannot decode the image: {exc}")
    if img.size[0] * img.size[1] > MAX_PIXELS:
        raise Reject(f"the image exceeds {MAX_PIXELS} pixels")
    mode = "RGBA" if ("A" in img.mode or "transparency" in img.info) else "RGB"
    if fmt == "JPEG":
        mode = "RGB"
    img = img.convert(mode)
    width, height = fit(img.size[0], img.size[1], size)
    img = img.resize((width, height), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    img.save(out, format=fmt)
    return {"thumbnail": out.getvalue(), "format": fmt, "width": width,
            "height": height, "source": {"format": source[0], "width": source[1][0],
                                            "height": source[1][1]}}


class Thumbnailer:
    """Submit and status over one queue, plus the consumer's job handler."""

    def __init__(self, queue: Queue, max_bytes: int = MAX_BYTES,
                 max_pixels: int = MAX_PIXELS) -> None:
        self.queue = queue
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels

    def submit(self, image: bytes, size: int = 128, format: str = "PNG") -> dict:  # noqa: A002 - the contract's name
        """Check the image's size and header, enqueue it; ``{"job", "state"}``."""
        if not isinstance(image, bytes | bytearray):
            raise _invalid("image must be bytes", "params.image")
        if len(image) > self.max_bytes:
            raise TooLarge(f"the image has {len(image)} bytes; the limit is {self.max_bytes}",
                           limit=self.max_bytes)
        fmt = to_text(format, "params.format").upper()
        if fmt not in OUTPUT_FORMATS:
            raise _invalid("format must be one of {}".format(", ".join(OUTPUT_FORMATS)),
                           "params.format")
        if not 1 <= int(size) <= 1024:
            raise _invalid("size must be 1 to 1024", "params.size")
        try:
            header = Image.open(io.BytesIO(bytes(image)))
        except (OSError, SyntaxError, ValueError) as exc:
            raise _invalid(f"not an image Pillow can read ({type(exc).__name__})",
                           "params.image", "BadImage")
        if to_text(header.format or "") not in INPUT_FORMATS:
            raise _invalid(f"{header.format} images are not accepted", "params.image",
                           "BadImage")
        width, height = header.size
        if width * height > self.max_pixels:
            raise TooLarge(f"the image is {width}x{height}; the limit is {self.max_pixels} pixels",
                           limit=self.max_pixels)
        job = self.queue.enqueue({"image": bytes(image), "size": int(size),
                                  "format": fmt})
        return {"job": job, "state": "queued"}

    def status(self, job: str) -> dict:
        """The job's state, and when done the thumbnail and its format and size."""
        job = to_text(job, "params.job")
        st = self.queue.status(job) if job else None
        if st is None:
            raise _invalid(f"no thumbnail job {job}", "params.job", "JobNotFound")
        out = {"job": job, "state": st.state}
        if isinstance(st.result, dict):
            out.update(st.result)
        if isinstance(st.error, dict):
            out["error"] = {"code": to_text(st.error.get("code", "remote")),
                             "message": to_text(st.error.get("message", ""))}
        return out

    def handle(self, job: Job) -> dict:
        """The consumer's handler: one job payload -> the stored result."""
        payload = job.payload
        return make_thumbnail(bytes(payload["image"]), int(payload["size"]),
                              payload["format"])


_lock = threading.Lock()
_default: list[Thumbnailer] = []


def default() -> Thumbnailer:
    """The process's Thumbnailer on ``$GATEWAY_REDIS_URL`` / ``$THUMBNAILS_QUEUE``."""
    with _lock:
        if not _default:
            url = os.environ.get(REDIS_ENV) or "redis://127.0.0.1:6379/0"
            name = to_text(os.environ.get(QUEUE_ENV) or "thumbnails")
            _default.append(Thumbnailer(Queue(connect_url(url), name, max_attempts=3)))
        return _default[0]


TABLE = {
    "submit": lambda image, size=128, format="PNG": default().submit(  # noqa: A006
        image, size, format),
    "status": lambda job: default().status(job),
}

_FORM = """<h1>thumbnails</h1>
<form method="post" enctype="multipart/form-data">
<input type="file" name="image"> <input name="size" value="128" size="4">
<button>make a thumbnail</button></form>
"""


@Request.application
def app(request: Request) -> Response:
    """``POST /thumbnails`` (image body or form upload) -> 202 + job; ``GET /thumbnails/<job>``."""
    job = request.path.strip("/")
    try:
        if request.method == "POST" and not job:
            # Only a multipart upload is a form: any other body is the image itself,
            # whatever Content-Type the client sent (curl defaults to a urlencoded form).
            upload = None
            values = request.args
            if request.mimetype == "multipart/form-data":
                upload, values = request.files.get("image"), request.form
            data = upload.read() if upload is not None else request.get_data(parse_form_data=False)
            size = int(values.get("size", "128") or 128)
            out = default().submit(data, size, values.get("format", "PNG"))
            url = "{}/{}".format(request.script_root, out["job"])
            if upload is not None:
                return Response(status=303, headers=[("Location", url)])
            return json_response(dict(out, url=url), status=202, headers=[("Location", url)])
        if request.method not in ("GET", "HEAD"):
            return error_response(InvalidParams("GET or POST only"))
        if not job:
            return html_page("thumbnails", _FORM)
        out = default().status(job)
    except ValueError as exc:
        if isinstance(exc, InvalidParams) and exc.type == "JobNotFound":
            return json_response({"error": {"code": "not_found", "message": exc.message}},
                                 status=404)
        if isinstance(exc, ProtocolError):
            return error_response(exc)
        return error_response(InvalidParams("size must be an integer"))
    except ProtocolError as exc:
        return error_response(exc)
    if out["state"] == "done":
        return Response(bytes(out["thumbnail"]),
                        content_type="image/{}".format(out["format"].lower()))
    out.pop("thumbnail", None)
    return json_response(out, status=422 if out["state"] == DEAD else 202)


def main(argv: list[str] | None = None) -> int:
    """Run a consumer until SIGTERM/SIGINT."""
    import argparse
    parser = argparse.ArgumentParser(prog="python -m py3_services.thumbnails")
    parser.add_argument("--redis", default=os.environ.get(REDIS_ENV))
    parser.add_argument("--queue", default=os.environ.get(QUEUE_ENV) or "thumbnails")
    args = parser.parse_args(argv)
    if not args.redis:
        parser.error(f"--redis or ${REDIS_ENV} is required")
    logging.basicConfig(level=logging.WARNING)
    logcontext.install()  # each line about a request names its rid and trace id
    thumbs = Thumbnailer(Queue(connect_url(args.redis), to_text(args.queue), max_attempts=3))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stop.set())
    print(f"thumbnails consumer ready on {args.queue}")
    sys.stdout.flush()
    Consumer(thumbs.queue, thumbs.handle).run(stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
