package rest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"
)

// newTransport builds the HTTP transport Open uses when the caller brings
// none: net/http's defaults tuned like restic's (enough idle connections
// for Connections parallel requests, HTTP/2 when the server offers it),
// plus the root CAs, client certificate and Unix socket from cfg.
func newTransport(cfg Config) (*http.Transport, error) {
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   100,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: 1 * time.Second,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
	}
	if cfg.socket != "" {
		socket := cfg.socket
		tr.Proxy = nil
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, "unix", socket)
		}
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
