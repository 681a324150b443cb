# bench/remote/sshd.sh — sourced by run.sh and backends.sh: a throwaway
# OpenSSH sshd on 127.0.0.1 with fresh host and user keys.
#
#   start_sshd DIR PORT [EXTRA_CONFIG_LINE...]
#
# writes DIR/{host_key,user_key,authorized_keys,sshd_config,known_hosts},
# starts sshd in the background (log DIR/sshd.log) and sets SSHD_PID.
start_sshd() {
	local dir=$1 port=$2
	shift 2

	ssh-keygen -q -t ed25519 -N '' -f "$dir/host_key"
	ssh-keygen -q -t ed25519 -N '' -f "$dir/user_key"
	cp "$dir/user_key.pub" "$dir/authorized_keys"
	{
		cat <<C
ListenAddress 127.0.0.1:$port
HostKey $dir/host_key
PidFile none
AuthorizedKeysFile $dir/authorized_keys
AuthenticationMethods publickey
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
Subsystem sftp /usr/lib/openssh/sftp-server
UseDNS no
PermitTTY no
MaxStartups 64
MaxSessions 64
# Root's ~/.bashrc on this machine (pyenv init) costs ~0.75 s per session: with SHLVL
# set, bash does not read it for sshd sessions. A remote host with a light shell rc.
SetEnv SHLVL=1
C
		local line
		for line in "$@"; do echo "$line"; done
	} > "$dir/sshd_config"
	mkdir -p /run/sshd
	/usr/sbin/sshd -D -e -f "$dir/sshd_config" 2>"$dir/sshd.log" &
	SSHD_PID=$!
	echo "[127.0.0.1]:$port $(cat "$dir/host_key.pub")" > "$dir/known_hosts"
}
