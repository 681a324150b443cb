#!/usr/bin/env bash
# bench/remote/backends.sh — issue 3 item 7: backup and restore of bench/gen's
# mixed set through each remote backend, cairn against restic 0.19.1 against
# the same server in one run: restic's rest-server v0.14.0, versitygw v1.8.0
# (S3) and OpenSSH's sshd (SFTP), all on 127.0.0.1, started here. Per backend
# and round: init a fresh repository per tool, initial backup, restore latest
# into an empty directory; the tools alternate which goes first. Reported:
# wall time, CPU (user+sys, the tool and its children: for restic's SFTP
# backend that includes its ssh client) and peak RSS, per round, and ratios.
#
# Usage (root, from the module root; reuses bench/remote/run.sh's data set):
#   nice -n -15 bench/remote/backends.sh [WORK] [ROUNDS]
set -euo pipefail
WORK=${1:-/var/tmp/cairn-remote}
ROUNDS=${2:-1}
ROOT=$(git rev-parse --show-toplevel)
cd "$ROOT"
. bench/remote/sshd.sh
mkdir -p "$WORK/bin" "$WORK/be"
WORK=$(cd "$WORK" && pwd)
go build -o "$WORK/bin/cairn" ./cmd/cairn
go build -o "$WORK/bin/gen" ./bench/gen
CAIRN=$WORK/bin/cairn
RESTIC=$(scripts/build-tool restic | tail -1)
REST_SERVER=$(scripts/build-tool rest-server | tail -1)
VERSITYGW=$(scripts/build-tool versitygw | tail -1)
DATA=$WORK/data/app
if [ ! -e "$WORK/data/app.complete" ]; then
	rm -rf "$DATA"
	"$WORK/bin/gen" -kind mixed -out "$DATA"
	touch "$WORK/data/app.complete"
fi
if [ -d "$WORK/save" ]; then "$WORK/bin/gen" -kind revert -out "$DATA" -save "$WORK/save"; rm -rf "$WORK/save"; fi
B=$WORK/be
rm -rf "$B" "$WORK/restores" "$WORK/restore"; mkdir -p "$B/rest" "$B/s3" "$B/sftp" "$B/ssh"
port() { echo $((20000 + RANDOM % 20000)); }
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill $p 2>/dev/null || true; done' EXIT

RPORT=$(port)
"$REST_SERVER" --path "$B/rest" --no-auth --listen 127.0.0.1:$RPORT >"$B/rest.log" 2>&1 &
PIDS+=($!)
SPORT=$(port)
ROOT_ACCESS_KEY_ID=benchkey ROOT_SECRET_ACCESS_KEY=benchsecret1234 "$VERSITYGW" --port 127.0.0.1:$SPORT --region us-east-1 posix "$B/s3" >"$B/s3.log" 2>&1 &
PIDS+=($!)
export AWS_ACCESS_KEY_ID=benchkey AWS_SECRET_ACCESS_KEY=benchsecret1234 AWS_DEFAULT_REGION=us-east-1
S=$B/ssh
HPORT=$(port)
start_sshd "$S" "$HPORT"
PIDS+=("$SSHD_PID")
sleep 1

export RESTIC_PASSWORD=bench
OUT=$WORK/backends.md
LOG=$WORK/backends.log
: > "$LOG"

# url KIND TOOL ROUND: the repository of one tool on one backend.
url() {
	case $1 in
	rest) echo "rest:http://127.0.0.1:$RPORT/$2-$3" ;;
	s3) echo "s3:http://127.0.0.1:$SPORT/$2-$3" ;;
	sftp) echo "sftp://root@127.0.0.1:$HPORT/$B/sftp/$2-$3" ;;
	esac
}
opts() {
	if [ "$1" = sftp ]; then
		if [ "$2" = cairn ]; then echo "-o sftp.key=$S/user_key -o sftp.known-hosts=$S/known_hosts"
		else echo "-o sftp.args='-F /dev/null -i $S/user_key -o UserKnownHostsFile=$S/known_hosts -o StrictHostKeyChecking=yes -o BatchMode=yes'"; fi
	fi
}
bin() { if [ "$1" = cairn ]; then echo "$CAIRN"; else echo "$RESTIC"; fi; }
# Read the data and the servers' files into the page cache, then write back
# whatever earlier steps left dirty, so the kernel does not flush it during
# the next timed command.
warm() { tar -C / -cf - "${DATA#/}" "${B#/}" 2>/dev/null | cat > /dev/null; sync; }

declare -A R
timed() { # KEY CMD
	local key=$1; shift
	warm
	/usr/bin/time -f "%e %U %S %M" -o "$WORK/time.out" bash -c "$*" >>"$LOG" 2>&1 || { echo "FAILED: $key: $*"; tail -5 "$LOG"; exit 1; }
	read -r wall usr sys rss < "$WORK/time.out"
	R[$key]="$wall $(echo "$usr + $sys" | bc) $((rss / 1024))"
	echo "$key wall=$wall cpu=$(echo "$usr + $sys" | bc) rss=$rss" | tee -a "$LOG"
}

for round in $(seq "$ROUNDS"); do
	order="cairn restic"; [ $((round % 2)) = 0 ] && order="restic cairn"
	for kind in rest s3 sftp; do
		for tool in $order; do
			eval "$(bin $tool) -q -r $(url $kind $tool $round) $(opts $kind $tool) init --repository-version 2" >>"$LOG" 2>&1 || { echo "FAILED init $kind $tool"; tail -5 "$LOG"; exit 1; }
		done
		for tool in $order; do
			timed "$kind/$tool/backup/$round" "$(bin $tool) -q -r $(url $kind $tool $round) $(opts $kind $tool) backup --host bench --compression auto $DATA"
		done
		# A target per restore, all removed at the end: creating files soon
		# after deleting many costs both tools kernel time on ext4 without
		# a journal (see bench/compare).
		for tool in $order; do
			timed "$kind/$tool/restore/$round" "$(bin $tool) -q -r $(url $kind $tool $round) $(opts $kind $tool) restore latest --target $WORK/restores/$kind-$tool-$round"
		done
	done
done
rm -rf "$WORK/restores"

{
echo "Run of $(date -u '+%Y-%m-%d %H:%M') UTC, commit $(git rev-parse --short HEAD), $ROUNDS round(s), mixed set ($(du -sb --apparent-size "$DATA" | cut -f1 | awk '{printf "%.0f MB", $1/1e6}')), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| backend | step | round | cairn wall | restic wall | wall ratio | cairn CPU | restic CPU | CPU ratio | cairn RSS | restic RSS | RSS ratio |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for kind in rest s3 sftp; do for step in backup restore; do for round in $(seq "$ROUNDS"); do
	read -r cw cc cr <<< "${R[$kind/cairn/$step/$round]}"
	read -r rw rc rr <<< "${R[$kind/restic/$step/$round]}"
	awk -v k=$kind -v s=$step -v r=$round -v cw=$cw -v rw=$rw -v cc=$cc -v rc=$rc -v cr=$cr -v rr=$rr 'BEGIN {
		printf "| %s | %s | %d | %.2f s | %.2f s | **%.2f×** | %.1f s | %.1f s | %.2f× | %d MiB | %d MiB | %.2f× |\n",
			k, s, r, cw, rw, cw/rw, cc, rc, cc/rc, cr, rr, cr/rr }'
done; done; done
} | tee "$OUT"
