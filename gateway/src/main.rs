//! The `gateway` command line: parses arguments and hands each command to the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gateway::{certs, conf, node};

/// The proxy allocates and frees small buffers on every request from several threads; mimalloc's
/// per-thread heaps cost less per request than glibc's arenas (see docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "gateway",
    version,
    about = "An API gateway that reads Kong's configuration",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// Configuration file (kong.conf syntax). Default: /etc/kong/kong.conf if it exists, else built-in defaults.
    #[arg(short = 'c', long = "conf", value_name = "FILE")]
    conf: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Start the node in the foreground (what `gateway -c FILE` does).
    Start {
        /// Configuration file (kong.conf syntax).
        #[arg(short = 'c', long = "conf", value_name = "FILE")]
        conf: Option<PathBuf>,
    },
    /// Compile the node's WebAssembly components (router, plugins) into its compile cache and exit,
    /// so that a node started later loads them at once (e.g. when building a container image). A
    /// node's first start runs this in a child process by itself.
    Precompile {
        /// Configuration file (kong.conf syntax).
        #[arg(short = 'c', long = "conf", value_name = "FILE")]
        conf: Option<PathBuf>,
    },
    /// Check a configuration file and report every problem in it.
    Check {
        /// The kong.conf file to check.
        file: PathBuf,
    },
    /// Declarative configuration tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Cluster link tools.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// WebAssembly plugin tools.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Hybrid mode (control plane / data plane) tools.
    Hybrid {
        #[command(subcommand)]
        command: Hybrid,
    },
    /// Print the version.
    Version,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate a declarative file (`_format_version: "3.0"`, YAML or JSON), listing every error.
    Parse {
        /// The declarative file.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Start a new plugin in the directory NAME/: the template plugin with the plugin development
    /// kit and the contract, ready for `cargo build --release` (wasm32-wasip2).
    New {
        /// The plugin's name (lower-case letters, digits and '-').
        name: String,
    },
    /// Load a plugin component and print what it is: name, version, priority, phases, protocols.
    /// Exits 1 with the reason if it does not implement the plugin world (wit/plugin.wit).
    Check {
        /// The component (`NAME.wasm`, built for wasm32-wasip2).
        file: PathBuf,
        /// Also check this configuration (JSON) with the plugin's `check-config`, printing it with
        /// its defaults filled in, or every field at fault (exit 1).
        #[arg(long, value_name = "JSON")]
        config: Option<String>,
    },
    /// Run one request through a plugin, without a gateway: its configuration is checked, then
    /// every phase it declares runs in order. Prints what happened as JSON (the request as it
    /// would go upstream, the plugin's own response, the response to the client, log lines).
    /// The input (JSON, `-` for stdin): {"config": {...}, "request": {"method", "path", "query",
    /// "headers": [[name, value]], ...}, "upstream": {"status", "headers", "body"}, "consumers": [...]}.
    Run {
        /// The component (`NAME.wasm`, built for wasm32-wasip2).
        file: PathBuf,
        /// The input as JSON, or `-` to read it from stdin.
        #[arg(long, value_name = "JSON", default_value = "{}")]
        input: String,
        /// Keep the compiled component in DIR/wasm-cache (as a node does in its prefix), so the
        /// next run of the same file starts at once.
        #[arg(long, value_name = "DIR")]
        cache: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Walk a data plane's path to its control plane hop by hop (resolve, proxy, CONNECT, TLS,
    /// certificate, /v1/outlet) and say which hop fails and why. Exits 0 only if all work.
    Check {
        /// The data plane's configuration file.
        #[arg(short = 'c', long = "conf", value_name = "FILE")]
        conf: PathBuf,
    },
}

#[derive(Subcommand)]
enum Hybrid {
    /// Generate the certificate and key shared by control plane and data planes (cluster_mtls = shared).
    #[command(name = "gen_cert")]
    Cert {
        /// Where to write the certificate (default ./cluster.crt).
        #[arg(requires = "key")]
        cert: Option<PathBuf>,
        /// Where to write the private key (default ./cluster.key).
        key: Option<PathBuf>,
        /// Days the certificate stays valid.
        #[arg(short = 'd', long, default_value_t = certs::DEFAULT_DAYS)]
        days: u32,
    },
    /// Generate a cluster CA for cluster_mtls = pki: self-signed, CA:TRUE, keyCertSign and cRLSign.
    #[command(name = "gen_ca")]
    Ca {
        /// Where to write the CA certificate (default ./cluster_ca.crt).
        #[arg(requires = "key")]
        cert: Option<PathBuf>,
        /// Where to write the CA's private key (default ./cluster_ca.key).
        key: Option<PathBuf>,
        /// Days the CA stays valid (default ten years).
        #[arg(short = 'd', long, default_value_t = certs::ca::CA_DEFAULT_DAYS)]
        days: u32,
        /// The CA's common name.
        #[arg(long, default_value = certs::ca::CA_DEFAULT_NAME)]
        name: String,
    },
    /// Generate a data plane certificate signed by the cluster CA (EKU clientAuth, not a CA).
    #[command(name = "gen_dp_cert")]
    DpCert {
        #[command(flatten)]
        ca: CaFiles,
        /// Where to write the certificate (default ./cluster_dp.crt).
        #[arg(requires = "key")]
        cert: Option<PathBuf>,
        /// Where to write the private key (default ./cluster_dp.key).
        key: Option<PathBuf>,
        /// Days the certificate stays valid.
        #[arg(short = 'd', long, default_value_t = certs::ca::LEAF_DEFAULT_DAYS)]
        days: u32,
        /// The certificate's name (common name and DNS name; the control plane does not check it).
        #[arg(long, default_value = certs::ca::DP_DEFAULT_NAME)]
        name: String,
    },
    /// Generate a control plane certificate signed by the cluster CA (EKU serverAuth, not a CA).
    #[command(name = "gen_cp_cert")]
    CpCert {
        #[command(flatten)]
        ca: CaFiles,
        /// Where to write the certificate (default ./cluster_cp.crt).
        #[arg(requires = "key")]
        cert: Option<PathBuf>,
        /// Where to write the private key (default ./cluster_cp.key).
        key: Option<PathBuf>,
        /// Days the certificate stays valid.
        #[arg(short = 'd', long, default_value_t = certs::ca::LEAF_DEFAULT_DAYS)]
        days: u32,
        /// A DNS name or IP address data planes reach the control plane by (its
        /// cluster_server_name); repeat it or separate names by commas. The first is also the CN.
        #[arg(long, required = true)]
        name: Vec<String>,
    },
}

/// The CA that signs a leaf.
#[derive(clap::Args)]
struct CaFiles {
    /// The cluster CA's certificate (PEM).
    #[arg(long = "ca-cert", value_name = "FILE")]
    ca_cert: PathBuf,
    /// The cluster CA's private key (PKCS#8 PEM).
    #[arg(long = "ca-key", value_name = "FILE")]
    ca_key: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Start { conf: cli.conf }) {
        Command::Start { conf } => start(conf.as_deref()),
        Command::Check { file } => check(&file),
        Command::Precompile { conf } => precompile(conf.as_deref()),
        Command::Hybrid { command: Hybrid::Cert { cert, key, days } } => {
            let cert = cert.unwrap_or_else(|| PathBuf::from("cluster.crt"));
            let key = key.unwrap_or_else(|| PathBuf::from("cluster.key"));
            match certs::gen_cert(&cert, &key, days) {
                Ok(()) => {
                    println!("wrote certificate {} and key {} (valid {days} days)", cert.display(), key.display());
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e.to_string()),
            }
        }
        Command::Hybrid { command: Hybrid::Ca { cert, key, days, name } } => {
            let (cert, key) = paths(cert, key, "cluster_ca");
            match certs::ca::gen_ca(&cert, &key, &name, days) {
                Ok(()) => wrote("CA certificate", &cert, &key, days, None),
                Err(e) => fail(&e.to_string()),
            }
        }
        Command::Hybrid { command: Hybrid::DpCert { ca, cert, key, days, name } } => {
            let (cert, key) = paths(cert, key, "cluster_dp");
            let made = certs::ca::gen_leaf(
                (&ca.ca_cert, &ca.ca_key),
                (&cert, &key),
                certs::ca::Role::DataPlane,
                &[name],
                days,
            );
            match made {
                Ok(warning) => wrote("data plane certificate", &cert, &key, days, warning),
                Err(e) => fail(&e.to_string()),
            }
        }
        Command::Hybrid { command: Hybrid::CpCert { ca, cert, key, days, name } } => {
            let (cert, key) = paths(cert, key, "cluster_cp");
            let made = certs::ca::gen_leaf(
                (&ca.ca_cert, &ca.ca_key),
                (&cert, &key),
                certs::ca::Role::ControlPlane,
                &name,
                days,
            );
            match made {
                Ok(warning) => wrote("control plane certificate", &cert, &key, days, warning),
                Err(e) => fail(&e.to_string()),
            }
        }
        Command::Config { command: ConfigCommand::Parse { file } } => match gateway::entities::parse_file(&file) {
            Ok(config) => {
                let counts: Vec<String> =
                    config.counts().into_iter().filter(|(_, n)| *n > 0).map(|(k, n)| format!("{n} {k}")).collect();
                let summary = if counts.is_empty() { "empty".to_string() } else { counts.join(", ") };
                println!(
                    "parse successful: {} ({summary}; hash {})",
                    file.display(),
                    gateway::entities::config_hash(&config)
                );
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e.to_string()),
        },
        Command::Cluster { command: ClusterCommand::Check { conf } } => cluster_check(&conf),
        Command::Plugin { command: PluginCommand::Check { file, config } } => plugin_check(&file, config.as_deref()),
        Command::Plugin { command: PluginCommand::Run { file, input, cache } } => {
            plugin_run(&file, &input, cache.as_deref())
        }
        Command::Plugin { command: PluginCommand::New { name } } => {
            match gateway::wasm::scaffold::new(Path::new("."), &name) {
                Ok(root) => {
                    println!("created {}: cd {name} && cargo build --release", root.display());
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e.to_string()),
            }
        }
        Command::Version => {
            println!("gateway {}", gateway::VERSION);
            ExitCode::SUCCESS
        }
    }
}

fn check(file: &Path) -> ExitCode {
    match conf::load(Some(file)) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                eprintln!("warning: {warning}");
            }
            println!("configuration at {} is valid", file.display());
            ExitCode::SUCCESS
        }
        Err(error) => {
            if let conf::ConfError::Invalid { warnings, .. } = &error {
                for warning in warnings {
                    eprintln!("warning: {warning}");
                }
            }
            fail(&error.to_string())
        }
    }
}

fn cluster_check(file: &Path) -> ExitCode {
    let loaded = match conf::load(Some(file)) {
        Ok(loaded) => loaded,
        Err(error) => return fail(&error.to_string()),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    let mut out = std::io::stdout();
    if runtime.block_on(gateway::cluster::check::run(&loaded.settings, &mut out)) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A component file's bytes and a runtime to load it in (no compile cache: no node prefix).
fn component(file: &Path) -> Result<(Vec<u8>, gateway::wasm::WasmRuntime), ExitCode> {
    let wasm = std::fs::read(file).map_err(|e| fail(&format!("cannot read {}: {e}", file.display())))?;
    let runtime = gateway::wasm::WasmRuntime::new().map_err(|e| fail(&e.to_string()))?;
    Ok((wasm, runtime))
}

fn plugin_check(file: &Path, config: Option<&str>) -> ExitCode {
    use gateway::wasm::plugin::{phase_name, protocol_name};
    let (wasm, runtime) = match component(file) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    match gateway::wasm::plugin::LoadedPlugin::load(&runtime, &file.display().to_string(), &wasm) {
        Ok(plugin) => {
            let d = &plugin.descriptor;
            let list = |items: Vec<String>| if items.is_empty() { "none".to_string() } else { items.join(", ") };
            println!("name: {}", d.name);
            println!("version: {}", d.version);
            println!("priority: {}", d.priority);
            println!("phases: {}", list(d.phases.iter().map(|p| phase_name(*p).to_string()).collect()));
            println!("protocols: {}", list(d.protocols.iter().map(|p| protocol_name(*p).to_string()).collect()));
            let Some(config) = config else { return ExitCode::SUCCESS };
            match plugin.check_config(config) {
                Ok(Ok(filled)) => {
                    println!("config: {filled}");
                    ExitCode::SUCCESS
                }
                Ok(Err(errors)) => {
                    for error in errors {
                        let path =
                            if error.path.is_empty() { "config".into() } else { format!("config.{}", error.path) };
                        eprintln!("{path}: {}", error.message);
                    }
                    fail("the configuration is refused")
                }
                Err(e) => fail(&e.to_string()),
            }
        }
        Err(e) => fail(&e.to_string()),
    }
}

fn plugin_run(file: &Path, input: &str, cache: Option<&Path>) -> ExitCode {
    let input = if input == "-" {
        let mut text = String::new();
        if let Err(e) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut text) {
            return fail(&format!("cannot read the input from stdin: {e}"));
        }
        text
    } else {
        input.to_string()
    };
    let input: gateway::wasm::plugin_run::RunInput = match serde_json::from_str(&input) {
        Ok(input) => input,
        Err(e) => return fail(&format!("the input is not what `gateway plugin run` takes: {e}")),
    };
    let wasm = match std::fs::read(file) {
        Ok(wasm) => wasm,
        Err(e) => return fail(&format!("cannot read {}: {e}", file.display())),
    };
    let runtime = match cache {
        Some(dir) => std::fs::create_dir_all(dir)
            .map_err(|e| gateway::wasm::WasmError::Engine(format!("cannot create {}: {e}", dir.display())))
            .and_then(|()| gateway::wasm::WasmRuntime::with_cache(dir)),
        None => gateway::wasm::WasmRuntime::new(),
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => return fail(&e.to_string()),
    };
    match gateway::wasm::plugin_run::run(&runtime, &file.display().to_string(), &wasm, input) {
        Ok(output) => {
            println!("{}", serde_json::to_string_pretty(&output).expect("the output serialises"));
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e.to_string()),
    }
}

/// The node's settings from `file` (else Kong's default places, else the built-in defaults), with
/// logging set up at their `log_level`.
fn node_settings(file: Option<&Path>) -> Result<(Option<PathBuf>, conf::Loaded), ExitCode> {
    let file = file.map(Path::to_path_buf).or_else(conf::default_file);
    let loaded = conf::load(file.as_deref()).map_err(|error| fail(&error.to_string()))?;
    node::logging::init(&loaded.settings).map_err(|error| fail(&error.to_string()))?;
    Ok((file, loaded))
}

fn precompile(file: Option<&Path>) -> ExitCode {
    let (_, loaded) = match node_settings(file) {
        Ok(found) => found,
        Err(code) => return code,
    };
    match node::components::precompile(&loaded.settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error.to_string()),
    }
}

fn start(file: Option<&Path>) -> ExitCode {
    let (file, loaded) = match node_settings(file) {
        Ok(found) => found,
        Err(code) => return code,
    };
    match &file {
        Some(path) => tracing::info!(file = %path.display(), "configuration loaded"),
        None => tracing::info!("no configuration file given and none in /etc/kong: running on built-in defaults"),
    }
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("gateway").build() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    let logged_to_stderr = loaded.settings.proxy_error_log == gateway::logs::Destination::Stderr;
    match runtime.block_on(node::run(loaded.settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            // Whoever started the node is told why it did not start, wherever its log is.
            if !logged_to_stderr {
                eprintln!("Error: {error}");
            }
            ExitCode::FAILURE
        }
    }
}

/// The given certificate and key paths, or `./<stem>.crt` and `./<stem>.key`.
fn paths(cert: Option<PathBuf>, key: Option<PathBuf>, stem: &str) -> (PathBuf, PathBuf) {
    (
        cert.unwrap_or_else(|| PathBuf::from(format!("{stem}.crt"))),
        key.unwrap_or_else(|| PathBuf::from(format!("{stem}.key"))),
    )
}

fn wrote(what: &str, cert: &Path, key: &Path, days: u32, warning: Option<String>) -> ExitCode {
    if let Some(warning) = warning {
        eprintln!("warning: {warning}");
    }
    println!("wrote {what} {} and key {} (valid {days} days)", cert.display(), key.display());
    ExitCode::SUCCESS
}

fn fail(message: &str) -> ExitCode {
    eprintln!("Error: {message}");
    ExitCode::FAILURE
}
