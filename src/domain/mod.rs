//! Plain domain types: no HTTP, no SQL. Parsing happens here, once, at the edge.

mod fylke;
mod role;

pub use fylke::{FYLKER, Fylke, FylkeCode, FylkeCodeError};
pub use role::{Role, RoleError};
