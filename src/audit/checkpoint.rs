//! Signed checkpoints: the hash chain cannot show that its tail was cut off, or
//! that someone with write access recomputed it. A checkpoint (tree size + head
//! hash, signed with an Ed25519 key kept outside the store) travels with every
//! SOC alert; `audit verify --checkpoint` proves the current log extends it.

use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

const DOMAIN: &str = "breakglass-checkpoint/v1";

/// Why a checkpoint key could not be used or a checkpoint does not verify;
/// worded for the person who set the key up.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The key file could not be read or written; `what` names it.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("bad public key: {0}")]
    BadPublicKey(#[source] ed25519_dalek::SignatureError),
    #[error(
        "the checkpoint's signature does not verify with this public key: it was forged or altered"
    )]
    Forged(#[source] ed25519_dalek::SignatureError),
    /// A key or a checkpoint that is not what it must be (its permissions, its
    /// length): a message with nothing underneath.
    #[error("{0}")]
    Invalid(String),
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> CheckpointError {
    move |source| CheckpointError::Io { what, source }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub tree_size: i64,
    pub head: String,
    pub at: String,
    pub key_id: String,
    pub signature: String,
}

fn message(tree_size: i64, head: &str, at: &str) -> Vec<u8> {
    format!("{DOMAIN}\n{tree_size}\n{head}\n{at}\n").into_bytes()
}

fn key_id(public: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(public.as_bytes())[..8])
}

pub struct Signer {
    key: SigningKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", self.key_id())
    }
}

impl Signer {
    /// Reads a key written by `generate` (hex seed). Refuses a key file other
    /// users can read: a leaked key lets anyone forge checkpoints.
    pub fn load(path: &Path) -> Result<Signer, CheckpointError> {
        use std::os::unix::fs::PermissionsExt;
        let meta =
            std::fs::metadata(path).map_err(io(format!("checkpoint key {}", path.display())))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(CheckpointError::Invalid(format!(
                "checkpoint key {} is readable by other users; run chmod 600 on it",
                path.display()
            )));
        }
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(io(format!("checkpoint key {}", path.display())))?,
        );
        let seed = zeroize::Zeroizing::new(hex::decode(text.trim()).map_err(|_| {
            CheckpointError::Invalid(format!(
                "checkpoint key {} is not a hex key from `breakglass audit keygen`",
                path.display()
            ))
        })?);
        let seed: [u8; 32] = seed.as_slice().try_into().map_err(|_| {
            CheckpointError::Invalid(format!(
                "checkpoint key {} must hold 32 bytes",
                path.display()
            ))
        })?;
        Ok(Signer {
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// Writes a new private key (mode 0600, never over an existing file) and
    /// returns the signer.
    pub fn generate(path: &Path) -> Result<Signer, CheckpointError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io(path.display().to_string()))?;
        let hexseed = zeroize::Zeroizing::new(hex::encode(key.to_bytes()));
        f.write_all(hexseed.as_bytes())
            .map_err(io(path.display().to_string()))?;
        Ok(Signer { key })
    }

    pub fn public_hex(&self) -> String {
        hex::encode(self.key.verifying_key().as_bytes())
    }

    pub fn key_id(&self) -> String {
        key_id(&self.key.verifying_key())
    }

    pub fn sign(&self, tree_size: i64, head: &str, at: &str) -> Checkpoint {
        let sig = self.key.sign(&message(tree_size, head, at));
        Checkpoint {
            tree_size,
            head: head.to_string(),
            at: at.to_string(),
            key_id: self.key_id(),
            signature: hex::encode(sig.to_bytes()),
        }
    }
}

/// Checks a checkpoint's signature against a public key (hex).
pub fn verify_signature(cp: &Checkpoint, public_hex: &str) -> Result<(), CheckpointError> {
    let invalid = |m: &str| CheckpointError::Invalid(m.to_string());
    let bytes: [u8; 32] = hex::decode(public_hex.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            invalid("the public key must be 64 hex characters (from `breakglass audit keygen`)")
        })?;
    let public = VerifyingKey::from_bytes(&bytes).map_err(CheckpointError::BadPublicKey)?;
    let sig: [u8; 64] = hex::decode(&cp.signature)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| invalid("the checkpoint's signature is malformed"))?;
    public
        .verify(
            &message(cp.tree_size, &cp.head, &cp.at),
            &Signature::from_bytes(&sig),
        )
        .map_err(CheckpointError::Forged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_bind_size_head_and_time() {
        let d = tempfile::tempdir().unwrap();
        let s = Signer::generate(&d.path().join("k")).unwrap();
        let cp = s.sign(7, "abc", "2026-11-25T00:00:00Z");
        verify_signature(&cp, &s.public_hex()).unwrap();
        for bad in [
            Checkpoint {
                tree_size: 6,
                ..cp.clone()
            },
            Checkpoint {
                head: "abd".into(),
                ..cp.clone()
            },
            Checkpoint {
                at: "2026-11-26T00:00:00Z".into(),
                ..cp.clone()
            },
        ] {
            assert!(verify_signature(&bad, &s.public_hex()).is_err());
        }
        let other = Signer::generate(&d.path().join("k2")).unwrap();
        assert!(verify_signature(&cp, &other.public_hex()).is_err());
        // Reloading the key gives the same signer; generate never overwrites.
        assert_eq!(
            Signer::load(&d.path().join("k")).unwrap().public_hex(),
            s.public_hex()
        );
        assert!(Signer::generate(&d.path().join("k")).is_err());
    }

    #[test]
    fn a_key_readable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k");
        Signer::generate(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(Signer::load(&p)
            .unwrap_err()
            .to_string()
            .contains("chmod 600"));
    }
}
