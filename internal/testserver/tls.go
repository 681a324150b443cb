package testserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// CA is a throwaway certificate authority for TLS tests: servers get
// certificates for 127.0.0.1, ::1 and localhost, clients get certificates
// for client authentication. Nothing outside the test trusts it.
type CA struct {
	// CertFile is the PEM file of the CA certificate: what a client passes
	// as its custom root (restic's --cacert).
	CertFile string
	// Pool holds the CA certificate.
	Pool *x509.CertPool

	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	dir    string
	serial atomic.Int64
}

// NewCA creates a CA whose files live in a temporary directory of t.
func NewCA(t testing.TB) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testserver: generate CA key: %v", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "cairn test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("testserver: create CA certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("testserver: parse CA certificate: %v", err)
	}
	ca := &CA{cert: cert, key: key, dir: t.TempDir(), Pool: x509.NewCertPool()}
	ca.serial.Store(1)
	ca.Pool.AddCert(cert)
	ca.CertFile = ca.write(t, "ca.pem", pemBlock("CERTIFICATE", der))
	return ca
}

// ServerCert issues a server certificate for 127.0.0.1, ::1 and localhost
// and returns the PEM files of the certificate and of its key.
func (ca *CA) ServerCert(t testing.TB) (certFile, keyFile string) {
	t.Helper()
	certPEM, keyPEM, serial := ca.issue(t, "127.0.0.1", false)
	return ca.write(t, fmt.Sprintf("server-%d.pem", serial), certPEM),
		ca.write(t, fmt.Sprintf("server-%d-key.pem", serial), keyPEM)
}

// ClientCert issues a client certificate with common name cn and returns a
// single PEM file holding the certificate and its key, the format restic's
// --tls-client-cert takes.
func (ca *CA) ClientCert(t testing.TB, cn string) string {
	t.Helper()
	certPEM, keyPEM, serial := ca.issue(t, cn, true)
	return ca.write(t, fmt.Sprintf("client-%d.pem", serial), append(certPEM, keyPEM...))
}

// issue makes a certificate and key signed by ca and returns them as PEM
// with the certificate's serial number, which names the files.
func (ca *CA) issue(t testing.TB, cn string, client bool) (certPEM, keyPEM []byte, serial int64) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testserver: generate key: %v", err)
	}
	now := time.Now()
	serial = ca.serial.Add(1)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatalf("testserver: create certificate: %v", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("testserver: marshal key: %v", err)
	}
	return pemBlock("CERTIFICATE", der), pemBlock("PRIVATE KEY", keyDER), serial
}

func (ca *CA) write(t testing.TB, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(ca.dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatalf("testserver: write %s: %v", name, err)
	}
	return p
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
