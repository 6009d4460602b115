# A private Dovecot for tests and benchmarks (sourced): everything under
# one directory DIR, IMAP on 127.0.0.1 with STARTTLS, mail as Maildirs under
# DIR/mail/USER owned by the `mailvault` user, users in DIR/passwd
# ("user:{PLAIN}password" lines).  Dovecot runs as root here, as in CI.

# dovecot_cert DIR NAME: a self-signed certificate for 127.0.0.1 in
# DIR/NAME.pem with its key in DIR/NAME-key.pem.
dovecot_cert() {
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$1/$2-key.pem" -out "$1/$2.pem" 2>/dev/null
  chmod 644 "$1/$2-key.pem"
}

# dovecot_conf DIR PORT [IMAPS_PORT]: the configuration, on stdout, using
# DIR/cert.pem and DIR/cert-key.pem; with IMAPS_PORT also implicit TLS there.
dovecot_conf() {
  local dir=$1 port=$2 imaps=${3:-}
  mkdir -p "$dir/base" "$dir/state" "$dir/mail"
  cat <<CF
protocols = imap
listen = 127.0.0.1
base_dir = $dir/base
state_dir = $dir/state
log_path = $dir/dovecot.log
ssl = yes
ssl_cert = <$dir/cert.pem
ssl_key = <$dir/cert-key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:$dir/mail/%u
mail_uid = mailvault
mail_gid = mailvault
first_valid_uid = 1
default_login_user = dovenull
default_internal_user = dovecot
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $port
  }
CF
  if [ -n "$imaps" ]; then
    cat <<CF
  inet_listener imaps {
    address = 127.0.0.1
    port = $imaps
    ssl = yes
  }
CF
  fi
  cat <<CF
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $dir/passwd
}
userdb {
  driver = static
  args = uid=mailvault gid=mailvault home=$dir/mail/%u
}
CF
}
