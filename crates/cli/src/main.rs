//! The `lifeboat` binary: parses the command line, runs one command, prints its result and
//! turns errors into one line and a documented exit code. All real work is in the library crates.

mod args;
mod cmd;
mod context;
mod exit;
mod man;
mod output;

pub use lifeboat_service::session::DEFAULT_CONFIG;

use clap::Parser;

/// glibc gives busy threads their own malloc arena and keeps freed memory there; with a dozen
/// pipeline threads passing multi-MiB chunks and packs around, a backup's peak RSS was 1.8x the
/// live heap. One arena keeps it at the live heap (measured: 255 MB -> 123 MB on 1.2 GB of
/// files; a second arena still adds 16-25 MB there, docs/benchmarks.md). The commands that
/// parse trees on every core (check, prune, restore) allocate small objects from all threads at
/// once instead: one arena made them wait on its lock (check of a million files 1.46 s with an
/// arena per core, 2.2-3.0 s with one, same peak RSS), so they get one per core. Environment
/// tuning (MALLOC_ARENA_MAX) still wins if a user sets it. Called before any other thread
/// exists.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn limit_malloc_arenas(command: &args::Command) {
    use args::Command;
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        let arenas = match command {
            Command::Check(_)
            | Command::Prune(_)
            | Command::Forget(_)
            | Command::ApplyRetention(_)
            | Command::Restore(_) => std::thread::available_parallelism().map_or(2, |n| n.get()),
            _ => 1,
        };
        let arenas = libc::c_int::try_from(arenas).unwrap_or(1);
        // SAFETY: mallopt only adjusts allocator tuning; it is called in main before any other
        // thread exists, and takes no pointers.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas(_command: &args::Command) {}

/// Restore the default SIGPIPE action: Rust ignores SIGPIPE, so `lifeboat snapshots | head`
/// would make the next `println!` panic on the closed pipe; like other Unix tools (and ripgrep),
/// a closed output pipe should just end the process quietly.
#[cfg(unix)]
#[allow(unsafe_code)]
fn default_sigpipe() {
    // SAFETY: called first thing in main, before any other thread exists; SIG_DFL is a valid
    // disposition and no handler code is installed.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(not(unix))]
fn default_sigpipe() {}

fn main() {
    default_sigpipe();
    for var in lifeboat_service::session::unset_empty_variables() {
        eprintln!("note: {var} is set but empty; treating it as unset");
    }
    let cli = match args::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                std::process::exit(if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    exit::USAGE
                } else {
                    exit::OK
                });
            }
            // One line: the first line of clap's message, without the usage block.
            let text = e.render().to_string();
            let mut lines = text.lines();
            let mut first = lines.next().unwrap_or("invalid arguments").trim_start_matches("error: ").to_string();
            // "the following required arguments were not provided:" lists them on the next lines.
            if first.ends_with(':') {
                let more: Vec<&str> = lines.take_while(|l| !l.trim().is_empty()).map(str::trim).collect();
                first = format!("{} {}", first, more.join(", "));
            }
            eprintln!("lifeboat: {} (see '{} --help')", first.trim_end(), help_for());
            std::process::exit(exit::USAGE);
        }
    };
    limit_malloc_arenas(&cli.command);
    let interrupt = context::install_interrupt_handler();
    let code = match cmd::run(cli, interrupt) {
        Ok(code) => code,
        Err(e) => {
            let code = exit::code_for(&e);
            eprintln!("lifeboat: {}", exit::message(&e));
            code
        }
    };
    std::process::exit(code);
}

/// The command whose help explains a parse error: `lifeboat backup` for an error in backup's
/// arguments, `lifeboat` for an unknown subcommand. Words that are not subcommands (flag
/// values, paths) are skipped.
fn help_for() -> String {
    use clap::CommandFactory;
    let mut cmd = args::Cli::command();
    let mut path = vec!["lifeboat".to_string()];
    for w in std::env::args().skip(1).filter(|a| !a.starts_with('-')) {
        if let Some(sub) = cmd.find_subcommand(&w) {
            let sub = sub.clone();
            path.push(w);
            cmd = sub;
        }
    }
    path.join(" ")
}
