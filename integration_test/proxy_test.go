package integration_test

// A loopback TCP proxy that can be paused: a network blip that leaves
// connections open but moves no bytes, the case PINGs detect only slowly.

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type haProxy struct {
	ln       net.Listener
	upstream string

	mu      sync.Mutex
	paused  bool
	resumed chan struct{} // closed by Resume (and by Close)
	closed  bool
	conns   []net.Conn
	wg      sync.WaitGroup
}

// haNewProxy forwards connections made to its address to upstream
// (host:port), and closes everything in t.Cleanup.
func haNewProxy(t *testing.T, upstream string) *haProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &haProxy{ln: ln, upstream: upstream, resumed: make(chan struct{})}
	close(p.resumed)
	p.wg.Go(p.accept)
	t.Cleanup(p.Close)
	return p
}

// Addr is the proxy's host:port.
func (p *haProxy) Addr() string { return p.ln.Addr().String() }

// URL is the proxy as a NATS URL.
func (p *haProxy) URL() string { return "nats://" + p.Addr() }

func (p *haProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.upstream)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			_ = c.Close()
			_ = u.Close()
			return
		}
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		p.wg.Go(func() { p.pipe(u, c) })
		p.wg.Go(func() { p.pipe(c, u) })
	}
}

// pipe copies src to dst, holding each chunk while the proxy is paused.
func (p *haProxy) pipe(dst, src net.Conn) {
	defer func() {
		_ = dst.Close()
		_ = src.Close()
	}()
	buf := make([]byte, 32*1024)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.gate() {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// gate waits while the proxy is paused; false once it is closed.
func (p *haProxy) gate() bool {
	p.mu.Lock()
	for p.paused && !p.closed {
		ch := p.resumed
		p.mu.Unlock()
		<-ch
		p.mu.Lock()
	}
	closed := p.closed
	p.mu.Unlock()
	return !closed
}

// Pause stops forwarding bytes both ways; connections stay open.
func (p *haProxy) Pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.paused {
		p.paused = true
		p.resumed = make(chan struct{})
	}
}

// Resume forwards again, held bytes first.
func (p *haProxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused {
		p.paused = false
		close(p.resumed)
	}
}

// Close closes the listener and every connection, and waits.
func (p *haProxy) Close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		if p.paused {
			close(p.resumed)
		}
	}
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	_ = p.ln.Close()
	for _, c := range conns {
		_ = c.Close()
	}
	p.wg.Wait()
}

// TestHAProxyPauses: while paused the proxy moves no byte either way and
// keeps the connection open; on resume the held bytes arrive.
func TestHAProxyPauses(t *testing.T) {
	t.Parallel()
	// An echo server.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	p := haNewProxy(t, ln.Addr().String())
	c, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })

	echo := func(msg string, wait time.Duration) (string, error) {
		if _, err := c.Write([]byte(msg)); err != nil {
			return "", err
		}
		require.NoError(t, c.SetReadDeadline(time.Now().Add(wait)))
		buf := make([]byte, len(msg))
		_, err := io.ReadFull(c, buf)
		return string(buf), err
	}
	got, err := echo("one", 5*time.Second)
	require.NoError(t, err)
	require.Equal(t, "one", got)

	p.Pause()
	_, err = echo("two", 300*time.Millisecond)
	var ne net.Error
	require.True(t, errors.As(err, &ne) && ne.Timeout(), "nothing comes back while paused: %v", err)

	p.Resume()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	buf := make([]byte, 3)
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err, "the held bytes arrive on resume, on the same connection")
	require.True(t, bytes.Equal([]byte("two"), buf), "%q", buf)
}
