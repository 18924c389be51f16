//! Splitting files that hold several ASCII-armored blocks.
//!
//! Sequoia's armor reader decodes one block at a time, but real files concatenate them:
//! a keyring exported key by key, a `.asc` holding signatures from several builders.
//! This file only finds block boundaries and labels; decoding is left to Sequoia.

/// One armored block: its label (`PGP SIGNATURE`, `PGP PUBLIC KEY BLOCK`, ...) and its
/// bytes from `-----BEGIN` to the end of the `-----END` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block<'a> {
    pub label: String,
    pub bytes: &'a [u8],
}

/// Whether `bytes` looks armored: the first non-blank text is a `-----BEGIN ` line.
pub fn is_armored(bytes: &[u8]) -> bool {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    bytes[start..].starts_with(b"-----BEGIN ")
}

/// Finds every armored block in `bytes`. Text outside blocks is ignored, as GnuPG does.
/// A block without its `-----END` line runs to the end of the input, so that the decoder
/// can report the truncation.
pub fn blocks(bytes: &[u8]) -> Vec<Block<'_>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(begin) = find(&bytes[pos..], b"-----BEGIN ").map(|i| i + pos) {
        let label_start = begin + b"-----BEGIN ".len();
        let line_end = bytes[label_start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |i| i + label_start);
        let header = &bytes[label_start..line_end];
        let label = String::from_utf8_lossy(header)
            .trim_end()
            .trim_end_matches('-')
            .to_string();
        let end_marker = format!("-----END {label}-----");
        let end = match find(&bytes[line_end..], end_marker.as_bytes()) {
            Some(i) => {
                let after = line_end + i + end_marker.len();
                bytes[after..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(bytes.len(), |j| after + j + 1)
            }
            None => bytes.len(),
        };
        out.push(Block {
            label,
            bytes: &bytes[begin..end],
        });
        pos = end;
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, want: &[&str]) {
        let got: Vec<String> = blocks(input.as_bytes())
            .into_iter()
            .map(|b| b.label)
            .collect();
        assert_eq!(got, want, "{input:?}");
    }

    #[test]
    fn finds_each_block_and_its_label() {
        check("", &[]);
        check("garbage", &[]);
        check(
            "-----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----\n",
            &["PGP SIGNATURE"],
        );
        check(
            "note\n-----BEGIN PGP SIGNATURE-----\nA\n-----END PGP SIGNATURE-----\n\
             -----BEGIN PGP PUBLIC KEY BLOCK-----\nB\n-----END PGP PUBLIC KEY BLOCK-----",
            &["PGP SIGNATURE", "PGP PUBLIC KEY BLOCK"],
        );
        check(
            "-----BEGIN PGP SIGNATURE-----\ntruncated",
            &["PGP SIGNATURE"],
        );
    }

    #[test]
    fn armored_detection_skips_leading_blank_lines() {
        assert!(is_armored(b"\n\n -----BEGIN PGP SIGNATURE-----"));
        assert!(!is_armored(b"\x88\x75"));
        assert!(!is_armored(b""));
    }
}
