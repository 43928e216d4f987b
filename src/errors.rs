//! Every failure the publisher reports, each with a stable `code` that JavaScript callers can
//! branch on. `binding/error.rs` turns these into JS errors in one place (`to_napi`).

use std::fmt;

/// The stable error codes, as JavaScript sees them in `err.code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The event (type, context or data) is malformed; nothing was written.
    InvalidEvent,
    /// The serialized `data` is larger than `maxPayloadBytes`; nothing was written.
    PayloadTooLarge,
    /// Redis refused or failed a command, or could not be reached.
    Redis,
    /// Postgres refused or failed a statement, or could not be reached.
    Database,
    /// The publish did not settle within `timeoutMs`; its outcome is unknown (retry with the same `eventId`).
    Timeout,
    /// The publisher was closed.
    Closed,
    /// The options or environment are invalid.
    Config,
    /// Too many consecutive infrastructure failures: publishing is paused for a cooldown.
    CircuitOpen,
    /// More than `maxInFlight` events are waiting; this one was refused.
    Overloaded,
    /// A caller-supplied `eventId` already belongs to a different event.
    EventIdConflict,
    /// The entries are on the primary, but fewer than `replicaAcks` replicas acknowledged them
    /// within `timeoutMs`; the outcome is unknown (retry with the same `eventId`).
    NotReplicated,
}

impl Code {
    /// The string JavaScript sees.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidEvent => "ERR_INVALID_EVENT",
            Code::PayloadTooLarge => "ERR_PAYLOAD_TOO_LARGE",
            Code::Redis => "ERR_REDIS",
            Code::Database => "ERR_DATABASE",
            Code::Timeout => "ERR_TIMEOUT",
            Code::Closed => "ERR_CLOSED",
            Code::Config => "ERR_CONFIG",
            Code::CircuitOpen => "ERR_CIRCUIT_OPEN",
            Code::Overloaded => "ERR_OVERLOADED",
            Code::EventIdConflict => "ERR_EVENT_ID_CONFLICT",
            Code::NotReplicated => "ERR_NOT_REPLICATED",
        }
    }

    /// Infrastructure failures count towards the circuit breaker; caller mistakes do not.
    pub fn is_infrastructure(self) -> bool {
        matches!(
            self,
            Code::Redis | Code::Database | Code::Timeout | Code::NotReplicated
        )
    }
}

/// A publisher failure: a stable code and a message that already names the cause.
/// Messages never contain credentials: causes are passed through [`redact`] when built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishError {
    /// The stable code.
    pub code: Code,
    /// Human-readable text, cause included, secrets removed.
    pub message: String,
    /// The command may or may not have taken effect (a timeout, a connection lost mid-command):
    /// retrying with the same `eventId` is safe and converges.
    pub outcome_unknown: bool,
    /// A conflict between concurrent writers (deadlock, serialization failure): the statement
    /// did not run and running it again is expected to succeed.
    pub retryable_conflict: bool,
}

impl PublishError {
    /// A new error with this code and message (the message is redacted).
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        PublishError {
            code,
            message: redact(&message.into()),
            outcome_unknown: code == Code::Timeout,
            retryable_conflict: false,
        }
    }

    /// Bad input: names the offending field.
    pub fn invalid(field: &str, problem: &str) -> Self {
        Self::new(Code::InvalidEvent, format!("{field} {problem}"))
    }

    /// A Redis failure during `what`, keeping the driver's cause.
    pub fn redis(what: &str, cause: &redis::RedisError) -> Self {
        let code = if cause.is_timeout() {
            Code::Timeout
        } else {
            Code::Redis
        };
        // A reply (even an error reply) or a refused connection means we know what happened;
        // I/O lost mid-command or a timeout leaves the effect unknown.
        let definite = cause.is_connection_refusal()
            || !(cause.is_io_error() || cause.is_timeout() || cause.is_connection_dropped());
        let mut e = Self::new(code, format!("Redis {what} failed: {cause}"));
        e.outcome_unknown = !definite;
        // A demoted primary (failover) or a cluster slot in transit refused the command without
        // running it: running it again, on the new primary, is expected to succeed.
        e.retryable_conflict = matches!(
            cause.kind(),
            redis::ErrorKind::Server(
                redis::ServerErrorKind::ReadOnly
                    | redis::ServerErrorKind::TryAgain
                    | redis::ServerErrorKind::ClusterDown
                    | redis::ServerErrorKind::MasterDown
            )
        );
        e
    }

    /// A Postgres failure during `what`, keeping the driver's cause.
    pub fn database(what: &str, cause: &sqlx::Error) -> Self {
        // A server error reply, a pool with no free connection, or a refused connection means the
        // statement did not run; anything else (I/O lost mid-statement) leaves it unknown.
        // sqlx reports a refused certificate as an I/O error wrapping the rustls error: name it.
        let tls_io = matches!(cause, sqlx::Error::Io(io)
            if io.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()));
        let definite = match cause {
            sqlx::Error::Database(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
            sqlx::Error::Io(io) => tls_io || io.kind() == std::io::ErrorKind::ConnectionRefused,
            sqlx::Error::Tls(_) | sqlx::Error::Configuration(_) => true,
            _ => false,
        };
        let tls = if tls_io { "TLS handshake failed: " } else { "" };
        let mut e = Self::new(
            Code::Database,
            format!("Postgres {what} failed: {tls}{cause}"),
        );
        e.outcome_unknown = !definite;
        // 40P01 deadlock_detected, 40001 serialization_failure.
        e.retryable_conflict = matches!(cause, sqlx::Error::Database(d)
            if matches!(d.code().as_deref(), Some("40P01" | "40001")));
        e
    }

    /// An operation on `store` that did not finish within the time budget.
    pub fn timeout(what: &str, ms: u64) -> Self {
        Self::new(
            Code::Timeout,
            format!("{what} did not finish within {ms} ms; the outcome is unknown, retry with the same eventId"),
        )
    }

    /// Bad options or environment.
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(Code::Config, message)
    }

    /// The publisher is closed.
    pub fn closed() -> Self {
        Self::new(Code::Closed, "the publisher is closed")
    }
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for PublishError {}

/// Removes passwords from any URL-looking text (`scheme://user:secret@host` becomes
/// `scheme://user:***@host`) and `password=...` pairs, so that driver messages that echo a
/// connection string cannot leak it into an error or a log line.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let (head, tail) = rest.split_at(pos + 3);
        out.push_str(head);
        // The authority ends at the first '/', whitespace or quote; userinfo ends at its last '@'.
        let end = tail
            .find(|c: char| c == '/' || c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.find(':') {
                    Some(colon) => {
                        out.push_str(&userinfo[..colon]);
                        out.push_str(":***");
                    }
                    None => out.push_str(userinfo),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    redact_password_pairs(&out)
}

fn redact_password_pairs(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let Some(pos) = lower.find("password=") else {
        return text.to_string();
    };
    let start = pos + "password=".len();
    let end = text[start..]
        .find(|c: char| c == '&' || c.is_whitespace())
        .map_or(text.len(), |e| start + e);
    format!(
        "{}***{}",
        &text[..start],
        redact_password_pairs(&text[end..])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_url_passwords() {
        assert_eq!(
            redact("connect to redis://:hunter2@127.0.0.1:6379/0 failed"),
            "connect to redis://:***@127.0.0.1:6379/0 failed"
        );
        assert_eq!(
            redact("postgres://app:s3cr%40t@db:5432/x?sslmode=require and rediss://u:p@h"),
            "postgres://app:***@db:5432/x?sslmode=require and rediss://u:***@h"
        );
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(redact("x password=abc&y=1"), "x password=***&y=1");
    }

    #[test]
    fn codes_are_stable_strings() {
        assert_eq!(Code::InvalidEvent.as_str(), "ERR_INVALID_EVENT");
        assert_eq!(Code::Closed.as_str(), "ERR_CLOSED");
        assert_eq!(Code::NotReplicated.as_str(), "ERR_NOT_REPLICATED");
        assert!(Code::Redis.is_infrastructure());
        assert!(!Code::InvalidEvent.is_infrastructure());
    }
}
