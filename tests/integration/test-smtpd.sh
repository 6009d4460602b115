#!/usr/bin/env bash
# The SMTP / LMTP receiver against real clients (Python's smtplib and raw
# sockets, swaks when installed) on loopback: byte-exact archiving with the
# envelope (Bcc included), STARTTLS, BDAT, LMTP, limits, protocol abuse,
# database outage, kill -9 under load, SIGHUP and SIGTERM.
. "$(dirname "$0")/lib.sh"
mv db init >/dev/null
export MV_HOME WORK MAILVAULT_BIN
# Not exec: the EXIT trap (lib.sh) must still stop the cluster and remove
# the temporary directories when the Python part ends.
rc=0
python3 "$(dirname "$0")/smtpd_test.py" || rc=$?
exit "$rc"
