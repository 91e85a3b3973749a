//! `breakglass evidence`: the engine's side of writing a bundle (the format,
//! writing and verifying are in `audit::evidence`).

use super::*;
use crate::audit::evidence::{self, BuildOptions, Built};
use std::path::Path;

impl Engine {
    /// Writes the evidence bundle of `id` into `dir`. The whole chain (and,
    /// with signing on, every signature and recording) is verified first: a
    /// checkpoint signed now must not bless a broken log. `Ok(Err(broken))`:
    /// it did not verify and nothing was written.
    pub async fn write_evidence(
        &self,
        id: RequestId,
        dir: &Path,
    ) -> Result<std::result::Result<Built, crate::audit::Broken>> {
        self.load(id).await?;
        if let (_, Some(b)) = self.verify_audit().await? {
            return Ok(Err(b));
        }
        let signer = self.alerts.signer.clone();
        let allowed_signers = self
            .policy
            .approval_signing
            .as_ref()
            .map(|s| s.allowed_signers.clone());
        let now = crate::domain::time::ts(self.clock.now());
        let dir = dir.to_path_buf();
        // Hashing and signing the bundle is heavy too: it runs with its reads,
        // on the blocking pool. Its error is a message, carried out as Ok(Err).
        let built = self
            .db(move |s| {
                let opts = BuildOptions {
                    signer: signer.as_deref(),
                    allowed_signers: allowed_signers.as_deref(),
                    now,
                };
                Ok(evidence::write(s, id, &dir, &opts))
            })
            .await?;
        built.map(Ok).map_err(Error::Evidence)
    }
}
