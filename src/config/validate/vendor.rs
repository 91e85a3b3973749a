//! `vendor = true` and its companions (`vendor_max_ttl`, `shell_command`,
//! `record_input`, `recertify_every`) on a role.

use super::super::raw::RawRole;
use super::{parse_duration, Ctx};
use crate::domain::time::human;
use crate::domain::vendor::{VendorPolicy, DEFAULT_RECERTIFY_EVERY, DEFAULT_VENDOR_MAX_TTL};

pub(super) fn vendor_policy(
    ctx: &mut Ctx,
    r: &RawRole,
    name: &str,
    max_ttl: Option<i64>,
) -> Option<VendorPolicy> {
    let by_kind = match &r.kind {
        None => None,
        Some(k) => match k.get_ref().trim() {
            "vendor" => Some(true),
            "standard" => Some(false),
            other => {
                ctx.at(
                    k,
                    format!("role \"{name}\": kind = \"{other}\" is not a role kind; write kind = \"vendor\" or leave it out"),
                );
                None
            }
        },
    };
    let by_flag = r.vendor.as_ref().map(|v| *v.get_ref());
    if let (Some(k), Some(f), Some(span)) = (by_kind, by_flag, &r.vendor) {
        if k != f {
            ctx.at(
                span,
                format!(
                    "role \"{name}\": vendor = {f} contradicts kind = \"{}\"; keep one of them",
                    if k { "vendor" } else { "standard" }
                ),
            );
        }
    }
    let is_vendor = by_flag.or(by_kind).unwrap_or(false);
    if !is_vendor {
        if let Some(t) = &r.vendor_max_ttl {
            ctx.at(
                t,
                format!("role \"{name}\": vendor_max_ttl needs vendor = true"),
            );
        }
        if let Some(c) = &r.shell_command {
            ctx.at(
                c,
                format!("role \"{name}\": shell_command needs vendor = true"),
            );
        }
        if let Some(c) = &r.record_input {
            ctx.at(
                c,
                format!("role \"{name}\": record_input needs vendor = true"),
            );
        }
        if let Some(c) = &r.recertify_every {
            ctx.at(
                c,
                format!("role \"{name}\": recertify_every needs vendor = true"),
            );
        }
        return None;
    }
    let ceiling = match &r.vendor_max_ttl {
        Some(t) => parse_duration(ctx, t, "vendor_max_ttl").unwrap_or(DEFAULT_VENDOR_MAX_TTL),
        None => DEFAULT_VENDOR_MAX_TTL,
    };
    if let (Some(m), Some(span)) = (max_ttl, &r.max_ttl) {
        if m > ceiling {
            ctx.at(
                span,
                format!(
                    "role \"{name}\" is a vendor role: max_ttl {} is longer than vendor_max_ttl {}; write max_ttl = \"{}\" or less",
                    human(m),
                    human(ceiling),
                    human(ceiling)
                ),
            );
        }
    }
    let shell_command = r.shell_command.as_ref().and_then(|c| {
        if c.get_ref().trim().is_empty() {
            ctx.at(c, format!("role \"{name}\": shell_command is empty; write e.g. shell_command = \"psql\" or leave it out for the user's $SHELL"));
            None
        } else {
            Some(c.get_ref().trim().to_string())
        }
    });
    let recertify_every = match &r.recertify_every {
        Some(t) => parse_duration(ctx, t, "recertify_every").unwrap_or(DEFAULT_RECERTIFY_EVERY),
        None => DEFAULT_RECERTIFY_EVERY,
    };
    Some(VendorPolicy {
        max_ttl: ceiling,
        recertify_every,
        shell_command,
        record_input: r.record_input.as_ref().is_some_and(|v| *v.get_ref()),
    })
}
