package httpmap

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/portmapd/portmapd/registry"
)

func TestParseRegistration(t *testing.T) {
	form := "application/x-www-form-urlencoded"
	tests := []struct {
		name, ctype, body string
		want              []registry.Service
		pid               int32
		err               bool
	}{
		{name: "form pair", ctype: form, body: "service=a.example.com&port=80",
			want: []registry.Service{{Name: "a.example.com", Network: "tcp", Port: 80}}},
		{name: "form pairs with flags", ctype: form, body: "service=a.example.com&port=80&service=a.example.com&port=/run/a&exclusive&public=1&pid=42",
			pid: 42, want: []registry.Service{
				{Name: "a.example.com", Network: "tcp", Port: 80, Flags: registry.Exclusive | registry.Public},
				{Name: "a.example.com", Network: "unix", Path: "/run/a", Flags: registry.Exclusive | registry.Public}}},
		{name: "form udp", ctype: "", body: "service=a.example.com&port=53&protocol=UDP",
			want: []registry.Service{{Name: "a.example.com", Network: "udp", Port: 53}}},
		{name: "json number and string ports", ctype: "application/json; charset=utf-8",
			body: `{"pid":7,"services":[{"service":"a.example.com","port":80},{"service":"b.example.com","port":"/run/b","public":true}]}`,
			pid:  7, want: []registry.Service{{Name: "a.example.com", Network: "tcp", Port: 80}, {Name: "b.example.com", Network: "unix", Path: "/run/b", Flags: registry.Public}}},
		{name: "form checks", ctype: form, body: "service=a.example.com&port=80&ttl=30&tcp&http=/healthz&rpc=100003/3&interval=10s&timeout=2s&deregister_after=5m",
			want: []registry.Service{{Name: "a.example.com", Network: "tcp", Port: 80, Checks: registry.Checks{
				TTL: 30 * time.Second, TCP: true, HTTP: "/healthz", RPC: true, RPCProg: 100003, RPCVers: 3,
				Interval: 10 * time.Second, Timeout: 2 * time.Second, DeregisterAfter: 5 * time.Minute}}}},
		{name: "json checks", ctype: "application/json",
			body: `{"services":[{"service":"a.example.com","port":80,"checks":{"ttl":"1m","rpc":"100005"}}]}`,
			want: []registry.Service{{Name: "a.example.com", Network: "tcp", Port: 80, Checks: registry.Checks{TTL: time.Minute, RPC: true, RPCProg: 100005}}}},
		{name: "bad ttl", ctype: form, body: "service=a&port=1&ttl=soon", err: true},
		{name: "bad rpc", ctype: form, body: "service=a&port=1&rpc=nfs", err: true},
		{name: "bad rpc version", ctype: form, body: "service=a&port=1&rpc=100003/x", err: true},
		{name: "bad tcp flag", ctype: form, body: "service=a&port=1&tcp=perhaps", err: true},
		{name: "json unknown check", ctype: "application/json", body: `{"services":[{"service":"a","port":1,"checks":{"icmp":true}}]}`, err: true},
		{name: "form tcpmux flags", ctype: form, body: "service=a.example.com&port=@handoff&service=b.example.com&port=7&tcpmux&muxhelp=1",
			want: []registry.Service{
				{Name: "a.example.com", Network: "unix", Path: "@handoff", Flags: registry.TCPMux | registry.MuxHelp},
				{Name: "b.example.com", Network: "tcp", Port: 7, Flags: registry.TCPMux | registry.MuxHelp}}},
		{name: "json tcpmux", ctype: "application/json",
			body: `{"services":[{"service":"a.example.com","port":"@h","tcpmux":true},{"service":"b.example.com","port":7,"tcpmux":true,"muxhelp":true}]}`,
			want: []registry.Service{{Name: "a.example.com", Network: "unix", Path: "@h", Flags: registry.TCPMux}, {Name: "b.example.com", Network: "tcp", Port: 7, Flags: registry.TCPMux | registry.MuxHelp}}},
		{name: "muxhelp without tcpmux", ctype: form, body: "service=a&port=1&muxhelp", err: true},
		{name: "bad tcpmux flag", ctype: form, body: "service=a&port=1&tcpmux=often", err: true},
		{name: "unpaired", ctype: form, body: "service=a.example.com&service=b.example.com&port=80", err: true},
		{name: "no services", ctype: form, body: "", err: true},
		{name: "bad flag", ctype: form, body: "service=a&port=1&exclusive=maybe", err: true},
		{name: "bad pid", ctype: form, body: "service=a&port=1&pid=-", err: true},
		{name: "negative pid", ctype: "application/json", body: `{"pid":-1,"services":[{"service":"a","port":1}]}`, err: true},
		{name: "port zero", ctype: form, body: "service=a&port=0", err: true},
		{name: "port too big", ctype: form, body: "service=a&port=65536", err: true},
		{name: "relative path", ctype: form, body: "service=a&port=run/a", err: true},
		{name: "json trailing", ctype: "application/json", body: `{"services":[{"service":"a","port":1}]} {}`, err: true},
		{name: "json unknown field", ctype: "application/json", body: `{"services":[{"service":"a","port":1,"uid":0}]}`, err: true},
		{name: "json fraction port", ctype: "application/json", body: `{"services":[{"service":"a","port":1.5}]}`, err: true},
		{name: "other type", ctype: "text/plain", body: "service=a&port=1", err: true},
		{name: "too many", ctype: form, body: strings.Repeat("service=a&port=1&", maxServicesPerCall+1), err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg, err := ParseRegistration(tt.ctype, []byte(tt.body))
			var svcs []registry.Service
			if err == nil {
				svcs, err = reg.services()
			}
			if tt.err {
				if err == nil || !errors.Is(err, ErrBadRequest) {
					t.Fatalf("err = %v, want ErrBadRequest", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if reg.PID != tt.pid || len(svcs) != len(tt.want) {
				t.Fatalf("got pid %d, %+v", reg.PID, svcs)
			}
			for i := range svcs {
				if svcs[i] != tt.want[i] {
					t.Fatalf("service %d = %+v, want %+v", i, svcs[i], tt.want[i])
				}
			}
		})
	}
}

// FuzzParseRegistration: no input may panic, and whatever parses converts
// to services the registry can judge without panicking either.
func FuzzParseRegistration(f *testing.F) {
	f.Add("application/json", []byte(`{"pid":7,"services":[{"service":"a.example.com","port":80,"exclusive":true}]}`))
	f.Add("application/x-www-form-urlencoded", []byte("service=a.example.com&port=/run/a&public=1"))
	f.Add("", []byte("service=a&port=1&protocol=udp&pid=3&start_time=9"))
	f.Add("", []byte("service=a&port=@h&tcpmux&muxhelp"))
	f.Fuzz(func(t *testing.T, ctype string, body []byte) {
		reg, err := ParseRegistration(ctype, body)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("error %v is not ErrBadRequest", err)
			}
			return
		}
		if len(reg.Services) == 0 || len(reg.Services) > maxServicesPerCall {
			t.Fatalf("%d services accepted", len(reg.Services))
		}
		svcs, err := reg.services()
		if err != nil {
			return
		}
		r := registry.New(registry.Options{})
		r.RegisterNamed(registry.Caller{Transport: registry.Internal}, registry.Process{PID: 1}, svcs)
	})
}
