"""The example estate ported to Python 3 (current Pygments, Pillow and werkzeug).

Each module is a service: a plain table of functions (``TABLE``) hosted by
``protocol.worker`` and/or a plain WSGI app (``app``) hosted by
``protocol.wsgi``. Nothing here imports ``gateway``::

    python -m protocol.worker --broker ipc:///tmp/b.ipc --service highlight \\
        py3_services.highlight:TABLE

Modules: ``highlight`` (Pygments), ``htmldiff`` (difflib over parse events),
``thumbnails`` (Pillow behind a Redis queue), ``whoami`` (the user bar's
JSON and script), ``v2`` (the plain werkzeug app at ``/v2`` that shares
the legacy Flask app's database) and ``store`` (that SQLite database).
The contracts in ``protocol/spec`` are the same as for ``py2_services``.
"""
