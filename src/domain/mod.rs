//! Plain domain types: no HTTP, no SQL. Parsing happens here, once, at the edge.

mod fylke;
mod naering;
mod orgnr;
mod quarter;
mod role;
mod text;

pub use fylke::{FYLKER, Fylke, FylkeCode, FylkeCodeError};
pub use naering::{
    Bransje, BransjeError, NaeringStandard, NaeringStandardError, Naeringskode, NaeringskodeError,
    Sektor, SektorError,
};
pub use orgnr::{Orgnr, OrgnrError};
pub use quarter::{FIRST_YEAR, LAST_YEAR, Quarter, QuarterError, Quarters};
pub use role::{Role, RoleError};
pub use text::{TextError, check_free_text, check_line, is_forbidden};
