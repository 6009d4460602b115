#!/usr/bin/env bash
# 1,000 random single-byte flips (500 in a zip bundle, 500 in a tar
# bundle, a fixed seed): verify-bundle must report every flip that changes
# what a reader extracts.  The oracle is Python's zipfile (central
# directory, then each local header, names compared, CRC checked: what
# `unzip` reads) and tarfile (headers with their checksums, then the data:
# what `tar x` reads): a flip after which the oracle still extracts exactly
# the same names and bytes cannot change what a reader gets (a timestamp,
# a permission bit, padding), and verify-bundle may pass it.
. "$(dirname "$0")/lib.sh"
mv db init >/dev/null
python3 "$TESTS_DIR/corpus/mvgen.py" --seed 4 --count 6 --format maildir --out "$WORK/md" --quiet
mv import --quiet "$WORK/md"
mv export --query 'after:1970-01-01' --out "$WORK/case.zip" --format zip --with-attachments >/dev/null
mv export --query 'after:1970-01-01' --out "$WORK/case.tar" --format tar >/dev/null
export WORK MAILVAULT_BIN MV_HOME
python3 - <<'PY'
import io, os, random, subprocess, sys, tarfile, zipfile
work, binary, home = os.environ["WORK"], os.environ["MAILVAULT_BIN"], os.environ["MV_HOME"]

def extract_zip(data):
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return sorted((i.filename, z.read(i)) for i in z.infolist())

def extract_tar(data):
    out = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as t:
        for m in t.getmembers():
            f = t.extractfile(m) if m.isfile() else None
            out.append((m.name, m.type, f.read() if f is not None else None))
    return sorted(out, key=repr)

rng = random.Random(20261206)
failed = 0
for fmt, extract in (("zip", extract_zip), ("tar", extract_tar)):
    path = os.path.join(work, "case." + fmt)
    data = open(path, "rb").read()
    want = extract(data)
    flipped = os.path.join(work, "flipped." + fmt)
    changed = unchanged = missed = 0
    for n in range(500):
        pos = rng.randrange(len(data))
        bad = bytearray(data)
        bad[pos] ^= rng.randrange(1, 256)
        open(flipped, "wb").write(bad)
        why = "different names or bytes"
        try:
            same = extract(bytes(bad)) == want
        except Exception as e:
            same, why = False, "%s: %s" % (type(e).__name__, e)
        rc = subprocess.run([binary, "--home", home, "verify-bundle", flipped],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
        if same:
            unchanged += 1
        else:
            changed += 1
            if rc == 0:
                missed += 1
                print("# %s: byte %d changed what a reader extracts (%s), verify-bundle said intact"
                      % (fmt, pos, why), flush=True)
    ok = missed == 0 and changed > 0
    print("%s - %s: 500 flips, %d change what is extracted (all reported: %s), %d change nothing "
          "a reader gets" % ("ok" if ok else "not ok", fmt, changed, missed == 0, unchanged), flush=True)
    failed += not ok
print("test-bundle-flips: %d passed, %d failed" % (2 - failed, failed))
sys.exit(1 if failed else 0)
PY
