# Data Loom.  The two commands of the README are `make run` and `make test`.

.PHONY: all build run test bench deb clean

all: build

build:
	scripts/build.sh

run:
	scripts/run.sh

test:
	scripts/test.sh

bench:
	scripts/bench.sh

deb:
	scripts/deb.sh

clean:
	rm -rf build
