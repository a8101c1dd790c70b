# portmapd: `make run` starts the daemon, `make test` runs every test.
GO       ?= go
BIN      := bin
# Unprivileged `make run` serves here instead of port 111.
DEV_PORT ?= 1111
DEV_DIR  ?= $(or $(XDG_RUNTIME_DIR),/tmp)/portmapd-dev
DEV_HTTP ?= 127.0.0.1:8111
PREFIX   ?= /usr/local

.PHONY: all build binaries docs run test bench lint fuzz install deb clean

all: build

# The man pages and completion scripts, which the binaries write
# themselves (their hidden gendocs command), so that they list exactly
# the flags of what is installed. Nothing generated is committed. The
# pages are dated by the last commit, for reproducible builds.
DOCS := $(BIN)/docs
export SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null)

build: binaries
	@$(MAKE) --no-print-directory docs

binaries:
	$(GO) build -o $(BIN)/portmapd ./cmd/portmapd
	$(GO) build -o $(BIN)/portmapctl ./cmd/portmapctl
	$(GO) build -o $(BIN)/portmapbench ./cmd/portmapbench

# Regenerates the man pages and completion scripts from the built
# binaries (make build runs it).
docs:
	rm -rf $(DOCS)
	./$(BIN)/portmapd gendocs $(DOCS)
	./$(BIN)/portmapctl gendocs $(DOCS)

# The daemon needs no man pages to run.
run: binaries
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

# Go benchmarks, the fleet's sizing simulation (FLEET_HOSTS hosts against
# one etcd; README: Sizing a fleet), then (as root) the same load against
# rpcbind and portmapd in private namespaces, with the ratio of their
# rates.
FLEET_HOSTS ?= 2000
bench: build
	$(GO) build -o $(BIN)/portmapbench ./cmd/portmapbench
	$(GO) test -run '^$$' -bench . -benchmem ./...
	$(GO) test -run '^TestFleetSizing$$' -v -timeout 30m ./fleet -fleet.hosts=$(FLEET_HOSTS)
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

# Installs what `make build` built (the binaries, their man pages and
# completion scripts), the systemd units that take rpcbind's place (see
# README: Switching a host from rpcbind) and the documentation. It does
# not build: under sudo's PATH there is usually no go, so build as
# yourself first (make build && sudo make install). The units go to
# UNITDIR and name the binary and the documentation under PREFIX.
UNITDIR     ?= /etc/systemd/system
MANDIR      ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR  ?= $(PREFIX)/share/zsh/site-functions
FISHCOMPDIR ?= $(PREFIX)/share/fish/vendor_completions.d
install:
	@for f in $(BIN)/portmapd $(BIN)/portmapctl $(DOCS)/man/portmapd.8 $(DOCS)/man/portmapctl.1; do \
		[ -e "$$f" ] || { echo "make install: $$f is missing: run make build first (as yourself, not under sudo)" >&2; exit 1; }; \
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
	install -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man8
	install -m 0644 $(DOCS)/man/*.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 $(DOCS)/man/*.8 $(DESTDIR)$(MANDIR)/man8/
	for c in portmapd portmapctl; do \
		install -D -m 0644 $(DOCS)/completion/bash/$$c $(DESTDIR)$(BASHCOMPDIR)/$$c && \
		install -D -m 0644 $(DOCS)/completion/zsh/_$$c $(DESTDIR)$(ZSHCOMPDIR)/_$$c && \
		install -D -m 0644 $(DOCS)/completion/fish/$$c.fish $(DESTDIR)$(FISHCOMPDIR)/$$c.fish || exit 1; \
	done

# A Debian package of what make build built, with nfpm (dist/deb, a module
# of its own so that nfpm's dependencies stay out of portmapd's): to
# $(BIN)/portmapd_VERSION_ARCH.deb. See README: The Debian package.
DEB_ARCH ?= $(shell dpkg --print-architecture 2>/dev/null || $(GO) env GOARCH)
deb: build
	$(GO) run -C dist/deb . -bin $(CURDIR)/$(BIN) -repo $(CURDIR) -arch $(DEB_ARCH) \
		-version $$(./$(BIN)/portmapd version | sed -n '1s/^portmapd //p')

clean:
	rm -rf $(BIN)
