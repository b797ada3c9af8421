//! A small, seeded byte mutator: the in-process harness that `cargo test` runs over the seed
//! corpus. Not coverage-guided (AFL++ is, in `scripts/fuzz.sh`); its job is to walk a few
//! thousand near-valid inputs per target on every CI run, the same ones every time.

/// Tokens that parsers of JSON, TOML, forms, CSV, PEM and JWS treat specially.
const DICTIONARY: &[&[u8]] = &[
    b"\"",
    b"\\",
    b"\\u0000",
    b"\\ud800",
    b"null",
    b"true",
    b"[]",
    b"{}",
    b"[",
    b"{",
    b",",
    b":",
    b"=",
    b"&",
    b"%",
    b"%00",
    b"%ff",
    b"+",
    b".",
    b"..",
    b"/",
    b"#",
    b"'",
    b"\"\"\"",
    b"\r\n",
    b"\n",
    b"\t",
    b"\0",
    b"-",
    b"0",
    b"-1",
    b"1e999",
    b"-0.0",
    b"1.5",
    b"4294967296",
    b"18446744073709551616",
    b"-9223372036854775809",
    b"9999999999999",
    b"NaN",
    b"inf",
    b"=====",
    b"-----BEGIN ",
    b"-----END ",
    b"PRIVATE KEY-----",
    b"\xef\xbb\xbf",
    b"\xff\xfe",
    b"\xc3\x28",
    b"\xf0\x9f\x92\xa9",
];

/// Inputs are kept below this size (the parsers' own limits are far larger or not hit).
const MAX_LEN: usize = 64 * 1024;

/// A deterministic mutator: the same seed gives the same inputs.
#[derive(Clone, Debug)]
pub struct Mutator {
    state: u64,
}

impl Mutator {
    /// A mutator whose choices follow from `seed`.
    pub fn new(seed: u64) -> Self {
        Mutator { state: seed }
    }

    /// A variant of `input` made by one to four edits; `other` lends bytes to splice in.
    pub fn mutate(&mut self, input: &[u8], other: &[u8]) -> Vec<u8> {
        let mut data = input.to_vec();
        for _ in 0..=self.below(4) {
            self.edit(&mut data, other);
        }
        data.truncate(MAX_LEN);
        data
    }

    fn edit(&mut self, data: &mut Vec<u8>, other: &[u8]) {
        let len = data.len();
        match self.below(8) {
            0 if len > 0 => {
                let at = self.below(len);
                data[at] ^= 1 << self.below(8);
            }
            1 if len > 0 => {
                let at = self.below(len);
                let token = self.token();
                data[at] = token.first().copied().unwrap_or(0);
            }
            2 if len > 0 => {
                let (start, end) = self.range(len);
                data.drain(start..end);
            }
            3 if len > 0 => {
                let (start, end) = self.range(len);
                let copy = data[start..end].to_vec();
                let at = self.below(len + 1);
                data.splice(at..at, copy);
            }
            4 if !other.is_empty() => {
                let (start, end) = self.range(other.len());
                let at = self.below(len + 1);
                data.splice(at..at, other[start..end].iter().copied());
            }
            5 => {
                // A number replaced, where parsers check ranges.
                let digits: Vec<usize> = (0..len).filter(|&i| data[i].is_ascii_digit()).collect();
                let token = self.token();
                if let Some(&at) = digits.get(self.below(digits.len().max(1))) {
                    let end = (at..len)
                        .find(|&i| !data[i].is_ascii_digit())
                        .unwrap_or(len);
                    data.splice(at..end, token.iter().copied());
                }
            }
            6 if len > 0 => {
                let at = self.below(len);
                data.truncate(at);
            }
            _ => {
                let at = self.below(len + 1);
                let token = self.token();
                data.splice(at..at, token.iter().copied());
            }
        }
    }

    fn token(&mut self) -> &'static [u8] {
        DICTIONARY[self.below(DICTIONARY.len())]
    }

    /// A non-empty range inside `0..len` of at most 32 bytes (`len` > 0).
    fn range(&mut self, len: usize) -> (usize, usize) {
        let start = self.below(len);
        let end = start + 1 + self.below((len - start).min(32));
        (start, end)
    }

    /// A number in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (self.next() % n as u64) as usize
    }

    /// SplitMix64.
    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_inputs_and_edits_stay_bounded() {
        let seed = b"{\"exp\": 1700000000, \"aud\": \"api://x\"}";
        let run = |s| {
            let mut m = Mutator::new(s);
            (0..500)
                .map(|_| m.mutate(seed, b"other"))
                .collect::<Vec<_>>()
        };
        let first = run(7);
        assert_eq!(first, run(7));
        assert_ne!(first, run(8));
        assert!(first.iter().any(|m| m.as_slice() != seed));
        assert!(first.iter().all(|m| m.len() <= seed.len() + 4 * 32));
        let mut m = Mutator::new(1);
        assert!((0..100).all(|_| m.mutate(b"", b"").len() <= 4 * 32));
    }
}
