use clap::Parser;
use origin_discovery::config::{Cli, Command};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::RbacRules(args) => {
            let rules = origin_discovery::sources::rbac_rules(args.node_signals);
            println!(
                "{}",
                serde_json::to_string_pretty(&rules).expect("JSON values serialize")
            );
            std::process::ExitCode::SUCCESS
        }
        _ => {
            eprintln!("not yet wired");
            std::process::ExitCode::FAILURE
        }
    }
}
