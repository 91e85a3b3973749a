//! Vendor roles: emergency access for an outside party, with a TTL ceiling, the
//! vendor's name and company on the request, and a recorded session.

use serde::{Deserialize, Serialize};

/// Default ceiling on a vendor role's max_ttl.
pub const DEFAULT_VENDOR_MAX_TTL: i64 = 3600;
/// Default `recertify_every`: a quarterly access review.
pub const DEFAULT_RECERTIFY_EVERY: i64 = 90 * 86_400;

/// `vendor = true` on a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorPolicy {
    /// Ceiling on any TTL (`vendor_max_ttl`, default 1h); max_ttl never exceeds it.
    pub max_ttl: i64,
    /// Run this instead of the user's `$SHELL` (e.g. "psql").
    pub shell_command: Option<String>,
    /// Record keystrokes too ("i" events). Off by default: they may hold secrets.
    pub record_input: bool,
    /// Seconds a role certification (`breakglass roles recertify`) stays valid;
    /// past it, or before the first one, the role is locked.
    pub recertify_every: i64,
}

/// Who the vendor is, captured on the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VendorInfo {
    pub name: String,
    pub company: String,
}
