package httpmap

import (
	"strings"
	"testing"
)

// TestPageTable: the page's "table" template opens a table as page.js
// finds it (the id, and the count beside the heading that names it), with
// a sort button per column, escaped as HTML.
func TestPageTable(t *testing.T) {
	s := testServer(t, testRegistry(t), Config{})
	tests := []struct {
		name string
		in   pageTable
		want string
	}{
		{"two columns", newPageTable("Named services", "services", "Service", "Port or socket"),
			`<h2>Named services <span class="count" data-count-for="services"></span></h2>
<table id="services">
<thead><tr>
<th><button type="button">Service</button></th>
<th><button type="button">Port or socket</button></th>
</tr></thead>
<tbody>
`},
		{"no columns", newPageTable("RPC programs", "rpc"),
			`<h2>RPC programs <span class="count" data-count-for="rpc"></span></h2>
<table id="rpc">
<thead><tr>
</tr></thead>
<tbody>
`},
		{"escaped", newPageTable("<b>&", `a"b`, "<i>"),
			`<h2>&lt;b&gt;&amp; <span class="count" data-count-for="a&#34;b"></span></h2>
<table id="a&#34;b">
<thead><tr>
<th><button type="button">&lt;i&gt;</button></th>
</tr></thead>
<tbody>
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			if err := s.page.ExecuteTemplate(&b, "table", tt.in); err != nil {
				t.Fatal(err)
			}
			if b.String() != tt.want {
				t.Errorf("got\n%s\nwant\n%s", b.String(), tt.want)
			}
		})
	}
}
