"""Moving a route or an RPC method from its Python 2 original to its Python 3 port.

States per migration: ``py2 -> shadow -> canary N% -> py3 -> retired``, with
rollback to ``py2`` from shadow, canary and py3. See the README, "Migrating a
service", and :mod:`gateway.migration.engine` for how a request is served (one
shadow engine, with :mod:`~gateway.migration.route` and
:mod:`~gateway.migration.rpc` as its HTTP and RPC adapters).
"""
