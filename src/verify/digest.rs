//! One pass over a bundle: every digest the verification needs, from one read.
//!
//! The bundle is read once, through the one open handle the caller passes in, in
//! fixed-size chunks. Each distinct hashing mode (algorithm, v6 salt, text or binary)
//! gets a worker thread fed through a bounded channel, so hashing with SHA-256 and
//! SHA-512 together takes the wall time of the slower one, reading overlaps hashing,
//! and memory stays at a few chunks whatever the bundle's size.
//!
//! The plain SHA-256 of the file (for pins) and a v4 binary SHA-256 signature share one
//! hash state: the result keeps the unfinished context, and callers finish *clones* of
//! it, one for the pin and one per signature. Bytes already in memory (CSAF advisories)
//! are hashed on the calling thread instead: no workers, no pool. This file knows
//! nothing about signatures' meaning; `bundle` decides which context a signature needs.

use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

use openpgp::crypto::hash::Context;
use openpgp::types::HashAlgorithm;
use sequoia_openpgp as openpgp;

/// Bytes per read. Large enough that syscalls do not matter, small enough that the
/// in-flight buffers stay a few MiB.
const CHUNK: usize = 1 << 20;
/// Chunks queued per worker before the reader waits.
const QUEUE: usize = 3;

/// How one signature wants the data hashed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mode {
    pub algo: HashAlgorithm,
    /// The v6 signature salt, hashed before the data; empty for v4.
    pub salt: Vec<u8>,
    /// Text signatures hash the data with line endings normalised to CR LF.
    pub text: bool,
}

impl Mode {
    /// Plain binary hashing with no salt: the mode of the file digest.
    pub fn plain(algo: HashAlgorithm) -> Mode {
        Mode {
            algo,
            salt: Vec::new(),
            text: false,
        }
    }
}

/// What one pass produced: the size and an unfinished context per mode.
pub struct Digests {
    pub size: u64,
    contexts: Vec<(Mode, Context)>,
}

impl Digests {
    /// A clone of the unfinished context for `mode`, ready to be finished.
    pub fn context(&self, mode: &Mode) -> Option<Context> {
        self.contexts
            .iter()
            .find(|(m, _)| m == mode)
            .map(|(_, c)| c.clone())
    }

    /// The plain SHA-256 of the data (always computed).
    pub fn sha256(&self) -> [u8; 32] {
        let ctx = self
            .context(&Mode::plain(HashAlgorithm::SHA256))
            .expect("SHA-256 is always hashed");
        let mut out = [0u8; 32];
        // A supported algorithm with a correctly sized buffer cannot fail.
        let _ = { ctx }.digest(&mut out);
        out
    }
}

/// Hashing with a mode Sequoia does not support (an unknown or private algorithm).
#[derive(Debug, thiserror::Error)]
#[error("hash algorithm {0} is not supported")]
pub struct UnsupportedHash(pub HashAlgorithm);

/// The modes a run needs: SHA-256 for pins first, then each distinct signature mode.
pub fn plan(signature_modes: impl IntoIterator<Item = Mode>) -> Vec<Mode> {
    let mut modes = vec![Mode::plain(HashAlgorithm::SHA256)];
    for m in signature_modes {
        if m.algo.is_supported() && !modes.contains(&m) {
            modes.push(m);
        }
    }
    modes
}

/// Reads `reader` to the end once, hashing it in every mode of `modes`.
///
/// # Errors
///
/// The first read error; or [`UnsupportedHash`] (as `io::ErrorKind::Unsupported`) for a
/// mode whose algorithm is not supported (use [`plan`], which leaves those out).
pub fn hash_once(mut reader: impl Read, modes: &[Mode]) -> io::Result<Digests> {
    let contexts = start_contexts(modes)?;

    // A fixed pool of buffers: each chunk goes back to the pool when the last worker
    // drops it, so memory is bounded and nothing is allocated or zeroed per chunk.
    let pool_size = QUEUE * contexts.len() + 2;
    let (free_tx, free_rx) = sync_channel::<Vec<u8>>(pool_size);
    for _ in 0..pool_size {
        free_tx.send(vec![0u8; CHUNK]).expect("pool has room");
    }

    std::thread::scope(|scope| {
        let mut senders = Vec::with_capacity(contexts.len());
        let mut handles = Vec::with_capacity(contexts.len());
        for (mode, ctx) in contexts {
            let (tx, rx) = sync_channel::<Arc<Chunk>>(QUEUE);
            senders.push(tx);
            handles.push(scope.spawn(move || hash_worker(mode, ctx, rx)));
        }

        let mut size = 0u64;
        let read_result = loop {
            // Every buffer is either here or held by a live chunk that will return it.
            let mut buf = free_rx.recv().expect("the pool sender lives in this scope");
            buf.resize(CHUNK, 0);
            let n = match read_full(&mut reader, &mut buf) {
                Ok(n) => n,
                Err(e) => break Err(e),
            };
            if n == 0 {
                break Ok(());
            }
            buf.truncate(n);
            size += n as u64;
            let chunk = Arc::new(Chunk {
                data: buf,
                pool: free_tx.clone(),
            });
            for tx in &senders {
                // A worker only hangs up by panicking, which join reports below.
                let _ = tx.send(Arc::clone(&chunk));
            }
        };
        drop(senders);
        let contexts: Vec<(Mode, Context)> = handles
            .into_iter()
            .map(|h| h.join().expect("hash worker panicked"))
            .collect();
        read_result.map(|()| Digests { size, contexts })
    })
}

/// Hashes `bytes` already in memory (a CSAF advisory of a few KiB) in every mode of
/// `modes`, on the calling thread: for small inputs the worker threads and the buffer
/// pool of [`hash_once`] cost far more than the hashing itself.
///
/// # Errors
///
/// As [`hash_once`], for a mode whose algorithm is not supported.
pub fn hash_bytes(bytes: &[u8], modes: &[Mode]) -> io::Result<Digests> {
    let mut contexts = start_contexts(modes)?;
    for (mode, ctx) in &mut contexts {
        if mode.text {
            TextNormalizer::default().update(ctx, bytes);
        } else {
            ctx.update(bytes);
        }
    }
    Ok(Digests {
        size: bytes.len() as u64,
        contexts,
    })
}

/// A fresh context per mode, salted for v6 signatures.
fn start_contexts(modes: &[Mode]) -> io::Result<Vec<(Mode, Context)>> {
    let mut contexts = Vec::with_capacity(modes.len());
    for m in modes {
        let mut ctx = m
            .algo
            .context()
            .map_err(|_| io::Error::new(io::ErrorKind::Unsupported, UnsupportedHash(m.algo)))?
            .for_signature(if m.salt.is_empty() { 4 } else { 6 });
        ctx.update(&m.salt);
        contexts.push((m.clone(), ctx));
    }
    Ok(contexts)
}

/// A chunk of the input shared by the workers; its buffer returns to the pool when the
/// last of them is done with it.
struct Chunk {
    data: Vec<u8>,
    pool: std::sync::mpsc::SyncSender<Vec<u8>>,
}

impl Drop for Chunk {
    fn drop(&mut self) {
        // The pool has room for every buffer, so this never blocks; after the reader
        // has finished nobody needs the buffer back and a failed send just frees it.
        let _ = self.pool.try_send(std::mem::take(&mut self.data));
    }
}

fn hash_worker(mode: Mode, mut ctx: Context, rx: Receiver<Arc<Chunk>>) -> (Mode, Context) {
    let mut text = TextNormalizer::default();
    for chunk in rx {
        if mode.text {
            text.update(&mut ctx, &chunk.data);
        } else {
            ctx.update(&chunk.data);
        }
    }
    (mode, ctx)
}

/// Fills `buf` as far as the reader allows; 0 means end of input.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Hashes text with every line ending (CR LF, lone LF, lone CR) as CR LF, the
/// canonical form of OpenPGP text signatures, across chunk boundaries.
#[derive(Default)]
pub struct TextNormalizer {
    last_was_cr: bool,
}

impl TextNormalizer {
    pub fn update(&mut self, ctx: &mut Context, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let mut i = 0;
        if self.last_was_cr && data[0] == b'\n' {
            // The LF of a CR LF split across chunks: already hashed.
            i = 1;
        }
        let mut start = i;
        while i < data.len() {
            if data[i] == b'\r' || data[i] == b'\n' {
                ctx.update(&data[start..i]);
                ctx.update(b"\r\n");
                let crlf = data[i] == b'\r' && data.get(i + 1) == Some(&b'\n');
                i += if crlf { 2 } else { 1 };
                start = i;
            } else {
                i += 1;
            }
        }
        ctx.update(&data[start..]);
        self.last_was_cr = data[data.len() - 1] == b'\r';
    }
}

/// Hashes (SHA-256) everything read through it: the file pin of an inline-signed
/// bundle, computed in the same pass as the parser's signature digests, and an apt
/// index hashed as it is decompressed.
pub struct HashingReader<R> {
    pub inner: R,
    sha256: sha2::Sha256,
    size: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        use sha2::Digest as _;
        HashingReader {
            inner,
            sha256: sha2::Sha256::new(),
            size: 0,
        }
    }

    pub fn finish(self) -> (u64, [u8; 32]) {
        use sha2::Digest as _;
        (self.size, self.sha256.finalize().into())
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use sha2::Digest as _;
        let n = self.inner.read(buf)?;
        self.sha256.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn digest(mut ctx: Context) -> String {
        let mut out = vec![0u8; ctx.digest_size()];
        ctx.digest(&mut out).unwrap();
        hex(&out)
    }

    #[test]
    fn sha256_matches_sha2_and_shares_state() {
        use sha2::Digest as _;
        let data: Vec<u8> = (0..3 * CHUNK + 17).map(|i| (i % 251) as u8).collect();
        let modes = plan([Mode::plain(HashAlgorithm::SHA512)]);
        let d = hash_once(&data[..], &modes).unwrap();
        assert_eq!(d.size, data.len() as u64);
        assert_eq!(hex(&d.sha256()), hex(&sha2::Sha256::digest(&data)));
        let sha512 = d.context(&Mode::plain(HashAlgorithm::SHA512)).unwrap();
        assert_eq!(digest(sha512), hex(&sha2::Sha512::digest(&data)));
        // Finishing one clone leaves the shared state intact for the next.
        assert_eq!(hex(&d.sha256()), hex(&d.sha256()));
    }

    #[test]
    fn in_memory_hashing_equals_the_streaming_pass() {
        let data = b"line one\nline two\r\nline three\r".repeat(100);
        let text = Mode {
            text: true,
            ..Mode::plain(HashAlgorithm::SHA256)
        };
        let salted = Mode {
            salt: vec![7; 32],
            ..Mode::plain(HashAlgorithm::SHA512)
        };
        let modes = plan([text, salted, Mode::plain(HashAlgorithm::SHA512)]);
        let a = hash_once(&data[..], &modes).unwrap();
        let b = hash_bytes(&data, &modes).unwrap();
        assert_eq!(a.size, b.size);
        for m in &modes {
            assert_eq!(
                digest(a.context(m).unwrap()),
                digest(b.context(m).unwrap()),
                "{m:?}"
            );
        }
    }

    #[test]
    fn empty_input() {
        let d = hash_once(&b""[..], &plan([])).unwrap();
        assert_eq!(d.size, 0);
        assert_eq!(
            hex(&d.sha256()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    fn text_digest(chunks: &[&[u8]]) -> String {
        let mut ctx = HashAlgorithm::SHA256.context().unwrap().for_digest();
        let mut n = TextNormalizer::default();
        for c in chunks {
            n.update(&mut ctx, c);
        }
        digest(ctx)
    }

    #[test]
    fn text_mode_normalises_line_endings_across_chunks() {
        let want = text_digest(&[b"a\r\nb\r\nc"]);
        for chunks in [
            &[&b"a\nb\nc"[..]][..],
            &[b"a\rb\rc"],
            &[b"a\r", b"\nb\r\nc"],
            &[b"a", b"\r", b"\n", b"b\n", b"c"],
        ] {
            assert_eq!(text_digest(chunks), want, "{chunks:?}");
        }
        // A CR at a chunk end followed by a non-LF is a line ending of its own.
        assert_eq!(text_digest(&[b"a\r", b"b"]), text_digest(&[b"a\r\nb"]));
        assert_ne!(text_digest(&[b"a\r\n\nb"]), want);
    }
}
