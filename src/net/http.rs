//! HTTP for everything breakglass calls (backends, incident sources, webhooks):
//! one way to build a client, to read a reply with a size cap, to put an error's
//! causes on one line, and to decide whether a URL is safe to send secrets to.

use std::time::Duration;
use zeroize::Zeroizing;

/// A client with rustls, both timeouts, no redirects and our user agent.
pub fn client(timeout: Duration, connect_timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(timeout)
        .connect_timeout(connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("breakglass/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Why a reply could not be read whole.
#[derive(Debug)]
pub enum ReadError {
    /// Longer than the cap (announced or read).
    TooLarge,
    Transport(reqwest::Error),
}

/// Reads the whole body, at most `max` bytes, into a buffer wiped on drop (a
/// reply may carry credentials).
pub async fn read_capped(
    mut resp: reqwest::Response,
    max: usize,
) -> Result<Zeroizing<Vec<u8>>, ReadError> {
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(ReadError::TooLarge);
    }
    let hint = resp.content_length().unwrap_or(0).min(max as u64) as usize;
    let mut body = Zeroizing::new(Vec::with_capacity(hint));
    while let Some(chunk) = resp.chunk().await.map_err(ReadError::Transport)? {
        if body.len() + chunk.len() > max {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// An error and its causes on one line, each said once (reqwest's own message is
/// terse). Not cleaned: callers clean it for where it goes.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        src = c.source();
    }
    s
}

/// A URL credentials may be sent to: https, or http to this machine only.
pub fn check_url(url: &str) -> Result<(), String> {
    let u = reqwest::Url::parse(url).map_err(|e| format!("\"{url}\" is not a URL ({e})"))?;
    match u.scheme() {
        "https" => Ok(()),
        "http" => match u.host_str().map(|h| h.trim_start_matches('[').trim_end_matches(']')) {
            Some("localhost") => Ok(()),
            Some(h) if h.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback()) => Ok(()),
            _ => Err(format!(
                "\"{url}\" is plain http to another host; credentials would cross the network in clear text: use https://"
            )),
        },
        other => Err(format!("\"{url}\" has scheme {other}; use https://")),
    }
}
