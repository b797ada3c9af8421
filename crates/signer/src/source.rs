//! Reading key and certificate input: bounded file reads, and telling PEM from DER.

use std::path::Path;

use crate::Error;

/// Largest key or certificate file read, in bytes: real ones are a few KiB.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Reads a whole file of at most [`MAX_FILE_BYTES`].
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, Error> {
    use std::io::Read as _;
    let read_error = |source| Error::Read {
        path: path.to_owned(),
        source,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(read_error(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {MAX_FILE_BYTES} bytes: not a key or certificate file"),
        )));
    }
    Ok(bytes)
}

/// Whether `bytes` hold a PEM section (else they are taken as DER).
pub(crate) fn looks_like_pem(bytes: &[u8]) -> bool {
    bytes.windows(11).any(|w| w == b"-----BEGIN ")
}
