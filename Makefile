# The two commands a newcomer needs:  make serve   and   make test
.PHONY: install serve test bench clean

install: .venv/.installed

.venv/.installed: pyproject.toml infra/install.sh
	bash infra/install.sh
	touch $@

serve: install  ## install, then run the service on the embedded SQLite store (./till-data); logs as text for a terminal
	.venv/bin/till serve --log-format text

test: install  ## install, then run the whole test suite (needs the PostgreSQL server, see README)
	.venv/bin/python -m pytest

bench: install  ## append throughput against PostgreSQL (see docs/performance.md)
	.venv/bin/python bench/append.py --terminals 64 --duration 20 --warmup 3 --rounds 3

clean:
	rm -rf .venv till-data .pytest_cache .hypothesis
