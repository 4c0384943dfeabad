//! Support for the integration tests: the dev-only `dropreel-testkit` (fake Runway API, image
//! makers, studios), plus what needs dropreel itself or the binary under test, and the
//! scenario builder that sets a test up and checks what it expects.

mod browser;
mod in_process;
mod process;
mod requests;
mod scenario;
mod tail;
mod video;

pub use browser::*;
pub use dropreel_testkit::*;
pub use in_process::*;
pub use process::*;
pub use requests::*;
pub use scenario::*;
pub use tail::*;
pub use video::*;
