"""Contract tests for any estate: ``gateway init`` and ``gateway contract test``.

The cases and the per-interpreter run live in ``protocol`` (``casegen``,
``contract_run``, the ``contract_pytest`` plugin), so they run on 2.7 too. This
package drives the two runs, compares them with the migration's interpreter-aware
rules and writes the parity table the dashboard shows:

- :mod:`.cli`: ``gateway contract test`` (direct, ``--tox``, ``--ingest``, ``--broker``);
- :mod:`.runner`: one leg under one interpreter, or the folder's tox legs;
- :mod:`.report`: case-by-case comparison, the verdict and the parity table;
- :mod:`.scaffold`, :mod:`.templates`: ``gateway init``.
"""
