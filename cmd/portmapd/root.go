package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/portmapd/portmapd/internal/daemon"
	"github.com/portmapd/portmapd/rpcbind"
	"github.com/portmapd/portmapd/xdr"
)

// options are the command line's values before they become a
// daemon.Config.
type options struct {
	foreground bool
	debug      bool
	insecure   bool
	logCalls   bool
	udpAddrs   []string
	port       int
	lockFile   string
	socket     string
	abstract   bool
	maxMessage int
	idle       time.Duration
	maxConns   int
}

// run executes the command line args and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := newRootCmd(stdout, stderr)
	cmd.SetArgs(args)
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(stderr, "portmapd: %v\n", err)
		return 1
	}
	return 0
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	var o options
	cmd := &cobra.Command{
		Use:   "portmapd",
		Short: "ONC RPC portmapper, a drop-in replacement for rpcbind",
		Long: `portmapd maps ONC RPC program numbers to the addresses their services
listen on. It answers portmap version 2 on UDP and TCP port 111, like rpcbind.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serve(cmd.Context(), o, stderr)
		},
	}
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	f := cmd.Flags()
	f.SortFlags = false
	// rpcbind's short options, with its meanings.
	f.BoolVarP(&o.foreground, "foreground", "f", false, "stay in the foreground (portmapd never forks; accepted for rpcbind compatibility)")
	f.BoolVarP(&o.debug, "debug", "d", false, "log debugging messages")
	f.StringArrayVarP(&o.udpAddrs, "host", "h", nil, "serve UDP only on this address (repeatable; 127.0.0.1 and ::1 are always added; TCP is unaffected)")
	f.BoolVarP(&o.insecure, "insecure", "i", false, "accept SET and UNSET from any host, not only from this one")
	f.BoolVarP(&o.logCalls, "log-calls", "l", false, "log every call")
	// Long options for everything rpcbind has no letter for.
	f.IntVar(&o.port, "port", xdr.PmapPort, "UDP and TCP port to serve")
	f.StringVar(&o.lockFile, "lock-file", "/run/rpcbind.lock", "lock file that keeps a second portmapper from starting (empty: none)")
	f.StringVar(&o.socket, "socket", "/run/rpcbind.sock", "local socket serving versions 2, 3 and 4 (empty: none)")
	f.BoolVar(&o.abstract, "abstract-socket", true, "also serve the local socket's name in the abstract namespace")
	f.IntVar(&o.maxMessage, "max-message", xdr.DefaultMaxMessage, "largest call accepted, in bytes")
	f.DurationVar(&o.idle, "idle-timeout", rpcbind.DefaultIdleTimeout, "close TCP connections idle for this long")
	f.IntVar(&o.maxConns, "max-conns", rpcbind.DefaultMaxConns, "most open TCP connections per listener")
	f.Bool("help", false, "show this help")
	return cmd
}

func serve(ctx context.Context, o options, stderr io.Writer) error {
	if o.port < 0 || o.port > 65535 {
		return fmt.Errorf("--port %d: not a port number", o.port)
	}
	if o.maxMessage < 64 {
		return fmt.Errorf("--max-message %d: too small to hold a call", o.maxMessage)
	}
	if o.maxConns < 1 || o.idle <= 0 {
		return errors.New("--max-conns and --idle-timeout must be positive")
	}
	level := slog.LevelInfo
	if o.debug {
		level = slog.LevelDebug
	}
	log := newLogger(stderr, level)
	return daemon.Run(ctx, daemon.Config{
		Port:           o.port,
		UDPAddrs:       o.udpAddrs,
		Insecure:       o.insecure,
		LogCalls:       o.logCalls,
		LockFile:       o.lockFile,
		Socket:         o.socket,
		AbstractSocket: o.abstract,
		MaxMessage:     o.maxMessage,
		IdleTimeout:    o.idle,
		MaxConns:       o.maxConns,
	}, log)
}

// newLogger logs text to w; under systemd, whose journal stamps each line
// itself, without the time.
func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if os.Getenv("JOURNAL_STREAM") != "" {
		opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
