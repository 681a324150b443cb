package repo

import (
	"encoding/json"
	"testing"

	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/repo/blob"
)

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"version":2,"id":"aaefcffd6371fdd48d84c50e6ce7973aea19a1a4c5a07ed17c83746221f267c0","chunker_polynomial":"344bbe08a3c153"}`))
	f.Add([]byte(`{"version":1,"id":"x","chunker_polynomial":"0"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := parseConfig(data)
		if err != nil {
			return
		}
		out, err := cfg.marshal()
		if err != nil {
			t.Fatal(err)
		}
		again, err := parseConfig(out)
		if err != nil || again != cfg {
			t.Fatalf("config does not survive a round trip: %v", err)
		}
	})
}

func FuzzKeyFile(f *testing.F) {
	f.Add([]byte(`{"created":"2026-11-22T04:54:59.988853215Z","username":"root","hostname":"vm","kdf":"scrypt","N":1024,"r":1,"p":1,"salt":"Yv1L1dbQImm05F9DxjcuyyQsNCN3c9/gIdjw77RSmVw2gJKciBqWp47HIVBbXt6408ypOgVVhtkk8cZjCmdGvA==","data":"AAAA"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var kf keyFile
		if json.Unmarshal(data, &kf) != nil {
			return
		}
		// Keep the KDF cheap: the fuzzer must not make us allocate
		// gigabytes (Validate refuses that) or spin for seconds.
		if kf.N > 4096 || kf.R > 8 || kf.P > 4 {
			return
		}
		_, _ = openKeyFile(&kf, blob.ID{}, "password")
	})
}

func FuzzSnapshot(f *testing.F) {
	f.Add([]byte(`{"time":"2024-01-02T03:04:05Z","tree":"2bcd23f92b1cf371067607fff4f6cf242a5d4c5b6b4bb7c9af002fc5386b56cf","paths":["/srv"],"hostname":"h","summary":{"files_new":1}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var sn Snapshot
		if json.Unmarshal(data, &sn) != nil {
			return
		}
		if _, err := json.Marshal(&sn); err != nil {
			// Times outside year 0..9999 cannot be written back; that is
			// the only tolerated failure.
			if sn.Time.Year() >= 0 && sn.Time.Year() <= 9999 && (sn.Summary == nil || sn.Summary.BackupStart.Year() >= 0 && sn.Summary.BackupStart.Year() <= 9999 && sn.Summary.BackupEnd.Year() >= 0 && sn.Summary.BackupEnd.Year() <= 9999) {
				t.Fatal(err)
			}
		}
	})
}

// FuzzUnpacked feeds arbitrary plaintexts through the unpacked-file
// decoding (format byte, zstd) after a valid MAC.
func FuzzUnpacked(f *testing.F) {
	key := crypto.NewRandomKey()
	r := &Repository{key: key, cfg: Config{Version: 2}}
	f.Add([]byte(`{"packs":[]}`))
	f.Add(append([]byte{2}, 0x28, 0xb5, 0x2f, 0xfd, 0, 0x58, 0x11, 0, 0))
	f.Fuzz(func(t *testing.T, plain []byte) {
		_, _ = r.decodeUnpacked(key.Seal(nil, plain))
	})
}
