package main

import (
	"errors"
	"time"

	"github.com/spf13/pflag"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/backup"
	"github.com/cairn-backup/cairn/sources"
	"github.com/cairn-backup/cairn/sources/stdin"
	"github.com/cairn-backup/cairn/sources/tar"
)

// tarFlags are backup's flags for tar streams.
type tarFlags struct {
	StdinTar      bool
	StdinTarPaths []string
}

func (t *tarFlags) add(f *pflag.FlagSet) {
	f.BoolVar(&t.StdinTar, "stdin-tar", false, "read a tar archive from stdin (or from --stdin-from-command) and store its members as files")
	f.StringArrayVar(&t.StdinTarPaths, "stdin-tar-path", nil, "snapshot `path` for --stdin-tar: a directory the archive holds (can be specified multiple times; default /)")
}

// checkTar refuses flags that make no sense with a tar stream.
func (o *backupOptions) checkTar(a *app, args []string) error {
	if !o.StdinTar {
		if len(o.StdinTarPaths) > 0 {
			return errors.New("--stdin-tar-path needs --stdin-tar")
		}
		return nil
	}
	switch {
	case o.Stdin:
		return errors.New("--stdin and --stdin-tar cannot be used together: --stdin stores the stream as one file, --stdin-tar as the files of an archive")
	case o.StdinFilename != stdin.DefaultFilename:
		return errors.New("--stdin-filename names the file of --stdin; with --stdin-tar the members keep their names (use --stdin-tar-path for the snapshot's paths)")
	case len(o.FilesFrom)+len(o.FilesFromVerbatim)+len(o.FilesFromRaw) > 0:
		return errors.New("--stdin-tar and --files-from cannot be used together")
	case len(args) > 0 && !o.StdinFromCommand:
		return errors.New("--stdin-tar was specified and files/dirs were listed as arguments (use --stdin-from-command to run a command)")
	case o.StdinFromCommand && len(args) == 0:
		return errors.New("--stdin-from-command needs the command to run as arguments")
	case a.password == "" && !o.StdinFromCommand:
		return errors.New("cannot read both password and data from stdin")
	}
	return nil
}

// tarSource builds the tar stream's source. Unlike --stdin, the backup
// uses a parent snapshot, and exclude patterns apply.
func (o *backupOptions) tarSource(a *app, r *repo.Repository, args []string, when time.Time, rep *backupReporter, bopts backup.Options) (sources.Source, backup.Options, error) {
	excl, err := o.filter(rep)
	if err != nil {
		return nil, bopts, err
	}
	bopts.Exclude = withoutCache(excl, r)
	bopts.Excludes = o.Excludes
	topts := tar.Options{Paths: o.StdinTarPaths, Time: when, Hostname: o.Host}
	if !o.StdinFromCommand {
		src, err := tar.New(a.stdin, topts)
		return src, bopts, err
	}
	name := args[0]
	topts.Stderr = func(line string) { rep.p.E("subprocess %s: %s", name, line) }
	src, err := tar.FromCommand(args, topts)
	return src, bopts, err
}
