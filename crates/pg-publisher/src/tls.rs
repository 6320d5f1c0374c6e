//! TLS to the source database, from Debezium's `database.ssl*` properties.
//!
//! Both connections use it: the SQL one (sqlx: publication, slot, snapshot)
//! and the replication stream (pgwire-replication). Modes follow libpq's
//! `sslmode`; `allow` (plaintext first) is treated as `prefer`, which the
//! replication client offers and which reaches the same servers.

use pgwire_replication::{SslMode, TlsConfig};
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use std::path::PathBuf;

/// `database.sslmode`: how much TLS the source connections insist on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourceSslMode {
    /// `disable`: never.
    Disable,
    /// `prefer` (Debezium's default) and `allow`: TLS when the server
    /// offers it, unverified.
    #[default]
    Prefer,
    /// `require`: TLS, certificate not verified.
    Require,
    /// `verify-ca`: TLS, chain verified against `database.sslrootcert`.
    VerifyCa,
    /// `verify-full`: as `verify-ca`, and the host name must match.
    VerifyFull,
}

impl SourceSslMode {
    /// Parses a `database.sslmode` value.
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "disable" => SourceSslMode::Disable,
            "allow" | "prefer" => SourceSslMode::Prefer,
            "require" => SourceSslMode::Require,
            "verify-ca" | "verify_ca" => SourceSslMode::VerifyCa,
            "verify-full" | "verify_full" => SourceSslMode::VerifyFull,
            _ => return None,
        })
    }
}

/// TLS settings of the source connections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceTls {
    /// `database.sslmode`.
    pub mode: SourceSslMode,
    /// `database.sslrootcert`: PEM file of the CA(s) to verify against
    /// (default: the Mozilla roots).
    pub root_cert: Option<PathBuf>,
    /// `database.sslcert` and `database.sslkey`: a client certificate.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

impl SourceTls {
    /// Applies these settings to the SQL connection.
    pub fn sql(&self, options: PgConnectOptions) -> PgConnectOptions {
        let mut options = options.ssl_mode(match self.mode {
            SourceSslMode::Disable => PgSslMode::Disable,
            SourceSslMode::Prefer => PgSslMode::Prefer,
            SourceSslMode::Require => PgSslMode::Require,
            SourceSslMode::VerifyCa => PgSslMode::VerifyCa,
            SourceSslMode::VerifyFull => PgSslMode::VerifyFull,
        });
        if let Some(ca) = &self.root_cert {
            options = options.ssl_root_cert(ca);
        }
        if let Some((cert, key)) = &self.client_cert {
            options = options.ssl_client_cert(cert).ssl_client_key(key);
        }
        options
    }

    /// The same settings for the replication connection.
    pub fn replication(&self) -> TlsConfig {
        let (cert, key) = self.client_cert.clone().unzip();
        TlsConfig {
            mode: match self.mode {
                SourceSslMode::Disable => SslMode::Disable,
                SourceSslMode::Prefer => SslMode::Prefer,
                SourceSslMode::Require => SslMode::Require,
                SourceSslMode::VerifyCa => SslMode::VerifyCa,
                SourceSslMode::VerifyFull => SslMode::VerifyFull,
            },
            ca_pem_path: self.root_cert.clone(),
            sni_hostname: None,
            client_cert_pem_path: cert,
            client_key_pem_path: key,
        }
    }
}
