package sshx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// identity is one key file, loaded once per Dialer.
type identity struct {
	path   string
	signer ssh.Signer    // nil when the file is encrypted
	pub    ssh.PublicKey // known even for encrypted files when a .pub exists
	cert   ssh.Signer    // signer presenting path+"-cert.pub", if any
}

// loadIdentity reads a private key file. With required set (explicitly
// named keys) a missing, unreadable or encrypted file is an error;
// otherwise such a file is skipped and the reason returned in skip.
func loadIdentity(path string, required bool, warn func(string, ...any)) (id *identity, skip string, err error) {
	fail := func(reason string, cause error) (*identity, string, error) {
		if required {
			return nil, "", fmt.Errorf("ssh identity %s: %s: %w", path, reason, cause)
		}
		return nil, reason, nil
	}
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		if required {
			return nil, "", fmt.Errorf("ssh identity %s: %w", path, err)
		}
		return nil, "", nil // absent default files are not worth mentioning
	}
	if err != nil {
		return fail("cannot stat", err)
	}
	if fi.IsDir() {
		return fail("is a directory", errors.New("not a key file"))
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fail("cannot read", err)
	}
	if exposedKeyMode(fi.Mode()) {
		// OpenSSH refuses such files; Kubernetes mounts Secrets 0644 unless
		// told otherwise, so cairn only warns.
		warn("ssh identity %s is accessible by other users (mode %04o); restrict it to its owner (chmod 600, or defaultMode: 0400 for a Kubernetes Secret)",
			path, fi.Mode().Perm())
	}
	id = &identity{path: path}
	signer, err := ssh.ParsePrivateKey(data)
	var missing *ssh.PassphraseMissingError
	switch {
	case errors.As(err, &missing):
		id.pub = missing.PublicKey
		if id.pub == nil {
			id.pub = readPublicKey(path + ".pub")
		}
		if required {
			return nil, "", fmt.Errorf("ssh identity %s is protected by a passphrase; cairn never prompts: load it into ssh-agent, or use an unencrypted key (for example from a Kubernetes Secret)", path)
		}
		// The agent may hold it (IdentitiesOnly matches it by public key).
		return id, "encrypted (load it into ssh-agent)", nil
	case err != nil:
		return fail("not a private key cairn can use", err)
	}
	id.signer = signer
	id.pub = signer.PublicKey()
	if certPub := readPublicKey(path + "-cert.pub"); certPub != nil {
		if cert, ok := certPub.(*ssh.Certificate); ok && bytes.Equal(cert.Key.Marshal(), id.pub.Marshal()) {
			if cs, err := ssh.NewCertSigner(cert, signer); err == nil {
				id.cert = cs
			}
		}
	}
	return id, "", nil
}

// readPublicKey parses an authorized_keys-format file, or returns nil.
func readPublicKey(path string) ssh.PublicKey {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(data)
	if err != nil {
		return nil
	}
	return pub
}

// authSession holds what one dial offers; close releases the agent
// connection once authentication is over.
type authSession struct {
	methods []ssh.AuthMethod
	tried   []string // what was offered, for an authentication failure message
	close   func()
}

// auth builds the authentication methods for one dial. The agent
// connection it may open is closed by s.close, which is safe to call more
// than once.
func (d *Dialer) auth(ctx context.Context) (*authSession, error) {
	s := &authSession{close: func() {}}
	var signers []ssh.Signer
	seen := map[string]bool{}
	add := func(sg ssh.Signer) bool {
		k := string(sg.PublicKey().Marshal())
		if seen[k] {
			return false
		}
		seen[k] = true
		signers = append(signers, sg)
		return true
	}

	if d.agentSocket != "" {
		conn, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "unix", d.agentSocket)
		if err != nil {
			d.warn("ssh-agent at %s is not reachable, continuing without it: %v", d.agentSocket, err)
		} else {
			var once sync.Once
			s.close = func() { once.Do(func() { conn.Close() }) }
			// A stuck agent must not outlive the dial: the deadline bounds
			// listing and signing, and cancellation closes the socket.
			if dl, ok := ctx.Deadline(); ok {
				_ = conn.SetDeadline(dl)
			}
			stop := context.AfterFunc(ctx, s.close)
			agentSigners, err := agent.NewClient(conn).Signers()
			stop()
			if err != nil {
				d.warn("ssh-agent at %s: cannot list keys, continuing without it: %v", d.agentSocket, err)
			}
			n := 0
			for _, sg := range agentSigners {
				if d.identitiesOnly && !d.hasIdentity(sg.PublicKey()) {
					continue
				}
				if add(sg) {
					n++
				}
			}
			s.tried = append(s.tried, fmt.Sprintf("ssh-agent at %s (%d keys)", d.agentSocket, n))
		}
	}
	for _, id := range d.identities {
		if id.signer == nil {
			continue
		}
		offered := false
		if id.cert != nil {
			offered = add(id.cert) || offered
		}
		offered = add(id.signer) || offered
		if offered {
			s.tried = append(s.tried, id.path)
		}
	}
	for _, sk := range d.skipped {
		s.tried = append(s.tried, sk)
	}
	if len(signers) > 0 {
		s.methods = append(s.methods, ssh.PublicKeys(signers...))
	}

	if d.passwordEnv != "" {
		pw, ok := os.LookupEnv(d.passwordEnv)
		if !ok {
			s.close()
			return nil, fmt.Errorf("ssh password: environment variable %s is not set", d.passwordEnv)
		}
		s.methods = append(s.methods,
			ssh.Password(pw),
			ssh.KeyboardInteractive(func(_, _ string, questions []string, echos []bool) ([]string, error) {
				answers := make([]string, len(questions))
				for i := range questions {
					if !echos[i] { // a hidden prompt asks for the password
						answers[i] = pw
					}
				}
				return answers, nil
			}))
		s.tried = append(s.tried, "password from $"+d.passwordEnv)
	}
	if len(s.methods) == 0 {
		s.close()
		return nil, fmt.Errorf("ssh %s: no credentials to offer (%s); name a key file or a password variable, or start ssh-agent",
			d, strings.Join(append([]string{"no agent, no usable identity file"}, d.skipped...), "; "))
	}
	return s, nil
}

// hasIdentity reports whether pub belongs to one of the identity files
// (IdentitiesOnly lets only those agent keys through).
func (d *Dialer) hasIdentity(pub ssh.PublicKey) bool {
	for _, id := range d.identities {
		if id.pub != nil && bytes.Equal(id.pub.Marshal(), pub.Marshal()) {
			return true
		}
	}
	return false
}

// exposedKeyMode reports whether a private key file's mode lets users other
// than its owner and group read it, or its group change it. Group read is
// fine: the kubelet makes Secret files 0440 (root:fsGroup) when the pod has
// an fsGroup, whatever defaultMode says, and the group is the pod's own.
func exposedKeyMode(m fs.FileMode) bool {
	return m.Perm()&0o027 != 0
}
