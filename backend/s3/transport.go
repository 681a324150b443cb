package s3

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"

	"github.com/minio/minio-go/v7"
)

// newTransport builds the transport Open uses when the caller brings none:
// minio-go's tuned default plus the root CAs and client certificate from
// cfg.
func newTransport(cfg Config) (*http.Transport, error) {
	tr, err := minio.DefaultTransport(!cfg.UseHTTP)
	if err != nil {
		return nil, fmt.Errorf("build HTTP transport: %w", err)
	}
	if tr.TLSClientConfig == nil {
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if len(cfg.RootCAFiles) > 0 {
		pool := x509.NewCertPool()
		for _, name := range cfg.RootCAFiles {
			data, err := os.ReadFile(name)
			if err != nil {
				return nil, fmt.Errorf("read root CA certificates: %w", err)
			}
			if !pool.AppendCertsFromPEM(data) {
				return nil, fmt.Errorf("read root CA certificates: no PEM certificate in %s", name)
			}
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	if cfg.ClientCertFile != "" {
		data, err := os.ReadFile(cfg.ClientCertFile)
		if err != nil {
			return nil, fmt.Errorf("read TLS client certificate: %w", err)
		}
		// One file holds both: X509KeyPair takes the CERTIFICATE blocks from
		// the first argument and the PRIVATE KEY block from the second.
		cert, err := tls.X509KeyPair(data, data)
		if err != nil {
			return nil, fmt.Errorf("load TLS client certificate and key from %s: %w", cfg.ClientCertFile, err)
		}
		tr.TLSClientConfig.Certificates = []tls.Certificate{cert}
	}
	return tr, nil
}
