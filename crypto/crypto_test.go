package crypto

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The worked example of the format spec (§2.4): a key file and config written
// by restic 0.18.1 with password "test".
func TestWorkedExample(t *testing.T) {
	if testing.Short() {
		t.Skip("scrypt with N=16384, p=5 takes a moment")
	}
	salt, _ := base64.StdEncoding.DecodeString("+4LbTAm+0xQts17ZLuo7wMYwDS3Y+saHDTbIo1PyXla/4u90jrkqQ/QvaPsIHv52I2EMQCRFfRJeV7BN6c67Ow==")
	data, _ := base64.StdEncoding.DecodeString("QFgJ95kFCgEXFrU9N1dvgjpiYuxRxVwhWOeNn5MTmBWBY0vrnV7l9IsW2U43BsqDNLQH3IpYSgaxsL8K9BABqVOGaujQkeRjSe6pcOCnJUHvVz2NtRRLdh9nTN8dDDYyKGNKMWZONNLQFUs6EW1mqhHZ7pFUuIIb4dF9mPumIWgP3UKPXHot62inzUDY3CxGHjZWlDPcMzdOpDejpYwiyA==")
	user, err := KDF(Params{N: 16384, R: 8, P: 5}, salt, "test")
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(user.Encrypt[:]); got != "cf9422c17dfd1c621042708793304e15ba8c6745c9f479e489f8cb699c17ee8a" {
		t.Fatalf("user encrypt key %s", got)
	}
	if got := hex.EncodeToString(user.MACK[:]); got != "4a272974943587e735fc42314b3de528" {
		t.Fatalf("user k %s", got)
	}
	plain, err := user.Open(nil, data)
	if err != nil {
		t.Fatalf("open key data: %v", err)
	}
	want := `{"mac":{"k":"ZVDRwG/+9YDhp0ZL23MHEQ==","r":"ZjIjyvyxlQTCKIWICFD6Ow=="},"encrypt":"H3Au6Zjthe07IXyF3LSZi7d3DhWYnD7XHIdUrxyWoT0="}`
	if string(plain) != want {
		t.Fatalf("master key JSON\n got %s\nwant %s", plain, want)
	}
	var master Key
	if err := json.Unmarshal(plain, &master); err != nil {
		t.Fatal(err)
	}
	reenc, err := json.Marshal(&master)
	if err != nil || string(reenc) != want {
		t.Fatalf("re-encoded master key %s, %v", reenc, err)
	}
	config := unhex(t, "5744b412ca0c63425cc16dde4b232f0af89ba463acde316acc8f48ef83dcb6ac35184e589b0827fae60dc6b7d49ad9084f7fdf6a93469c331a2517a0ec561477da021e0406a49e400236148271389e77f5033bb0a61df2eb4e4fe612188f33fae1dbc78b43d53ed0a069dbf3a744ade8fedb6706a682228f30f0c252d3ce326e8e58b230df51dfc0eb4b4db8d5d0610c25b6129a726203ace21ed2")
	cfg, err := master.OpenInPlace(config)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"version":2,"id":"aacce3f61cc8aa9cec1449b78b2b21d313095bda8dfaa0f7b46fa2adfea4e905","chunker_polynomial":"23e30c78ef838f"}`; string(cfg) != want {
		t.Fatalf("config %s", cfg)
	}
	// The wrong password must fail the MAC, not produce garbage.
	wrong, _ := KDF(Params{N: 16384, R: 8, P: 5}, salt, "Test")
	if _, err := wrong.Open(nil, data); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("wrong password: %v", err)
	}
}

func TestSealOpen(t *testing.T) {
	k := NewRandomKey()
	for _, n := range []int{0, 1, 15, 16, 17, 1000, 1 << 20} {
		pt := bytes.Repeat([]byte{0xa5}, n)
		box := k.Seal(nil, pt)
		if len(box) != n+Overhead {
			t.Fatalf("len %d: sealed %d bytes", n, len(box))
		}
		got, err := k.Open(nil, box)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("len %d: open %v", n, err)
		}
		// In place.
		cp := append([]byte(nil), box...)
		got, err = k.OpenInPlace(cp)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("len %d: open in place %v", n, err)
		}
		// Appending to a prefix keeps the prefix.
		prefixed := k.Seal([]byte("hdr"), pt)
		if string(prefixed[:3]) != "hdr" {
			t.Fatal("Seal lost dst prefix")
		}
	}
}

func TestOpenRejectsDamage(t *testing.T) {
	k := NewRandomKey()
	box := k.Seal(nil, []byte("hello, repository"))
	for i := range box {
		bad := append([]byte(nil), box...)
		bad[i] ^= 0x01
		if _, err := k.Open(nil, bad); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("flipped byte %d accepted: %v", i, err)
		}
	}
	for _, n := range []int{0, 1, 31} {
		if _, err := k.Open(nil, box[:n]); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("%d-byte box: %v", n, err)
		}
	}
	zeroIV := append(make([]byte, IVSize), box[IVSize:]...)
	if _, err := k.Open(nil, zeroIV); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("zero IV accepted: %v", err)
	}
	other := NewRandomKey()
	if _, err := other.Open(nil, box); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("other key accepted: %v", err)
	}
}

func TestIVsDiffer(t *testing.T) {
	k := NewRandomKey()
	a := k.Seal(nil, []byte("x"))
	b := k.Seal(nil, []byte("x"))
	if bytes.Equal(a[:IVSize], b[:IVSize]) {
		t.Fatal("two seals used the same IV")
	}
}

func TestMasterKeyJSONSizes(t *testing.T) {
	for _, s := range []string{
		`{"mac":{"k":"AAAA","r":"ZjIjyvyxlQTCKIWICFD6Ow=="},"encrypt":"H3Au6Zjthe07IXyF3LSZi7d3DhWYnD7XHIdUrxyWoT0="}`,
		`{"mac":{"k":"ZVDRwG/+9YDhp0ZL23MHEQ==","r":"ZjIjyvyxlQTCKIWICFD6Ow=="}}`,
		`not json`,
	} {
		var k Key
		if err := json.Unmarshal([]byte(s), &k); err == nil {
			t.Errorf("accepted %s", s)
		}
	}
}

func TestParamsValidate(t *testing.T) {
	for _, p := range []Params{{N: 0, R: 8, P: 1}, {N: 3, R: 8, P: 1}, {N: 1024, R: 0, P: 1}, {N: 1024, R: 8, P: 0}, {N: 1 << 30, R: 8, P: 1}} {
		if p.Validate() == nil {
			t.Errorf("%+v accepted", p)
		}
	}
	if _, err := KDF(TestParams, make([]byte, 32), "pw"); err == nil {
		t.Error("32-byte salt accepted")
	}
}

func FuzzOpen(f *testing.F) {
	k := NewRandomKey()
	valid := k.Seal(nil, []byte("seed"))
	f.Add(valid)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, box []byte) {
		// Anything but the one valid box must be rejected without a panic
		// (the chance of a valid MAC is 2^-128).
		if _, err := k.Open(nil, box); err == nil && !bytes.Equal(box, valid) {
			t.Fatal("random box accepted")
		}
	})
}

func BenchmarkSeal(b *testing.B) {
	k := NewRandomKey()
	pt := make([]byte, 1<<20)
	buf := make([]byte, 0, len(pt)+Overhead)
	b.SetBytes(int64(len(pt)))
	for b.Loop() {
		buf = k.Seal(buf[:0], pt)
	}
}

func BenchmarkOpen(b *testing.B) {
	k := NewRandomKey()
	box := k.Seal(nil, make([]byte, 1<<20))
	buf := make([]byte, 0, len(box))
	b.SetBytes(int64(len(box) - Overhead))
	for b.Loop() {
		var err error
		if buf, err = k.Open(buf[:0], box); err != nil {
			b.Fatal(err)
		}
	}
}
