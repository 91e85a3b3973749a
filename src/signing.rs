//! Request signing shared by everything breakglass POSTs to a server it does not
//! control (HTTP backend, alert webhooks): `sha256=<hex HMAC-SHA256(secret,
//! "<unix timestamp>.<body>")>`, sent with the timestamp so receivers can refuse
//! replays outside a window.

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const SIGNATURE_HEADER: &str = "X-Breakglass-Signature";
pub const TIMESTAMP_HEADER: &str = "X-Breakglass-Timestamp";

pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Constant-time check of a received signature, for receivers and tests.
pub fn verify(secret: &[u8], timestamp: i64, body: &[u8], signature: &str) -> bool {
    let Some(hexsig) = signature.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(bytes) = hex::decode(hexsig) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&bytes).is_ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn signatures_cover_timestamp_and_body() {
        let s = super::sign(b"k", 10, b"{}");
        assert!(super::verify(b"k", 10, b"{}", &s));
        assert!(!super::verify(b"k", 11, b"{}", &s));
        assert!(!super::verify(b"k", 10, b"{ }", &s));
        assert!(!super::verify(b"x", 10, b"{}", &s));
    }
}
