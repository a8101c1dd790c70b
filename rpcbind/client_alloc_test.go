package rpcbind

import (
	"context"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/xdr"
)

// dumpShape is a synthetic DUMP reply of n entries, each encoded by item,
// and what the decoded list holds in memory per entry.
type dumpShape struct {
	name string
	n    int
	item func(e *xdr.Encoder, i int)
	held int
	call func(ctx context.Context, c *Client) (int, error)
}

// dumpReply encodes the DUMP reply of shape, without its xid (the first
// four bytes, which serveReply fills in), framed in fragments of 1 MiB.
func dumpReply(shape dumpShape) []byte {
	var e xdr.Encoder
	h := xdr.ReplyHeader{Stat: xdr.MsgAccepted, Accept: xdr.Success}
	h.Encode(&e)
	for i := 0; i < shape.n; i++ {
		e.Bool(true)
		shape.item(&e, i)
	}
	e.Bool(false)
	return xdr.AppendRecord(nil, e.Bytes(), 1<<20)
}

// serveReply answers one call on conn with reply, built beforehand so that
// the server allocates nothing while the client is measured.
func serveReply(t *testing.T, conn net.Conn, reply []byte) {
	go func() {
		defer conn.Close()
		call, err := xdr.NewRecordReader(conn, 0).Next()
		if err != nil {
			t.Error(err)
			return
		}
		copy(reply[4:8], call[:4])
		conn.Write(reply)
	}()
}

// TestDumpAllocations: a client reading a large DUMP decodes it as it
// reads, allocating about what the decoded list holds, not several times
// the reply (portmapctl reached 657 MB for a 60 MB reply, and this test
// saw 7 and 13 times the reply before).
func TestDumpAllocations(t *testing.T) {
	rpcb := func(addrLen int) func(*xdr.Encoder, int) {
		addr := strings.Repeat("a", addrLen)
		return func(e *xdr.Encoder, i int) {
			r := xdr.RPCB{Prog: uint32(100000 + i), Vers: 1, Netid: "tcp", Addr: addr, Owner: "superuser"}
			r.Encode(e)
		}
	}
	rpcbDump := func(ctx context.Context, c *Client) (int, error) {
		list, err := c.RpcbDump(ctx, xdr.RpcbVers)
		return len(list), err
	}
	// An entry is its struct, and its strings: the address, and netid
	// and owner in the small size classes.
	const rpcbSize, stringSlack = int(unsafe.Sizeof(xdr.RPCB{})), 8 + 16
	shapes := []dumpShape{
		{name: "v3 long addresses", n: 15000, item: rpcb(4000), held: rpcbSize + 4000 + stringSlack, call: rpcbDump},
		{name: "v3 short entries", n: 300000, item: rpcb(13), held: rpcbSize + 16 + stringSlack, call: rpcbDump},
		{name: "v2 mappings", n: 1000000, held: int(unsafe.Sizeof(xdr.Mapping{})),
			item: func(e *xdr.Encoder, i int) {
				m := xdr.Mapping{Prog: uint32(100000 + i), Vers: 1, Prot: netid.ProtoTCP, Port: 111}
				m.Encode(e)
			},
			call: func(ctx context.Context, c *Client) (int, error) {
				list, err := c.Dump(ctx)
				return len(list), err
			}},
	}
	for _, shape := range shapes {
		t.Run(shape.name, func(t *testing.T) {
			reply := dumpReply(shape)
			cconn, sconn := net.Pipe()
			serveReply(t, sconn, reply)
			c := NewClient(cconn)
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			n, err := shape.call(ctx, c)
			runtime.ReadMemStats(&after)
			if err != nil {
				t.Fatal(err)
			}
			if n != shape.n {
				t.Fatalf("%d entries, want %d", n, shape.n)
			}
			held := uint64(shape.n * shape.held)
			allocated := after.TotalAlloc - before.TotalAlloc
			t.Logf("reply %d bytes, list holds ~%d, allocated %d (%.1fx the reply)", len(reply), held, allocated, float64(allocated)/float64(len(reply)))
			// The list is built once in blocks and once whole; the
			// reply itself is never held.
			if limit := 2*held + 1<<20; allocated > limit {
				t.Errorf("allocated %d bytes for a list holding %d (limit %d)", allocated, held, limit)
			}
		})
	}
}
