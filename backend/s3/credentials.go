package s3

import (
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/minio/minio-go/v7/pkg/credentials"
)

// iamEndpoint overrides where the IAM provider asks for instance, task or
// web-identity credentials; empty means minio-go's defaults (the EC2
// metadata address, ECS, or the regional STS). Tests point it at a closed
// loopback port so that nothing leaves the machine.
var iamEndpoint = ""

// newCredentials returns the credential chain restic uses and checks that
// it yields something, so that missing credentials are reported at Open
// instead of as an "access denied" on the first request.
func newCredentials(cfg Config, rt http.RoundTripper) (*credentials.Credentials, error) {
	if cfg.UnsafeAnonymousAuth {
		return credentials.New(&credentials.Static{}), nil
	}
	creds := credentials.NewChainCredentials([]credentials.Provider{
		&credentials.Static{Value: credentials.Value{
			AccessKeyID:     cfg.KeyID,
			SecretAccessKey: cfg.Secret,
			SessionToken:    cfg.SessionToken,
			SignerType:      credentials.SignatureV4,
		}},
		&credentials.EnvAWS{},
		&credentials.EnvMinio{},
		&credentials.FileAWSCredentials{},
		&credentials.FileMinioClient{},
		&credentials.IAM{Endpoint: iamEndpoint},
	})
	v, err := creds.GetWithContext(&credentials.CredContext{Client: &http.Client{Transport: rt}})
	if err != nil {
		return nil, fmt.Errorf("get credentials: %w", err)
	}
	if v.SignerType == credentials.SignatureAnonymous || v.AccessKeyID == "" && v.SecretAccessKey == "" {
		keyID, secret := os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
		switch {
		case keyID == "" && secret != "":
			return nil, errors.New("no credentials found: AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is empty")
		case keyID != "" && secret == "":
			return nil, errors.New("no credentials found: AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is empty")
		}
		return nil, errors.New("no credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, " +
			"AWS_PROFILE with a shared credentials file, or an IAM role; " +
			"use -o s3.unsafe-anonymous-auth=true for anonymous access")
	}
	return creds, nil
}
