package sshx

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// ErrHostKey is wrapped by every host key rejection (unknown, changed or
// revoked key, fingerprint mismatch). Such errors are permanent: retrying
// cannot help, and must not.
var ErrHostKey error = &permanentError{msg: "ssh host key verification failed"}

// ErrAuth is wrapped by the error for a server that accepted none of the
// offered credentials. Retrying with the same credentials cannot help.
var ErrAuth error = &permanentError{msg: "authentication failed"}

// permanentError is a sentinel that tells retrying layers (which look for a
// Permanent method, see backend.IsPermanent) to give up at once.
type permanentError struct{ msg string }

func (e *permanentError) Error() string { return e.msg }

// Permanent reports true: the error does not go away by trying again.
func (e *permanentError) Permanent() bool { return true }

// KnownHostKey is a key listed in a known_hosts file.
type KnownHostKey struct {
	File string
	Line int
	Key  ssh.PublicKey
}

func (k KnownHostKey) String() string {
	return fmt.Sprintf("%s:%d: %s %s", k.File, k.Line, k.Key.Type(), ssh.FingerprintSHA256(k.Key))
}

// UnknownHostKeyError means no known_hosts file lists a key for the host.
type UnknownHostKeyError struct {
	// Host is the name as known_hosts files write it ("host" or "[host]:port").
	Host string
	// Key is the key the server presented.
	Key ssh.PublicKey
	// Files are the known_hosts files searched.
	Files []string
	// AddCommand is a shell command that appends the server's key to the
	// first user known_hosts file. Run it only after checking the
	// fingerprint: it trusts whatever answers on the network.
	AddCommand string
}

func (e *UnknownHostKeyError) Error() string {
	searched := "no known_hosts file exists"
	if len(e.Files) > 0 {
		searched = "searched " + strings.Join(e.Files, ", ")
	}
	return fmt.Sprintf("ssh: host key verification failed for %s: the host is not in known_hosts (%s). "+
		"The server presented the %s key %s. cairn never trusts an unknown host key: compare this fingerprint "+
		"with the server's own (on the server: ssh-keygen -lf /etc/ssh/ssh_host_%s_key.pub), then add the key with\n"+
		"    %s\nor pin the fingerprint %s instead",
		e.Host, searched, e.Key.Type(), ssh.FingerprintSHA256(e.Key), keyscanType(e.Key),
		e.AddCommand, ssh.FingerprintSHA256(e.Key))
}

// Unwrap returns ErrHostKey.
func (e *UnknownHostKeyError) Unwrap() error { return ErrHostKey }

// ChangedHostKeyError means known_hosts lists keys for the host but the
// server presented a different one: a man-in-the-middle, or a reinstalled
// server.
type ChangedHostKeyError struct {
	Host  string
	Key   ssh.PublicKey
	Known []KnownHostKey
}

func (e *ChangedHostKeyError) Error() string {
	known := make([]string, len(e.Known))
	for i, k := range e.Known {
		known[i] = k.String()
	}
	file := "~/.ssh/known_hosts"
	if len(e.Known) > 0 {
		file = e.Known[0].File
	}
	return fmt.Sprintf("ssh: @@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED for %s @@@ "+
		"The server presented the %s key %s, but known_hosts lists different keys for it (%s). "+
		"Someone could be intercepting the connection (a man-in-the-middle attack), or the server's host key "+
		"was replaced. cairn refuses to connect. If the change is legitimate, remove the old entry with "+
		"ssh-keygen -R '%s' -f %s and add the new key",
		e.Host, e.Key.Type(), ssh.FingerprintSHA256(e.Key), strings.Join(known, "; "), e.Host, file)
}

// Unwrap returns ErrHostKey.
func (e *ChangedHostKeyError) Unwrap() error { return ErrHostKey }

// RevokedHostKeyError means the presented key is marked @revoked.
type RevokedHostKeyError struct {
	Host    string
	Revoked KnownHostKey
}

func (e *RevokedHostKeyError) Error() string {
	return fmt.Sprintf("ssh: host key verification failed for %s: the server presented the key %s, which is marked @revoked in %s:%d",
		e.Host, ssh.FingerprintSHA256(e.Revoked.Key), e.Revoked.File, e.Revoked.Line)
}

// Unwrap returns ErrHostKey.
func (e *RevokedHostKeyError) Unwrap() error { return ErrHostKey }

// FingerprintMismatchError means no host key the server offered matches a
// pinned fingerprint.
type FingerprintMismatchError struct {
	Host      string
	Pinned    []string
	Presented []ssh.PublicKey
}

func (e *FingerprintMismatchError) Error() string {
	got := make([]string, len(e.Presented))
	for i, k := range e.Presented {
		got[i] = k.Type() + " " + ssh.FingerprintSHA256(k)
	}
	return fmt.Sprintf("ssh: host key verification failed for %s: the server's host keys (%s) match none of the pinned fingerprints (%s). "+
		"Someone could be intercepting the connection, or the server's host key was replaced; cairn refuses to connect",
		e.Host, strings.Join(got, ", "), strings.Join(e.Pinned, ", "))
}

// Unwrap returns ErrHostKey.
func (e *FingerprintMismatchError) Unwrap() error { return ErrHostKey }

// hostKeyVerifier checks the server's key against pinned fingerprints or
// known_hosts files.
type hostKeyVerifier struct {
	pins     []string
	db       ssh.HostKeyCallback // nil: no known_hosts file exists
	files    []string            // the files searched, as the user named them
	tempMap  map[string]string   // sanitised copy -> original file name
	name     string              // host name for known_hosts lookups
	port     int
	dialHost string
	addFile  string // where AddCommand appends
}

// normalizeFingerprint accepts "SHA256:<base64>" with or without padding.
func normalizeFingerprint(fp string) (string, error) {
	fp = strings.TrimSpace(fp)
	prefix, b64, ok := strings.Cut(fp, ":")
	if !ok || !strings.EqualFold(prefix, "SHA256") {
		return "", fmt.Errorf("host key fingerprint %q: want the SHA256:… form that ssh-keygen -lf prints", fp)
	}
	b64 = strings.TrimRight(b64, "=")
	raw, err := base64.RawStdEncoding.DecodeString(b64)
	if err != nil || len(raw) != 32 {
		return "", fmt.Errorf("host key fingerprint %q: not a base64 SHA-256 digest", fp)
	}
	return "SHA256:" + b64, nil
}

// lookupAddr is the address known_hosts entries are matched against.
func (v *hostKeyVerifier) lookupAddr() string {
	return net.JoinHostPort(v.name, strconv.Itoa(v.port))
}

// check is the ssh.HostKeyCallback. hostname is ignored in favour of the
// configured lookup name (HostKeyAlias or HostName) and port.
func (v *hostKeyVerifier) check(_ string, remote net.Addr, key ssh.PublicKey) error {
	host := knownhosts.Normalize(v.lookupAddr())
	if len(v.pins) > 0 {
		fps := []string{ssh.FingerprintSHA256(key)}
		if cert, ok := key.(*ssh.Certificate); ok {
			fps = append(fps, ssh.FingerprintSHA256(cert.Key))
		}
		for _, fp := range fps {
			if slices.Contains(v.pins, fp) {
				return nil
			}
		}
		return &FingerprintMismatchError{Host: host, Pinned: v.pins, Presented: []ssh.PublicKey{key}}
	}
	if v.db == nil {
		return v.unknown(host, key)
	}
	err := v.db(v.lookupAddr(), remote, key)
	var keyErr *knownhosts.KeyError
	var revErr *knownhosts.RevokedError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &revErr):
		return &RevokedHostKeyError{Host: host, Revoked: v.known(revErr.Revoked)}
	case errors.As(err, &keyErr) && len(keyErr.Want) == 0:
		return v.unknown(host, key)
	case errors.As(err, &keyErr):
		e := &ChangedHostKeyError{Host: host, Key: key}
		for _, k := range keyErr.Want {
			e.Known = append(e.Known, v.known(k))
		}
		return e
	}
	// A certificate signed by no trusted authority, or similar.
	return fmt.Errorf("ssh: host key verification failed for %s (%s key %s): %w: %v",
		host, key.Type(), ssh.FingerprintSHA256(key), ErrHostKey, err)
}

func (v *hostKeyVerifier) known(k knownhosts.KnownKey) KnownHostKey {
	file := k.Filename
	if orig, ok := v.tempMap[file]; ok {
		file = orig
	}
	return KnownHostKey{File: file, Line: k.Line, Key: k.Key}
}

func (v *hostKeyVerifier) unknown(host string, key ssh.PublicKey) error {
	port := ""
	if v.port != 22 {
		port = "-p " + strconv.Itoa(v.port) + " "
	}
	cmd := fmt.Sprintf("ssh-keyscan %s-t %s %s >> %s", port, keyscanType(key), v.dialHost, shellQuote(v.addFile))
	if v.name != v.dialHost {
		// ssh-keyscan would write the dialled name, not the HostKeyAlias.
		cmd = fmt.Sprintf("echo %s >> %s", shellQuote(knownhosts.Line([]string{host}, key)), shellQuote(v.addFile))
	}
	return &UnknownHostKeyError{Host: host, Key: key, Files: v.files, AddCommand: cmd}
}

// keyscanType maps a key to ssh-keyscan's -t name ("ed25519", "ecdsa", …).
func keyscanType(k ssh.PublicKey) string {
	t := k.Type()
	if c, ok := k.(*ssh.Certificate); ok {
		t = c.Key.Type()
	}
	switch {
	case t == ssh.KeyAlgoED25519:
		return "ed25519"
	case strings.HasPrefix(t, "ecdsa-"):
		return "ecdsa"
	case t == ssh.KeyAlgoRSA:
		return "rsa"
	case t == ssh.KeyAlgoDSA:
		return "dsa"
	}
	return t
}

func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+:@~") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// probeKey is a key nobody has in known_hosts: checking it returns the
// keys that are listed for a host.
var probeKey, _ = ssh.NewPublicKey(ed25519.PublicKey(make([]byte, ed25519.PublicKeySize)))

// knownKeyTypes returns the key types known_hosts lists for the host.
func (v *hostKeyVerifier) knownKeyTypes() []string {
	if v.db == nil || len(v.pins) > 0 {
		return nil
	}
	err := v.db(v.lookupAddr(), &net.TCPAddr{IP: net.IPv4zero}, probeKey)
	var keyErr *knownhosts.KeyError
	if !errors.As(err, &keyErr) {
		return nil
	}
	var types []string
	for _, k := range keyErr.Want {
		if !slices.Contains(types, k.Key.Type()) {
			types = append(types, k.Key.Type())
		}
	}
	return types
}

// algorithmsFor maps a key type to the host key algorithms that present
// such a key, certificates first.
func algorithmsFor(keyType string) []string {
	switch keyType {
	case ssh.KeyAlgoRSA:
		return []string{ssh.CertAlgoRSASHA512v01, ssh.CertAlgoRSASHA256v01, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}
	case ssh.KeyAlgoED25519:
		return []string{ssh.CertAlgoED25519v01, ssh.KeyAlgoED25519}
	case ssh.KeyAlgoECDSA256:
		return []string{ssh.CertAlgoECDSA256v01, ssh.KeyAlgoECDSA256}
	case ssh.KeyAlgoECDSA384:
		return []string{ssh.CertAlgoECDSA384v01, ssh.KeyAlgoECDSA384}
	case ssh.KeyAlgoECDSA521:
		return []string{ssh.CertAlgoECDSA521v01, ssh.KeyAlgoECDSA521}
	}
	return nil
}

// keyTypeOf returns the plain key type of k (the signed key's for a
// certificate).
func keyTypeOf(k ssh.PublicKey) string {
	if c, ok := k.(*ssh.Certificate); ok {
		return c.Key.Type()
	}
	return k.Type()
}

// hostKeyAlgorithms orders the client's host key algorithms: those of keys
// known_hosts lists for the host first (so a server with several keys
// presents a known one), then the rest in x/crypto's order. With pinned
// fingerprints, ed25519 comes first, then ECDSA and RSA. Algorithms for the
// key types in exclude are left out (used to ask a server for its other
// keys when a pin did not match).
func (v *hostKeyVerifier) hostKeyAlgorithms(exclude []string) []string {
	base := ssh.SupportedAlgorithms().HostKeys
	var first []string
	if len(v.pins) > 0 {
		for _, t := range []string{ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521, ssh.KeyAlgoRSA} {
			algos := algorithmsFor(t)
			first = append(first, algos[1:]...) // plain keys before certificates
			first = append(first, algos[0])
		}
	} else {
		for _, t := range v.knownKeyTypes() {
			first = append(first, algorithmsFor(t)...)
		}
	}
	var out []string
	for _, a := range append(first, base...) {
		if !slices.Contains(base, a) || slices.Contains(out, a) {
			continue
		}
		if slices.ContainsFunc(exclude, func(t string) bool { return slices.Contains(algorithmsFor(t), a) }) {
			continue
		}
		out = append(out, a)
	}
	return out
}
