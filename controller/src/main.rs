//! The `wufb-operator` binary.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use wufb_operator::cli;

#[derive(Parser, Debug)]
#[command(
    name = "wufb-operator",
    version,
    about = "Declarative expedited Windows quality updates through Microsoft Graph"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the controller.
    #[command(
        after_help = "Example:\n  wufb-operator run --namespace wufb-system --credentials-secret wufb-graph-credentials"
    )]
    Run(Box<cli::run::RunArgs>),
    /// Check manifests offline against the schema and the controller's rules (exit 1 on any problem).
    #[command(after_help = "Example:\n  wufb-operator validate -f rollouts/ --strict")]
    Validate(cli::validate::ValidateArgs),
    /// Show what the controller would do to the tenant for these manifests (exit 2 when something would change).
    #[command(after_help = "Example:\n  wufb-operator plan -f rollouts/ -o markdown")]
    Plan(Box<cli::plan::PlanArgs>),
    /// Each rollout's progress: devices up to date, pending, failed, not reporting (`--devices` lists
    /// the ones not up to date, from Graph). As `kubectl-wufb` on the PATH: `kubectl wufb status`.
    #[command(after_help = "Example:\n  wufb-operator status emergency-latest --devices")]
    Status(Box<cli::status::StatusArgs>),
    /// Promote a rollout's waves up to the next one not sent (or --wave) past their gates.
    #[command(after_help = "Example:\n  wufb-operator promote staged-rollout --wave broad -n it")]
    Promote(cli::rollout::RolloutArgs),
    /// Stop promoting a rollout for good: the deployment stays paused until the spec changes.
    #[command(after_help = "Example:\n  wufb-operator abort staged-rollout -n it")]
    Abort(cli::rollout::RolloutArgs),
    /// Lift a halted rollout: the deployment resumes and its gates are measured again.
    #[command(after_help = "Example:\n  wufb-operator retry staged-rollout -n it")]
    Retry(cli::rollout::RolloutArgs),
    /// The field check before a first rollout: the cluster (version, CRDs, operator, permissions,
    /// objects) and the tenant (sign-in, permissions, catalog, service behaviours); read-only unless
    /// --write-check. Exit 0 ok, 1 failed, 3 warnings only. As `kubectl wufb check` too.
    #[command(
        after_help = "Examples:\n  wufb-operator check --pre\n  wufb-operator check -n wufb-system -o markdown\n  wufb-operator check --write-check"
    )]
    Check(Box<cli::check::CheckArgs>),
    /// Run the whole loop on embedded defaults: Graph emulator, test API server, examples, controller.
    #[command(after_help = "Example:\n  wufb-operator demo --keep-running")]
    Demo(cli::demo::DemoArgs),
    /// Print a shell completion script: bash, zsh, fish, powershell or elvish.
    #[command(
        after_help = "Examples:\n  source <(wufb-operator completion bash)\n  wufb-operator completion zsh > \"${fpath[1]}/_wufb-operator\""
    )]
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write the CRD YAML generated from the API types (to crds/ and the chart's templates/crds/).
    #[command(
        after_help = "Examples:\n  wufb-operator crdgen\n  wufb-operator crdgen --stdout | kubectl apply --server-side -f -"
    )]
    Crdgen {
        /// Directories to write plain CRDs into (default: crds/, and the chart's templates/crds/ when the
        /// chart exists).
        #[arg(long = "out")]
        out: Vec<PathBuf>,
        /// Print the CRDs to stdout instead of writing files.
        #[arg(long)]
        stdout: bool,
    },
    /// Write the book's reference pages generated from the code (docs/src/reasons.md and
    /// docs/src/reference/): reasons, custom resources, command line, metrics, chart values.
    #[command(after_help = "Examples:\n  wufb-operator docgen\n  wufb-operator docgen --check")]
    Docgen {
        /// Only compare: exit 1 naming the pages that differ from what would be written.
        #[arg(long)]
        check: bool,
        /// The repository's root.
        #[arg(long, default_value = ".")]
        root: PathBuf,
    },
}

fn docgen(root: &std::path::Path, check: bool) -> anyhow::Result<()> {
    use clap::CommandFactory as _;
    let differ = cli::docgen::run(root, &Cli::command(), check)?;
    for page in &differ {
        println!("{} {}", if check { "differs:" } else { "wrote" }, page.display());
    }
    anyhow::ensure!(
        !check || differ.is_empty(),
        "the reference pages above are out of date: run `wufb-operator docgen`"
    );
    Ok(())
}

fn crdgen(out: Vec<PathBuf>, stdout: bool) -> anyhow::Result<()> {
    if stdout {
        for (_, yaml) in cli::crdgen::expected()? {
            println!("---\n{yaml}");
        }
        return Ok(());
    }
    let dirs = if out.is_empty() {
        cli::crdgen::default_targets(&PathBuf::from("."))
    } else {
        out.into_iter().map(|d| (d, cli::crdgen::Form::Plain)).collect()
    };
    for f in cli::crdgen::write(&dirs)? {
        println!("wrote {}", f.display());
    }
    Ok(())
}

fn rollout(request: cli::rollout::Request, args: &cli::rollout::RolloutArgs) -> anyhow::Result<()> {
    runtime().and_then(|rt| rt.block_on(cli::rollout::run(request, args)))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

#[cfg(feature = "dhat-heap")]
#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// jemalloc rather than glibc's malloc: glibc keeps what a burst of work freed (a 100,000-device group
/// read, a thousand first passes) in per-thread arenas for the life of the process, so RSS stays at
/// its peak; jemalloc hands freed pages back at once (`.cargo/config.toml` sets the decay and the arena
/// count).
#[cfg(all(not(feature = "dhat-heap"), not(target_env = "msvc")))]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// With the `dhat-heap` feature and `WUFB_DHAT_FILE` set, the heap profile written there when the
/// returned guard drops (the process's end).
#[cfg(feature = "dhat-heap")]
fn heap_profiler() -> Option<dhat::Profiler> {
    let file = std::env::var_os("WUFB_DHAT_FILE")?;
    Some(dhat::Profiler::builder().file_name(PathBuf::from(file)).build())
}

fn main() -> ExitCode {
    #[cfg(feature = "dhat-heap")]
    let _profiler = heap_profiler();
    // A usage error exits 1, not clap's 2: `plan` exits 2 when something would change, and a pipeline
    // must not read a mistyped flag as a plan with changes.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let result = match cli.command {
        Command::Crdgen { out, stdout } => crdgen(out, stdout),
        Command::Docgen { check, root } => docgen(&root, check),
        Command::Completion { shell } => {
            use clap::CommandFactory as _;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "wufb-operator",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::Validate(args) => return ExitCode::from(cli::validate::run(&args)),
        Command::Plan(args) => {
            return match runtime() {
                Ok(rt) => ExitCode::from(rt.block_on(cli::plan::run(&args))),
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(1)
                }
            };
        }
        Command::Run(args) => runtime().and_then(|rt| rt.block_on(cli::run::run(*args))),
        Command::Check(args) => {
            return match runtime() {
                Ok(rt) => ExitCode::from(rt.block_on(cli::check::run(&args))),
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(1)
                }
            };
        }
        Command::Status(args) => runtime().and_then(|rt| rt.block_on(cli::status::run(&args))),
        Command::Promote(args) => rollout(cli::rollout::Request::Promote, &args),
        Command::Abort(args) => rollout(cli::rollout::Request::Abort, &args),
        Command::Retry(args) => rollout(cli::rollout::Request::Retry, &args),
        Command::Demo(args) => match runtime().and_then(|rt| rt.block_on(cli::demo::demo(args))) {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::from(1),
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn every_subcommand_shows_an_example_in_its_help() {
        let mut cli = Cli::command();
        for sub in cli.get_subcommands_mut() {
            let name = sub.get_name().to_string();
            let help = sub.render_long_help().to_string();
            assert!(
                help.contains("Example"),
                "{name} --help shows no example:\n{help}"
            );
        }
    }

    fn repository() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    /// The book's reference pages are what `docgen` writes from this code.
    #[test]
    fn the_reference_pages_match_the_code() {
        let differ = cli::docgen::run(&repository(), &Cli::command(), true).expect("the pages are generated");
        assert!(
            differ.is_empty(),
            "out of date: {differ:?}; run `cargo run -p wufb-operator -- docgen`"
        );
    }

    /// Every reason, flag, metric and chart value has an entry in the reference.
    #[test]
    fn the_reference_has_an_entry_for_every_reason_flag_metric_and_value() {
        let root = repository();
        let page = |p: &str| std::fs::read_to_string(root.join(p)).expect("a generated page");
        let reasons = page(cli::docgen::REASONS);
        for e in wufb_operator::reconcile::reasons::REGISTRY {
            assert!(
                reasons.contains(&format!(
                    "<a id=\"{}\"></a>\n\n## {}\n",
                    e.reason.anchor(),
                    e.reason.as_str()
                )),
                "{}",
                e.reason.as_str()
            );
        }
        let cli_page = page(cli::docgen::CLI);
        fn flags(cmd: &clap::Command, path: &str, out: &mut Vec<(String, String)>) {
            for a in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
                if let Some(l) = a.get_long().filter(|l| !matches!(*l, "help" | "version")) {
                    out.push((path.to_string(), l.to_string()));
                }
            }
            for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
                flags(sub, &format!("{path} {}", sub.get_name()), out);
            }
        }
        let mut all = Vec::new();
        flags(&Cli::command(), "wufb-operator", &mut all);
        assert!(all.len() > 50, "{} flags", all.len());
        for (command, flag) in all {
            let section = cli_page
                .split(&format!("## `{command}`\n"))
                .nth(1)
                .and_then(|rest| rest.split("\n## `").next())
                .unwrap_or_else(|| panic!("no section for {command}"));
            assert!(section.contains(&format!("`--{flag}`")), "{command} --{flag}");
        }
        let metrics = page(cli::docgen::METRICS);
        for (name, _, _) in cli::docgen::metric_families().expect("the registry encodes") {
            assert!(metrics.contains(&format!("| `{name}` |")), "{name}");
        }
        let values_page = page(cli::docgen::VALUES);
        let values: serde_yaml::Value = serde_yaml::from_str(
            &std::fs::read_to_string(root.join("charts/wufb-operator/values.yaml")).expect("values.yaml"),
        )
        .expect("values.yaml parses");
        fn paths(v: &serde_yaml::Value, at: &str, out: &mut Vec<String>) {
            match v.as_mapping() {
                Some(m) if !m.is_empty() => {
                    for (k, child) in m {
                        let key = k.as_str().unwrap_or_default();
                        let path = if at.is_empty() {
                            key.to_string()
                        } else {
                            format!("{at}.{key}")
                        };
                        out.push(path.clone());
                        paths(child, &path, out);
                    }
                }
                _ => {}
            }
        }
        let mut all = Vec::new();
        paths(&values, "", &mut all);
        assert!(all.len() > 40, "{} values", all.len());
        for path in all {
            assert!(
                values_page.contains(&format!("| `{path}` |")),
                "chart value {path}"
            );
        }
    }

    /// Every flag says what it does, and a flag shows only under the commands it applies to.
    #[test]
    fn every_flag_has_help_and_offline_is_plans_alone() {
        fn walk(cmd: &clap::Command, path: &str, out: &mut Vec<String>, offline: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    out.push(format!("{path} --{id}"));
                }
                if arg.get_long() == Some("offline") {
                    offline.push(path.to_string());
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), out, offline);
            }
        }
        let (mut bare, mut offline) = (Vec::new(), Vec::new());
        walk(&Cli::command(), "wufb-operator", &mut bare, &mut offline);
        assert!(bare.is_empty(), "flags without help: {bare:?}");
        assert_eq!(offline, ["wufb-operator plan"]);
    }

    #[test]
    fn completions_are_generated_for_each_shell_and_bash_loads_them() {
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
            clap_complete::Shell::PowerShell,
        ] {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "wufb-operator", &mut out);
            let text = String::from_utf8(out).expect("a completion script is text");
            assert!(text.contains("check") && text.contains("promote"), "{shell}");
        }
        let mut bash = Vec::new();
        clap_complete::generate(
            clap_complete::Shell::Bash,
            &mut Cli::command(),
            "wufb-operator",
            &mut bash,
        );
        let file = std::env::temp_dir().join(format!("wufb-operator-completion-{}.bash", std::process::id()));
        std::fs::write(&file, &bash).expect("the script is written");
        let loaded = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "bash -n {0} && source {0} && complete -p wufb-operator",
                file.display()
            ))
            .output()
            .expect("bash runs");
        let _ = std::fs::remove_file(&file);
        assert!(
            loaded.status.success(),
            "{}",
            String::from_utf8_lossy(&loaded.stderr)
        );
        assert!(String::from_utf8_lossy(&loaded.stdout).contains("wufb-operator"));
    }
}
