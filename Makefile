# portmapd: `make run` starts the daemon, `make test` runs every test.
GO       ?= go
BIN      := bin
# Unprivileged `make run` serves here instead of port 111.
DEV_PORT ?= 1111
DEV_DIR  ?= $(or $(XDG_RUNTIME_DIR),/tmp)/portmapd-dev
DEV_HTTP ?= 127.0.0.1:8111
PREFIX   ?= /usr/local

.PHONY: all build run test bench lint fuzz install clean

all: build

build:
	$(GO) build -o $(BIN)/portmapd ./cmd/portmapd
	$(GO) build -o $(BIN)/portmapctl ./cmd/portmapctl
	$(GO) build -o $(BIN)/portmapbench ./cmd/portmapbench

run: build
	@if [ "$$(id -u)" = 0 ]; then \
		exec ./$(BIN)/portmapd -f; \
	else \
		echo "make run: not root, so serving RPC on unprivileged port $(DEV_PORT), HTTP on $(DEV_HTTP), sockets and state in $(DEV_DIR)"; \
		mkdir -p -m 0700 $(DEV_DIR); \
		exec ./$(BIN)/portmapd -f --port $(DEV_PORT) --lock-file $(DEV_DIR)/portmapd.lock \
			--socket $(DEV_DIR)/rpcbind.sock --abstract-socket=false \
			--http $(DEV_HTTP) --http-socket $(DEV_DIR)/portmapd.sock \
			--state-dir $(DEV_DIR)/state --warm-start-dir $(DEV_DIR)/rpcbind; \
	fi

# The whole suite: vet, formatting, unit and loopback tests with the race
# detector, and, as root, the conformance tests in private namespaces.
test: build lint
	PORTMAPD_BIN=$(CURDIR)/$(BIN)/portmapd PORTMAPCTL_BIN=$(CURDIR)/$(BIN)/portmapctl \
		$(GO) test -race -count=1 ./...

# Go benchmarks, then (as root) the same load against rpcbind and portmapd
# in private namespaces, with the ratio of their rates.
bench: build
	$(GO) build -o $(BIN)/portmapbench ./cmd/portmapbench
	$(GO) test -run '^$$' -bench . -benchmem ./...
	./cmd/portmapbench/compare.sh $(CURDIR)/$(BIN)/portmapd $(CURDIR)/$(BIN)/portmapbench

lint:
	$(GO) vet ./...
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi

# Short fuzzing of every decoder: each Fuzz target of each package that has
# one, for FUZZTIME; the seed corpora run in `make test`.
FUZZTIME ?= 15s
fuzz:
	@for pkg in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
		targets=$$($(GO) test -list '^Fuzz' $$pkg) || exit 1; \
		for t in $$(echo "$$targets" | grep '^Fuzz'); do \
			echo "fuzz: $$pkg $$t"; \
			$(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

# Installs what `make build` built, the systemd units that take rpcbind's
# place (see README: Switching a host from rpcbind) and the documentation.
# It does not build: under sudo's PATH there is usually no go, so build as
# yourself first (make build && sudo make install). The units go to
# UNITDIR and name the binary and the documentation under PREFIX.
UNITDIR ?= /etc/systemd/system
install:
	@for f in $(BIN)/portmapd $(BIN)/portmapctl; do \
		[ -x "$$f" ] || { echo "make install: $$f is missing: run make build first (as yourself, not under sudo)" >&2; exit 1; }; \
	done
	install -D -m 0755 $(BIN)/portmapd $(DESTDIR)$(PREFIX)/sbin/portmapd
	install -D -m 0755 $(BIN)/portmapctl $(DESTDIR)$(PREFIX)/bin/portmapctl
	install -d $(DESTDIR)$(UNITDIR)
	for u in portmapd.service portmapd.socket; do \
		sed 's|/usr/local/|$(PREFIX)/|g' dist/systemd/$$u > $(DESTDIR)$(UNITDIR)/$$u && \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	done
	install -D -m 0644 README.md $(DESTDIR)$(PREFIX)/share/doc/portmapd/README.md
	install -D -m 0644 httpmap/README.md $(DESTDIR)$(PREFIX)/share/doc/portmapd/httpmap/README.md

clean:
	rm -rf $(BIN)
