"""Moving a route or an RPC method from its Python 2 original to its Python 3 port.

States per migration: ``py2 -> shadow -> canary N% -> py3 -> retired``, with
rollback to ``py2`` from shadow, canary and py3. See the README, "Migrating a
service", and :mod:`gateway.migration.router` for how a request is served.
"""
