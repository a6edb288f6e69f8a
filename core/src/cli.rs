//! A ready admin command line (feature `cli`).
//!
//! Only a program knows its own models, so the admin tool is a few lines in
//! the program's own binary: every model it compiles in is listed by
//! [`skyshelve::models`](crate::models) and served by the commands below.
//!
//! ```no_run
//! // src/bin/admin.rs
//! fn main() -> std::process::ExitCode {
//!     skyshelve::cli::main()
//! }
//! ```
//!
//! ```text
//! admin stats ./data              sizes, readers, records and index entries
//! admin verify ./data             exit status 1 when a problem is found
//! admin export ./data users -o users.jsonl
//! admin export ./data --all -o dump/
//! admin import ./data users -i users.jsonl
//! admin backup ./data /backups/monday
//! admin migrate ./data
//! admin reindex ./data            this program's index definitions become the store's
//! admin -v reindex ./data         the same, reporting the index builds on standard error
//! ```
//!
//! A command opens the store as the program would: at the program's model
//! versions its index definitions take over only where they are newer
//! (see "Index changes" in [`guide::schema`](crate::guide::schema)); `reindex` takes them over at equal
//! versions too.
//!
//! A program with a command line of its own adds the commands to it with
//! `#[command(flatten)]` on a variant holding a [`Command`] (see
//! `examples/shelf_admin.rs`). Long work draws a progress bar on standard
//! error when it is a terminal; results go to standard output.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use indicatif::{HumanBytes, ProgressBar, ProgressStyle};

use crate::error::{Error, Result};
use crate::model::{ModelInfo, models};
use crate::progress::Progress;
use crate::store::Store;

/// The admin commands. `Command::run` carries one out.
#[derive(Debug, Clone, Subcommand)]
#[non_exhaustive]
pub enum Command {
    /// List the models of this program with their versions, keys, indexes and record counts.
    Models {
        /// The store's folder.
        store: PathBuf,
    },
    /// Show the map size and use, reader slots, and per-model counts.
    Stats {
        /// The store's folder.
        store: PathBuf,
    },
    /// Check every record and index entry; exit status 1 when a problem is found.
    Verify {
        /// The store's folder.
        store: PathBuf,
    },
    /// Write a model's records as JSON lines, from one consistent snapshot.
    Export {
        /// The store's folder.
        store: PathBuf,
        /// The model to export.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        model: Option<String>,
        /// Export every model, one `<model>.jsonl` file each in the folder given by `--output`,
        /// and every typed map this program registers (`skyshelve::map_type!`), one `<map>.map.jsonl`
        /// each; a map it cannot read is named on standard error and the exit status is 1.
        #[arg(long, requires = "output")]
        all: bool,
        /// Where to write: a file (standard output when absent), or a folder with `--all`.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Salvage: write every record that decodes, name each one that does not (key and
        /// reason) on standard error, and exit with status 1 if any was left out.
        #[arg(long)]
        skip_damaged: bool,
    },
    /// Read JSON lines into a model (records are inserted or replaced), in one transaction.
    Import {
        /// The store's folder (created if needed).
        store: PathBuf,
        /// The model to import into.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        model: Option<String>,
        /// Import every `<model>.jsonl` and `<map>.map.jsonl` file found in the folder given by `--input`.
        #[arg(long, requires = "input")]
        all: bool,
        /// Where to read: a file (standard input when absent), or a folder with `--all`.
        #[arg(short, long)]
        input: Option<PathBuf>,
    },
    /// Write a compacted copy of the store into a new folder while others keep writing.
    Backup {
        /// The store's folder.
        store: PathBuf,
        /// The folder to create for the copy.
        target: PathBuf,
    },
    /// Put a backup back as the store in a folder that holds none yet.
    Restore {
        /// The backup's folder.
        backup: PathBuf,
        /// The folder of the restored store.
        store: PathBuf,
    },
    /// Make this program's index definitions the store's, building what
    /// they add, even where another program with the same model versions
    /// defined them differently.
    Reindex {
        /// The store's folder.
        store: PathBuf,
    },
    /// Rewrite records written by older model versions, in batches.
    Migrate {
        /// The store's folder.
        store: PathBuf,
        /// The model to migrate (every model when absent).
        model: Option<String>,
    },
}

/// The admin command line on its own, as [`main`] parses it.
#[derive(Debug, Parser)]
#[command(about = "Admin work on a skyshelve store", version)]
struct Admin {
    #[command(flatten)]
    verbosity: Verbosity,
    #[command(subcommand)]
    command: Command,
}

/// How much of what the store does is written to standard error (its
/// `tracing` events): warnings by default, `-v` for progress (info), `-vv`
/// for detail (debug), `-vvv` for everything, `-q` for errors only.
/// `RUST_LOG` (e.g. `RUST_LOG=skyshelve::catalog=debug`), when set, decides
/// instead. A program with a command line of its own flattens it in too
/// and calls [`Verbosity::install`].
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct Verbosity {
    /// More detail on standard error: -v progress, -vv detail, -vvv everything.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Errors only on standard error.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

impl Verbosity {
    /// Installs a subscriber writing the events this verbosity asks for to
    /// standard error; does nothing if the program installed one already.
    pub fn install(&self) {
        let level = match (self.quiet, self.verbose) {
            (true, _) => "error",
            (false, 0) => "warn",
            (false, 1) => "info",
            (false, 2) => "debug",
            (false, _) => "trace",
        };
        // The command prints the error it ends with itself: the library's
        // event for the same error (target skyshelve::error) would say it twice.
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{level},skyshelve::error=off")));
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
    }
}

/// Parses the process's arguments, runs the command, and reports an error
/// on standard error: exit status 0 on success, 1 when `verify` finds a
/// problem, 2 on an error.
#[must_use]
pub fn main() -> ExitCode {
    let admin = Admin::parse();
    admin.verbosity.install();
    admin.command.run_and_report()
}

impl Command {
    /// Runs the command, writing its results to standard output. Returns
    /// the exit status: 1 when `verify` found a problem, 0 otherwise.
    ///
    /// # Errors
    ///
    /// Whatever the store operation reports, or [`Error::Io`] when the
    /// store folder holds no store (except for `import` and `restore`,
    /// which create one) or an output cannot be written.
    pub fn run(&self) -> Result<ExitCode> {
        let mut out = std::io::stdout().lock();
        match self {
            Command::Models { store } => list_models(&open_to_read(store)?, &mut out),
            Command::Stats { store } => stats(&open_to_read(store)?, &mut out),
            Command::Verify { store } => return verify(&open_to_read(store)?, &mut out),
            Command::Export { store, model, output, skip_damaged, .. } => {
                let store = open_to_read(store)?;
                let whole = export(&store, model.as_deref(), output.as_deref(), *skip_damaged, &mut out)?;
                return Ok(if whole { ExitCode::SUCCESS } else { ExitCode::from(1) });
            }
            Command::Import { store, model, input, .. } => {
                import(&open(store)?, model.as_deref(), input.as_deref(), &mut out)
            }
            Command::Backup { store, target } => {
                open_existing(store, Store::options())?.backup(target)?;
                Ok(writeln!(out, "backed up {} to {}", store.display(), target.display())?)
            }
            Command::Restore { backup, store } => {
                Store::restore(backup, store)?;
                Ok(writeln!(out, "restored {} to {}", backup.display(), store.display())?)
            }
            Command::Reindex { store } => {
                let reindexed = open_existing(store, Store::options().take_over_indexes(true))?;
                list_models(&reindexed, &mut out)
            }
            Command::Migrate { store, model } => {
                migrate(&open_existing(store, Store::options())?, model.as_deref(), &mut out)
            }
        }?;
        Ok(ExitCode::SUCCESS)
    }

    /// [`Command::run`], with an error printed on standard error and
    /// turned into exit status 2. A reader that stops reading the output
    /// (`admin export ... | head`) is no error: the command stops quietly,
    /// as other Unix tools do.
    #[must_use]
    pub fn run_and_report(&self) -> ExitCode {
        self.run().unwrap_or_else(|err| match err {
            Error::Io(io) if io.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
            err => {
                eprintln!("error: {err}");
                ExitCode::from(2)
            }
        })
    }
}

/// Opens the store in `dir` to write, creating it if needed.
fn open(dir: &Path) -> Result<Store> {
    open_with(dir, Store::options())
}

/// Opens the store in `dir` with `options`, drawing a bar while indexes
/// are built.
fn open_with(dir: &Path, options: crate::StoreOptions) -> Result<Store> {
    let bar = ProgressBar::new(0);
    let on_build = bar.clone();
    let store = options
        .on_index_build(move |model, progress| {
            on_build.set_message(format!("indexing {model}"));
            show(&on_build, progress);
        })
        .open(dir);
    bar.finish_and_clear();
    store
}

/// Opens the store in `dir`, which must hold one already (a mistyped path
/// must not leave a new empty store behind), to write.
fn open_existing(dir: &Path, options: crate::StoreOptions) -> Result<Store> {
    if !crate::engine::holds_store(dir) {
        let message = format!("{} holds no skyshelve store", dir.display());
        return Err(Error::Io(std::io::Error::new(std::io::ErrorKind::NotFound, message)));
    }
    open_with(dir, options)
}

/// Opens the store in `dir` read-only, for the commands that only look:
/// they write nothing, not even the catalog entry of a model this program
/// declares and the store never held (such a model is not listed), and
/// they do not build an index no writer has built yet (it is reported).
fn open_to_read(dir: &Path) -> Result<Store> {
    open_existing(dir, Store::options().read_only())
}

/// A progress bar for work on `what`, drawn on standard error if it is a terminal.
fn progress_bar(what: String) -> ProgressBar {
    let style = ProgressStyle::with_template("{msg:>24} [{bar:40}] {pos}/{len} {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    // Built with its message, so that nothing is drawn before the first report.
    ProgressBar::new(0).with_style(style).with_message(what)
}

fn show(bar: &ProgressBar, progress: Progress) {
    if let Some(total) = progress.total {
        bar.set_length(total);
    }
    bar.set_position(progress.done);
}

/// Fails unless a model or a registered map (`map_type!`) has this name.
fn check_exportable(name: &str) -> Result<()> {
    if crate::maps().iter().any(|map| map.name == name) {
        return Ok(());
    }
    // `<model>~history`: the model's kept versions.
    model_named(name.strip_suffix(crate::history::SUFFIX).unwrap_or(name)).map(drop)
}

/// The model of this program named `name`.
fn model_named(name: &str) -> Result<&'static ModelInfo> {
    models().into_iter().find(|model| model.name == name).ok_or_else(|| Error::UnknownModel { name: name.to_owned() })
}

/// What a model's index holds, for the listings: its entries, or that it
/// is not built yet.
fn index_state(model: &crate::ModelStats, position: usize, index: &crate::IndexInfo) -> String {
    if model.unbuilt_indexes.contains(&index.name) {
        "not built yet".to_owned()
    } else {
        model.index_entries.get(position).copied().unwrap_or_default().to_string()
    }
}

fn list_models(store: &Store, out: &mut dyn Write) -> Result<()> {
    let stats = store.stats()?;
    for model in &stats.models {
        let info = model_named(model.name)?;
        writeln!(out, "{}  version {}  key {}  {} records", info.name, info.version, info.key_type, model.records)?;
        for index in info.indexes {
            let unbuilt = if model.unbuilt_indexes.contains(&index.name) { "  (not built yet)" } else { "" };
            writeln!(out, "  {}{unbuilt}", index.fingerprint())?;
        }
    }
    for map in stats.maps {
        writeln!(out, "map {}  {} entries", map.name, map.entries)?;
    }
    Ok(())
}

fn stats(store: &Store, out: &mut dyn Write) -> Result<()> {
    let stats = store.stats()?;
    writeln!(out, "store    {}", store.path().display())?;
    let (size, used) = (stats.map_size as u64, stats.used_bytes);
    writeln!(out, "map      {}, {} used", HumanBytes(size), HumanBytes(used))?;
    writeln!(out, "readers  {} of {} in use", stats.readers, stats.max_readers)?;
    for model in &stats.models {
        let indexes = model_named(model.name).map(|info| info.indexes).unwrap_or_default();
        let entries: Vec<String> = indexes
            .iter()
            .enumerate()
            .map(|(position, index)| format!("{} {}", index.name, index_state(model, position, index)))
            .collect();
        writeln!(out, "{}: {} records; index entries: {}", model.name, model.records, entries.join(", "))?;
    }
    for map in &stats.maps {
        writeln!(out, "map {}: {} entries", map.name, map.entries)?;
    }
    let a = stats.activity;
    writeln!(
        out,
        "this process: {} commits, {} written, {} map growths, {} reruns, {} group commits of {} writers, {} lock waits ({} ms)",
        a.commits,
        HumanBytes(a.bytes_written),
        a.map_growths,
        a.reruns,
        a.group_commits,
        a.group_writers,
        a.lock_waits,
        a.lock_wait_ms
    )?;
    Ok(())
}

fn verify(store: &Store, out: &mut dyn Write) -> Result<ExitCode> {
    let report = store.verify()?;
    write!(out, "{report}")?;
    if report.is_clean() {
        writeln!(out, "clean")?;
        Ok(ExitCode::SUCCESS)
    } else {
        let problems: u64 = report.models.iter().map(|model| model.problem_count).sum();
        writeln!(out, "{problems} problems")?;
        Ok(ExitCode::from(1))
    }
}

/// Exports one model or map, or (without a name) everything; returns
/// whether everything asked for was carried: `false` when records were
/// skipped as damaged or a map could not be read.
fn export(
    store: &Store,
    model: Option<&str>,
    output: Option<&Path>,
    skip_damaged: bool,
    out: &mut dyn Write,
) -> Result<bool> {
    let mut skipped = Skipped { salvage: skip_damaged, count: 0 };
    let Some(model) = model else {
        // --all: clap makes sure an output folder was given.
        let folder = output.unwrap_or(Path::new("."));
        crate::fs::create_private_dir(folder)?;
        // The models the store holds (a read-only open leaves out the others).
        for info in store.stats()?.models.iter().map(|model| model_named(model.name)).collect::<Result<Vec<_>>>()? {
            let path = folder.join(format!("{}.jsonl", info.name));
            let exported = export_one(store, info.name, &mut create_file(&path)?, &mut skipped)?;
            writeln!(out, "exported {exported} {} records to {}", info.name, path.display())?;
            if info.history > 0 {
                let name = format!("{}{}", info.name, crate::history::SUFFIX);
                let path = folder.join(format!("{name}.jsonl"));
                let exported = export_one(store, &name, &mut create_file(&path)?, &mut skipped)?;
                writeln!(out, "exported {exported} kept versions of {} to {}", info.name, path.display())?;
            }
        }
        let maps_whole = export_maps(store, folder, out)?;
        return Ok(skipped.count == 0 && maps_whole);
    };
    check_exportable(model)?;
    match output {
        None => export_one(store, model, out, &mut skipped).map(drop)?,
        Some(path) => {
            let exported = export_one(store, model, &mut create_file(path)?, &mut skipped)?;
            writeln!(out, "exported {exported} {model} records to {}", path.display())?;
        }
    }
    Ok(skipped.count == 0)
}

/// Every map stored, to `<map>.map.jsonl` in `folder` when this program
/// registers its types; the others are named on standard error. Returns
/// whether every map was carried.
fn export_maps(store: &Store, folder: &Path, out: &mut dyn Write) -> Result<bool> {
    let mut whole = true;
    for map in store.stats()?.maps {
        if !crate::maps().iter().any(|known| known.name == map.name) {
            eprintln!(
                "not exported: map {} ({} entries): this program registers no types for it (skyshelve::map_type!)",
                map.name, map.entries
            );
            whole = false;
            continue;
        }
        let path = folder.join(format!("{}.map.jsonl", map.name));
        let exported = store.export_json_lines(&map.name, &mut create_file(&path)?, &mut |_| {})?;
        writeln!(out, "exported {exported} entries of map {} to {}", map.name, path.display())?;
    }
    Ok(whole)
}

/// Whether damaged records are skipped (salvage) rather than fatal, and
/// how many were.
struct Skipped {
    salvage: bool,
    count: u64,
}

/// Creates (or empties) an owner-only file: exports hold the store's data.
fn create_file(path: &Path) -> Result<std::fs::File> {
    Ok(crate::fs::private_file_options().write(true).create(true).truncate(true).open(path)?)
}

fn export_one(store: &Store, model: &str, to: &mut dyn Write, skipped: &mut Skipped) -> Result<u64> {
    let bar = progress_bar(format!("exporting {model}"));
    let mut writer = std::io::BufWriter::new(to);
    let mut progress = |progress| show(&bar, progress);
    let exported = if skipped.salvage {
        let count = &mut skipped.count;
        let mut skip = |key: String, why: Error| {
            *count += 1;
            eprintln!("skipped {model} {key}: {why}");
        };
        store.export_json_lines_skipping_damaged(model, &mut writer, &mut progress, &mut skip)
    } else {
        store.export_json_lines(model, &mut writer, &mut progress)
    };
    bar.finish_and_clear();
    exported
}

fn import(store: &Store, model: Option<&str>, input: Option<&Path>, out: &mut dyn Write) -> Result<()> {
    let Some(model) = model else {
        // --all: clap makes sure an input folder was given.
        let folder = input.unwrap_or(Path::new("."));
        for info in models() {
            let path = folder.join(format!("{}.jsonl", info.name));
            if path.is_file() {
                let imported = import_one(store, info.name, &mut std::io::BufReader::new(std::fs::File::open(&path)?))?;
                writeln!(out, "imported {imported} {} records from {}", info.name, path.display())?;
            }
            // After the records, whose import history would otherwise keep as changes.
            let name = format!("{}{}", info.name, crate::history::SUFFIX);
            let path = folder.join(format!("{name}.jsonl"));
            if info.history > 0 && path.is_file() {
                let imported = import_one(store, &name, &mut std::io::BufReader::new(std::fs::File::open(&path)?))?;
                writeln!(out, "imported {imported} kept versions of {} from {}", info.name, path.display())?;
            }
        }
        for map in crate::maps() {
            let path = folder.join(format!("{}.map.jsonl", map.name));
            if path.is_file() {
                let imported = import_one(store, map.name, &mut std::io::BufReader::new(std::fs::File::open(&path)?))?;
                writeln!(out, "imported {imported} entries of map {} from {}", map.name, path.display())?;
            }
        }
        return Ok(());
    };
    check_exportable(model)?;
    let imported = match input {
        None => import_one(store, model, &mut std::io::stdin().lock())?,
        Some(path) => import_one(store, model, &mut std::io::BufReader::new(std::fs::File::open(path)?))?,
    };
    Ok(writeln!(out, "imported {imported} {model} records")?)
}

fn import_one(store: &Store, model: &str, from: &mut dyn std::io::BufRead) -> Result<u64> {
    let bar = progress_bar(format!("importing {model}"));
    let imported = store.import_json_lines(model, from, &mut |progress| show(&bar, progress));
    bar.finish_and_clear();
    imported
}

fn migrate(store: &Store, model: Option<&str>, out: &mut dyn Write) -> Result<()> {
    let chosen = match model {
        Some(name) => vec![model_named(name)?],
        None => models(),
    };
    for info in chosen {
        let bar = progress_bar(format!("migrating {}", info.name));
        let rewritten = info.migrate_in(store, &mut |progress| show(&bar, progress));
        bar.finish_and_clear();
        writeln!(out, "{}: {} records rewritten", info.name, rewritten?)?;
    }
    Ok(())
}
