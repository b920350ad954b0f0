#!/bin/sh
# make bench-peers-deps: install Debian's Postfix and Dovecot POP3 so
# that make bench can measure them beside virtmail on the same machine.
# Never run by make deps or CI.  Runs as root.
#
# The packages' own services must not run: the benchmark starts private
# instances in the test namespace, with their own configuration, and a
# system Postfix or Dovecot would take ports 25 and 110 on the host.  A
# temporary policy-rc.d keeps the maintainer scripts from starting
# them (an existing one is put back afterwards); Postfix is installed
# with "No configuration"; whatever started all the same is stopped and
# disabled.
set -eu

PACKAGES="postfix dovecot-core dovecot-pop3d"
POLICY=/usr/sbin/policy-rc.d
SAVED=/usr/sbin/policy-rc.d.bench-peers

if [ "$(id -u)" != 0 ]; then
	echo "bench-peers-deps: must be root: run 'sudo make bench-peers-deps'" >&2
	exit 1
fi

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
	    grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done

restore_policy() {
	rm -f "$POLICY"
	if [ -e "$SAVED" ]; then
		mv "$SAVED" "$POLICY"
	fi
}

if [ -n "$missing" ]; then
	echo "bench-peers-deps: installing$missing"
	if [ -e "$POLICY" ]; then
		mv "$POLICY" "$SAVED"
	fi
	trap restore_policy EXIT
	trap 'exit 1' INT TERM
	printf '#!/bin/sh\n# Installing benchmark peers: start no service.\nexit 101\n' \
	    >"$POLICY"
	chmod 755 "$POLICY"
	export DEBIAN_FRONTEND=noninteractive
	debconf-set-selections <<-EOF
	postfix postfix/main_mailer_type select No configuration
	EOF
	apt-get update
	# --no-remove: stop rather than replace another mail server.
	# shellcheck disable=SC2086
	apt-get install -y --no-install-recommends --no-remove $missing
	restore_policy
	trap - EXIT INT TERM
else
	echo "bench-peers-deps: all packages present"
fi

# Stop and disable the system instances, whether or not they started.
# Only the default instances are addressed (their own stop commands),
# never the benchmark's private ones.
if command -v systemctl >/dev/null 2>&1; then
	# Works offline too: it only removes the unit links.
	systemctl disable postfix.service dovecot.service \
	    >/dev/null 2>&1 || true
	if [ -d /run/systemd/system ]; then
		systemctl stop postfix.service dovecot.service \
		    >/dev/null 2>&1 || true
	fi
fi
for s in postfix dovecot; do
	if [ -x "/etc/init.d/$s" ]; then
		update-rc.d "$s" disable >/dev/null 2>&1 || true
	fi
done
if [ -f /etc/postfix/main.cf ] && postfix status >/dev/null 2>&1; then
	postfix stop || true
fi
if [ -S /run/dovecot/master ] || [ -f /run/dovecot/master.pid ]; then
	doveadm stop >/dev/null 2>&1 || true
fi
echo "bench-peers-deps: postfix $(postconf -d -h mail_version 2>/dev/null)," \
    "dovecot $(dovecot --version 2>/dev/null); system services not running"
