//! `dropreel init`, and the studio `run --examples` makes: [`create_studio`] (the four folders, a
//! commented `dropreel.yaml`, a folder in `inbox/` per preset) and [`copy_examples`] (our example
//! files into `inbox/`).

use std::path::Path;
use std::time::Duration;

use crate::cli::args::Cli;
use crate::cli::demo;
use crate::cli::exit::{fatal, invoked_as};
use crate::config;
use crate::studio::spool;

/// `dropreel init [ROOT] [--examples]`.
pub fn init(cli: &Cli, root: &Path, examples: bool) -> u8 {
    if let Err(code) = create_studio(cli, root) {
        return code;
    }
    if examples && let Err(e) = copy_examples(root, None) {
        return fatal(cli, &e);
    }
    println!(
        "studio ready at {0}\n  drop images into {0}/inbox/ and run: {1} watch {0}",
        root.display(),
        invoked_as()
    );
    0
}

/// Makes `root` a studio: its four folders, a commented `dropreel.yaml` (an existing one is left as
/// it is) and a folder in `inbox/` for each preset of the settings.
pub fn create_studio(cli: &Cli, root: &Path) -> Result<(), u8> {
    if let Err(e) = spool::Spool::create(root) {
        return Err(fatal(
            cli,
            &format!(
                "cannot create the studio folders in {}: {e}",
                root.display()
            ),
        ));
    }
    let path = root.join(config::FILE_NAME);
    if path.exists() {
        println!("{} already exists; left as it is", path.display());
    } else if let Err(e) = std::fs::write(&path, config::TEMPLATE) {
        return Err(fatal(cli, &format!("cannot write {}: {e}", path.display())));
    } else {
        println!("wrote {}", path.display());
    }
    // A folder in inbox/ for each preset of the settings (when they can be read).
    if let Ok(c) = config::parse_file(&path) {
        for name in c.presets.keys() {
            let dir = root.join(crate::studio::layout::INBOX).join(name);
            match std::fs::create_dir_all(&dir) {
                Ok(()) => println!("preset folder {}", dir.display()),
                Err(e) => return Err(fatal(cli, &format!("cannot create {}: {e}", dir.display()))),
            }
        }
    }
    Ok(())
}

/// Puts the example files into `inbox/`. With `quiet_for`, they are dated that far back: they
/// are whole the moment they are written, so `run --examples` need not wait for them to settle.
pub fn copy_examples(root: &Path, quiet_for: Option<Duration>) -> Result<(), String> {
    let copied = spool::Spool::open(root).and_then(|s| demo::copy_into(&s.inbox(), quiet_for));
    match copied {
        Ok(n) => {
            println!(
                "put {n} example files into {}",
                root.join(crate::studio::layout::INBOX).display()
            );
            Ok(())
        }
        Err(e) => Err(format!(
            "cannot copy the example images into {}: {e}",
            root.display()
        )),
    }
}
