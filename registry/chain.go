package registry

// A link is a node's place on a chain. Nodes embed it, so that walking a
// chain follows one pointer per node: DUMP walks every entry.
type link[N any] struct {
	prev, next *N
}

// chained is a pointer to a node type that embeds a link to its own type.
type chained[N any] interface {
	*N
	chainLink() *link[N]
}

// A chain is a doubly linked list of nodes in the order they were added.
// Its zero value is empty and ready to use. Walk it from head along the
// nodes' next fields in code that knows the node type: a method called
// through the type parameter is not inlined, which would make every step
// of a walk an indirect call. So a chain has no iterator of its own: an
// iter.Seq over it, stepping through chainLink, made DUMP's walk several
// times slower at 100,000 entries.
type chain[N any, P chained[N]] struct {
	head, tail P
	n          int
}

func (c *chain[N, P]) pushBack(n P) {
	l := n.chainLink()
	l.prev, l.next = c.tail, nil
	if c.tail != nil {
		c.tail.chainLink().next = n
	} else {
		c.head = n
	}
	c.tail = n
	c.n++
}

func (c *chain[N, P]) remove(n P) {
	l := n.chainLink()
	if l.prev != nil {
		P(l.prev).chainLink().next = l.next
	} else {
		c.head = l.next
	}
	if l.next != nil {
		P(l.next).chainLink().prev = l.prev
	} else {
		c.tail = l.prev
	}
	l.prev, l.next = nil, nil
	c.n--
}
