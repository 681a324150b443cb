// Package local stores a repository in a directory, in exactly the layout and
// with the file modes restic's local backend uses, so that restic and cairn
// can share one repository directory:
//
//	config
//	keys/<id>  locks/<id>  snapshots/<id>  index/<id>
//	data/00/<id> … data/ff/<id>
//
// Create makes every directory up front (including all 256 data/XX), mode
// 0700. Files are written atomically: the data goes to a temporary
// "<final name>-tmp-<random>" in the target directory, which is preallocated,
// written, made read-only (0400), synced and closed, then renamed onto its
// final name, and the directory is synced so that the rename survives a
// crash. A failed write, a full disk or a cancelled context leaves nothing
// under the final name and removes the temporary file. If the repository's
// config is group-readable, new directories get 0770 and files 0440 instead,
// as restic does for repositories shared by a group.
//
// List skips names that are not 64 lowercase hex characters (temporary files
// of running or crashed writers) and treats missing directories as empty.
package local
