# The two set-up commands of the README. Each creates .venv on first use.
.PHONY: report test

report:
	bash scripts/bootstrap.sh report

test:
	bash scripts/bootstrap.sh test
