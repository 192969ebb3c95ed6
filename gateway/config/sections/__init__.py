"""Config sections whose values other packages interpret: parsed and checked here.

``migration`` (``[migration]``, ``[migrations.*]``) and ``metrics``
(``[metrics]``, ``[tracing]``, the access-log keys of ``[http]``) sit in the
config layer so that parsing a config imports neither the migration stores
nor the metrics machinery.
"""
