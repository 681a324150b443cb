// Package dump writes what a snapshot holds the way `restic dump` does: a
// file's content as plain bytes, a directory as a tar or zip archive.
//
// The archives are built with the same standard-library writers and the
// same headers as restic 0.19.1 builds them, so for the same tree they are
// byte for byte the same: entry names relative to the dumped directory
// (directories end in "/"), permission and setuid/setgid/sticky bits, uid,
// gid, user and group names, the three times, extended attributes as PAX
// "SCHILY.xattr." records and Linux POSIX ACLs as "SCHILY.acl." text.
// Below the top level only files, directories and symlinks are archived;
// hard links are written as separate files with their full content.
package dump
