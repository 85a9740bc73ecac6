//! `origin-discovery`: parse the command line, set up logging, and hand over to `app`/`dev`.

use std::process::ExitCode;

use origin_discovery::app::{self, Settings};
use origin_discovery::config::{Cli, Command, ControllerArgs, LogFormat, RunArgs};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = match Cli::parse_args(std::env::args_os()) {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            // One clear line, no usage dump: the first line of clap's message.
            let text = e.render().to_string();
            eprintln!(
                "{}",
                text.lines().next().unwrap_or("error: invalid arguments")
            );
            return ExitCode::from(2);
        }
        Err(e) => {
            // --help / --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
    };
    let controller = match &cli.command {
        Command::Run(a) => &a.controller,
        Command::Dev(a) => &a.controller,
        Command::RbacRules(a) => {
            let rules = origin_discovery::sources::rbac_rules(a.node_signals);
            println!(
                "{}",
                serde_json::to_string_pretty(&rules).expect("JSON values serialize")
            );
            return ExitCode::SUCCESS;
        }
        Command::Get(_) | Command::Watch(_) | Command::Pick(_) => {
            return origin_discovery::cli::main(cli.command)
        }
    };
    if let Err(e) = init_tracing(controller) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Run(args) => run(args).await,
            Command::Dev(args) => origin_discovery::dev::run(args).await,
            Command::RbacRules(_) | Command::Get(_) | Command::Watch(_) | Command::Pick(_) => {
                unreachable!("handled above")
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let client = kube_client(&args).await?;
    let running = app::start(
        Settings {
            listen: args.listen,
            admin_listen: args.admin_listen,
            controller: args.controller,
        },
        client,
    )
    .await?;
    let shutdown = running.shutdown.clone();
    tokio::spawn(async move {
        app::termination_signal().await;
        tracing::info!("termination signal received; shutting down");
        shutdown.cancel();
    });
    running.wait().await
}

async fn kube_client(args: &RunArgs) -> anyhow::Result<kube::Client> {
    use anyhow::Context as _;
    let config = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .with_context(|| format!("loading kubeconfig {}", path.display()))?
        }
        None => kube::Config::infer().await.context(
            "no in-cluster config and no usable kubeconfig (set --kubeconfig or KUBECONFIG)",
        )?,
    };
    kube::Client::try_from(config).context("creating the Kubernetes client")
}

fn init_tracing(args: &ControllerArgs) -> Result<(), String> {
    let filter = EnvFilter::try_new(&args.log_level)
        .map_err(|e| format!("invalid --log-level {:?}: {e}", args.log_level))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}
