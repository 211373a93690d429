//! Runtime configuration of the HTTP service.

/// Default limit on request bodies that are read whole (JSON requests): 16 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// How long a graceful shutdown waits for requests in flight before the process exits anyway.
pub const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 30;

/// Default limit on file uploads (firm registers): 256 MiB, room for the whole national register.
pub const DEFAULT_UPLOAD_LIMIT: usize = 256 * 1024 * 1024;

/// How the HTTP application behaves.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Largest request body read whole, in bytes; larger requests get 413.
    pub body_limit: usize,
    /// Largest file upload (a firm register), in bytes; larger uploads get 413.
    pub upload_limit: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            body_limit: DEFAULT_BODY_LIMIT,
            upload_limit: DEFAULT_UPLOAD_LIMIT,
        }
    }
}
