package testserver

import (
	"io"
	"net"
	"sync"
	"testing"
)

// FaultProxy forwards TCP connections from a port on 127.0.0.1 to a server
// and breaks them on demand, so tests can show what a client does when a
// real server's connection drops or hangs mid-transfer.
type FaultProxy struct {
	// Addr is host:port of the proxy; point the client here.
	Addr string

	target string
	l      net.Listener

	mu       sync.Mutex
	cutAfter int64 // >= 0: cut the next connection after this many bytes from the client
	cutDown  int64 // >= 0: cut the next connection after this many bytes from the server
	stalled  bool
	unstall  chan struct{} // closed when stalled ends
	conns    map[net.Conn]struct{}
	wg       sync.WaitGroup
}

// NewFaultProxy starts a proxy to target (host:port) that forwards faithfully
// until told otherwise. It stops when t ends.
func NewFaultProxy(t testing.TB, target string) *FaultProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testserver: fault proxy: %v", err)
	}
	p := &FaultProxy{Addr: l.Addr().String(), target: target, l: l, cutAfter: -1, cutDown: -1,
		unstall: make(chan struct{}), conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

// CutNextAfter makes the proxy close the next connection it accepts, both
// ways, once the client has sent n bytes through it (request line and
// headers included). Later connections are forwarded faithfully again.
func (p *FaultProxy) CutNextAfter(n int64) {
	p.mu.Lock()
	p.cutAfter = n
	p.mu.Unlock()
}

// CutNextDownloadAfter makes the proxy close the next connection it
// accepts once the server has sent n bytes through it (status line and
// headers included): a download that breaks off.
func (p *FaultProxy) CutNextDownloadAfter(n int64) {
	p.mu.Lock()
	p.cutDown = n
	p.mu.Unlock()
}

// Stall stops (true) or resumes (false) forwarding the server's answers on
// every connection: the client sees a server that hangs mid-transfer.
func (p *FaultProxy) Stall(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on == p.stalled {
		return
	}
	p.stalled = on
	if !on {
		close(p.unstall)
		p.unstall = make(chan struct{})
	}
}

// waitUnstalled blocks while the proxy is stalled; it returns false when
// the proxy closed meanwhile.
func (p *FaultProxy) waitUnstalled(done <-chan struct{}) bool {
	for {
		p.mu.Lock()
		stalled, ch := p.stalled, p.unstall
		p.mu.Unlock()
		if !stalled {
			return true
		}
		select {
		case <-ch:
		case <-done:
			return false
		}
	}
}

func (p *FaultProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		up, down := p.cutAfter, p.cutDown
		p.cutAfter, p.cutDown = -1, -1
		p.mu.Unlock()
		p.wg.Add(1)
		go p.handle(c, up, down)
	}
}

// track registers c for close; it reports false when the proxy is closing.
func (p *FaultProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *FaultProxy) handle(client net.Conn, cut, cutDown int64) {
	defer p.wg.Done()
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = client.Close()
		return
	}
	if !p.track(client) || !p.track(server) {
		_ = client.Close()
		_ = server.Close()
		return
	}
	done := make(chan struct{})
	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			close(done)
			_ = client.Close()
			_ = server.Close()
		})
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // client → server, cut after the budget
		defer wg.Done()
		defer closeBoth()
		src := io.Reader(client)
		if cut >= 0 {
			src = io.LimitReader(client, cut)
		}
		_, _ = io.Copy(server, src)
	}()
	go func() { // server → client, held while stalled, cut after its budget
		defer wg.Done()
		defer closeBoth()
		src := io.Reader(server)
		if cutDown >= 0 {
			src = io.LimitReader(server, cutDown)
		}
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				if !p.waitUnstalled(done) {
					return
				}
				if _, werr := client.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	wg.Wait()
	p.mu.Lock()
	if p.conns != nil {
		delete(p.conns, client)
		delete(p.conns, server)
	}
	p.mu.Unlock()
}

func (p *FaultProxy) close() {
	_ = p.l.Close()
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	if p.stalled {
		p.stalled = false
		close(p.unstall)
	}
	p.mu.Unlock()
	for c := range conns {
		_ = c.Close()
	}
	p.wg.Wait()
}
