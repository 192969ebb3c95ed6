"""Prometheus metrics of the gateway and its estate."""
