#!/usr/bin/env python3
"""Standalone tests for verify_assertion.py.

Generates keys and self-signed certificates with `cryptography`, signs
assertions for PS256/RS256/ES256/EdDSA in Python, and runs the verifier as a
subprocess on good and deliberately broken inputs. Expects exit 0 + "OK <alg>"
for good ones and exit 1 + "FAIL <check>:" naming the right check for bad ones.

Usage: python3 scripts/test_verify_assertion.py   (exit 0 when all pass)
"""

import base64
import datetime
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

HERE = os.path.dirname(os.path.abspath(__file__))
VERIFIER = os.path.join(HERE, "verify_assertion.py")
CLIENT_ID = "6731de76-14a6-49ae-97bc-6eba6914391e"
AUD = "https://login.microsoftonline.com/contoso/oauth2/v2.0/token"


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jenc(obj):
    return b64(json.dumps(obj, separators=(",", ":")).encode())


def make_cert(key, cn):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    algo = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, algo))


def thumbs(cert):
    der = cert.public_bytes(serialization.Encoding.DER)
    return b64(hashlib.sha1(der).digest()), b64(hashlib.sha256(der).digest())


def sign(alg, key, data, salt=32, ecdsa_raw=True):
    if alg == "PS256":
        return key.sign(data, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=salt), hashes.SHA256())
    if alg == "RS256":
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    if alg == "ES256":
        der = key.sign(data, ec.ECDSA(hashes.SHA256()))
        if not ecdsa_raw:
            return der
        r, s = decode_dss_signature(der)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    if alg == "EdDSA":
        return key.sign(data)
    raise ValueError(alg)


def build(alg, key, cert, *, header=None, claims=None, hdr_mut=None, clm_mut=None,
          signer=None, post=None, now=None, lifetime=600):
    x5t, x5t256 = thumbs(cert)
    now = int(time.time()) if now is None else now
    h = header or ({"alg": alg, "typ": "JWT", "x5t": x5t} if alg == "RS256"
                   else {"alg": alg, "typ": "JWT", "x5t#S256": x5t256})
    c = claims or {"aud": AUD, "iss": CLIENT_ID, "sub": CLIENT_ID, "jti": str(uuid.uuid4()),
                   "nbf": now, "iat": now, "exp": now + lifetime}
    if hdr_mut:
        hdr_mut(h)
    if clm_mut:
        clm_mut(c)
    hp = f"{jenc(h)}.{jenc(c)}"
    sig = (signer or (lambda d: sign(alg, key, d)))(hp.encode())
    jws = f"{hp}.{b64(sig)}"
    return post(jws) if post else jws


def run(jws, cert_path, *extra):
    p = subprocess.run([sys.executable, VERIFIER, "--cert", cert_path, "--client-id", CLIENT_ID,
                        "--audience", AUD, *extra], input=jws, capture_output=True, text=True)
    return p.returncode, p.stdout.strip(), p.stderr.strip()


def main():
    with tempfile.TemporaryDirectory(prefix="verify-test-") as tmp:
        return _main(tmp)


def _main(tmp):
    keys = {
        "rsa2048": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "rsa3072": rsa.generate_private_key(public_exponent=65537, key_size=3072),
        "p256": ec.generate_private_key(ec.SECP256R1()),
        "p384": ec.generate_private_key(ec.SECP384R1()),
        "ed25519": ed25519.Ed25519PrivateKey.generate(),
        "rsa_other": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    }
    certs, paths = {}, {}
    for k, key in keys.items():
        certs[k] = make_cert(key, k)
        paths[k] = os.path.join(tmp, f"{k}.pem")
        with open(paths[k], "wb") as f:
            f.write(certs[k].public_bytes(serialization.Encoding.PEM))
    # a second cert for the same RSA key: same key, different DER => different thumbprint
    certs["rsa2048_b"] = make_cert(keys["rsa2048"], "rsa2048-b")

    K, C, P = keys, certs, paths
    now = int(time.time())
    passed = failed = 0

    def case(name, jws, cert, expect, *extra):
        nonlocal passed, failed
        rc, out, err = run(jws, P[cert], *extra)
        if expect.startswith("OK"):
            ok = rc == 0 and out.startswith(expect + " ")
        else:
            ok = rc == 1 and err.startswith(f"FAIL {expect}:") and out == ""
        msg = out if rc == 0 else err
        print(f"{'PASS' if ok else 'FAIL'}  {name:<55} rc={rc} {msg}")
        if ok:
            passed += 1
        else:
            failed += 1

    # ---- positive ------------------------------------------------------
    case("PS256 rsa2048", build("PS256", K["rsa2048"], C["rsa2048"]), "rsa2048", "OK PS256")
    case("PS256 rsa3072", build("PS256", K["rsa3072"], C["rsa3072"]), "rsa3072", "OK PS256")
    case("RS256 rsa2048", build("RS256", K["rsa2048"], C["rsa2048"]), "rsa2048", "OK RS256")
    case("ES256 p256", build("ES256", K["p256"], C["p256"]), "p256", "OK ES256")
    case("EdDSA ed25519", build("EdDSA", K["ed25519"], C["ed25519"]), "ed25519", "OK EdDSA")
    case("PS256 trailing newline/whitespace on stdin",
         "  \n" + build("PS256", K["rsa2048"], C["rsa2048"]) + "\n\n", "rsa2048", "OK PS256")
    case("PS256 --lifetime 90 (exp = now+90)",
         build("PS256", K["rsa2048"], C["rsa2048"], lifetime=90), "rsa2048", "OK PS256", "--lifetime", "90")
    case("EdDSA --lifetime 600s (suffix accepted)",
         build("EdDSA", K["ed25519"], C["ed25519"]), "ed25519", "OK EdDSA", "--lifetime", "600s")
    case("ES256 iat = now-299 (within skew)",
         build("ES256", K["p256"], C["p256"], now=now - 299), "p256", "OK ES256", "--now", str(now))

    # ---- structure / encoding ------------------------------------------
    case("two parts only", ".".join(build("PS256", K["rsa2048"], C["rsa2048"]).split(".")[:2]),
         "rsa2048", "structure")
    case("four parts", build("PS256", K["rsa2048"], C["rsa2048"]) + ".x", "rsa2048", "structure")
    case("empty input", "", "rsa2048", "structure")
    case("padding '=' on signature (ES256, 64 B -> 86 chars + '==')",
         build("ES256", K["p256"], C["p256"], post=lambda j: j + "=="), "p256", "base64url")
    case("padding '=' on header",
         build("PS256", K["rsa2048"], C["rsa2048"],
               post=lambda j: j.split(".")[0] + "=." + ".".join(j.split(".")[1:])), "rsa2048", "base64url")
    case("standard base64 alphabet '+' in signature",
         build("EdDSA", K["ed25519"], C["ed25519"], post=lambda j: j[:-1] + "+"), "ed25519", "base64url")

    # ---- header --------------------------------------------------------
    x5t_rsa, x5t256_rsa = thumbs(C["rsa2048"])
    case("alg none", build("PS256", K["rsa2048"], C["rsa2048"], hdr_mut=lambda h: h.update(alg="none")),
         "rsa2048", "header.alg")
    case("alg HS256", build("PS256", K["rsa2048"], C["rsa2048"], hdr_mut=lambda h: h.update(alg="HS256")),
         "rsa2048", "header.alg")
    case("typ 'jwt' (lowercase)", build("PS256", K["rsa2048"], C["rsa2048"], hdr_mut=lambda h: h.update(typ="jwt")),
         "rsa2048", "header.typ")
    case("typ missing", build("PS256", K["rsa2048"], C["rsa2048"], hdr_mut=lambda h: h.pop("typ")),
         "rsa2048", "header.typ")
    case("extra header key kid", build("PS256", K["rsa2048"], C["rsa2048"], hdr_mut=lambda h: h.update(kid="k1")),
         "rsa2048", "header.keys")
    case("PS256 with x5t instead of x5t#S256",
         build("PS256", K["rsa2048"], C["rsa2048"], header={"alg": "PS256", "typ": "JWT", "x5t": x5t_rsa}),
         "rsa2048", "header.keys")
    case("RS256 with x5t#S256 instead of x5t",
         build("RS256", K["rsa2048"], C["rsa2048"], header={"alg": "RS256", "typ": "JWT", "x5t#S256": x5t256_rsa}),
         "rsa2048", "header.keys")
    case("PS256 with both thumbprints",
         build("PS256", K["rsa2048"], C["rsa2048"], hdr_mut=lambda h: h.update(x5t=x5t_rsa)),
         "rsa2048", "header.keys")
    case("PS256 wrong x5t#S256 (other cert, same key)", build("PS256", K["rsa2048"], C["rsa2048_b"]),
         "rsa2048", "header.x5t#S256")
    case("RS256 wrong x5t (other cert, same key)", build("RS256", K["rsa2048"], C["rsa2048_b"]),
         "rsa2048", "header.x5t")
    case("x5t#S256 = hex instead of base64url",
         build("ES256", K["p256"], C["p256"], hdr_mut=lambda h: h.update({"x5t#S256": hashlib.sha256(
             C["p256"].public_bytes(serialization.Encoding.DER)).hexdigest()})), "p256", "header.x5t#S256")
    case("duplicate key in header JSON",
         build("PS256", K["rsa2048"], C["rsa2048"], post=lambda j: b64(
             b'{"alg":"PS256","alg":"PS256","typ":"JWT","x5t#S256":"' + x5t256_rsa.encode() + b'"}')
               + "." + ".".join(j.split(".")[1:])), "rsa2048", "header-json")

    # ---- claims --------------------------------------------------------
    case("exp - nbf = 599", build("PS256", K["rsa2048"], C["rsa2048"], clm_mut=lambda c: c.update(exp=c["exp"] - 1)),
         "rsa2048", "claims.exp")
    case("exp - nbf = 3600 vs --lifetime 600",
         build("EdDSA", K["ed25519"], C["ed25519"], lifetime=3600), "ed25519", "claims.exp")
    case("nbf != iat", build("PS256", K["rsa2048"], C["rsa2048"], clm_mut=lambda c: c.update(nbf=c["iat"] - 5, exp=c["iat"] + 595)),
         "rsa2048", "claims.nbf")
    case("iat = now-301", build("ES256", K["p256"], C["p256"], now=now - 301), "p256", "claims.iat", "--now", str(now))
    case("iat = now+301", build("ES256", K["p256"], C["p256"], now=now + 301), "p256", "claims.iat", "--now", str(now))
    case("iat milliseconds", build("ES256", K["p256"], C["p256"], now=now * 1000), "p256", "claims.iat", "--now", str(now))
    case("iat float (caught at nbf, first integer check)", build("PS256", K["rsa2048"], C["rsa2048"],
                            clm_mut=lambda c: c.update(iat=c["iat"] + 0.5, nbf=c["iat"] + 0.5, exp=c["iat"] + 600.5)),
         "rsa2048", "claims.nbf")
    case("aud wrong", build("PS256", K["rsa2048"], C["rsa2048"], clm_mut=lambda c: c.update(aud=AUD + "/")),
         "rsa2048", "claims.aud")
    case("aud as array", build("PS256", K["rsa2048"], C["rsa2048"], clm_mut=lambda c: c.update(aud=[AUD])),
         "rsa2048", "claims.aud")
    case("iss wrong", build("PS256", K["rsa2048"], C["rsa2048"], clm_mut=lambda c: c.update(iss="someone")),
         "rsa2048", "claims.iss")
    case("sub wrong", build("PS256", K["rsa2048"], C["rsa2048"], clm_mut=lambda c: c.update(sub=CLIENT_ID.upper())),
         "rsa2048", "claims.sub")
    case("jti uppercase", build("PS256", K["rsa2048"], C["rsa2048"], clm_mut=lambda c: c.update(jti=c["jti"].upper())),
         "rsa2048", "claims.jti")
    case("jti braces", build("PS256", K["rsa2048"], C["rsa2048"], clm_mut=lambda c: c.update(jti="{" + c["jti"] + "}")),
         "rsa2048", "claims.jti")
    case("jti uuid1", build("PS256", K["rsa2048"], C["rsa2048"], clm_mut=lambda c: c.update(jti=str(uuid.uuid1()))),
         "rsa2048", "claims.jti")
    case("jti not a uuid", build("PS256", K["rsa2048"], C["rsa2048"], clm_mut=lambda c: c.update(jti="abc")),
         "rsa2048", "claims.jti")
    case("extra claim scp", build("PS256", K["rsa2048"], C["rsa2048"], clm_mut=lambda c: c.update(scp="x")),
         "rsa2048", "claims.keys")
    case("missing claim nbf", build("PS256", K["rsa2048"], C["rsa2048"], clm_mut=lambda c: c.pop("nbf")),
         "rsa2048", "claims.keys")

    # ---- signatures ----------------------------------------------------
    def tamper_payload(j):
        # same claims shifted by 1 s: every claim check still passes, only the signature breaks
        h, p, s = j.split(".")
        c = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
        c.update(nbf=c["nbf"] + 1, iat=c["iat"] + 1, exp=c["exp"] + 1)
        return f"{h}.{jenc(c)}.{s}"

    for alg, k in (("PS256", "rsa2048"), ("RS256", "rsa2048"), ("ES256", "p256"), ("EdDSA", "ed25519")):
        case(f"{alg} tampered payload", build(alg, K[k], C[k], post=tamper_payload), k, "signature")

    def flip_sig(j):
        h, p, s = j.split(".")
        raw = bytearray(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))
        raw[len(raw) // 2] ^= 1
        return f"{h}.{p}.{b64(bytes(raw))}"

    for alg, k in (("PS256", "rsa2048"), ("RS256", "rsa2048"), ("ES256", "p256"), ("EdDSA", "ed25519")):
        case(f"{alg} flipped signature bit", build(alg, K[k], C[k], post=flip_sig), k, "signature")

    case("PS256 salt length 20", build("PS256", K["rsa2048"], C["rsa2048"],
                                       signer=lambda d: sign("PS256", K["rsa2048"], d, salt=20)), "rsa2048", "signature")
    case("PS256 salt length 222 (max for 2048)", build("PS256", K["rsa2048"], C["rsa2048"],
                                                       signer=lambda d: sign("PS256", K["rsa2048"], d,
                                                                             salt=padding.PSS.MAX_LENGTH)),
         "rsa2048", "signature")
    case("PS256 header, PKCS1v15 signature", build("PS256", K["rsa2048"], C["rsa2048"],
                                                   signer=lambda d: sign("RS256", K["rsa2048"], d)), "rsa2048", "signature")
    case("RS256 header, PSS signature", build("RS256", K["rsa2048"], C["rsa2048"],
                                              signer=lambda d: sign("PS256", K["rsa2048"], d)), "rsa2048", "signature")
    case("PS256 signed by a different RSA key", build("PS256", K["rsa2048"], C["rsa_other"],
                                                      signer=lambda d: sign("PS256", K["rsa2048"], d)),
         "rsa_other", "signature")
    case("ES256 DER-encoded signature", build("ES256", K["p256"], C["p256"],
                                              signer=lambda d: sign("ES256", K["p256"], d, ecdsa_raw=False)),
         "p256", "signature")
    case("ES256 65-byte signature", build("ES256", K["p256"], C["p256"],
                                          signer=lambda d: b"\x00" + sign("ES256", K["p256"], d)), "p256", "signature")
    case("ES256 signature r||s swapped", build("ES256", K["p256"], C["p256"],
                                               signer=lambda d: (lambda s: s[32:] + s[:32])(sign("ES256", K["p256"], d))),
         "p256", "signature")

    # ---- key type mismatch ----------------------------------------------
    case("ES256 header with RSA cert", build("ES256", K["rsa2048"], C["rsa2048"], signer=lambda d: b"\x01" * 64),
         "rsa2048", "key-type")
    case("PS256 header with P-256 cert", build("PS256", K["p256"], C["p256"], signer=lambda d: b"\x01" * 256),
         "p256", "key-type")
    case("EdDSA header with P-256 cert", build("EdDSA", K["p256"], C["p256"], signer=lambda d: b"\x01" * 64),
         "p256", "key-type")
    case("ES256 with P-384 cert", build("ES256", K["p384"], C["p384"], signer=lambda d: b"\x01" * 64),
         "p384", "key-type")
    case("RS256 header with Ed25519 cert", build("RS256", K["ed25519"], C["ed25519"], signer=lambda d: b"\x01" * 64),
         "ed25519", "key-type")

    # ---- bad certificate argument ----------------------------------------
    p = subprocess.run([sys.executable, VERIFIER, "--cert", os.path.join(tmp, "nope.pem"),
                        "--client-id", CLIENT_ID, "--audience", AUD],
                       input=build("EdDSA", K["ed25519"], C["ed25519"]), capture_output=True, text=True)
    ok = p.returncode == 1 and p.stderr.startswith("FAIL certificate:")
    print(f"{'PASS' if ok else 'FAIL'}  {'missing cert file':<55} rc={p.returncode} {p.stderr.strip()}")
    passed, failed = passed + ok, failed + (not ok)

    print(f"test_verify_assertion: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
