//! Where the state lives: a SQLite file (a path) or a PostgreSQL database (a
//! `postgresql://` or `postgres://` URL), parsed once, strictly, from `[watch] state`
//! or a `state migrate` argument.
//!
//! A URL names `USER@HOST[:PORT]/DATABASE` and may carry `sslmode` (`disable`,
//! `require`, `verify-full`; default `verify-full`), `sslrootcert` (a PEM file of the
//! CAs to trust instead of the system's) and `connect_timeout` (seconds). A password in
//! the URL is refused: it comes from the environment variable `password_env` names
//! (`PGPASSWORD` unless it says otherwise), so feeds.toml never holds a secret.
//! `require` checks the server's certificate like `verify-full`: vendorguard does not
//! send its state or a password over a TLS connection it has not authenticated.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateLocation {
    Sqlite(PathBuf),
    Postgres(PgState),
}

/// A PostgreSQL state: where to connect and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgState {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub dbname: String,
    pub sslmode: SslMode,
    /// CAs to trust instead of the system's.
    pub sslrootcert: Option<PathBuf>,
    /// The environment variable holding the password (`PGPASSWORD` by default); unset
    /// or empty: no password.
    pub password_env: String,
    pub connect_timeout: Duration,
}

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP: only for a server on the same host or a trusted network.
    Disable,
    /// TLS, the server's certificate checked against the trusted CAs and its name.
    Require,
    /// The same as `Require`.
    VerifyFull,
}

impl StateLocation {
    /// Reads `value`: a `postgresql://` or `postgres://` URL, else a path relative to
    /// `base`. `password_env` is `[watch] password_env`, if set.
    ///
    /// # Errors
    ///
    /// What is wrong with the URL, in words (the caller names where it came from).
    pub fn parse(
        value: &str,
        base: &Path,
        password_env: Option<&str>,
    ) -> Result<StateLocation, String> {
        let lower = value.get(..13).unwrap_or(value).to_ascii_lowercase();
        if lower.starts_with("postgresql://") || lower.starts_with("postgres://") {
            return parse_url(value, base, password_env).map(StateLocation::Postgres);
        }
        // A URL that is not quite one (`postgresql:/...`, `pg://`, a leading space) is
        // refused rather than taken for a file name: each machine would then keep its
        // own state. The value is not repeated: it may hold a password.
        let lower = value.trim_start().to_ascii_lowercase();
        let scheme = lower.split(':').next().unwrap_or("");
        let mangled =
            lower.starts_with("postgres") && (lower.contains('@') || lower.contains("//"));
        if value.contains("://") || matches!(scheme, "postgresql" | "postgres") || mangled {
            return Err(
                "neither a path nor a URL of the form postgresql://USER@HOST:PORT/DATABASE".into(),
            );
        }
        if password_env.is_some() {
            return Err("password_env is for a postgresql:// state only".into());
        }
        if value.is_empty() {
            return Err("must not be empty".into());
        }
        Ok(StateLocation::Sqlite(base.join(value)))
    }
}

impl fmt::Display for StateLocation {
    /// The path, or the URL without secrets (there are none to hide: a password is
    /// never part of it).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateLocation::Sqlite(p) => write!(f, "{}", p.display()),
            StateLocation::Postgres(pg) => write!(f, "{pg}"),
        }
    }
}

impl fmt::Display for PgState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        write!(
            f,
            "postgresql://{}@{}:{}/{}",
            self.user, host, self.port, self.dbname
        )
    }
}

impl PgState {
    /// The password from the environment, if set and not empty.
    pub fn password(&self) -> Option<String> {
        std::env::var(&self.password_env)
            .ok()
            .filter(|p| !p.is_empty())
    }
}

fn parse_url(value: &str, base: &Path, password_env: Option<&str>) -> Result<PgState, String> {
    let u = url::Url::parse(value).map_err(|e| format!("not a valid URL: {e}"))?;
    if u.password().is_some() {
        return Err(format!(
            "the URL holds a password: remove it and set it in the environment ({}), \
             so feeds.toml holds no credentials",
            password_env.unwrap_or("PGPASSWORD")
        ));
    }
    let host = match u.host() {
        Some(url::Host::Domain(d)) if !d.is_empty() => d.to_string(),
        Some(url::Host::Ipv4(a)) => a.to_string(),
        Some(url::Host::Ipv6(a)) => a.to_string(),
        _ => return Err("the URL names no host (postgresql://USER@HOST:PORT/DATABASE)".into()),
    };
    let user = percent_decoded(u.username(), "user")?;
    if user.is_empty() {
        return Err("the URL names no user (postgresql://USER@HOST:PORT/DATABASE)".into());
    }
    let path = u.path().strip_prefix('/').unwrap_or(u.path());
    let dbname = percent_decoded(path, "database")?;
    if dbname.is_empty() || dbname.contains('/') {
        return Err(
            "the URL names no database, or more than one (postgresql://USER@HOST:PORT/DATABASE)"
                .into(),
        );
    }
    if u.fragment().is_some() {
        return Err("the URL must not have a #fragment".into());
    }
    let mut pg = PgState {
        host,
        port: u.port().unwrap_or(5432),
        user,
        dbname,
        sslmode: SslMode::VerifyFull,
        sslrootcert: None,
        password_env: password_env.unwrap_or("PGPASSWORD").to_string(),
        connect_timeout: Duration::from_secs(10),
    };
    if !is_env_name(&pg.password_env) {
        return Err(format!(
            "password_env {:?} is not an environment variable name",
            pg.password_env
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (k, v) in u.query_pairs() {
        if !seen.insert(k.to_string()) {
            return Err(format!("the URL sets {k} twice"));
        }
        match &*k {
            "sslmode" => {
                pg.sslmode = match &*v {
                    "disable" => SslMode::Disable,
                    "require" => SslMode::Require,
                    "verify-full" => SslMode::VerifyFull,
                    other => {
                        return Err(format!(
                        "sslmode {other:?} is not supported: use disable, require or verify-full \
                             (require checks the server's certificate like verify-full)"
                    ))
                    }
                }
            }
            "sslrootcert" => pg.sslrootcert = Some(base.join(&*v)),
            "connect_timeout" => {
                let secs: u64 = v
                    .parse()
                    .ok()
                    .filter(|s| (1..=3600).contains(s))
                    .ok_or_else(|| {
                        format!("connect_timeout {v:?}: expected whole seconds from 1 to 3600")
                    })?;
                pg.connect_timeout = Duration::from_secs(secs);
            }
            other => {
                return Err(format!(
                    "unknown URL parameter {other:?} (known: sslmode, sslrootcert, connect_timeout)"
                ))
            }
        }
    }
    Ok(pg)
}

/// Whether `name` can name an environment variable (`password_env` and the
/// `state migrate` flags that stand for it).
pub fn is_env_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['=', '\0'])
}

fn percent_decoded(s: &str, what: &str) -> Result<String, String> {
    let d = percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map_err(|_| format!("the URL's {what} is not UTF-8"))?;
    if d.chars().any(char::is_control) {
        return Err(format!("the URL's {what} holds control characters"));
    }
    Ok(d.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<StateLocation, String> {
        StateLocation::parse(s, Path::new("/etc/vg"), None)
    }

    #[test]
    fn a_path_is_sqlite_beside_the_config_and_a_url_is_postgresql() {
        assert_eq!(
            parse("state/vg.sqlite").unwrap(),
            StateLocation::Sqlite(PathBuf::from("/etc/vg/state/vg.sqlite"))
        );
        let StateLocation::Postgres(pg) =
            parse("postgresql://vg@db.example:6543/vgstate?sslmode=disable").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (&*pg.host, pg.port, &*pg.user, &*pg.dbname, pg.sslmode),
            ("db.example", 6543, "vg", "vgstate", SslMode::Disable)
        );
        assert_eq!(pg.password_env, "PGPASSWORD");
        assert_eq!(pg.to_string(), "postgresql://vg@db.example:6543/vgstate");
        let StateLocation::Postgres(pg) = parse("postgres://vg@[::1]/s").unwrap() else {
            panic!()
        };
        assert_eq!((pg.port, pg.sslmode), (5432, SslMode::VerifyFull));
        assert_eq!(pg.to_string(), "postgresql://vg@[::1]:5432/s");
        // Percent-encoding is decoded; '&' and '+' are part of the name.
        let StateLocation::Postgres(pg) = parse("postgresql://a%40b&c+d@h/x%2By&z").unwrap() else {
            panic!()
        };
        assert_eq!((&*pg.user, &*pg.dbname), ("a@b&c+d", "x+y&z"));
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        for (url, want) in [
            ("postgresql://vg:hunter2@h/db", "holds a password"),
            ("postgresql://h/db", "no user"),
            ("postgresql://vg@h/", "no database"),
            ("postgresql://vg@h/a/b", "more than one"),
            ("postgresql://vg@h/db?sslmode=prefer", "not supported"),
            (
                "postgresql://vg@h/db?sslmode=disable&sslmode=require",
                "twice",
            ),
            ("postgresql://vg@h/db?options=-c", "unknown URL parameter"),
            ("postgresql://vg@h/db?connect_timeout=0", "connect_timeout"),
            ("mysql://vg@h/db", "neither a path"),
            ("postgresql:/vg@h/db", "neither a path"),
            ("Postgres:vg@h/db", "neither a path"),
            (" postgresql://vg:hunter2@h/db", "neither a path"),
            ("", "must not be empty"),
        ] {
            let e = parse(url).unwrap_err();
            assert!(e.contains(want), "{url}: {e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
        assert!(StateLocation::parse("s.sqlite", Path::new("/"), Some("X"))
            .unwrap_err()
            .contains("postgresql:// state only"));
    }
}
