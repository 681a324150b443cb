package s3

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/internal/testserver"
)

// TestWebIdentity follows the IRSA path of the credential chain: with
// AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN set and nothing else, the
// token is exchanged at STS (AssumeRoleWithWebIdentity) and the keys STS
// returns sign the requests to a real S3 server. STS is AWS's, so a small
// handler stands in for it; it hands out the server's root keys.
func TestWebIdentity(t *testing.T) {
	srv := testserver.S3Server(t, testserver.Versitygw, testserver.S3Options{})
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("projected-service-account-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	sts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if r.Form.Get("Action") != "AssumeRoleWithWebIdentity" ||
			r.Form.Get("WebIdentityToken") != "projected-service-account-token" ||
			r.Form.Get("RoleArn") != "arn:aws:iam::123456789012:role/backup" {
			t.Errorf("STS request %v", r.Form)
			http.Error(w, "unexpected request", http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, `<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
<AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>%s</AccessKeyId><SecretAccessKey>%s</SecretAccessKey>
<Expiration>2099-01-01T00:00:00Z</Expiration></Credentials></AssumeRoleWithWebIdentityResult>
</AssumeRoleWithWebIdentityResponse>`, srv.AccessKey, srv.SecretKey)
	}))
	defer sts.Close()
	old := iamEndpoint
	iamEndpoint = sts.URL
	t.Cleanup(func() { iamEndpoint = old })
	t.Setenv("AWS_WEB_IDENTITY_TOKEN_FILE", tokenFile)
	t.Setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/backup")

	cfg := config(t, srv, "irsa", "r")
	cfg.KeyID, cfg.Secret = "", ""
	be := create(t, cfg)
	data := []byte("signed with web identity credentials")
	h := backend.Handle{Type: backend.ConfigFile}
	if err := be.Save(t.Context(), h, backend.NewByteReader(data, false)); err != nil {
		t.Fatalf("Save with web identity credentials: %v", err)
	}
	if got, err := backend.LoadAll(t.Context(), be, h); err != nil || string(got) != string(data) {
		t.Fatalf("Load: %v", err)
	}
	if calls.Load() == 0 {
		t.Fatal("STS was never asked")
	}
}
