"""End-to-end RPC tests: broker, workers and clients as real processes on both interpreters."""
