//! The benchmark's hardware anchor: one plain SHA-256 (or SHA-512) pass over a file
//! with the `sha2` crate, 1 MiB reads, nothing else. `bench/verify.py` runs it beside
//! `vendorguard verify` so their ratio shows what verification costs beyond hashing.
//!
//!     cargo run --release --example raw-sha -- sha256 FILE

use std::io::Read;

use sha2::Digest;

fn main() {
    let mut args = std::env::args().skip(1);
    let algo = args.next().unwrap_or_default();
    let path = args.next().expect("usage: raw-sha sha256|sha512 FILE");
    let mut f = std::fs::File::open(&path).expect("open");
    let mut buf = vec![0u8; 1 << 20];
    let hex = match algo.as_str() {
        "sha256" => hash(&mut f, &mut buf, sha2::Sha256::new()),
        "sha512" => hash(&mut f, &mut buf, sha2::Sha512::new()),
        _ => panic!("usage: raw-sha sha256|sha512 FILE"),
    };
    println!("{hex}  {path}");
}

fn hash<D: Digest>(f: &mut std::fs::File, buf: &mut [u8], mut d: D) -> String {
    loop {
        let n = f.read(buf).expect("read");
        if n == 0 {
            break;
        }
        d.update(&buf[..n]);
    }
    d.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
