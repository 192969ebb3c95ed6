# The two commands of the README are `make up` and `make test`.
.PHONY: setup up demo test bench clean

setup:
	@bash scripts/bootstrap.sh

up: setup
	@. build/env.sh && .venv/bin/python -m gateway up

test:
	@bash scripts/test.sh

bench: setup
	@. build/env.sh && .venv/bin/python -m bench

clean:
	rm -rf .venv .venv2 .tox build
