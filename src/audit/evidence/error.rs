//! Why a bundle could not be written, sent or verified: what failed, with the
//! underlying error kept as the source, worded as before.

/// The audit log's own error (the store's), passed through whole.
pub type LogError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    /// A file or directory could not be read or written; `what` names it.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A file is not the JSON it should be; `what` says which and what it should be.
    #[error("{what}: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    /// A received file is not the base64 it should be; `what` names it.
    #[error("{what}: {source}")]
    Base64 {
        what: String,
        #[source]
        source: base64::DecodeError,
    },
    /// The bundle's checkpoint does not verify; `what` names the file.
    #[error("{what}: {source}")]
    Checkpoint {
        what: String,
        #[source]
        source: crate::audit::checkpoint::CheckpointError,
    },
    /// A signed decision's signature does not verify; `what` names the event.
    #[error(
        "{what}: its signature does not verify against {}: {source}",
        super::ALLOWED_SIGNERS
    )]
    Signature {
        what: String,
        #[source]
        source: crate::identity::ssh_sign::SigningError,
    },
    /// The audit log could not be read.
    #[error("{0}")]
    Log(#[source] LogError),
    /// The bundle, or the directory it goes in, is not as it must be: a
    /// message for a person, with nothing underneath.
    #[error("{0}")]
    Invalid(String),
}

/// `map_err(io("what"))`: an io::Error about `what`.
pub(super) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> EvidenceError {
    let what = what.into();
    move |source| EvidenceError::Io { what, source }
}

/// `map_err(json("what"))`: a serde_json::Error about `what`.
pub(super) fn json(what: impl Into<String>) -> impl FnOnce(serde_json::Error) -> EvidenceError {
    let what = what.into();
    move |source| EvidenceError::Json { what, source }
}
