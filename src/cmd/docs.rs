//! `completions` and `man`: documentation generated from the clap definitions in
//! `cli.rs`, so that it cannot drift from the flags. clap_complete writes the shell
//! scripts; the man page is clap_mangen's name, synopsis, description and global
//! options, followed by what it lacks: every command with its own options, the
//! configuration file (the shipped, commented `feeds.toml`), exit status, environment
//! and files. Neither reads the configuration.

use std::io::Write;

use anyhow::Context as _;
use clap::CommandFactory as _;

use crate::cli::Cli;
use crate::cmd::Outcome;

/// The commented example configuration, shown whole in the man page's CONFIGURATION.
const EXAMPLE_CONFIG: &str = include_str!("../../feeds.toml");

/// Prints the completion script for `shell` on stdout.
///
/// # Errors
///
/// Writing to stdout failed.
pub fn run_completions(shell: clap_complete::Shell) -> anyhow::Result<Outcome> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "vendorguard", &mut out);
    write_stdout(&out)
}

/// Prints the man page (roff, section 1) on stdout.
///
/// # Errors
///
/// Writing to stdout failed.
pub fn run_man() -> anyhow::Result<Outcome> {
    write_stdout(man_page().as_bytes())
}

fn write_stdout(bytes: &[u8]) -> anyhow::Result<Outcome> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .context("writing to stdout")?;
    Ok(Outcome::Clean)
}

/// The whole page.
pub fn man_page() -> String {
    let mut cmd = Cli::command();
    cmd.build();
    let man = clap_mangen::Man::new(cmd.clone())
        .source(format!("vendorguard {}", env!("CARGO_PKG_VERSION")));
    let mut out: Vec<u8> = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = man.render_title(&mut out);
    let _ = man.render_name_section(&mut out);
    let _ = man.render_synopsis_section(&mut out);
    let _ = man.render_description_section(&mut out);
    let _ = man.render_options_section(&mut out);
    let mut page = String::from_utf8_lossy(&out).into_owned();
    page.push_str(".SH COMMANDS\n");
    for sub in cmd.get_subcommands() {
        command_section(sub, &mut page);
    }
    page.push_str(".SH CONFIGURATION\n");
    page.push_str(&para(
        "The configuration is TOML, read once and strictly: an unknown key is an error naming \
         the file, the key and the line. Relative paths resolve against the folder holding \
         the file. Every key, with its default, as in the example shipped with vendorguard:",
    ));
    page.push_str(".PP\n.nf\n.RS 2\n");
    for line in EXAMPLE_CONFIG.lines() {
        page.push_str(&escape_line(line));
        page.push('\n');
    }
    page.push_str(".RE\n.fi\n");
    page.push_str(SECTIONS);
    let mut out = Vec::new();
    let _ = man.render_version_section(&mut out);
    page.push_str(&String::from_utf8_lossy(&out));
    page
}

/// One `.SS` per command and nested command: what it does, its usage, its own
/// arguments (the global ones are under OPTIONS).
fn command_section(cmd: &clap::Command, page: &mut String) {
    if cmd.get_name() == "help" {
        return;
    }
    let usage = cmd.clone().render_usage().to_string();
    let usage = usage.strip_prefix("Usage: ").unwrap_or(&usage).trim();
    page.push_str(&format!(".SS \"{}\"\n", roff_text(usage)));
    if let Some(about) = cmd.get_long_about().or(cmd.get_about()) {
        for p in about.to_string().split("\n\n") {
            page.push_str(&para(p));
        }
    }
    for arg in cmd.get_arguments() {
        if arg.is_global_set() || arg.is_hide_set() {
            continue;
        }
        let id = arg.get_id().as_str();
        if id == "help" || id == "version" {
            continue;
        }
        page.push_str(".TP\n");
        page.push_str(&arg_label(arg));
        page.push('\n');
        let help = arg
            .get_long_help()
            .or(arg.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        let mut text = help.replace("\n\n", " ").trim().to_string();
        if !text.is_empty() && !text.ends_with('.') {
            text.push('.');
        }
        let values: Vec<String> = arg
            .get_possible_values()
            .iter()
            .filter(|v| !v.is_hide_set())
            .map(|v| v.get_name().to_string())
            .collect();
        if !values.is_empty() && arg.get_action().takes_values() {
            text.push_str(&format!(" One of: {}.", values.join(", ")));
        }
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        if !defaults.is_empty() && arg.get_action().takes_values() {
            text.push_str(&format!(" [default: {}]", defaults.join(", ")));
        }
        page.push_str(&roff_text(text.trim()));
        page.push('\n');
    }
    for sub in cmd.get_subcommands() {
        command_section(sub, page);
    }
}

/// `\fB--vendor\fR \fINAME\fR`, `\fB-q\fR, \fB--quiet\fR`, or `\fIFILE\fR`.
fn arg_label(arg: &clap::Arg) -> String {
    let value = arg
        .get_value_names()
        .and_then(|v| v.first())
        .map(|v| v.to_string())
        .unwrap_or_else(|| arg.get_id().as_str().to_ascii_uppercase());
    if arg.is_positional() {
        return format!("\\fI{}\\fR", roff_text(&value));
    }
    let mut names = Vec::new();
    if let Some(s) = arg.get_short() {
        names.push(format!("\\fB\\-{}\\fR", roff_text(&s.to_string())));
    }
    if let Some(l) = arg.get_long() {
        names.push(format!("\\fB\\-\\-{}\\fR", roff_text(l)));
    }
    let mut label = names.join(", ");
    if arg.get_action().takes_values() {
        label.push_str(&format!(" \\fI{}\\fR", roff_text(&value)));
    }
    label
}

/// A paragraph of plain text.
fn para(text: &str) -> String {
    let one = text.split_whitespace().collect::<Vec<_>>().join(" ");
    format!(".PP\n{}\n", roff_text(&one))
}

/// Text safe in a roff line: backslashes and hyphens escaped, and no line that starts
/// as a request.
fn roff_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\e"),
            '-' => out.push_str("\\-"),
            _ => out.push(c),
        }
    }
    if out.starts_with('.') || out.starts_with('\'') {
        out.insert_str(0, "\\&");
    }
    out
}

/// One line of a no-fill block.
fn escape_line(line: &str) -> String {
    if line.is_empty() {
        return ".sp".into();
    }
    roff_text(line)
}

/// The hand-written sections: exit status, environment, files, see also.
const SECTIONS: &str = r#".SH "EXIT STATUS"
.TP
\fB0\fR
Verified; or, for the other commands, done with nothing to report.
.TP
\fB1\fR
Rejected (tampered, bad or malformed signature, no signature, digest mismatch,
expired, revoked or weak key or hash, below threshold, unsigned content), an unsafe
archive entry, or findings: a source failed, a delivery is pending, a key needs
attention, no such event.
.TP
\fB2\fR
Could not check: usage, an unreadable bundle, keyring, signature file or state, a bad
configuration.
.TP
\fB3\fR
Unexpected signer: no pinned certificate signed, and a key that is not pinned did.
.TP
\fB75\fR
\fBwatch\fR: another run holds the lock.
.SH ENVIRONMENT
.TP
\fBVENDORGUARD_CONFIG\fR
The configuration file, when \fB\-\-config\fR is not given and the variable is set and
not empty. A file it names that does not exist is an error.
.TP
\fBRUST_LOG\fR
Overrides the log level that \fB\-v\fR and \fB\-q\fR choose, e.g.
\fBvendorguard=debug\fR.
.TP
\fBVENDORGUARD_SMTP_USER\fR, \fBVENDORGUARD_SMTP_PASSWORD\fR
SMTP credentials, under the names \fBuser_env\fR and \fBpassword_env\fR give.
.SH FILES
The configuration is the first found of:
.RS 2
.IP 1. 3
the file given with \fB\-\-config\fR FILE;
.IP 2. 3
the file named by \fB$VENDORGUARD_CONFIG\fR;
.IP 3. 3
\fI./feeds.toml\fR;
.IP 4. 3
\fI/etc/vendorguard/feeds.toml\fR (the Debian package's conffile).
.RE
.TP
\fIkeyring/VENDOR/\fR
Beside the configuration (\fI/etc/vendorguard/keyring/VENDOR/\fR when installed): the
vendor's pinned certificates (\fB*.asc\fR, \fB*.pgp\fR, \fB*.gpg\fR, \fB*.key\fR) and
\fBpinned.sha256\fR, the pinned bundle hashes; \fBkeyring\fR in a \fB[[vendor]]\fR
block chooses another folder.
.TP
\fISTATE\fR, \fISTATE.lock\fR
The watcher's SQLite state (\fB[watch] state\fR; \fI/var/lib/vendorguard/state.db\fR
with the Debian package) and the lock a \fBwatch\fR run holds; both private to their
owner.
.TP
\fI/usr/share/vendorguard/escalate\fR
The default escalation program of the Debian package: event JSON on stdin, one
variable per field in the environment.
.SH "SEE ALSO"
\fBsystemd.service\fR(5), \fBsystemd.timer\fR(5), \fBsqv\fR(1), \fBgpgv\fR(1)
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, want: &str) {
        assert_eq!(roff_text(input), want, "{input:?}");
    }

    #[test]
    fn roff_text_escapes() {
        check("plain", "plain");
        check("--config", "\\-\\-config");
        check("a\\b", "a\\eb");
        check(".SH evil", "\\&.SH evil");
        check("'x", "\\&'x");
    }

    #[test]
    fn page_names_every_command() {
        let page = man_page();
        let cmd = Cli::command();
        for sub in cmd.get_subcommands() {
            let name = format!(
                ".SS \"{}",
                roff_text(&format!("vendorguard {}", sub.get_name()))
            );
            assert!(page.contains(&name), "missing {name}");
        }
        for section in ["EXIT STATUS", "FILES", "CONFIGURATION", "ENVIRONMENT"] {
            assert!(
                page.contains(&format!(".SH {section}"))
                    || page.contains(&format!(".SH \"{section}\"")),
                "missing {section}"
            );
        }
    }
}
