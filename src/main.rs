//! `dnatune` with no arguments opens the desktop app; with a subcommand it is the command line.

fn main() -> std::process::ExitCode {
    dnatune::tune_allocator();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.len() <= 1 {
        return open_app();
    }
    match dnatune::cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(feature = "gui")]
fn open_app() -> std::process::ExitCode {
    match dnatune::gui::run(Vec::new(), None) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: could not open the dnatune window: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(not(feature = "gui"))]
fn open_app() -> std::process::ExitCode {
    eprintln!(
        "this dnatune was built without the desktop app (feature `gui`); run `dnatune --help` for the command line"
    );
    std::process::ExitCode::FAILURE
}
