#!/usr/bin/env bash
# verify-bundle reads a zip the way its readers do: through the central
# directory (unzip, and sha256sum -c after it) and through the local
# headers (streaming readers); a bundle whose two views disagree, whose CRC
# is wrong in either, or that holds anything not in SHA256SUMS (an empty
# directory too), fails with exit 79.
. "$(dirname "$0")/lib.sh"
rc_of() { set +e; "$@" >"$WORK/out" 2>"$WORK/err"; local rc=$?; set -e; echo $rc; }
mv db init >/dev/null
python3 "$TESTS_DIR/corpus/mvgen.py" --seed 3 --count 12 --format maildir --out "$WORK/md" --quiet
mv import --quiet "$WORK/md"
mv export --query 'after:1970-01-01' --out "$WORK/case.zip" --format zip --with-attachments >/dev/null
mv export --query 'after:1970-01-01' --out "$WORK/case.tar" --format tar >/dev/null
expect_eq "the zip bundle as written verifies" 0 "$(rc_of mv verify-bundle "$WORK/case.zip")"
expect_eq "the tar bundle as written verifies" 0 "$(rc_of mv verify-bundle "$WORK/case.tar")"

# tamper KIND IN OUT: one change, made with Python's zipfile layout knowledge.
tamper() {
  python3 - "$@" <<'PY'
import struct, sys, zipfile
kind, src, dst = sys.argv[1:4]
data = bytearray(open(src, "rb").read())
z = zipfile.ZipFile(src)
info = z.infolist()[1]                      # a member other than the first
eocd = data.rfind(b"PK\x05\x06")
cd = struct.unpack_from("<I", data, eocd + 16)[0]
# walk the central directory to the member's record
p = cd
for i in range(2):
    name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, p + 28)
    if i == 1:
        break
    p += 46 + name_len + extra_len + comment_len
if kind == "central-name":
    data[p + 46] ^= 0x01                    # first byte of the name, central only
elif kind == "central-crc":
    data[p + 16] ^= 0x01
elif kind == "local-name":
    data[info.header_offset + 30] ^= 0x01   # first byte of the name, local only
elif kind == "local-crc":
    data[info.header_offset + 14] ^= 0x01
open(dst, "wb").write(data)
PY
}
for kind in central-name central-crc local-name local-crc; do
  tamper "$kind" "$WORK/case.zip" "$WORK/$kind.zip"
  expect_eq "zip with a changed $kind: exit 79" 79 "$(rc_of mv verify-bundle "$WORK/$kind.zip")"
done
check "the central/local disagreement is named" bash -c "'$MAILVAULT_BIN' --home '$MV_HOME' verify-bundle '$WORK/central-name.zip' 2>&1 | grep -q 'central directory and its local headers disagree'"

# An added empty directory is an extra entry.
cp "$WORK/case.zip" "$WORK/dir.zip"
python3 -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1], "a"); z.writestr("extra/", b""); z.close()' "$WORK/dir.zip"
expect_eq "zip with an added empty directory: exit 79" 79 "$(rc_of mv verify-bundle "$WORK/dir.zip")"
mkdir -p "$WORK/t/extra"
cp "$WORK/case.tar" "$WORK/dir.tar"
tar -C "$WORK/t" -rf "$WORK/dir.tar" extra
expect_eq "tar with an added empty directory: exit 79" 79 "$(rc_of mv verify-bundle "$WORK/dir.tar")"
finish
