package main

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/spf13/cobra"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
)

const keyExitStatus = `
` + exitStatusHelp

func newKeyCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Manage keys (passwords)",
		Long: `
The "key" command allows you to set multiple access keys or passwords
per repository.
`,
		DisableAutoGenTag: true,
	}
	cmd.AddCommand(newKeyListCommand(a), newKeyAddCommand(a), newKeyRemoveCommand(a), newKeyPasswdCommand(a))
	return cmd
}

// keyListJSON is one entry of `key list --json`, shaped like restic's.
type keyListJSON struct {
	Current  bool   `json:"current"`
	ID       string `json:"id"`
	UserName string `json:"userName"`
	HostName string `json:"hostName"`
	Created  string `json:"created"`
}

func newKeyListCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List keys (passwords)",
		Long: `
The "key list" command lists all the keys (passwords) associated with the
repository: the key ID, username, hostname, created time and whether it is
the key used to open the repository now.
` + keyExitStatus,
		DisableAutoGenTag: true,
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return errors.New("the key list command expects no arguments, only options - please see `cairn help key list` for usage and flags")
			}
			ctx, r, done, err := a.openLocked(c.Context(), false, true)
			if err != nil {
				return err
			}
			defer done()
			return listKeys(ctx, a, r)
		},
	}
}

func listKeys(ctx context.Context, a *app, r *repo.Repository) error {
	keys, err := r.Keys(ctx)
	if err != nil {
		return err
	}
	out := []keyListJSON{}
	for _, k := range keys {
		if k.Created.IsZero() && k.Username == "" && k.Hostname == "" {
			a.printer().E("LoadKey() failed: key %s cannot be read", k.ID.Str())
			continue
		}
		out = append(out, keyListJSON{
			Current: k.Current, ID: k.ID.String(), UserName: k.Username, HostName: k.Hostname,
			Created: k.Created.Local().Format(timeFormat),
		})
	}
	if a.gopts.JSON {
		return a.term.printJSON(out)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created < out[j].Created })
	t := &table{headers: []string{" ID", "User", "Host", "Created"}}
	for _, k := range out {
		mark := " "
		if k.Current {
			mark = "*"
		}
		t.addRow(mark+k.ID[:8], k.UserName, k.HostName, k.Created)
	}
	return a.term.printTable(t)
}

// keyAddOptions are the flags of `key add` and `key passwd`.
type keyAddOptions struct {
	NewPasswordFile string
	Username        string
	Hostname        string
}

func (o *keyAddOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.NewPasswordFile, "new-password-file", "", "`file` from which to read the new password")
	f.StringVar(&o.Username, "user", "", "the username for new key")
	f.StringVar(&o.Hostname, "host", "", "the hostname for new key")
}

func newKeyAddCommand(a *app) *cobra.Command {
	var opts keyAddOptions
	cmd := &cobra.Command{
		Use:   "add",
		Short: "Add a new key (password) to the repository; returns the new key ID",
		Long: `
The "key add" command creates a new key and validates it. Returns the new key ID.
` + keyExitStatus,
		DisableAutoGenTag: true,
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return errors.New("the key add command expects no arguments, only options - please see `cairn help key add` for usage and flags")
			}
			ctx, r, done, err := a.openLocked(c.Context(), false, false)
			if err != nil {
				return err
			}
			defer done()
			id, err := addKey(ctx, a, r, opts)
			if err != nil {
				return err
			}
			a.printer().P("saved new key with ID %s", id)
			return nil
		},
	}
	opts.addFlags(cmd)
	return cmd
}

func newKeyPasswdCommand(a *app) *cobra.Command {
	var opts keyAddOptions
	cmd := &cobra.Command{
		Use:   "passwd",
		Short: "Change key (password); creates a new key ID and removes the old key ID, returns new key ID",
		Long: `
The "key passwd" command creates a new key, validates it and removes the old
key. Returns the new key ID.
` + keyExitStatus,
		DisableAutoGenTag: true,
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return errors.New("the key passwd command expects no arguments, only options - please see `cairn help key passwd` for usage and flags")
			}
			ctx, r, done, err := a.openLocked(c.Context(), true, false)
			if err != nil {
				return err
			}
			defer done()
			old := r.KeyID()
			id, err := addKey(ctx, a, r, opts)
			if err != nil {
				return err
			}
			if err := r.Backend().Remove(ctx, backend.Handle{Type: backend.KeyFile, Name: old.String()}); err != nil {
				return fmt.Errorf("new key %s saved, but removing the old key %s failed: %w", id.Str(), old.Str(), err)
			}
			a.printer().P("saved new key as %s", id)
			return nil
		},
	}
	opts.addFlags(cmd)
	return cmd
}

// addKey asks for the new password, stores a key for it and checks that
// the key opens the repository; a key that does not is removed again, so
// that a broken key can never be the only way in.
func addKey(ctx context.Context, a *app, r *repo.Repository, opts keyAddOptions) (blob.ID, error) {
	pw, err := a.newPassword(ctx, opts.NewPasswordFile)
	if err != nil {
		return blob.ID{}, err
	}
	id, err := r.AddKey(ctx, pw, repo.KeyOptions{Username: opts.Username, Hostname: opts.Hostname})
	if err != nil {
		return blob.ID{}, fmt.Errorf("creating new key failed: %w", err)
	}
	check, err := repo.Open(ctx, r.Backend(), pw, repo.Options{KeyHint: id.String()})
	if err == nil && check.KeyID() != id {
		err = fmt.Errorf("the new password opened key %s instead", check.KeyID().Str())
	}
	if err != nil {
		_ = r.RemoveKey(context.WithoutCancel(ctx), id)
		return blob.ID{}, fmt.Errorf("failed to access repository with new key: %w", err)
	}
	return id, nil
}

// newPassword reads the new password from --new-password-file (trimmed
// like --password-file) or asks for it twice.
func (a *app) newPassword(ctx context.Context, file string) (string, error) {
	if file != "" {
		pw, err := loadPasswordFile(file)
		if err != nil {
			return "", err
		}
		if pw == "" {
			return "", fmt.Errorf("%w (in %s)", errEmptyPassword, file)
		}
		return pw, nil
	}
	return a.promptPasswordTwice(ctx, "enter new password: ", "enter password again: ")
}

func newKeyRemoveCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "remove [ID]",
		Short: "Remove key ID (password) from the repository",
		Long: `
The "key remove" command removes the selected key ID. It does not allow
removing the key currently used to access the repository.
` + keyExitStatus,
		DisableAutoGenTag: true,
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) != 1 {
				return errors.New("key remove expects one argument as the key id")
			}
			ctx, r, done, err := a.openLocked(c.Context(), true, false)
			if err != nil {
				return err
			}
			defer done()
			id, err := r.FindID(ctx, backend.KeyFile, args[0])
			if err != nil {
				return err
			}
			if id == r.KeyID() {
				return errors.New("refusing to remove key currently used to access repository")
			}
			if err := r.RemoveKey(ctx, id); err != nil {
				return err
			}
			a.printer().P("removed key %s", id)
			return nil
		},
	}
}
