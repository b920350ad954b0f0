#!/bin/sh
# Install the Debian packages that virtmail's build and tests need.
# Idempotent: installs only what is missing.
set -eu

PACKAGES="
build-essential
busybox-static
clang
libclang-rt-14-dev
dnsmasq-base
fetchmail
iproute2
libcrypt-dev
libio-socket-ssl-perl
libmilter-dev
libnet-ssleay-perl
libspf2-dev
libssl-dev
mandoc
mpop
openbsd-inetd
openssl
procps
python3
swaks
"

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
	    grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ]; then
	echo "deps: all packages present"
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "deps: must be root to install:$missing" >&2
	echo "deps: run 'sudo make deps'" >&2
	exit 1
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update
# Debian starts services from postinst; the tests start their own.
# shellcheck disable=SC2086
apt-get install -y --no-install-recommends $missing
