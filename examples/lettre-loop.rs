//! The alert benchmark's anchor: send N plain mails with lettre and run a script N
//! times, with no outbox, no state and no retries. `bench/alerts.py` runs it beside
//! `vendorguard watch --once` delivering N pending events, so their ratio shows what
//! the outbox costs.
//!
//!     cargo run --release --example lettre-loop -- SMTP_PORT SCRIPT N

use lettre::AsyncTransport;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = args
        .next()
        .and_then(|a| a.parse().ok())
        .expect("usage: lettre-loop PORT SCRIPT N");
    let script = args.next().expect("usage: lettre-loop PORT SCRIPT N");
    let n: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .expect("usage: lettre-loop PORT SCRIPT N");
    let mailer =
        lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous("127.0.0.1")
            .port(port)
            .build();
    for i in 0..n {
        let msg = lettre::Message::builder()
            .from("vendorguard@example.com".parse().unwrap())
            .to("oncall@example.com".parse().unwrap())
            .subject(format!("[vendorguard] HIGH acme: advisory {i}"))
            .body(format!("advisory {i}\n"))
            .unwrap();
        mailer.send(msg).await.expect("send");
        let mut child = tokio::process::Command::new(&script)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        {
            use tokio::io::AsyncWriteExt;
            let mut stdin = child.stdin.take().unwrap();
            let _ = stdin.write_all(b"{}").await;
        }
        assert!(child.wait().await.unwrap().success());
    }
}
