//! Base64url without padding, the only encoding JWS uses.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};

/// Appends the base64url (no padding) encoding of `bytes` to `out`.
pub(crate) fn append_b64url(bytes: &[u8], out: &mut String) {
    URL_SAFE_NO_PAD.encode_string(bytes, out);
}

/// Base64url (no padding) encoding of `bytes`.
pub(crate) fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url without padding; anything else (padding, `+`, `/`) is an error.
pub(crate) fn decode_b64url(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    URL_SAFE_NO_PAD.decode(text)
}
