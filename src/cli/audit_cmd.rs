//! `audit verify` (with `--checkpoint`), `audit checkpoint` and `audit export`.

use super::*;
use crate::cli::stdio::outln;

/// The `audit` subcommands that read the store (`keygen` needs none and is
/// handled before one is opened).
pub(super) async fn audit(svc: &Service, cmd: &AuditCmd, json: bool) -> CliResult {
    match cmd {
        AuditCmd::Verify {
            checkpoint,
            public_key,
        } => {
            let (count, broken) = svc.verify_audit().await?;
            let head = svc.audit_head().await.map(|h| h.1).unwrap_or_default();
            output::audit_verify(count, broken.as_ref(), &head, json);
            if broken.is_some() {
                return Ok(exit::AUDIT_BROKEN);
            }
            match checkpoint {
                None => Ok(exit::OK),
                Some(file) => verify_checkpoint(svc, file, public_key.as_deref(), json).await,
            }
        }
        AuditCmd::Checkpoint => {
            let cp = svc.checkpoint().await?;
            outln!("{}", serde_json::to_string_pretty(&cp).expect("serialises"));
            Ok(exit::OK)
        }
        AuditCmd::Keygen { .. } => Ok(exit::OK),
        AuditCmd::Export {
            format,
            output: out,
        } => audit_export(svc, *format, out.as_deref()).await,
    }
}

/// `audit verify --checkpoint`: the checkpoint's signature, then that the log
/// still extends it.
pub(super) async fn verify_checkpoint(
    svc: &Service,
    file: &std::path::Path,
    public_key: Option<&str>,
    json: bool,
) -> CliResult {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Failure::new(exit::USAGE, format!("{}: {e}", file.display())))?;
    let mut v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Failure::new(exit::USAGE, format!("{}: not JSON: {e}", file.display())))?;
    // Accept a bare checkpoint or a whole alert that carries one.
    if v.get("checkpoint").is_some() {
        v = v["checkpoint"].take();
    }
    let cp: crate::audit::checkpoint::Checkpoint = serde_json::from_value(v).map_err(|e| {
        Failure::new(
            exit::USAGE,
            format!("{}: not a checkpoint: {e}", file.display()),
        )
    })?;
    let public = match public_key {
        Some(k) => k.to_string(),
        None => svc.hello().await?.checkpoint_public_key.ok_or_else(|| {
            Failure::new(
                exit::USAGE,
                "pass --public-key HEX (no checkpoint key is configured here)",
            )
        })?,
    };
    let verdict = match crate::audit::checkpoint::verify_signature(&cp, &public) {
        Ok(()) => svc
            .check_checkpoint(&cp)
            .await
            .unwrap_or_else(|e| Err(e.to_string())),
        Err(e) => Err(e.to_string()),
    };
    if json {
        outln!(
            "{}",
            crate::sanitize::json_for_terminal(&serde_json::json!({"checkpoint": cp, "ok": verdict.is_ok(), "error": verdict.as_ref().err()}).to_string())
        );
    }
    match verdict {
        Ok(()) => {
            if !json {
                let at = output::signed_instant(&cp.at, svc.now());
                outln!(
                    "checkpoint verified: the log extends the signed state of {at} ({} events)",
                    cp.tree_size
                );
            }
            Ok(exit::OK)
        }
        Err(e) => {
            if !json {
                outln!("checkpoint FAILED: {e}");
            }
            Ok(exit::AUDIT_BROKEN)
        }
    }
}

pub(super) async fn audit_export(
    svc: &Service,
    format: ExportFormat,
    out: Option<&std::path::Path>,
) -> CliResult {
    use std::io::Write;
    let mut w: Box<dyn Write> = match out {
        Some(p) => Box::new(std::io::BufWriter::new(
            crate::files::create_private(p)
                .map_err(|e| Failure::new(exit::FAILURE, format!("{}: {e}", p.display())))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut ocsf = crate::alert::ocsf::AuditExport::default();
    let mut from = 1;
    loop {
        let batch = svc.audit_events(from, 10_000).await?;
        let Some(last) = batch.last() else { break };
        from = last.seq + 1;
        for r in &batch {
            let written = match format {
                ExportFormat::Jsonl => w
                    .write_all(&crate::audit::export_line(r))
                    .map_err(serde_json::Error::io),
                ExportFormat::Ocsf => serde_json::to_writer(&mut w, &ocsf.render(r)),
            };
            let written = written
                .map_err(std::io::Error::from)
                .and_then(|()| w.write_all(b"\n"));
            if let Err(e) = written {
                return export_failed(e);
            }
        }
    }
    match w.flush() {
        Ok(()) => Ok(exit::OK),
        Err(e) => export_failed(e),
    }
}

/// A reader that went away (`| head`) ends the export quietly; a full disk does not.
fn export_failed(e: std::io::Error) -> CliResult {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        return Ok(exit::OK);
    }
    Err(Failure::new(exit::FAILURE, e.to_string()))
}
