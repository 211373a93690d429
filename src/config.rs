//! Runtime configuration of the HTTP service.

/// Default limit on request bodies that are read whole (JSON requests): 16 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// How long a graceful shutdown waits for requests in flight before the process exits anyway.
pub const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 30;

/// How the HTTP application behaves.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Largest request body read whole, in bytes; larger requests get 413.
    pub body_limit: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            body_limit: DEFAULT_BODY_LIMIT,
        }
    }
}
