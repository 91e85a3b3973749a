#![forbid(unsafe_code)] // no unsafe in the product; the test harness alone needs pre_exec
use clap::Parser;

fn main() {
    let cli = match breakglass::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => std::process::exit(breakglass::cli::usage_error(&e)),
    };
    // The broker logs who called what (its journal is the service's record of
    // use beside the audit log); commands stay quiet unless asked.
    let default_filter = match cli.command {
        Some(breakglass::cli::args::Command::Broker { .. }) => "warn,breakglass::broker=info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BREAKGLASS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("breakglass: cannot start the runtime: {e}");
            std::process::exit(breakglass::exit::FAILURE);
        }
    };
    let code = rt.block_on(breakglass::cli::run(cli));
    std::process::exit(code);
}
