#!/usr/bin/env bash
# End-to-end check of `tokenbench keygen` + `tokenbench assertion` against an
# independent Python verifier (scripts/verify_assertion.py, `cryptography` only).
#
# For every key kind (rsa2048 rsa3072 rsa4096 p256 ed25519) it generates a key
# and certificate, checks the printed thumbprints against cert.pem, then signs
# an assertion with every backend (rsa ring aws-lc-rs) and every algorithm the
# key allows and verifies it. The `rsa` backend has no EC/Ed25519 support, so
# for p256/ed25519 it must fail with exit code 2 and a message on stderr.
# Also checks the default algorithm (PS256 for RSA, ES256 for P-256, EdDSA for
# Ed25519), the lifetime option and its 600 s default, fresh jti per assertion,
# and that an algorithm the key cannot do is refused.
#
# Usage: scripts/e2e-assertions.sh
#   TOKENBENCH=/path/to/tokenbench  use this binary instead of building one
#   PYTHON=python3                  interpreter with `cryptography` installed
# Prints one line per check and ends with
#   e2e-assertions: N passed, M failed
# exiting 1 when M > 0.
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd)
VERIFY="$SCRIPT_DIR/verify_assertion.py"
PYTHON=${PYTHON:-python3}

CLIENT_ID=6731de76-14a6-49ae-97bc-6eba6914391e
AUDIENCE=https://login.microsoftonline.com/contoso/oauth2/v2.0/token
KINDS=(rsa2048 rsa3072 rsa4096 p256 ed25519)
BACKENDS=(rsa ring aws-lc-rs)

# shellcheck source=scripts/tokenbench-bin.sh
source "$SCRIPT_DIR/tokenbench-bin.sh"
if [[ ! -x $BIN ]]; then
    echo "e2e-assertions: $BIN is not an executable" >&2
    exit 1
fi
"$PYTHON" -c 'import cryptography' 2>/dev/null || {
    echo "e2e-assertions: $PYTHON cannot import cryptography" >&2
    exit 1
}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/tokenbench-e2e.XXXXXX")
trap 'rm -rf -- "$TMP"' EXIT

passed=0
failed=0
pass() { passed=$((passed + 1)); printf 'PASS  %s\n' "$*"; }
fail() { failed=$((failed + 1)); printf 'FAIL  %s\n' "$*"; }

# run_cli ARGS...: runs the CLI; sets RC, OUT (stdout), ERR (stderr).
run_cli() {
    RC=0
    "$BIN" "$@" >"$TMP/stdout" 2>"$TMP/stderr" || RC=$?
    OUT=$(<"$TMP/stdout")
    ERR=$(<"$TMP/stderr")
}

# first line of a (possibly multi-line) message, for one-line reports
first_line() { printf '%s' "$1" | head -n 1; }

# algs_for KIND: the algorithms a key of that kind allows
algs_for() {
    case $1 in
        rsa*) echo "PS256 RS256" ;;
        p256) echo "ES256" ;;
        ed25519) echo "EdDSA" ;;
    esac
}

# wrong_algs_for KIND: algorithms the key cannot do
wrong_algs_for() {
    case $1 in
        rsa*) echo "ES256 EdDSA" ;;
        p256) echo "PS256 RS256 EdDSA" ;;
        ed25519) echo "PS256 RS256 ES256" ;;
    esac
}

# backend_supports BACKEND KIND
backend_supports() {
    [[ $1 != rsa || $2 == rsa* ]]
}

# check_keygen KIND: tokenbench keygen, then compare its JSON with cert.pem and key.pem.
# Returns 1 (no usable key) only when keygen failed or the certificate/thumbprints are wrong;
# a key.pem problem is reported as its own check and does not stop the assertion runs.
check_keygen() {
    local kind=$1 dir=$TMP/$1 report prc=0
    run_cli keygen --out "$dir" --kind "$kind"
    if [[ $RC -ne 0 ]]; then
        fail "keygen $kind: exit $RC: $(first_line "$ERR")"
        return 1
    fi
    report=$("$PYTHON" - "$OUT" "$dir" "$kind" 2>&1 <<'PY'
import base64, hashlib, json, os, sys
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

out, d, kind = sys.argv[1:4]
def b64(b): return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
def die(msg): print(msg); sys.exit(1)
try:
    j = json.loads(out)
except ValueError as e:
    die(f"stdout is not one JSON object: {e}: {out!r}")
if not isinstance(j, dict):
    die(f"stdout is not a JSON object: {out!r}")
missing = {"key", "cert", "x5t", "x5t#S256"} - set(j)
if missing:
    die(f"JSON lacks keys {sorted(missing)}: {out}")
key_path, cert_path = os.path.join(d, "key.pem"), os.path.join(d, "cert.pem")
for name, path in (("key", key_path), ("cert", cert_path)):
    if not os.path.isfile(path):
        die(f"{path} was not written")
    if not (isinstance(j[name], str) and os.path.exists(j[name]) and os.path.samefile(j[name], path)):
        die(f"JSON {name}={j[name]!r} does not name {path}")
cert = x509.load_pem_x509_certificate(open(cert_path, "rb").read())
der = cert.public_bytes(serialization.Encoding.DER)
x5t, x5t256 = b64(hashlib.sha1(der).digest()), b64(hashlib.sha256(der).digest())
if j["x5t"] != x5t:
    die(f"x5t printed {j['x5t']!r} != {x5t!r} computed from cert.pem")
if j["x5t#S256"] != x5t256:
    die(f"x5t#S256 printed {j['x5t#S256']!r} != {x5t256!r} computed from cert.pem")
pub = cert.public_key()
if kind.startswith("rsa"):
    good = isinstance(pub, rsa.RSAPublicKey) and pub.key_size == int(kind[3:])
elif kind == "p256":
    good = isinstance(pub, ec.EllipticCurvePublicKey) and isinstance(pub.curve, ec.SECP256R1)
else:
    good = isinstance(pub, ed25519.Ed25519PublicKey)
if not good:
    die(f"certificate key is {type(pub).__name__} (size {getattr(pub, 'key_size', '-')}), not {kind}")
print(f"x5t={x5t} x5t#S256={x5t256}")

# key.pem: must hold the certificate's key. Exit 3 = key problem (reported separately).
spki = lambda k: k.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
pem = open(key_path, "rb").read()
if not pem.startswith(b"-----BEGIN PRIVATE KEY-----"):
    print("key.pem is not PKCS#8 PEM"); sys.exit(3)
try:
    key = serialization.load_pem_private_key(pem, password=None)
except ValueError as e:
    print(f"key.pem cannot be read by pyca/cryptography: {e}"); sys.exit(3)
note = "PKCS#8"
if spki(key.public_key()) != spki(pub):
    print("key.pem's public key is not the certificate's public key"); sys.exit(3)
print(f"key.pem matches cert.pem ({note})")
PY
    ) || prc=$?
    case $prc in
        0 | 3)
            pass "keygen $kind: $(first_line "$report")"
            if [[ $prc -eq 0 ]]; then
                pass "keygen $kind: $(sed -n 2p <<<"$report")"
            else
                fail "keygen $kind: $(sed -n '2,$p' <<<"$report" | tr '\n' ' ')"
            fi
            ;;
        *)
            fail "keygen $kind: $(tr '\n' ' ' <<<"$report")"
            return 1
            ;;
    esac
}

# verify_out LABEL CERT EXPECTED_ALG LIFETIME_SECONDS: verify $OUT (from run_cli).
# On success sets JTI to the assertion's jti.
verify_out() {
    local label=$1 cert=$2 alg=$3 lifetime=$4 vout vrc=0
    JTI=
    if [[ $RC -ne 0 ]]; then
        fail "$label: CLI exit $RC: $(first_line "$ERR")"
        return 1
    fi
    if [[ $OUT == *$'\n'* ]]; then
        fail "$label: stdout has more than one line"
        return 1
    fi
    vout=$(printf '%s\n' "$OUT" | "$PYTHON" "$VERIFY" --cert "$cert" --client-id "$CLIENT_ID" \
        --audience "$AUDIENCE" --lifetime "$lifetime" 2>&1) || vrc=$?
    if [[ $vrc -ne 0 ]]; then
        fail "$label: verifier exit $vrc: $vout"
        return 1
    fi
    if [[ $vout != "OK $alg "* ]]; then
        fail "$label: expected alg $alg, verifier says: $vout"
        return 1
    fi
    JTI=$(sed -n 's/.* jti=\([^ ]*\).*/\1/p' <<<"$vout")
    pass "$label: $vout"
}

# expect_refused LABEL WANT_RC: $RC must be WANT_RC (or any non-zero when WANT_RC is "nonzero"),
# stdout empty, an error message on stderr.
expect_refused() {
    local label=$1 want=$2
    if [[ $RC -eq 0 ]]; then
        fail "$label: expected a refusal, but exit 0 with stdout: $(first_line "$OUT")"
    elif [[ $want != nonzero && $RC -ne $want ]]; then
        fail "$label: expected exit $want, got $RC: $(first_line "$ERR")"
    elif [[ -n $OUT ]]; then
        fail "$label: exit $RC but stdout is not empty: $(first_line "$OUT")"
    elif [[ -z ${ERR//[[:space:]]/} ]]; then
        fail "$label: exit $RC but nothing on stderr"
    else
        pass "$label: exit $RC: $(first_line "$ERR")"
    fi
}

assertion() { # KIND BACKEND [extra args...]
    local kind=$1 backend=$2
    shift 2
    run_cli assertion --key "$TMP/$kind/key.pem" --cert "$TMP/$kind/cert.pem" \
        --client-id "$CLIENT_ID" --audience "$AUDIENCE" --backend "$backend" "$@"
}

declare -A have_key=()

echo "== keygen"
for kind in "${KINDS[@]}"; do
    if check_keygen "$kind"; then have_key[$kind]=1; fi
done

echo "== backend x algorithm"
for kind in "${KINDS[@]}"; do
    for backend in "${BACKENDS[@]}"; do
        for alg in $(algs_for "$kind"); do
            label="assertion $kind $backend $alg"
            if [[ -z ${have_key[$kind]:-} ]]; then
                fail "$label: no key (keygen failed)"
                continue
            fi
            assertion "$kind" "$backend" --alg "$alg" --lifetime 600s
            if backend_supports "$backend" "$kind"; then
                verify_out "$label" "$TMP/$kind/cert.pem" "$alg" 600 || true
            else
                expect_refused "$label (unsupported by backend rsa)" 2
            fi
        done
    done
done

echo "== default algorithm (no --alg)"
for kind in rsa2048 p256 ed25519; do
    case $kind in rsa*) want=PS256 ;; p256) want=ES256 ;; ed25519) want=EdDSA ;; esac
    for backend in "${BACKENDS[@]}"; do
        backend_supports "$backend" "$kind" || continue
        label="default alg $kind $backend -> $want"
        if [[ -z ${have_key[$kind]:-} ]]; then fail "$label: no key"; continue; fi
        assertion "$kind" "$backend" --lifetime 600s
        verify_out "$label" "$TMP/$kind/cert.pem" "$want" 600 || true
    done
    # neither --alg nor --backend
    label="default alg $kind (default backend) -> $want"
    if [[ -z ${have_key[$kind]:-} ]]; then fail "$label: no key"; continue; fi
    run_cli assertion --key "$TMP/$kind/key.pem" --cert "$TMP/$kind/cert.pem" \
        --client-id "$CLIENT_ID" --audience "$AUDIENCE" --lifetime 600s
    verify_out "$label" "$TMP/$kind/cert.pem" "$want" 600 || true
done

echo "== lifetime and jti"
if [[ -n ${have_key[rsa2048]:-} ]]; then
    assertion rsa2048 ring --alg PS256
    verify_out "no --lifetime -> exp - nbf = 600 (rsa2048 ring PS256)" "$TMP/rsa2048/cert.pem" PS256 600 || true
    assertion rsa2048 aws-lc-rs --alg RS256 --lifetime 10m
    verify_out "--lifetime 10m -> 600 (rsa2048 aws-lc-rs RS256)" "$TMP/rsa2048/cert.pem" RS256 600 || true
    assertion rsa2048 rsa --alg PS256 --lifetime 90s
    verify_out "--lifetime 90s -> 90 (rsa2048 rsa PS256)" "$TMP/rsa2048/cert.pem" PS256 90 || true
else
    fail "lifetime checks: no rsa2048 key"
fi
if [[ -n ${have_key[ed25519]:-} ]]; then
    jtis=()
    for i in 1 2; do
        assertion ed25519 aws-lc-rs --alg EdDSA --lifetime 600s
        if verify_out "jti run $i (ed25519 aws-lc-rs EdDSA)" "$TMP/ed25519/cert.pem" EdDSA 600; then
            jtis+=("$JTI")
        fi
    done
    if [[ ${#jtis[@]} -eq 2 && ${jtis[0]} != "${jtis[1]}" ]]; then
        pass "fresh jti per assertion: ${jtis[0]} != ${jtis[1]}"
    else
        fail "fresh jti per assertion: got ${jtis[*]:-none}"
    fi
else
    fail "jti checks: no ed25519 key"
fi

echo "== keys written by other tools (pyca/cryptography, OpenSSL formats), no --alg"
# name key-file cert-file kind: PKCS#1, SEC1, PKCS#8 v1 (what `openssl genpkey` writes), DER.
if foreign=$("$PYTHON" - "$TMP/foreign" 2>&1 <<'PY'
import datetime, os, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization as ser
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

root = sys.argv[1]
now = datetime.datetime.now(datetime.timezone.utc)
def cert_for(key):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "foreign")])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()))
rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ec_key = ec.generate_private_key(ec.SECP256R1())
ed_key = ed25519.Ed25519PrivateKey.generate()
P, D = ser.Encoding.PEM, ser.Encoding.DER
cases = [
    ("rsa2048-pkcs1-pem", rsa_key, P, ser.PrivateFormat.TraditionalOpenSSL, "key.pem", P, "rsa"),
    ("rsa2048-pkcs8-der", rsa_key, D, ser.PrivateFormat.PKCS8, "key.der", D, "rsa"),
    ("p256-sec1-pem", ec_key, P, ser.PrivateFormat.TraditionalOpenSSL, "key.pem", P, "p256"),
    ("p256-pkcs8-pem", ec_key, P, ser.PrivateFormat.PKCS8, "key.pem", D, "p256"),
    ("ed25519-pkcs8v1-pem", ed_key, P, ser.PrivateFormat.PKCS8, "key.pem", P, "ed25519"),
    ("ed25519-pkcs8v1-der", ed_key, D, ser.PrivateFormat.PKCS8, "key.der", P, "ed25519"),
]
for name, key, kenc, kfmt, kfile, cenc, kind in cases:
    d = os.path.join(root, name)
    os.makedirs(d)
    with open(os.path.join(d, kfile), "wb") as f:
        f.write(key.private_bytes(kenc, kfmt, ser.NoEncryption()))
    cfile = "cert.pem" if cenc == P else "cert.der"
    with open(os.path.join(d, cfile), "wb") as f:
        f.write(cert_for(key).public_bytes(cenc))
    print(name, os.path.join(d, kfile), os.path.join(d, cfile), kind)
PY
); then
    while read -r name keyf certf kind; do
        case $kind in rsa) want=PS256 ;; p256) want=ES256 ;; ed25519) want=EdDSA ;; esac
        for backend in "${BACKENDS[@]}"; do
            if [[ $backend == rsa && $kind != rsa ]]; then continue; fi
            run_cli assertion --key "$keyf" --cert "$certf" --client-id "$CLIENT_ID" \
                --audience "$AUDIENCE" --backend "$backend" --lifetime 600s
            verify_out "foreign $name $backend -> $want" "$certf" "$want" 600 || true
        done
    done <<<"$foreign"
else
    fail "foreign keys: generator failed: $foreign"
fi

echo "== refusals"
for kind in rsa2048 p256 ed25519; do
    [[ -n ${have_key[$kind]:-} ]] || { fail "refusals $kind: no key"; continue; }
    for backend in ring aws-lc-rs; do
        for alg in $(wrong_algs_for "$kind"); do
            assertion "$kind" "$backend" --alg "$alg" --lifetime 600s
            expect_refused "refuse $kind $backend --alg $alg (key cannot do it)" nonzero
        done
    done
done
if [[ -n ${have_key[rsa2048]:-} ]]; then
    assertion rsa2048 openssl --alg PS256
    expect_refused "refuse unknown backend 'openssl'" 2
fi

echo "e2e-assertions: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
