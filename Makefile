# portmapd: `make run` starts the daemon, `make test` runs every test.
GO       ?= go
BIN      := bin
# Unprivileged `make run` serves here instead of port 111.
DEV_PORT ?= 1111
DEV_DIR  ?= $(or $(XDG_RUNTIME_DIR),/tmp)/portmapd-dev

.PHONY: all build run test test-short bench lint fuzz clean

all: build

build:
	$(GO) build -o $(BIN)/portmapd ./cmd/portmapd
	$(GO) build -o $(BIN)/portmapctl ./cmd/portmapctl

run: build
	@if [ "$$(id -u)" = 0 ]; then \
		exec ./$(BIN)/portmapd -f; \
	else \
		echo "make run: not root, so serving on unprivileged port $(DEV_PORT) with state in $(DEV_DIR)"; \
		mkdir -p $(DEV_DIR); \
		exec ./$(BIN)/portmapd -f --port $(DEV_PORT) --lock-file $(DEV_DIR)/portmapd.lock; \
	fi

# The whole suite: vet, formatting, unit and loopback tests with the race
# detector, and, as root, the conformance tests in private namespaces.
test: build lint
	PORTMAPD_BIN=$(CURDIR)/$(BIN)/portmapd PORTMAPCTL_BIN=$(CURDIR)/$(BIN)/portmapctl \
		$(GO) test -race -count=1 ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

lint:
	$(GO) vet ./...
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi

# Short fuzzing of every decoder; the seed corpora run in `make test`.
FUZZTIME ?= 15s
fuzz:
	@for t in $$($(GO) test -list '^Fuzz' ./xdr/ | grep '^Fuzz'); do \
		$(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) ./xdr/ || exit 1; \
	done

clean:
	rm -rf $(BIN)
