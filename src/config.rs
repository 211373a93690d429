//! Runtime configuration of the HTTP service.

use std::net::SocketAddr;

/// Default limit on request bodies that are read whole (JSON requests): 16 MiB. Bulk uploads
/// stream and are limited separately.
pub const DEFAULT_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// How the HTTP service runs.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Address to listen on.
    pub bind: SocketAddr,
    /// Largest request body read whole, in bytes; larger requests get 413.
    pub body_limit: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            body_limit: DEFAULT_BODY_LIMIT,
        }
    }
}
