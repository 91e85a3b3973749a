//! Network plumbing shared by backends, incident sources, alert sinks and the
//! store: HTTP clients and bounded replies, PostgreSQL connections and TLS. A leaf:
//! it knows nothing of breakglass's own types.

pub mod http;
pub mod pg;
