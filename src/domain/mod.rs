//! Plain types and the lifecycle state machine. Pure: no I/O and no clock reads;
//! every function takes `now` from its caller.

pub mod audit_action;
pub mod drill;
pub mod duration;
pub mod lifecycle;
pub mod policy;
pub mod request;
pub mod routine;
pub mod time;
pub mod vendor;

pub use audit_action::AuditAction;
pub use lifecycle::{Event, Refusal, RefusalKind};
pub use policy::{Policy, RolePolicy};
pub use request::*;
