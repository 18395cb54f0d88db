//! `dataplane`: the host dataplane process (`run`, `stats`, `reload`) serving the KV
//! example service. Everything but the choice of service is in `dataplane::host`.

fn main() -> std::process::ExitCode {
    dataplane::host::cli::main(kv_example::host::KvHosted::new)
}
