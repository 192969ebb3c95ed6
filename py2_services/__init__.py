"""The example estate as it was written for Python 2.7 (the originals).

Each module is a service: a plain table of functions (``TABLE``) hosted by
``protocol.worker`` and/or a plain WSGI app (``app``) hosted by
``protocol.wsgi``. Nothing here imports ``gateway``::

    python -m protocol.worker --broker ipc:///tmp/b.ipc --service highlight \\
        py2_services.highlight:TABLE

Modules: ``highlight`` (Pygments), ``htmldiff`` (difflib over parse events),
``thumbnails`` (Pillow behind a Redis queue), ``whoami`` (the user bar's
JSON and script), ``legacy`` (a Flask 1.1 app) and ``store`` (the SQLite
database the legacy app shares with its Python 3 neighbour at ``/v2``).
"""
from __future__ import absolute_import, division, print_function
