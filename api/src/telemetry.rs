//! Logging: one global subscriber, installed by the binary at start-up.

/// Install the global tracing subscriber: `RUST_LOG`-style filter, text or JSON lines;
/// colours only when standard error is a terminal (a log file or a collector gets plain text).
pub fn init_tracing(filter: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let result = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    if result.is_err() {
        tracing::debug!("tracing was already initialised");
    }
}
