package sshx

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
	"golang.org/x/sys/cpu"
)

// Dial resolves t with o and connects once. Callers that reconnect should
// keep a Dialer from NewDialer instead, which reads configuration and keys
// only once.
func Dial(ctx context.Context, t Target, o Options) (*ssh.Client, error) {
	d, err := NewDialer(t, o)
	if err != nil {
		return nil, err
	}
	return d.Dial(ctx)
}

// Dial opens a new authenticated SSH connection. It returns when the
// connection is ready, ctx is done, or the connect timeout passes,
// whichever comes first. The connection sends keepalives until it is
// closed and closes itself when the server stops answering them.
//
// Host key errors wrap ErrHostKey and are one of UnknownHostKeyError,
// ChangedHostKeyError, RevokedHostKeyError or FingerprintMismatchError.
func (d *Dialer) Dial(ctx context.Context) (*ssh.Client, error) {
	var (
		presented []ssh.PublicKey
		exclude   []string
	)
	for {
		algos := d.hostKeys.hostKeyAlgorithms(exclude)
		var c *ssh.Client
		var err error
		if len(algos) > 0 {
			c, err = d.dialOnce(ctx, algos)
		}
		var fm *FingerprintMismatchError
		if len(algos) > 0 && err != nil && errors.As(err, &fm) && len(fm.Presented) == 1 {
			// A pin may name another of the server's keys: ask for the
			// next key type, as a pinned key is not necessarily the type
			// the server prefers.
			presented = append(presented, fm.Presented[0])
			exclude = append(exclude, keyTypeOf(fm.Presented[0]))
			continue
		}
		if len(presented) > 0 && (err != nil || len(algos) == 0) {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("ssh %s: %w", d, ctx.Err())
			}
			return nil, fmt.Errorf("ssh %s: %w", d, &FingerprintMismatchError{
				Host: knownhosts.Normalize(d.hostKeys.lookupAddr()), Pinned: d.hostKeys.pins, Presented: presented})
		}
		return c, err
	}
}

func (d *Dialer) dialOnce(parent context.Context, hostKeyAlgos []string) (*ssh.Client, error) {
	if err := parent.Err(); err != nil {
		return nil, fmt.Errorf("ssh %s: %w", d, err)
	}
	ctx, cancel := context.WithTimeout(parent, d.connectTimeout)
	defer cancel()
	ctxErr := func() error {
		if err := parent.Err(); err != nil {
			return err
		}
		return fmt.Errorf("connect timeout (%s) exceeded: %w", d.connectTimeout, context.DeadlineExceeded)
	}

	addr := net.JoinHostPort(d.host, strconv.Itoa(d.port))
	conn, err := (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext(ctx, d.network, addr)
	if err != nil {
		if ctx.Err() != nil {
			err = ctxErr()
		}
		return nil, fmt.Errorf("ssh %s: connect: %w", d, err)
	}

	auth, err := d.auth(ctx)
	if err != nil {
		conn.Close()
		return nil, err
	}
	defer auth.close()

	cfg := &ssh.ClientConfig{
		User:              d.user,
		Auth:              auth.methods,
		HostKeyCallback:   d.hostKeys.check,
		HostKeyAlgorithms: hostKeyAlgos,
		ClientVersion:     "SSH-2.0-cairn",
		Config:            ssh.Config{Ciphers: preferredCiphers()},
	}
	// x/crypto/ssh has no context support: closing the socket aborts the
	// handshake when ctx is done. The socket deadline is only a safety net,
	// set a little later so that ctx, with its clearer error, fires first.
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl.Add(time.Second))
	}
	// Closing the agent connection too unblocks a signature request to an
	// agent that hangs (or waits for a hardware key's touch).
	stop := context.AfterFunc(ctx, func() {
		conn.Close()
		auth.close()
	})
	sc, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if !stop() {
		if err == nil {
			sc.Close()
		}
		return nil, fmt.Errorf("ssh %s: handshake: %w", d, ctxErr())
	}
	if err != nil {
		if hk := hostKeyError(err); hk != nil {
			return nil, fmt.Errorf("ssh %s: %w", d, hk)
		}
		if strings.Contains(err.Error(), "unable to authenticate") {
			return nil, fmt.Errorf("ssh %s: %w (offered: %s): %w", d, ErrAuth, strings.Join(auth.tried, "; "), err)
		}
		return nil, fmt.Errorf("ssh %s: handshake: %w", d, err)
	}
	_ = conn.SetDeadline(time.Time{})
	client := ssh.NewClient(sc, chans, reqs)
	if d.keepAlive > 0 {
		go keepAlive(client, d.keepAlive, d.keepAliveMax)
	}
	return client, nil
}

// hostKeyError returns the host key rejection inside err (without
// x/crypto's "handshake failed" prefix), or nil.
func hostKeyError(err error) error {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if errors.Unwrap(e) == ErrHostKey {
			return e
		}
	}
	return nil
}

// keepAlive sends an OpenSSH keepalive request every interval and closes c
// once max requests in a row went unanswered for a whole interval. Closing
// fails every pending channel operation, so nothing waits forever on a
// peer that vanished without a FIN.
func keepAlive(c *ssh.Client, interval time.Duration, max int) {
	done := make(chan struct{})
	go func() {
		_ = c.Wait()
		close(done)
	}()
	t := time.NewTicker(interval)
	defer t.Stop()
	var outstanding atomic.Bool
	missed := 0
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		if outstanding.Load() {
			missed++
			if missed >= max {
				c.Close()
				return
			}
			continue
		}
		missed = 0
		outstanding.Store(true)
		go func() {
			// Any reply, even a refusal, proves the peer is alive.
			if _, _, err := c.SendRequest("keepalive@openssh.com", true, nil); err == nil {
				outstanding.Store(false)
			}
		}()
	}
}

// preferredCiphers puts AES-GCM first when the CPU accelerates AES and
// GHASH (it is then the fastest cipher OpenSSH offers), ChaCha20-Poly1305
// first otherwise.
func preferredCiphers() []string {
	aesGCM := []string{ssh.CipherAES128GCM, ssh.CipherAES256GCM}
	chacha := []string{ssh.CipherChaCha20Poly1305}
	ctr := []string{ssh.CipherAES128CTR, ssh.CipherAES192CTR, ssh.CipherAES256CTR}
	if hasAESHardware() {
		return append(append(aesGCM, chacha...), ctr...)
	}
	return append(append(chacha, aesGCM...), ctr...)
}

func hasAESHardware() bool {
	switch runtime.GOARCH {
	case "amd64", "386":
		return cpu.X86.HasAES && cpu.X86.HasPCLMULQDQ
	case "arm64":
		return cpu.ARM64.HasAES && cpu.ARM64.HasPMULL
	case "s390x":
		return cpu.S390X.HasAES && cpu.S390X.HasGHASH
	case "ppc64le", "ppc64":
		return true
	}
	return false
}
