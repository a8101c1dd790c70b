package httpmap

import (
	"errors"
	"log/slog"

	"github.com/portmapd/portmapd/audit"
	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/registry/lifetime"
)

// auditService names a service in the audit trail.
func auditService(sv registry.Service) []slog.Attr {
	attrs := []slog.Attr{slog.String("service", sv.Name), slog.String("endpoint", sv.Endpoint()), slog.String("network", string(sv.Network))}
	if sv.PID != 0 {
		attrs = append(attrs, slog.Int64("service_pid", int64(sv.PID)))
	}
	if f := sv.Flags.String(); f != "" {
		attrs = append(attrs, slog.String("flags", f))
	}
	// What the daemon is asked to check says what may remove the
	// registration besides its process's exit (deregister_after).
	if c := sv.Checks.String(); c != "" {
		attrs = append(attrs, slog.String("checks", c))
	}
	return attrs
}

// auditFailure writes the audit line of a registration or deregistration
// (op) that changed nothing, naming what it asked for when it could be
// read (svcs) or the name.
func (s *Server) auditFailure(c registry.Caller, op string, svcs []registry.Service, name string, err error) {
	result := audit.Failed
	var local *localOnlyError
	var lerr *lifetime.Error
	switch {
	case errors.As(err, &local), errors.As(err, &lerr), errors.Is(err, registry.ErrNotLocal), errors.Is(err, registry.ErrCapReached),
		errors.Is(err, registry.ErrExclusive), errors.Is(err, registry.ErrNotFound), errors.Is(err, registry.ErrRefused):
		result = audit.Refused
	}
	var what []slog.Attr
	for _, sv := range svcs {
		what = append(what, auditService(sv)...)
	}
	if name != "" {
		what = append(what, slog.String("service", name))
	}
	s.cfg.Audit.Change(c, op, what, result, err)
}
