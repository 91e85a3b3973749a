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
    pub fn write_evidence(
        &self,
        id: RequestId,
        dir: &Path,
    ) -> Result<std::result::Result<Built, crate::audit::Broken>> {
        self.load(id)?;
        if let (_, Some(b)) = self.verify_audit()? {
            return Ok(Err(b));
        }
        let opts = BuildOptions {
            signer: self.checkpoint_signer(),
            allowed_signers: self
                .policy
                .approval_signing
                .as_ref()
                .map(|s| s.allowed_signers.as_path()),
            now: crate::domain::time::ts(self.clock.now()),
        };
        evidence::write(self.store.as_ref(), id, dir, &opts)
            .map(Ok)
            .map_err(Error::Config)
    }
}
