// Tests of the harness itself; they need neither root nor the clients.
package conformance

import (
	"strings"
	"testing"
)

func TestUnifiedDiff(t *testing.T) {
	a := strings.Split("a\nb\nc\nd\ne\nf\ng\nh\ni", "\n")
	b := strings.Split("a\nb\nc\nD\ne\nf\ng\nh\ni\nj", "\n")
	got := unifiedDiff(a, b, 1)
	want := "@@ -3 +3 @@\n c\n-d\n+D\n e\n@@ -9 +9 @@\n i\n+j\n"
	if got != want {
		t.Errorf("unifiedDiff:\n%s\nwant:\n%s", got, want)
	}
	if d := unifiedDiff(a, a, 3); d != "" {
		t.Errorf("diff of equal inputs: %q", d)
	}
}

func TestParseOracle(t *testing.T) {
	text := `# comment
## one-udp
transport: udp
note: a note: with a colon
request: 0102
prelude: zero-fill (9000-byte NULL call xid 0f0f0f0f, reply discarded)
reply: aa
decoded: xid=...
reply: bb

## two-tcp
transport: tcp
request: 01+02
reply: none
closed: yes
close-kind: rst

## rpcbind-stdout-stderr
note: what the daemon printed
| bad auth_len
`
	cases := parseOracle(text)
	if len(cases) != 2 {
		t.Fatalf("parsed %d cases, want 2: %+v", len(cases), cases)
	}
	one, two := cases[0], cases[1]
	if one.name != "one-udp" || one.request != "0102" || strings.Join(one.replies, ",") != "aa,bb" || !strings.HasPrefix(one.prelude, "zero-fill") {
		t.Errorf("case one: %+v", one)
	}
	if two.transport != "tcp" || two.request != "01+02" || two.closed != "yes" || two.closeKind != "rst" || two.replies[0] != "none" {
		t.Errorf("case two: %+v", two)
	}
}

func TestNormaliseStatd(t *testing.T) {
	in := "### rpcinfo -p\n    100024    1   udp  46471  status\n" +
		"### rpcinfo\n    100024    1    udp6      ::.217.226             status     superuser\n" +
		"    100024    1    tcp       0.0.0.0.220.103        status     superuser\n" +
		"### rpcinfo -m\n0       4/4     3/5\nstatus          1\tudp\t  1           \t2\n"
	want := "### rpcinfo -p\n 100024 1 udp P status\n" +
		"### rpcinfo\n 100024 1 udp6 ::.P.P status superuser\n" +
		" 100024 1 tcp 0.0.0.0.P.P status superuser\n" +
		"### rpcinfo -m\nN N/N N/N\nstatus 1 udp N N\n"
	if got := normaliseStatd(in); got != want {
		t.Errorf("normaliseStatd:\n%q\nwant:\n%q", got, want)
	}
}

func TestSortStatRows(t *testing.T) {
	in := "### rpcinfo -m\nPORTMAP\nprog\t\tvers\tnetid\tsuccess\tfailure\n805281796       1\ttcp\t  6           \t2\n805281796       1\tudp6\t  2           \t0\n### rpcinfo -p\nb 1 udp 2\na 1 udp 2\n"
	want := "### rpcinfo -m\nPORTMAP\nprog\t\tvers\tnetid\tsuccess\tfailure\n805281796       1\ttcp\t  6           \t2\n805281796       1\tudp6\t  2           \t0\n### rpcinfo -p\nb 1 udp 2\na 1 udp 2\n"
	swapped := "### rpcinfo -m\nPORTMAP\nprog\t\tvers\tnetid\tsuccess\tfailure\n805281796       1\tudp6\t  2           \t0\n805281796       1\ttcp\t  6           \t2\n### rpcinfo -p\nb 1 udp 2\na 1 udp 2\n"
	if got := sortStatRows(in); got != want {
		t.Errorf("sorted:\n%s\nwant:\n%s", got, want)
	}
	if sortStatRows(swapped) != sortStatRows(in) {
		t.Error("the same rows in another order normalise differently")
	}
}
