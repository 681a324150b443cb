package sshtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/ssh"
)

// KeyType names a key algorithm for GenerateKey and Options.HostKeyTypes.
type KeyType string

// The key types tests can ask for. RSA keys take a noticeable fraction of a
// second to generate, so they are only made when asked for.
const (
	Ed25519 KeyType = "ed25519"
	ECDSA   KeyType = "ecdsa"
	RSA     KeyType = "rsa"
)

// Key is a generated private key written in OpenSSH format.
type Key struct {
	// Path is the private key file (mode 0600); Path+".pub" holds the public
	// key in authorized_keys format.
	Path   string
	Signer ssh.Signer

	private crypto.Signer
}

// PublicKey returns the public half of the key.
func (k Key) PublicKey() ssh.PublicKey { return k.Signer.PublicKey() }

// Fingerprint returns the key's "SHA256:…" fingerprint as ssh-keygen -l prints it.
func (k Key) Fingerprint() string { return ssh.FingerprintSHA256(k.Signer.PublicKey()) }

// GenerateKey makes a fresh key of type typ and writes it, unencrypted, to
// dir/name (0600) and dir/name.pub.
func GenerateKey(t testing.TB, dir, name string, typ KeyType) Key {
	t.Helper()
	k, err := generateKey(dir, name, typ, nil)
	if err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	return k
}

// GenerateEncryptedKey is GenerateKey with the private key file encrypted by
// passphrase, as ssh-keygen does when asked for one.
func GenerateEncryptedKey(t testing.TB, dir, name string, typ KeyType, passphrase string) Key {
	t.Helper()
	k, err := generateKey(dir, name, typ, []byte(passphrase))
	if err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	return k
}

func newPrivateKey(typ KeyType) (crypto.Signer, error) {
	switch typ {
	case Ed25519, "":
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	case ECDSA:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case RSA:
		return rsa.GenerateKey(rand.Reader, 2048)
	}
	return nil, fmt.Errorf("unknown key type %q", typ)
}

func generateKey(dir, name string, typ KeyType, passphrase []byte) (Key, error) {
	priv, err := newPrivateKey(typ)
	if err != nil {
		return Key{}, fmt.Errorf("generate %s key %s: %w", typ, name, err)
	}
	signer, err := ssh.NewSignerFromSigner(priv)
	if err != nil {
		return Key{}, fmt.Errorf("signer for %s key %s: %w", typ, name, err)
	}
	comment := "cairn-test-" + name
	var block *pem.Block
	if passphrase != nil {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, comment, passphrase)
	} else {
		block, err = ssh.MarshalPrivateKey(priv, comment)
	}
	if err != nil {
		return Key{}, fmt.Errorf("encode %s key %s: %w", typ, name, err)
	}
	path := filepath.Join(dir, name)
	if err := writeFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return Key{}, err
	}
	pub := ssh.MarshalAuthorizedKey(signer.PublicKey())
	if err := writeFile(path+".pub", pub, 0o644); err != nil {
		return Key{}, err
	}
	return Key{Path: path, Signer: signer, private: priv}, nil
}

// writeFile creates path with exactly perm (no umask surprises) and data.
func writeFile(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(path, perm)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
