//! The `lifeboat` binary: parses the command line, runs one command, prints its result and
//! turns errors into one line and a documented exit code. All real work is in the library crates.

mod args;
mod cmd;
mod context;
mod exit;
mod output;

use clap::Parser;

fn main() {
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
            eprintln!("lifeboat: {} (see 'lifeboat --help')", first.trim_end());
            std::process::exit(exit::USAGE);
        }
    };
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
