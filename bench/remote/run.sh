#!/usr/bin/env bash
# bench/remote/run.sh — issue 4 item 6: backing up a remote tree over SSH, in
# one run, three ways, against a real OpenSSH sshd on 127.0.0.1:
#   (a) ssh host "tar -cf - dir" | restic backup --stdin      (the seed pipeline)
#   (b) cairn backup sftp://user@host:port/dir                 (file by file)
#   (c) cairn backup --stdin-tar --stdin-from-command -- ssh host tar -cf - dir
# plus the baseline ssh host "tar -cf - dir" | cat. Each for the first run, an
# unchanged re-run and a re-run after bench/gen -kind change (1 % of the files
# rewritten; reverted at the end). Reported per step: wall time, client CPU
# (user+sys of the pipeline, ssh client included), peak RSS of the largest
# process, bytes read on the remote side, repository growth. Then the time
# to restore one file.
#
# Bytes read on the remote side: sshd runs every session through a wrapper
# (ForceCommand) that runs the requested command (tar, or sftp-server for the
# SFTP subsystem), waits for it and appends its own /proc/self/io to a log.
# Linux adds a reaped child's I/O counters to its parent's, so the wrapper's
# rchar is what tar or sftp-server read (files, plus SFTP requests from the
# channel, which are small). Summed over all sessions of a step.
#
# Usage (root, from the module root):
#   nice -n -15 bench/remote/run.sh [WORK]      (default /var/tmp/cairn-remote)
set -euo pipefail
WORK=${1:-/var/tmp/cairn-remote}
ROOT=$(git rev-parse --show-toplevel)
cd "$ROOT"
. bench/remote/sshd.sh
mkdir -p "$WORK/bin" "$WORK/ssh"
WORK=$(cd "$WORK" && pwd)
go build -o "$WORK/bin/cairn" ./cmd/cairn
go build -o "$WORK/bin/gen" ./bench/gen
CAIRN=$WORK/bin/cairn GEN=$WORK/bin/gen
RESTIC=$(scripts/build-tool restic | tail -1)
DATA=$WORK/data/app
if [ ! -e "$WORK/data/app.complete" ]; then
	rm -rf "$DATA" "$WORK/save"
	"$GEN" -kind mixed -out "$DATA"
	touch "$WORK/data/app.complete"
fi
if [ -d "$WORK/save" ]; then "$GEN" -kind revert -out "$DATA" -save "$WORK/save"; rm -rf "$WORK/save"; fi
TREE_BYTES=$(du -sb --apparent-size "$DATA" | cut -f1)
TREE_FILES=$(find "$DATA" -type f | wc -l)

# --- sshd ------------------------------------------------------------------
S=$WORK/ssh
rm -f "$S"/*
PORT=$((20000 + RANDOM % 20000))
IOLOG=$S/io.log
cat > "$S/wrap.sh" <<W
#!/bin/sh
case "\$SSH_ORIGINAL_COMMAND" in
""|internal-sftp|*sftp-server*) /usr/lib/openssh/sftp-server -e 2>/dev/null ;;
*) sh -c "\$SSH_ORIGINAL_COMMAND" ;;
esac
rc=\$?
awk '/^(rchar|read_bytes):/ {printf "%s %s ", \$1, \$2} END {print ""}' /proc/\$\$/io >> $IOLOG
exit \$rc
W
chmod 755 "$S/wrap.sh"
start_sshd "$S" "$PORT" "ForceCommand $S/wrap.sh"
trap 'kill $SSHD_PID 2>/dev/null || true' EXIT
echo "[127.0.0.1]:$PORT $(cat "$S/host_key.pub")" > "$S/known_hosts"
SSH="ssh -F /dev/null -i $S/user_key -p $PORT -o UserKnownHostsFile=$S/known_hosts -o StrictHostKeyChecking=yes -o BatchMode=yes -c aes128-gcm@openssh.com root@127.0.0.1"
for _ in $(seq 50); do $SSH true 2>/dev/null && break; sleep 0.2; done
: > "$IOLOG"
SFTPOPTS="-o sftp.key=$S/user_key -o sftp.known-hosts=$S/known_hosts"
REL=${DATA#/}

export RESTIC_PASSWORD=bench
REPO_A=$WORK/repo-a REPO_B=$WORK/repo-b REPO_C=$WORK/repo-c REPO_L=$WORK/repo-l
rm -rf "$REPO_A" "$REPO_B" "$REPO_C" "$REPO_L" "$WORK/cache" "$WORK/restore"
export RESTIC_CACHE_DIR=$WORK/cache
for r in "$REPO_A" "$REPO_B" "$REPO_C" "$REPO_L"; do "$RESTIC" -q -r "$r" init --repository-version 2 >/dev/null; done

warm() { tar -C / -cf - "$REL" | cat > /dev/null; for r in "$@"; do [ -d "$r" ] && tar -cf - "$r" 2>/dev/null | cat >/dev/null; done; true; }

# run NAME REPO CMD: one timed step. Prints a table row and logs it.
OUT=$WORK/results.md
LOG=$WORK/results.log
run() {
	local name=$1 repo=$2 phase=$3; shift 3
	warm "$repo"
	local before=0
	[ -n "$repo" ] && before=$(du -sb "$repo" | cut -f1)
	: > "$IOLOG"
	/usr/bin/time -f "%e %U %S %M" -o "$WORK/time.out" bash -c "$*" >>"$LOG" 2>&1 || { echo "FAILED: $name $phase: $*" | tee -a "$LOG"; tail -5 "$LOG"; exit 1; }
	sleep 0.3 # the wrapper's log line follows the session's end
	local after=0 growth="—"
	if [ -n "$repo" ]; then after=$(du -sb "$repo" | cut -f1); growth=$(awk -v d=$((after - before)) 'BEGIN{printf "%.1f MiB", d/1048576}'); fi
	read -r wall usr sys rss < "$WORK/time.out"
	local rchar
	rchar=$(awk '{for (i=1;i<NF;i++) if ($i=="rchar:") s+=$(i+1)} END {printf "%.0f", s}' "$IOLOG")
	local sessions
	sessions=$(wc -l < "$IOLOG")
	printf '| %s | %s | %.2f s | %.1f s | %d MiB | %.1f MB/s | %.1f MB (%.2f %%, %d sessions) | %s |\n' \
		"$phase" "$name" "$wall" "$(echo "$usr + $sys" | bc)" $((rss / 1024)) \
		"$(echo "$TREE_BYTES / $wall / 1000000" | bc -l)" "$(echo "$rchar / 1000000" | bc -l)" \
		"$(echo "100 * $rchar / $TREE_BYTES" | bc -l)" "$sessions" "$growth" | tee -a "$OUT"
	echo "$phase $name wall=$wall usr=$usr sys=$sys rss=$rss rchar=$rchar growth=$((after - before))" >> "$LOG"
}

A="$SSH 'tar -C / -cf - $REL' | $RESTIC -r $REPO_A backup -q --host kvm1 --stdin --stdin-filename app.tar"
B="$CAIRN -r $REPO_B backup -q $SFTPOPTS sftp://root@127.0.0.1:$PORT$DATA"
C="$CAIRN -r $REPO_C backup -q --host kvm1 --stdin-tar --stdin-tar-path $DATA --stdin-from-command -- $SSH tar -C / -cf - $REL"
# Reference: the same tree backed up locally, no SSH: what compression and
# the rest of the pipeline cost on this machine under its current load.
LOCAL="$CAIRN -r $REPO_L backup -q --host kvm1 $DATA"
BASE="$SSH 'tar -C / -cf - $REL' | cat > /dev/null"

{
echo "Run of $(date -u '+%Y-%m-%d %H:%M') UTC, commit $(git rev-parse --short HEAD), tree $DATA: $TREE_FILES files, $(echo "$TREE_BYTES / 1000000" | bc) MB; load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| run | pipeline | wall | client CPU | peak RSS | tree MB / wall | read on the remote side | repo growth |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
} | tee "$OUT"
: > "$LOG"

run "ssh tar \| cat (baseline)" "" "first" "$BASE"
run "(a) ssh tar \| restic --stdin" "$REPO_A" "first" "$A"
run "(b) cairn sftp://" "$REPO_B" "first" "$B"
run "(c) ssh tar \| cairn --stdin-tar" "$REPO_C" "first" "$C"
run "ssh tar \| cat (baseline)" "" "first" "$BASE"
run "(ref) local cairn backup, no SSH" "$REPO_L" "first" "$LOCAL"

run "(c) ssh tar \| cairn --stdin-tar" "$REPO_C" "unchanged" "$C"
run "(b) cairn sftp://" "$REPO_B" "unchanged" "$B"
run "(a) ssh tar \| restic --stdin" "$REPO_A" "unchanged" "$A"

"$GEN" -kind change -out "$DATA" -save "$WORK/save"
CHANGED=$(du -sb --apparent-size "$WORK/save" | cut -f1)
CHANGED_FILES=$(find "$WORK/save" -type f | wc -l)
run "(b) cairn sftp://" "$REPO_B" "1% changed" "$B"
run "(a) ssh tar \| restic --stdin" "$REPO_A" "1% changed" "$A"
run "(c) ssh tar \| cairn --stdin-tar" "$REPO_C" "1% changed" "$C"
run "ssh tar \| cat (baseline)" "" "1% changed" "$BASE"
"$GEN" -kind revert -out "$DATA" -save "$WORK/save"
rm -rf "$WORK/save"

# Single-file restore: a large and a small file.
# (awk, not head: head would end the pipe early, and pipefail would end the script)
BIG=$(find "$DATA" -type f -size +4M | sort | awk 'NR == 1')
SMALL=$(find "$DATA" -type f -size -40k | sort | awk 'NR == 1')
{
echo
echo "Changed by bench/gen -kind change: $CHANGED_FILES files, $(echo "$CHANGED / 1000000" | bc -l | xargs printf '%.1f') MB of the tree's $(echo "$TREE_BYTES / 1000000" | bc) MB."
echo
echo "| single-file restore | file | wall | client CPU | peak RSS |"
echo "|---|---|---:|---:|---:|"
} | tee -a "$OUT"
rest() {
	local name=$1 f=$2; shift 2
	rm -rf "$WORK/restore"
	/usr/bin/time -f "%e %U %S %M" -o "$WORK/time.out" bash -c "$*" >>"$LOG" 2>&1 || { echo "FAILED: $name"; exit 1; }
	read -r wall usr sys rss < "$WORK/time.out"
	printf '| %s | %s (%d KB) | %.2f s | %.1f s | %d MiB |\n' "$name" "${f#$DATA/}" $(( $(stat -c %s "$f") / 1000 )) "$wall" "$(echo "$usr + $sys" | bc)" $((rss / 1024)) | tee -a "$OUT"
}
for f in "$BIG" "$SMALL"; do
	warm "$REPO_B"
	rest "(b) cairn restore latest --include" "$f" "$CAIRN -r $REPO_B restore latest --include $f --target $WORK/restore && cmp $f $WORK/restore$f"
	warm "$REPO_C"
	rest "(c) cairn restore latest --include" "$f" "$CAIRN -r $REPO_C restore latest --include $f --target $WORK/restore && cmp $f $WORK/restore$f"
	warm "$REPO_A"
	rest "(a) restic dump latest app.tar \| tar -x file" "$f" "$RESTIC -r $REPO_A dump -q latest /app.tar | tar -xOf - ${f#/} | cmp - $f"
done
warm "$REPO_B"
rest "cairn snapshots (opening the repository only)" "$BIG" "$CAIRN -r $REPO_B snapshots -q >/dev/null"
echo
echo "restic check of (b) and (c):" | tee -a "$OUT"
"$RESTIC" -q -r "$REPO_B" check >>"$LOG" 2>&1 && echo "(b) ok" | tee -a "$OUT"
"$RESTIC" -q -r "$REPO_C" check >>"$LOG" 2>&1 && echo "(c) ok" | tee -a "$OUT"
