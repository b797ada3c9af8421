#!/usr/bin/env python3
"""Independent verifier for tokenbench client assertions (docs/assertion-profile.md).

Usage:
    verify_assertion.py --cert CERT.pem --client-id ID --audience URL [--lifetime 600] < jws

Reads one compact JWS from stdin (surrounding whitespace is trimmed) and checks
it against the Entra ID client-assertion profile:

  * three base64url parts without padding;
  * header exactly {alg, typ, <thumbprint>} with alg in PS256/RS256/ES256/EdDSA,
    typ "JWT", and x5t (SHA-1 of the cert DER, RS256 only) or x5t#S256
    (SHA-256 of the cert DER, every other alg);
  * claims exactly {aud, iss, sub, jti, nbf, iat, exp} with aud == audience,
    iss == sub == client id, jti a canonical lowercase UUIDv4, nbf == iat,
    iat within +-300 s of now, exp - nbf == lifetime;
  * the signature verifies under the certificate's public key, whose type
    must match alg (PS256: RSA-PSS/MGF1-SHA256/salt 32; RS256: PKCS#1 v1.5
    SHA-256; ES256: P-256 ECDSA-SHA256 with a 64-byte r||s signature; EdDSA:
    Ed25519).

Only the Python standard library and `cryptography` are used; it shares no
code with the Rust implementation.

Exit status: 0 and one line `OK <alg> ...` on stdout when every check passes;
1 and `FAIL <check>: <reason>` on stderr when a check fails (2 for command
line usage errors).
"""

import argparse
import base64
import binascii
import hashlib
import json
import re
import sys
import time
import uuid

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

ALGS = ("PS256", "RS256", "ES256", "EdDSA")
CLAIM_KEYS = {"aud", "iss", "sub", "jti", "nbf", "iat", "exp"}
CLOCK_SKEW = 300  # seconds allowed between iat and the verifier's clock
PSS_SALT_LEN = 32
B64URL_RE = re.compile(r"\A[A-Za-z0-9_-]*\Z")


class CheckFailed(Exception):
    def __init__(self, check, reason):
        super().__init__(f"{check}: {reason}")
        self.check = check
        self.reason = reason


def fail(check, reason):
    raise CheckFailed(check, reason)


def b64url_encode(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(part, what):
    """Strict base64url without padding: alphabet, length and canonical form."""
    if "=" in part:
        fail("base64url", f"{what} contains padding '='")
    if not B64URL_RE.match(part):
        bad = sorted({c for c in part if not re.match(r"[A-Za-z0-9_-]", c)})
        fail("base64url", f"{what} contains characters outside the base64url alphabet: {bad!r}")
    if len(part) % 4 == 1:
        fail("base64url", f"{what} has an impossible length {len(part)} (mod 4 == 1)")
    try:
        data = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError) as e:
        fail("base64url", f"{what} does not decode: {e}")
    if b64url_encode(data) != part:
        fail("base64url", f"{what} is not canonical base64url (non-zero trailing bits)")
    return data


def _reject_constant(name):
    raise ValueError(f"non-standard JSON constant {name}")


def _no_duplicates(pairs):
    obj = {}
    for k, v in pairs:
        if k in obj:
            raise ValueError(f"duplicate key {k!r}")
        obj[k] = v
    return obj


def parse_json_object(data, what):
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        fail(f"{what}-json", f"{what} is not UTF-8: {e}")
    try:
        obj = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except ValueError as e:
        fail(f"{what}-json", f"{what} is not valid JSON: {e}")
    if not isinstance(obj, dict):
        fail(f"{what}-json", f"{what} is not a JSON object (got {type(obj).__name__})")
    return obj


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def load_cert(path):
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        fail("certificate", f"cannot read {path}: {e}")
    try:
        if b"-----BEGIN" in raw:
            cert = x509.load_pem_x509_certificate(raw)
        else:
            cert = x509.load_der_x509_certificate(raw)
    except ValueError as e:
        fail("certificate", f"cannot parse {path} as an X.509 certificate: {e}")
    return cert


def key_description(pub):
    if isinstance(pub, rsa.RSAPublicKey):
        return f"RSA-{pub.key_size}"
    if isinstance(pub, ec.EllipticCurvePublicKey):
        return f"EC-{pub.curve.name}"
    if isinstance(pub, ed25519.Ed25519PublicKey):
        return "Ed25519"
    return type(pub).__name__


def parse_lifetime(s):
    m = re.fullmatch(r"\s*(\d+)\s*s?\s*", s)
    if not m:
        raise argparse.ArgumentTypeError(f"lifetime must be whole seconds (e.g. 600 or 600s), got {s!r}")
    return int(m.group(1))


def verify(jws, cert, client_id, audience, lifetime, now):
    # --- structure -------------------------------------------------------
    if not jws:
        fail("structure", "empty input")
    parts = jws.split(".")
    if len(parts) != 3:
        fail("structure", f"compact JWS needs exactly 3 '.'-separated parts, got {len(parts)}")
    h_b64, p_b64, s_b64 = parts
    for name, part in (("header", h_b64), ("payload", p_b64), ("signature", s_b64)):
        if not part:
            fail("structure", f"{name} part is empty")
    header_raw = b64url_decode(h_b64, "header")
    payload_raw = b64url_decode(p_b64, "payload")
    sig = b64url_decode(s_b64, "signature")

    # --- header ----------------------------------------------------------
    header = parse_json_object(header_raw, "header")
    alg = header.get("alg")
    if alg not in ALGS:
        fail("header.alg", f"alg must be one of {', '.join(ALGS)}, got {alg!r}")
    if header.get("typ") != "JWT":
        fail("header.typ", f"typ must be \"JWT\", got {header.get('typ')!r}")
    der = cert.public_bytes(serialization.Encoding.DER)
    if alg == "RS256":
        thumb_key = "x5t"
        expected_thumb = b64url_encode(hashlib.sha1(der).digest())
    else:
        thumb_key = "x5t#S256"
        expected_thumb = b64url_encode(hashlib.sha256(der).digest())
    expected_keys = {"alg", "typ", thumb_key}
    if set(header) != expected_keys:
        extra = sorted(set(header) - expected_keys)
        missing = sorted(expected_keys - set(header))
        fail("header.keys",
             f"header for {alg} must have exactly {sorted(expected_keys)}; "
             f"extra={extra} missing={missing}")
    if header[thumb_key] != expected_thumb:
        fail(f"header.{thumb_key}",
             f"thumbprint {header[thumb_key]!r} != {expected_thumb!r} computed from the certificate DER")

    # --- claims ----------------------------------------------------------
    claims = parse_json_object(payload_raw, "payload")
    if set(claims) != CLAIM_KEYS:
        extra = sorted(set(claims) - CLAIM_KEYS)
        missing = sorted(CLAIM_KEYS - set(claims))
        fail("claims.keys", f"claims must be exactly {sorted(CLAIM_KEYS)}; extra={extra} missing={missing}")
    if claims["aud"] != audience:
        fail("claims.aud", f"aud {claims['aud']!r} != expected {audience!r}")
    if claims["iss"] != client_id:
        fail("claims.iss", f"iss {claims['iss']!r} != client id {client_id!r}")
    if claims["sub"] != client_id:
        fail("claims.sub", f"sub {claims['sub']!r} != client id {client_id!r}")
    jti = claims["jti"]
    if not isinstance(jti, str):
        fail("claims.jti", f"jti must be a string, got {type(jti).__name__}")
    try:
        u = uuid.UUID(jti)
    except ValueError:
        fail("claims.jti", f"jti {jti!r} is not a UUID")
    if str(u) != jti:
        fail("claims.jti", f"jti {jti!r} is not in canonical lowercase hyphenated form ({str(u)!r})")
    if u.variant != uuid.RFC_4122 or u.version != 4:
        fail("claims.jti", f"jti {jti!r} is not a version-4 RFC 4122 UUID (version={u.version}, variant={u.variant})")
    for k in ("nbf", "iat", "exp"):
        if not is_int(claims[k]):
            fail(f"claims.{k}", f"{k} must be an integer NumericDate, got {claims[k]!r}")
    nbf, iat, exp = claims["nbf"], claims["iat"], claims["exp"]
    if nbf != iat:
        fail("claims.nbf", f"nbf {nbf} != iat {iat}")
    if abs(iat - now) > CLOCK_SKEW:
        fail("claims.iat", f"iat {iat} is {iat - now:+d} s from now ({now}); allowed +-{CLOCK_SKEW} s")
    if exp - nbf != lifetime:
        fail("claims.exp", f"exp - nbf = {exp - nbf} s, expected lifetime {lifetime} s")

    # --- signature -------------------------------------------------------
    signing_input = f"{h_b64}.{p_b64}".encode("ascii")
    pub = cert.public_key()
    try:
        if alg in ("PS256", "RS256"):
            if not isinstance(pub, rsa.RSAPublicKey):
                fail("key-type", f"{alg} needs an RSA key, certificate has {key_description(pub)}")
            expected_len = (pub.key_size + 7) // 8
            if len(sig) != expected_len:
                fail("signature", f"{alg} signature is {len(sig)} bytes, expected {expected_len} for {key_description(pub)}")
            if alg == "PS256":
                pad = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=PSS_SALT_LEN)
            else:
                pad = padding.PKCS1v15()
            pub.verify(sig, signing_input, pad, hashes.SHA256())
        elif alg == "ES256":
            if not isinstance(pub, ec.EllipticCurvePublicKey) or not isinstance(pub.curve, ec.SECP256R1):
                fail("key-type", f"ES256 needs a P-256 key, certificate has {key_description(pub)}")
            if len(sig) != 64:
                fail("signature", f"ES256 signature must be 64 bytes r||s, got {len(sig)}")
            r = int.from_bytes(sig[:32], "big")
            s = int.from_bytes(sig[32:], "big")
            pub.verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(hashes.SHA256()))
        elif alg == "EdDSA":
            if not isinstance(pub, ed25519.Ed25519PublicKey):
                fail("key-type", f"EdDSA needs an Ed25519 key, certificate has {key_description(pub)}")
            if len(sig) != 64:
                fail("signature", f"EdDSA signature must be 64 bytes, got {len(sig)}")
            pub.verify(sig, signing_input)
    except InvalidSignature:
        detail = " (RSA-PSS, MGF1-SHA256, salt length 32)" if alg == "PS256" else ""
        fail("signature", f"{alg} signature does not verify under the certificate key{detail}")

    return (f"OK {alg} {thumb_key}={header[thumb_key]} key={key_description(pub)} "
            f"jti={jti} iat={iat} exp={exp}")


def main(argv=None):
    ap = argparse.ArgumentParser(description="Verify a tokenbench client assertion (compact JWS on stdin).")
    ap.add_argument("--cert", required=True, help="certificate (PEM or DER) whose key signed the assertion")
    ap.add_argument("--client-id", required=True, help="expected iss and sub")
    ap.add_argument("--audience", required=True, help="expected aud (token endpoint URL)")
    ap.add_argument("--lifetime", type=parse_lifetime, default=600,
                    help="expected exp - nbf in seconds (default 600)")
    ap.add_argument("--now", type=int, default=None, help=argparse.SUPPRESS)  # for tests
    args = ap.parse_args(argv)

    now = args.now if args.now is not None else int(time.time())
    try:
        jws = sys.stdin.read().strip()
        cert = load_cert(args.cert)
        line = verify(jws, cert, args.client_id, args.audience, args.lifetime, now)
    except CheckFailed as e:
        print(f"FAIL {e.check}: {e.reason}", file=sys.stderr)
        return 1
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
